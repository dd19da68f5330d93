"""The fixed (not learned) inputs of ``focusnet``: multi-scale focus measures and cross-frame
features, in numpy/OpenCV (shared by inference and training).

Per frame i of a stack (N, C, H, W) in [0, 1], on its luminance g_i:

- ``bases`` (N, 3, H, W), full resolution: b_i,k = log(mean of ML(g_i) over a (2 r_k + 1)^2
  window + EPS) for r = 1, 2, 4 (:data:`BASE_RADII`), ML = the modified Laplacian of step 1
  (Nayar & Nakagawa 1994). exp(beta b_i) normalised over frames is a sharpness^beta weight as in
  the N-frame rule of :mod:`mfif.stack_rule` (``sml``: r = 4, beta = 8); the network mixes the
  three window sizes per place (fine near focus boundaries, where a wide window carries the
  sharpness of one side over to the other) and adds a correction.
- ``inputs`` (N, 7, H/4, W/4) (sizes rounded up), the network's input at a quarter of the
  resolution (mean over 4x4 cells, the image edge-extended to a multiple of 4):
  three log focus measures (ML step 1 over 3x3 and 9x9 windows, ML step 2 over 13x13), the same
  three minus the largest of the other frames (the cross-frame contrast: order independent), and
  the frame's grey level minus the mean over frames (defocus spill: a blurred bright object
  brightens its surroundings in the frames where it is out of focus). Fixed affine scalings bring
  each to about unit range.

Reach (receptive field) of ``bases``: 5 px; of the cell features: 8 px plus the 4x4 cell.
"""
from __future__ import annotations

import cv2
import numpy as np

EPS = 1e-4
CELL = 4  # the network runs on 4x4 cells
N_INPUTS = 7
FEATURE_REACH = 8  # px: ML step 2 (2) + 13x13 window (6)
_OFFSET, _SCALE = 5.0, 3.0  # log measures: (log m + 5) / 3 is about in [-1.5, 1.7]
_GREY_SCALE = 4.0


def modified_laplacian(grey: np.ndarray, step: int) -> np.ndarray:
    """|2I - I(x-s) - I(x+s)| + |2I - I(y-s) - I(y+s)|, replicated borders. (H, W) -> (H, W) float32."""
    p = cv2.copyMakeBorder(np.asarray(grey, np.float32), step, step, step, step, cv2.BORDER_REPLICATE)
    c = p[step:-step, step:-step]
    return (np.abs(2 * c - p[step:-step, :-2 * step] - p[step:-step, 2 * step:])
            + np.abs(2 * c - p[:-2 * step, step:-step] - p[2 * step:, step:-step]))


def _log_mean(ml: np.ndarray, radius: int) -> np.ndarray:
    k = 2 * radius + 1
    return np.log(cv2.boxFilter(ml, -1, (k, k), borderType=cv2.BORDER_REFLECT) + EPS)


BASE_RADII = (1, 2, 4)


def base_measures(grey: np.ndarray) -> np.ndarray:
    """One frame's grey (H, W) -> ``bases`` (3, H, W) float32 (the window radii :data:`BASE_RADII`)."""
    ml1 = modified_laplacian(grey, 1)
    return np.stack([_log_mean(ml1, r) for r in BASE_RADII])


def frame_measures(grey: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One frame's grey (H, W) -> (bases (3, H, W), the log measures of the cell features (3, H, W):
    ML step 1 over 3x3 and 9x9, ML step 2 over 13x13)."""
    bases = base_measures(grey)
    return bases, np.stack([bases[0], bases[2], _log_mean(modified_laplacian(grey, 2), 6)])


def cell_shape(h: int, w: int) -> tuple[int, int]:
    return -(-h // CELL), -(-w // CELL)


def cell_mean(image: np.ndarray) -> np.ndarray:
    """Mean over 4x4 cells of (..., H, W) -> (..., ceil(H/4), ceil(W/4)), the image extended by
    replicating its last row/column to a multiple of 4 (= torch ``avg_pool2d`` after a replicate pad)."""
    image = np.asarray(image, np.float32)
    if image.ndim > 2:
        return np.stack([cell_mean(part) for part in image])
    h, w = image.shape
    hq, wq = cell_shape(h, w)
    if hq * CELL != h or wq * CELL != w:
        image = cv2.copyMakeBorder(image, 0, hq * CELL - h, 0, wq * CELL - w, cv2.BORDER_REPLICATE)
    return cv2.resize(image, (wq, hq), interpolation=cv2.INTER_AREA)  # an integer factor: the 4x4 block mean


def grey_of(frame: np.ndarray) -> np.ndarray:
    """(C, H, W) -> (H, W) luminance (:func:`mfif.decision.luminance`'s weights), float32."""
    from mfif.decision import GREY_WEIGHTS

    frame = np.asarray(frame, np.float32)
    if frame.shape[0] == 1:
        return frame[0]
    w = np.asarray(GREY_WEIGHTS, np.float32)
    return frame[0] * w[0] + frame[1] * w[1] + frame[2] * w[2]


def frame_cells(grey: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One frame's grey (H, W) -> (scaled log measures on cells (3, h, w), grey on cells (h, w))."""
    _, logs = frame_measures(grey)
    return (cell_mean(logs) + _OFFSET) / _SCALE, cell_mean(np.asarray(grey, np.float32))


def top_two(values) -> tuple[np.ndarray, np.ndarray]:
    """Running elementwise largest and second largest of a sequence of equal-shape arrays (one
    array: the second is -inf)."""
    top = second = None
    for v in values:
        if top is None:
            top, second = np.array(v, np.float32), np.full(np.shape(v), -np.inf, np.float32)
        else:
            second = np.maximum(second, np.minimum(top, v))
            np.maximum(top, v, out=top)
    return top, second


def other_max(x: np.ndarray, top: np.ndarray, second: np.ndarray) -> np.ndarray:
    """The largest of the *other* frames, from the largest and second largest over all frames."""
    return np.where(x >= top, second, top)


def frame_inputs(cells: np.ndarray, grey_cells: np.ndarray, top: np.ndarray, second: np.ndarray,
                 grey_mean: np.ndarray) -> np.ndarray:
    """One frame's network input (7, h, w) from its cells (3, h, w) and grey cells (h, w), the
    top two cells over all frames and the frames' mean grey cells."""
    spill = (grey_cells - grey_mean) * _GREY_SCALE
    return np.concatenate([cells, cells - other_max(cells, top, second), spill[None]]).astype(np.float32)


def cross_frame_inputs(cells: np.ndarray, grey_cells: np.ndarray) -> np.ndarray:
    """Every frame's (3, h, w) cells (N, 3, h, w) and grey cells (N, h, w) -> inputs (N, 7, h, w)."""
    if len(cells) == 1:
        return np.stack([frame_inputs(cells[0], grey_cells[0], cells[0], cells[0], grey_cells[0])])
    top, second = top_two(cells)
    mean = grey_cells.mean(axis=0)
    return np.stack([frame_inputs(c, g, top, second, mean) for c, g in zip(cells, grey_cells)])


def stack_features(grey: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Grey stack (N, H, W) -> (bases (N, 3, H, W) float32, inputs (N, 7, H/4, W/4) float32)."""
    grey = np.asarray(grey, np.float32)
    parts = [frame_cells(g) for g in grey]
    inputs = cross_frame_inputs(np.stack([c for c, _ in parts]), np.stack([g for _, g in parts]))
    return np.stack([frame_measures(g)[0] for g in grey]).astype(np.float32), inputs
