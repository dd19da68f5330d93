"""Fusion metrics, boundary-band family: PSNR and SSIM against the ground truth near the true focus
boundary.

Decision-map methods differ where the in-focus frame changes (Ma et al. 2019, boundary-aware
fusion): a whole-image PSNR averages that thin band with large flat areas every method gets right.
These metrics score only the pixels within ``width`` px of the true focus boundary, taken from
the focus maps of a synthetic set (``mfif synth`` writes one per frame, white = in focus there).

- **labels**: the index of the in-focus frame at each pixel, ``argmax_k focus_k`` (first frame on
  ties; for a pair with complementary maps this is ``focus_A >= 0.5``);
- **band**: the pixels whose distance (between pixel centres) to the nearest pixel of another
  label is at most ``width``: ``width`` pixels on each side of the boundary, none along the image
  border or in a one-label image. Distances are OpenCV's 5x5 chamfer approximation of the
  Euclidean distance (``DIST_L2``, mask 5: steps 1 along an axis, 1.4 diagonally, 2.1969 for a
  knight's move; within about 2 % of Euclidean), the band of benchmarks/boundary_band.py, whose
  committed table this keeps reproducible;
- ``PSNR_band``: ``20 log10(255 / RMSE)`` over the band, on the reference grey image (as ``PSNR_GT``);
- ``SSIM_band``: the mean of Wang's SSIM map (as ``SSIM_GT``: Gaussian 11x11, sigma 1.5, 'valid')
  over the band pixels that are window centres of the valid map.

Keys: ``PSNR_band`` and ``SSIM_band`` use :data:`DEFAULT_BAND_WIDTH` (8 px); ``PSNR_band<K>`` /
``SSIM_band<K>`` (e.g. ``PSNR_band4``) any other width, through :func:`band_metric`. They need the
ground truth *and* the focus maps, so they are not in :data:`mfif.metrics.METRICS` (whose metrics
take sources, fused and ground truth only); ``mfif eval --metrics`` accepts them and reads the maps
next to the sources (:mod:`mfif.evaluation.focus_maps`).
"""
from __future__ import annotations

import functools
import math
import re
from typing import Sequence

import cv2
import numpy as np

from mfif.errors import InputError
from mfif.metrics._common import Metric
from mfif.metrics.reference import _with_ground_truth
from mfif.metrics.structural import wang_ssim_map

__all__ = ["DEFAULT_BAND_WIDTH", "BAND_METRICS", "focus_labels", "boundary_band", "psnr_band", "ssim_band",
           "band_metric", "is_band_metric"]

DEFAULT_BAND_WIDTH = 8
_SSIM_MARGIN = 5  # the 'valid' 11x11 SSIM map starts at pixel (5, 5)
_NAME = re.compile(r"^(?P<kind>PSNR|SSIM)_band(?P<width>\d+)?$")


def focus_labels(focus_maps) -> np.ndarray:
    """Focus maps -> (H, W) int: the index of the in-focus frame at each pixel.

    ``focus_maps``: (N, H, W) or a sequence of N maps of shape (H, W) or (1, H, W), values in
    [0, 1] (or uint8/uint16 images). One map alone stands for a pair: label 0 where it is >= 0.5.
    """
    maps = [np.asarray(m) for m in focus_maps]
    if not maps:
        raise InputError("no focus maps given")
    maps = [m[0] if m.ndim == 3 and m.shape[0] == 1 else m for m in maps]
    shapes = {m.shape for m in maps}
    if len(shapes) != 1 or maps[0].ndim != 2:
        raise InputError(f"focus maps must all be (H, W) images of one size, got shapes {sorted(shapes)}")
    stack = np.stack([m.astype(np.float32) for m in maps])
    if not np.all(np.isfinite(stack)):
        raise InputError("focus maps contain NaN or Inf")
    if len(maps) == 1:
        scale = 255.0 if maps[0].dtype == np.uint8 else 65535.0 if maps[0].dtype == np.uint16 else 1.0
        return (stack[0] < 0.5 * scale).astype(np.int32)
    return np.argmax(stack, axis=0).astype(np.int32)


def boundary_band(labels: np.ndarray, width: float = DEFAULT_BAND_WIDTH) -> np.ndarray:
    """(H, W) integer labels -> (H, W) bool: pixels within ``width`` px of a pixel of another label.

    Distances: OpenCV's 5x5 chamfer distance (module docstring); two neighbours across a straight
    boundary are at distance 1, so the band is ``width`` pixels deep on each side.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise InputError(f"labels must be (H, W), got shape {labels.shape}")
    if not width >= 0:
        raise InputError(f"band width must be >= 0 px, got {width}")
    distance = np.full(labels.shape, np.inf, np.float32)
    values = np.unique(labels)
    if values.size < 2:
        return np.zeros(labels.shape, bool)
    for value in values:
        own = labels == value
        # for each pixel of this label: distance to the nearest pixel that is not (a zero of `own`)
        d = cv2.distanceTransform(own.astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_5)
        distance[own] = d[own]
    return distance <= width


def _band_inputs(fused, ground_truth, focus_maps, width: float, key: str, sources=None):
    f, gt = _with_ground_truth(sources, fused, ground_truth, key)
    if focus_maps is None:
        raise InputError(f"{key} needs the focus maps of the sources (focus_maps=...)")
    labels = focus_labels(focus_maps)
    if labels.shape != f.shape:
        raise InputError(f"focus maps have size {labels.shape[1]}x{labels.shape[0]} but the fused image is "
                         f"{f.shape[1]}x{f.shape[0]}")
    if sources is not None and len(focus_maps) > 1 and len(sources) != len(focus_maps):
        raise InputError(f"{key}: {len(focus_maps)} focus maps for {len(sources)} sources")
    band = boundary_band(labels, width)
    if not band.any():
        raise InputError(f"{key}: the focus maps have no focus boundary (one frame is in focus everywhere)")
    return f, gt, band


def psnr_band(sources, fused, *, ground_truth=None, focus_maps=None, width: float = DEFAULT_BAND_WIDTH) -> float:
    """``PSNR_band``: ``20 log10(255 / RMSE(GT, F))`` in dB over the pixels within ``width`` px of
    the true focus boundary (grey images in [0, 255], as ``PSNR_GT``; ``inf`` when F equals the
    ground truth there). ``focus_maps``: one map per source (see :func:`focus_labels`).

    Reference: the boundary is where Ma et al. 2019 (boundary-aware MFIF) place the methods'
    differences; PSNR as Y. Liu's MFIF-Metrics ``FR-IQA/PSNR.m``, restricted to the band.
    """
    f, gt, band = _band_inputs(fused, ground_truth, focus_maps, width, "PSNR_band", sources)
    mse = float(np.mean((gt[band] - f[band]) ** 2))
    return math.inf if mse == 0 else 20.0 * math.log10(255.0 / math.sqrt(mse))


def ssim_band(sources, fused, *, ground_truth=None, focus_maps=None, width: float = DEFAULT_BAND_WIDTH) -> float:
    """``SSIM_band``: mean of Wang's SSIM map ``ssim_index(GT, F)`` (as ``SSIM_GT``) over the band
    pixels at least 5 px from the image border (the centres of the 'valid' 11x11 windows)."""
    f, gt, band = _band_inputs(fused, ground_truth, focus_maps, width, "SSIM_band", sources)
    m = _SSIM_MARGIN
    ssim = wang_ssim_map(gt, f)
    inner = band[m:m + ssim.shape[0], m:m + ssim.shape[1]]
    if not inner.any():
        raise InputError("SSIM_band: the focus boundary lies only within 5 px of the image border")
    return float(np.mean(ssim[inner]))


def band_metric(name: str) -> Metric | None:
    """The :class:`Metric` for ``PSNR_band[K]`` / ``SSIM_band[K]`` (K = width in px, default 8),
    or None for any other name. Its function takes ``focus_maps=`` besides ``ground_truth=``."""
    match = _NAME.match(name)
    if not match:
        return None
    width = int(match["width"]) if match["width"] else DEFAULT_BAND_WIDTH
    psnr = match["kind"] == "PSNR"
    return Metric(name=name, function=functools.partial(psnr_band if psnr else ssim_band, width=width),
                  higher_is_better=True, needs_ground_truth=True, n_sources=None,
                  value_range=None if psnr else (-1.0, 1.0),
                  reference=f"{'PSNR' if psnr else 'SSIM'} vs GT within {width} px of the true focus boundary")


def is_band_metric(name: str) -> bool:
    return _NAME.match(name) is not None


BAND_METRICS: dict[str, Metric] = {m.name: m for m in (band_metric("PSNR_band"), band_metric("SSIM_band"))}
