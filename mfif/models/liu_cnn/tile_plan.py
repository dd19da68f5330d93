"""Tile plan of ``cnn`` / ``cnn-slight`` (:mod:`mfif.tiling`): decide (score map + focus map,
receptive radius 19, + 1 for the stride-2 phase -> 24) per tile, small-region removal on the
full-size map, guided filter (2r + 2) and blend per tile. ``nframe_strategy="series"`` with N > 2 folds pairs
(``series=True``): the pair plan runs once per fold on the full-size running result.

Tested (``tests/test_tile_plans.py``): tiled == one pass to within 1/255, and the halo covers the
measured reach of the network.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from mfif.result import FusionResult
from mfif.tiling import TilePlan


LIU_DECIDE_HALO = 24  # a pixel's focus value depends on input rows y - 19 .. y + 19 (network.CONTEXT)


def _liu_decide(stack: np.ndarray, o) -> np.ndarray:
    """Local part of the Liu pipeline: the argmax / thresholded focus map, no small-region removal
    (pair: 0 = frame A, as ``liu_cnn_fusion``'s decision)."""
    from mfif.models.liu_cnn.pipeline import liu_cnn_fusion

    local = dataclasses.replace(o, area_fraction=0.0, radius=0, stack_rule="pair")  # the bare argmax
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
    (the score map has stride 2). ``nframe_strategy="series"`` with N > 2 folds pairs (``series=True``)."""
    n = shape[0]
    series = n > 2 and options.nframe_strategy == "series"
    from mfif.stack_rule import auto_levels, fuse_by_decision, global_step, use_nframe_rule

    if not series and use_nframe_rule(options.stack_rule, n):  # the N-frame rule (mfif.stack_rule)
        levels = auto_levels(*shape[-2:])
        return TilePlan(
            halo=LIU_DECIDE_HALO, grid=2 ** levels, options=options, decide=_liu_decide,
            global_step=lambda d, k, o: global_step(d, k),
            finish=lambda st, d, o: FusionResult(fused=fuse_by_decision(st, d, levels=levels)),
            finish_halo=6 * 2 ** levels)
    return TilePlan(halo=LIU_DECIDE_HALO, grid=2, options=options, decide=_liu_decide,
                    global_step=_liu_global, finish=_liu_finish,
                    finish_halo=2 * max(options.radius, 0) + 2, series=series)
