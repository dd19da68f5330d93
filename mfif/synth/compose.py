"""Compositing multi-focus frames: the papers' hard-mask blend and a layered, occlusion-aware
renderer in which a defocused foreground spreads over an in-focus background (real optics).

Hard masks (Liu, IFCNN, Hourglass, BA paper): ``frame = sum_g mask_g * blur_g(photo)`` — every
region is cut from a blurred copy of the *whole* photo, so a blurred foreground stops sharply at
the mask edge and a sharp foreground shows the background's colours blurred into it
(:func:`composite_hard`).

Layered (:class:`LayerStack`): the scene is a stack of depth layers, each with a colour image and
a coverage (alpha); the coverages of all layers sum to one. A frame is rendered back to front
with premultiplied "over": every layer is blurred *together with its alpha* by its own PSF, so

- a blurred near layer spreads semi-transparently over a sharp far layer (the spill band),
- a sharp near layer hides a blurred far layer completely, with no colour bleeding in.

The colour hidden behind a nearer layer is unknown; when ``fill_hidden`` is on, each layer is
extended behind nearer layers, within ``band`` pixels of where it is visible, with colours
diffused from its visible part (push-pull fill), so a blurred near edge shows a plausible
background through it. Whatever coverage is still missing is renormalised (``C / A``).

With every radius 0 the render is the all-in-focus composite (the ground truth). Where a pixel
belongs to a sharp layer and no blurred nearer layer reaches it, a frame equals the ground truth
bit for bit (see :meth:`LayerStack.exact_mask`).

Arrays are (H, W, C) float32 here (OpenCV order); alphas (H, W).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from mfif.synth.blur import defocus_support, psf_blur

_TINY = 1e-6
# Distances use OpenCV's 5x5 chamfer mask: deterministic (DIST_MASK_PRECISE is not, at the 1e-6
# level, which broke "same seed -> same bytes") and never larger than the true distance, so the
# bands derived from it are conservative.


def composite_hard(images: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Hard-mask composite ``sum_g weights[g] * images[g]``.

    Args:
        images: (G, H, W, C) float32, e.g. the sharp photo and blurred copies of it.
        weights: (G, H, W) float32 masks summing to one (binary masks give exact copies).
    """
    images = np.asarray(images, dtype=np.float32)
    weights = np.asarray(weights, dtype=np.float32)
    out = weights[0][..., None] * images[0]
    for g in range(1, images.shape[0]):
        out += weights[g][..., None] * images[g]
    return out


def _split(stack: np.ndarray, c: int):
    return stack[..., :c], stack[..., c]


def push_pull_fill(premult: np.ndarray, alpha: np.ndarray, *, half_resolution: bool = False) -> np.ndarray:
    """Fill colour where ``alpha`` < 1 by pyramid push-pull from the covered pixels.

    Args:
        premult: (H, W, C) colour premultiplied by ``alpha``.
        alpha: (H, W) coverage in [0, 1].

    Returns (H, W, C) straight colour: equal to ``premult`` where alpha == 1, smoothly diffused
    from nearby covered pixels elsewhere. ``half_resolution`` diffuses from a half-size copy
    (4x cheaper; the fill is only ever seen through blurred edges).
    """
    c = premult.shape[2]
    stack = np.concatenate([premult, alpha[..., None]], axis=2).astype(np.float32)
    levels = [stack]
    if half_resolution and min(stack.shape[:2]) > 8:
        h, w = stack.shape[:2]
        small = push_pull_fill(*_split(_pyr(cv2.pyrDown, stack), c), half_resolution=False)
        up = _pyr(cv2.pyrUp, small, dstsize=(w, h))
        a = np.clip(alpha, 0.0, 1.0)[..., None]
        return premult + (1.0 - a) * up
    while min(levels[-1].shape[:2]) > 4:
        levels.append(_pyr(cv2.pyrDown, levels[-1]))
    top = levels[-1]
    a = top[..., c:]
    total_a = float(top[..., c].sum(dtype=np.float64))
    mean = (top[..., :c].reshape(-1, c).sum(axis=0, dtype=np.float64) / total_a if total_a > 0
            else np.zeros(c)).astype(np.float32)
    fill = np.where(a > _TINY, top[..., :c] / np.maximum(a, _TINY), mean[None, None, :]).astype(np.float32)
    for lev in reversed(levels[:-1]):
        h, w = lev.shape[:2]
        up = _pyr(cv2.pyrUp, fill, dstsize=(w, h))
        a = np.clip(lev[..., c:], 0.0, 1.0)
        fill = lev[..., :c] + (1.0 - a) * up
    return fill


def _pyr(fn, arr: np.ndarray, **kw) -> np.ndarray:
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if arr.shape[2] <= 4:
        out = fn(arr, **kw)
        return out[..., None] if out.ndim == 2 else out
    parts = []
    for i in range(0, arr.shape[2], 4):
        p = fn(np.ascontiguousarray(arr[..., i:i + 4]), **kw)
        parts.append(p[..., None] if p.ndim == 2 else p)
    return np.concatenate(parts, axis=2) if len(parts) > 1 else parts[0]


@dataclass
class _Prepared:
    both: np.ndarray  # (H, W, C + 1): extended colour premultiplied by the extended alpha, then that alpha
    visible: np.ndarray  # (H, W) visible coverage (the input alpha)
    depth: float

    @property
    def alpha(self) -> np.ndarray:
        return self.both[..., -1]


class LayerStack:
    """A scene of depth layers for occlusion-aware defocus rendering.

    Args:
        colors: (L, H, W, C) per-layer straight colour, or one (H, W, C) image shared by all
            layers (a photo cut into segments).
        alphas: (L, H, W) visible coverage of each layer; they must sum to one at every pixel.
        depths: (L,) depth of each layer, 0 = nearest (drawn last).
        fill_hidden: extend each layer behind nearer layers (see module docstring).
        band: how far (pixels) a layer is extended behind nearer ones (default: 8).
        complete_colors: the per-layer colours are valid everywhere (e.g. a background photo
            behind a pasted foreground): hidden parts use them instead of a fill, and every
            layer but the nearest is extended behind all nearer layers.

    Example:
        >>> import numpy as np
        >>> img = np.random.default_rng(0).random((32, 32, 3), dtype=np.float32)
        >>> fg = np.zeros((32, 32), np.float32); fg[8:24, 8:24] = 1
        >>> stack = LayerStack(img, np.stack([fg, 1 - fg]), [0.2, 0.8])
        >>> bool(np.array_equal(stack.render([0.0, 0.0]), img))
        True
    """

    def __init__(self, colors: np.ndarray, alphas: np.ndarray, depths, *, fill_hidden: bool = True,
                 band: float = 8.0, complete_colors: bool = False):
        alphas = np.asarray(alphas, dtype=np.float32)
        if alphas.ndim != 3:
            raise ValueError(f"alphas must be (L, H, W), got shape {alphas.shape}")
        depths = np.asarray(depths, dtype=np.float64).ravel()
        if depths.size != alphas.shape[0]:
            raise ValueError(f"{alphas.shape[0]} layers but {depths.size} depths")
        colors = np.asarray(colors, dtype=np.float32)
        shared = colors.ndim == 3
        expected = alphas.shape[1:] if shared else alphas.shape
        if colors.ndim not in (3, 4) or colors.shape[:-1] != expected:
            raise ValueError(f"colours of shape {colors.shape} do not match alphas of shape {alphas.shape}")
        self.shape = alphas.shape[1:]
        self.channels = colors.shape[-1]
        self.order = np.argsort(-depths, kind="stable")  # far -> near
        self.layers: list[_Prepared] = []
        n = len(depths)
        # coverage of the layers nearer than each layer (hidden region)
        nearer = np.zeros(self.shape, np.float32)
        nearer_of = [None] * n
        for idx in self.order[::-1]:  # near -> far
            nearer_of[idx] = nearer.copy()
            nearer += alphas[idx]
        for rank, idx in enumerate(self.order):
            a = alphas[idx]
            col = colors if shared else colors[idx]
            premult = a[..., None] * col
            alpha_e, premult_e = a, premult
            hidden = nearer_of[idx]
            if complete_colors and not shared and hidden.max() > 0:
                alpha_e = a + hidden  # the layer's colour is known behind every nearer layer
                premult_e = premult + hidden[..., None] * col
            elif fill_hidden and hidden.max() > 0 and a.max() > 0:
                if rank == 0:  # farthest layer: extend everywhere, so no pixel is left uncovered
                    ext = hidden
                else:
                    seen = (a > 0).astype(np.uint8)
                    dist = cv2.distanceTransform(1 - seen, cv2.DIST_L2, 5)
                    ramp = np.clip(2.0 * (1.0 - dist / max(float(band), 1.0)), 0.0, 1.0).astype(np.float32)
                    ext = hidden * ramp
                if ext.max() > 0:
                    fill = push_pull_fill(premult, a, half_resolution=True)
                    alpha_e = a + ext
                    premult_e = premult + ext[..., None] * fill
            both = np.concatenate([premult_e, alpha_e[..., None]], axis=2).astype(np.float32, copy=False)
            self.layers.append(_Prepared(both=both, visible=a, depth=float(depths[idx])))
        self._index = {int(idx): rank for rank, idx in enumerate(self.order)}

    def __len__(self) -> int:
        return len(self.layers)

    def _radii_far_to_near(self, radii) -> list[float]:
        radii = np.asarray(radii, dtype=np.float64).ravel()
        if radii.size != len(self.layers):
            raise ValueError(f"{len(self.layers)} layers but {radii.size} radii")
        return [float(radii[idx]) for idx in self.order]

    def render(self, radii, psf: str = "disk") -> np.ndarray:
        """Render one frame: ``radii[l]`` is layer l's blur (disk radius or Gaussian sigma, px).

        Returns (H, W, C) float32 in [0, 1].
        """
        first = True
        for layer, r in zip(self.layers, self._radii_far_to_near(radii)):
            if r > 0 and (psf == "gaussian" or r >= 0.5):
                # (the blurs never use a DFT, so beyond the kernel's reach they return exact zeros)
                both = psf_blur(layer.both, psf, r)
            else:
                both = layer.both
            p, a = both[..., :-1], both[..., -1]
            if first:
                col, cov, first = p.copy(), a.copy(), False
                continue
            keep = 1.0 - a
            col *= keep[..., None]
            col += p
            cov *= keep
            cov += a
        full = cov >= 1.0
        if not full.all():
            col = np.where(full[..., None], col, col / np.maximum(cov, _TINY)[..., None])
        return np.clip(col, 0.0, 1.0).astype(np.float32, copy=False)

    def ground_truth(self) -> np.ndarray:
        """The all-in-focus composite (every radius 0)."""
        return self.render(np.zeros(len(self.layers)))

    def exact_mask(self, radii, psf: str = "disk") -> np.ndarray:
        """(H, W) bool: pixels where :meth:`render` equals :meth:`ground_truth` bit for bit —
        covered fully by a sharp layer that no blurred nearer layer reaches."""
        h, w = self.shape
        reach = np.zeros((h, w), bool)  # union of supports of blurred nearer layers
        out = np.zeros((h, w), bool)
        radii_fn = self._radii_far_to_near(radii)
        for layer, r in reversed(list(zip(self.layers, radii_fn))):  # near -> far
            sharp = not (r > 0 and (psf == "gaussian" or r >= 0.5))
            if sharp:
                out |= (layer.visible >= 1.0) & ~reach
            else:
                s = defocus_support(r, psf)
                support = (layer.alpha > 0).astype(np.uint8)
                dist = cv2.distanceTransform(1 - support, cv2.DIST_L2, 5)
                reach |= dist <= s + 1
        return out


def spill_band(focus: np.ndarray, width: float) -> np.ndarray:
    """(H, W) bool: pixels of ``focus == 1`` within ``width`` pixels of a pixel with focus < 1."""
    inside = (np.asarray(focus) >= 1.0).astype(np.uint8)
    if inside.all():
        return np.zeros(inside.shape, bool)
    dist = cv2.distanceTransform(inside, cv2.DIST_L2, 5)
    return (inside > 0) & (dist <= width)


__all__ = ["composite_hard", "push_pull_fill", "LayerStack", "spill_band"]
