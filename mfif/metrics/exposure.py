"""Fusion metrics, multi-exposure family: Ma et al.'s MEF-SSIM, for any number of sources.

Keys: ``MEF_SSIM`` (3-scale model of the paper), ``MEF_SSIM_scale1`` (its finest scale = the
single-scale ``mef_ssim`` that many MEF papers report).

Inputs are grey images in [0, 255] (see :func:`mfif.metrics._common.to_grey_255`).

MEF-SSIM builds, for every 11x11 patch, a "desired" patch from the sources: each source patch x_k is
split into mean mu_k, contrast c_k = ||x_k - mu_k|| + 0.001 and structure (x_k - mu_k)/c_k; the
desired contrast is max_k c_k and the desired structure the weighted mean of the structures with
weights w_k proportional to (c_k/11)^p (+eps), where p = tan(pi R / 2) (at most 10) grows with the
structural consistency R = ||sum_k (x_k - mu_k)|| / sum_k ||x_k - mu_k||. The fused patch is compared
with it by the SSIM structure/contrast term (2 s_rf + C)/(s_r^2 + s_f^2 + C), C = (0.03*255)^2, with
Gaussian 11x11 (sigma 1.5) weights; the score is the mean over all patches ('valid' region).

Kede Ma's reference code loops over patches; here every patch quantity is expressed through local
(co)variances of the sources, so that the whole map is a handful of separable filterings:
||sum_k a_k (x_k - mu_k)||^2 = sum_kl a_k a_l S_kl with S_kl the box (co)variance sums, and the Gaussian
moments of the desired patch r = s * sum_k a_k (x_k - mu_k) are s^2 a^T G a and s a^T g_f with G, g_f
Gaussian-weighted (co)variances. Box sums of the (integer or dyadic) pixel values are exact, so the
structural consistency R is computed without round-off, and the (co)variances of constant patches are
exactly 0 as in the per-patch code. Agreement with the reference: ~1e-13 relative.
"""
from __future__ import annotations

import math

import numpy as np

from mfif.errors import InputError
from mfif.metrics._common import Metric, prepare
from mfif.metrics.structural import SharedResults, array_digest, filter_valid, flat_windows, gaussian_taps

__all__ = ["METRICS", "mef_ssim", "mef_ssim_scale1", "mef_ssim_scores"]

_WIN = 11
_K = 0.03
_C = (_K * 255.0) ** 2
_EPS = float(np.finfo(np.float64).eps)
_GAUSS = gaussian_taps(_WIN, 1.5)
_ONES = np.ones(_WIN)
_LEVEL_WEIGHTS = np.array([0.0448, 0.2856, 0.3001]) / (0.0448 + 0.2856 + 0.3001)


def _single_scale(seq: list[np.ndarray], fused: np.ndarray) -> float:
    """Single-scale MEF-SSIM (``mef_ssim`` of Ma et al.): mean of the quality map."""
    k_src = len(seq)
    n = float(_WIN * _WIN)
    pairs = [(i, j) for i in range(k_src) for j in range(i, k_src)]
    box1 = [filter_valid(x, _ONES) for x in seq]                       # sum over the patch
    box2 = {(i, j): filter_valid(seq[i] * seq[j], _ONES) for i, j in pairs}
    # Unnormalised box (co)variance sums S_ij = sum (x_i - mu_i)(x_j - mu_j), exact for dyadic data.
    s_box = {(i, j): (n * box2[i, j] - box1[i] * box1[j]) / n for i, j in pairs}

    def box(i, j):
        return s_box[(i, j) if i <= j else (j, i)]

    norms = [np.sqrt(np.maximum(box(i, i), 0.0)) for i in range(k_src)]    # ||x_k - mu_k||
    contrast = [nk + 0.001 for nk in norms]                                 # "ed" in the code
    total = sum(box(i, j) for i in range(k_src) for j in range(k_src))     # ||sum_k (x_k - mu_k)||^2
    numerator = np.sqrt(np.maximum(total, 0.0))
    denominator = sum(norms)
    consistency = (numerator + _EPS) / (denominator + _EPS)
    consistency[consistency > 1] = 1 - _EPS
    consistency[consistency < 0] = _EPS
    power = np.minimum(np.tan(math.pi / 2 * consistency), 10.0)
    weights = [(ck / _WIN) ** power + _EPS for ck in contrast]
    normaliser = sum(weights)
    coef = [w / normaliser / ck for w, ck in zip(weights, contrast)]        # a_k = w_k / ed_k
    max_contrast = np.maximum.reduce(contrast)

    # ||rBlock||^2 = sum_kl a_k a_l S_kl; the desired patch is rBlock scaled to norm max_contrast.
    r_norm2 = sum(coef[i] * coef[j] * box(i, j) for i in range(k_src) for j in range(k_src))
    r_norm2 = np.maximum(r_norm2, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(r_norm2 > 0, max_contrast / np.sqrt(r_norm2), 0.0)

    # Gaussian-weighted moments; (co)variances of constant patches are exactly 0 (as in the per-patch
    # reference code), not the round-off of E[xy] - E[x]E[y].
    flat = [norms[i] == 0 for i in range(k_src)]
    g1 = [filter_valid(x, _GAUSS) for x in seq]
    gf = filter_valid(fused, _GAUSS)
    flat_f = flat_windows(fused, _WIN)
    g_cov = {}
    for i, j in pairs:
        c = filter_valid(seq[i] * seq[j], _GAUSS) - g1[i] * g1[j]
        c[flat[i] | flat[j]] = 0.0
        g_cov[i, j] = c
    var_f = filter_valid(fused * fused, _GAUSS) - gf * gf
    var_f[flat_f] = 0.0
    var_r = sum(coef[i] * coef[j] * g_cov[(i, j) if i <= j else (j, i)]
                for i in range(k_src) for j in range(k_src)) * scale * scale
    cov_rf = 0.0
    for i in range(k_src):
        c = filter_valid(seq[i] * fused, _GAUSS) - g1[i] * gf
        c[flat[i] | flat_f] = 0.0
        cov_rf = cov_rf + coef[i] * c
    cov_rf = cov_rf * scale
    quality = (2.0 * cov_rf + _C) / (var_r + var_f + _C)
    return float(np.mean(quality))


def _downsample(x: np.ndarray) -> np.ndarray:
    """``imfilter(x, ones(2)/4, 'symmetric', 'same')`` then ``(1:2:end, 1:2:end)``: mean of each 2x2
    block x(i:i+1, j:j+1), the last row/column repeated past the edge."""
    p = np.pad(x, ((0, 1), (0, 1)), mode="symmetric")
    avg = 0.25 * (p[:-1, :-1] + p[1:, :-1] + p[:-1, 1:] + p[1:, 1:])
    return avg[::2, ::2]


_SCORES = SharedResults()  # MEF_SSIM and MEF_SSIM_scale1 share the finest scale


def mef_ssim_scores(sources, fused, *, levels: int = 3) -> list[float]:
    """MEF-SSIM quality of each scale (finest first), ``levels`` scales with 2x2-mean downsampling.

    Any number (>= 2) of sources. Images must be at least 11 * 2^(levels-1) pixels on their short side.
    """
    seq, f = prepare(sources, fused, n_sources=None)
    return list(_prepared_scores(seq, f, levels))


def _prepared_scores(seq: list[np.ndarray], f: np.ndarray, levels: int) -> tuple[float, ...]:
    need = _WIN * 2 ** (levels - 1)
    if min(f.shape) < need:
        raise InputError(f"MEF-SSIM with {levels} scale(s) needs images of at least {need}x{need} pixels, "
                         f"got {f.shape[1]}x{f.shape[0]}")

    def compute():
        scores, s, g = [], seq, f
        for level in range(levels):
            if level:
                s = [_downsample(x) for x in s]
                g = _downsample(g)
            scores.append(_single_scale(s, g))
        return tuple(scores)

    return _SCORES.get(("mef", levels, array_digest(*seq, f)), compute)


def mef_ssim(sources, fused, *, ground_truth=None) -> float:
    """``MEF_SSIM``: multi-scale MEF-SSIM, prod_l Q_l^{w_l} over 3 scales with
    w = [0.0448, 0.2856, 0.3001] / sum. Ideal 1. Any number (>= 2) of sources.

    Reference: K. Ma, K. Zeng, Z. Wang, "Perceptual quality assessment for multi-exposure image fusion",
    IEEE TIP 24(11), 2015 (``mef_ms_ssim.m``, as distributed with MEFB).
    """
    scores = mef_ssim_scores(sources, fused, levels=3)
    if min(scores) <= 0:
        raise InputError("MEF_SSIM is undefined: a scale has a non-positive quality (power of a "
                         "negative number); use MEF_SSIM_scale1")
    return float(np.prod(np.asarray(scores) ** _LEVEL_WEIGHTS))


def mef_ssim_scale1(sources, fused, *, ground_truth=None) -> float:
    """``MEF_SSIM_scale1``: single-scale MEF-SSIM (the finest scale of ``MEF_SSIM``; ``mef_ssim.m``).
    Ideal 1. Any number (>= 2) of sources.

    Reference: K. Ma, K. Zeng, Z. Wang, IEEE TIP 24(11), 2015.
    """
    seq, f = prepare(sources, fused, n_sources=None)
    # the finest scale of the 3-scale computation when that is cached (compute_metrics asks for both)
    cached = _SCORES.peek(("mef", 3, array_digest(*seq, f)))
    if cached is not None:
        return cached[0]
    return _prepared_scores(seq, f, 1)[0]


METRICS: tuple[Metric, ...] = (
    Metric(name="MEF_SSIM", function=mef_ssim, higher_is_better=True,
           reference="Ma, Zeng & Wang 2015, mef_ms_ssim.m (3 scales)", n_sources=None),
    Metric(name="MEF_SSIM_scale1", function=mef_ssim_scale1, higher_is_better=True,
           reference="Ma, Zeng & Wang 2015, mef_ssim.m", n_sources=None),
)
