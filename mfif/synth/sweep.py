"""Focal-sweep stacks with ground truth: the stack part of the dev set (``mfif synth --devset``).

A photo becomes a scene with a depth map, and the scene is rendered through a thin lens
(:mod:`mfif.synth.thinlens`) at K focus distances, in the order a camera takes them:

- **depth**: every segment of the photo's first BSDS500 segmentation gets a distance drawn
  uniformly in dioptres, plus a random slant across the segment (up to 40 % of the scene's
  dioptric range over the segment's extent), so surfaces are tilted and each frame is sharp on a
  thin slice of them, as in a real stack; the depth map is cut into 48 planes equally spaced in
  dioptres (:func:`mfif.synth.thinlens.scene_from_depth_map`).
- **optics**: f = 50 mm at f/2.8; the scene spans 0.05..0.17 dioptres (5.9..20 m) and the pixel
  pitch is chosen so the largest circle of confusion of the sweep has a radius of 6..14 px; the
  K focus distances are equally spaced in dioptres over the scene, near to far or far to near.
  Defocus spreads across occlusions (the renderer's layered "over" compositing).
- **focus breathing** (every other sweep): each frame is scaled by v_s / v_ref about the centre,
  the reference being the middle frame (the alignment reference of ``mfif fuse``), so the ground
  truth is in the middle frame's geometry; with these optics the scale changes by about 0.6 %
  over the sweep (about +-1.4 px at the corners of a 481 x 321 frame).
- **camera**: Poisson-Gaussian noise up to sigma 0.01 on every frame
  (:func:`mfif.synth.augment.sensor_noise`), JPEG at quality 85..95 on half the frames.

Dev-set layout (written by :func:`mfif.synth.write.write_sweeps`)::

    OUT/sweeps/sweep_00/sweep_00_01.png .. _K.png, GT.png, focus/   20 sweeps, K = 5..30
    OUT/stacks8/stack8_00/stack8_00_1.png .. _8.png, GT.png, focus/ 10 layered 8-frame stacks

Focus maps: frame k is white where its blur radius is the smallest of the sweep. Photos: the
dev set's seeded permutation of the BSDS500 test split, after the 100 pairs and 20 three-frame
stacks (sweeps: the next 20 photos, 8-frame stacks: the 10 after them), so no photo is reused.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from mfif.synth import recipes as R
from mfif.synth.augment import jpeg_roundtrip, sensor_noise
from mfif.synth.sources import PhotoSource
from mfif.synth.thinlens import ThinLens, focal_sweep, scene_from_depth_map

DEVSET_SWEEPS = 20
DEVSET_STACKS8 = 10
SWEEP_FRAMES = (5, 30)
DIOPTRE_RANGE = (0.05, 0.17)
PLANES = 48
NOISE = 0.01
JPEG_QUALITY = (85, 95)


def sweep_frame_count(j: int, sweeps: int = DEVSET_SWEEPS) -> int:
    """K of sweep j: evenly spread over :data:`SWEEP_FRAMES` (5, 6, 7, 9, ... 30 for 20 sweeps)."""
    lo, hi = SWEEP_FRAMES
    return int(round(lo + (hi - lo) * j / max(sweeps - 1, 1)))


def slanted_segment_depth(labels: np.ndarray, rng: np.random.Generator,
                          dioptres: tuple[float, float] = DIOPTRE_RANGE) -> np.ndarray:
    """(H, W) segment labels -> (H, W) float64 distance (m): per segment a uniform dioptre plus a
    random planar slant (up to 40 % of the range across the segment), clipped to the range."""
    lo, hi = dioptres
    span = hi - lo
    h, w = labels.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    inv = np.empty((h, w), np.float64)
    for label in np.unique(labels):
        mask = labels == label
        ys, xs = yy[mask], xx[mask]
        extent = max(float(np.ptp(ys)), float(np.ptp(xs)), 1.0)
        angle = rng.uniform(0, 2 * np.pi)
        slope = rng.uniform(0.0, 0.4) * span / extent
        base = rng.uniform(lo, hi)
        ramp = (xs - xs.mean()) * np.cos(angle) + (ys - ys.mean()) * np.sin(angle)
        inv[mask] = base + slope * ramp
    return 1.0 / np.clip(inv, lo, hi)


def sweep_lens(max_radius: float, dioptres: tuple[float, float] = DIOPTRE_RANGE) -> ThinLens:
    """50 mm f/2.8 with the pixel pitch that makes the largest CoC of a sweep over ``dioptres``
    (a point at one end, the focus at the other) ``max_radius`` pixels."""
    lo, hi = dioptres
    probe = ThinLens(focal_length=0.05, f_number=2.8, pixel_pitch=1.0)
    r_unit = max(probe.coc_radius(1.0 / lo, 1.0 / hi), probe.coc_radius(1.0 / hi, 1.0 / lo))
    return ThinLens(focal_length=0.05, f_number=2.8, pixel_pitch=float(r_unit / max_radius))


def make_sweep(image: np.ndarray, labels: np.ndarray, frames: int, rng: np.random.Generator, *,
               breathing: bool, noise: float = NOISE, jpeg=JPEG_QUALITY) -> R.MultiFocusSample:
    """One focal sweep of ``frames`` frames of the photo (C, H, W) float32 with segment ``labels`` (H, W)."""
    lo, hi = DIOPTRE_RANGE
    depth = slanted_segment_depth(labels, rng)
    scene = scene_from_depth_map(image, depth, planes=PLANES)
    max_radius = float(rng.uniform(6.0, 14.0))
    lens = sweep_lens(max_radius)
    near_first = bool(rng.random() < 0.5)
    focus_dioptres = np.linspace(hi, lo, frames) if near_first else np.linspace(lo, hi, frames)
    distances = 1.0 / focus_dioptres
    reference = float(distances[frames // 2]) if breathing else None
    stack = focal_sweep(scene, lens, distances, breathing=breathing, breathing_reference=reference)
    out = []
    jpeg_frames = set(rng.permutation(frames)[: frames // 2].tolist())
    for k, frame in enumerate(stack.frames):
        f = sensor_noise(frame, rng, noise) if noise > 0 else frame
        if k in jpeg_frames and jpeg is not None:
            f = np.moveaxis(jpeg_roundtrip(np.moveaxis(f, 0, -1), int(rng.integers(jpeg[0], jpeg[1] + 1))), -1, 0)
        out.append(f.astype(np.float32))
    nearest = np.argmin(stack.radius, axis=0)
    focus = (np.arange(frames)[:, None, None] == nearest[None]).astype(np.float32)
    info = {"recipe": "focal-sweep", "frames": frames, "planes": PLANES, "max_radius": max_radius,
            "pixel_pitch": lens.pixel_pitch, "f_number": lens.f_number, "focal_length": lens.focal_length,
            "order": "near to far" if near_first else "far to near", "breathing": breathing,
            "scales": [float(s) for s in stack.scales], "noise": noise, "jpeg_frames": sorted(jpeg_frames),
            "dioptres": list(DIOPTRE_RANGE)}
    return R.MultiFocusSample(frames=np.stack(out), gt=stack.gt, focus=focus, blur=stack.radius.astype(np.float32),
                              info=info)


def devset_sweep(source: PhotoSource, j: int, seed: int, *, offset: int) -> R.MultiFocusSample:
    """Dev-set sweep ``j``: photo ``perm[offset + j]`` of the dev set's permutation."""
    perm = np.random.default_rng([seed, 0]).permutation(len(source))
    photo = int(perm[(offset + j) % len(source)])
    rng = np.random.default_rng([seed, 3, j])
    sample = make_sweep(np.moveaxis(source.image(photo), -1, 0), source.label_map(photo, 0), sweep_frame_count(j), rng,
                        breathing=j % 2 == 1)
    sample.info["photo"] = source[photo].name
    return sample


def devset_stack8(source: PhotoSource, j: int, seed: int, *, offset: int, recipe) -> R.MultiFocusSample:
    """Dev-set 8-frame layered stack ``j`` (frames in depth order, near to far)."""
    perm = np.random.default_rng([seed, 0]).permutation(len(source))
    photo = int(perm[(offset + j) % len(source)])
    rng = np.random.default_rng([seed, 4, j])
    return R.make_layered(source, photo, rng, replace(recipe, shuffle_frames=False), frames=8)


_README = """
## Stacks of more than three frames (`sweeps/`, `stacks8/`)

{sweeps} focal sweeps in `sweeps/sweep_NN/` (`sweep_NN_01.png` .. in the order taken, `GT.png`,
focus maps in `focus/`) with K = 5..30 frames, rendered through a thin lens from a slanted-segment
depth map of each photo (see `mfif/synth/sweep.py`): defocus spread at occlusions, focus
breathing on every other sweep (about 0.6 % scale change; ground truth in the middle frame's
geometry), Poisson-Gaussian noise up to sigma 0.01 and JPEG q 85..95 on half the frames.
{stacks8} layered 8-frame stacks in `stacks8/stack8_NN/` (frames near to far, no noise).
`index_sweeps.csv` lists the photo and parameters of each.
"""


def readme_section(sweeps: int = DEVSET_SWEEPS, stacks8: int = DEVSET_STACKS8) -> str:
    return _README.format(sweeps=sweeps, stacks8=stacks8)
