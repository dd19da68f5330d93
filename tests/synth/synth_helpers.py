"""Helpers to generate tiny photos, label maps and folders for the synth tests."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def make_photo(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A textured (H, W, 3) uint8 RGB image: smooth colour gradients plus fine texture."""
    low = cv2.resize(rng.random((4, 4, 3)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    tex = rng.random((h, w, 1)).astype(np.float32)
    img = 0.15 + 0.5 * np.clip(low, 0, 1) + 0.35 * tex
    return np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)


def make_labels(rng: np.random.Generator, h: int, w: int, k: int = 4) -> np.ndarray:
    """A label map of ``k`` blocky regions (uint8, values 1..k)."""
    small = rng.integers(1, k + 1, size=(4, 4)).astype(np.uint8)
    small.ravel()[:k] = np.arange(1, k + 1)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)


def write_png(path: Path, arr: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if arr.ndim == 3:
        arr = arr[..., ::-1]
    assert cv2.imwrite(str(path), arr)
    return path
