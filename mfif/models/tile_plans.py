"""Tile plans of the learned methods: how each runs tile by tile on huge frames (:mod:`mfif.tiling`).

Every plan gives a halo at least the receptive field of the method's *local* part, so the core of a
tile sees exactly the pixels it would see in one pass; the *global* steps (small-region removal of
the decision map) run once on the full-size map. Receptive fields (radius, pixels):

==============  ====================================================================  =========
method          local part (halo)                                                      global
==============  ====================================================================  =========
cnn(-slight)    decide: score map + focus map, 19 (+ 1 for the stride-2 phase) -> 24;  small
                finish: guide, guided filter 2r (+ 2)                                  regions
ba              decide: 64x64 window (32) + boundary box (window // 2) + 2;           small
                finish: one-hot blend (0)                                              regions
hf-seg, hf-reg  the U-Net, :func:`hourglass_receptive_radius` (137 for depth 4) + 3,   none
                times the N - 1 chained steps of a series fold; grid 2^depth
ifcnn-*         :data:`mfif.models.ifcnn.network.RECEPTIVE_RADIUS` (5) + 2                        none
==============  ====================================================================  =========

Pairwise methods that fold more than two frames in series (``ba``; ``cnn`` with
``mode="series"``) have a global step per fold: their plans say ``series=True`` and
:func:`mfif.tiling.tiled_fusion` runs the pair plan once per fold on the full-size running result.
IFCNN's exposure mode with ``exposure_enhance`` (CLAHE over the whole image) is not local: its
plan is marked approximate (tiles then differ from one pass, with a warning).

The tests (``tests/test_stacking.py``) check tiled == one pass to within 1/255 for ``cnn-slight``,
``hf-seg``, ``ba`` and ``ifcnn-max``, and that each declared halo covers the measured reach of the
network.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from mfif.result import FusionResult
from mfif.tiling import TilePlan


# ---------------------------------------------------------------------------------------------
# Liu et al. CNN (cnn, cnn-slight)

LIU_DECIDE_HALO = 24  # a pixel's focus value depends on input rows y - 19 .. y + 19 (nets.liu_cnn.CONTEXT)


def _liu_decide(stack: np.ndarray, o) -> np.ndarray:
    """Local part of the Liu pipeline: the argmax / thresholded focus map, no small-region removal
    (pair: 0 = frame A, as ``liu_cnn_fusion``'s decision)."""
    from mfif.models.liu_cnn.pipeline import liu_cnn_fusion

    local = dataclasses.replace(o, area_fraction=0.0, radius=0)
    return np.asarray(liu_cnn_fusion(stack, local).decision, np.int32)


def _liu_global(decision: np.ndarray, n: int, o) -> np.ndarray:
    from mfif.decision import remove_small_regions, remove_small_regions_multi

    if n == 2:
        chosen = remove_small_regions(decision == 0, o.area_fraction)
        return (~chosen).astype(np.int32)
    return remove_small_regions_multi(decision, n, o.area_fraction).astype(np.int32)


def _liu_finish(stack: np.ndarray, decision: np.ndarray, o) -> FusionResult:
    """Guided refinement of the (global) decision and the blend, as ``liu_cnn_fusion``."""
    from mfif.decision import blend, guided_filter, luminance, normalize_weights, one_hot

    n = stack.shape[0]
    if n == 2:
        grey = luminance(stack)
        chosen = decision == 0
        if o.radius > 0:
            w = guided_filter(np.where(chosen, grey[0], grey[1]), chosen.astype(np.float64), o.radius, o.eps)
        else:
            w = chosen.astype(np.float64)
        weights = np.stack([w, 1.0 - w]).astype(np.float32)
    else:
        hard = one_hot(decision, n)
        if o.radius > 0:
            guide = luminance(blend(stack, hard))
            refined = np.stack([guided_filter(guide, hard[i].astype(np.float64), o.radius, o.eps) for i in range(n)])
            weights = normalize_weights(refined).astype(np.float32)
        else:
            weights = hard
    return FusionResult(fused=blend(stack, weights), weights=weights)  # clipped by the caller, as the method


def liu_cnn_tile_plan(options, shape: tuple[int, ...]):
    """Plan of ``cnn`` / ``cnn-slight``: decide (dense scores -> focus map -> decision) per tile,
    small-region removal on the full map, guided filter + blend per tile. Tile origins are even
    (the score map has stride 2). ``mode="series"`` with N > 2 folds pairs (``series=True``)."""
    n = shape[0]
    series = n > 2 and options.mode == "series"
    return TilePlan(halo=LIU_DECIDE_HALO, grid=2, options=options, decide=_liu_decide,
                              global_step=_liu_global, finish=_liu_finish,
                              finish_halo=2 * max(options.radius, 0) + 2, series=series)


# ---------------------------------------------------------------------------------------------
# boundary-aware (ba)


def _ba_decide(pair: np.ndarray, o) -> np.ndarray:
    """Initial scores, boundary mask and boundary-net refinement of a pair tile, thresholded
    (0 = frame A), without small-region removal."""
    from mfif.models.ba.pipeline import ba_fusion

    local = dataclasses.replace(o, area_fraction=0.0)
    return np.asarray(ba_fusion(pair, local).decision, np.int32)


def _ba_global(decision: np.ndarray, n: int, o) -> np.ndarray:
    from mfif.decision import remove_small_regions

    return (~remove_small_regions(decision == 0, o.area_fraction)).astype(np.int32)


def _ba_finish(pair: np.ndarray, decision: np.ndarray, o) -> FusionResult:
    from mfif.decision import blend, one_hot

    weights = one_hot(decision, 2)
    return FusionResult(fused=np.clip(blend(pair, weights), 0.0, 1.0), weights=weights)


def ba_tile_plan(options, shape: tuple[int, ...]):
    """Plan of ``ba``: the 64x64 window of every pixel's score (reflection padding only at the true
    image border), the boundary box and the boundary net per tile; small-region removal on the
    full map; a one-hot blend. More than two frames fold in series (``series=True``)."""
    from mfif.models.ba.network import PATCH

    halo = PATCH // 2 + max(options.window, 1) // 2 + 2
    return TilePlan(halo=halo, grid=1, options=options, decide=_ba_decide, global_step=_ba_global,
                              finish=_ba_finish, finish_halo=0, series=shape[0] > 2)


# ---------------------------------------------------------------------------------------------
# hourglass (hf-seg, hf-reg)


def hourglass_receptive_radius(depth: int) -> int:
    """Receptive radius (pixels) of :class:`mfif.models.hourglass.network.HourglassNet` with ``depth``
    poolings, along its deepest path: two 3x3 convs per level (2 * 2^k each, encoder and decoder),
    2x2 max-pool (2^k), bilinear x2 upsampling (one coarse pixel, 2^(k+1))."""
    enc = sum(2 * 2 ** k for k in range(depth + 1))
    pools = sum(2 ** k for k in range(depth))
    ups = sum(2 ** (k + 1) for k in range(depth))
    dec = sum(2 * 2 ** k for k in range(depth))
    return enc + pools + ups + dec


def _hourglass_plan(variant: str, options, shape: tuple[int, ...]):
    from mfif.models.hourglass.pipeline import load_network

    depth = load_network(variant, options.weights, options.device, options.init).config.depth
    n = shape[0]
    chained = 1 if (n == 2 or options.mode == "nway") else n - 1  # a series fold chains N - 1 passes
    return TilePlan(halo=chained * (hourglass_receptive_radius(depth) + 3), grid=2 ** depth,
                              options=options)


def hf_seg_tile_plan(options, shape: tuple[int, ...]):
    """Plan of ``hf-seg``: the U-Net is local (no global step); tile origins on its pooling grid."""
    return _hourglass_plan("seg", options, shape)


def hf_reg_tile_plan(options, shape: tuple[int, ...]):
    """Plan of ``hf-reg`` (Near is per pixel): as ``hf-seg``."""
    return _hourglass_plan("reg", options, shape)


# ---------------------------------------------------------------------------------------------
# IFCNN


def ifcnn_tile_plan(options, shape: tuple[int, ...]):
    """Plan of ``ifcnn-*``: the network's 11x11 receptive field; exposure + enhance (CLAHE over the
    whole image) is not local and only approximated."""
    from mfif.models.ifcnn.network import RECEPTIVE_RADIUS

    approximate = options.mode == "exposure" and options.exposure_enhance
    return TilePlan(halo=RECEPTIVE_RADIUS + 2, grid=1, options=options, approximate=approximate)
