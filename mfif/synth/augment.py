"""Augmentations for synthetic multi-focus samples.

Geometric transforms act on the photo, its masks, the frames, the ground truth and the focus maps
alike; photometric ones are split by what they model:

- colour jitter changes the *scene*: it is applied to the sharp photo before rendering, so the
  frames and the ground truth stay consistent (in-focus pixels still equal the ground truth);
- sensor noise and JPEG compression happen in the *camera*: they are applied to each frame
  independently and never to the ground truth;
- differences *between* frames (exposure, white balance, a sub-pixel misregistration) are drawn
  for every frame but one reference frame (chosen at random), which keeps the ground truth's
  geometry and colour: a stack registered and colour-matched to one of its frames.

Images are (H, W, C) float32 in [0, 1] here; masks (H, W).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Augment:
    """Which augmentations a recipe applies (all off by default).

    Attributes:
        hflip / vflip: random horizontal / vertical flips (probability 0.5 each).
        rot90: random multiples of 90 degrees.
        brightness / contrast / saturation: jitter amplitudes (0.1 = factor in [0.9, 1.1]).
        noise: maximum sensor noise, the standard deviation at mid-grey (Poisson-Gaussian:
            read noise and shot noise each up to this); 0 = off.
        jpeg: JPEG quality range (lo, hi) applied to each frame, or None.
        jpeg_probability: chance a frame is JPEG-compressed when ``jpeg`` is set.
        exposure: maximum exposure difference of a frame from the reference, in EV (stops):
            a gain ``2 ** U(-exposure, exposure)`` in linear light; 0 = off.
        white_balance: maximum white-balance difference: red and blue gains
            ``exp(U(-wb, wb))`` relative to green, in linear light; 0 = off.
        shift: maximum misregistration of a frame from the reference, pixels per axis
            (``U(-shift, shift)``, bicubic resampling); 0 = off.
    """

    hflip: bool = False
    vflip: bool = False
    rot90: bool = False
    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    noise: float = 0.0
    jpeg: tuple[int, int] | None = None
    jpeg_probability: float = 0.5
    exposure: float = 0.0
    white_balance: float = 0.0
    shift: float = 0.0

    @property
    def dihedral(self) -> bool:
        return self.hflip or self.vflip or self.rot90

    @property
    def jitter(self) -> bool:
        return self.brightness > 0 or self.contrast > 0 or self.saturation > 0


# ----------------------------------------------------------------------------------------------
# crops


def random_resized_crop_box(h: int, w: int, rng: np.random.Generator, *, scale: tuple[float, float] = (0.5, 1.0),
                            ratio: tuple[float, float] = (3 / 4, 4 / 3), tries: int = 10) -> tuple[int, int, int, int]:
    """A random crop (y0, x0, height, width) covering ``scale`` of the area with aspect ``ratio``
    (the usual RandomResizedCrop rule; falls back to the largest centred crop of that ratio)."""
    area = h * w
    log_r = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(tries):
        target = area * rng.uniform(*scale)
        ar = math.exp(rng.uniform(*log_r))
        cw = int(round(math.sqrt(target * ar)))
        ch = int(round(math.sqrt(target / ar)))
        if 0 < cw <= w and 0 < ch <= h:
            return int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1)), ch, cw
    in_ratio = w / h
    if in_ratio < ratio[0]:
        cw, ch = w, int(round(w / ratio[0]))
    elif in_ratio > ratio[1]:
        ch, cw = h, int(round(h * ratio[1]))
    else:
        ch, cw = h, w
    return (h - ch) // 2, (w - cw) // 2, ch, cw


def random_square_box(h: int, w: int, rng: np.random.Generator,
                      side_range: tuple[int, int]) -> tuple[int, int, int, int]:
    """A random square crop whose side (in source pixels) is drawn from ``side_range``,
    limited by the photo's shorter side."""
    lo = min(side_range[0], h, w)
    hi = min(side_range[1], h, w)
    side = int(rng.integers(lo, hi + 1)) if hi > lo else lo
    return int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1)), side, side


def crop_resize(arr: np.ndarray, box: tuple[int, int, int, int], out_hw: tuple[int, int], *,
                kind: str = "image") -> np.ndarray:
    """Crop ``box`` from an (H, W[, C]) array and resize it to ``out_hw``.

    ``kind``: ``"image"`` (area when shrinking, bicubic when enlarging, clipped to [0, 1]),
    ``"labels"`` (nearest neighbour) or ``"alpha"`` (bilinear).
    """
    y0, x0, ch, cw = box
    sub = arr[y0:y0 + ch, x0:x0 + cw]
    oh, ow = out_hw
    if (ch, cw) == (oh, ow):
        return np.ascontiguousarray(sub)
    if kind == "labels":
        return cv2.resize(np.ascontiguousarray(sub), (ow, oh), interpolation=cv2.INTER_NEAREST)
    if kind == "alpha":
        return np.clip(cv2.resize(np.ascontiguousarray(sub, dtype=np.float32), (ow, oh),
                                  interpolation=cv2.INTER_LINEAR), 0.0, 1.0)
    shrink = oh * ow <= ch * cw
    out = cv2.resize(np.ascontiguousarray(sub, dtype=np.float32), (ow, oh),
                     interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
    if out.ndim == 2 and sub.ndim == 3:
        out = out[..., None]
    return np.clip(out, 0.0, 1.0)


# ----------------------------------------------------------------------------------------------
# dihedral transforms


def random_dihedral(rng: np.random.Generator, aug: Augment) -> tuple[int, bool, bool]:
    """(quarter turns, flip vertical, flip horizontal) drawn according to ``aug``."""
    k = int(rng.integers(0, 4)) if aug.rot90 else 0
    fv = bool(rng.integers(0, 2)) if aug.vflip else False
    fh = bool(rng.integers(0, 2)) if aug.hflip else False
    return k, fv, fh


def apply_dihedral(arr: np.ndarray, code: tuple[int, bool, bool], axes: tuple[int, int] = (0, 1)) -> np.ndarray:
    """Apply a :func:`random_dihedral` code to the two spatial ``axes`` of ``arr`` (exact)."""
    k, fv, fh = code
    out = arr
    if fv:
        out = np.flip(out, axis=axes[0])
    if fh:
        out = np.flip(out, axis=axes[1])
    if k:
        out = np.rot90(out, k=k, axes=axes)
    return np.ascontiguousarray(out)


# ----------------------------------------------------------------------------------------------
# photometric


def colour_jitter(image: np.ndarray, rng: np.random.Generator, aug: Augment) -> np.ndarray:
    """Random brightness, contrast and saturation change of an (H, W, C) image (the scene)."""
    if not aug.jitter:
        return image
    out = image
    if aug.brightness > 0:
        out = out * np.float32(rng.uniform(1 - aug.brightness, 1 + aug.brightness))
    if aug.contrast > 0:
        # (reductions and BLAS products are summed in an order that depends on memory alignment:
        # float64 here and elementwise sums below keep every sample bit-reproducible)
        mean = np.float32(out.mean(dtype=np.float64))
        out = (out - mean) * np.float32(rng.uniform(1 - aug.contrast, 1 + aug.contrast)) + mean
    if aug.saturation > 0 and out.shape[2] == 3:
        grey = out[..., 0] * np.float32(0.299) + out[..., 1] * np.float32(0.587) + out[..., 2] * np.float32(0.114)
        factor = np.float32(rng.uniform(1 - aug.saturation, 1 + aug.saturation))
        out = grey[..., None] + (out - grey[..., None]) * factor
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def sensor_noise(frame: np.ndarray, rng: np.random.Generator, max_sigma: float) -> np.ndarray:
    """Poisson-Gaussian noise: variance ``read^2 + shot * x`` with read and shot noise each up to
    ``max_sigma`` (standard deviation at mid-grey for the shot part). Applied per frame."""
    if max_sigma <= 0:
        return frame
    read = rng.uniform(0.0, max_sigma)
    shot = rng.uniform(0.0, max_sigma) ** 2 / 0.5  # shot-noise sigma at x = 0.5 is up to max_sigma
    std = np.sqrt(np.float32(read * read) + np.float32(shot) * np.clip(frame, 0.0, 1.0))
    noisy = frame + std * rng.standard_normal(frame.shape, dtype=np.float32)
    return np.clip(noisy, 0.0, 1.0).astype(np.float32)


def jpeg_roundtrip(frame: np.ndarray, quality: int) -> np.ndarray:
    """Encode an (H, W, C) frame as 8-bit JPEG at ``quality`` and decode it again."""
    u8 = np.round(np.clip(frame, 0.0, 1.0) * 255.0).astype(np.uint8)
    bgr = u8[..., ::-1] if u8.shape[2] == 3 else u8
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(bgr), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    dec = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if dec.ndim == 2:
        dec = dec[..., None]
    elif dec.shape[2] == 3:
        dec = dec[..., ::-1]
    return dec.astype(np.float32) * np.float32(1.0 / 255.0)


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in [0, 1] to linear light (IEC 61966-2-1)."""
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.04045, x / np.float32(12.92), ((x + np.float32(0.055)) / np.float32(1.055)) ** 2.4
                    ).astype(np.float32)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    """Linear light to sRGB-encoded values, clipped to [0, 1] (highlights saturate)."""
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.0031308, x * np.float32(12.92),
                    np.float32(1.055) * x ** (1 / 2.4) - np.float32(0.055)).astype(np.float32)


def subpixel_shift(frame: np.ndarray, dy: float, dx: float) -> np.ndarray:
    """Translate an (H, W, C) frame by (dy, dx) pixels (bicubic, borders reflected)."""
    h, w = frame.shape[:2]
    m = np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]], np.float64)
    out = cv2.warpAffine(np.ascontiguousarray(frame, dtype=np.float32), m, (w, h), flags=cv2.INTER_CUBIC,
                         borderMode=cv2.BORDER_REFLECT_101)
    if out.ndim == 2:
        out = out[..., None]
    return np.clip(out, 0.0, 1.0)


def exposure_white_balance(frame: np.ndarray, gain: float, channel_gains=None) -> np.ndarray:
    """Scale an (H, W, C) sRGB frame by ``gain`` (and per-channel gains) in linear light."""
    g = np.full(frame.shape[2], gain, np.float32)
    if channel_gains is not None:
        g = g * np.asarray(channel_gains, np.float32)
    return linear_to_srgb(srgb_to_linear(frame) * g)


def frame_differences(frames: list[np.ndarray], rng: np.random.Generator, aug: Augment) -> tuple[list[np.ndarray], dict]:
    """Misregistration, exposure and white-balance differences of every frame but a random
    reference (see :class:`Augment`). Draws nothing when all three are off.

    Returns (frames, info): ``info`` has the reference index and each frame's shift, EV and
    (R, G, B) gains.
    """
    if not (aug.shift > 0 or aug.exposure > 0 or aug.white_balance > 0):
        return frames, {}
    ref = int(rng.integers(0, len(frames)))
    out, shifts, evs, wbs = [], [], [], []
    for i, f in enumerate(frames):
        dy = dx = ev = 0.0
        cg = [1.0] * f.shape[2]
        if i != ref:
            if aug.shift > 0:
                dy, dx = (float(v) for v in rng.uniform(-aug.shift, aug.shift, size=2))
                f = subpixel_shift(f, dy, dx)
            if aug.exposure > 0:
                ev = float(rng.uniform(-aug.exposure, aug.exposure))
            if aug.white_balance > 0 and f.shape[2] == 3:
                r, b = np.exp(rng.uniform(-aug.white_balance, aug.white_balance, size=2))
                cg = [float(r), 1.0, float(b)]
            if ev != 0.0 or cg != [1.0] * f.shape[2]:
                f = exposure_white_balance(f, 2.0 ** ev, cg)
        out.append(f)
        shifts.append([dy, dx])
        evs.append(ev)
        wbs.append(cg)
    return out, {"reference_frame": ref, "shift": shifts, "exposure_ev": evs, "channel_gains": wbs}


def camera_effects(frames: list[np.ndarray], rng: np.random.Generator, aug: Augment) -> list[np.ndarray]:
    """Sensor noise then JPEG, drawn independently for every frame (never for the ground truth)."""
    out = []
    for f in frames:
        if aug.noise > 0:
            f = sensor_noise(f, rng, aug.noise)
        if aug.jpeg is not None and rng.random() < aug.jpeg_probability:
            f = jpeg_roundtrip(f, int(rng.integers(aug.jpeg[0], aug.jpeg[1] + 1)))
        out.append(f)
    return out


__all__ = [
    "Augment", "random_resized_crop_box", "random_square_box", "crop_resize", "random_dihedral", "apply_dihedral",
    "colour_jitter", "sensor_noise", "jpeg_roundtrip", "camera_effects", "srgb_to_linear", "linear_to_srgb",
    "subpixel_shift", "exposure_white_balance", "frame_differences",
]
