"""Tile plan of ``ba`` (:mod:`mfif.tiling`): the 64x64 window of every pixel's score (32) + the
boundary box (window // 2) + 2 per tile, small-region removal on the full-size map, a one-hot blend
(halo 0). More than two frames fold in series (``series=True``).

Tested (``tests/test_tile_plans.py``): tiled == one pass to within 1/255.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from mfif.result import FusionResult
from mfif.tiling import TilePlan


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
