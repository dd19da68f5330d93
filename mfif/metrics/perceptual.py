"""Fusion metrics, perceptual family: human-vision-model based scores.

Keys: ``Q_CB`` (= ``Q_CB_vifb``), ``Q_CV`` (= ``Q_CV_vifb``; lower is better), ``VIFF``.

Inputs are grey images in [0, 255] (see :func:`mfif.metrics._common.to_grey_255`). The computations
follow the MATLAB code of the reference values (``shared/refmetrics/NOTES.md``): Zheng Liu's
``metricChenBlum`` / ``metricChen`` (the same code in MFIF-Metrics and VIFB) and Han et al.'s
``VIFF_Public``.
"""
from __future__ import annotations

import numpy as np

from mfif.errors import InputError
from mfif.metrics._common import Metric, prepare
from mfif.metrics.structural import filter_same, filter_valid, gaussian_taps

__all__ = ["METRICS", "chen_blum", "chen_varshney", "viff", "normalize1", "matlab_round"]


def matlab_round(x: np.ndarray) -> np.ndarray:
    """MATLAB ``round``: halves away from zero (numpy rounds halves to even)."""
    r = np.round(x)
    frac = x - np.trunc(x)
    half = np.abs(frac) == 0.5
    r[half] = np.trunc(x[half]) + np.sign(x[half])
    return r


def normalize1(x: np.ndarray, name: str, metric: str) -> np.ndarray:
    """Zheng Liu's ``normalize1``: ``round((x - min) / (max - min) * 255)`` per image, an all-zero image
    unchanged. A constant nonzero image makes the reference divide 0 by 0 (NaN result); raise instead."""
    hi, lo = float(x.max()), float(x.min())
    if hi == 0 and lo == 0:
        return x
    if hi == lo:
        raise InputError(f"{metric} is undefined when the {name} is constant (its min-max normalisation "
                         "divides by zero; the reference returns NaN)")
    return matlab_round((x - lo) / (hi - lo) * 255.0)


def _freqspace_radius(shape: tuple[int, int], cols_scale: float, rows_scale: float) -> np.ndarray:
    """r = sqrt(u^2 + v^2) on MATLAB ``freqspace([rows, cols], 'meshgrid')`` coordinates
    f = ((0:n-1) - floor(n/2)) * 2/n, with u = cols_scale * f_x, v = rows_scale * f_y (fftshift layout)."""
    rows, cols = shape
    fx = (np.arange(cols) - cols // 2) * (2.0 / cols)
    fy = (np.arange(rows) - rows // 2) * (2.0 / rows)
    u = cols_scale * fx[None, :]
    v = rows_scale * fy[:, None]
    return np.sqrt(u * u + v * v)


def _csf_filter(x: np.ndarray, response: np.ndarray) -> np.ndarray:
    """``real(ifft2(ifftshift(fftshift(fft2(x)) .* S)))`` with S laid out as fftshift'ed frequencies."""
    return np.real(np.fft.ifft2(np.fft.fft2(x) * np.fft.ifftshift(response)))


def _two(sources, fused):
    (a, b), f = prepare(sources, fused, n_sources=2)
    return a, b, f


# --------------------------------------------------------------------------------------------
# Chen-Blum
# --------------------------------------------------------------------------------------------

_CB_F0, _CB_F1, _CB_A = 15.3870, 1.3456, 0.7622
_CB_P, _CB_Q, _CB_Z = 3.0, 2.0, 1e-4


def _cb_gaussian_taps(sigma: float) -> np.ndarray:
    # 31x31 exp(-(x^2+y^2)/(2 sigma^2)) / (2 pi sigma^2), not normalised: outer(t, t) with
    # t = exp(-x^2/(2 sigma^2)) / sqrt(2 pi sigma^2).
    x = np.arange(-15, 16, dtype=np.float64)
    return np.exp(-(x * x) / (2.0 * sigma * sigma)) / np.sqrt(2.0 * np.pi * sigma * sigma)


_CB_G1, _CB_G2 = _cb_gaussian_taps(2.0), _cb_gaussian_taps(4.0)


def _cb_masked_contrast(x: np.ndarray, csf: np.ndarray) -> np.ndarray:
    filtered = _csf_filter(x, csf)
    with np.errstate(divide="ignore", invalid="ignore"):
        c = np.abs(filter_same(filtered, _CB_G1) / filter_same(filtered, _CB_G2) - 1.0)
    return c ** _CB_P / (c ** _CB_Q + _CB_Z)


def chen_blum(sources, fused, *, ground_truth=None) -> float:
    """``Q_CB`` (also ``Q_CB_vifb``, the same code): Chen & Blum's perceptual fusion metric.

    Each image is min-max stretched to integers 0..255 (``normalize1``) and filtered in the frequency
    domain with the CSF S(r) = exp(-(r/f0)^2) - a exp(-(r/f1)^2) (f0 = 15.3870, f1 = 1.3456,
    a = 0.7622; r from ``freqspace`` scaled by cols/30, rows/30). Local contrast
    C = |(G1*I)/(G2*I) - 1| with unnormalised 31x31 Gaussians (sigma 2, 4; zero padding);
    masked contrast C' = C^3 / (C^2 + 1e-4). Per pixel Q_XF = min(C'_X, C'_F)/max(C'_X, C'_F),
    lambda_A = C'_A^2 / (C'_A^2 + C'_B^2); Q_CB = mean(lambda_A Q_AF + lambda_B Q_BF). Ideal 1.

    Where the reference divides 0 by 0 (a pixel with zero masked contrast) this uses Q_XF = 1 when both
    contrasts are 0 and lambda = 1/2 when both sources' are 0 (never happens on natural images). A
    constant image raises :class:`InputError` (the reference returns NaN).

    Reference: Y. Chen, R. S. Blum, "A new automated quality assessment algorithm for image fusion",
    Image and Vision Computing 27(10), 2009; code Z. Liu et al., TPAMI 2012 (``metricChenBlum``).
    """
    a, b, f = _two(sources, fused)
    a, b, f = (normalize1(x, n, "Q_CB") for x, n in ((a, "first source"), (b, "second source"), (f, "fused image")))
    r = _freqspace_radius(f.shape, f.shape[1] / 30.0, f.shape[0] / 30.0)
    csf = np.exp(-(r / _CB_F0) ** 2) - _CB_A * np.exp(-(r / _CB_F1) ** 2)
    ca, cb, cf = (_cb_masked_contrast(x, csf) for x in (a, b, f))
    if not (np.all(np.isfinite(ca)) and np.all(np.isfinite(cb)) and np.all(np.isfinite(cf))):
        raise InputError("Q_CB is undefined for these images: local contrast divides by a zero local mean")

    def preservation(cx):
        hi = np.maximum(cx, cf)
        with np.errstate(divide="ignore", invalid="ignore"):
            q = np.minimum(cx, cf) / hi
        q[hi == 0] = 1.0
        return q

    a2, b2 = ca * ca, cb * cb
    den = a2 + b2
    with np.errstate(divide="ignore", invalid="ignore"):
        lam_a = a2 / den
        lam_b = b2 / den
    lam_a[den == 0] = 0.5
    lam_b[den == 0] = 0.5
    return float(np.mean(lam_a * preservation(ca) + lam_b * preservation(cb)))


# --------------------------------------------------------------------------------------------
# Chen-Varshney
# --------------------------------------------------------------------------------------------

_CV_BLOCK = 16
_CV_ALPHA = 5.0


def _block_sums(x: np.ndarray, block: int) -> np.ndarray:
    """Sums over non-overlapping block x block tiles (``blkproc``; partial edge tiles zero-padded)."""
    h, w = x.shape
    nh, nw = -(-h // block), -(-w // block)
    padded = np.zeros((nh * block, nw * block))
    padded[:h, :w] = x
    return padded.reshape(nh, block, nw, block).sum(axis=(1, 3))


_SOBEL_SMOOTH = np.array([1.0, 2.0, 1.0])
_SOBEL_DIFF = np.array([-1.0, 0.0, 1.0])


def _sobel_magnitude(x: np.ndarray) -> np.ndarray:
    # filter2([-1 0 1;-2 0 2;-1 0 1], x, 'same') and filter2([-1 -2 -1;0 0 0;1 2 1], x, 'same')
    gx = filter_same(x, _SOBEL_SMOOTH, _SOBEL_DIFF)
    gy = filter_same(x, _SOBEL_DIFF, _SOBEL_SMOOTH)
    return np.sqrt(gx * gx + gy * gy)


def chen_varshney(sources, fused, *, ground_truth=None) -> float:
    """``Q_CV`` (also ``Q_CV_vifb``, the same code): Chen & Varshney's metric; **lower is better**
    (0 for F equal to both sources).

    Images min-max stretched to 0..255 (``normalize1``). Saliency of each 16x16 block (``blkproc``,
    partial edge blocks zero-padded): lambda = sum of g^5, g the Sobel gradient magnitude (zero padding).
    Dissimilarity D = block mean (over 256 pixels) of the squared CSF-filtered difference X - F, CSF
    Mannos-Sakrison 2.6 (0.0192 + 0.144 r) exp(-(0.144 r)^1.1) with r from ``freqspace`` scaled by
    cols/8, rows/8. Q_CV = sum(lambda_A D_A + lambda_B D_B) / sum(lambda_A + lambda_B).

    A constant source or fused image raises :class:`InputError` (the reference returns NaN); so do two
    sources without any gradient (0/0).

    Reference: H. Chen, P. K. Varshney, "A human perception inspired quality metric for image fusion
    based on regional information", Information Fusion 8(2), 2007; code Z. Liu et al., TPAMI 2012
    (``metricChen``).
    """
    a, b, f = _two(sources, fused)
    a, b, f = (normalize1(x, n, "Q_CV") for x, n in ((a, "first source"), (b, "second source"), (f, "fused image")))
    lam_a = _block_sums(_sobel_magnitude(a) ** _CV_ALPHA, _CV_BLOCK)
    lam_b = _block_sums(_sobel_magnitude(b) ** _CV_ALPHA, _CV_BLOCK)
    r = _freqspace_radius(f.shape, f.shape[1] / 8.0, f.shape[0] / 8.0)
    csf = 2.6 * (0.0192 + 0.144 * r) * np.exp(-((0.144 * r) ** 1.1))
    d_a = _block_sums(_csf_filter(a - f, csf) ** 2, _CV_BLOCK) / _CV_BLOCK ** 2
    d_b = _block_sums(_csf_filter(b - f, csf) ** 2, _CV_BLOCK) / _CV_BLOCK ** 2
    total = float(np.sum(lam_a + lam_b))
    if total == 0:
        raise InputError("Q_CV is undefined when neither source has any gradient (0/0 saliency)")
    return float(np.sum(lam_a * d_a + lam_b * d_b)) / total


# --------------------------------------------------------------------------------------------
# VIFF
# --------------------------------------------------------------------------------------------

_VIFF_NOISE = 0.005 * 255 * 255
_VIFF_C = 1e-7
_VIFF_WEIGHTS = np.array([1.0, 0.0, 0.15, 1.0]) / 2.15


def _vif_maps(ref: np.ndarray, dist: np.ndarray):
    """Per scale (VID, VIND, g) maps of Sheikh & Bovik's pixel VIF as revised in VIFF_Public."""
    out = []
    for scale in range(1, 5):
        n = 2 ** (4 - scale + 1) + 1
        taps = gaussian_taps(n, n / 5.0)
        if scale > 1:
            ref = filter_valid(ref, taps)[::2, ::2]
            dist = filter_valid(dist, taps)[::2, ::2]
        mu1, mu2 = filter_valid(ref, taps), filter_valid(dist, taps)
        s1 = filter_valid(ref * ref, taps) - mu1 * mu1
        s2 = filter_valid(dist * dist, taps) - mu2 * mu2
        s12 = filter_valid(ref * dist, taps) - mu1 * mu2
        s1[s1 < 0] = 0.0
        s2[s2 < 0] = 0.0
        g = s12 / (s1 + 1e-10)
        sv = s2 - g * s12
        low1 = s1 < 1e-10
        g[low1] = 0.0
        sv[low1] = s2[low1]
        s1[low1] = 0.0
        low2 = s2 < 1e-10
        g[low2] = 0.0
        sv[low2] = 0.0
        neg = g < 0
        sv[neg] = s2[neg]
        g[neg] = 0.0
        sv[sv <= 1e-10] = 1e-10
        vid = np.log10(1.0 + g * g * s1 / (sv + _VIFF_NOISE))
        vind = np.log10(1.0 + s1 / _VIFF_NOISE)
        out.append((vid, vind, g))
    return out


def viff(sources, fused, *, ground_truth=None) -> float:
    """``VIFF``: Han et al.'s visual-information-fidelity fusion metric. Ideal 1.

    For each source X and 4 scales (Gaussian windows N = 17, 9, 5, 3, sigma = N/5; scales > 1 are
    filtered 'valid' and decimated by 2), local Gaussian statistics ('valid') give the VIF channel
    g = s_XF / s_X^2, sv^2 = s_F^2 - g s_XF (with the usual VIF clamps at 1e-10) and
    VID = log10(1 + g^2 s_X^2 / (sv^2 + s_n^2)), VIND = log10(1 + s_X^2 / s_n^2), s_n^2 = 0.005*255^2.
    Per pixel the source with the smaller g is used (ties: the second source);
    F_s = sum(VID + 1e-7) / sum(VIND + 1e-7); VIFF = sum_s p_s F_s with p = [1, 0, 0.15, 1]/2.15.
    Images must be at least 2^4 + 2^3 + ... big enough for four scales (about 40 pixels a side).

    Reference: Y. Han, Y. Cai, Y. Cao, X. Xu, "A new image fusion performance metric based on visual
    information fidelity", Information Fusion 14(2), 2013 (``VIFF_Public.m``).
    """
    a, b, f = _two(sources, fused)
    if min(f.shape) < 41:
        raise InputError(f"VIFF needs images of at least 41x41 pixels for its 4 scales, got "
                         f"{f.shape[1]}x{f.shape[0]}")
    maps_a, maps_b = _vif_maps(a, f), _vif_maps(b, f)
    total = 0.0
    for p, (vid1, vind1, g1), (vid2, vind2, g2) in zip(_VIFF_WEIGHTS, maps_a, maps_b):
        use1 = g1 < g2
        vid = np.where(use1, vid1, vid2)
        vind = np.where(use1, vind1, vind2)
        total += float(p) * (float(np.sum(vid + _VIFF_C)) / float(np.sum(vind + _VIFF_C)))
    return total


METRICS: tuple[Metric, ...] = (
    Metric(name="Q_CB", function=chen_blum, higher_is_better=True,
           reference="Chen & Blum 2009, Zheng Liu's imageFusionMetrics metricChenBlum"),
    Metric(name="Q_CB_vifb", function=chen_blum, higher_is_better=True,
           reference="Chen & Blum 2009, VIFB metricsQcb (same code as Q_CB)"),
    Metric(name="Q_CV", function=chen_varshney, higher_is_better=False,
           reference="Chen & Varshney 2007, Zheng Liu's imageFusionMetrics metricChen"),
    Metric(name="Q_CV_vifb", function=chen_varshney, higher_is_better=False,
           reference="Chen & Varshney 2007, VIFB metricsQcv (same code as Q_CV)"),
    Metric(name="VIFF", function=viff, higher_is_better=True, reference="Han et al. 2013, VIFF_Public.m"),
)
