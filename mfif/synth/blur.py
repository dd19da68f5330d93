"""Blur models for synthetic multi-focus data: Gaussian kernels and the papers' schedules, and a
defocus (disk / thin-lens) PSF whose radius grows with the distance from the focal plane.

Arrays here are float32 images laid out (H, W) or (H, W, C) (OpenCV order; the recipes convert to
the library's (C, H, W) at the end). Borders are extended by reflection (``BORDER_REFLECT_101``).

Schedules (see the papers in ``shared/papers``):

- Liu et al. 2017: five *cumulative* Gaussian blurs, sigma = 2, kernel cut to 7x7
  (:func:`liu_blur_levels`).
- IFCNN (Zhang et al. 2020): kernel radius ``kr`` in 1..15, kernel size ``2 kr + 1`` and
  ``sigma = 0.3 (kr - 1) + 0.8`` (OpenCV's rule for a given size; :func:`ifcnn_sigma`).
- Hourglass (Guerrero et al. 2019): ``sigma ~ U(1, 5)``; the kernel size is not given, we cut at
  3 sigma (:func:`gaussian_ksize`).

Defocus: with depth ``z`` measured as normalised disparity (inverse distance, 0 = near, 1 = far)
a thin lens focused at ``z_f`` has a circle of confusion whose radius is linear in ``|z - z_f|``;
:func:`coc_radius` adds a depth of field within which the radius is exactly 0.
:func:`disk_kernel` is the pixel-integrated (anti-aliased) uniform disk; :func:`defocus_blur`
applies it, blurring large radii at a reduced resolution to keep the cost flat
(``cv2.filter2D`` switches to a DFT above 11x11 kernels, ~7x slower).

Example:
    >>> import numpy as np
    >>> k = disk_kernel(3.0)
    >>> k.shape, round(float(k.sum()), 6)
    ((7, 7), 1.0)
    >>> ifcnn_sigma(1), ifcnn_sigma(15)
    (0.8, 5.0)
"""
from __future__ import annotations

import math
from functools import lru_cache

import cv2
import numpy as np

_BORDER = cv2.BORDER_REFLECT_101
# filter2D uses a direct (fast) path for kernels up to 11x11: radius 5
_DIRECT_MAX_RADIUS = 5.0

PSF_KINDS = ("gaussian", "disk")


# ----------------------------------------------------------------------------------------------
# Gaussian


def gaussian_ksize(sigma: float, truncate: float = 3.0) -> int:
    """Odd kernel size covering ``truncate`` standard deviations on each side."""
    return 2 * int(math.ceil(truncate * float(sigma))) + 1


def ifcnn_sigma(kr: int) -> float:
    """IFCNN's sigma for kernel radius ``kr`` (kernel size ``2 kr + 1``): ``0.3 (kr - 1) + 0.8``."""
    return round(0.3 * (int(kr) - 1) + 0.8, 10)


def gaussian_kernel(sigma: float, ksize: int | None = None) -> np.ndarray:
    """Normalised 2-D Gaussian kernel (ksize, ksize), float32; ``ksize`` defaults to 3 sigma."""
    ksize = gaussian_ksize(sigma) if ksize is None else int(ksize)
    if ksize < 1 or ksize % 2 == 0:
        raise ValueError(f"Gaussian kernel size must be odd and positive, got {ksize}")
    g = cv2.getGaussianKernel(ksize, float(sigma), cv2.CV_64F)
    return (g @ g.T).astype(np.float32)


def gaussian_blur(image: np.ndarray, sigma: float, ksize: int | None = None) -> np.ndarray:
    """Gaussian blur of an (H, W[, C]) float32 image; sigma <= 0 returns a copy."""
    if sigma <= 0:
        return np.array(image, dtype=np.float32, copy=True)
    ksize = gaussian_ksize(sigma) if ksize is None else int(ksize)
    return _cv(cv2.GaussianBlur, image, (ksize, ksize), float(sigma), sigmaY=float(sigma), borderType=_BORDER)


def liu_blur_levels(image: np.ndarray, levels: int = 5, sigma: float = 2.0, ksize: int = 7) -> list[np.ndarray]:
    """Liu et al.'s cumulative blurs: level k is the sharp image blurred k times (k = 1..levels)."""
    out, cur = [], np.asarray(image, dtype=np.float32)
    for _ in range(levels):
        cur = gaussian_blur(cur, sigma, ksize)
        out.append(cur)
    return out


# ----------------------------------------------------------------------------------------------
# defocus (disk PSF)


def coc_radius(depth, focus_depth: float, scale: float, dof: float = 0.0):
    """Thin-lens circle-of-confusion radius in pixels.

    Args:
        depth: normalised disparity-like depth (scalar or array), 0 = near, 1 = far.
        focus_depth: depth of the focal plane.
        scale: radius (pixels) per unit of depth difference (aperture and magnification).
        dof: half-width of the depth of field: radius is exactly 0 within it.
    """
    d = np.abs(np.asarray(depth, dtype=np.float64) - float(focus_depth)) - float(dof)
    r = float(scale) * np.maximum(d, 0.0)
    return float(r) if np.ndim(r) == 0 else r


@lru_cache(maxsize=256)
def _disk_kernel_cached(radius_q: int, supersample: int) -> np.ndarray:
    radius = radius_q / 64.0
    half = int(math.ceil(radius - 0.5)) if radius > 0.5 else 0
    n = 2 * half + 1
    s = supersample
    # sub-pixel sample centres of every pixel
    offs = (np.arange(s) + 0.5) / s - 0.5
    coords = np.arange(-half, half + 1)
    fine = (coords[:, None] + offs[None, :]).ravel()  # (n*s,)
    yy, xx = np.meshgrid(fine, fine, indexing="ij")
    inside = (yy * yy + xx * xx <= radius * radius).astype(np.float64)
    cover = inside.reshape(n, s, n, s).mean(axis=(1, 3))
    if cover.sum() == 0:  # radius smaller than a sub-sample: a delta
        cover[half, half] = 1.0
    k = (cover / cover.sum()).astype(np.float32)
    k.setflags(write=False)
    return k


def disk_kernel(radius: float, supersample: int = 8) -> np.ndarray:
    """Uniform disk PSF of ``radius`` pixels integrated over each pixel (anti-aliased), sum 1.

    The radius is quantised to 1/64 px (kernels are cached). Radii below 0.5 px give a delta.
    """
    if radius < 0:
        raise ValueError(f"disk radius must be >= 0, got {radius}")
    return _disk_kernel_cached(int(round(float(radius) * 64)), int(supersample))


def _cv(fn, image: np.ndarray, *args, **kwargs) -> np.ndarray:
    """Run an OpenCV filter over (H, W) or (H, W, C) with any C (OpenCV caps channels at 4)."""
    img = np.ascontiguousarray(image, dtype=np.float32)
    if img.ndim == 3 and img.shape[2] > 4:
        parts = [fn(np.ascontiguousarray(img[..., i:i + 4]), *args, **kwargs) for i in range(0, img.shape[2], 4)]
        parts = [p[..., None] if p.ndim == 2 else p for p in parts]
        return np.concatenate(parts, axis=2)
    out = fn(img, *args, **kwargs)
    if img.ndim == 3 and out.ndim == 2:
        out = out[..., None]
    return out


def defocus_blur(image: np.ndarray, radius: float) -> np.ndarray:
    """Blur an (H, W[, C]) float32 image with a disk PSF of ``radius`` pixels.

    Radii above 5 px are blurred at 1/2, 1/4, ... resolution (area downsampling, the scaled disk,
    bilinear upsampling) so the kernel stays within OpenCV's direct 11x11 path; the extra smoothing
    is about one pixel of the reduced grid, small against the blur itself. Reach of the result:
    at most ``ceil(radius) + 3 factor`` pixels (:func:`defocus_support`). Radius < 0.5 returns a copy.
    """
    img = np.asarray(image, dtype=np.float32)
    if radius < 0.5:
        return np.array(img, copy=True)
    factor = 1
    while radius / factor > _DIRECT_MAX_RADIUS and min(img.shape[:2]) // (factor * 2) >= 8:
        factor *= 2
    if factor == 1:
        return _cv(cv2.filter2D, img, -1, disk_kernel(radius), borderType=_BORDER)
    h, w = img.shape[:2]
    small = _cv(cv2.resize, img, (max(1, -(-w // factor)), max(1, -(-h // factor))), interpolation=cv2.INTER_AREA)
    small = _cv(cv2.filter2D, small, -1, disk_kernel(radius / factor), borderType=_BORDER)
    return _cv(cv2.resize, small, (w, h), interpolation=cv2.INTER_LINEAR)


def defocus_support(radius: float, kind: str = "disk", sigma_truncate: float = 3.0) -> int:
    """How far (pixels) a blur of this size can spread a value: the spill band width."""
    if kind == "gaussian":  # a square (separable) kernel reaches sqrt(2) x its half-size diagonally
        return 0 if radius <= 0 else int(math.ceil(gaussian_ksize(radius, sigma_truncate) // 2 * math.sqrt(2)))
    if radius < 0.5:
        return 0
    factor = 1
    while radius / factor > _DIRECT_MAX_RADIUS:
        factor *= 2
    return int(math.ceil(radius)) + (0 if factor == 1 else 3 * factor)


def psf_blur(image: np.ndarray, kind: str, size: float) -> np.ndarray:
    """Blur with the named PSF: ``"gaussian"`` (size = sigma, cut at 3 sigma) or ``"disk"`` (size = radius)."""
    if kind == "gaussian":
        return gaussian_blur(image, size)
    if kind == "disk":
        return defocus_blur(image, size)
    raise ValueError(f"unknown PSF {kind!r} (choose from {', '.join(PSF_KINDS)})")


__all__ = [
    "PSF_KINDS", "gaussian_ksize", "ifcnn_sigma", "gaussian_kernel", "gaussian_blur", "liu_blur_levels",
    "coc_radius", "disk_kernel", "defocus_blur", "defocus_support", "psf_blur",
]
