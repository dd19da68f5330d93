"""Fusion metrics, information-theory family: Q_MI, Q_TE, Q_TE_nava, Q_NCIE, MI_vifb, CE_vifb.

Each metric reproduces the MATLAB code the field uses (see ``shared/refmetrics/NOTES.md``):

* Zheng Liu's toolbox (``metricMI``, ``metricWang``; TPAMI 2012 survey) for Q_MI, Q_TE,
  Q_TE_nava and Q_NCIE. These first stretch every image with ZL's ``normalize1``
  (``round((x - min) / (max - min) * 255)``) and work on 256 x 256 joint histograms, log2.
* VIFB (``metricsMutinf``, ``metricsCross_entropy``) for MI_vifb (nats) and CE_vifb (bits).

Images arrive as grey float64 in [0, 255] via :func:`mfif.metrics._common.prepare`.

Constant images. ``normalize1`` divides by ``max - min``; the MATLAB code then fails (NaN index).
Here a constant image is stretched to all zeros (as ZL's own all-zero branch and VIFB do), so the
metrics stay defined wherever their formula is; where the formula itself is 0/0 (Q_MI with a
constant source *and* a constant fused image, Q_TE_nava with two constant sources) an
:class:`~mfif.errors.InputError` says so.
"""
from __future__ import annotations

import numpy as np

from mfif.errors import InputError
from mfif.metrics._common import Metric, prepare

_LEVELS = 256


# ----------------------------------------------------------------------------------------------
# helpers


def _round_half_away(x: np.ndarray) -> np.ndarray:
    """MATLAB ``round``: halves go away from zero (numpy rounds them to even)."""
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def _normalize1(image: np.ndarray) -> np.ndarray:
    """Zheng Liu's ``normalize1``: min-max stretch to [0, 255] and round to integers.

    A constant image becomes all zeros (the MATLAB code divides by zero there).
    """
    lo = image.min()
    hi = image.max()
    if hi == lo:
        return np.zeros_like(image)
    return _round_half_away((image - lo) / (hi - lo) * 255.0)


def _levels(image: np.ndarray) -> np.ndarray:
    """Integer grey levels 0..255 as a flat int64 index array."""
    return image.astype(np.int64).ravel()


def _joint_histogram(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Normalised 256 x 256 joint histogram ``p[i, j]`` = P(x = i, y = j) of two level arrays."""
    counts = np.bincount(x * _LEVELS + y, minlength=_LEVELS * _LEVELS).astype(np.float64)
    return counts.reshape(_LEVELS, _LEVELS) / counts.sum()


def _entropy(p: np.ndarray, log=np.log2) -> float:
    """Shannon entropy of a probability array (zero cells skipped)."""
    nz = p[p > 0]
    return float(-np.sum(nz * log(nz)))


def _mutual_info_zl(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float, float]:
    """ZL ``mutual_info``: (MI, H(x, y), H(x), H(y)) in bits from the joint histogram."""
    h = _joint_histogram(x, y)
    hx = _entropy(h.sum(axis=1))
    hy = _entropy(h.sum(axis=0))
    hxy = _entropy(h)
    return hx + hy - hxy, hxy, hx, hy


def _tsallis_zl(x: np.ndarray, y: np.ndarray, q: float) -> float:
    """ZL ``tsallis``: Tsallis mutual information of order q, as coded.

    ``I_q = (1 - sum_ij p(i,j)^q / (m1(i) m2(j))^(q-1)) / (1 - q)`` over the cells with a
    non-zero denominator, where p(i, j) = P(x = i, y = j). The MATLAB code's marginals are
    transposed: ``m1 = sum(h)`` is the marginal of *y* and ``m2 = sum(h')`` that of *x*, so the
    denominator is p_y(i) p_x(j). Reproduced on purpose (it changes the value a lot).
    """
    h = _joint_histogram(x, y)
    m1 = h.sum(axis=0)  # marginal of y, indexed by i (the x level of h) -- the quirk
    m2 = h.sum(axis=1)  # marginal of x, indexed by j
    denom = np.outer(m1, m2)
    nz = denom != 0
    total = np.sum(h[nz] ** q / denom[nz] ** (q - 1.0))
    return float((1.0 - total) / (1.0 - q)) + 0.0  # no -0.0


# ----------------------------------------------------------------------------------------------
# metrics


def normalized_mutual_information(sources, fused, *, ground_truth=None) -> float:
    """``Q_MI``: Hossny et al. 2008 normalised mutual information (ZL ``metricMI`` sw=1).

    After ``normalize1`` of A, B and F, with 256-bin histograms and log2::

        Q_MI = 2 * ( MI(A,F) / (H(A) + H(F)) + MI(B,F) / (H(B) + H(F)) )      (0..2)

    Raises InputError when a source and the fused image are both constant (0/0).
    """
    (a, b), f = prepare(sources, fused, n_sources=2)
    fl = _levels(_normalize1(f))
    total = 0.0
    for i, s in enumerate((a, b)):
        mi, _, hs, hf = _mutual_info_zl(_levels(_normalize1(s)), fl)
        if hs + hf == 0:
            raise InputError(f"Q_MI is undefined: source {i} and the fused image are both constant")
        total += mi / (hs + hf)
    return 2.0 * total


def tsallis_mutual_information(sources, fused, *, ground_truth=None) -> float:
    """``Q_TE``: Cvejic et al. 2006 Tsallis-entropy metric, q = 1.85 (ZL ``metricMI`` sw=2).

    ``Q_TE = I_q(A,F) + I_q(B,F)`` after ``normalize1``, with ZL's transposed marginals
    (see :func:`_tsallis_zl`). Unbounded; this is what MFIF-Metrics and MEFB report as Q_TE.
    """
    (a, b), f = prepare(sources, fused, n_sources=2)
    fl = _levels(_normalize1(f))
    q = 1.85
    return _tsallis_zl(_levels(_normalize1(a)), fl, q) + _tsallis_zl(_levels(_normalize1(b)), fl, q)


def tsallis_mutual_information_nava(sources, fused, *, ground_truth=None) -> float:
    """``Q_TE_nava``: Nava et al. normalised Tsallis metric, q = 0.43137 (ZL ``metricMI`` sw=3).

    ``(I_q(A,F) + I_q(B,F)) / (H(A)^q + H(B)^q + I_q(A,B))`` with Shannon H in bits, after
    ``normalize1`` and with ZL's transposed Tsallis marginals. This is what ZL's ``fusionAssess.m``
    labels Q_TE. Raises InputError when both sources are constant (0/0).
    """
    (a, b), f = prepare(sources, fused, n_sources=2)
    al, bl, fl = (_levels(_normalize1(x)) for x in (a, b, f))
    q = 0.43137
    num = _tsallis_zl(al, fl, q) + _tsallis_zl(bl, fl, q)
    _, _, ha, hb = _mutual_info_zl(al, bl)
    den = ha**q + hb**q + _tsallis_zl(al, bl, q)
    if den == 0:
        raise InputError("Q_TE_nava is undefined: both sources are constant")
    return float(num / den)


def nonlinear_correlation_information_entropy(sources, fused, *, ground_truth=None) -> float:
    """``Q_NCIE``: Wang et al. nonlinear correlation information entropy (ZL ``metricWang``).

    After ``normalize1``: ``NCC(X,Y) = (H(X) + H(Y) - H(X,Y)) / log2(256)`` from 256-bin
    histograms; R = [[1, NCC_AB, NCC_AF], [NCC_AB, 1, NCC_BF], [NCC_AF, NCC_BF, 1]] with
    eigenvalues l; ``Q_NCIE = 1 + sum (l/3) log_256(l/3)``. Eigenvalues <= 0 (only round-off
    below zero) contribute 0 (the limit of x log x); MATLAB would return a complex or NaN value.
    """
    (a, b), f = prepare(sources, fused, n_sources=2)
    al, bl, fl = (_levels(_normalize1(x)) for x in (a, b, f))
    scale = np.log2(_LEVELS)

    def ncc(x, y):
        h = _joint_histogram(x, y)
        return (_entropy(h.sum(axis=0)) / scale + _entropy(h.sum(axis=1)) / scale
                - _entropy(h) / scale)

    nab, naf, nbf = ncc(al, bl), ncc(al, fl), ncc(bl, fl)
    r = np.array([[1.0, nab, naf], [nab, 1.0, nbf], [naf, nbf, 1.0]])
    lam = np.linalg.eigvalsh(r)
    lam = lam[lam > 0]
    hr = -np.sum(lam * np.log2(lam / 3.0) / 3.0) / scale
    return float(1.0 - hr)


def _vifb_levels(image: np.ndarray) -> np.ndarray:
    """VIFB ``mutinf`` quantisation: min-max to [0, 1] (constant -> 0), ``int16(x * 255)``."""
    lo, hi = image.min(), image.max()
    if hi == lo:
        return np.zeros(image.size, dtype=np.int64)
    return _round_half_away((image - lo) / (hi - lo) * 255.0).astype(np.int64).ravel()


def mutual_information_vifb(sources, fused, *, ground_truth=None) -> float:
    """``MI_vifb``: Qu et al. 2002 mutual information as VIFB computes it, ``MI(A,F) + MI(B,F)``.

    Natural log (nats); each image min-max scaled to [0, 1] then ``int16(x * 255)`` -> 256 bins.
    """
    (a, b), f = prepare(sources, fused, n_sources=2)
    fl = _vifb_levels(f)
    total = 0.0
    for s in (a, b):
        h = _joint_histogram(_vifb_levels(s), fl)
        total += (_entropy(h.sum(axis=1), np.log) + _entropy(h.sum(axis=0), np.log)
                  - _entropy(h, np.log))
    return total


def cross_entropy_vifb(sources, fused, *, ground_truth=None) -> float:
    """``CE_vifb``: cross entropy as VIFB computes it (lower is better).

    ``(KL(A||F) + KL(B||F)) / 2`` with 256-bin histograms of the grey levels, log2, skipping the
    bins where either probability is zero.
    """
    (a, b), f = prepare(sources, fused, n_sources=2)
    pf = np.bincount(_levels(f), minlength=_LEVELS) / f.size
    total = 0.0
    for s in (a, b):
        ps = np.bincount(_levels(s), minlength=_LEVELS) / s.size
        nz = (ps != 0) & (pf != 0)
        total += float(np.sum(ps[nz] * np.log2(ps[nz] / pf[nz])))
    return total / 2.0


_ZL = "Zheng Liu's imageFusionMetrics (TPAMI 2012 survey), "

METRICS: tuple[Metric, ...] = (
    Metric(name="Q_MI", function=normalized_mutual_information, higher_is_better=True, value_range=(0.0, 2.0),
           reference="Hossny et al. 2008; " + _ZL + "metricMI(A,B,F,1)"),
    Metric(name="Q_TE", function=tsallis_mutual_information, higher_is_better=True,
           reference="Cvejic et al. 2006, q = 1.85; " + _ZL + "metricMI(A,B,F,2) "
                     "(transposed marginals as coded); = MFIF-Metrics/MEFB Q_TE"),
    Metric(name="Q_TE_nava", function=tsallis_mutual_information_nava, higher_is_better=True,
           reference="Nava et al. 2007, q = 0.43137; " + _ZL + "metricMI(A,B,F,3) "
                     "(what ZL's fusionAssess.m labels Q_TE)"),
    Metric(name="Q_NCIE", function=nonlinear_correlation_information_entropy, higher_is_better=True,
           reference="Wang et al. 2008; " + _ZL + "metricWang"),
    Metric(name="MI_vifb", function=mutual_information_vifb, higher_is_better=True,
           reference="Qu et al. 2002; VIFB metricsMutinf (nats)"),
    Metric(name="CE_vifb", function=cross_entropy_vifb, higher_is_better=False,
           reference="Bulanon et al. 2009; VIFB metricsCross_entropy"),
)
