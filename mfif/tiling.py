"""Run any fusion method tile by tile, so huge frames (24-50 MP) fit in a few GB.

Each tile is the core rectangle plus a *halo* of context on every side that is at least the
method's receptive field, so the core pixels see exactly the data they would see in one pass
(except at the true image border, which the tile shares with the full image). Tile origins are
snapped to the method's *grid* (2^levels for pyramids and wavelets, the block for DCT) so
downsampling phases match. Options that depend on the image size (automatic pyramid levels) are
fixed from the full image. Neighbouring cores are cross-faded with linear ramps over ``overlap``
pixels (seam-free even for methods whose halo is only approximate).

Methods with a global step (small-region removal on the decision map) run in two passes: a local
*decide* pass per tile, the global step on the full-size decision map, then a local *finish* pass
per tile with the global decision (``TilePlan.decide / global_step / finish``).

Receptive fields (halo) of the classical methods, in pixels:

============  =====================================================  ==============
method        receptive field                                        grid
============  =====================================================  ==============
average       0                                                      1
gff           saliency 1 + r_g, then guided filter 2 max(r1, r2)     1
sml           decide: r + step; finish: guided filter 2 r_gf         1 (two-pass)
laplacian     ~ 6 * 2^levels (5-tap kernels down and up, vote)       2^levels
dwt           ~ 2 * dec_len * 2^levels                               2^levels
dct-cv        block * (consistency + 1)                              block
============  =====================================================  ==============

This module is the engine and knows no method: each method declares its plan beside its code
(``MethodSpec.tile_plan``, e.g. :func:`mfif.classical.gff.gff_tile_plan`); the learned methods'
plans (halo >= the network's receptive field, global steps on the full-size map) are in
``mfif/models/<name>/tile_plan.py``, each with its receptive field. Pairwise methods that fold more than two frames in series (``ba``,
``cnn`` with ``nframe_strategy="series"``) have a global step per fold: their plan says ``series=True`` and
the pair plan runs once per fold on the full-size running result. A method without a plan still
runs in tiles when asked (``--tile``; never automatically) with a generic 96-pixel halo, its own
global steps then running per tile; a warning says the result only approximates one pass.

The tiled result equals the one-pass result to within 1/255 (tested for every classical method and
for ``cnn-slight``, ``hf-seg``, ``ba`` and ``ifcnn-max``).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from mfif.errors import InputError
from mfif.result import FusionResult

if TYPE_CHECKING:
    from mfif.methods import MethodSpec


@dataclass
class TilePlan:
    """How to run one method tile by tile.

    Attributes:
        halo: context pixels on each side of a tile (>= the receptive field).
        grid: tile origins (with halo) are multiples of this.
        options: the options every tile uses (size-dependent values fixed from the full image).
        decide: two-pass methods: (stack_tile, options) -> (H, W) int decision (local).
        global_step: (decision (H, W), n_frames, options) -> decision, on the full-size map.
        finish: (stack_tile, decision_tile, options) -> FusionResult (local).
        finish_halo: halo of ``finish`` (default: ``halo``).
        approximate: the plan is a guess (a method without a declared receptive field).
        series: more than two frames are folded pairwise in input order, with a global step per
            fold: the plan of a pair runs once per fold on the full-size running result.
    """

    halo: int
    grid: int = 1
    options: Any = None
    decide: Callable | None = None
    global_step: Callable | None = None
    finish: Callable | None = None
    finish_halo: int | None = None
    approximate: bool = False
    series: bool = False


GENERIC_HALO = 96


def tile_plan(spec: "MethodSpec", options, shape: tuple[int, ...]) -> TilePlan:
    """The :class:`TilePlan` of a method for a stack of ``shape`` (N, C, H, W)."""
    plan_fn = spec.load_tile_plan()
    if plan_fn is not None:
        plan = plan_fn(options, shape)
    else:
        warnings.warn(f"method '{spec.name}' declares no receptive field: tiles get a {GENERIC_HALO}-pixel halo and "
                      "its global steps run per tile, so the result only approximates one pass", stacklevel=3)
        plan = TilePlan(halo=GENERIC_HALO, grid=16, options=options, approximate=True)
    if plan.options is None:
        plan.options = options
    if plan.approximate and plan_fn is not None:
        warnings.warn(f"method '{spec.name}' with these options has a non-local step: tiles only approximate one pass",
                      stacklevel=3)
    return plan


def _spans(length: int, tile: int) -> list[tuple[int, int]]:
    count = max(1, math.ceil(length / tile))
    edges = [round(k * length / count) for k in range(count + 1)]
    return [(edges[k], edges[k + 1]) for k in range(count)]


def _extend(lo: int, hi: int, halo: int, grid: int, length: int) -> tuple[int, int]:
    a = max(0, ((lo - halo) // grid) * grid)
    b = min(length, a + math.ceil((hi + halo - a) / grid) * grid)
    return a, b


def _ramp(lo: int, hi: int, core_lo: int, core_hi: int, overlap: int, length: int) -> np.ndarray:
    """1-D blend weight over [lo, hi): 1 inside the core, linear ramps of ``overlap`` pixels
    centred on the core edges (except at the image border)."""
    x = np.arange(lo, hi, dtype=np.float64) + 0.5
    w = np.ones(hi - lo)
    if overlap > 0:
        if core_lo > 0:
            w = np.minimum(w, np.clip((x - (core_lo - overlap / 2)) / overlap, 0, 1))
        if core_hi < length:
            w = np.minimum(w, np.clip(((core_hi + overlap / 2) - x) / overlap, 0, 1))
    return w


def _tiles(h: int, w: int, tile: int):
    for y0, y1 in _spans(h, tile):
        for x0, x1 in _spans(w, tile):
            yield y0, y1, x0, x1


def _run_local(stack: np.ndarray, tile: int, halo: int, grid: int, overlap: int,
               fn: Callable[[np.ndarray, tuple[int, int, int, int]], FusionResult],
               want_decision: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    n, c, h, w = stack.shape
    overlap = max(0, min(overlap, tile // 4))
    fused = np.zeros((c, h, w), np.float32)
    weight = np.zeros((h, w), np.float32)
    decision = np.zeros((h, w), np.int32) if want_decision else None
    have_decision = False
    m = overlap // 2 + 1 if overlap > 0 else 0  # the blended band reaches m pixels past the core
    for y0, y1, x0, x1 in _tiles(h, w, tile):
        ey0, ey1 = _extend(y0, y1, halo + m, grid, h)
        ex0, ex1 = _extend(x0, x1, halo + m, grid, w)
        res = fn(stack[:, :, ey0:ey1, ex0:ex1], (ey0, ey1, ex0, ex1))
        by0, by1 = max(0, y0 - m), min(h, y1 + m)
        bx0, bx1 = max(0, x0 - m), min(w, x1 + m)
        wy = _ramp(by0, by1, y0, y1, overlap, h)
        wx = _ramp(bx0, bx1, x0, x1, overlap, w)
        wt = (wy[:, None] * wx[None, :]).astype(np.float32)
        part = res.fused[:, by0 - ey0:by1 - ey0, bx0 - ex0:bx1 - ex0]
        fused[:, by0:by1, bx0:bx1] += wt * part
        weight[by0:by1, bx0:bx1] += wt
        if decision is not None:
            d = res.decision if res.decision is not None else (
                np.argmax(res.weights, axis=0) if res.weights is not None else None)
            if d is not None:
                have_decision = True
                decision[y0:y1, x0:x1] = np.asarray(d)[y0 - ey0:y1 - ey0, x0 - ex0:x1 - ex0]
        del res
    fused /= np.maximum(weight, 1e-12)
    return fused, (decision if have_decision else None)


def _tiled_once(stack: np.ndarray, plan: TilePlan, function: Callable, tile: int, overlap: int):
    n = stack.shape[0]
    opts = plan.options
    if plan.decide is None:
        fused, decision = _run_local(stack, tile, plan.halo, plan.grid, overlap, lambda st, _r: function(st, opts))
        info = {"tiles": tile, "halo": plan.halo, **({"approximate": True} if plan.approximate else {})}
        return fused, decision, info
    h, w = stack.shape[2:]
    decision = np.zeros((h, w), np.int32)
    for y0, y1, x0, x1 in _tiles(h, w, tile):
        ey0, ey1 = _extend(y0, y1, plan.halo, plan.grid, h)
        ex0, ex1 = _extend(x0, x1, plan.halo, plan.grid, w)
        d = plan.decide(stack[:, :, ey0:ey1, ex0:ex1], opts)
        decision[y0:y1, x0:x1] = d[y0 - ey0:y1 - ey0, x0 - ex0:x1 - ex0]
    if plan.global_step is not None:
        decision = plan.global_step(decision, n, opts)
    halo2 = plan.finish_halo if plan.finish_halo is not None else plan.halo
    fused, _ = _run_local(stack, tile, halo2, plan.grid, overlap,
                          lambda st, r: plan.finish(st, decision[r[0]:r[1], r[2]:r[3]], opts),
                          want_decision=False)
    info = {"tiles": tile, "halo": plan.halo, "finish_halo": halo2, "global_step": "full-size decision map"}
    return fused, decision, info


def tiled_fusion(stack: np.ndarray, spec: "MethodSpec", options, *, tile: int = 1024, overlap: int = 32) -> FusionResult:
    """Fuse (N, C, H, W) tile by tile with ``spec``'s method; returns fused (C, H, W) and the
    decision map (H, W) (no per-frame weight maps).

    Args:
        tile: core tile size in pixels (the processed tile is larger by the halo).
        overlap: width of the linear cross-fade between neighbouring cores (<= the halo).
    """
    if tile < 16:
        raise InputError(f"tile size must be at least 16 pixels, got {tile}")
    n = stack.shape[0]
    plan = tile_plan(spec, options, stack.shape)
    function, _ = spec.load()
    if plan.series and n > 2:
        # pairwise fold in input order, each fold tiled with its global step on the full-size map;
        # the decision map follows the folds (a pixel kept from the running result keeps its frame)
        current = stack[0]
        decision = np.zeros(stack.shape[2:], np.int32)
        for k in range(1, n):
            pair = np.stack([current, stack[k]])
            fused, d, info = _tiled_once(pair, tile_plan(spec, options, pair.shape), function, tile, overlap)
            del pair
            if d is not None:
                decision = np.where(np.asarray(d) == 0, decision, k).astype(np.int32)
            current = fused
        fused = current
        info["series"] = f"{n - 1} pairwise folds in input order"
    else:
        fused, decision, info = _tiled_once(stack, plan, function, tile, overlap)
    return FusionResult(fused=np.clip(fused, 0.0, 1.0), decision=None if decision is None else decision.astype(np.int64),
                        info=info)


def tiled_with_plan(stack: np.ndarray, plan: TilePlan, function: Callable, *, tile: int = 1024,
                    overlap: int = 32) -> FusionResult:
    """:func:`tiled_fusion` for a method that holds its own plan and function (its running form
    tiling a large stack without the method table)."""
    fused, decision, info = _tiled_once(stack, plan, function, tile, overlap)
    return FusionResult(fused=np.clip(fused, 0.0, 1.0), decision=None if decision is None else decision.astype(np.int64),
                        info=info)


def local_tiles(h: int, w: int, halo: int, tile: int = 1024):
    """Tiles for a *local* per-frame operation with receptive field <= ``halo``: yields
    ``(core, ext, inner)`` slice pairs (rows, cols): the core in image coordinates, the extended
    tile to compute on, and the core inside the extended tile. Images of at most one tile give one
    tile (the whole image)."""
    for y0, y1, x0, x1 in _tiles(h, w, tile):
        ey0, ey1 = max(0, y0 - halo), min(h, y1 + halo)
        ex0, ex1 = max(0, x0 - halo), min(w, x1 + halo)
        yield ((slice(y0, y1), slice(x0, x1)), (slice(ey0, ey1), slice(ex0, ex1)),
               (slice(y0 - ey0, y1 - ey0), slice(x0 - ex0, x1 - ex0)))
