"""The halo dev set: bright fine detail at occlusions under strong defocus (``mfif synth --devset``).

Halos are what photographers complain about most in focus stacks: a bright speck, a thin bright
stroke or a specular rim that is sharp in one frame is a wide glowing disk in the others, and a
fusion that takes the detail from one frame and its surroundings from another keeps a ring of
that glow; a blurred near object spills over a sharp background and leaves a veil. Each item here
is a layered scene rendered through a thin lens (:mod:`mfif.synth.thinlens`), so that glow and
that spill are in the frames, and the all-in-focus ground truth is known.

**Scene** (all layers are full images with their own colour; alphas from coverage, near over far):

- *background* (farthest plane): the whole photo, with bright fine detail painted on it;
- *occluder*: a random smooth shape (``random_smooth_labels``, 25-55 % of the frame) textured with
  the photo turned by 180 degrees and tinted, carrying bright detail too;
- *floating detail* (nearest plane): bright detail alone on a transparent layer (a thin wire
  mesh, a spider web, dust in front of a scene).

**Bright fine detail** (``paint_detail``): drawn at 4x and area-downsampled (anti-aliased mattes);
colours near white or saturated bright (value 0.85-1.0):

| kind | count | size |
|---|---|---|
| specks | 20-120 | radius 0.6-2.5 px |
| text-like strokes | 3-8 words of 2-7 letters/digits | Hershey font, height 6-20 px, stroke 1-2 px |
| rims | 3-10 ellipse arcs | semi-axes 6-60 px, 1-2 px wide, arc 90-360 degrees |

**Items** (``halo_00`` ..): pairs in three kinds, ``i % 3``:

- 0 *detail in front*: floating detail near, background far (the glow of blurred bright detail
  over a sharp background, and sharp detail over a blurred one);
- 1 *detail behind*: occluder near over the detailed background (a blurred occluder spilling
  over sharp bright detail; blurred detail behind a sharp occluder edge);
- 2 *both*: the occluder with floating detail in front of it on the near plane, over the
  detailed background (every layer is sharp in one of the two frames).

Stacks (``halo_stack_00`` .., 3, 4 or 5 frames, near to far): background, K - 2 occluders and
the floating detail on K planes, frame k focused on the k-th nearest plane.

**Optics**: 50 mm f/2.8 (:func:`mfif.synth.sweep.sweep_lens`); planes spread in dioptres over a
scene of 0.05-0.17 dioptres; the pixel pitch is set so the largest blur radius of an item is
``r_max`` ~ U(8, 16) px for pairs, U(12, 20) px for stacks (strong defocus spread). Focus map k = 1
where frame k has the smallest blur radius (ties: the nearer-focused frame). No noise, JPEG or
breathing: the halo is the subject. Pairs in random frame order, stacks near to far. Photos: the
dev set's permutation of the BSDS500 test split after the sweeps and 8-frame stacks (150..), one
per item.
"""
from __future__ import annotations

import string

import cv2
import numpy as np

from mfif.synth import focus_maps as fm
from mfif.synth import recipes as R
from mfif.synth.sources import PhotoSource
from mfif.synth.sweep import DIOPTRE_RANGE, sweep_lens
from mfif.synth.thinlens import LayeredScene, ThinLens, focal_sweep

HALO_PAIRS = 20
HALO_STACKS = 6
PAIR_RADIUS = (8.0, 16.0)
STACK_RADIUS = (12.0, 20.0)
_SUPERSAMPLE = 4
_FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_PLAIN, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX_SMALL)


def _bright_colour(rng: np.random.Generator) -> np.ndarray:
    """Near white (half the time) or a saturated bright colour; max channel 0.85-1.0."""
    value = rng.uniform(0.85, 1.0)
    if rng.random() < 0.5:
        return np.full(3, value, np.float32) * rng.uniform(0.95, 1.0, 3).astype(np.float32)
    hue = rng.uniform(0, 1)
    rgb = np.clip(np.abs(((hue * 6 + np.array([0, 4, 2])) % 6) - 3) - 1, 0, 1)  # HSV -> RGB, S = 1
    return (value * (0.35 + 0.65 * rgb)).astype(np.float32)


def paint_detail(h: int, w: int, rng: np.random.Generator, *, specks: bool = True, strokes: bool = True,
                 rims: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Bright fine detail: (colour (3, H, W) float32, coverage (H, W) float32 in [0, 1]).

    Drawn aliased at 4x on a canvas and area-downsampled (16 samples per pixel), so edges are
    anti-aliased; each element has its own bright colour (later elements over earlier ones).
    Sizes: module docstring.
    """
    s = _SUPERSAMPLE
    cover = np.zeros((h * s, w * s), np.uint8)  # 8-bit canvases: OpenCV draws text on CV_8U only
    colour = np.zeros((h * s, w * s, 3), np.uint8)

    def stamp(draw) -> None:
        c = tuple(int(round(255 * float(v))) for v in _bright_colour(rng))
        draw(cover, 255)
        draw(colour, c)

    if specks:
        for _ in range(int(rng.integers(20, 121))):
            x, y, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.6, 2.5)
            stamp(lambda m, c: cv2.circle(m, (int(x * s), int(y * s)), max(1, int(round(r * s))), c, -1, cv2.LINE_8))
    if strokes:
        alphabet = string.ascii_uppercase + string.digits
        for _ in range(int(rng.integers(3, 9))):
            word = "".join(rng.choice(list(alphabet), size=int(rng.integers(2, 8))))
            font = _FONTS[int(rng.integers(len(_FONTS)))]
            height = rng.uniform(6, 20)
            (_, base_h), _ = cv2.getTextSize("A", font, 1.0, 1)
            scale = height * s / max(base_h, 1)
            thickness = max(1, int(round(rng.uniform(1.0, 2.0) * s)))
            (tw, th), _ = cv2.getTextSize(word, font, scale, thickness)
            x = rng.uniform(-0.1 * tw, max(w * s - 0.9 * tw, 1))
            y = rng.uniform(th, h * s)
            stamp(lambda m, c: cv2.putText(m, word, (int(x), int(y)), font, scale, c, thickness, cv2.LINE_8))
    if rims:
        for _ in range(int(rng.integers(3, 11))):
            centre = (int(rng.uniform(0, w) * s), int(rng.uniform(0, h) * s))
            axes = (int(rng.uniform(6, 60) * s), int(rng.uniform(6, 60) * s))
            angle, start = rng.uniform(0, 360), rng.uniform(0, 360)
            arc = rng.uniform(90, 360)
            thickness = max(1, int(round(rng.uniform(1.0, 2.0) * s)))
            stamp(lambda m, c: cv2.ellipse(m, centre, axes, angle, start, start + arc, c, thickness, cv2.LINE_8))
    small = lambda a: cv2.resize(a, (w, h), interpolation=cv2.INTER_AREA)  # noqa: E731
    cover = cover.astype(np.float32) / 255.0
    cov = np.clip(small(cover), 0.0, 1.0)
    premult = small(colour.astype(np.float32) / 255.0 * cover[..., None])
    col = np.where(cov[..., None] > 1e-6, premult / np.maximum(cov[..., None], 1e-6), 0.0)
    return np.ascontiguousarray(np.moveaxis(np.clip(col, 0, 1), -1, 0), dtype=np.float32), cov.astype(np.float32)


def _over(base: np.ndarray, colour: np.ndarray, cover: np.ndarray) -> np.ndarray:
    return (base * (1 - cover[None]) + colour * cover[None]).astype(np.float32)


def _occluder(photo: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A smooth random shape covering 25-55 % of the frame, textured with the turned, tinted photo."""
    _, h, w = photo.shape
    target = rng.uniform(0.25, 0.55)
    shape = None
    for _ in range(8):  # redraw until the shape covers about the target share
        labels = fm.random_smooth_labels(h, w, rng, (2, 4))
        areas = np.bincount(labels.ravel()) / labels.size
        k = int(np.argmin(np.abs(areas - target)))
        shape = labels == k
        if 0.2 <= areas[k] <= 0.6:
            break
    matte = cv2.GaussianBlur(shape.astype(np.float32), (0, 0), 0.7)  # an edge about a pixel soft
    tint = rng.uniform(0.6, 1.1, 3).astype(np.float32)[:, None, None]
    texture = np.clip(photo[:, ::-1, ::-1] * tint, 0, 1).astype(np.float32)
    return texture, matte


def _visible(coverage: list[np.ndarray]) -> np.ndarray:
    """Coverage of layers far -> near (layer 0 full) -> visible alphas summing to one."""
    alphas = np.empty((len(coverage), *coverage[0].shape), np.float32)
    remaining = np.ones(coverage[0].shape, np.float32)
    for i in range(len(coverage) - 1, -1, -1):
        alphas[i] = coverage[i] * remaining
        remaining = remaining * (1.0 - coverage[i])
    alphas[0] += remaining
    return alphas


def _scene(photo: np.ndarray, kinds: list[str], rng: np.random.Generator) -> tuple[list, list]:
    """Layers far -> near for ``kinds`` (``background``, ``occluder``, ``detail``): colours, coverages."""
    _, h, w = photo.shape
    colours, coverage = [], []
    for kind in kinds:
        if kind == "background":
            colour, cover = photo.astype(np.float32), np.ones((h, w), np.float32)
            dc, dv = paint_detail(h, w, rng)
            colour = _over(colour, dc, dv)
        elif kind == "occluder":
            colour, cover = _occluder(photo, rng)
            dc, dv = paint_detail(h, w, rng, specks=rng.random() < 0.5)
            colour = _over(colour, dc, dv)
        else:
            colour, cover = paint_detail(h, w, rng, rims=rng.random() < 0.7)
        colours.append(colour)
        coverage.append(cover)
    return colours, coverage


def _render(photo: np.ndarray, kinds: list[str], focus_planes: list[int], rng: np.random.Generator,
            radius_range: tuple[float, float], extra: dict, layer_planes: list[int] | None = None) -> R.MultiFocusSample:
    """Layers of ``kinds`` (far -> near) on planes spread over the dioptre range (layer i on plane
    ``layer_planes[i]``, default i; planes far -> near); one frame per focus plane, in the order of
    ``focus_planes``."""
    colours, coverage = _scene(photo, kinds, rng)
    lo, hi = DIOPTRE_RANGE
    layer_planes = list(range(len(kinds))) if layer_planes is None else list(layer_planes)
    n = max(layer_planes) + 1
    # planes far -> near, evenly spread with a little jitter (so plane spacing varies between items)
    dioptres = np.linspace(lo, hi, n)
    if n > 2:
        step = (hi - lo) / (n - 1)
        dioptres[1:-1] += rng.uniform(-0.25, 0.25, n - 2) * step
    depths = 1.0 / dioptres
    scene = LayeredScene(np.stack(colours), _visible(coverage), depths[layer_planes])
    max_radius = float(rng.uniform(*radius_range))
    # the largest CoC of the item: a far plane with the focus on the near plane, or vice versa
    lens = sweep_lens(max_radius, (float(dioptres[0]), float(dioptres[-1])))
    stack = focal_sweep(scene, lens, depths[focus_planes])
    frames = len(focus_planes)
    nearest = np.argmin(stack.radius, axis=0)
    focus = (np.arange(frames)[:, None, None] == nearest[None]).astype(np.float32)
    info = {"recipe": "halo", "layers": kinds, "layer_planes": layer_planes, "focus_planes": [int(p) for p in focus_planes],
            "dioptres": [float(d) for d in dioptres], "max_radius": max_radius,
            "plane_radii": [[float(r) for r in np.asarray(lens.coc_radius(depths, float(depths[p])))]
                            for p in focus_planes],
            "pixel_pitch": lens.pixel_pitch, "f_number": lens.f_number, "focal_length": lens.focal_length,
            "detail_share": float(np.mean(coverage[-1])) if kinds[-1] == "detail" else None, **extra}
    return R.MultiFocusSample(frames=stack.frames.astype(np.float32), gt=stack.gt, focus=focus,
                              blur=stack.radius.astype(np.float32), info=info)


HALO_KINDS = ("detail in front", "detail behind", "both")


def _photo(source: PhotoSource, index: int, seed: int, offset: int) -> tuple[int, np.ndarray]:
    perm = np.random.default_rng([seed, 0]).permutation(len(source))
    photo = int(perm[(offset + index) % len(source)])
    return photo, np.moveaxis(source.image(photo), -1, 0).astype(np.float32)


def halo_pair(source: PhotoSource, i: int, seed: int, *, offset: int) -> R.MultiFocusSample:
    """Halo pair ``i``: kind ``HALO_KINDS[i % 3]``, photo ``perm[offset + i]``, frames in random order."""
    photo, image = _photo(source, i, seed, offset)
    rng = np.random.default_rng([seed, 5, i])
    kind = HALO_KINDS[i % 3]
    kinds = {"detail in front": ["background", "detail"], "detail behind": ["background", "occluder"],
             "both": ["background", "occluder", "detail"]}[kind]
    order = [1, 0] if rng.random() < 0.5 else [0, 1]  # near-focused first or second
    return _render(image, kinds, order, rng, PAIR_RADIUS, {"kind": kind, "photo": source[photo].name,
                                                           "order": "near, far" if order[0] else "far, near"},
                   layer_planes=[0, 1, 1][:len(kinds)])


def halo_stack(source: PhotoSource, j: int, seed: int, *, offset: int) -> R.MultiFocusSample:
    """Halo stack ``j``: 3, 4 or 5 frames (``3 + j % 3``) near to far, photo ``perm[offset + j]``."""
    photo, image = _photo(source, j, seed, offset)
    rng = np.random.default_rng([seed, 6, j])
    frames = 3 + j % 3
    middle = ["occluder"] * (frames - 2)
    kinds = ["background", *middle, "detail"]
    return _render(image, kinds, list(range(frames - 1, -1, -1)), rng, STACK_RADIUS,
                   {"kind": f"{frames}-frame stack", "photo": source[photo].name, "order": "near to far"})


_README = """
## Halo set (`halo/`)

{pairs} pairs (`halo/halo_NN_A.png`, `_B.png`, `_GT.png`, focus maps in `halo/focus/`) and
{stacks} stacks of 3-5 frames (`halo/halo_stack_NN/`, near to far, `GT.png`, `focus/`): bright fine
detail (specks, text-like strokes, rims) in front of and behind strongly blurred layers, blurred
occluders spilling over sharp detail, thin-lens rendered with the largest blur radius 8-16 px
(pairs) or 12-20 px (stacks); no noise. See `mfif/synth/halo.py`. `index_halo.csv` lists the
photo and parameters of each item.
"""


def readme_section(pairs: int = HALO_PAIRS, stacks: int = HALO_STACKS) -> str:
    return _README.format(pairs=pairs, stacks=stacks)


__all__ = ["HALO_PAIRS", "HALO_STACKS", "HALO_KINDS", "paint_detail", "halo_pair", "halo_stack", "readme_section"]
