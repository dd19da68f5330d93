"""Guided filtering fusion (GFF): S. Li, X. Kang, J. Hu, "Image Fusion With Guided Filtering",
IEEE TIP 22(7), 2013.

Two-scale decomposition: base B_n = I_n * Z (31x31 average filter), detail D_n = I_n - B_n.
Saliency S_n = |I_n * L| * g (3x3 Laplacian, Gaussian r_g = 5, sigma_g = 5); binary weights
P_n = [S_n is the largest]; refined weights W_B = GF(P_n, I_n, r1, eps1), W_D = GF(P_n, I_n, r2, eps2),
normalised over n; fused = sum W_B B_n + sum W_D D_n. Paper parameters: r1 = 45, eps1 = 0.3,
r2 = 7, eps2 = 1e-6 (images in [0, 1]).

Colour frames: saliency and the guidance image use the luminance (0.299/0.587/0.114) of each frame;
the weights are applied to every channel.

Stacks of more than two frames (``stack_rule``): the saliency S_n above, then the N-frame rule of
:mod:`mfif.stack_rule` (argmax, label consistency, multiresolution spline) instead of the guided
filters, whose 45-pixel base weights mix several frames around every edge of a long stack.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from mfif.decision import guided_filter, luminance, normalize_weights
from mfif.result import FusionResult
from mfif.stack_rule import nframe_fusion, use_nframe_rule


@dataclass
class GFFOptions:
    base_size: int = 31
    saliency_radius: int = 5
    saliency_sigma: float = 5.0
    base_radius: int = 45
    base_eps: float = 0.3
    detail_radius: int = 7
    detail_eps: float = 1e-6
    stack_rule: str = "auto"  # mfif.stack_rule: "auto" = the N-frame rule for more than 2 frames


_LAPLACIAN = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], np.float32)


def guided_filtering_fusion(stack: np.ndarray, options: GFFOptions | None = None) -> FusionResult:
    """Fuse (N, C, H, W) frames with GFF; returns fused (C, H, W) and the base-layer weights."""
    o = options or GFFOptions()
    n, c, h, w = stack.shape
    stack = stack.astype(np.float32, copy=False)
    if use_nframe_rule(o.stack_rule, n):
        return nframe_fusion(stack, gff_stack_measure(o))
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


def _saliency(grey: np.ndarray, o: GFFOptions) -> np.ndarray:
    k = 2 * o.saliency_radius + 1
    return cv2.GaussianBlur(np.abs(cv2.filter2D(grey, -1, _LAPLACIAN, borderType=cv2.BORDER_REPLICATE)),
                            (k, k), o.saliency_sigma, borderType=cv2.BORDER_REPLICATE)


def gff_stack_measure(o: GFFOptions):
    """The focus measure of the N-frame rule: (C, H, W) frame -> (H, W) saliency S of its
    luminance (reach: 1 + 3 saliency_sigma pixels, the Gaussian's truncation)."""
    return lambda frame: _saliency(luminance(frame.astype(np.float32, copy=False)), o)


def guided_filtering_stream(frames, options: GFFOptions | None = None, *, tile: int = 1024) -> FusionResult:
    """Running-reduction form of :func:`guided_filtering_fusion` for long stacks of large frames.

    ``frames``: ``len`` and ``frames[i]`` -> (C, H, W). Pass 1 keeps the best saliency and its frame
    index (argmax, ties to the lowest index as ``np.argmax``); pass 2 accumulates, tile by tile
    (``tile`` pixels plus the filters' reach, so the values are those of one pass), the clipped
    refined weights and the weighted base/detail layers; the normalised sums equal the
    all-in-memory result up to float32 rounding. Memory: about 70 bytes per pixel whatever N is.
    Returns fused and the decision map (no per-frame weights: they would grow with N)."""
    from mfif.tiling import local_tiles

    o = options or GFFOptions()
    n = len(frames)
    if use_nframe_rule(o.stack_rule, n):
        return nframe_fusion(frames, gff_stack_measure(o))
    best = choice = None
    for i in range(n):
        sal = _saliency(luminance(frames[i].astype(np.float32, copy=False)), o)
        if best is None:
            best, choice = sal, np.zeros(sal.shape, np.int32)
        else:
            better = sal > best
            best[better] = sal[better]
            choice[better] = i
        del sal
    del best
    eps = 1e-12
    h, w = choice.shape
    halo = max(2 * max(o.base_radius, o.detail_radius), o.base_size // 2) + 2
    acc_b = acc_d = tot_b = tot_d = total = None
    for i in range(n):
        frame = frames[i].astype(np.float32, copy=False)
        if acc_b is None:
            c = frame.shape[0]
            acc_b, acc_d = np.zeros((c, h, w), np.float32), np.zeros((c, h, w), np.float32)
            tot_b, tot_d = np.zeros((h, w), np.float32), np.zeros((h, w), np.float32)
            total = np.zeros((c, h, w), np.float32)
        total += frame
        grey = luminance(frame)
        for core, ext, inner in local_tiles(h, w, halo, tile):
            binary = (choice[ext] == i).astype(np.float64)
            if not binary.any():
                # all-zero map: the guided filter of 0 is 0, nothing to add
                continue
            g = grey[ext]
            wb = np.clip(guided_filter(g, binary, o.base_radius, o.base_eps), 0.0, None)[inner].astype(np.float32)
            wd = np.clip(guided_filter(g, binary, o.detail_radius, o.detail_eps), 0.0, None)[inner].astype(np.float32)
            f = frame[(slice(None),) + ext]
            base = np.stack([cv2.blur(ch, (o.base_size, o.base_size), borderType=cv2.BORDER_REPLICATE) for ch in f])
            base, f = base[(slice(None),) + inner], f[(slice(None),) + inner]
            acc_b[(slice(None),) + core] += wb * base
            acc_d[(slice(None),) + core] += wd * (f - base)
            tot_b[core] += wb
            tot_d[core] += wd
        del frame, grey
    # normalise in place (large frames); where all weights are 0 the weights are uniform, and as the
    # base layer is linear, mean(base_i) = base(mean of the frames)
    total /= n
    mean_base = np.stack([cv2.blur(ch, (o.base_size, o.base_size), borderType=cv2.BORDER_REPLICATE) for ch in total])
    acc_b /= np.maximum(tot_b, eps)
    low = tot_b <= eps
    if low.any():
        acc_b[:, low] = mean_base[:, low]
    acc_d /= np.maximum(tot_d, eps)
    low = tot_d <= eps
    if low.any():
        total -= mean_base
        acc_d[:, low] = total[:, low]
    del total, mean_base, tot_b, tot_d, low
    acc_b += acc_d
    del acc_d
    np.clip(acc_b, 0.0, 1.0, out=acc_b)
    return FusionResult(fused=acc_b, decision=choice.astype(np.int64))


def gff_tile_plan(options: GFFOptions, shape: tuple[int, ...]):
    """Tile plan (:mod:`mfif.tiling`): saliency 1 + r_g, then the guided filters 2 max(r1, r2)."""
    import math

    from mfif.stack_rule import nframe_tile_plan
    from mfif.tiling import TilePlan

    o = options
    if use_nframe_rule(o.stack_rule, shape[0]):  # the N-frame rule: per-pixel argmax of a local measure
        return nframe_tile_plan(gff_stack_measure(o), 1 + o.saliency_radius + math.ceil(3 * o.saliency_sigma),
                                o, shape)
    halo = 1 + o.saliency_radius + 2 * max(o.base_radius, o.detail_radius) + 2
    return TilePlan(halo=max(halo, o.base_size // 2 + 1), options=o)
