"""Guided filtering fusion (GFF): S. Li, X. Kang, J. Hu, "Image Fusion With Guided Filtering",
IEEE TIP 22(7), 2013.

Two-scale decomposition: base B_n = I_n * Z (31x31 average filter), detail D_n = I_n - B_n.
Saliency S_n = |I_n * L| * g (3x3 Laplacian, Gaussian r_g = 5, sigma_g = 5); binary weights
P_n = [S_n is the largest]; refined weights W_B = GF(P_n, I_n, r1, eps1), W_D = GF(P_n, I_n, r2, eps2),
normalised over n; fused = sum W_B B_n + sum W_D D_n. Paper parameters: r1 = 45, eps1 = 0.3,
r2 = 7, eps2 = 1e-6 (images in [0, 1]).

Colour frames: saliency and the guidance image use the luminance (0.299/0.587/0.114) of each frame;
the weights are applied to every channel.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from mfif.decision import guided_filter, luminance, normalize_weights
from mfif.result import FusionResult


@dataclass
class GFFOptions:
    base_size: int = 31
    saliency_radius: int = 5
    saliency_sigma: float = 5.0
    base_radius: int = 45
    base_eps: float = 0.3
    detail_radius: int = 7
    detail_eps: float = 1e-6


_LAPLACIAN = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], np.float32)


def guided_filtering_fusion(stack: np.ndarray, options: GFFOptions | None = None) -> FusionResult:
    """Fuse (N, C, H, W) frames with GFF; returns fused (C, H, W) and the base-layer weights."""
    o = options or GFFOptions()
    n, c, h, w = stack.shape
    stack = stack.astype(np.float32, copy=False)
    grey = luminance(stack)
    k = 2 * o.saliency_radius + 1
    saliency = np.stack([
        cv2.GaussianBlur(np.abs(cv2.filter2D(g, -1, _LAPLACIAN, borderType=cv2.BORDER_REPLICATE)),
                         (k, k), o.saliency_sigma, borderType=cv2.BORDER_REPLICATE)
        for g in grey])
    choice = np.argmax(saliency, axis=0)
    binary = (np.arange(n)[:, None, None] == choice[None]).astype(np.float64)
    w_base = normalize_weights(np.stack([guided_filter(grey[i], binary[i], o.base_radius, o.base_eps) for i in range(n)]))
    w_detail = normalize_weights(np.stack([guided_filter(grey[i], binary[i], o.detail_radius, o.detail_eps) for i in range(n)]))
    fused = np.zeros((c, h, w), np.float64)
    for i in range(n):
        for ch in range(c):
            img = stack[i, ch]
            base = cv2.blur(img, (o.base_size, o.base_size), borderType=cv2.BORDER_REPLICATE)
            fused[ch] += w_base[i] * base + w_detail[i] * (img - base)
    return FusionResult(fused=np.clip(fused, 0.0, 1.0).astype(np.float32), weights=w_base.astype(np.float32),
                        decision=choice.astype(np.int64), maps={"detail_weights": w_detail.astype(np.float32)})
