"""Focus-map sources: which pixels are in focus in which frame.

Everything starts from a *label map* (H, W) of integer segments:

- human segmentations (BSDS500) or instance masks (COCO; 0 = background is a segment too),
- an alpha matte thresholded at 0.5 (:func:`alpha_to_labels`),
- random smooth shapes for photos without masks (:func:`random_smooth_labels`).

Segments are then split into ``n`` groups, one per frame (group k is in focus in frame k):

- :func:`random_subset_groups`: a random subset of segments (Hourglass, Guerrero et al. 2019);
- :func:`threshold_groups`: segments get random *depths* (:func:`segment_depths`, spatially
  coherent so near things cluster), and depth thresholds split near from far (IFCNN's
  ``d_th ~ U(0.3, 0.7) * max depth``; ``n - 1`` thresholds for ``n`` frames).

:func:`group_maps` turns the segment groups into binary focus maps (n, H, W) that sum to one at
every pixel (complementary). Group 0 is the nearest when groups come from depths.
"""
from __future__ import annotations

import cv2
import numpy as np


def relabel(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """Map arbitrary integer labels to 0..K-1 (int32); returns (labels, K)."""
    labels = np.asarray(labels)
    lo, hi = int(labels.min()), int(labels.max())
    if hi - lo < (1 << 22):  # small range: a lookup table (much faster than sorting)
        present = np.bincount((labels - lo).ravel(), minlength=hi - lo + 1) > 0
        lut = (np.cumsum(present) - 1).astype(np.int32)
        return lut[labels - lo], int(present.sum())
    uniq, inv = np.unique(labels.ravel(), return_inverse=True)
    return inv.reshape(labels.shape).astype(np.int32), int(uniq.size)


def smooth_field(h: int, w: int, rng: np.random.Generator, *, cells: float = 4.0, channels: int = 1) -> np.ndarray:
    """Smooth random field(s) (channels, H, W) from bicubically upsampled white noise.

    ``cells`` is roughly how many independent values span the longer side.
    """
    long_side = max(h, w)
    gh = max(2, int(round(cells * h / long_side)) + 1)
    gw = max(2, int(round(cells * w / long_side)) + 1)
    noise = rng.standard_normal((gh, gw, channels)).astype(np.float32)
    up = cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC)
    if up.ndim == 2:
        up = up[..., None]
    return np.ascontiguousarray(np.moveaxis(up, -1, 0))


def random_smooth_labels(h: int, w: int, rng: np.random.Generator, n_regions: int | tuple[int, int] = (2, 5),
                         *, cells: tuple[float, float] = (1.5, 4.0)) -> np.ndarray:
    """Random smooth shapes: the argmax of a few smooth random fields, labels 0..K-1 (int32).

    Used for photos without masks. Every label in ``range(K)`` is present when possible (tiny
    regions may vanish; the result is relabelled to be consecutive).
    """
    k = int(rng.integers(n_regions[0], n_regions[1] + 1)) if isinstance(n_regions, tuple) else int(n_regions)
    k = max(2, k)
    c = float(rng.uniform(*cells))
    fields = smooth_field(h, w, rng, cells=c, channels=k)
    labels = np.argmax(fields, axis=0)
    return relabel(labels)[0]


def alpha_to_labels(alpha: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Two segments from an alpha matte: 1 = foreground (alpha >= threshold), 0 = background."""
    return (np.asarray(alpha) >= threshold).astype(np.int32)


def segment_areas(labels: np.ndarray, k: int) -> np.ndarray:
    return np.bincount(labels.ravel(), minlength=k).astype(np.float64)


def segment_depths(labels: np.ndarray, k: int, rng: np.random.Generator, *, coherence: float = 0.6) -> np.ndarray:
    """A random depth in [0, 1] for each of the ``k`` segments (0 = near).

    ``coherence`` in [0, 1] mixes a smooth random depth field sampled at each segment's centroid
    (neighbouring segments get similar depths, as in real scenes) with independent uniform
    depths (``coherence = 0``: IFCNN-style i.i.d. random depths).
    """
    u = rng.uniform(0.0, 1.0, size=k)
    if coherence <= 0 or k == 1:
        return u
    h, w = labels.shape
    field = smooth_field(h, w, rng, cells=3.0)[0]
    lo, hi = float(field.min()), float(field.max())
    field = (field - lo) / (hi - lo) if hi > lo else np.zeros_like(field)
    area = segment_areas(labels, k)
    ys, xs = np.indices((h, w))
    cy = np.bincount(labels.ravel(), weights=ys.ravel(), minlength=k) / np.maximum(area, 1)
    cx = np.bincount(labels.ravel(), weights=xs.ravel(), minlength=k) / np.maximum(area, 1)
    f = field[np.clip(np.round(cy).astype(int), 0, h - 1), np.clip(np.round(cx).astype(int), 0, w - 1)]
    return coherence * f + (1.0 - coherence) * u


def _fractions_ok(groups: np.ndarray, area: np.ndarray, n: int, min_fraction: float) -> bool:
    tot = area.sum()
    frac = np.bincount(groups, weights=area, minlength=n) / tot
    return bool(np.all(frac >= min_fraction))


def threshold_groups(depths: np.ndarray, area: np.ndarray, n: int, rng: np.random.Generator, *,
                     threshold_range: tuple[float, float] = (0.3, 0.7), min_fraction: float = 0.05,
                     tries: int = 20) -> np.ndarray | None:
    """Split segments into ``n`` depth groups by ``n - 1`` random thresholds (group 0 nearest).

    For two groups the threshold is ``U(threshold_range) * max depth`` (IFCNN). For ``n`` groups
    threshold ``j`` is drawn from the same range mapped into the j-th of ``n - 1`` equal bands.
    Each group must hold at least ``min_fraction`` of the pixels; thresholds are redrawn up to
    ``tries`` times. Returns the group of each segment, or None when no split works.
    """
    dmax = float(depths.max())
    if dmax <= 0:
        return None
    lo, hi = threshold_range
    for _ in range(tries):
        # the j-th threshold lies in band j of n-1: (j + U(lo, hi)) / (n - 1) of the depth range
        t = np.array([(j + rng.uniform(lo, hi)) / (n - 1) for j in range(n - 1)]) * dmax
        groups = np.searchsorted(t, depths, side="left").astype(np.int64)  # depth <= t_j -> group j
        if _fractions_ok(groups, area, n, min_fraction):
            return groups
    # area-balanced fallback: thresholds at random area quantiles of the depth order
    order = np.argsort(depths, kind="stable")
    cum = np.cumsum(area[order]) / area.sum()
    for _ in range(tries):
        q = np.sort(rng.uniform(0.15, 0.85, size=n - 1)) if n > 2 else np.array([rng.uniform(lo, hi)])
        cut = np.searchsorted(cum, q, side="left")
        groups = np.zeros(len(depths), dtype=np.int64)
        for j, c in enumerate(cut):
            groups[order[c + 1:]] = j + 1
        if _fractions_ok(groups, area, n, min_fraction):
            return groups
    return None


def random_subset_groups(area: np.ndarray, n: int, rng: np.random.Generator, *, min_fraction: float = 0.05,
                         tries: int = 20) -> np.ndarray | None:
    """Assign segments to ``n`` groups at random (for n = 2: a random subset of segments is in
    focus in frame A and the rest in frame B, as in the Hourglass paper). Every group holds at
    least ``min_fraction`` of the pixels; returns None if no assignment works in ``tries``."""
    k = len(area)
    if k < n:
        return None
    for _ in range(tries):
        if n == 2:
            size = int(rng.integers(1, k))  # 1..k-1 segments in the subset
            groups = np.ones(k, dtype=np.int64)
            groups[rng.choice(k, size=size, replace=False)] = 0
        else:
            groups = rng.integers(0, n, size=k)
            groups[rng.choice(k, size=n, replace=False)] = np.arange(n)  # none empty
        if _fractions_ok(groups, area, n, min_fraction):
            return groups
    return None


def group_maps(labels: np.ndarray, seg_group: np.ndarray, n: int) -> np.ndarray:
    """Binary focus maps (n, H, W) float32: map k is 1 where the segment's group is k."""
    g = np.asarray(seg_group)[labels]
    return (g[None] == np.arange(n)[:, None, None]).astype(np.float32)


__all__ = [
    "relabel", "smooth_field", "random_smooth_labels", "alpha_to_labels", "segment_areas", "segment_depths",
    "threshold_groups", "random_subset_groups", "group_maps",
]
