"""Small synthetic stacks for the app's tests: a random texture, each frame sharp in one vertical
band and blurred (Gaussian, sigma 4) elsewhere."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def write_test_stack(folder: Path, *, n: int = 3, height: int = 160, width: int = 240, seed: int = 1) -> list[Path]:
    import cv2

    from mfif.io import write_image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    sharp = cv2.GaussianBlur(rng.random((height, width, 3)).astype(np.float32), (0, 0), 1.5)
    sharp = (sharp - sharp.min()) / (sharp.max() - sharp.min())
    blurred = cv2.GaussianBlur(sharp, (0, 0), 4)
    paths = []
    for k in range(n):
        frame = blurred.copy()
        band = slice(k * width // n, (k + 1) * width // n)
        frame[:, band] = sharp[:, band]
        paths.append(write_image(folder / f"frame{k}.png", np.moveaxis(frame, -1, 0)))
    return paths
