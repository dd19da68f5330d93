"""Fusion metrics, structural family: SSIM and the SSIM-based fusion indices.

Keys: ``SSIM``, ``SSIM_vifb``, ``Q_S``, ``Q_S_yl``, ``Q_W_yl``, ``Q_C``, ``Q_C_yl``, ``Q_Y``, ``Q_Y_yl``,
``Q_Y_stable``.

All of them are built on Wang's local SSIM map between two images x, y,

    SSIM(x, y) = (2 mu_x mu_y + C1)(2 s_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(s_x^2 + s_y^2 + C2)),

with weighted local means ``mu`` and (co)variances ``s`` over a window, computed as in Zhou Wang's
``ssim_index.m`` (``E[xy] - E[x]E[y]``, ``'valid'`` windows only, map mean pooled). The inputs are grey
images in [0, 255] (see :func:`mfif.metrics._common.to_grey_255`).

Parameters follow the MATLAB code the reference values come from (``shared/refmetrics/NOTES.md``):
Zheng Liu's toolbox (TPAMI 2012 survey; unsuffixed keys), Yu Liu's corrected copies in MFIF-Metrics
(``_yl``) and VIFB (``_vifb``).

Round-off in flat windows. ``E[x^2] - E[x]^2`` is not exactly 0 on a window whose pixels are all
equal, and with tiny constants the SSIM map there is a ratio of round-off:

- SSIM, Q_S, Q_S_yl, Q_W_yl, Q_C_yl: the variance of a constant window is set to exactly 0 (and its
  covariance with anything). With their constants (or, for the 8x8 box windows, the exact 1/64
  weights) this equals the reference to ~1e-14.
- Q_C, Q_Y, Q_Y_yl (C1 = C2 = 2e-16): the reference's *decisions* depend on that round-off (w < 0
  -> 0, 0/0 -> NaN, lambda of flat windows). At every window position where a (co)variance is within
  round-off of 0 the local sums are recomputed exactly as GNU Octave's ``conv2`` accumulates them
  (BLAS daxpy with fused multiply-add, emulated exactly); elsewhere a fast separable filter is used.
  This reproduces the reference to ~1e-11 relative, including where it returns NaN. Where the whole
  of both sources (or, for Q_C, the fused image) is constant the value would be pure round-off, and
  these three raise :class:`InputError` instead. Reproducing that round-off faithfully means
  reproducing its garbage: on real images with flat areas (sky, black background, saturation)
  Q_Y_yl reaches 6.5 or 252 where MATLAB's own round-off gave 0.99. ``Q_Y_stable`` is Q_Y_yl with
  a documented floor for flat windows (see :func:`yang_quality_stable`); it is the key to rank by.

The module also holds the small filtering helpers the other SSIM-like families share.
"""
from __future__ import annotations

import hashlib
import math
import threading
from collections import OrderedDict

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
    "yang_quality_stable",
]

# --------------------------------------------------------------------------------------------
# a small cache for scores several keys share (SSIM_vifb, Q_W_yl, Q_Y / Q_Y_yl, MEF scales)
# --------------------------------------------------------------------------------------------


def array_digest(*arrays: np.ndarray) -> bytes:
    """Digest of the shapes, dtypes and contents of ``arrays`` (a cache key)."""
    h = hashlib.blake2b(digest_size=16)
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(repr((a.shape, a.dtype.str)).encode())
        h.update(a.data)
    return h.digest()


class SharedResults:
    """Least-recently-used cache of a few small results, keyed by input digests (thread-safe)."""

    def __init__(self, size: int = 4):
        self.size = size
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def peek(self, key):
        """The cached value for ``key``, or None."""
        with self._lock:
            return self._items.get(key)

    def get(self, key, compute):
        """The cached value for ``key``, computing (and storing) it with ``compute()`` if absent."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = compute()
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value


# Scores of the last few inputs that several keys share (SSIM/SSIM_vifb, Q_S_yl/Q_W_yl,
# Q_C/Q_Y/Q_Y_yl, the MEF-SSIM scales): only small values are kept, never image-sized maps.
_SHARED = SharedResults(size=8)


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


def _is_constant(x: np.ndarray) -> bool:
    return bool(x.min() == x.max())


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

    def compute():
        sf = LocalStats(f, _WANG_TAPS)
        qa = ssim_from_stats(LocalStats(a, _WANG_TAPS), sf, *_WANG_C)
        qb = ssim_from_stats(LocalStats(b, _WANG_TAPS), sf, *_WANG_C)
        return (_mean(qa) + _mean(qb)) / 2.0

    return _SHARED.get(("ssim", array_digest(a, b, f)), compute)


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


def _piella_scores(sources, fused, taps, consts) -> tuple[float, float]:
    """(mean of the local quality map, its variance-weighted sum) -- Piella's Q and Q_W for one window
    setting; cached, Q_S_yl and Q_W_yl share one computation."""
    a, b, f = _two(sources, fused)

    def compute():
        sa, sb, sf = LocalStats(a, taps), LocalStats(b, taps), LocalStats(f, taps)
        lam, va, vb = _piella_weights(sa, sb)
        q = lam * ssim_from_stats(sf, sa, *consts) + (1.0 - lam) * ssim_from_stats(sf, sb, *consts)
        cw = np.maximum(va, vb)
        return _mean(q), float(np.sum(cw / cw.sum() * q))

    return _SHARED.get(("piella", len(taps), consts, array_digest(a, b, f)), compute)


def piella_quality(sources, fused, *, ground_truth=None) -> float:
    """``Q_S``: Piella's fusion quality index as coded in Zheng Liu's toolbox (``metricPeilla``, sw=1).

    Q_S = mean( lambda * SSIM(F, A) + (1 - lambda) * SSIM(F, B) ),  lambda = s_A^2 / (s_A^2 + s_B^2),

    with the default ``ssim_index`` (Gaussian 11x11, sigma 1.5, K = [0.01 0.03]; i.e. SSIM with its
    constants, not Piella's UIQI) and the local variances of ssim_index(A, B); 0.5 is added to both
    variances where their sum is 0 (lambda = 0.5 there). Ideal 1.

    Reference: G. Piella, H. Heijmans, "A new quality metric for image fusion", ICIP 2003; code
    Z. Liu et al., IEEE TPAMI 34(1), 2012 (imageFusionMetrics).
    """
    return _piella_scores(sources, fused, _WANG_TAPS, _WANG_C)[0]


def piella_quality_yl(sources, fused, *, ground_truth=None) -> float:
    """``Q_S_yl``: Piella's Q with the paper's settings, Yu Liu's corrected copy (MFIF-Metrics).

    As ``Q_S`` but with an 8x8 box window and K = [1e-6 1e-6] (SSIM -> UIQI), 'valid'. Ideal 1.

    Reference: G. Piella, H. Heijmans, ICIP 2003; code Y. Liu et al., "Multi-focus image fusion: a
    survey of the state of the art", Information Fusion 64, 2020 (MFIF-Metrics ``metricPeilla`` sw=1).
    """
    return _piella_scores(sources, fused, _BOX8_TAPS, _UIQI_C)[0]


def piella_weighted_quality_yl(sources, fused, *, ground_truth=None) -> float:
    """``Q_W_yl``: Piella's weighted fusion quality index (MFIF-Metrics ``metricPeilla`` sw=2).

    Q_W = sum( c * (lambda Q0(F, A) + (1 - lambda) Q0(F, B)) ),  c = max(s_A^2, s_B^2) / sum(max(s_A^2, s_B^2)),

    with Q0 the UIQI-like SSIM of ``Q_S_yl`` (8x8 box, K = 1e-6) and the variances bumped by 0.5 where
    both are 0. Ideal 1.

    Reference: G. Piella, H. Heijmans, ICIP 2003; code MFIF-Metrics (Y. Liu 2020).
    """
    return _piella_scores(sources, fused, _BOX8_TAPS, _UIQI_C)[1]


# --------------------------------------------------------------------------------------------
# ssim_yang: the C = 2e-16 local SSIM of Q_C and Q_Y, reproduced to the reference's round-off
# --------------------------------------------------------------------------------------------
#
# With C1 = C2 = 2e-16 the SSIM map is a ratio of round-off wherever a window is flat in one of the
# two images (true variance / covariance exactly 0), and Q_C / Q_Y turn that into hard decisions
# (w < 0 -> quality 0, 0/0 -> NaN). The reference values come from GNU Octave, whose conv2 ('valid')
# accumulates the window terms one by one with BLAS daxpy (fused multiply-add): for each output
# column, kernel column j = 1..n outer, row i = 1..m inner, acc = fma(k(i,j), x(..), acc). At every
# window position where one of the two images is flat we recompute the local sums with exactly that
# accumulation (FMA emulated with error-free transformations), elsewhere a fast separable filter is
# used (agreeing to ~1e-16 relative, which does not matter there). This reproduces the reference to
# ~1e-14, including where its Q_C / Q_Y are NaN.

_SPLITTER = 134217729.0  # 2^27 + 1, Veltkamp splitting of float64


def _split(a):
    c = _SPLITTER * a
    hi = c - (c - a)
    return hi, a - hi


def _fma(w: float, w_hi: float, w_lo: float, a: np.ndarray, acc: np.ndarray, a_is_small_int: bool) -> np.ndarray:
    """Round-to-nearest ``w * a + acc`` with a single rounding (as a hardware FMA), via Dekker's exact
    product and Knuth's exact sum. ``a_is_small_int``: every a is an integer below 2^26 (needs no split)."""
    p = w * a
    if a_is_small_int:
        p_err = (w_hi * a - p) + w_lo * a
    else:
        a_hi, a_lo = _split(a)
        p_err = ((w_hi * a_hi - p) + w_hi * a_lo + w_lo * a_hi) + w_lo * a_lo
    s = acc + p
    bb = s - acc
    s_err = (acc - (s - bb)) + (p - bb)
    return s + (s_err + p_err)


def _octave_gaussian_window(size: int, sigma: float) -> np.ndarray:
    """``fspecial('gaussian', size, sigma)`` then ``window/sum(sum(window))`` as Octave evaluates them
    (libm exp, sequential column-major sums)."""
    half = (size - 1) / 2.0
    g = np.array([[math.exp(-((j - half) ** 2 + (i - half) ** 2) / (2.0 * sigma ** 2)) for j in range(size)]
                  for i in range(size)])
    total = 0.0
    for v in g.T.ravel():
        total += v
    f = g / total
    col_sums = []
    for j in range(size):
        c = 0.0
        for i in range(size):
            c += f[i, j]
        col_sums.append(c)
    total = 0.0
    for c in col_sums:
        total += c
    return f / total


def _octave_moments_at(images: list[np.ndarray], pairs: list[tuple[int, int]], window: np.ndarray,
                       rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``filter2(window, ., 'valid')`` of every image x_i, every x_i^2 and every x_i x_j (pairs) at
    output positions (rows, cols), bit-exact with Octave's conv2 on a BLAS with FMA daxpy: for each
    output, kernel column j = 1..n outer, row i = 1..m inner, acc = fma(k(i, j), x(..), acc) (the
    kernel is the window rotated by 180 degrees, so window column n-j, row m-i). Returns a
    (2n + len(pairs), len(rows)) array; the products are formed per tap (exact for integer grey
    levels), so no image-sized product arrays are needed."""
    small_int = all(bool(np.all(x == np.floor(x)) and np.all(np.abs(x) < 2.0 ** 13)) for x in images)
    m, n = window.shape
    acc = np.zeros((2 * len(images) + len(pairs), rows.size))
    for dj in range(n - 1, -1, -1):
        for di in range(m - 1, -1, -1):
            w = float(window[di, dj])
            w_hi, w_lo = _split(w)
            g = [x[rows + di, cols + dj] for x in images]
            values = np.stack(g + [v * v for v in g] + [g[i] * g[j] for i, j in pairs])
            acc = _fma(w, w_hi, w_lo, values, acc, small_int)
    return acc


def _octave_filter2_valid_const(values: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Octave's ``filter2(window, x, 'valid')`` on windows where x is constant, with the given
    values: the result depends on the value only, so it is computed once per distinct value."""
    uniq, inverse = np.unique(values, return_inverse=True)
    small_int = bool(np.all(np.abs(uniq) < 2.0 ** 26) and np.all(uniq == np.floor(uniq)))
    m, n = window.shape
    acc = np.zeros(uniq.shape)
    for dj in range(n - 1, -1, -1):
        for di in range(m - 1, -1, -1):
            w = float(window[di, dj])
            w_hi, w_lo = _split(w)
            acc = _fma(w, w_hi, w_lo, uniq, acc, small_int)
    return acc[inverse.reshape(values.shape)]


_YANG_WINDOW = _octave_gaussian_window(7, 1.5)
_CHUNK = 1 << 16  # window positions per pass of the exact accumulation (bounds the memory used)
# |variance| or |covariance| below this is treated as "possibly exactly 0": recomputed the Octave way.
# Float round-off of E[xy] - E[x]E[y] on [0, 255] data is < 1e-9; a true nonzero (co)variance of
# integer images in a 7x7 Gaussian window is far above 1e-6 in practice.
_FRAGILE = 1e-6


def _yang_stats(images: list[np.ndarray]):
    """Local statistics of ssim_yang for every image and every pair of ``images``.

    Returns (mu, var, cov): lists / dict keyed by index pairs (i, j), i < j, all 'valid' maps, computed
    as ``filter2(window, .) - mu*mu`` with Octave's accumulation at the fragile positions (any
    (co)variance of the set, or a sum of two of them, within round-off of 0).
    """
    n = len(images)
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    mu = [filter_valid(x, _YANG_TAPS) for x in images]
    ex2 = [filter_valid(x * x, _YANG_TAPS) for x in images]
    exy = {(i, j): filter_valid(images[i] * images[j], _YANG_TAPS) for i, j in pairs}

    def derive():
        var = [e - m * m for e, m in zip(ex2, mu)]
        cov = {(i, j): exy[i, j] - mu[i] * mu[j] for i, j in pairs}
        return var, cov

    var, cov = derive()
    small = [np.abs(v) for v in var] + [np.abs(c) for c in cov.values()]
    fragile = np.zeros(mu[0].shape, bool)
    for t in small:
        fragile |= t < _FRAGILE
    # sums that appear as denominators: s_A^2 + s_B^2 (Q_Y) and s_AF + s_BF (Q_C)
    for i, j in pairs:
        fragile |= np.abs(var[i] + var[j]) < _FRAGILE
    for (i, j), (k, m) in [(p, q) for p in pairs for q in pairs if p < q]:
        fragile |= np.abs(cov[i, j] + cov[k, m]) < _FRAGILE
    if not fragile.any():
        return mu, var, cov
    # windows constant in every image (large flat areas): one exact sum per distinct value
    all_flat = flat_windows(images[0], 7)
    for x in images[1:]:
        all_flat &= flat_windows(x, 7)
    at = np.nonzero(fragile & all_flat)
    if at[0].size:
        c = [x[at] for x in images]  # the window's value = its first pixel
        for i in range(n):
            mu[i][at] = _octave_filter2_valid_const(c[i], _YANG_WINDOW)
            ex2[i][at] = _octave_filter2_valid_const(c[i] * c[i], _YANG_WINDOW)
        for i, j in pairs:
            exy[i, j][at] = _octave_filter2_valid_const(c[i] * c[j], _YANG_WINDOW)
    # the other fragile windows: all first and second moments in one pass over the taps, in chunks
    rows, cols = np.nonzero(fragile & ~all_flat)
    for start in range(0, rows.size, _CHUNK):
        at = (rows[start:start + _CHUNK], cols[start:start + _CHUNK])
        exact = _octave_moments_at(images, pairs, _YANG_WINDOW, *at)
        for i in range(n):
            mu[i][at] = exact[i]
            ex2[i][at] = exact[n + i]
        for k, (i, j) in enumerate(pairs):
            exy[i, j][at] = exact[2 * n + k]
    var, cov = derive()
    return mu, var, cov


def _ssim_yang_map(mu, var, cov, i: int, j: int) -> np.ndarray:
    """ssim_yang's SSIM map of images i, j (C1 = C2 = 2e-16), from :func:`_yang_stats`."""
    c1, c2 = _TINY_C
    m1, m2 = mu[i], mu[j]
    mu12 = m1 * m2
    return ((2.0 * mu12 + c1) * (2.0 * cov[i, j] + c2)) / ((m1 * m1 + m2 * m2 + c1) * (var[i] + var[j] + c2))


# --------------------------------------------------------------------------------------------
# Cvejic (Q_C, Q_C_yl)
# --------------------------------------------------------------------------------------------


def _cvejic_yl_parts(sources, fused):
    a, b, f = _two(sources, fused)
    taps = _BOX8_TAPS  # 1/64 weights: every local sum is exact, in Octave and here
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

    Undefined where s_AF + s_BF = 0 in some window (a 7x7 window flat in F, or flat in both sources,
    when the reference's round-off gives exactly 0 there -- reproduced, see the module docstring):
    the reference returns NaN; this function raises :class:`InputError` instead, as it does for a
    constant fused image or two constant sources. ``Q_C_yl`` is always defined.

    Reference: N. Cvejic, A. Loza, D. Bull, N. Canagarajah, "A similarity metric for assessment of
    image fusion algorithms", Int. J. Signal Processing 2(3), 2005; code Z. Liu et al., TPAMI 2012.
    """
    a, b, f = _two(sources, fused)
    if _is_constant(f) or (_is_constant(a) and _is_constant(b)):
        raise InputError("Q_C is undefined when the fused image or both sources are constant (every local "
                         "covariance is 0, the reference's value is round-off); use Q_C_yl")
    return _checked(_yang_family_scores(a, b, f)["Q_C"])


def cvejic_quality_yl(sources, fused, *, ground_truth=None) -> float:
    """``Q_C_yl``: Cvejic's metric, Yu Liu's corrected copy (MFIF-Metrics ``metricCvejic`` sw=2).

    As ``Q_C`` but with an 8x8 box window (C = 2e-16), the *weight* w clamped to [0, 1], and
    w = 0.5 where s_AF + s_BF = 0 (the 0/0 case). Always finite. Ideal 1.

    Reference: N. Cvejic et al. 2005; code MFIF-Metrics (Y. Liu 2020).
    """
    w, qa, qb = _cvejic_yl_parts(sources, fused)
    hole = np.isnan(w)  # 0/0; +-inf (s_AF = -s_BF) is clamped like any other weight
    w = np.clip(w, 0.0, 1.0)
    w[hole] = 0.5
    return _mean(w * qa + (1.0 - w) * qb)


# --------------------------------------------------------------------------------------------
# Yang (Q_Y, Q_Y_yl)
# --------------------------------------------------------------------------------------------


def _yang_family_scores(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> dict[str, float | str]:
    """Q_C, Q_Y and Q_Y_yl of grey images from one set of ssim_yang statistics (cached: the three
    metrics share it). A value is a float, or the message of the InputError it raises."""

    def compute():
        mu, var, cov = _yang_stats([a, b, f])
        q_ab = _ssim_yang_map(mu, var, cov, 0, 1)
        q_af = _ssim_yang_map(mu, var, cov, 0, 2)
        q_bf = _ssim_yang_map(mu, var, cov, 1, 2)
        out: dict[str, float | str] = {}

        # Cvejic (ZL): weight from the covariances with F, quirky clamping of the local quality
        caf, cbf = cov[0, 2], cov[1, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            w = caf / (caf + cbf)
            q = w * q_af + (1.0 - w) * q_bf
        if np.any(np.isnan(w)):
            out["Q_C"] = ("Q_C is undefined for these images: a 7x7 window has zero covariance with the "
                          "fused image in both sources (flat region); the reference returns NaN, use Q_C_yl")
        else:
            q[w < 0] = 0.0
            q[w > 1] = 1.0
            out["Q_C"] = _mean(q)

        # Yang: lambda from the source variances; Q_Y_yl bumps both by 0.5 where their sum is 0
        va, vb = var[0], var[1]
        zero = (va + vb) == 0
        similar = q_ab >= 0.75
        best = np.maximum(q_af, q_bf)
        out["Q_Y_stable"] = _yang_stable(mu, var, cov)
        for key in ("Q_Y", "Q_Y_yl"):
            if np.any(zero) and key == "Q_Y":
                out[key] = ("Q_Y is undefined for these images: a 7x7 window is flat in both sources "
                            "(0/0 weight); the reference returns NaN, use Q_Y_yl")
                continue
            bump = 0.5 * zero
            va2, vb2 = va + bump, vb + bump
            lam = va2 / (va2 + vb2)
            out[key] = _mean(np.where(similar, lam * q_af + (1.0 - lam) * q_bf, best))
        return out

    return _SHARED.get(("yang", array_digest(a, b, f)), compute)


# A window whose local variance is below this (grey levels^2, 0..255 data) is flat: its variance
# is round-off. The smallest true nonzero variance of 8-bit data in ssim_yang's 7x7 Gaussian window
# is w_min (1 - w_min) = 1.34e-3 (one pixel off by one grey level at the lightest tap); round-off
# of E[x^2] - E[x]^2 is below 1e-9. Any floor between the two gives the same values.
FLAT_VARIANCE = 1e-6


def _yang_stable(mu, var, cov) -> float:
    """Q_Y_stable from ssim_yang statistics of (A, B, F): variances below :data:`FLAT_VARIANCE`
    are exactly 0, and so is every covariance with a flat window; then Q_Y_yl's formula."""
    v = [np.where(x < FLAT_VARIANCE, 0.0, x) for x in var]
    flat = [x == 0.0 for x in v]
    c1, c2 = _TINY_C

    def ssim(i, j):
        c = np.where(flat[i] | flat[j], 0.0, cov[i, j])
        mi, mj = mu[i], mu[j]
        s = ((2.0 * mi * mj + c1) * (2.0 * c + c2)) / ((mi * mi + mj * mj + c1) * (v[i] + v[j] + c2))
        return np.clip(s, -1.0, 1.0)  # |cov| <= s_i s_j; the clip only removes float error

    q_ab, q_af, q_bf = ssim(0, 1), ssim(0, 2), ssim(1, 2)
    both = flat[0] & flat[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        lam = np.where(both, 0.5, v[0] / (v[0] + v[1]))
    return _mean(np.where(q_ab >= 0.75, lam * q_af + (1.0 - lam) * q_bf, np.maximum(q_af, q_bf)))


def _checked(value: float | str) -> float:
    if isinstance(value, str):
        raise InputError(value)
    return value


def _yang_score(sources, fused, key: str) -> float:
    a, b, f = _two(sources, fused)
    if _is_constant(a) and _is_constant(b):
        raise InputError(f"{key} is undefined when both sources are constant (their local variances are 0 "
                         "everywhere and the reference's value is round-off)")
    return _checked(_yang_family_scores(a, b, f)[key])


def yang_quality(sources, fused, *, ground_truth=None) -> float:
    """``Q_Y``: Yang's SSIM-based fusion metric as coded in Zheng Liu's toolbox (``metricYang``).

    Local SSIM with a 7x7 Gaussian (sigma 1.5), C1 = C2 = 2e-16, 'valid'; lambda = s_A^2/(s_A^2+s_B^2);
    Q = lambda SSIM(A,F) + (1-lambda) SSIM(B,F) where SSIM(A,B) >= 0.75, else max(SSIM(A,F), SSIM(B,F));
    Q_Y = mean(Q). Ideal 1.

    Undefined when a 7x7 window is flat in both sources and the reference's round-off makes both
    variances exactly 0 there (lambda = 0/0; reproduced, see the module docstring): the reference
    returns NaN, this function raises :class:`InputError` (also for two constant sources).
    ``Q_Y_yl`` has no such hole and equals ``Q_Y`` whenever ``Q_Y`` is defined.

    Reference: C. Yang, J. Zhang, X. Wang, X. Liu, "A novel similarity based quality metric for image
    fusion", Information Fusion 9(2), 2008; code Z. Liu et al., TPAMI 2012.
    """
    return _yang_score(sources, fused, "Q_Y")


def yang_quality_yl(sources, fused, *, ground_truth=None) -> float:
    """``Q_Y_yl``: Yang's metric, Yu Liu's corrected copy (MFIF-Metrics ``metricYang``).

    As ``Q_Y`` but 0.5 is added to both source variances where both are 0 (lambda = 0.5 there), so
    it is finite on every image pair except two constant sources (:class:`InputError`). Ideal 1. This
    is the Q_Y of published multi-focus tables (Liu et al. 2020).

    Reference: C. Yang et al., Information Fusion 9(2), 2008; code MFIF-Metrics (Y. Liu 2020).
    """
    return _yang_score(sources, fused, "Q_Y_yl")


def yang_quality_stable(sources, fused, *, ground_truth=None) -> float:
    """``Q_Y_stable``: Yang's metric as ``Q_Y_yl``, with flat windows handled exactly, not by round-off.

    ``Q_Y_yl`` uses C1 = C2 = 2e-16, so in a 7x7 window that is flat (constant) in an image its
    SSIM terms are ratios of round-off (E[x^2] - E[x]^2 ~ +-1e-11): values of 10^5, weights lambda
    outside [0, 1], and means like 252 on real photographs. Here a local variance below
    :data:`FLAT_VARIANCE` (1e-6 grey levels^2, far below the smallest real one, 1.34e-3) is exactly
    0 and the covariance of a flat window with anything is 0; then, as in Q_Y_yl, lambda = 0.5
    where both sources are flat, SSIM(x, y) of two flat windows is the luminance term
    2 mu_x mu_y / (mu_x^2 + mu_y^2), of one flat and one textured window 0 (up to C). Every local
    value lies in [-1, 1], so Q_Y_stable does. Wherever no window of A, B or F is flat it equals
    ``Q_Y_yl`` (same statistics, same formula: ~1e-15). Ideal 1.

    Reference: C. Yang et al., Information Fusion 9(2), 2008 (the metric), Yu Liu's MFIF-Metrics
    (the 0.5 weight of flat windows); the flat-window floor is ours.
    """
    return _yang_score(sources, fused, "Q_Y_stable")


_ZL = "Zheng Liu's imageFusionMetrics (TPAMI 2012)"
_SSIM_RANGE = (-1.0, 1.0)  # every local SSIM is in [-1, 1]; these are weighted means of them
_YL = "Yu Liu's MFIF-Metrics (Information Fusion 2020)"

METRICS: tuple[Metric, ...] = (
    Metric(name="SSIM", function=ssim_mean, higher_is_better=True, value_range=_SSIM_RANGE,
           reference="Wang et al. 2004, (ssim_index(A,F)+ssim_index(B,F))/2"),
    Metric(name="SSIM_vifb", function=ssim_sum_vifb, higher_is_better=True, value_range=(-2.0, 2.0),
           reference="Wang et al. 2004, VIFB metricsSsim (sum over sources)"),
    Metric(name="Q_S", function=piella_quality, higher_is_better=True, value_range=_SSIM_RANGE,
           reference=f"Piella & Heijmans 2003, {_ZL} metricPeilla sw=1"),
    Metric(name="Q_S_yl", function=piella_quality_yl, higher_is_better=True, value_range=_SSIM_RANGE,
           reference=f"Piella & Heijmans 2003, {_YL} metricPeilla sw=1"),
    Metric(name="Q_W_yl", function=piella_weighted_quality_yl, higher_is_better=True, value_range=_SSIM_RANGE,
           reference=f"Piella & Heijmans 2003, {_YL} metricPeilla sw=2"),
    Metric(name="Q_C", function=cvejic_quality, higher_is_better=True, value_range=_SSIM_RANGE,
           reference=f"Cvejic et al. 2005, {_ZL} metricCvejic sw=2"),
    Metric(name="Q_C_yl", function=cvejic_quality_yl, higher_is_better=True, value_range=_SSIM_RANGE,
           reference=f"Cvejic et al. 2005, {_YL} metricCvejic sw=2"),
    Metric(name="Q_Y", function=yang_quality, higher_is_better=True, value_range=_SSIM_RANGE,
           reference=f"Yang et al. 2008, {_ZL} metricYang"),
    Metric(name="Q_Y_yl", function=yang_quality_yl, higher_is_better=True, value_range=_SSIM_RANGE,
           reference=f"Yang et al. 2008, {_YL} metricYang"),
    Metric(name="Q_Y_stable", function=yang_quality_stable, higher_is_better=True,
           reference=f"Yang et al. 2008, {_YL} metricYang with an exact floor for flat windows (ours)",
           value_range=_SSIM_RANGE),
)
