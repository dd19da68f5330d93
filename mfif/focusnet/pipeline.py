"""``focusnet``: multi-scale focus measures, a small learned refinement of the per-frame weights,
multiresolution blend. Ours (mfif); no torch at inference.

Stages, for a stack (N, C, H, W) in [0, 1], N >= 2, one pass over all frames (order independent):

1. features (:mod:`mfif.focusnet.features`): per frame the log mean modified Laplacian at full
   resolution (``base``) and seven cell features on 4x4 cells (three focus-measure scales, the same
   minus the best other frame, the grey level minus the frames' mean);
2. refinement (:mod:`mfif.focusnet.network`, 8,113 parameters, shared by all frames, with one
   cross-frame exchange): a correction per cell, upsampled; logits l_i = beta * base_i + c_i;
3. weights w_i = softmax over frames of l_i (at initialisation, beta = 8 and c = 0, this is the
   sharpness^8 rule of :mod:`mfif.stack_rule` on the 9x9 mean modified Laplacian);
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


def focusnet_weights(stack: np.ndarray, options: FocusNetOptions | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(N, C, H, W) -> (logits (N, H, W), weights (N, H, W), the largest per pixel = 1)."""
    from mfif.decision import luminance
    from mfif.focusnet.features import stack_features
    from mfif.focusnet.network import frame_logits, frame_weights

    o = options or FocusNetOptions()
    base, inputs = stack_features(luminance(stack))
    logits = frame_logits(base, inputs, load_focusnet_weights(o.weights))
    del base, inputs
    return logits, frame_weights(logits.copy())


def focusnet_fusion(stack: np.ndarray, options: FocusNetOptions | None = None) -> FusionResult:
    """Fuse (N, C, H, W) float32 frames in [0, 1]; returns fused (C, H, W), the per-frame weights
    (normalised to sum 1), the decision (argmax of the weights) and the logits as ``score``."""
    from mfif.stack_rule import PyramidBlend

    o = options or FocusNetOptions()
    stack = np.asarray(stack, np.float32)
    if stack.ndim != 4 or stack.shape[0] < 2:
        raise InputError(f"focusnet: expected a stack of at least 2 frames (N, C, H, W), got shape {stack.shape}")
    n, _, h, w = stack.shape
    logits, weights = focusnet_weights(stack, o)
    blend = PyramidBlend(blend_levels(o, h, w))
    for i in range(n):
        blend.add(stack[i], weights[i])
    fused = blend.result()
    decision = np.argmax(logits, axis=0)
    weights /= weights.sum(axis=0, keepdims=True)
    return FusionResult(fused=fused, weights=weights, decision=decision.astype(np.int64), score=logits)


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
