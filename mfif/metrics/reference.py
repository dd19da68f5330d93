"""Fusion metrics, reference family: scores against a ground-truth image, and VIFB's source-based
"PSNR" / "RMSE".

Keys: ``SSIM_GT``, ``PSNR_GT``, ``GMSD_GT`` (need ``ground_truth=``), ``PSNR_vifb``, ``RMSE_vifb``.

The key ``SSIM`` (two sources, no ground truth) is in :mod:`mfif.metrics.structural`. Inputs are grey
images in [0, 255] (see :func:`mfif.metrics._common.to_grey_255`).
"""
from __future__ import annotations

import math

import numpy as np

from mfif.errors import InputError
from mfif.metrics._common import Metric, prepare, to_grey_255
from mfif.metrics.structural import filter_same, wang_ssim_map

__all__ = ["METRICS", "ssim_to_ground_truth", "psnr_to_ground_truth", "gmsd_to_ground_truth",
           "psnr_vifb", "rmse_vifb"]


def _with_ground_truth(sources, fused, ground_truth, key: str):
    """Grey fused image and ground truth (sources are checked for consistency when given)."""
    if ground_truth is None:
        raise InputError(f"{key} needs a ground-truth image (ground_truth=...)")
    f = to_grey_255(fused, "fused")
    for i, s in enumerate(sources if sources is not None else ()):
        shape = to_grey_255(s, f"source {i}").shape
        if shape != f.shape:
            raise InputError(f"source {i} has size {shape[1]}x{shape[0]} but the fused image is "
                             f"{f.shape[1]}x{f.shape[0]}")
    gt = to_grey_255(ground_truth, "ground truth")
    if gt.shape != f.shape:
        raise InputError(f"ground truth has size {gt.shape[1]}x{gt.shape[0]} but the fused image is "
                         f"{f.shape[1]}x{f.shape[0]}")
    return f, gt


def ssim_to_ground_truth(sources, fused, *, ground_truth=None) -> float:
    """``SSIM_GT``: Wang's SSIM between the ground truth and the fused image, ``ssim_index(GT, F)``
    (Gaussian 11x11, sigma 1.5, K = [0.01 0.03], L = 255, 'valid', mean of the map). Ideal 1.

    Reference: Z. Wang et al., IEEE TIP 13(4), 2004; used as in Y. Liu's MFIF-Metrics FR-IQA.
    """
    f, gt = _with_ground_truth(sources, fused, ground_truth, "SSIM_GT")
    return float(np.mean(wang_ssim_map(gt, f)))


def psnr_to_ground_truth(sources, fused, *, ground_truth=None) -> float:
    """``PSNR_GT``: 20 log10(255 / RMSE(GT, F)) in dB, RMSE over all pixels. Higher is better.

    Returns ``inf`` when F equals the ground truth (the reference ``PSNR.m`` raises an error there).

    Reference: Y. Liu's MFIF-Metrics ``FR-IQA/PSNR.m``.
    """
    f, gt = _with_ground_truth(sources, fused, ground_truth, "PSNR_GT")
    mse = float(np.mean((gt - f) ** 2))
    if mse == 0:
        return math.inf
    return 20.0 * math.log10(255.0 / math.sqrt(mse))


_GMSD_T = 170.0
_ONES3 = np.ones(3) / 3.0
_DIFF = np.array([1.0, 0.0, -1.0])


def _gmsd_prepare(x: np.ndarray) -> np.ndarray:
    # conv2(x, ones(2)/4, 'same') (mean of x(i:i+1, j:j+1), zero beyond the last row/column), then
    # keep every second row and column starting with the first.
    p = np.zeros((x.shape[0] + 1, x.shape[1] + 1))
    p[:-1, :-1] = x
    avg = 0.25 * (p[:-1, :-1] + p[1:, :-1] + p[:-1, 1:] + p[1:, 1:])
    return avg[::2, ::2]


def _gradient_magnitude(y: np.ndarray) -> np.ndarray:
    # Prewitt / 3 (conv2 'same', zero padding); the sign of the responses does not matter.
    gx = filter_same(y, _ONES3, _DIFF)
    gy = filter_same(y, _DIFF, _ONES3)
    return np.sqrt(gx * gx + gy * gy)


def gmsd_to_ground_truth(sources, fused, *, ground_truth=None) -> float:
    """``GMSD_GT``: gradient magnitude similarity deviation between ground truth and fused image.
    **Lower is better** (0 for F = GT).

    Both images are 2x2-averaged and downsampled by 2; gradient magnitudes m from Prewitt filters / 3;
    GMS = (2 m_GT m_F + T) / (m_GT^2 + m_F^2 + T), T = 170; GMSD = sample standard deviation of GMS.

    Reference: W. Xue, L. Zhang, X. Mou, A. C. Bovik, "Gradient magnitude similarity deviation: a highly
    efficient perceptual image quality index", IEEE TIP 23(2), 2014 (``GMSD.m``, as used by MFIF-Metrics).
    """
    f, gt = _with_ground_truth(sources, fused, ground_truth, "GMSD_GT")
    if min(f.shape) < 2:
        raise InputError(f"GMSD_GT needs images of at least 2x2 pixels, got {f.shape[1]}x{f.shape[0]}")
    m1 = _gradient_magnitude(_gmsd_prepare(gt))
    m2 = _gradient_magnitude(_gmsd_prepare(f))
    gms = (2.0 * m1 * m2 + _GMSD_T) / (m1 * m1 + m2 * m2 + _GMSD_T)
    return float(np.std(gms, ddof=1)) if gms.size > 1 else 0.0


def _vifb_mse(x: np.ndarray, f: np.ndarray) -> float:
    # VIFB's mse(a, b): sqrt(sum((a - b)^2)) / (M N) -- the root of the sum, not of the mean.
    return math.sqrt(float(np.sum((x - f) ** 2))) / x.size


def rmse_vifb(sources, fused, *, ground_truth=None) -> float:
    """``RMSE_vifb``: VIFB's "RMSE", (e(A, F) + e(B, F)) / 2 with e(X, F) = sqrt(sum (X - F)^2) / (M N).

    Not the usual RMSE (the square root is taken of the sum, then divided by the pixel count), kept
    for comparability with VIFB tables. Lower is better; 0 only for A = B = F.

    Reference: X. Zhang et al., "VIFB: a visible and infrared image fusion benchmark", CVPR-W 2020
    (``metricsRmse.m``).
    """
    (a, b), f = prepare(sources, fused, n_sources=2)
    return (_vifb_mse(a, f) + _vifb_mse(b, f)) / 2.0


def psnr_vifb(sources, fused, *, ground_truth=None) -> float:
    """``PSNR_vifb``: VIFB's "PSNR", 20 log10(255 / sqrt(RMSE_vifb)) with the non-standard
    ``RMSE_vifb`` (see :func:`rmse_vifb`). Higher is better; ``inf`` when A = B = F.

    Reference: X. Zhang et al., CVPR-W 2020 (``metricsPsnr.m``).
    """
    e = rmse_vifb(sources, fused)
    if e == 0:
        return math.inf
    return 20.0 * math.log10(255.0 / math.sqrt(e))


METRICS: tuple[Metric, ...] = (
    Metric(name="SSIM_GT", function=ssim_to_ground_truth, higher_is_better=True, needs_ground_truth=True,
           reference="Wang et al. 2004, ssim_index(GT,F) (MFIF-Metrics FR-IQA)", n_sources=None),
    Metric(name="PSNR_GT", function=psnr_to_ground_truth, higher_is_better=True, needs_ground_truth=True,
           reference="MFIF-Metrics FR-IQA/PSNR.m (inf when F == GT)", n_sources=None),
    Metric(name="GMSD_GT", function=gmsd_to_ground_truth, higher_is_better=False, needs_ground_truth=True,
           reference="Xue et al. 2014, GMSD.m (MFIF-Metrics FR-IQA)", n_sources=None),
    Metric(name="PSNR_vifb", function=psnr_vifb, higher_is_better=True,
           reference="VIFB metricsPsnr (non-standard, see docstring)"),
    Metric(name="RMSE_vifb", function=rmse_vifb, higher_is_better=False,
           reference="VIFB metricsRmse (non-standard, see docstring)"),
)
