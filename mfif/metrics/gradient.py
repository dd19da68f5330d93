"""Fusion metrics, image-feature family (Liu et al. 2012 taxonomy): gradient, multi-scale edge,
spatial-frequency and phase-congruency metrics: Q_G, Q_G_yl, Q_ABF_vifb, Q_M, Q_SF, Q_P.

Each metric reproduces the MATLAB code the field uses (``shared/refmetrics/NOTES.md``):
Zheng Liu's toolbox (``metricXydeas``, ``metricPWW``, ``metricZheng``, ``metricZhao``; TPAMI
2012 survey), Yu Liu's corrected ``metricXydeas`` (MFIF-Metrics, 2024) and VIFB's ``metricsQabf``.
Images arrive as grey float64 in [0, 255] via :func:`mfif.metrics._common.prepare`; no metric
here rescales them further. ``filter2(h, x, 'same')`` = correlation with zero padding.
"""
from __future__ import annotations

import cv2
import numpy as np

from mfif.errors import InputError
from mfif.metrics._common import Metric, prepare
from mfif.metrics.phase_congruency import phase_congruency

_BUMP = 1e-5  # ZL's guard against zero denominators


# ----------------------------------------------------------------------------------------------
# Petrovic / Xydeas gradient preservation (Q_G, Q_G_yl, Q_ABF_vifb)


def _sobel(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``filter2`` (correlation, zero padding) with [-1 0 1;-2 0 2;-1 0 1] and its transpose
    [-1 -2 -1;0 0 0;1 2 1]. Returns (sx, sy); exact on integer images."""
    p = np.pad(image, 1)
    dx = p[:, 2:] - p[:, :-2]  # (H+2, W)
    sx = dx[:-2] + 2 * dx[1:-1] + dx[2:]
    dy = p[2:] - p[:-2]  # (H, W+2)
    sy = dy[:, :-2] + 2 * dy[:, 1:-1] + dy[:, 2:]
    return sx, sy


def _strength_orientation_zl(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ZL: g = sqrt(sx^2 + sy^2), alpha = atan(sy / sx) with sx == 0 replaced by 1e-5."""
    sx, sy = _sobel(image)
    g = np.sqrt(sx * sx + sy * sy)
    sx = sx + (sx == 0) * _BUMP
    return g, np.arctan(sy / sx)


def _xydeas_maps(a, b, f, *, paper_orientation: bool, constants):
    """Per-pixel Q_AF, Q_BF and weights w_A, w_B of ``metricXydeas`` (ZL or YL variant).

    Reproduces the in-place bumps of the MATLAB code: g_F gets 1e-5 at zeros after the A term's
    ratio g_F/g_A, so the B term sees the bumped g_F.
    """
    g_f, a_f = _strength_orientation_zl(f)
    g_1, a_1 = _strength_orientation_zl(a)
    g_2, a_2 = _strength_orientation_zl(b)
    gama1, k1, delta1, gama2, k2, delta2 = constants

    def one(g_s, a_s, g_f):
        bimap = g_s > g_f
        g_s = g_s + (g_s == 0) * _BUMP
        ratio1 = g_f / g_s
        g_f = g_f + (g_f == 0) * _BUMP
        ratio2 = g_s / g_f
        g_rel = np.where(bimap, ratio1, ratio2)
        if paper_orientation:
            a_rel = 1 - np.abs(a_s - a_f) * 2 / np.pi
        else:
            a_rel = np.abs(np.abs(a_s - a_f) - np.pi / 2) * 2 / np.pi
        q = (gama1 / (1 + np.exp(k1 * (g_rel - delta1)))) * (gama2 / (1 + np.exp(k2 * (a_rel - delta2))))
        return q, g_s, g_f

    q_af, w_a, g_f = one(g_1, a_1, g_f)
    q_bf, w_b, g_f = one(g_2, a_2, g_f)
    return q_af, q_bf, w_a, w_b


def gradient_preservation_zl(sources, fused, *, ground_truth=None) -> float:
    """``Q_G``: Xydeas & Petrovic 2000 gradient-based metric as in ZL ``metricXydeas``.

    Sobel strength g and orientation alpha = atan(sy/sx); relative strength G = min/max ratio,
    ZL's orientation term ``A = | |alpha_s - alpha_F| - pi/2 | * 2/pi``; sigmoids
    Gamma_g = 1, kappa_g = -10, sigma_g = 0.5 and Gamma_a = 1, kappa_a = -20, sigma_a = 0.75;
    ``Q_sF = Q_g Q_a``; weights w = g (zeros -> 1e-5). ZL pools per pixel::

        Q_G = mean( (Q_AF w_A + Q_BF w_B) / (w_A + w_B) )

    Identical inputs give ``(1 + e^-5)^-2`` = 0.98666 (not 1: both sigmoids are 0.9933 at
    G = A = 1), everywhere, flat areas included. Always finite (1e-5 guards).
    For published multi-focus tables use ``Q_G_yl``.
    """
    (a, b), f = prepare(sources, fused, n_sources=2)
    q_af, q_bf, w_a, w_b = _xydeas_maps(a, b, f, paper_orientation=False,
                                        constants=(1.0, -10.0, 0.5, 1.0, -20.0, 0.75))
    return float(np.mean((q_af * w_a + q_bf * w_b) / (w_a + w_b)))


def gradient_preservation_yl(sources, fused, *, ground_truth=None) -> float:
    """``Q_G_yl``: Petrovic's Q^{AB/F} (Xydeas & Petrovic 2000) as corrected by Yu Liu (MFIF-Metrics).

    Same Sobel strength/orientation as ZL; ``A = 1 - |alpha_s - alpha_F| * 2/pi``;
    Gamma_g = 0.9994, kappa_g = -15, sigma_g = 0.5; Gamma_a = 0.9879, kappa_a = -22,
    sigma_a = 0.8; global pooling::

        Q_G_yl = sum(Q_AF w_A + Q_BF w_B) / sum(w_A + w_B)

    Identical inputs give ``0.9994 / (1 + e^-7.5) * 0.9879 / (1 + e^-4.4)`` = 0.97479.
    Always finite (1e-5 guards on the weights). This is the Q_G of published MFIF tables.
    """
    (a, b), f = prepare(sources, fused, n_sources=2)
    q_af, q_bf, w_a, w_b = _xydeas_maps(a, b, f, paper_orientation=True,
                                        constants=(0.9994, -15.0, 0.5, 0.9879, -22.0, 0.8))
    return float(np.sum(q_af * w_a + q_bf * w_b) / np.sum(w_a + w_b))


def gradient_preservation_vifb(sources, fused, *, ground_truth=None) -> float:
    """``Q_ABF_vifb``: Petrovic's Q^{AB/F} as VIFB's ``metricsQabf`` computes it.

    Constants as ``Q_G_yl``; Sobel by ``conv2`` (true convolution); alpha = pi/2 where the
    x response is 0; quirk reproduced: where g_s == g_F the relative strength is g_F itself
    (0 when both are 0). ``sum(Q_AF g_A + Q_BF g_B) / sum(g_A + g_B)`` with unguarded weights:
    raises InputError when both sources have no gradient at all (0/0). Because of the quirk,
    identical inputs give ``0.9994 * 0.9879 / (1 + e^-4.4)`` = 0.97533 (the strength sigmoid
    saturates), slightly above Q_G_yl's 0.97479.

    VIFB converts with ``255 * im2double(double(x))``; ``im2double`` leaves doubles unchanged, so
    all three images enter on a [0, 65025] scale. Ratios and angles do not see it, but the
    g_s == g_F quirk does (the relative strength becomes 255 g_F, pushing its sigmoid further
    into saturation, ~5e-10 relative on our cases); reproduced.
    """
    (a, b), f = prepare(sources, fused, n_sources=2)
    a, b, f = 255.0 * a, 255.0 * b, 255.0 * f
    tg, kg, dg, ta, ka, da = 0.9994, -15.0, 0.5, 0.9879, -22.0, 0.8

    def strength_orientation(x):
        sx, sy = _sobel(x)
        sx = -sx  # conv2 with [-1 0 1;-2 0 2;-1 0 1] flips the correlation's sign; sy keeps it
        g = np.sqrt(sx**2 + sy**2)
        zero = sx == 0
        alpha = np.where(zero, np.pi / 2, np.arctan(sy / np.where(zero, 1.0, sx)))
        return g, alpha

    g_a, al_a = strength_orientation(a)
    g_b, al_b = strength_orientation(b)
    g_f, al_f = strength_orientation(f)

    def q(g_s, al_s):
        with np.errstate(divide="ignore", invalid="ignore"):
            g_rel = np.where(g_s > g_f, g_f / g_s, np.where(g_s == g_f, g_f, g_s / g_f))
        a_rel = 1 - np.abs(al_s - al_f) / (np.pi / 2)
        return (tg / (1 + np.exp(kg * (g_rel - dg)))) * (ta / (1 + np.exp(ka * (a_rel - da))))

    deno = np.sum(g_a + g_b)
    if deno == 0:
        raise InputError("Q_ABF_vifb is undefined: neither source has any gradient (0/0)")
    return float(np.sum(q(g_a, al_a) * g_a + q(g_b, al_b) * g_b) / deno)


# ----------------------------------------------------------------------------------------------
# Q_M: Wang & Liu 2008 multi-scale (Haar) edge preservation


def _haar_step(x: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """One orthonormal Haar analysis step along ``axis`` on non-overlapping pairs
    (matlabPyrTools ``corrDn`` with [1 1]/sqrt(2), start 2, step 2: an odd last sample is dropped)."""
    n = (x.shape[axis] // 2) * 2
    even = np.take(x, np.arange(0, n, 2), axis=axis)
    odd = np.take(x, np.arange(1, n, 2), axis=axis)
    c = 1 / np.sqrt(2)
    return even * c + odd * c, odd * c - even * c


def _haar_level(x: np.ndarray):
    """(lowpass, [three detail bands]) of one 2-D level (``buildWpyr(..., 'haar')``)."""
    lo, hi = _haar_step(x, 0)
    lolo, hilo = _haar_step(lo, 1)
    lohi, hihi = _haar_step(hi, 1)
    return lolo, (lohi, hilo, hihi)


def multiscale_edge_preservation(sources, fused, *, ground_truth=None) -> float:
    """``Q_M``: Wang & Liu 2008 multi-scale edge-preservation metric (ZL ``metricPWW``).

    Two-level orthonormal Haar pyramid of the raw [0, 255] images (matlabPyrTools ``buildWpyr``).
    Per level l, with the detail bands H, V, D: ``W = H^2 + V^2 + D^2``,
    ``EP_s = exp(-|H_s - H_F|) + exp(-|V_s - V_F|) + exp(-|D_s - D_F|)`` (0..3),
    ``Q_l = sum(EP_A W_A + EP_B W_B) / sum(W_A + W_B)``; ``Q_M = Q_1^(2/3) Q_2^(1/3)``
    (level 1 finest). Identical inputs give 3. Raises InputError for images smaller than 4x4
    and when both sources have no detail at some level (0/0, e.g. constant sources).
    """
    (a, b), f = prepare(sources, fused, n_sources=2)
    if min(f.shape) < 4:
        raise InputError(f"Q_M needs images of at least 4x4 pixels (2 Haar levels), got {f.shape[1]}x{f.shape[0]}")
    q = []
    for level in range(2):
        a, bands_a = _haar_level(a)
        b, bands_b = _haar_level(b)
        f, bands_f = _haar_level(f)
        w_a = sum(x * x for x in bands_a)
        w_b = sum(x * x for x in bands_b)
        ep_a = sum(np.exp(-np.abs(s - t)) for s, t in zip(bands_a, bands_f))
        ep_b = sum(np.exp(-np.abs(s - t)) for s, t in zip(bands_b, bands_f))
        den = np.sum(w_a + w_b)
        if den == 0:
            raise InputError(f"Q_M is undefined: neither source has any detail at Haar level {level + 1}")
        q.append(np.sum(ep_a * w_a + ep_b * w_b) / den)
    return float(q[0] ** (2 / 3) * q[1] ** (1 / 3))


# ----------------------------------------------------------------------------------------------
# Q_SF: Zheng et al. 2007 spatial-frequency error


def _directional_differences(x: np.ndarray):
    """Row, column, main-diagonal and secondary-diagonal first differences (ZL ``metricZheng``)."""
    return (x[:, :-1] - x[:, 1:],  # horizontal: x(i,j) - x(i,j+1), last column excluded
            x[:-1, :] - x[1:, :],  # vertical
            x[1:, 1:] - x[:-1, :-1],  # main diagonal: x(i,j) - x(i-1,j-1)
            x[1:, :-1] - x[:-1, 1:])  # secondary diagonal: x(i,j) - x(i-1,j+1)


def spatial_frequency_error(sources, fused, *, ground_truth=None) -> float:
    """``Q_SF``: Zheng et al. 2007 relative spatial-frequency error (ZL ``metricZheng``). Ideal 0.

    Four directional first differences (row, column, both diagonals, diagonals weighted
    sqrt(2)/2), each sum of squares divided by M*N: ``SF_F = sqrt(RF^2 + CF^2 + MDF^2 + SDF^2)``;
    the reference SF_R takes, per direction and pixel, ``max(|d_A|, |d_B|)``;
    ``Q_SF = (SF_F - SF_R) / SF_R``. Negative: the fused image has less activity than the
    sharpest source. Raises InputError when both sources are constant (SF_R = 0).
    """
    (a, b), f = prepare(sources, fused, n_sources=2)
    mn = f.size
    wd = np.sqrt(2) / 2
    weights = (1.0, 1.0, wd, wd)
    sf_f = 0.0
    for w, d in zip(weights, _directional_differences(f)):
        sf_f += np.sqrt(w * np.sum(d * d) / mn) ** 2
    sf_f = np.sqrt(sf_f)
    sf_r = 0.0
    for w, da, db in zip(weights, _directional_differences(a), _directional_differences(b)):
        g = np.maximum(np.abs(da), np.abs(db))
        sf_r += w * np.sum(g * g) / mn
    sf_r = np.sqrt(sf_r)
    if sf_r == 0:
        raise InputError("Q_SF is undefined: both sources are constant (reference SF is 0)")
    return float((sf_f - sf_r) / sf_r)


# ----------------------------------------------------------------------------------------------
# Q_P: Zhao et al. 2007 phase-congruency feature metric


def _gaussian_1d(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    x = np.arange(size) - (size - 1) / 2
    g = np.exp(-(x * x) / (2 * sigma * sigma))
    return g / g.sum()


_WINDOW = _gaussian_1d()


def _filter_same(stack: np.ndarray) -> np.ndarray:
    """``filter2(fspecial('gaussian', 11, 1.5), x, 'same')`` on each (H, W) of a (K, H, W) stack
    (separable, zero padding)."""
    return np.stack([cv2.sepFilter2D(m, cv2.CV_64F, _WINDOW, _WINDOW, borderType=cv2.BORDER_CONSTANT)
                     for m in stack])


def _feature_correlation(f1, f2, fmax, ff, mask1, mask2, mask3) -> float:
    """ZL ``correlation_coeffcient``: masked local correlation of F's feature map with the
    sources' and the max-source's, pixel-wise max of the three, summed over |mask3|."""
    c = 1e-4
    x1, x2, xm = f1 * mask1, f2 * mask2, fmax * mask3
    mu1, mu2, mum, muf = _filter_same(np.stack([x1, x2, xm, ff]))
    s1, s2, sm, sf, s1f, s2f, smf = _filter_same(
        np.stack([x1 * x1, x2 * x2, xm * xm, ff * ff, x1 * ff, x2 * ff, xm * ff]))
    s1 = s1 - mu1 * mu1
    s2 = s2 - mu2 * mu2
    sm = sm - mum * mum
    sf = sf - muf * muf
    s1f = s1f - mu1 * muf
    s2f = s2f - mu2 * muf
    smf = smf - mum * muf
    result = np.zeros((3,) + ff.shape)
    for i, (mask, sxf, sxx) in enumerate(((mask1, s1f, s1), (mask2, s2f, s2), (mask3, smf, sm))):
        result[i][mask] = (sxf[mask] + c) / (np.sqrt(np.abs(sxx[mask] * sf[mask])) + c)
    return float(np.sum(result.max(axis=0)) / np.count_nonzero(mask3))


def phase_congruency_feature(sources, fused, *, ground_truth=None) -> float:
    """``Q_P``: Zhao et al. 2007 phase-congruency metric (ZL ``metricZhao``, identical in YL).

    Phase congruency PC, maximum moment M and minimum moment m of A, B, F by ``myphasecong3``
    (:mod:`mfif.metrics.phase_congruency`), raw [0, 255] images. Masks pc > 0.1 for A, B and for
    the pixel-wise max-PC source. For each feature X in (PC, M, m): local correlation
    coefficients (Gaussian 11x11, sigma 1.5, C = 1e-4) of F's X with A's, B's and the max
    source's X (each masked), pixel-wise max, summed and divided by the max-mask area;
    ``Q_P = P_pc P_M P_m``. Identical inputs give a little less than 1 (0.96 on our textured
    test images): the masked source maps differ from the unmasked fused map near mask edges.

    Raises InputError when no source pixel has pc > 0.1 (empty mask: 0/0, e.g. constant sources)
    and for a constant fused image: the MATLAB code returns NaN there (0/0 in the moments), and
    with that hole patched the C = 1e-4 terms would score a flat map ~1 against anything.
    """
    (a, b), f = prepare(sources, fused, n_sources=2)
    if f.max() == f.min():
        raise InputError("Q_P is undefined for a constant fused image (no phase congruency; "
                         "the reference returns NaN)")
    pc, big_m, small_m = phase_congruency(np.stack([a, b, f]))
    pc1, pc2, pcf = pc
    mask = pc1 > pc2
    pc_max = np.where(mask, pc1, pc2)
    m_max = np.where(mask, big_m[0], big_m[1])
    mm_max = np.where(mask, small_m[0], small_m[1])
    thr = 0.1
    mask1, mask2, mask3 = pc1 > thr, pc2 > thr, pc_max > thr
    if not mask3.any():
        raise InputError("Q_P is undefined: no pixel of either source has phase congruency above 0.1")
    r_pc = _feature_correlation(pc1, pc2, pc_max, pcf, mask1, mask2, mask3)
    r_m = _feature_correlation(big_m[0], big_m[1], m_max, big_m[2], mask1, mask2, mask3)
    r_mm = _feature_correlation(small_m[0], small_m[1], mm_max, small_m[2], mask1, mask2, mask3)
    return r_pc * r_m * r_mm


_ZL = "Zheng Liu's imageFusionMetrics (TPAMI 2012 survey), "

METRICS: tuple[Metric, ...] = (
    Metric(name="Q_G", function=gradient_preservation_zl, higher_is_better=True, value_range=(0.0, 1.0),
           reference="Xydeas & Petrovic 2000; " + _ZL + "metricXydeas (ZL constants, per-pixel pooling)"),
    Metric(name="Q_G_yl", function=gradient_preservation_yl, higher_is_better=True, value_range=(0.0, 1.0),
           reference="Xydeas & Petrovic 2000; Yu Liu's corrected metricXydeas (MFIF-Metrics); "
                     "the Q_G of published MFIF tables"),
    Metric(name="Q_ABF_vifb", function=gradient_preservation_vifb, higher_is_better=True,
           reference="Xydeas & Petrovic 2000; VIFB metricsQabf"),
    Metric(name="Q_M", function=multiscale_edge_preservation, higher_is_better=True,
           reference="Wang & Liu 2008; " + _ZL + "metricPWW (2-level Haar)"),
    Metric(name="Q_SF", function=spatial_frequency_error, higher_is_better=True,
           reference="Zheng et al. 2007; " + _ZL + "metricZheng (ideal 0; negative = detail lost)"),
    Metric(name="Q_P", function=phase_congruency_feature, higher_is_better=True,
           reference="Zhao et al. 2007; " + _ZL + "metricZhao with myphasecong3"),
)
