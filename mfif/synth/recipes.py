"""Recipes: how each paper made its training data, and a more realistic layered recipe.

Each recipe is a frozen dataclass of settings plus a function that makes one sample from a photo
source and a NumPy random generator (so a sample is fixed by the generator's seed):

============  ==========================================================  =========================
recipe        what it makes                                               paper
============  ==========================================================  =========================
``liu``       16x16 grey patch pairs (clear, blurred) + label, both       Liu et al. 2017, Sec. 3.3
              orders; 5 cumulative Gaussian blurs, sigma 2, 7x7; clear
              patch variance > 25 (0-255 scale)
``ifcnn``     RGB frames + ground truth; segments get random depths, a    Zhang et al. 2020, Sec. 2.3
              threshold ``U(0.3, 0.7) * max depth`` splits near/far;
              Gaussian kernel radius 1..15, sigma = 0.3 (kr - 1) + 0.8;
              random resized crop (scale 0.5-1) to 224, random flips
``hourglass`` RGB frames + ground truth; a random subset of segments in   Guerrero et al. 2019,
              focus, sigma ~ U(1, 5); random crops with mirroring         Sec. III-A
``ba``        64x64x2 grey patches labelled by the centre pixel, with a   Ma et al. 2019, Sec. 3.1
              "near the boundary" flag; alpha-matting foregrounds
              (halved) over other photos, each layer Gaussian-blurred
``layered``   RGB frames + ground truth; segments at random depths in N   ours (see below)
              depth groups, thin-lens disk PSF whose radius grows with
              the distance from each frame's focal plane, occlusion-aware
              layered compositing
``thinlens``  RGB frames + ground truth; IFCNN-style segment depths in    ours (mfif/synth/README.md)
              metres, a physical thin lens focused on one segment per
              depth group (:mod:`mfif.synth.thinlens`), breathing
              optional; camera effects: noise, JPEG, exposure, white
              balance, sub-pixel misregistration
============  ==========================================================  =========================

Choices the papers leave open (written down here):

- Focus-map sources: BSDS500 human segmentations (one annotator at random), COCO instance masks
  (0 = background is one segment), alpha mattes (thresholded at 0.5 for the hard-mask recipes,
  soft for ``layered`` and ``ba``), random smooth shapes for photos without any mask, and for
  label maps that cannot be split (a single segment, or no split leaves every frame
  ``min_fraction`` of the pixels).
- IFCNN has real depth; we draw one depth per segment from a smooth random field (``coherence``)
  mixed with i.i.d. noise, so near segments cluster. Its crop is taken before blurring and sigma
  is scaled by the resize factor, which equals blurring first and then resizing (as the paper
  does) but keeps in-focus pixels exact. More than 2 frames: ``n - 1`` thresholds, every
  out-of-focus group uses the one blurred image (Eq. 5 generalised).
- Hourglass: the paper crops 400x400 on COCO; we default to 256 (CPU training, BSDS500 is 321
  px high). Kernel cut at 3 sigma. More than 2 frames: segments assigned to frames at random.
- BA: the paper gives no sigma; we draw sigma ~ U(1, 5) for each layer. The paper's blend
  (``compositing="hard"``: each layer blurred as a whole image, mixed by the matte) is
  available; the default is ``"layered"`` so a blurred foreground spills over the sharp
  background as in real optics. Patches are grey (BT.601 luma), the label is the centre pixel
  (row 32, column 32) of frame A's focus map (alpha >= 0.5). "Near the boundary" = at least
  10 % focused and 10 % defocused pixels in the patch (the paper's rule for the boundary net).
- ``layered`` (ours): frame k focuses at depth ``(k + 0.5) / N`` (0 = near) with a depth of
  field that covers group k exactly, so group k is sharp (radius 0) in frame k; other groups get
  a disk PSF of radius ``R * N * (|z - z_k| - dof)``, ``R ~ U(radius_scale)`` (the blur of the
  adjacent group is ``R * (1 +- jitter)``). Segment depths are quantised into ``depth_levels``
  planes per group and rendered back to front by :class:`mfif.synth.compose.LayerStack`. Alpha
  mattes become a soft nearest layer over another photo. Frames equal the ground truth exactly
  wherever the focus map is 1, except within ``info["spill"]`` pixels of its edge.

Frame order: with ``shuffle_frames`` the frames (and their focus maps) are permuted at random
so "A" is not always the near-focused one. Focus maps are complementary: they sum to one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import cv2
import numpy as np

from mfif.errors import InputError
from mfif.synth import focus_maps as fm
from mfif.synth.augment import (Augment, apply_dihedral, camera_effects, colour_jitter, crop_resize,
                                frame_differences, random_dihedral, random_resized_crop_box, random_square_box)
from mfif.synth.blur import coc_radius, defocus_support, gaussian_blur, gaussian_ksize, ifcnn_sigma
from mfif.synth.compose import LayerStack, composite_hard
from mfif.synth.sources import PhotoSource
from mfif.synth.thinlens import LayeredScene, ThinLens, focal_sweep

# BT.601 luma, as MATLAB's rgb2gray (the metrics use the same weights)
GREY_WEIGHTS = np.array([0.298936021293775, 0.587043074451121, 0.114020904255103], np.float32)


def to_grey(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) -> (H, W) luma (MATLAB rgb2gray weights); (H, W, 1) -> (H, W)."""
    if image.ndim == 2:
        return image.astype(np.float32, copy=False)
    if image.shape[2] == 1:
        return image[..., 0]
    w = GREY_WEIGHTS  # elementwise, not a BLAS product: bit-reproducible whatever the memory alignment
    return (image[..., 0] * w[0] + image[..., 1] * w[1] + image[..., 2] * w[2]).astype(np.float32, copy=False)


# ----------------------------------------------------------------------------------------------
# samples


@dataclass
class MultiFocusSample:
    """Frames focused at different depths, with the ground truth.

    Attributes:
        frames: (N, C, H, W) float32 in [0, 1].
        gt: (C, H, W) the all-in-focus image.
        focus: (N, H, W) float32 in [0, 1], 1 where frame k is in focus; sums to 1 over frames.
        blur: (N, H, W) blur size per pixel (Gaussian sigma or disk radius, pixels; 0 = sharp).
        info: recipe name, photo, parameters; ``spill`` is the width of the band around focus-map
            edges where a frame may differ from the ground truth although the map says in focus
            (0 for hard-mask recipes); ``order[j]`` is the depth group of frame j (0 = the
            near-focused frame), after shuffling.
    """

    frames: np.ndarray
    gt: np.ndarray
    focus: np.ndarray
    blur: np.ndarray
    info: dict = field(default_factory=dict)

    def swapped(self, order=None) -> "MultiFocusSample":
        """The same sample with frames (and maps) in another order (default: reversed)."""
        order = list(range(len(self.frames)))[::-1] if order is None else list(order)
        return MultiFocusSample(self.frames[order], self.gt, self.focus[order], self.blur[order], dict(self.info))


@dataclass
class PatchSample:
    """A pair of grey patches for a patch classifier (Liu CNN, BA).

    Attributes:
        inputs: (2, P, P) float32: channel 0 = source A, channel 1 = source B.
        label: 1 when A is the focused one (at the centre pixel for BA), else 0.
        boundary: BA: the patch has >= 10 % focused and >= 10 % defocused pixels.
        info: recipe, photo, blur level / sigma, position.
    """

    inputs: np.ndarray
    label: int
    boundary: bool = False
    info: dict = field(default_factory=dict)

    def swapped(self) -> "PatchSample":
        """A and B exchanged, label flipped."""
        return PatchSample(np.ascontiguousarray(self.inputs[::-1]), 1 - self.label, self.boundary, dict(self.info))


# ----------------------------------------------------------------------------------------------
# recipes


@dataclass(frozen=True)
class LiuRecipe:
    """Liu et al. 2017: grey 16x16 patch pairs from 5 cumulative Gaussian blurs."""

    name: ClassVar[str] = "liu"
    kind: ClassVar[str] = "patches"
    levels: int = 5
    sigma: float = 2.0
    ksize: int = 7
    patch: int = 16
    pairs_per_level: int = 20
    min_variance: float = 25.0  # of the clear patch, on the 0..255 scale
    tries: int = 50

    @property
    def samples_per_photo(self) -> int:
        return 2 * self.levels * self.pairs_per_level  # both orders

    @property
    def min_side(self) -> int:
        return self.patch


@dataclass(frozen=True)
class IfcnnRecipe:
    """IFCNN (Zhang et al. 2020): depth-threshold focus maps, Gaussian kr in 1..15."""

    name: ClassVar[str] = "ifcnn"
    kind: ClassVar[str] = "images"
    size: int | None = 224  # None: the whole photo, no crop
    kr_range: tuple[int, int] = (1, 15)
    threshold_range: tuple[float, float] = (0.3, 0.7)
    crop_scale: tuple[float, float] = (0.5, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    coherence: float = 0.6
    min_fraction: float = 0.05
    sigma_in_source_pixels: bool = True
    shuffle_frames: bool = True
    augment: Augment = Augment(hflip=True, vflip=True)

    @property
    def min_side(self) -> int:
        return 0 if self.size is None else self.size // 2


@dataclass(frozen=True)
class HourglassRecipe:
    """Hourglass (Guerrero et al. 2019): random segment subsets, sigma ~ U(1, 5)."""

    name: ClassVar[str] = "hourglass"
    kind: ClassVar[str] = "images"
    size: int | None = 256  # paper: 400 (GPU); None: the whole photo
    sigma_range: tuple[float, float] = (1.0, 5.0)
    min_fraction: float = 0.05
    shuffle_frames: bool = True
    augment: Augment = Augment(hflip=True)

    @property
    def min_side(self) -> int:
        return 0 if self.size is None else self.size


@dataclass(frozen=True)
class BARecipe:
    """Boundary-aware (Ma et al. 2019): matted foregrounds over other photos, 64x64 patches."""

    name: ClassVar[str] = "ba"
    kind: ClassVar[str] = "patches"
    patch: int = 64
    fg_scale: float = 0.5
    sigma_range: tuple[float, float] = (1.0, 5.0)
    patches_per_scene: int = 10
    compositing: str = "layered"  # or "hard" (the paper's blend)
    boundary_fraction: float = 0.1
    boundary_only: bool = False  # sample only patches near the boundary (the boundary net)
    augment: Augment = Augment(hflip=True, vflip=True, rot90=True)

    @property
    def samples_per_photo(self) -> int:
        return 2 * self.patches_per_scene

    @property
    def min_side(self) -> int:
        return self.patch


@dataclass(frozen=True)
class LayeredRecipe:
    """Ours: depth layers, thin-lens disk PSF, occlusion-aware compositing, N frames."""

    name: ClassVar[str] = "layered"
    kind: ClassVar[str] = "images"
    size: int | None = 256  # None: the whole photo
    max_crop: float = 2.0  # crop side up to this many times ``size`` (then downscaled)
    psf: str = "disk"
    radius_scale: tuple[float, float] = (3.0, 8.0)  # R: blur of the adjacent depth group, px
    jitter: float = 0.5  # spread of depths inside a group (fraction of the group's band)
    depth_levels: int = 3  # depth planes per group
    coherence: float = 0.7
    min_fraction: float = 0.05
    fill_hidden: bool = True
    shuffle_frames: bool = True
    augment: Augment = Augment(hflip=True, vflip=True, rot90=True, brightness=0.1, contrast=0.1, saturation=0.1)

    @property
    def min_side(self) -> int:
        return 0 if self.size is None else self.size


@dataclass(frozen=True)
class ThinLensRecipe:
    """Ours: IFCNN-style depth-layer scenes rendered through a thin lens, with camera effects.

    Parameter ranges (all drawn per sample; see the module docstring and ``mfif/synth/README.md``).
    """

    name: ClassVar[str] = "thinlens"
    kind: ClassVar[str] = "images"
    size: int | None = 224  # None: the whole photo
    crop_scale: tuple[float, float] = (0.5, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    near_range: tuple[float, float] = (0.3, 1.5)  # distance of the nearest depth (m)
    far_range: tuple[float, float] = (3.0, 30.0)  # distance of the farthest depth (m)
    focal_length_range: tuple[float, float] = (0.024, 0.105)  # m, log-uniform
    max_radius: tuple[float, float] = (2.0, 12.0)  # largest blur radius in the sample (px)
    threshold_range: tuple[float, float] = (0.3, 0.7)
    coherence: float = 0.6
    planes: int = 12  # depth planes, equally spaced in dioptres
    min_fraction: float = 0.05
    breathing: bool = False
    shuffle_frames: bool = True
    augment: Augment = Augment(hflip=True, vflip=True, rot90=True, brightness=0.1, contrast=0.1, saturation=0.1,
                               noise=0.02, jpeg=(75, 98), jpeg_probability=0.5, exposure=0.15,
                               white_balance=0.03, shift=0.5)

    @property
    def min_side(self) -> int:
        return 0 if self.size is None else self.size // 2


RECIPES: dict[str, type] = {r.name: r for r in (LiuRecipe, IfcnnRecipe, HourglassRecipe, BARecipe, LayeredRecipe,
                                                ThinLensRecipe)}


def get_recipe(name: str, **overrides):
    """The recipe config called ``name`` with some fields replaced."""
    try:
        cls = RECIPES[name]
    except KeyError:
        raise InputError(f"unknown recipe {name!r} (choose from {', '.join(RECIPES)})") from None
    return cls(**overrides)


# ----------------------------------------------------------------------------------------------
# shared steps


def _crop_photo(source: PhotoSource, index: int, rng: np.random.Generator, box, out_hw):
    """Crop/resize the photo and draw its label map (or alpha) for the same box."""
    entry = source[index]
    image = source.image_region(index, box)
    labels = alpha = None
    if entry.label_maps:
        k = int(rng.integers(0, len(entry.label_maps)))
        labels = crop_resize(source.label_map(index, k), box, out_hw, kind="labels")
    elif entry.alpha is not None:
        alpha = crop_resize(source.alpha(index), box, out_hw, kind="alpha")
    return crop_resize(image, (0, 0, box[2], box[3]), out_hw, kind="image"), labels, alpha


def _smooth_labels(shape, rng, n):
    return fm.random_smooth_labels(shape[0], shape[1], rng, (max(2, n), max(5, n + 2)))


def _smooth_groups(shape, rng, n: int, min_fraction: float, *, by_depth: bool, coherence: float = 0.6):
    """Random smooth shapes split into ``n`` groups (each >= ``min_fraction`` of the pixels).

    Returns (labels, segment depths, segment groups). After a few failed draws the last resort
    is ``n`` bands across the image with a smooth random boundary.
    """
    for _ in range(8):
        labels, k = fm.relabel(_smooth_labels(shape, rng, n))
        area = fm.segment_areas(labels, k)
        depths = fm.segment_depths(labels, k, rng, coherence=coherence)
        if k < n:
            continue
        groups = (fm.threshold_groups(depths, area, n, rng, min_fraction=min_fraction) if by_depth
                  else fm.random_subset_groups(area, n, rng, min_fraction=min_fraction))
        if groups is not None:
            return labels, depths, groups
    h, w = shape
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    t = xs * np.cos(angle) / max(w, 1) + ys * np.sin(angle) / max(h, 1)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    t = t + 0.1 * fm.smooth_field(h, w, rng, cells=3.0)[0]
    edges = np.quantile(t, np.arange(1, n) / n)
    labels = np.searchsorted(edges, t).astype(np.int32)
    return labels, (np.arange(n) + 0.5) / n, np.arange(n)


def _finish(frames, gt, focus, blur, rng, aug: Augment, shuffle: bool, info: dict) -> MultiFocusSample:
    """Dihedral transform, frame shuffle, camera effects; (H, W, C) -> (C, H, W)."""
    n = len(frames)
    if aug.dihedral:
        code = random_dihedral(rng, aug)
        frames = [apply_dihedral(f, code) for f in frames]
        gt = apply_dihedral(gt, code)
        focus = apply_dihedral(focus, code, axes=(1, 2))
        blur = apply_dihedral(blur, code, axes=(1, 2))
        info["dihedral"] = list(code)
    order = list(rng.permutation(n)) if shuffle else list(range(n))
    frames = [frames[i] for i in order]
    focus, blur = focus[order], blur[order]
    info["order"] = [int(i) for i in order]
    frames, differences = frame_differences(frames, rng, aug)
    if differences:
        info["frame_differences"] = differences
    frames = camera_effects(frames, rng, aug)
    chw = np.stack([np.moveaxis(f, -1, 0) for f in frames]).astype(np.float32)
    return MultiFocusSample(frames=np.ascontiguousarray(chw), gt=np.ascontiguousarray(np.moveaxis(gt, -1, 0)),
                            focus=np.ascontiguousarray(focus, dtype=np.float32),
                            blur=np.ascontiguousarray(blur, dtype=np.float32), info=info)


def _hard_frames(image, maps, blurred):
    """frame k = sharp where map k is 1, the blurred photo elsewhere (paper Eq. 5)."""
    return [composite_hard(np.stack([image, blurred]), np.stack([m, 1.0 - m])) for m in maps]


# ----------------------------------------------------------------------------------------------
# IFCNN


def make_ifcnn(source: PhotoSource, index: int, rng: np.random.Generator, cfg: IfcnnRecipe = IfcnnRecipe(),
               frames: int = 2) -> MultiFocusSample:
    """One IFCNN-style sample from photo ``index`` (see the module docstring)."""
    h, w = source.image_size(index)
    if cfg.size is None:
        box, out_hw, scale = (0, 0, h, w), (h, w), 1.0
    else:
        box = random_resized_crop_box(h, w, rng, scale=cfg.crop_scale, ratio=cfg.crop_ratio)
        out_hw = (cfg.size, cfg.size)
        scale = math.sqrt(cfg.size * cfg.size / (box[2] * box[3]))
    image, labels, alpha = _crop_photo(source, index, rng, box, out_hw)
    image = colour_jitter(image, rng, cfg.augment)
    if labels is None and alpha is not None:
        labels = fm.alpha_to_labels(alpha)
    groups = None
    if labels is not None:
        labels, k = fm.relabel(labels)
        area = fm.segment_areas(labels, k)
        depths = fm.segment_depths(labels, k, rng, coherence=cfg.coherence)
        groups = fm.threshold_groups(depths, area, frames, rng, threshold_range=cfg.threshold_range,
                                     min_fraction=cfg.min_fraction) if k >= frames else None
    mask_source = "segments"
    if groups is None:
        mask_source = "smooth shapes"
        labels, _, groups = _smooth_groups(out_hw, rng, frames, cfg.min_fraction, by_depth=True,
                                           coherence=cfg.coherence)
    maps = fm.group_maps(labels, groups, frames)
    kr = int(rng.integers(cfg.kr_range[0], cfg.kr_range[1] + 1))
    sigma, ksize = ifcnn_sigma(kr), 2 * kr + 1
    if cfg.sigma_in_source_pixels and scale != 1.0:
        sigma = sigma * scale
        ksize = 2 * max(1, int(round(kr * scale))) + 1
    blurred = gaussian_blur(image, sigma, ksize)
    out = _hard_frames(image, maps, blurred)
    blur = (1.0 - maps) * np.float32(sigma)
    info = {"recipe": "ifcnn", "photo": source[index].name, "mask_source": mask_source, "kr": kr,
            "sigma": float(sigma), "ksize": ksize, "box": list(box), "spill": 0}
    return _finish(out, image, maps, blur, rng, cfg.augment, cfg.shuffle_frames, info)


# ----------------------------------------------------------------------------------------------
# Hourglass


def make_hourglass(source: PhotoSource, index: int, rng: np.random.Generator,
                   cfg: HourglassRecipe = HourglassRecipe(), frames: int = 2) -> MultiFocusSample:
    """One Hourglass-style sample: a random subset of segments in focus, sigma ~ U(1, 5)."""
    h, w = source.image_size(index)
    if cfg.size is None:
        box, out_hw = (0, 0, h, w), (h, w)
    else:
        if min(h, w) < cfg.size:
            raise InputError(f"{source[index].image}: photo {w}x{h} is smaller than the {cfg.size}x{cfg.size} crop")
        box = random_square_box(h, w, rng, (cfg.size, cfg.size))
        out_hw = (cfg.size, cfg.size)
    image, labels, alpha = _crop_photo(source, index, rng, box, out_hw)
    image = colour_jitter(image, rng, cfg.augment)
    if labels is None and alpha is not None:
        labels = fm.alpha_to_labels(alpha)
    groups = None
    mask_source = "segments"
    if labels is not None:
        labels, k = fm.relabel(labels)
        groups = fm.random_subset_groups(fm.segment_areas(labels, k), frames, rng, min_fraction=cfg.min_fraction)
    if groups is None:
        mask_source = "smooth shapes"
        labels, _, groups = _smooth_groups(out_hw, rng, frames, cfg.min_fraction, by_depth=False)
    maps = fm.group_maps(labels, groups, frames)
    sigma = float(rng.uniform(*cfg.sigma_range))
    blurred = gaussian_blur(image, sigma)
    out = _hard_frames(image, maps, blurred)
    blur = (1.0 - maps) * np.float32(sigma)
    info = {"recipe": "hourglass", "photo": source[index].name, "mask_source": mask_source, "sigma": sigma,
            "ksize": gaussian_ksize(sigma), "box": list(box), "spill": 0}
    return _finish(out, image, maps, blur, rng, cfg.augment, cfg.shuffle_frames, info)


# ----------------------------------------------------------------------------------------------
# Layered (ours)


def _cover_crop(source: PhotoSource, index: int, rng: np.random.Generator, out_hw, *, grey: bool = False) -> np.ndarray:
    """A random crop of photo ``index`` resized to cover ``out_hw`` (a background plate)."""
    h, w = source.image_size(index)
    oh, ow = out_hw
    s = max(oh / h, ow / w)
    ch, cw = min(h, int(math.ceil(oh / s))), min(w, int(math.ceil(ow / s)))
    box = (int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1)), ch, cw)
    region = source.image_region(index, box)
    if grey:
        region = to_grey(region)
    return crop_resize(region, (0, 0, ch, cw), out_hw, kind="image")


def _group_depths(depths: np.ndarray, groups: np.ndarray, n: int, jitter: float, levels: int) -> np.ndarray:
    """Place each segment's depth inside its group's band, quantised to ``levels`` planes."""
    z = np.empty(len(depths))
    for g in range(n):
        sel = np.flatnonzero(groups == g)
        if sel.size == 0:
            continue
        d = depths[sel]
        lo, hi = float(d.min()), float(d.max())
        t = (d - lo) / (hi - lo) if hi > lo else np.full(d.shape, 0.5)
        q = (np.minimum(np.floor(t * levels), levels - 1) + 0.5) / levels  # plane centre in (0, 1)
        z[sel] = (g + 0.5 + jitter * (q - 0.5)) / n
    return z


def make_layered(source: PhotoSource, index: int, rng: np.random.Generator, cfg: LayeredRecipe = LayeredRecipe(),
                 frames: int = 2, background: int | None = None) -> MultiFocusSample:
    """One sample of the layered recipe (see the module docstring).

    ``background``: for a photo with an alpha matte, the photo placed behind its foreground
    (default: a random photo without a matte, or the photo itself when there is none).
    """
    n = frames
    h, w = source.image_size(index)
    if cfg.size is None:
        box, out_hw = (0, 0, h, w), (h, w)
    else:
        if min(h, w) < cfg.size:
            raise InputError(f"{source[index].image}: photo {w}x{h} is smaller than the {cfg.size}x{cfg.size} crop")
        box = random_square_box(h, w, rng, (cfg.size, int(cfg.size * cfg.max_crop)))
        out_hw = (cfg.size, cfg.size)
    image, labels, alpha = _crop_photo(source, index, rng, box, out_hw)
    image = colour_jitter(image, rng, cfg.augment)
    bg_image, mask_source, bg_name = None, "segments", None
    fg_fraction = float((alpha >= 0.5).mean()) if alpha is not None else 0.0
    if alpha is not None and cfg.min_fraction <= fg_fraction <= 1.0 - cfg.min_fraction:
        mask_source = "alpha matte"
        pool = source.without_alpha()
        b = background if background is not None else (int(rng.choice(pool)) if pool else index)
        bg_image = colour_jitter(_cover_crop(source, b, rng, out_hw), rng, cfg.augment)
        bg_name = source[b].name
        # background split into depth segments by smooth shapes (for more than two frames)
        if n > 2:
            bg_labels, bg_depths, bg_groups = _smooth_groups(out_hw, rng, n - 1, cfg.min_fraction, by_depth=True,
                                                             coherence=cfg.coherence)
        else:
            bg_labels, bg_depths, bg_groups = np.zeros(out_hw, np.int32), np.array([0.5]), np.array([0])
        fg_id = len(bg_depths)
        labels = np.where(alpha >= 0.5, fg_id, bg_labels).astype(np.int32)
        depths = np.append(np.asarray(bg_depths, np.float64), 0.0)
        groups = np.append(np.asarray(bg_groups, np.int64) + 1, 0)
    else:
        alpha = None
        groups = None
        if labels is not None:
            labels, k = fm.relabel(labels)
            area = fm.segment_areas(labels, k)
            depths = fm.segment_depths(labels, k, rng, coherence=cfg.coherence)
            groups = fm.threshold_groups(depths, area, n, rng, min_fraction=cfg.min_fraction) if k >= n else None
        if groups is None:
            mask_source = "smooth shapes"
            labels, depths, groups = _smooth_groups(out_hw, rng, n, cfg.min_fraction, by_depth=True,
                                                    coherence=cfg.coherence)
        fg_id = None
    z = _group_depths(depths, groups, n, cfg.jitter, cfg.depth_levels)
    # layers: distinct (group, depth plane) pairs
    planes, layer_of_seg = np.unique(np.round(z, 9), return_inverse=True)
    layer_group = np.zeros(len(planes), np.int64)
    layer_group[layer_of_seg] = groups
    layer_map = layer_of_seg[labels]
    n_layers = len(planes)
    onehot = (layer_map[None] == np.arange(n_layers)[:, None, None]).astype(np.float32)
    if alpha is not None:
        fg_layer = int(layer_of_seg[fg_id])
        bg_map = np.where(labels == fg_id, -1, layer_map)
        # behind the soft foreground edge the background segment continues: nearest bg label
        if (bg_map < 0).any():
            # label of the nearest background pixel, for every pixel
            _, nearest = cv2.distanceTransformWithLabels((bg_map < 0).astype(np.uint8), cv2.DIST_L2, 5,
                                                         labelType=cv2.DIST_LABEL_PIXEL)
            flat = bg_map.ravel()
            idx = np.flatnonzero(flat >= 0)
            lab_of_seed = np.zeros(nearest.max() + 1, np.int64)
            lab_of_seed[nearest.ravel()[idx]] = flat[idx]
            bg_map = lab_of_seed[nearest]
        onehot = (bg_map[None] == np.arange(n_layers)[:, None, None]).astype(np.float32) * (1.0 - alpha)[None]
        onehot[fg_layer] += alpha
        colors = np.stack([image if i == fg_layer else bg_image for i in range(n_layers)])
        stack = LayerStack(colors, onehot, planes, fill_hidden=cfg.fill_hidden, complete_colors=True)
    else:
        stack = None
    scale = float(rng.uniform(*cfg.radius_scale)) * n
    dof = cfg.jitter * 0.5 / n
    focal = [(k_ + 0.5) / n for k_ in range(n)]
    radii = np.array([[coc_radius(p, focal[f], scale, dof) for p in planes] for f in range(n)])
    radii = np.where(radii < 1e-9, 0.0, radii)
    support = max(defocus_support(float(r), cfg.psf) for r in radii.ravel())
    band = float(support)  # hidden layers continue this far behind nearer ones
    if stack is None:
        stack = LayerStack(image, onehot, planes, fill_hidden=cfg.fill_hidden, band=band)
    gt = stack.ground_truth()
    out = [stack.render(radii[f], cfg.psf) for f in range(n)]
    focus = np.stack([onehot[layer_group == f].sum(axis=0) for f in range(n)]).astype(np.float32)
    blur = np.zeros((n,) + onehot.shape[1:], np.float32)
    for f in range(n):
        for layer in range(n_layers):
            if radii[f, layer] > 0:
                blur[f] += np.float32(radii[f, layer]) * onehot[layer]
    info = {"recipe": "layered", "photo": source[index].name, "mask_source": mask_source, "psf": cfg.psf,
            "radius_scale": scale / n, "layers": n_layers, "max_radius": float(radii.max()), "box": list(box),
            "spill": int(math.ceil(band + support + 1))}
    if bg_name:
        info["background"] = bg_name
    return _finish(out, gt, focus, blur, rng, cfg.augment, cfg.shuffle_frames, info)


# ----------------------------------------------------------------------------------------------
# Thin lens (ours)


def make_thinlens(source: PhotoSource, index: int, rng: np.random.Generator, cfg: ThinLensRecipe = ThinLensRecipe(),
                  frames: int = 2) -> MultiFocusSample:
    """One sample of the thin-lens recipe (see the module docstring).

    Segments get IFCNN-style depths (a coherent random field), quantised to ``cfg.planes``
    planes equally spaced in dioptres between a near and a far distance; ``frames - 1`` depth
    thresholds split them into groups, and frame k focuses on a random segment (area-weighted) of
    group k. Every plane is blurred by its thin-lens circle of confusion
    (:mod:`mfif.synth.thinlens`), so in-focus groups are sharp only within the depth of field.
    Focus map k = 1 where frame k has the smallest blur (ground-truth geometry); ``blur`` holds
    each frame's radius map.
    """
    n = frames
    h, w = source.image_size(index)
    if cfg.size is None:
        box, out_hw = (0, 0, h, w), (h, w)
    else:
        box = random_resized_crop_box(h, w, rng, scale=cfg.crop_scale, ratio=cfg.crop_ratio)
        out_hw = (cfg.size, cfg.size)
    image, labels, alpha = _crop_photo(source, index, rng, box, out_hw)
    image = colour_jitter(image, rng, cfg.augment)
    if labels is None and alpha is not None:
        labels = fm.alpha_to_labels(alpha)
    groups, mask_source = None, "segments"
    if labels is not None:
        labels, k = fm.relabel(labels)
        area = fm.segment_areas(labels, k)
        depths = fm.segment_depths(labels, k, rng, coherence=cfg.coherence)
        depths = (np.minimum(np.floor(depths * cfg.planes), cfg.planes - 1) + 0.5) / cfg.planes
        groups = fm.threshold_groups(depths, area, n, rng, threshold_range=cfg.threshold_range,
                                     min_fraction=cfg.min_fraction) if k >= n else None
    if groups is None:
        mask_source = "smooth shapes"
        labels, depths, groups = _smooth_groups(out_hw, rng, n, cfg.min_fraction, by_depth=True,
                                                coherence=cfg.coherence)
        labels, k = fm.relabel(labels)
        depths = (np.minimum(np.floor(np.asarray(depths) * cfg.planes), cfg.planes - 1) + 0.5) / cfg.planes
        area = fm.segment_areas(labels, k)
    near, far = float(rng.uniform(*cfg.near_range)), float(rng.uniform(*cfg.far_range))
    dioptre = 1.0 / near + np.asarray(depths, np.float64) * (1.0 / far - 1.0 / near)  # depth 0 = near
    focus_dist = []
    for g in range(n):
        sel = np.flatnonzero(groups == g)
        wts = area[sel] / area[sel].sum()
        focus_dist.append(1.0 / dioptre[int(rng.choice(sel, p=wts))])
    log_f = np.log(cfg.focal_length_range)
    focal_length = float(np.exp(rng.uniform(*log_f)))
    r_max = float(rng.uniform(*cfg.max_radius))
    seg_dist = 1.0 / dioptre
    raw = ThinLens(focal_length, 2.8, 1.0)  # radii for a unit pitch, then scaled to r_max
    top = max(float(np.max(raw.coc_radius(seg_dist, s))) for s in focus_dist)
    lens = ThinLens(focal_length, 2.8, top / r_max if top > 0 else 1.0)
    plane_dist, plane_of_seg = np.unique(seg_dist, return_inverse=True)  # one layer per depth plane
    plane_map = plane_of_seg.reshape(-1)[labels]
    alphas = (plane_map[None] == np.arange(plane_dist.size)[:, None, None]).astype(np.float32)
    scene = LayeredScene(np.moveaxis(image, -1, 0), alphas, plane_dist)
    sweep = focal_sweep(scene, lens, focus_dist, breathing=cfg.breathing)
    radii = np.stack([lens.coc_radius(scene.depths, s) for s in focus_dist])  # (n, L), GT geometry
    radii = np.where(radii < 0.5, 0.0, radii)
    visible = scene.visible_layer()
    best = np.argmin(radii[:, visible], axis=0)
    focus = (best[None] == np.arange(n)[:, None, None]).astype(np.float32)
    out = [np.ascontiguousarray(np.moveaxis(f, 0, -1)) for f in sweep.frames]
    gt = np.ascontiguousarray(np.moveaxis(sweep.gt, 0, -1))
    info = {"recipe": "thinlens", "photo": source[index].name, "mask_source": mask_source, "box": list(box),
            "focal_length": focal_length, "pixel_pitch": lens.pixel_pitch, "near": near, "far": far,
            "focus_distances": [float(s) for s in focus_dist], "max_radius": float(radii.max()),
            "layers": len(scene.depths), "breathing_scales": [float(v) for v in sweep.scales],
            "spill": int(math.ceil(defocus_support(float(radii.max())) + 1))}
    return _finish(out, gt, focus, sweep.radius, rng, cfg.augment, cfg.shuffle_frames, info)


# ----------------------------------------------------------------------------------------------
# Liu patches


def liu_patch(source: PhotoSource, index: int, rng: np.random.Generator, level: int,
              cfg: LiuRecipe = LiuRecipe()) -> PatchSample:
    """One (clear, blurred) pair from photo ``index`` at blur ``level`` (1..levels), label 1.

    The clear patch is drawn until its variance exceeds ``min_variance`` (0-255 scale); after
    ``tries`` draws the most varied one is used. The blurred patch is the same window of the
    photo blurred ``level`` times (computed on a window with a margin, so the result equals
    blurring the whole photo, borders reflected).
    """
    raw = source.raw_image(index)
    h, w = raw.shape[:2]
    p = cfg.patch
    if h < p or w < p:
        raise InputError(f"{source[index].image}: photo {w}x{h} is smaller than the {p}x{p} patch")
    best, best_var = None, -1.0
    scale = 255.0 if raw.dtype == np.uint8 else 1.0
    for _ in range(cfg.tries):
        y, x = int(rng.integers(0, h - p + 1)), int(rng.integers(0, w - p + 1))
        g = to_grey(raw[y:y + p, x:x + p].astype(np.float32) / np.float32(scale))
        var = float(g.var(dtype=np.float64)) * 255.0 ** 2
        if var > best_var:
            best, best_var = (y, x, g), var
        if var > cfg.min_variance:
            break
    y, x, clear = best
    m = level * (cfg.ksize // 2)
    y0, y1, x0, x1 = y - m, y + p + m, x - m, x + p + m
    win = raw[max(0, y0):min(h, y1), max(0, x0):min(w, x1)].astype(np.float32) / np.float32(scale)
    win = to_grey(win)
    pads = (max(0, -y0), max(0, y1 - h), max(0, -x0), max(0, x1 - w))
    if any(pads):
        win = cv2.copyMakeBorder(win, *pads, borderType=cv2.BORDER_REFLECT_101)
    for _ in range(level):
        win = gaussian_blur(win, cfg.sigma, cfg.ksize)
    blurred = np.ascontiguousarray(win[m:m + p, m:m + p])
    return PatchSample(np.stack([clear, blurred]).astype(np.float32), 1, False,
                       {"recipe": "liu", "photo": source[index].name, "level": level, "y": y, "x": x,
                        "variance": best_var})


# ----------------------------------------------------------------------------------------------
# BA scenes and patches


@dataclass
class BAScene:
    """Two full-size grey frames of a matted foreground over a background photo.

    Attributes:
        frames: (2, H, W) float32: frame 0 = foreground in focus, frame 1 = background in focus.
        gt: (H, W) the all-in-focus composite.
        focus: (H, W) float32 alpha: frame 0's focus map (frame 1's is 1 - focus).
        mixed: (H, W) fraction of focused pixels (focus >= 0.5) in the patch centred at each pixel.
        info: photos and sigmas.
    """

    frames: np.ndarray
    gt: np.ndarray
    focus: np.ndarray
    mixed: np.ndarray
    info: dict


def make_ba_scene(source: PhotoSource, fg: int, bg: int, rng: np.random.Generator,
                  cfg: BARecipe = BARecipe()) -> BAScene:
    """Matted foreground ``fg`` (halved) over background photo ``bg``; grey, two frames.

    Without an alpha matte the foreground mask is a random subset of ``fg``'s segments (or smooth
    shapes), slightly feathered.
    """
    fh, fw = source.image_size(fg)
    oh, ow = max(cfg.patch, int(round(fh * cfg.fg_scale))), max(cfg.patch, int(round(fw * cfg.fg_scale)))
    box = (0, 0, fh, fw)
    # the scaled grey foreground (and matte) are the same for every scene: memoised
    grey_f = source.derived(("ba_fg", fg, oh, ow),
                            lambda: crop_resize(to_grey(source.image(fg)), box, (oh, ow), kind="image"))
    alpha = None
    if source[fg].alpha is not None:
        alpha = source.derived(("ba_alpha", fg, oh, ow),
                               lambda: crop_resize(source.alpha(fg), box, (oh, ow), kind="alpha"))
    mask_source = "alpha matte"
    if alpha is None:
        entry = source[fg]
        labels = groups = None
        if entry.label_maps:
            labels = crop_resize(source.label_map(fg, int(rng.integers(0, len(entry.label_maps)))),
                                 (0, 0, fh, fw), (oh, ow), kind="labels")
            labels, k = fm.relabel(labels)
            groups = fm.random_subset_groups(fm.segment_areas(labels, k), 2, rng, min_fraction=0.1)
            mask_source = "segments"
        if labels is None or groups is None:
            labels, _, groups = _smooth_groups((oh, ow), rng, 2, 0.1, by_depth=False)
            mask_source = "smooth shapes"
        alpha = cv2.GaussianBlur(fm.group_maps(labels, groups, 2)[0], (5, 5), 1.0)
    grey_f = grey_f[..., None]
    grey_b = _cover_crop(source, bg, rng, (oh, ow), grey=True)[..., None]
    s_fg, s_bg = (float(rng.uniform(*cfg.sigma_range)) for _ in range(2))
    if cfg.compositing == "layered":
        stack = LayerStack(np.stack([grey_f, grey_b]), np.stack([alpha, 1.0 - alpha]), [0.25, 0.75],
                           complete_colors=True)
        gt = stack.ground_truth()[..., 0]
        a_frame = stack.render([0.0, s_bg], "gaussian")[..., 0]
        b_frame = stack.render([s_fg, 0.0], "gaussian")[..., 0]
    elif cfg.compositing == "hard":
        f, b = grey_f[..., 0], grey_b[..., 0]
        gt = alpha * f + (1.0 - alpha) * b
        a_frame = alpha * f + (1.0 - alpha) * gaussian_blur(b, s_bg)
        b_frame = alpha * gaussian_blur(f, s_fg) + (1.0 - alpha) * b
    else:
        raise InputError(f"BA compositing must be 'layered' or 'hard', got {cfg.compositing!r}")
    frames = np.stack([a_frame, b_frame]).astype(np.float32)
    focus = alpha.astype(np.float32)
    if cfg.augment.dihedral:
        code = random_dihedral(rng, cfg.augment)
        frames = apply_dihedral(frames, code, axes=(1, 2))
        gt, focus = apply_dihedral(gt, code), apply_dihedral(focus, code)
    p = cfg.patch
    mixed = cv2.boxFilter((focus >= 0.5).astype(np.float32), -1, (p, p), anchor=(p // 2, p // 2),
                          normalize=True, borderType=cv2.BORDER_CONSTANT)
    info = {"recipe": "ba", "photo": source[fg].name, "background": source[bg].name, "mask_source": mask_source,
            "sigma_fg": s_fg, "sigma_bg": s_bg, "compositing": cfg.compositing}
    return BAScene(frames=frames, gt=gt.astype(np.float32), focus=focus, mixed=mixed, info=info)


def ba_patch(scene: BAScene, rng: np.random.Generator, cfg: BARecipe = BARecipe(),
             boundary_only: bool | None = None) -> PatchSample:
    """A 64x64x2 patch of ``scene`` (A = foreground-focused frame), labelled by its centre pixel.

    Patches lie fully inside the scene; the centre is row/column ``patch // 2``. With
    ``boundary_only`` the centre is drawn among positions whose patch is near the boundary.
    """
    p, half = cfg.patch, cfg.patch // 2
    h, w = scene.focus.shape
    boundary_only = cfg.boundary_only if boundary_only is None else boundary_only
    lo, hi = cfg.boundary_fraction, 1.0 - cfg.boundary_fraction
    valid = scene.mixed[half:h - p + half + 1, half:w - p + half + 1]
    if boundary_only:
        cand = np.flatnonzero((valid >= lo - 1e-6) & (valid <= hi + 1e-6))
        if cand.size == 0:
            raise InputError(f"{scene.info['photo']}: no {p}x{p} patch near the focus boundary")
        flat = int(rng.choice(cand))
        cy, cx = divmod(flat, valid.shape[1])
    else:
        cy, cx = int(rng.integers(0, valid.shape[0])), int(rng.integers(0, valid.shape[1]))
    y, x = cy, cx  # top-left corner
    inputs = np.ascontiguousarray(scene.frames[:, y:y + p, x:x + p])
    fmap = scene.focus[y:y + p, x:x + p]
    label = int(fmap[half, half] >= 0.5)
    frac = float((fmap >= 0.5).mean())
    boundary = bool(lo - 1e-6 <= frac <= hi + 1e-6)
    info = dict(scene.info)
    info.update({"y": y, "x": x, "focused_fraction": frac})
    return PatchSample(inputs, label, boundary, info)


__all__ = [
    "GREY_WEIGHTS", "to_grey", "MultiFocusSample", "PatchSample", "LiuRecipe", "IfcnnRecipe", "HourglassRecipe",
    "BARecipe", "LayeredRecipe", "ThinLensRecipe", "RECIPES", "get_recipe", "make_ifcnn", "make_hourglass",
    "make_layered", "make_thinlens",
    "liu_patch", "BAScene", "make_ba_scene", "ba_patch",
]
