"""Small image makers shared by tests (no ../shared needed)."""
from __future__ import annotations

import cv2
import numpy as np


def textured_image(h: int = 96, w: int = 128, channels: int = 3, seed: int = 0) -> np.ndarray:
    """A sharp, richly textured float32 (C, H, W) image in [0, 1]: smoothed noise at several scales."""
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, channels), np.float32)
    for scale, weight in ((1.0, 0.35), (3.0, 0.35), (9.0, 0.3)):
        noise = rng.random((h, w, channels)).astype(np.float32)
        noise = cv2.GaussianBlur(noise, (0, 0), scale).reshape(h, w, channels)
        noise = (noise - noise.min()) / (noise.max() - noise.min() + 1e-12)
        img += weight * noise
    img = (img - img.min()) / (img.max() - img.min())
    return np.ascontiguousarray(np.moveaxis(img, -1, 0))


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    return np.stack([cv2.GaussianBlur(ch, (0, 0), sigma, borderType=cv2.BORDER_REFLECT) for ch in image])


def complementary_pair(gt: np.ndarray, sigma: float = 2.5, axis: int = 1):
    """Sources A (left/top half sharp) and B (other half sharp) and the mask where A is sharp."""
    _, h, w = gt.shape
    mask = np.zeros((h, w), bool)
    if axis == 1:
        mask[:, : w // 2] = True
    else:
        mask[: h // 2] = True
    blurred = gaussian_blur(gt, sigma)
    a = np.where(mask, gt, blurred).astype(np.float32)
    b = np.where(mask, blurred, gt).astype(np.float32)
    return a, b, mask


def psnr(x: np.ndarray, ref: np.ndarray) -> float:
    mse = float(np.mean((np.asarray(x, np.float64) - ref) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)
