"""Hand-made focus measures on grey images (H, W) float in [0, 1]."""
from __future__ import annotations

import cv2
import numpy as np


def modified_laplacian(grey: np.ndarray, step: int = 1) -> np.ndarray:
    """ML(x, y) = |2I - I(x-s, y) - I(x+s, y)| + |2I - I(x, y-s) - I(x, y+s)| (Nayar & Nakagawa 1994),
    replicated borders. (H, W) -> (H, W) float32."""
    img = np.asarray(grey, dtype=np.float32)
    p = np.pad(img, step, mode="edge")
    c = p[step:-step, step:-step]
    horiz = np.abs(2 * c - p[step:-step, : -2 * step] - p[step:-step, 2 * step:])
    vert = np.abs(2 * c - p[: -2 * step, step:-step] - p[2 * step:, step:-step])
    return horiz + vert


def sum_modified_laplacian(grey: np.ndarray, radius: int = 3, step: int = 1, threshold: float = 0.0) -> np.ndarray:
    """Sum-modified-Laplacian: the sum of ML values >= threshold over a (2r+1)^2 window.
    (H, W) -> (H, W) float32."""
    ml = modified_laplacian(grey, step)
    if threshold > 0:
        ml = np.where(ml >= threshold, ml, 0.0).astype(np.float32)
    k = 2 * radius + 1
    return cv2.boxFilter(ml, -1, (k, k), normalize=False, borderType=cv2.BORDER_REFLECT)


def local_variance(grey: np.ndarray, radius: int = 3) -> np.ndarray:
    """Variance over a (2r+1)^2 window (reflected borders). (H, W) -> (H, W) float32."""
    img = np.asarray(grey, dtype=np.float32)
    k = 2 * radius + 1
    mean = cv2.boxFilter(img, -1, (k, k), borderType=cv2.BORDER_REFLECT)
    mean_sq = cv2.boxFilter(img * img, -1, (k, k), borderType=cv2.BORDER_REFLECT)
    return np.maximum(mean_sq - mean * mean, 0.0)
