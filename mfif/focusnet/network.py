"""The ``focusnet`` refinement network, numpy/OpenCV forward pass (no torch).

Shared per-frame weights, one pass over all N frames, order independent. On the 4x4-cell
features of :mod:`mfif.focusnet.features` (N, 7, h, w):

==========  =========================================================  ==========
layer       operation                                                  reach
==========  =========================================================  ==========
conv1       3x3, 7 -> 16, ReLU                                          1 cell
conv2       3x3 dilation 2, 16 -> 16, ReLU                              2
exchange    [h_i, h_i - max over the other frames of h_j] (32 ch)       0
conv3       3x3 dilation 4, 32 -> 16, ReLU                              4
head        3x3, 16 -> 4: the correction c_i and three scale votes      1
==========  =========================================================  ==========

Borders: edge replication (``padding_mode="replicate"`` in torch). 8,549 parameters.
The scale votes are averaged over the frames and turned into mixing weights a_k = softmax_k (one
per place, shared by all frames); a_k and c_i are upsampled bilinearly from the cells (half-pixel
centres, as ``cv2.resize`` / torch ``align_corners=False``). The logits at full resolution are
l_i = beta * sum_k a_k * base_i,k + c_i, beta a learned scalar; the weights are softmax_i(l_i).
At initialisation (head = 0, beta = 6) this is the sharpness^6 rule on the mean of the three
window sizes' log measures.

Weights: a safetensors file read with ``safetensors.numpy`` (``mfif/weights/focusnet.safetensors``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from mfif.errors import WeightsError
from mfif.focusnet.features import BASE_RADII, CELL, N_INPUTS, other_max, top_two

FORMAT = "mfif-focusnet/1"
WIDTH = 16
# name, in channels, out channels, dilation
LAYERS = (("conv1", N_INPUTS, WIDTH, 1), ("conv2", WIDTH, WIDTH, 2), ("conv3", 2 * WIDTH, WIDTH, 4),
          ("head", WIDTH, 1 + len(BASE_RADII), 1))
EXCHANGE_BEFORE = "conv3"
NET_REACH_CELLS = sum(d for *_, d in LAYERS)  # 8 cells
BETA_INIT = 6.0


def expected_shapes() -> dict[str, tuple[int, ...]]:
    shapes = {"beta": (1,)}
    for name, cin, cout, _ in LAYERS:
        shapes[f"{name}.weight"] = (cout, cin, 3, 3)
        shapes[f"{name}.bias"] = (cout,)
    return shapes


@dataclass
class FocusNetWeights:
    tensors: dict  # name -> float32 numpy array
    meta: dict

    @property
    def beta(self) -> float:
        return float(self.tensors["beta"][0])


def read_weights_numpy(path: str | Path) -> FocusNetWeights:
    """Read and check a focusnet safetensors file with ``safetensors.numpy`` (torch is not imported)."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: focusnet weights file not found")
    try:
        with safe_open(str(path), framework="numpy") as fh:
            header = fh.metadata() or {}
            tensors = {k: np.asarray(fh.get_tensor(k), np.float32) for k in fh.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"{path}: not a readable safetensors file ({exc})") from None
    if header.get("format") != FORMAT:
        raise WeightsError(f"{path}: not focusnet weights (format {header.get('format')!r}, expected {FORMAT!r})")
    expected = expected_shapes()
    if set(tensors) != set(expected):
        raise WeightsError(f"{path}: focusnet weights must hold exactly {', '.join(sorted(expected))}")
    for key, shape in expected.items():
        if tensors[key].shape != shape:
            raise WeightsError(f"{path}: '{key}' has shape {tensors[key].shape}, expected {shape}")
        if not np.isfinite(tensors[key]).all():
            raise WeightsError(f"{path}: '{key}' contains NaN or infinite values")
    try:
        meta = json.loads(header.get("meta", "{}"))
    except json.JSONDecodeError:
        meta = {}
    return FocusNetWeights(tensors, meta)


def conv3x3(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, dilation: int) -> np.ndarray:
    """3x3 convolution (cross-correlation, as torch) with edge-replicated borders.

    x: (M, Cin, h, w) -> (M, Cout, h, w) float32; nine matrix products over the taps."""
    m, cin, h, w = x.shape
    d = dilation
    hwc = np.pad(np.moveaxis(x, 1, -1), ((0, 0), (d, d), (d, d), (0, 0)), mode="edge")
    out = np.broadcast_to(bias.astype(np.float32), (m, h, w, weight.shape[0])).copy()
    for a in range(3):
        for b in range(3):
            out += hwc[:, a * d:a * d + h, b * d:b * d + w, :] @ weight[:, :, a, b].T
    return np.ascontiguousarray(np.moveaxis(out, -1, 1))


def _run(x: np.ndarray, weights: FocusNetWeights, layers) -> np.ndarray:
    t = weights.tensors
    for name, _, _, dilation in layers:
        x = conv3x3(x, t[f"{name}.weight"], t[f"{name}.bias"], dilation)
        if name != "head":
            np.maximum(x, 0.0, out=x)
    return x


_SPLIT = [name for name, *_ in LAYERS].index(EXCHANGE_BEFORE)


def trunk(inputs: np.ndarray, weights: FocusNetWeights) -> np.ndarray:
    """The per-frame layers before the exchange: (M, 7, h, w) -> (M, 16, h, w)."""
    return _run(np.asarray(inputs, np.float32), weights, LAYERS[:_SPLIT])


def head(h: np.ndarray, top: np.ndarray, second: np.ndarray, weights: FocusNetWeights) -> np.ndarray:
    """The layers from the exchange on, for one frame's trunk output (1, 16, h, w), given the
    elementwise largest and second largest trunk output over all frames -> (correction, three
    scale votes) (4, h, w)."""
    other = other_max(h, top, second)
    return _run(np.concatenate([h, h - other], axis=1), weights, LAYERS[_SPLIT:])[0]


def correction(inputs: np.ndarray, weights: FocusNetWeights) -> tuple[np.ndarray, np.ndarray]:
    """The network on the cell features of all frames (N, 7, h, w) -> (corrections (N, h, w),
    scale mixing weights (3, h, w), shared by the frames), float32; one frame in the network at a
    time (the trunk runs twice: for the exchange's running maxima, then for the head; kept for a
    pair)."""
    inputs = np.asarray(inputs, np.float32)
    n = inputs.shape[0]
    keep = n <= 2
    kept = [trunk(inputs[i:i + 1], weights) for i in range(n)] if keep else None
    if n == 1:
        top = second = kept[0]
    else:
        top, second = top_two(kept if keep else (trunk(inputs[i:i + 1], weights) for i in range(n)))
    corr, votes = [], 0.0
    for i in range(n):
        out = head(kept[i] if keep else trunk(inputs[i:i + 1], weights), top, second, weights)
        corr.append(out[0])
        votes = votes + out[1:]
    return np.stack(corr), softmax0(votes / n)


def softmax0(x: np.ndarray) -> np.ndarray:
    """Softmax over the first axis."""
    e = np.exp(x - x.max(axis=0, keepdims=True))
    return (e / e.sum(axis=0, keepdims=True)).astype(np.float32)


def upsample_cells(cells: np.ndarray, h: int, w: int) -> np.ndarray:
    """Bilinear upsampling (half-pixel centres) of (h/4, w/4) cells to the 4x grid, cropped to (h, w)."""
    hq, wq = cells.shape
    up = cv2.resize(np.asarray(cells, np.float32), (wq * CELL, hq * CELL), interpolation=cv2.INTER_LINEAR)
    return up[:h, :w]
