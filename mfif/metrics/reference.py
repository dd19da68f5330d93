"""Fusion metrics: reference family (being written)."""
from mfif.metrics._common import Metric

METRICS: tuple[Metric, ...] = ()
