"""Fusion metrics: noreference family (being written)."""
from mfif.metrics._common import Metric

METRICS: tuple[Metric, ...] = ()
