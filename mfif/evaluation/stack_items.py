"""Dev-set stacks in ``mfif eval`` as ``mfif fuse`` sees them: aligned before they are fused.

``mfif fuse`` registers every stack of more than two frames (:mod:`mfif.align`, reference = the
middle frame) and merges the aligned, cropped frames with :func:`mfif.stacking.fuse_frames`.
The dev set's focal sweeps with focus breathing (:mod:`mfif.synth.sweep`) differ in scale by up to
about 1.4 px at the borders, and their ground truth is in the middle frame's geometry, so scoring
an unaligned fusion would measure the breathing, not the method. Here each such item is aligned
once (all methods then see the same frames), the ground truth is cropped to the same rectangle,
and methods run through ``fuse_frames``. Pairs are fused as before (no alignment, the method
itself), so the pair tables do not change.
"""
from __future__ import annotations

import numpy as np


def needs_alignment(n_frames: int) -> bool:
    """What ``mfif fuse`` does by default: align stacks of more than two frames."""
    return n_frames > 2


def align_item(images: np.ndarray, ground_truth: np.ndarray | None):
    """(N, C, H, W) frames (+ (C, H, W) ground truth in the middle frame's geometry) ->
    (aligned and cropped frames (N, C, h, w), cropped ground truth or None, crop (x, y, w, h))."""
    from mfif.stacking import prepare_frames

    frames = prepare_frames(list(images), align=True)
    x, y, w, h = frames.alignment.crop
    aligned = frames.load()
    gt = None if ground_truth is None else np.ascontiguousarray(ground_truth[:, y:y + h, x:x + w])
    return aligned, gt, (x, y, w, h)


def fuse_aligned(images: np.ndarray, spec, options: dict) -> np.ndarray:
    """Fuse aligned frames as ``mfif fuse`` merges them: fused (C, h, w)."""
    from mfif.stacking import fuse_frames

    return fuse_frames(images, spec, spec.make_options(**options)).fused
