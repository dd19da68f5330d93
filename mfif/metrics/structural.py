"""Fusion metrics, structural family: SSIM and the SSIM-based fusion indices.

Keys: ``SSIM``, ``SSIM_vifb``, ``Q_S``, ``Q_S_yl``, ``Q_W_yl``, ``Q_C``, ``Q_C_yl``, ``Q_Y``, ``Q_Y_yl``.

All of them are built on Wang's local SSIM map between two images x, y,

    SSIM(x, y) = (2 mu_x mu_y + C1)(2 s_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(s_x^2 + s_y^2 + C2)),

with weighted local means ``mu`` and (co)variances ``s`` over a window, computed as in Zhou Wang's
``ssim_index.m`` (``E[xy] - E[x]E[y]``, ``'valid'`` windows only, map mean pooled). The inputs are grey
images in [0, 255] (see :func:`mfif.metrics._common.to_grey_255`).

Parameters follow the MATLAB code the reference values come from (``shared/refmetrics/NOTES.md``):
Zheng Liu's toolbox (TPAMI 2012 survey; unsuffixed keys), Yu Liu's corrected copies in MFIF-Metrics
(``_yl``) and VIFB (``_vifb``).

One deliberate difference from a literal port: the local variance of a window whose pixels are all
equal is set to exactly 0 (and the covariance of such a window with anything to 0). ``E[x^2] - E[x]^2``
leaves round-off there, which for the C = 2e-16 metrics (Q_C, Q_Y) would turn a 0/0 into an arbitrary
ratio; the MATLAB reference gets exact zeros on the flat windows of the reference cases, which is
what produces its NaN results for Q_C and Q_Y.

The module also holds the small filtering helpers the other SSIM-like families share.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from mfif.errors import InputError
from mfif.metrics._common import Metric, prepare

__all__ = [
    "METRICS",
    "ssim_mean",
    "ssim_sum_vifb",
    "piella_quality",
    "piella_quality_yl",
    "piella_weighted_quality_yl",
    "cvejic_quality",
    "cvejic_quality_yl",
    "yang_quality",
    "yang_quality_yl",
]

# --------------------------------------------------------------------------------------------
# filtering helpers (shared with perceptual, reference and exposure)
# --------------------------------------------------------------------------------------------


def gaussian_taps(size: int, sigma: float) -> np.ndarray:
    """1-D factor of MATLAB's ``fspecial('gaussian', size, sigma)``, normalised to sum 1.

    The 2-D window is ``outer(taps, taps)`` (equal to fspecial's up to round-off; none of the windows
    used here is large enough for fspecial's ``h < eps*max(h)`` cut to remove taps).
    """
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return g / g.sum()


def box_taps(size: int) -> np.ndarray:
    """1-D factor of the normalised box window ``ones(size)/size^2``."""
    return np.full(size, 1.0 / size)


def filter_valid(x: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """MATLAB ``filter2(outer(taps, taps), x, 'valid')``: separable correlation, no padding.

    Output size is ``size(x) - len(taps) + 1`` per axis.
    """
    k = len(taps)
    h, w = x.shape
    if h < k or w < k:
        raise InputError(f"image of {w}x{h} pixels is smaller than the {k}x{k} metric window")
    out = cv2.sepFilter2D(np.ascontiguousarray(x, dtype=np.float64), cv2.CV_64F, taps, taps,
                          anchor=(0, 0), borderType=cv2.BORDER_CONSTANT)
    return out[: h - k + 1, : w - k + 1]


def filter_same(x: np.ndarray, taps_rows: np.ndarray, taps_cols: np.ndarray | None = None) -> np.ndarray:
    """MATLAB ``filter2(outer(taps_rows, taps_cols), x, 'same')`` for odd kernels: correlation with zero
    padding, output the size of x."""
    if taps_cols is None:
        taps_cols = taps_rows
    return cv2.sepFilter2D(np.ascontiguousarray(x, dtype=np.float64), cv2.CV_64F,
                           np.asarray(taps_cols, dtype=np.float64), np.asarray(taps_rows, dtype=np.float64),
                           borderType=cv2.BORDER_CONSTANT)


def flat_windows(x: np.ndarray, size: int) -> np.ndarray:
    """Boolean 'valid' map: True where the size x size window starting there is constant."""
    kernel = np.ones((size, size), np.uint8)
    xs = np.ascontiguousarray(x, dtype=np.float64)
    hi = cv2.dilate(xs, kernel, anchor=(0, 0), borderType=cv2.BORDER_REPLICATE)
    lo = cv2.erode(xs, kernel, anchor=(0, 0), borderType=cv2.BORDER_REPLICATE)
    h, w = x.shape
    return (hi == lo)[: h - size + 1, : w - size + 1]


class LocalStats:
    """Weighted local statistics of one image over a window ('valid'), with a cache of the flat map.

    Attributes: ``mu`` (local mean), ``var`` (``E[x^2] - mu^2``, exactly 0 on constant windows),
    ``flat`` (constant-window map).
    """

    def __init__(self, x: np.ndarray, taps: np.ndarray):
        self.x = x
        self.taps = taps
        self.mu = filter_valid(x, taps)
        self.flat = flat_windows(x, len(taps))
        var = filter_valid(x * x, taps) - self.mu * self.mu
        var[self.flat] = 0.0
        self.var = var

    def cov(self, other: "LocalStats") -> np.ndarray:
        """Local covariance ``E[xy] - E[x]E[y]``; exactly 0 where either window is constant."""
        c = filter_valid(self.x * other.x, self.taps) - self.mu * other.mu
        c[self.flat | other.flat] = 0.0
        return c


def ssim_from_stats(a: LocalStats, b: LocalStats, c1: float, c2: float, cov: np.ndarray | None = None) -> np.ndarray:
    """Wang's SSIM map from local statistics (the ``C1 > 0 and C2 > 0`` branch of ssim_index.m)."""
    if cov is None:
        cov = a.cov(b)
    mu_ab = a.mu * b.mu
    num = (2.0 * mu_ab + c1) * (2.0 * cov + c2)
    den = (a.mu * a.mu + b.mu * b.mu + c1) * (a.var + b.var + c2)
    return num / den


# Window / constant settings of the reference code.
_WANG_TAPS = gaussian_taps(11, 1.5)            # ssim_index.m default
_WANG_C = ((0.01 * 255) ** 2, (0.03 * 255) ** 2)
_YANG_TAPS = gaussian_taps(7, 1.5)             # ssim_yang (metricYang, ZL metricCvejic)
_TINY_C = (2e-16, 2e-16)
_BOX8_TAPS = box_taps(8)                       # Piella's 8x8 window (YL metricPeilla, metricCvejic)
_UIQI_C = ((1e-6 * 255) ** 2, (1e-6 * 255) ** 2)


def wang_ssim_map(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """SSIM map of ``ssim_index(x, y)`` with its defaults (Gaussian 11x11, sigma 1.5, K = [0.01 0.03],
    L = 255, 'valid'). x, y: grey float arrays in [0, 255]."""
    return ssim_from_stats(LocalStats(x, _WANG_TAPS), LocalStats(y, _WANG_TAPS), *_WANG_C)


def _two(sources, fused):
    (a, b), f = prepare(sources, fused, n_sources=2)
    return a, b, f


def _mean(x: np.ndarray) -> float:
    return float(np.mean(x))


# --------------------------------------------------------------------------------------------
# SSIM
# --------------------------------------------------------------------------------------------


def ssim_mean(sources, fused, *, ground_truth=None) -> float:
    """``SSIM``: mean of Wang's SSIM between each source and the fused image.

    SSIM = (mssim(A, F) + mssim(B, F)) / 2, mssim = mean of the 'valid' SSIM map (Gaussian 11x11,
    sigma 1.5, K = [0.01, 0.03], L = 255). Ideal 1; SSIM(A, A, A) = 1.

    Reference: Z. Wang, A. C. Bovik, H. R. Sheikh, E. P. Simoncelli, "Image quality assessment: from
    error visibility to structural similarity", IEEE TIP 13(4), 2004 (``ssim_index.m``).
    """
    a, b, f = _two(sources, fused)
    sf = LocalStats(f, _WANG_TAPS)
    qa = ssim_from_stats(LocalStats(a, _WANG_TAPS), sf, *_WANG_C)
    qb = ssim_from_stats(LocalStats(b, _WANG_TAPS), sf, *_WANG_C)
    return (_mean(qa) + _mean(qb)) / 2.0


def ssim_sum_vifb(sources, fused, *, ground_truth=None) -> float:
    """``SSIM_vifb``: VIFB's SSIM, the *sum* mssim(A, F) + mssim(B, F) (= 2 x ``SSIM``; ideal 2).

    Reference: X. Zhang et al., "VIFB: a visible and infrared image fusion benchmark", CVPR-W 2020
    (``metricsSsim.m``).
    """
    return 2.0 * ssim_mean(sources, fused)


# --------------------------------------------------------------------------------------------
# Piella (Q_S, Q_S_yl, Q_W_yl)
# --------------------------------------------------------------------------------------------


def _piella_weights(sa: LocalStats, sb: LocalStats):
    """lambda = s_A^2 / (s_A^2 + s_B^2) with 0.5 added to both variances where their sum is 0.
    Returns (lambda, bumped s_A^2, bumped s_B^2)."""
    va, vb = sa.var.copy(), sb.var.copy()
    zero = (va + vb) == 0
    va[zero] += 0.5
    vb[zero] += 0.5
    return va / (va + vb), va, vb


def _piella_maps(sources, fused, taps, consts):
    a, b, f = _two(sources, fused)
    sa, sb, sf = LocalStats(a, taps), LocalStats(b, taps), LocalStats(f, taps)
    lam, va, vb = _piella_weights(sa, sb)
    q = lam * ssim_from_stats(sf, sa, *consts) + (1.0 - lam) * ssim_from_stats(sf, sb, *consts)
    return q, va, vb


def piella_quality(sources, fused, *, ground_truth=None) -> float:
    """``Q_S``: Piella's fusion quality index as coded in Zheng Liu's toolbox (``metricPeilla``, sw=1).

    Q_S = mean( lambda * SSIM(F, A) + (1 - lambda) * SSIM(F, B) ),  lambda = s_A^2 / (s_A^2 + s_B^2),

    with the default ``ssim_index`` (Gaussian 11x11, sigma 1.5, K = [0.01 0.03]; i.e. SSIM with its
    constants, not Piella's UIQI) and the local variances of ssim_index(A, B); 0.5 is added to both
    variances where their sum is 0 (lambda = 0.5 there). Ideal 1.

    Reference: G. Piella, H. Heijmans, "A new quality metric for image fusion", ICIP 2003; code
    Z. Liu et al., IEEE TPAMI 34(1), 2012 (imageFusionMetrics).
    """
    q, _, _ = _piella_maps(sources, fused, _WANG_TAPS, _WANG_C)
    return _mean(q)


def piella_quality_yl(sources, fused, *, ground_truth=None) -> float:
    """``Q_S_yl``: Piella's Q with the paper's settings, Yu Liu's corrected copy (MFIF-Metrics).

    As ``Q_S`` but with an 8x8 box window and K = [1e-6 1e-6] (SSIM -> UIQI), 'valid'. Ideal 1.

    Reference: G. Piella, H. Heijmans, ICIP 2003; code Y. Liu et al., "Multi-focus image fusion: a
    survey of the state of the art", Information Fusion 64, 2020 (MFIF-Metrics ``metricPeilla`` sw=1).
    """
    q, _, _ = _piella_maps(sources, fused, _BOX8_TAPS, _UIQI_C)
    return _mean(q)


def piella_weighted_quality_yl(sources, fused, *, ground_truth=None) -> float:
    """``Q_W_yl``: Piella's weighted fusion quality index (MFIF-Metrics ``metricPeilla`` sw=2).

    Q_W = sum( c * (lambda Q0(F, A) + (1 - lambda) Q0(F, B)) ),  c = max(s_A^2, s_B^2) / sum(max(s_A^2, s_B^2)),

    with Q0 the UIQI-like SSIM of ``Q_S_yl`` (8x8 box, K = 1e-6) and the variances bumped by 0.5 where
    both are 0. Ideal 1.

    Reference: G. Piella, H. Heijmans, ICIP 2003; code MFIF-Metrics (Y. Liu 2020).
    """
    q, va, vb = _piella_maps(sources, fused, _BOX8_TAPS, _UIQI_C)
    cw = np.maximum(va, vb)
    return float(np.sum(cw / cw.sum() * q))


# --------------------------------------------------------------------------------------------
# Cvejic (Q_C, Q_C_yl)
# --------------------------------------------------------------------------------------------


def _cvejic_parts(sources, fused, taps):
    a, b, f = _two(sources, fused)
    sa, sb, sf = LocalStats(a, taps), LocalStats(b, taps), LocalStats(f, taps)
    caf, cbf = sa.cov(sf), sb.cov(sf)
    qa = ssim_from_stats(sa, sf, *_TINY_C, cov=caf)
    qb = ssim_from_stats(sb, sf, *_TINY_C, cov=cbf)
    with np.errstate(divide="ignore", invalid="ignore"):
        w = caf / (caf + cbf)
    return w, qa, qb


def cvejic_quality(sources, fused, *, ground_truth=None) -> float:
    """``Q_C``: Cvejic's metric as coded in Zheng Liu's toolbox (``metricCvejic``, sw=2).

    SSIM maps with a 7x7 Gaussian (sigma 1.5) and C1 = C2 = 2e-16 ('valid');
    w = s_AF / (s_AF + s_BF) (local covariances); Q = w SSIM(A, F) + (1 - w) SSIM(B, F), except that
    the local *quality* is set to 0 where w < 0 and to 1 where w > 1 (the toolbox's quirk, kept);
    Q_C = mean(Q). Ideal 1.

    Undefined where s_AF + s_BF = 0 in some window (e.g. a 7x7 window flat in F, or flat in both
    sources): the reference returns NaN there; this function raises :class:`InputError` instead. Use
    ``Q_C_yl`` for a value that is always defined.

    Reference: N. Cvejic, A. Loza, D. Bull, N. Canagarajah, "A similarity metric for assessment of
    image fusion algorithms", Int. J. Signal Processing 2(3), 2005; code Z. Liu et al., TPAMI 2012.
    """
    w, qa, qb = _cvejic_parts(sources, fused, _YANG_TAPS)
    if np.any(np.isnan(w)):
        raise InputError("Q_C is undefined for these images: a 7x7 window has zero covariance with the "
                         "fused image in both sources (flat region); the reference returns NaN, use Q_C_yl")
    with np.errstate(invalid="ignore"):
        q = w * qa + (1.0 - w) * qb
    q[w < 0] = 0.0
    q[w > 1] = 1.0
    return _mean(q)


def cvejic_quality_yl(sources, fused, *, ground_truth=None) -> float:
    """``Q_C_yl``: Cvejic's metric, Yu Liu's corrected copy (MFIF-Metrics ``metricCvejic`` sw=2).

    As ``Q_C`` but with an 8x8 box window (C = 2e-16), the *weight* w clamped to [0, 1], and
    w = 0.5 where s_AF + s_BF = 0 (the 0/0 case). Always finite. Ideal 1.

    Reference: N. Cvejic et al. 2005; code MFIF-Metrics (Y. Liu 2020).
    """
    w, qa, qb = _cvejic_parts(sources, fused, _BOX8_TAPS)
    hole = np.isnan(w)  # 0/0; +-inf (s_AF = -s_BF) is clamped like any other weight
    w = np.clip(w, 0.0, 1.0)
    w[hole] = 0.5
    return _mean(w * qa + (1.0 - w) * qb)


# --------------------------------------------------------------------------------------------
# Yang (Q_Y, Q_Y_yl)
# --------------------------------------------------------------------------------------------


def _yang_map(sources, fused, *, fix_flat: bool):
    a, b, f = _two(sources, fused)
    sa, sb, sf = LocalStats(a, _YANG_TAPS), LocalStats(b, _YANG_TAPS), LocalStats(f, _YANG_TAPS)
    q_ab = ssim_from_stats(sa, sb, *_TINY_C)
    q_af = ssim_from_stats(sa, sf, *_TINY_C)
    q_bf = ssim_from_stats(sb, sf, *_TINY_C)
    va, vb = sa.var, sb.var
    zero = (va + vb) == 0
    if np.any(zero):
        if not fix_flat:
            raise InputError("Q_Y is undefined for these images: a 7x7 window is flat in both sources "
                             "(0/0 weight); the reference returns NaN, use Q_Y_yl")
        va, vb = va.copy(), vb.copy()
        va[zero] += 0.5
        vb[zero] += 0.5
    lam = va / (va + vb)
    similar = q_ab >= 0.75
    return np.where(similar, lam * q_af + (1.0 - lam) * q_bf, np.maximum(q_af, q_bf))


def yang_quality(sources, fused, *, ground_truth=None) -> float:
    """``Q_Y``: Yang's SSIM-based fusion metric as coded in Zheng Liu's toolbox (``metricYang``).

    Local SSIM with a 7x7 Gaussian (sigma 1.5), C1 = C2 = 2e-16, 'valid'; lambda = s_A^2/(s_A^2+s_B^2);
    Q = lambda SSIM(A,F) + (1-lambda) SSIM(B,F) where SSIM(A,B) >= 0.75, else max(SSIM(A,F), SSIM(B,F));
    Q_Y = mean(Q). Ideal 1.

    Undefined when a 7x7 window is flat in both sources (lambda = 0/0): the reference returns NaN;
    this function raises :class:`InputError`. ``Q_Y_yl`` is the always-defined variant and equals
    ``Q_Y`` whenever ``Q_Y`` is defined.

    Reference: C. Yang, J. Zhang, X. Wang, X. Liu, "A novel similarity based quality metric for image
    fusion", Information Fusion 9(2), 2008; code Z. Liu et al., TPAMI 2012.
    """
    return _mean(_yang_map(sources, fused, fix_flat=False))


def yang_quality_yl(sources, fused, *, ground_truth=None) -> float:
    """``Q_Y_yl``: Yang's metric, Yu Liu's corrected copy (MFIF-Metrics ``metricYang``).

    As ``Q_Y`` but 0.5 is added to both source variances where both are 0 (lambda = 0.5 there), so
    it is always finite. Ideal 1. This is the Q_Y of published multi-focus tables (Liu et al. 2020).

    Reference: C. Yang et al., Information Fusion 9(2), 2008; code MFIF-Metrics (Y. Liu 2020).
    """
    return _mean(_yang_map(sources, fused, fix_flat=True))


_ZL = "Zheng Liu's imageFusionMetrics (TPAMI 2012)"
_YL = "Yu Liu's MFIF-Metrics (Information Fusion 2020)"

METRICS: tuple[Metric, ...] = (
    Metric("SSIM", ssim_mean, True, reference="Wang et al. 2004, (ssim_index(A,F)+ssim_index(B,F))/2"),
    Metric("SSIM_vifb", ssim_sum_vifb, True, reference="Wang et al. 2004, VIFB metricsSsim (sum over sources)"),
    Metric("Q_S", piella_quality, True, reference=f"Piella & Heijmans 2003, {_ZL} metricPeilla sw=1"),
    Metric("Q_S_yl", piella_quality_yl, True, reference=f"Piella & Heijmans 2003, {_YL} metricPeilla sw=1"),
    Metric("Q_W_yl", piella_weighted_quality_yl, True, reference=f"Piella & Heijmans 2003, {_YL} metricPeilla sw=2"),
    Metric("Q_C", cvejic_quality, True, reference=f"Cvejic et al. 2005, {_ZL} metricCvejic sw=2"),
    Metric("Q_C_yl", cvejic_quality_yl, True, reference=f"Cvejic et al. 2005, {_YL} metricCvejic sw=2"),
    Metric("Q_Y", yang_quality, True, reference=f"Yang et al. 2008, {_ZL} metricYang"),
    Metric("Q_Y_yl", yang_quality_yl, True, reference=f"Yang et al. 2008, {_YL} metricYang"),
)
