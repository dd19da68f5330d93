"""The one result type every fusion method returns."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np


@dataclass
class FusionResult:
    """Output of a fusion method.

    Attributes:
        fused: fused image, float32 (C, H, W) in [0, 1].
        weights: per-source weight maps (N, H, W) summing to 1 per pixel, when the method has them.
        decision: per-pixel index of the chosen source (H, W) int, when the method has one.
        score: the method's raw focus score/score map, when it has one (shape is method specific).
        maps: any further named maps (e.g. ``"focus"``, ``"initial"``, ``"refined"``) as float32 arrays.
        info: free-form metadata (timings, options used).
    """

    fused: np.ndarray
    weights: np.ndarray | None = None
    decision: np.ndarray | None = None
    score: np.ndarray | None = None
    maps: dict[str, np.ndarray] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
