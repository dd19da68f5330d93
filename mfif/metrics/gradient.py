"""Fusion metrics: gradient family (being written)."""
from mfif.metrics._common import Metric

METRICS: tuple[Metric, ...] = ()
