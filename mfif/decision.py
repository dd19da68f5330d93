"""Decision-map tools shared by the learned and classical methods.

- :func:`box_mean`: windowed mean with the border normalisation of He's MATLAB code (the window is
  clipped at the image border and the sum divided by the number of pixels actually inside it).
- :func:`guided_filter`: He, Sun, Tang, "Guided Image Filtering", TPAMI 2013 (O(1) box version).
- :func:`remove_small_regions`: 8-connected small-region removal on a binary map, then its inverse
  (Liu et al. 2017, Sec. 3.3; MATLAB ``bwareaopen`` semantics: regions with fewer than ``area``
  pixels are removed).
- :func:`argmax_decision` / :func:`one_hot`: an N-way decision map from per-source scores.
- :func:`blend`: pixel-wise weighted average, per channel.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from mfif.errors import InputError


def box_mean(image: np.ndarray, radius: int) -> np.ndarray:
    """Mean over the (2r+1)x(2r+1) window, clipped at the borders (He's ``boxfilter(I, r) ./ N``).

    Args:
        image: (H, W) float array.
        radius: window radius r >= 0.

    Returns:
        (H, W) float64 array.
    """
    img = np.asarray(image, dtype=np.float64)
    if radius <= 0:
        return img.copy()
    k = 2 * radius + 1
    sums = cv2.boxFilter(img, cv2.CV_64F, (k, k), normalize=False, borderType=cv2.BORDER_CONSTANT)
    h, w = img.shape
    # Count of pixels inside the clipped window: separable, rows x cols.
    rows = np.minimum(np.arange(h) + radius, h - 1) - np.maximum(np.arange(h) - radius, 0) + 1
    cols = np.minimum(np.arange(w) + radius, w - 1) - np.maximum(np.arange(w) - radius, 0) + 1
    return sums / (rows[:, None] * cols[None, :]).astype(np.float64)


def guided_filter(guide: np.ndarray, src: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """Grey-guide guided filter (He et al. 2013, Algorithm 1).

    Args:
        guide: (H, W) guidance image I.
        src: (H, W) filtering input p (e.g. a binary decision map).
        radius: box radius r.
        eps: regularisation epsilon, in the squared units of ``guide``.

    Returns:
        (H, W) float64 filtered output q = mean(a) * I + mean(b).
    """
    guide = np.asarray(guide, dtype=np.float64)
    src = np.asarray(src, dtype=np.float64)
    if guide.shape != src.shape or guide.ndim != 2:
        raise InputError(f"guided_filter: guide {guide.shape} and input {src.shape} must be the same (H, W)")
    mean_i = box_mean(guide, radius)
    mean_p = box_mean(src, radius)
    corr_ip = box_mean(guide * src, radius)
    corr_ii = box_mean(guide * guide, radius)
    var_i = corr_ii - mean_i * mean_i
    cov_ip = corr_ip - mean_i * mean_p
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    return box_mean(a, radius) * guide + box_mean(b, radius)


def _remove_small_foreground(mask: np.ndarray, area: int) -> np.ndarray:
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 1:
        return mask.copy()
    keep = stats[:, cv2.CC_STAT_AREA] >= area
    keep[0] = False  # background label
    return keep[labels]


def remove_small_regions(mask: np.ndarray, area_fraction: float = 0.01, *, area: int | None = None) -> np.ndarray:
    """Remove 8-connected regions smaller than a threshold from a binary map, then from its inverse.

    Args:
        mask: (H, W) boolean map (True = source A chosen).
        area_fraction: threshold as a fraction of H*W (area = ceil(fraction * H * W)); 0 disables.
        area: explicit threshold in pixels (overrides ``area_fraction``).

    Returns:
        (H, W) boolean map.
    """
    mask = np.asarray(mask).astype(bool)
    if mask.ndim != 2:
        raise InputError(f"remove_small_regions: expected an (H, W) map, got shape {mask.shape}")
    if area is None:
        if area_fraction < 0:
            raise InputError(f"area fraction must be >= 0, got {area_fraction}")
        area = math.ceil(area_fraction * mask.shape[0] * mask.shape[1])
    if area <= 1:
        return mask.copy()
    cleaned = _remove_small_foreground(mask, area)
    return ~_remove_small_foreground(~cleaned, area)


def remove_small_regions_multi(decision: np.ndarray, n_sources: int, area_fraction: float = 0.01) -> np.ndarray:
    """N-way small-region removal on an index map.

    Two sources: exactly :func:`remove_small_regions` (map, then inverse). More sources: every
    8-connected region of one label smaller than ceil(area_fraction * H * W) is found on the input
    map (all labels at once, so the result does not depend on the order of the sources) and its
    pixels take the label of the nearest pixel outside any small region.

    Args:
        decision: (H, W) int map with values in [0, n_sources).
    Returns:
        (H, W) int map.
    """
    from scipy import ndimage

    if n_sources == 2:
        return (~remove_small_regions(decision == 0, area_fraction)).astype(decision.dtype)
    area = math.ceil(area_fraction * decision.shape[0] * decision.shape[1])
    if area <= 1:
        return decision.copy()
    small = np.zeros(decision.shape, bool)
    for label in range(n_sources):
        n, labels, stats, _ = cv2.connectedComponentsWithStats((decision == label).astype(np.uint8), connectivity=8)
        if n > 1:
            is_small = stats[:, cv2.CC_STAT_AREA] < area
            is_small[0] = False
            small |= is_small[labels]
    if not small.any() or small.all():
        return decision.copy()
    _, (iy, ix) = ndimage.distance_transform_edt(small, return_indices=True)
    return decision[iy, ix]


def argmax_decision(scores: np.ndarray) -> np.ndarray:
    """(N, H, W) per-source scores -> (H, W) int64 index of the best source (ties: lowest index)."""
    scores = np.asarray(scores)
    if scores.ndim != 3 or scores.shape[0] < 2:
        raise InputError(f"argmax_decision: expected (N>=2, H, W) scores, got shape {scores.shape}")
    return np.argmax(scores, axis=0)


def one_hot(decision: np.ndarray, n_sources: int) -> np.ndarray:
    """(H, W) index map -> (N, H, W) float32 one-hot weights."""
    return (np.arange(n_sources)[:, None, None] == decision[None]).astype(np.float32)


def normalize_weights(weights: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Make (N, H, W) weights non-negative and sum to 1 per pixel (uniform where all are 0)."""
    w = np.clip(np.asarray(weights, dtype=np.float64), 0.0, None)
    total = w.sum(axis=0, keepdims=True)
    n = w.shape[0]
    return np.where(total > eps, w / np.maximum(total, eps), 1.0 / n)


def blend(stack: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Pixel-wise weighted sum of the sources, per channel.

    Args:
        stack: (N, C, H, W) sources.
        weights: (N, H, W) weights (used as given: normalise them first if needed).

    Returns:
        (C, H, W) float32.
    """
    stack = np.asarray(stack)
    weights = np.asarray(weights)
    if weights.shape != (stack.shape[0], *stack.shape[2:]):
        raise InputError(f"blend: weights {weights.shape} do not match the stack {stack.shape}")
    out = np.einsum("nhw,nchw->chw", weights.astype(np.float32), stack.astype(np.float32, copy=False))
    return out.astype(np.float32, copy=False)


#: R, G, B -> grey: MATLAB's rgb2gray weights (the metrics' reference code uses them too).
GREY_WEIGHTS = np.array([0.298936021293775, 0.587043074451121, 0.114020904255103], dtype=np.float32)
GREY_WEIGHTS.setflags(write=False)


def luminance(stack: np.ndarray) -> np.ndarray:
    """(N, C, H, W) or (C, H, W) -> grey (..., H, W) with the MATLAB rgb2gray weights."""
    stack = np.asarray(stack, dtype=np.float32)
    if stack.shape[-3] == 1:
        return stack[..., 0, :, :]
    w = GREY_WEIGHTS
    return np.tensordot(stack, w, axes=([-3], [0])) if stack.ndim == 3 else np.einsum("nchw,c->nhw", stack, w)
