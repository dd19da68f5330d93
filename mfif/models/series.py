"""More than two frames with a pairwise method: fold the frames in series, in input order."""
from __future__ import annotations

from typing import Callable

import numpy as np


def series_fold(stack: np.ndarray, fuse_pair: Callable[[np.ndarray], dict]) -> tuple[np.ndarray, np.ndarray, dict]:
    """Fuse frames 0 and 1, then the result with frame 2, ...; the per-frame weights compose.

    Args:
        stack: (N, C, H, W), N >= 2.
        fuse_pair: (2, C, H, W) -> dict with ``"weights"`` (2, H, W) and ``"fused"`` (C, H, W).

    Returns:
        (the last fused image (C, H, W), the composed weights (N, H, W) float32, the last step's dict).
    """
    n = stack.shape[0]
    current = stack[0]
    weights = np.zeros((n,) + stack.shape[2:], np.float32)
    weights[0] = 1.0
    last: dict = {}
    for k in range(1, n):
        last = fuse_pair(np.stack([current, stack[k]]))
        wa, wb = last["weights"]
        weights[:k] *= wa
        weights[k] = wb
        current = last["fused"]
    return current, weights, last
