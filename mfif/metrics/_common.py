"""Shared conventions of the fusion metrics: grey conversion as the MATLAB reference does it,
input checks, and the :class:`Metric` table entry.

The reference code (Zheng Liu's toolbox, Yu Liu's MFIF-Metrics, VIFB, Kede Ma's MEF-SSIM) works on
8-bit grey images: RGB -> grey with 0.298936 R + 0.587043 G + 0.114021 B, rounded to uint8, then
doubles in [0, 255]. Every metric here receives images through :func:`to_grey_255`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from mfif.errors import InputError

# MATLAB rgb2gray coefficients (as printed by the reference code).
GREY_WEIGHTS = (0.298936021293775, 0.587043074451121, 0.114020904255103)


def _as_hwc(image: np.ndarray, name: str) -> np.ndarray:
    """Return (H, W) or (H, W, C) for an image given as (H, W), (H, W, C) or (C, H, W)."""
    arr = np.asarray(image)
    if arr.ndim == 2:
        return arr
    if arr.ndim == 3:
        if arr.shape[0] in (1, 3) and arr.shape[2] not in (1, 3):
            arr = np.moveaxis(arr, 0, -1)  # library convention (C, H, W)
        if arr.shape[2] == 1:
            return arr[:, :, 0]
        if arr.shape[2] == 3:
            return arr
        if arr.shape[2] == 4:
            raise InputError(f"{name}: has 4 channels (RGBA); drop alpha before scoring")
    raise InputError(f"{name}: expected a (H, W), (H, W, 3) or (3, H, W) image, got shape {arr.shape}")


def to_uint8(image: np.ndarray, name: str = "image") -> np.ndarray:
    """Quantise to uint8 as the reference sees a saved image: uint8 as is, uint16 >> 8,
    float in [0, 1] -> round(x * 255). Keeps channels ((H, W) or (H, W, 3))."""
    arr = _as_hwc(image, name)
    if arr.size == 0:
        raise InputError(f"{name}: image is empty (shape {arr.shape})")
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.uint16:
        return np.round(arr.astype(np.float64) / 257.0).astype(np.uint8)
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)):
            raise InputError(f"{name}: contains NaN or Inf")
        return np.round(np.clip(arr.astype(np.float64), 0.0, 1.0) * 255.0).astype(np.uint8)
    raise InputError(f"{name}: unsupported dtype {arr.dtype} (use uint8, uint16 or float in [0, 1])")


def to_grey_255(image: np.ndarray, name: str = "image") -> np.ndarray:
    """Grey float64 (H, W) with integer values in [0, 255], exactly as the MATLAB reference sees it."""
    arr = to_uint8(image, name)
    if arr.ndim == 3:
        w = GREY_WEIGHTS
        grey = w[0] * arr[..., 0].astype(np.float64) + w[1] * arr[..., 1] + w[2] * arr[..., 2]
        arr = np.round(grey).clip(0, 255).astype(np.uint8)
    return arr.astype(np.float64)


def prepare(sources: Sequence[np.ndarray], fused: np.ndarray, *, n_sources: int | None = 2):
    """Check and convert (sources, fused) for a metric. Returns (list of grey sources, grey fused).

    Raises InputError for a wrong number of sources or mismatched sizes.
    """
    if isinstance(sources, np.ndarray) and sources.ndim >= 3 and n_sources is not None and sources.shape[0] == n_sources and sources.ndim == np.asarray(fused).ndim + 1:
        sources = list(sources)
    sources = list(sources)
    if n_sources is not None and len(sources) != n_sources:
        raise InputError(f"this metric takes exactly {n_sources} sources, got {len(sources)}")
    if n_sources is None and len(sources) < 2:
        raise InputError(f"this metric takes at least 2 sources, got {len(sources)}")
    grey_sources = [to_grey_255(s, f"source {i}") for i, s in enumerate(sources)]
    grey_fused = to_grey_255(fused, "fused")
    for i, s in enumerate(grey_sources):
        if s.shape != grey_fused.shape:
            raise InputError(f"source {i} has size {s.shape[1]}x{s.shape[0]} but the fused image is "
                             f"{grey_fused.shape[1]}x{grey_fused.shape[0]}")
    return grey_sources, grey_fused


@dataclass(frozen=True)
class Metric:
    """One entry of :data:`mfif.metrics.METRICS`.

    Attributes:
        name: key, as in the reference data (``Q_G``, ``Q_G_yl``, ...).
        function: ``function(sources, fused, *, ground_truth=None) -> float``.
        higher_is_better: direction of the metric.
        needs_ground_truth: needs ``ground_truth=``.
        reference: paper / code the implementation follows.
        n_sources: 2 for two-source metrics, None for any number (>= 2), 0 for fused-only metrics.
        value_range: (low, high) every valid value lies in, or None when unbounded/undeclared; a
            value outside it is flagged, never ranked (:func:`in_range`).
    """

    name: str
    function: Callable[..., float]
    higher_is_better: bool
    needs_ground_truth: bool = False
    reference: str = ""
    n_sources: int | None = 2
    value_range: tuple[float, float] | None = None

    def in_range(self, value: float) -> bool:
        """True when ``value`` is finite and inside :attr:`value_range` (with 1e-9 slack)."""
        import math

        if not math.isfinite(value):
            return False
        if self.value_range is None:
            return True
        low, high = self.value_range
        return low - 1e-9 <= value <= high + 1e-9
