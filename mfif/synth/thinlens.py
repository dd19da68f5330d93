"""Thin-lens defocus rendering of a layered scene, one frame per focus distance.

Optics (an ideal thin lens, geometric optics, no diffraction or aberrations). A lens of focal
length ``f`` and f-number ``N`` has an entrance pupil of diameter ``A = f / N``. Focused at
distance ``s`` the sensor sits at the image distance ``v_s = f s / (s - f)`` (lens equation
``1/f = 1/s + 1/v``). A point at distance ``d`` comes to focus at ``v_d = f d / (d - f)``; its
cone of light, ``A`` wide at the lens, is cut by the sensor in a disk (the circle of confusion)
of diameter ``c = A |v_s - v_d| / v_d``. Substituting ``v_d`` and ``v_s``::

    c = A * v_s * |1/d - 1/s|

so the blur *radius in pixels* is ``r = A v_s |1/d - 1/s| / (2 p)`` for a pixel pitch ``p``:
linear in the dioptric distance ``|1/d - 1/s|`` from the focal plane, zero on it
(:meth:`ThinLens.coc_radius`). The point spread function is the uniform disk (pillbox) of that
radius, integrated over each pixel (:func:`mfif.synth.blur.disk_kernel`).

Focus breathing: refocusing moves the sensor (or the lens), so the image scale changes with
``v_s``. For a lens focused by moving it as a whole, the magnification of a distant scene is
proportional to ``v_s``; a frame focused at ``s`` is therefore the reference frame scaled by
``v_s / v_ref`` about the optical centre (:meth:`ThinLens.breathing_scale`).

Occlusions: the scene is a stack of depth layers, each with a colour image and an alpha matte.
Frames are rendered back to front, every layer blurred *together with its alpha* by its own disk
(premultiplied "over", :class:`mfif.synth.compose.LayerStack`), so a blurred near layer spreads
semi-transparently over a sharp far one, and a sharp near edge stays sharp over a blurred far
layer. A scene given as one image and a depth map is cut into depth planes equally spaced in
dioptres (:func:`scene_from_depth_map`); colour hidden behind a nearer plane is filled from the
plane's visible part.

Arrays follow the library: images (C, H, W) float32 in [0, 1], maps (H, W); distances in metres.

Example:
    >>> scene = random_scene(64, 64, seed=0, layers=2)
    >>> lens = ThinLens(focal_length=0.05, f_number=2.0, pixel_pitch=1e-4)
    >>> frame = render_thin_lens(scene, lens, focus_distance=float(scene.depths[0]))
    >>> frame.image.shape, frame.image.dtype, bool(frame.in_focus.any())
    ((3, 64, 64), dtype('float32'), True)
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from mfif.synth import focus_maps as fm
from mfif.synth.blur import defocus_support
from mfif.synth.compose import LayerStack

# a disk below half a pixel is rendered as a delta (see mfif.synth.blur.defocus_blur)
SHARP_RADIUS = 0.5


@dataclass(frozen=True)
class ThinLens:
    """An ideal thin lens on a sensor (all lengths in metres).

    Attributes:
        focal_length: ``f``, e.g. 0.05 for a 50 mm lens.
        f_number: ``N``; the aperture diameter is ``f / N``.
        pixel_pitch: sensor length covered by one pixel of the rendered image (the physical
            pitch times any downscaling of the render), e.g. 2e-5 for 20 um.
    """

    focal_length: float = 0.05
    f_number: float = 2.8
    pixel_pitch: float = 2e-5

    def __post_init__(self):
        for name in ("focal_length", "f_number", "pixel_pitch"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"ThinLens.{name} must be a positive number, got {v!r}")

    @property
    def aperture(self) -> float:
        """Entrance pupil diameter ``f / N`` (m)."""
        return self.focal_length / self.f_number

    def _check_distance(self, d, what: str):
        d = np.asarray(d, dtype=np.float64)
        if not np.all(d > self.focal_length):
            raise ValueError(f"{what} must be beyond the focal length ({self.focal_length} m), got "
                             f"min {float(np.min(d))}")
        return d

    def image_distance(self, focus_distance: float) -> float:
        """Lens-to-sensor distance ``v = f s / (s - f)`` when focused at ``s`` (m)."""
        s = float(self._check_distance(focus_distance, "focus distance"))
        return self.focal_length * s / (s - self.focal_length)

    def coc_radius(self, distance, focus_distance: float):
        """Circle-of-confusion radius in pixels, ``A v_s |1/d - 1/s| / (2 p)``.

        ``distance``: scalar or array of object distances (m). Returns the same shape (float64).
        """
        d = self._check_distance(distance, "object distance")
        s = float(focus_distance)
        r = self.aperture * self.image_distance(s) * np.abs(1.0 / d - 1.0 / s) / (2.0 * self.pixel_pitch)
        return float(r) if np.ndim(r) == 0 else r

    def breathing_scale(self, focus_distance: float, reference_distance: float) -> float:
        """Image scale of a frame focused at ``focus_distance`` relative to one focused at
        ``reference_distance``: ``v_s / v_ref`` (> 1 when focusing nearer)."""
        return self.image_distance(focus_distance) / self.image_distance(reference_distance)


@dataclass
class LayeredScene:
    """Depth layers of a scene.

    Attributes:
        colors: (L, C, H, W) straight colour of each layer, valid everywhere (a layer continues
            behind nearer ones), or (C, H, W) one image shared by all layers (a photo cut into
            depth planes; hidden colour is then filled from each plane's visible part).
        alphas: (L, H, W) visible coverage of each layer, summing to one at every pixel.
        depths: (L,) distance of each layer from the lens (m).
    """

    colors: np.ndarray
    alphas: np.ndarray
    depths: np.ndarray

    def __post_init__(self):
        self.colors = np.asarray(self.colors, dtype=np.float32)
        self.alphas = np.asarray(self.alphas, dtype=np.float32)
        self.depths = np.asarray(self.depths, dtype=np.float64).ravel()
        if self.alphas.ndim != 3:
            raise ValueError(f"alphas must be (L, H, W), got shape {self.alphas.shape}")
        if self.depths.size != self.alphas.shape[0]:
            raise ValueError(f"{self.alphas.shape[0]} layers but {self.depths.size} depths")
        if self.colors.ndim not in (3, 4) or self.colors.shape[-2:] != self.alphas.shape[1:] or (
                self.colors.ndim == 4 and self.colors.shape[0] != self.alphas.shape[0]):
            raise ValueError(f"colours of shape {self.colors.shape} do not match alphas of shape {self.alphas.shape}")
        total = self.alphas.sum(axis=0)
        if np.abs(total - 1.0).max() > 1e-3:
            raise ValueError(f"layer alphas must sum to 1 at every pixel (found {total.min():.4f}..{total.max():.4f})")
        if not np.all(np.isfinite(self.depths)) or np.any(self.depths <= 0):
            raise ValueError(f"layer depths must be positive distances in metres, got {self.depths}")

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.alphas.shape[1:])

    @property
    def shared_colors(self) -> bool:
        return self.colors.ndim == 3

    def visible_layer(self) -> np.ndarray:
        """(H, W) int16: index of the layer with the largest visible coverage at each pixel."""
        return np.argmax(self.alphas, axis=0).astype(np.int16)

    def depth_map(self) -> np.ndarray:
        """(H, W) float32: depth of the visible layer at each pixel (m)."""
        return self.depths[self.visible_layer()].astype(np.float32)


@dataclass
class ThinLensFrame:
    """One rendered frame.

    Attributes:
        image: (C, H, W) float32 in [0, 1].
        radius: (H, W) float32 blur radius (pixels) of what is seen at each pixel: the layers'
            radii weighted by their visible coverage.
        layer: (H, W) int16 index of the visible layer (largest coverage).
        in_focus: (H, W) bool: the visible layer's radius is below half a pixel (rendered sharp).
        focus_distance: where the lens was focused (m).
        layer_radii: (L,) blur radius of each layer (pixels).
        scale: focus-breathing scale applied (1 without breathing).
    """

    image: np.ndarray
    radius: np.ndarray
    layer: np.ndarray
    in_focus: np.ndarray
    focus_distance: float
    layer_radii: np.ndarray
    scale: float = 1.0


def _hwc(colors: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.moveaxis(colors, -3, -1))


def _layer_stack(scene: LayeredScene, max_radius: float) -> LayerStack:
    band = float(max(defocus_support(max_radius), 1))
    return LayerStack(_hwc(scene.colors), scene.alphas, scene.depths, fill_hidden=True, band=band,
                      complete_colors=not scene.shared_colors)


def _breathe(arr: np.ndarray, scale: float, interpolation: int) -> np.ndarray:
    """Scale an (H, W[, C]) array about its centre, keeping its size (borders reflected)."""
    h, w = arr.shape[:2]
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    m = np.array([[scale, 0.0, cx * (1 - scale)], [0.0, scale, cy * (1 - scale)]], np.float64)
    out = cv2.warpAffine(np.ascontiguousarray(arr), m, (w, h), flags=interpolation, borderMode=cv2.BORDER_REFLECT_101)
    return out[..., None] if arr.ndim == 3 and out.ndim == 2 else out


def _render(stack: LayerStack, scene: LayeredScene, lens: ThinLens, focus_distance: float,
            breathing_reference: float | None) -> ThinLensFrame:
    radii = np.asarray(lens.coc_radius(scene.depths, focus_distance), np.float64).reshape(-1)
    radii = np.where(radii < SHARP_RADIUS, 0.0, radii)  # rendered as a delta anyway
    image = stack.render(radii, "disk")
    radius = np.tensordot(radii.astype(np.float32), scene.alphas, axes=1).astype(np.float32)
    layer = scene.visible_layer()
    scale = 1.0
    if breathing_reference is not None:
        scale = lens.breathing_scale(focus_distance, breathing_reference)
        if scale != 1.0:
            image = np.clip(_breathe(image, scale, cv2.INTER_LINEAR), 0.0, 1.0)
            radius = _breathe(radius, scale, cv2.INTER_LINEAR)
            layer = _breathe(layer, scale, cv2.INTER_NEAREST)
    in_focus = radii[layer] < SHARP_RADIUS
    return ThinLensFrame(image=np.ascontiguousarray(np.moveaxis(image, -1, 0), dtype=np.float32), radius=radius,
                         layer=layer.astype(np.int16), in_focus=in_focus, focus_distance=float(focus_distance),
                         layer_radii=radii, scale=float(scale))


def render_thin_lens(scene: LayeredScene, lens: ThinLens, focus_distance: float, *,
                     breathing_reference: float | None = None) -> ThinLensFrame:
    """Render ``scene`` through ``lens`` focused at ``focus_distance`` (m).

    Args:
        scene: the layers (:class:`LayeredScene`).
        lens: the optics (:class:`ThinLens`).
        focus_distance: distance of the focal plane (m), beyond the focal length.
        breathing_reference: when given, the frame is scaled by
            ``lens.breathing_scale(focus_distance, breathing_reference)`` (focus breathing;
            a frame focused at the reference is unscaled).

    Returns a :class:`ThinLensFrame`. The render is deterministic (no random draws).
    """
    radii = lens.coc_radius(scene.depths, focus_distance)
    stack = _layer_stack(scene, float(np.max(radii)))
    return _render(stack, scene, lens, focus_distance, breathing_reference)


@dataclass
class FocalStack:
    """Frames of a focal sweep with their ground truth.

    Attributes:
        frames: (K, C, H, W) float32; radius (K, H, W) float32; layer (K, H, W) int16;
            in_focus (K, H, W) bool (see :class:`ThinLensFrame`).
        gt: (C, H, W) the all-in-focus image (every layer sharp, unscaled).
        focus_distances: (K,) metres; scales: (K,) breathing scales.
    """

    frames: np.ndarray
    radius: np.ndarray
    layer: np.ndarray
    in_focus: np.ndarray
    gt: np.ndarray
    focus_distances: np.ndarray
    scales: np.ndarray


def focal_sweep(scene: LayeredScene, lens: ThinLens, focus_distances, *, breathing: bool = False,
                breathing_reference: float | None = None) -> FocalStack:
    """Render one frame per focus distance (the layers are prepared once).

    With ``breathing`` the frames are scaled relative to ``breathing_reference`` (default: the
    farthest focus distance, so nearer-focused frames are magnified); the ground truth is at the
    reference scale.
    """
    dists = np.asarray(focus_distances, dtype=np.float64).ravel()
    if dists.size == 0:
        raise ValueError("focal_sweep needs at least one focus distance")
    ref = (float(dists.max()) if breathing_reference is None else float(breathing_reference)) if breathing else None
    max_r = max(float(np.max(lens.coc_radius(scene.depths, float(s)))) for s in dists)
    stack = _layer_stack(scene, max_r)
    frames = [_render(stack, scene, lens, float(s), ref) for s in dists]
    gt = np.ascontiguousarray(np.moveaxis(stack.ground_truth(), -1, 0), dtype=np.float32)
    return FocalStack(frames=np.stack([f.image for f in frames]), radius=np.stack([f.radius for f in frames]),
                      layer=np.stack([f.layer for f in frames]), in_focus=np.stack([f.in_focus for f in frames]),
                      gt=gt, focus_distances=dists, scales=np.array([f.scale for f in frames]))


def scene_from_depth_map(image: np.ndarray, depth: np.ndarray, *, planes: int | None = 16) -> LayeredScene:
    """Cut an image into depth planes equally spaced in dioptres (1 / distance).

    Args:
        image: (C, H, W) float32 in [0, 1].
        depth: (H, W) distance of each pixel (m), positive and finite.
        planes: number of planes between the nearest and farthest depth; each plane sits at the
            dioptric mean of its bin, so the blur error of the quantisation is at most half a
            bin's radius step. ``None``: one plane per distinct depth value (a piecewise
            constant depth map, e.g. one depth per segment).
    """
    image = np.asarray(image, dtype=np.float32)
    depth = np.asarray(depth, dtype=np.float64)
    if image.ndim != 3 or depth.shape != image.shape[1:]:
        raise ValueError(f"image (C, H, W) {image.shape} and depth (H, W) {depth.shape} do not match")
    if not np.all(np.isfinite(depth)) or np.any(depth <= 0):
        raise ValueError("depth map must be positive and finite (metres)")
    if planes is not None and planes < 1:
        raise ValueError(f"planes must be at least 1, got {planes}")
    inv = 1.0 / depth
    lo, hi = float(inv.min()), float(inv.max())
    if planes is None:
        values, idx = np.unique(depth, return_inverse=True)
        alphas = (idx.reshape(depth.shape)[None] == np.arange(values.size)[:, None, None]).astype(np.float32)
        return LayeredScene(image, alphas, values)
    if hi - lo < 1e-12:
        idx = np.zeros(depth.shape, np.int64)
    else:
        idx = np.minimum(((inv - lo) / (hi - lo) * planes).astype(np.int64), planes - 1)
    used = np.unique(idx)
    remap = np.zeros(planes, np.int64)
    remap[used] = np.arange(used.size)
    idx = remap[idx]
    counts = np.bincount(idx.ravel(), minlength=used.size)
    mean_inv = np.bincount(idx.ravel(), weights=inv.ravel(), minlength=used.size) / counts
    alphas = (idx[None] == np.arange(used.size)[:, None, None]).astype(np.float32)
    return LayeredScene(image, alphas, 1.0 / mean_inv)


def _texture(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A procedural colour texture (3, H, W): smooth colour plus fine grain and some edges."""
    base = fm.smooth_field(h, w, rng, cells=float(rng.uniform(2, 6)), channels=3)
    base = 0.5 + 0.25 * base / max(float(np.abs(base).max()), 1e-6)
    grain = rng.random((1, h, w), dtype=np.float32) - 0.5
    cells = fm.random_smooth_labels(h, w, rng, (4, 12), cells=(4.0, 10.0))
    tone = rng.uniform(-0.15, 0.15, size=int(cells.max()) + 1).astype(np.float32)
    tex = base + float(rng.uniform(0.1, 0.3)) * grain + tone[cells][None]
    return np.clip(tex, 0.0, 1.0).astype(np.float32)


def random_scene(height: int, width: int, seed: int, *, layers: int = 3,
                 depth_range: tuple[float, float] = (0.3, 5.0), soft_edges: float = 0.0) -> LayeredScene:
    """A random layered scene of procedural textures, fixed by ``seed`` (no photos needed).

    Layer 0 is the farthest (a full background); every nearer layer is a random smooth shape.
    Depths are drawn uniformly in dioptres within ``depth_range`` (m) and sorted far -> near.
    ``soft_edges``: Gaussian sigma (px) of the shape mattes (0 = hard edges).
    """
    if layers < 1:
        raise ValueError(f"layers must be at least 1, got {layers}")
    near, far = float(min(depth_range)), float(max(depth_range))
    if near <= 0:
        raise ValueError(f"depth_range must be positive distances in metres, got {depth_range}")
    rng = np.random.default_rng([int(seed), 0x7417])
    colors = np.stack([_texture(height, width, rng) for _ in range(layers)])
    dioptres = np.sort(rng.uniform(1.0 / far, 1.0 / near, size=layers))  # ascending: far -> near
    coverage = [np.ones((height, width), np.float32)]
    for _ in range(1, layers):
        lab = fm.random_smooth_labels(height, width, rng, (2, 4))
        shape = (lab == int(rng.integers(0, int(lab.max()) + 1))).astype(np.float32)
        if soft_edges > 0:
            shape = cv2.GaussianBlur(shape, (0, 0), float(soft_edges))
        coverage.append(shape)
    # visible coverage: each layer is covered by the product of (1 - nearer shapes)
    alphas = np.empty((layers, height, width), np.float32)
    remaining = np.ones((height, width), np.float32)
    for i in range(layers - 1, -1, -1):
        alphas[i] = coverage[i] * remaining
        remaining = remaining * (1.0 - coverage[i])
    alphas[0] += remaining  # (the background covers everything; guards rounding)
    return LayeredScene(colors, alphas, 1.0 / dioptres)


__all__ = ["SHARP_RADIUS", "ThinLens", "LayeredScene", "ThinLensFrame", "FocalStack", "render_thin_lens",
           "focal_sweep", "scene_from_depth_map", "random_scene"]
