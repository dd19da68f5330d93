"""Laplacian-pyramid fusion (Burt & Adelson 1983; detail selection as in Burt & Kolczynski 1993).

Each frame is decomposed into a Laplacian pyramid; at every detail level each pixel takes the
coefficient of the frame with the largest absolute value (summed over channels, so all channels
come from one frame), followed by a consistency check: a 3x3 majority vote on the choice map.
The coarsest (base) level is the mean of the frames.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from mfif.result import FusionResult


@dataclass
class LaplacianOptions:
    """levels: number of detail levels (0 = automatic: as many as leave a base of >= 8 pixels,
    at most 6). consistency: radius of the majority vote on the choice map (0 disables)."""

    levels: int = 0
    consistency: int = 1


def _auto_levels(h: int, w: int) -> int:
    return int(max(1, min(6, np.floor(np.log2(min(h, w) / 8.0)))))


def _pyramid(image: np.ndarray, levels: int) -> list[np.ndarray]:
    """(H, W, C) float32 -> [L_0 (finest), ..., L_{levels-1}, base]."""
    gaussian = [image]
    for _ in range(levels):
        gaussian.append(cv2.pyrDown(gaussian[-1]))
    pyramid = []
    for fine, coarse in zip(gaussian[:-1], gaussian[1:]):
        up = cv2.pyrUp(coarse, dstsize=(fine.shape[1], fine.shape[0]))
        pyramid.append(fine - up.reshape(fine.shape))
    pyramid.append(gaussian[-1])
    return pyramid


def _collapse(pyramid: list[np.ndarray]) -> np.ndarray:
    image = pyramid[-1]
    for detail in reversed(pyramid[:-1]):
        up = cv2.pyrUp(image, dstsize=(detail.shape[1], detail.shape[0])).reshape(detail.shape)
        image = detail + up
    return image


def majority_vote(choice: np.ndarray, n_sources: int, radius: int, activity: np.ndarray | None = None) -> np.ndarray:
    """Replace each label by the most frequent label in its (2r+1)^2 window.

    Ties are broken by the window sum of ``activity`` (N, H, W) when given, so the result does not
    depend on the order of the sources.
    """
    if radius <= 0:
        return choice
    k = 2 * radius + 1
    counts = np.stack([
        cv2.boxFilter((choice == i).astype(np.float32), -1, (k, k), normalize=False, borderType=cv2.BORDER_REFLECT)
        for i in range(n_sources)]).astype(np.float64)
    if activity is not None:
        local = np.stack([cv2.boxFilter(a.astype(np.float32), -1, (k, k), borderType=cv2.BORDER_REFLECT)
                          for a in activity]).astype(np.float64)
        counts += 0.5 * local / (local.max(axis=0, keepdims=True) + 1e-30)  # < 1: only breaks ties
    return np.argmax(counts, axis=0)


def laplacian_pyramid_fusion(stack: np.ndarray, options: LaplacianOptions | None = None) -> FusionResult:
    """Fuse (N, C, H, W) frames with a Laplacian pyramid; returns fused (C, H, W)."""
    options = options or LaplacianOptions()
    n, c, h, w = stack.shape
    levels = options.levels or _auto_levels(h, w)
    pyramids = [_pyramid(np.ascontiguousarray(np.moveaxis(frame, 0, -1)), levels) for frame in stack]
    fused_pyramid = []
    finest_choice = None
    for level in range(levels):
        coeffs = np.stack([p[level].reshape(p[level].shape[0], p[level].shape[1], -1) for p in pyramids])
        activity = np.abs(coeffs).sum(axis=-1)
        choice = majority_vote(np.argmax(activity, axis=0), n, options.consistency, activity)
        if level == 0:
            finest_choice = choice
        picked = np.take_along_axis(coeffs, choice[None, :, :, None], axis=0)[0]
        fused_pyramid.append(picked.reshape(pyramids[0][level].shape))
    fused_pyramid.append(np.mean([p[-1] for p in pyramids], axis=0, dtype=np.float64).astype(np.float32))
    fused = _collapse(fused_pyramid).reshape(h, w, c)
    fused = np.clip(np.moveaxis(fused, -1, 0), 0.0, 1.0).astype(np.float32)
    return FusionResult(fused=fused, decision=finest_choice.astype(np.int64), info={"levels": levels})
