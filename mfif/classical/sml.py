"""Sum-modified-Laplacian choose-max fusion with small-region removal and guided refinement.

Focus score of each frame: SML (Nayar & Nakagawa 1994) over a (2r+1)^2 window of its luminance.
Decision: argmax over frames (N-way, order independent); small 8-connected regions are merged into
their surroundings (area fraction of H*W, as Liu et al. 2017); each frame's binary map is refined by
a guided filter (He et al. 2013) guided by the luminance of the initial fused image, and the refined
maps are normalised and used as blending weights.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mfif.decision import blend, guided_filter, luminance, normalize_weights, one_hot, remove_small_regions_multi
from mfif.focus import sum_modified_laplacian
from mfif.result import FusionResult


@dataclass
class SMLOptions:
    window_radius: int = 4
    step: int = 1
    area_fraction: float = 0.01
    guided_radius: int = 4
    guided_eps: float = 0.01


def sml_fusion(stack: np.ndarray, options: SMLOptions | None = None) -> FusionResult:
    """Fuse (N, C, H, W) frames by SML choose-max; returns fused (C, H, W), weights and decision."""
    o = options or SMLOptions()
    n = stack.shape[0]
    grey = luminance(stack)
    scores = np.stack([sum_modified_laplacian(g, o.window_radius, o.step) for g in grey])
    decision = np.argmax(scores, axis=0)
    decision = remove_small_regions_multi(decision, n, o.area_fraction)
    initial = blend(stack, one_hot(decision, n))
    guide = luminance(initial)
    if o.guided_radius > 0:
        refined = np.stack([guided_filter(guide, (decision == i).astype(np.float64), o.guided_radius, o.guided_eps)
                            for i in range(n)])
        weights = normalize_weights(refined).astype(np.float32)
    else:
        weights = one_hot(decision, n)
    fused = np.clip(blend(stack, weights), 0.0, 1.0)
    return FusionResult(fused=fused, weights=weights, decision=decision.astype(np.int64), score=scores)
