"""Fusion metrics, no-reference family: statistics of the fused image alone.

EN (entropy), SD (standard deviation), AG (average gradient), SF (spatial frequency) and EI (edge
intensity), each as Yu Liu's MFIF-Metrics (``_yl``) and VIFB (``_vifb``) compute them
(``shared/refmetrics/NOTES.md``); the two toolboxes differ for SD and AG. The plain keys
``EN``, ``SD``, ``AG``, ``SF`` are aliases of the ``_yl`` definitions.

Every function has the common signature ``(sources, fused, *, ground_truth=None)`` and ignores
``sources`` (it may be None or empty). The fused image is turned grey as the reference does
(:func:`mfif.metrics._common.to_grey_255`). All values are defined for constant images (0 for
SD, AG, SF, EI and EN).
"""
from __future__ import annotations

import numpy as np

from mfif.errors import InputError
from mfif.metrics._common import Metric, to_grey_255


def _fused(fused) -> np.ndarray:
    return to_grey_255(fused, "fused")


def entropy(sources, fused, *, ground_truth=None) -> float:
    """``EN_yl`` = ``EN_vifb``: Shannon entropy (bits) of the 256-bin grey-level histogram of F.

    ``EN = -sum p_i log2 p_i`` over non-empty bins (MFIF-Metrics ``EN(F, 256)``, VIFB
    ``metricsEntropy``). 0..8; 0 for a constant image.
    """
    f = _fused(fused)
    p = np.bincount(f.astype(np.int64).ravel(), minlength=256) / f.size
    p = p[p > 0]
    return 0.0 - float(np.sum(p * np.log2(p)))


def standard_deviation_yl(sources, fused, *, ground_truth=None) -> float:
    """``SD_yl``: MFIF-Metrics ``SD``: ``mean(std(F))``, the mean of the column-wise sample
    standard deviations (N - 1). As MATLAB's ``std``, a one-row image gives the std of that row
    and a single pixel gives 0."""
    f = _fused(fused)
    if f.shape[0] == 1:
        f = f.T
    if f.shape[0] == 1:
        return 0.0
    return float(np.mean(np.std(f, axis=0, ddof=1)))


def standard_deviation_vifb(sources, fused, *, ground_truth=None) -> float:
    """``SD_vifb``: VIFB ``metricsVariance``: population standard deviation of all pixels,
    ``sqrt(sum((F - mean)^2) / (M N))``."""
    f = _fused(fused)
    return float(np.sqrt(np.sum((f - f.mean()) ** 2) / f.size))


def average_gradient_yl(sources, fused, *, ground_truth=None) -> float:
    """``AG_yl``: MFIF-Metrics ``AG``: forward differences (``imfilter`` with [-1 1] and its
    transpose, replicate borders, so the last row/column difference is 0);
    ``mean(sqrt((gx^2 + gy^2) / 2))`` over all M N pixels."""
    f = _fused(fused)
    gx = np.zeros_like(f)
    gy = np.zeros_like(f)
    gx[:-1, :] = f[1:, :] - f[:-1, :]
    gy[:, :-1] = f[:, 1:] - f[:, :-1]
    return float(np.mean(np.sqrt((gx**2 + gy**2) / 2)))


def average_gradient_vifb(sources, fused, *, ground_truth=None) -> float:
    """``AG_vifb``: VIFB ``metricsAvg_gradient``: MATLAB ``gradient`` (central differences inside,
    one-sided at the borders), ``sum(sqrt((gx^2 + gy^2) / 2)) / ((M - 1)(N - 1))``.
    Raises InputError for an image with a single row or column (division by zero)."""
    f = _fused(fused)
    rows, cols = f.shape
    if rows < 2 or cols < 2:
        raise InputError(f"AG_vifb needs an image of at least 2x2 pixels, got {cols}x{rows}")
    gy, gx = np.gradient(f)
    return float(np.sum(np.sqrt((gx**2 + gy**2) / 2)) / ((rows - 1) * (cols - 1)))


def spatial_frequency(sources, fused, *, ground_truth=None) -> float:
    """``SF_yl`` = ``SF_vifb``: spatial frequency (Eskicioglu & Fisher 1995) as both toolboxes code it:
    ``sqrt( sum(row diff^2) / (M N) + sum(column diff^2) / (M N) )``."""
    f = _fused(fused)
    d_r = f[1:, :] - f[:-1, :]
    d_c = f[:, 1:] - f[:, :-1]
    return float(np.sqrt(np.sum(d_r**2) / f.size + np.sum(d_c**2) / f.size))


def edge_intensity(sources, fused, *, ground_truth=None) -> float:
    """``EI_yl`` = ``EI_vifb``: edge intensity (Rajalingam & Priya 2018; ``metricsEdge_intensity``):
    mean Sobel magnitude, ``fspecial('sobel')`` and its transpose via ``imfilter`` with replicate
    borders."""
    f = _fused(fused)
    p = np.pad(f, 1, mode="edge")
    # fspecial('sobel') = [1 2 1; 0 0 0; -1 -2 -1] (correlation): gx = top rows - bottom rows
    dv = p[:-2] - p[2:]  # (H, W+2)
    gx = dv[:, :-2] + 2 * dv[:, 1:-1] + dv[:, 2:]
    dh = p[:, :-2] - p[:, 2:]  # (H+2, W)
    gy = dh[:-2] + 2 * dh[1:-1] + dh[2:]
    return float(np.mean(np.sqrt(gx * gx + gy * gy)))


_YL = "Yu Liu's MFIF-Metrics "
_VIFB = "VIFB "

METRICS: tuple[Metric, ...] = (
    Metric(name="EN_yl", function=entropy, higher_is_better=True, n_sources=0,
           reference="Shannon entropy; " + _YL + "EN(F,256)"),
    Metric(name="SD_yl", function=standard_deviation_yl, higher_is_better=True, n_sources=0,
           reference=_YL + "SD: mean of column-wise sample std"),
    Metric(name="AG_yl", function=average_gradient_yl, higher_is_better=True, n_sources=0,
           reference=_YL + "AG: forward differences"),
    Metric(name="SF_yl", function=spatial_frequency, higher_is_better=True, n_sources=0,
           reference="Eskicioglu & Fisher 1995; " + _YL + "SF"),
    Metric(name="EI_yl", function=edge_intensity, higher_is_better=True, n_sources=0,
           reference="Rajalingam & Priya 2018; " + _YL + "metricsEdge_intensity"),
    Metric(name="EN_vifb", function=entropy, higher_is_better=True, n_sources=0,
           reference="Shannon entropy; " + _VIFB + "metricsEntropy (= EN_yl)"),
    Metric(name="SD_vifb", function=standard_deviation_vifb, higher_is_better=True, n_sources=0,
           reference=_VIFB + "metricsVariance: population std of all pixels"),
    Metric(name="AG_vifb", function=average_gradient_vifb, higher_is_better=True, n_sources=0,
           reference="Cui et al. 2015; " + _VIFB + "metricsAvg_gradient: central differences"),
    Metric(name="SF_vifb", function=spatial_frequency, higher_is_better=True, n_sources=0,
           reference="Eskicioglu & Fisher 1995; " + _VIFB + "metricsSpatial_frequency (= SF_yl)"),
    Metric(name="EI_vifb", function=edge_intensity, higher_is_better=True, n_sources=0,
           reference="Rajalingam & Priya 2018; " + _VIFB + "metricsEdge_intensity (= EI_yl)"),
    # Plain keys asked for by the issue ("no-reference: EN, SF, AG, SD"): the _yl definitions.
    Metric(name="EN", function=entropy, higher_is_better=True, n_sources=0,
           reference="alias of EN_yl (Shannon entropy; " + _YL + "EN)"),
    Metric(name="SD", function=standard_deviation_yl, higher_is_better=True, n_sources=0,
           reference="alias of SD_yl (" + _YL + "SD: mean of column-wise sample std)"),
    Metric(name="AG", function=average_gradient_yl, higher_is_better=True, n_sources=0,
           reference="alias of AG_yl (" + _YL + "AG: forward differences)"),
    Metric(name="SF", function=spatial_frequency, higher_is_better=True, n_sources=0,
           reference="alias of SF_yl (Eskicioglu & Fisher 1995; " + _YL + "SF)"),
)
