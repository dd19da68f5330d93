"""Sum-modified-Laplacian choose-max fusion with small-region removal and guided refinement.

Focus score of each frame: SML (Nayar & Nakagawa 1994) over a (2r+1)^2 window of its luminance.
Decision: argmax over frames (N-way, order independent); small 8-connected regions are merged into
their surroundings (area fraction of H*W, as Liu et al. 2017); each frame's binary map is refined by
a guided filter (He et al. 2013) guided by the luminance of the initial fused image, and the refined
maps are normalised and used as blending weights. Stacks of more than two frames use the N-frame
rule of :mod:`mfif.stack_rule` on the same SML score (``stack_rule``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mfif.decision import blend, guided_filter, luminance, normalize_weights, one_hot, remove_small_regions_multi
from mfif.focus import sum_modified_laplacian
from mfif.result import FusionResult
from mfif.stack_rule import nframe_fusion, use_nframe_rule


@dataclass
class SMLOptions:
    window_radius: int = 4
    step: int = 1
    area_fraction: float = 0.01
    guided_radius: int = 4
    guided_eps: float = 0.01
    stack_rule: str = "auto"  # mfif.stack_rule: "auto" = the N-frame rule for more than 2 frames


def sml_decision(stack: np.ndarray, options: SMLOptions | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Local stage: (N, C, H, W) -> (per-frame SML scores (N, H, W), argmax decision (H, W))."""
    o = options or SMLOptions()
    grey = luminance(stack)
    scores = np.stack([sum_modified_laplacian(g, o.window_radius, o.step) for g in grey])
    return scores, np.argmax(scores, axis=0)


def sml_refine(stack: np.ndarray, decision: np.ndarray, options: SMLOptions | None = None) -> FusionResult:
    """Local stage after the global small-region removal: guided refinement of the decision map and
    the blend. (N, C, H, W) + (H, W) -> FusionResult (fused, weights, decision)."""
    o = options or SMLOptions()
    n = stack.shape[0]
    initial = blend(stack, one_hot(decision, n))
    guide = luminance(initial)
    if o.guided_radius > 0:
        refined = np.stack([guided_filter(guide, (decision == i).astype(np.float64), o.guided_radius, o.guided_eps)
                            for i in range(n)])
        weights = normalize_weights(refined).astype(np.float32)
    else:
        weights = one_hot(decision, n)
    fused = np.clip(blend(stack, weights), 0.0, 1.0)
    return FusionResult(fused=fused, weights=weights, decision=decision.astype(np.int64))


def sml_fusion(stack: np.ndarray, options: SMLOptions | None = None) -> FusionResult:
    """Fuse (N, C, H, W) frames by SML choose-max; returns fused (C, H, W), weights and decision."""
    o = options or SMLOptions()
    n = stack.shape[0]
    if use_nframe_rule(o.stack_rule, n):
        return nframe_fusion(stack, sml_stack_measure(o))
    scores, decision = sml_decision(stack, o)
    decision = remove_small_regions_multi(decision, n, o.area_fraction)
    result = sml_refine(stack, decision, o)
    result.score = scores
    return result


def sml_stack_measure(o: SMLOptions):
    """The focus measure of the N-frame rule: (C, H, W) frame -> (H, W) SML of its luminance
    (reach: window_radius + step pixels)."""
    return lambda frame: sum_modified_laplacian(luminance(frame), o.window_radius, o.step)


def sml_stream(frames, options: SMLOptions | None = None, *, tile: int = 1024) -> FusionResult:
    """Running-reduction form of :func:`sml_fusion` for long stacks (equal up to float rounding).

    ``frames``: ``len`` and ``frames[i]`` -> (C, H, W). Pass 1: best SML score and its frame index;
    the small-region removal runs on the full decision map; pass 2 gathers the initial fused image
    (its luminance guides the filter); pass 3 accumulates, tile by tile (exact: the tiles carry the
    filter's reach), clipped guided-filter weights times frames. Three reads per frame; memory
    independent of N (about 50 bytes per pixel). No per-frame weights are returned."""
    from mfif.tiling import local_tiles

    o = options or SMLOptions()
    n = len(frames)
    if use_nframe_rule(o.stack_rule, n):
        return nframe_fusion(frames, sml_stack_measure(o))
    best = decision = None
    for i in range(n):
        score = sum_modified_laplacian(luminance(frames[i]), o.window_radius, o.step)
        if best is None:
            best, decision = score, np.zeros(score.shape, np.int32)
        else:
            better = score > best
            best[better] = score[better]
            decision[better] = i
        del score
    decision = remove_small_regions_multi(decision, n, o.area_fraction).astype(np.int32)
    initial = None
    for i in range(n):
        frame = frames[i]
        if initial is None:
            initial = np.empty_like(frame, dtype=np.float32)
        mask = decision == i
        initial[:, mask] = frame[:, mask]
        del frame, mask
    if o.guided_radius <= 0:
        return FusionResult(fused=np.clip(initial, 0.0, 1.0), decision=decision.astype(np.int64), score=best)
    guide = luminance(initial)
    del initial
    eps = 1e-12
    h, w = decision.shape
    acc = total = mean = None
    for i in range(n):
        frame = frames[i]
        if acc is None:
            acc = np.zeros(frame.shape, np.float32)
            total = np.zeros((h, w), np.float32)
            mean = np.zeros(frame.shape, np.float32)  # the all-zero-weight fallback
        mean += frame
        for core, ext, inner in local_tiles(h, w, 2 * o.guided_radius + 2, tile):
            binary = (decision[ext] == i).astype(np.float64)
            if not binary.any():
                continue
            wt = np.clip(guided_filter(guide[ext], binary, o.guided_radius, o.guided_eps), 0.0, None)[inner]
            wt = wt.astype(np.float32)
            acc[(slice(None),) + core] += wt * frame[(slice(None),) + core]
            total[core] += wt
        del frame
    acc /= np.maximum(total, eps)  # in place: large frames
    low = total <= eps
    if low.any():
        acc[:, low] = mean[:, low] / n
    del mean, total
    np.clip(acc, 0.0, 1.0, out=acc)
    return FusionResult(fused=acc, decision=decision.astype(np.int64), score=best)


def sml_tile_plan(options: SMLOptions, shape: tuple[int, ...]):
    """Tile plan (:mod:`mfif.tiling`), two-pass: the local decision per tile (r + step), the
    small-region removal on the full-size map, the guided refinement per tile (2 r_gf)."""
    from mfif.stack_rule import nframe_tile_plan
    from mfif.tiling import TilePlan

    o = options
    if use_nframe_rule(o.stack_rule, shape[0]):  # the N-frame rule: per-pixel argmax of a local measure
        return nframe_tile_plan(sml_stack_measure(o), o.window_radius + o.step, o, shape)
    return TilePlan(halo=o.window_radius + o.step + 2, options=o,
                    decide=lambda st, opts: sml_decision(st, opts)[1],
                    global_step=lambda d, n, opts: remove_small_regions_multi(d, n, opts.area_fraction),
                    finish=sml_refine, finish_halo=2 * max(o.guided_radius, 0) + 2)
