"""Objective fusion-quality metrics, validated against the MATLAB reference code.

``METRICS`` maps each key (as in ``shared/refmetrics``: ``Q_MI``, ``Q_G``, ``Q_G_yl``, ...) to a
:class:`Metric`. Call a metric as ``metric.function(sources, fused, ground_truth=None)``.
"""
from __future__ import annotations

from mfif.metrics import exposure, gradient, information, noreference, perceptual, reference, structural
from mfif.metrics._common import Metric, to_grey_255

_FAMILIES = (information, gradient, noreference, structural, perceptual, reference, exposure)

METRICS: dict[str, Metric] = {m.name: m for family in _FAMILIES for m in family.METRICS}

__all__ = ["METRICS", "Metric", "to_grey_255"]
