"""Average fusion: the pixel-wise mean of the frames (the baseline every method must beat)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mfif.result import FusionResult


@dataclass
class AverageOptions:
    """No options."""


def average_fusion(stack: np.ndarray, options: AverageOptions | None = None) -> FusionResult:
    """Mean of the frames.

    Args:
        stack: (N, C, H, W) float32 in [0, 1].
    Returns:
        FusionResult with fused (C, H, W) and uniform weights (N, H, W).
    """
    n, _, h, w = stack.shape
    fused = stack.astype(np.float64).mean(axis=0).astype(np.float32)
    return FusionResult(fused=fused, weights=np.full((n, h, w), 1.0 / n, np.float32))


def average_stream(frames, options: AverageOptions | None = None) -> FusionResult:
    """Running-sum form of :func:`average_fusion` (``frames``: ``len`` and ``frames[i]`` -> (C, H, W));
    one frame in memory at a time, no weight maps kept."""
    n = len(frames)
    acc = None
    for i in range(n):
        frame = frames[i]
        acc = frame.astype(np.float64) if acc is None else acc + frame
    return FusionResult(fused=(acc / n).astype(np.float32))


def average_tile_plan(options: AverageOptions, shape: tuple[int, ...]):
    """Tile plan (:mod:`mfif.tiling`): per pixel, no context."""
    from mfif.tiling import TilePlan

    return TilePlan(halo=0, options=options)
