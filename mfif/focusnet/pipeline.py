"""``focusnet``: multi-scale focus measures, a small learned refinement of the per-frame weights,
multiresolution blend. Ours (mfif); no torch at inference.

Stages, for a stack (N, C, H, W) in [0, 1], N >= 2, one pass over all frames (order independent):

1. features (:mod:`mfif.focusnet.features`): per frame the log mean modified Laplacian over 3x3,
   5x5 and 9x9 windows at full resolution (``bases``) and seven cell features on 4x4 cells (three
   focus-measure scales, the same minus the best other frame, the grey level minus the frames' mean);
2. refinement (:mod:`mfif.focusnet.network`, 8,549 parameters, shared by all frames, with one
   cross-frame exchange): per cell a correction c_i and the mixing weights a_k of the three window
   sizes (shared by the frames), upsampled; logits l_i = beta * sum_k a_k base_i,k + c_i;
3. weights w_i = softmax over frames of l_i, summing to 1 per pixel (at initialisation: the
   sharpness^6 rule of :mod:`mfif.stack_rule` on the mean of the three log measures);
4. blend: the multiresolution spline of :class:`mfif.stack_rule.PyramidBlend` under w_i, at most
   :data:`MAX_LEVELS` levels (the tile halo grows as 6 * 2^levels).

Training: :mod:`mfif.focusnet.trainer` (``mfif train focusnet``): weighted L1 of the blended
result against the ground truth of rendered stacks, weighted up near focus boundaries.
"""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mfif.errors import InputError
from mfif.result import FusionResult

WEIGHTS_FILE = "focusnet.safetensors"
MAX_LEVELS = 5
MIN_TILE = 2048  # the running form's tiles (24 MP pair: 6 tiles, peak about 2 GB)


@dataclass
class FocusNetOptions:
    """Options of ``focusnet``.

    Attributes:
        weights: a focusnet safetensors file (None: the shipped ``mfif/weights/focusnet.safetensors``).
        levels: pyramid levels of the blend (0: automatic, as many as leave >= 8 px, at most 5).
    """

    weights: str | None = None
    levels: int = 0


@functools.lru_cache(maxsize=4)
def _load(path: str):
    from mfif.focusnet.network import read_weights_numpy

    return read_weights_numpy(path)


def load_focusnet_weights(path: str | None = None):
    """The network weights (cached per file)."""
    from mfif.models.weights import WEIGHTS_DIR

    return _load(str(Path(path) if path else WEIGHTS_DIR / WEIGHTS_FILE))


def blend_levels(options: FocusNetOptions, h: int, w: int) -> int:
    from mfif.stack_rule import auto_levels

    if options.levels < 0:
        raise InputError(f"focusnet: levels must be >= 0, got {options.levels}")
    return options.levels or min(auto_levels(h, w), MAX_LEVELS)


def _frame_logits(frame: np.ndarray, corr: np.ndarray, mix: np.ndarray, beta: float) -> np.ndarray:
    """One frame (C, H, W), its cell correction (h, w) and the full-size scale mixing weights
    (3, H, W) -> logits (H, W)."""
    from mfif.focusnet.features import base_measures, grey_of
    from mfif.focusnet.network import upsample_cells

    bases = base_measures(grey_of(frame))
    bases *= mix
    logits = bases.sum(axis=0)
    logits *= beta
    logits += upsample_cells(corr, *logits.shape)
    return logits


def _corrections(frames, weights) -> tuple[np.ndarray, np.ndarray]:
    """Pass 1: the cell features and the network -> (corrections (N, h, w), scale mixing weights
    (3, h, w)). A pair: both frames' features at once. More frames: running maxima only, so the
    memory does not grow with N (beyond the N small correction maps): three reads per frame (the
    cell features' top two and mean; the trunk's top two; the head)."""
    from mfif.focusnet.features import frame_cells, frame_inputs, grey_of, top_two
    from mfif.focusnet.network import correction, head, softmax0, trunk

    n = len(frames)
    if n <= 2:
        from mfif.focusnet.features import cross_frame_inputs

        parts = [frame_cells(grey_of(frames[i])) for i in range(n)]
        return correction(cross_frame_inputs(np.stack([c for c, _ in parts]), np.stack([g for _, g in parts])),
                          weights)
    grey_sum = None

    def cells_of(i):
        nonlocal grey_sum
        c, g = frame_cells(grey_of(frames[i]))
        grey_sum = g.copy() if grey_sum is None else grey_sum + g
        return c

    top, second = top_two(cells_of(i) for i in range(n))
    grey_mean = grey_sum / n

    def inputs_of(i):
        c, g = frame_cells(grey_of(frames[i]))
        return frame_inputs(c, g, top, second, grey_mean)[None]

    h_top, h_second = top_two(trunk(inputs_of(i), weights) for i in range(n))
    corr, votes = [], 0.0
    for i in range(n):
        out = head(trunk(inputs_of(i), weights), h_top, h_second, weights)
        corr.append(out[0])
        votes = votes + out[1:]
    return np.stack(corr), softmax0(votes / n)


def focusnet_stream(frames, options: FocusNetOptions | None = None, *, tile: int | None = None,
                    keep_weights: bool = False) -> FusionResult:
    """Fuse ``frames`` (``len`` and ``frames[i]`` -> (C, H, W) float32 in [0, 1], N >= 2): the cell
    features and the network (:func:`_corrections`; N small correction maps kept), the log-sum-exp
    of the logits per pixel, then the weights and the pyramid blend. Memory: a few (H, W) maps and
    the blend's pyramids, whatever N (``keep_weights``: also the N weight maps; a pair in memory:
    its two logit maps).

    ``tile``: frames larger than ``tile`` x ``tile`` pixels are stacked in memory and fused tile by
    tile (:func:`mfif.tiling.tiled_with_plan` with :func:`focusnet_tile_plan`), in tiles of at least
    :data:`MIN_TILE` (the halo is about 250 px: smaller tiles would mostly compute halo).

    Returns:
        FusionResult: ``fused`` (C, H, W); ``decision`` (H, W) the frame of the largest weight;
        ``weights`` (N, H, W) summing to 1 when ``keep_weights``.
    """
    from mfif.focusnet.network import upsample_cells
    from mfif.stack_rule import PyramidBlend

    o = options or FocusNetOptions()
    n = len(frames)
    if n < 2:
        raise InputError(f"focusnet: need at least 2 frames, got {n}")
    first = np.asarray(frames[0])
    if first.ndim != 3:
        raise InputError(f"focusnet: frames must be (C, H, W), got shape {first.shape}")
    _, h, w = first.shape
    if tile and h * w > max(tile, MIN_TILE) ** 2:
        from mfif.tiling import tiled_with_plan

        stack = np.stack([np.asarray(frames[i], np.float32) for i in range(n)])
        return tiled_with_plan(stack, focusnet_tile_plan(o, stack.shape), focusnet_fusion, tile=max(tile, MIN_TILE))
    del first
    weights = load_focusnet_weights(o.weights)
    corr, mix_cells = _corrections(frames, weights)
    mix = np.stack([upsample_cells(m, h, w) for m in mix_cells])
    best = total = decision = None
    # a pair in memory: keep the logits instead of a third read
    kept_logits = [] if isinstance(frames, np.ndarray) and n == 2 else None
    for i in range(n):  # pass 2: log-sum-exp of the logits, online (largest logit, sum of exp(l - largest))
        logits = _frame_logits(frames[i], corr[i], mix, weights.beta)
        if kept_logits is not None:
            kept_logits.append(logits.copy())
        if best is None:
            best, total, decision = logits, np.ones((h, w), np.float32), np.zeros((h, w), np.int64)
        else:
            better = logits > best
            decision[better] = i
            new_best = np.maximum(best, logits)
            total *= np.exp(best - new_best)
            total += np.exp(logits - new_best)
            best = new_best
    best += np.log(total)
    del total
    blend = PyramidBlend(blend_levels(o, h, w))
    kept = [] if keep_weights else None
    for i in range(n):  # pass 3: the softmax weights and the blend
        frame = np.asarray(frames[i], np.float32)
        weight = kept_logits[i] if kept_logits is not None else _frame_logits(frame, corr[i], mix, weights.beta)
        weight -= best
        np.exp(weight, out=weight)
        blend.add(frame, weight)
        if kept is not None:
            kept.append(weight)
    result = FusionResult(fused=blend.result(), decision=decision)
    if kept is not None:
        result.weights = np.stack(kept)
    return result


def focusnet_fusion(stack: np.ndarray, options: FocusNetOptions | None = None) -> FusionResult:
    """Fuse (N, C, H, W) float32 frames in [0, 1]; returns fused (C, H, W), the per-frame weights
    (N, H, W, summing to 1) and the decision (the frame of the largest weight)."""
    stack = np.asarray(stack, np.float32)
    if stack.ndim != 4:
        raise InputError(f"focusnet: expected a stack (N, C, H, W), got shape {stack.shape}")
    return focusnet_stream(stack, options, keep_weights=True)


def focusnet_tile_plan(options: FocusNetOptions, shape: tuple[int, ...]):
    """Tile plan (:mod:`mfif.tiling`): one local pass; halo = the features' reach (8) + the
    network's (8 cells of 4 px, plus a cell and the upsampling) + the pyramid's (6 * 2^levels);
    tile origins on the 2^levels grid (a multiple of the 4 px cells); levels fixed from the full
    image."""
    from mfif.focusnet.features import CELL, FEATURE_REACH
    from mfif.focusnet.network import NET_REACH_CELLS
    from mfif.tiling import TilePlan

    levels = blend_levels(options, *shape[-2:])
    reach = FEATURE_REACH + (NET_REACH_CELLS + 2) * CELL + 2
    return TilePlan(halo=reach + 6 * 2 ** levels, grid=max(2 ** levels, CELL),
                    options=dataclasses.replace(options, levels=levels))
