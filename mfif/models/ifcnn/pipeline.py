"""IFCNN fusion (methods ``ifcnn-max``, ``ifcnn-mean``, ``ifcnn-sum``).

Y. Zhang, Y. Liu, P. Sun, H. Yan, X. Zhao, L. Zhang, "IFCNN: A general image fusion framework based
on convolutional neural network", Information Fusion 54 (2020) 99-118. The network is
:mod:`mfif.models.ifcnn.network`; this module holds the input conventions of the authors' released script
(one per fusion ``modality``), tiling and the options.

Modes (as released, ``reference/ifcnn/MANIFEST.md`` and the authors' demo script):

- ``multifocus``: RGB frames normalised with the ImageNet mean/std, the output de-normalised.
  Grey frames are replicated to 3 channels first and the output is turned back to grey
  (0.299 R + 0.587 G + 0.114 B); the released script only fuses colour multi-focus pairs.
- ``infrared`` / ``medical``: grey frames replicated to 3 channels, NO normalisation, output turned
  back to grey with the same weights. Colour frames (e.g. a pseudo-colour SPECT slice; mixed
  grey/colour stacks are made RGB by :mod:`mfif.io`) go through as they are and give an RGB result.
- ``exposure``: frames to YCbCr (full range, JPEG/PIL matrix); the Y channels (replicated to 3, no
  normalisation) go through the network; Y' = 0.299 R + 0.587 G + 0.114 B of the output. Cb and Cr are
  fused outside the network, weighted by |C - 128| (0.5 on [0, 1]; 128 where all weights are 0).
  ``exposure_enhance=True`` (default, as the released script, though the paper does not mention
  it) then maps Y' to [16, 235] in 8 bits and applies CLAHE (clip limit 2, 8x8 tiles) before the
  conversion back to RGB. Grey frames give the (enhanced) grey Y'.

The paper pairs ``max`` with multi-focus, infrared and medical images and ``mean`` with exposure
stacks, but any rule works with any mode.

Numerics: the fused value is clamped to [0, 1] and returned as float32 (the released script
truncates to uint8, which darkens by half a grey level on average; we round when writing). The
network runs tile by tile (``tile`` pixels a side, overlap = the 5-pixel receptive radius, so tiles
equal one untiled pass up to float rounding) and frame by frame with a running reduction, so
memory grows neither with the image size nor (for ``max``, and ``mean``/``sum`` of two frames) with
the number of frames. ``mean``/``sum`` of more than two frames sort the per-frame features before
adding them, so the frame order never changes the result (bit-exact for ``max`` and ``mean``).

Example:
    >>> import numpy as np, torch
    >>> from mfif.models.ifcnn.pipeline import IFCNNOptions, ifcnn_fusion
    >>> from mfif.models.ifcnn.network import build_ifcnn
    >>> torch.manual_seed(0) and None
    >>> weights = build_ifcnn("max").state_dict()        # random weights, just to show the call
    >>> stack = np.random.rand(2, 3, 40, 48).astype(np.float32)
    >>> ifcnn_fusion(stack, IFCNNOptions(weights=weights)).fused.shape
    (3, 40, 48)
"""
from __future__ import annotations

import math
import os
from typing import ClassVar
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mfif.errors import InputError
from mfif.models.ifcnn.network import (IFCNN, IMAGENET_MEAN, IMAGENET_STD, RECEPTIVE_RADIUS, FastIFCNN, build_ifcnn,
                             check_fuse_rule, default_weights_path)
from mfif.models.cache import cached_network, file_key
from mfif.result import FusionResult
from mfif.tiling import local_tiles
from mfif.models.device import resolve_device

MODALITIES = ("multifocus", "infrared", "medical", "exposure")
PRECISIONS = ("fp32", "bf16")
_GREY = (0.299, 0.587, 0.114)  # cv2.COLOR_RGB2GRAY / PIL "L", as the released script


@dataclass
class IFCNNOptions:
    """Options of the ``ifcnn-max`` / ``ifcnn-mean`` / ``ifcnn-sum`` methods.

    Attributes:
        fuse_rule: ``"max"``, ``"mean"`` or ``"sum"`` (set by the method name).
        modality: ``"multifocus"``, ``"infrared"``, ``"medical"`` or ``"exposure"`` (input conventions,
            see the module docstring). CLI: ``mfif fuse --method ifcnn-mean --opt modality=exposure``.
        weights: a ``.pth``/``.pt`` state dict (the authors' ``IFCNN-MAX.pth``) or ours (``.safetensors``), a state dict,
            or None for our shipped weights of ``fuse_rule`` (an error while none is shipped).
        device: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``, ...
        tile: tile side in pixels for the network pass (0: one pass over the whole image). The
            default keeps a 2048x2048 pair well under 3 GB.
        precision: ``"fp32"`` or ``"bf16"`` (CPU/CUDA autocast; faster on CPUs with bf16 units,
            costs about a grey level, see the benchmark notes).
        exposure_enhance: exposure mode only: the released script's [16, 235] range mapping and CLAHE.
        threads: torch CPU threads for the pass (None: leave torch's setting).
        fast: run the inference form :class:`mfif.models.ifcnn.network.FastIFCNN` (conv1 and conv2 merged
            into one 9x9 conv, BatchNorm folded; same results up to float rounding). False runs
            the released layer chain as it is.
    """

    RENAMED_OPTIONS: ClassVar[dict[str, str]] = {"mode": "modality"}

    fuse_rule: str = "max"
    modality: str = "multifocus"
    weights: str | os.PathLike | dict | None = None
    device: str = "auto"
    tile: int = 768
    precision: str = "fp32"
    exposure_enhance: bool = True
    threads: int | None = None
    fast: bool = True


# ---------------------------------------------------------------------------------------------
# network loading (cached per file, rule and device)

def _inference_form(net: IFCNN, fast: bool, device: torch.device):
    return (FastIFCNN(net) if fast else net.eval()).to(device).eval()


def load_network(options: IFCNNOptions):
    """The network for ``options`` on its device, in eval mode (cached for files): a
    :class:`FastIFCNN` (``options.fast``) or the :class:`IFCNN` itself."""
    rule = check_fuse_rule(options.fuse_rule)
    device = resolve_device(options.device)
    weights = options.weights
    if isinstance(weights, dict):
        return _inference_form(build_ifcnn(rule, weights), options.fast, device)
    path = Path(weights) if weights is not None else default_weights_path(rule)

    def build():
        net = _inference_form(build_ifcnn(rule, path), options.fast, device)
        net.weights_path = str(path)
        return net

    return cached_network(("ifcnn", rule, str(device), bool(options.fast), *file_key(path)), build)


# ---------------------------------------------------------------------------------------------
# the network pass, tile by tile and frame by frame


def _autocast(device: torch.device, precision: str):
    if precision == "fp32":
        return torch.autocast(device.type, enabled=False)
    return torch.autocast(device.type, dtype=torch.bfloat16)


def _fuse_tile(net, frames: np.ndarray, box: tuple[int, int, int, int], norm, device, precision) -> torch.Tensor:
    """Network output (3, h, w) for the region ``box`` = (y0, y1, x0, x1) of frames (N, 3, H, W)."""
    y0, y1, x0, x1 = box
    rule = net.fuse_rule
    n = frames.shape[0]
    sort_needed = rule != "max" and n > 2
    fused = None
    feats = []
    for k in range(n):
        x = torch.from_numpy(frames[k, :, y0:y1, x0:x1]).to(device)[None]
        if norm is not None:
            x = (x - norm[0]) / norm[1]
        f = net.encode(x)
        if sort_needed:
            feats.append(f)
        elif fused is None:
            fused = f
        elif rule == "max":
            fused = torch.maximum(fused, f)
        else:
            fused = fused + f
    if sort_needed:
        fused = torch.sort(torch.cat(feats), dim=0).values.sum(dim=0, keepdim=True)
        del feats
    if rule == "mean":
        fused = fused / n
    out = net.decode(fused)[0].float()
    if norm is not None:
        out = out * norm[1][0] + norm[0][0]
    return out


def run_network(net, frames: np.ndarray, *, normalize: bool = False, tile: int = 768,
                precision: str = "fp32", threads: int | None = None) -> np.ndarray:
    """The IFCNN forward pass over (N, 3, H, W) float32 frames -> (3, H, W) float32 (not clamped).

    Args:
        net: an :class:`IFCNN` or :class:`FastIFCNN` (eval mode), on its device.
        frames: inputs in [0, 1].
        normalize: ImageNet normalisation of the inputs and de-normalisation of the output.
        tile: tile side (0: whole image). Each tile is extended by the receptive radius on every
            side that is not an image border, so the tiled result equals the untiled one.
        precision: ``fp32`` or ``bf16`` (autocast).
        threads: torch CPU threads (None: unchanged).
    """
    if precision not in PRECISIONS:
        raise InputError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    frames = np.ascontiguousarray(frames, dtype=np.float32)
    n, c, height, width = frames.shape
    if c != 3 or n < 1:
        raise InputError(f"run_network expects (N, 3, H, W) frames, got shape {frames.shape}")
    device = next(net.parameters()).device
    norm = None
    if normalize:
        norm = (torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1),
                torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1))
    if net.fuse_rule != "max" and n > 2 and tile > 0:
        # the sorted reduction keeps all N feature maps of a tile: shrink tiles to ~1 GiB of features
        tile = max(64, min(tile, int(math.sqrt(2**30 / (n * 64 * 4 * 2)))))
    old_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    out = np.empty((3, height, width), np.float32)
    try:
        with torch.inference_mode(), _autocast(device, precision):
            for core, ext, inner in local_tiles(height, width, RECEPTIVE_RADIUS, tile if tile > 0 else max(height, width)):
                box = (ext[0].start, ext[0].stop, ext[1].start, ext[1].stop)
                res = _fuse_tile(net, frames, box, norm, device, precision)
                out[(slice(None), *core)] = res[(slice(None), *inner)].cpu().numpy()
    finally:
        if threads:
            torch.set_num_threads(old_threads)
    return out


# ---------------------------------------------------------------------------------------------
# colour conversions (full-range YCbCr, the JPEG/PIL matrix)


def rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    """(..., 3, H, W) RGB in [0, 1] -> Y, Cb, Cr in [0, 1] (chroma centred on 0.5)."""
    r, g, b = rgb[..., 0, :, :], rgb[..., 1, :, :], rgb[..., 2, :, :]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = -0.168736 * r - 0.331264 * g + 0.5 * b + 0.5
    cr = 0.5 * r - 0.418688 * g - 0.081312 * b + 0.5
    return np.stack([y, cb, cr], axis=-3).astype(np.float32)


def ycbcr_to_rgb(ycc: np.ndarray) -> np.ndarray:
    """Inverse of :func:`rgb_to_ycbcr` (not clipped)."""
    y, cb, cr = ycc[..., 0, :, :], ycc[..., 1, :, :] - 0.5, ycc[..., 2, :, :] - 0.5
    r = y + 1.402 * cr
    g = y - 0.344136 * cb - 0.714136 * cr
    b = y + 1.772 * cb
    return np.stack([r, g, b], axis=-3).astype(np.float32)


def fuse_chroma(chroma: np.ndarray) -> np.ndarray:
    """(N, H, W) Cb or Cr in [0, 1] -> fused (H, W), weights |C - 0.5| (0.5 where all are neutral)."""
    c = chroma.astype(np.float64)
    w = np.abs(c - 0.5)
    total = w.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        fused = (c * w).sum(axis=0) / total
    return np.where(total > 0, fused, 0.5).astype(np.float32)


def _grey(rgb: np.ndarray) -> np.ndarray:
    return (_GREY[0] * rgb[0] + _GREY[1] * rgb[1] + _GREY[2] * rgb[2]).astype(np.float32)


def enhance_luma(y8: np.ndarray) -> np.ndarray:
    """The released exposure post-processing of an 8-bit Y' (H, W) uint8: range mapped to [16, 235]
    (truncated, as the script's ``astype('uint8')``), then CLAHE with clip limit 2 on 8x8 tiles."""
    import cv2

    mapped = np.floor(y8.astype(np.float64) * (219.0 / 255.0) + 16.0 + 1e-9).astype(np.uint8)
    return cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(mapped)


def _to8(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)


def _pil_ycbcr8(stack: np.ndarray) -> np.ndarray:
    """(N, 3, H, W) RGB in [0, 1] -> (N, 3, H, W) uint8 Y, Cb, Cr with Pillow's fixed-point matrix
    (what the released script feeds the network: ``Image.convert('YCbCr')``)."""
    from PIL import Image

    rgb8 = np.moveaxis(_to8(stack), 1, -1)
    return np.stack([np.moveaxis(np.asarray(Image.fromarray(np.ascontiguousarray(f), "RGB").convert("YCbCr")), -1, 0)
                     for f in rgb8])


def _fuse_chroma8(c8: np.ndarray) -> np.ndarray:
    """8-bit chroma (N, H, W) fused by |C - 128| weights in float32 and truncated, as the released
    script computes it (values via /255 then *255; per-frame terms c_k w_k / sum(w)); the terms are
    sorted per pixel before adding, so the frame order cannot change the result."""
    c = (c8.astype(np.float32) / np.float32(255.0)) * np.float32(255.0)
    w = np.abs(c - np.float32(128.0))
    total = np.zeros(c.shape[1:], np.float32)
    for wk in np.sort(w, axis=0):
        total += wk
    with np.errstate(invalid="ignore", divide="ignore"):
        terms = np.sort(c * w / total[None], axis=0)
    fused = np.zeros(c.shape[1:], np.float32)
    for k in range(c.shape[0]):
        fused += terms[k]
    fused[~np.isfinite(fused)] = 128.0
    return fused.astype(np.uint8)


def _exposure(net, stack: np.ndarray, run: dict, enhance: bool) -> tuple[np.ndarray, np.ndarray]:
    """Exposure mode in 8 bits, as the released script: 8-bit YCbCr of each frame; network on the
    replicated Y; output truncated to 8 bits, Y' = rounded grey of it; Cb/Cr fused by |C - 128| and
    truncated; optional [16, 235] + CLAHE; back to RGB with OpenCV's YCrCb matrix (rounded).
    Returns (fused (C, H, W) float32, Y' (H, W) float32 before enhancement)."""
    import cv2

    colour = stack.shape[1] == 3
    ycc8 = _pil_ycbcr8(stack) if colour else _to8(stack)
    luma = ycc8[:, 0].astype(np.float32) / 255.0
    out = np.clip(run_network(net, np.repeat(luma[:, None], 3, axis=1), normalize=False, **run), 0.0, 1.0)
    out8 = np.floor(out * 255.0).astype(np.float64)  # the script's astype('uint8') of clamp(0, 1) * 255
    y8 = np.round(_GREY[0] * out8[0] + _GREY[1] * out8[1] + _GREY[2] * out8[2]).astype(np.uint8)
    y_final = enhance_luma(y8) if enhance else y8
    if not colour:
        return (y_final.astype(np.float32) / 255.0)[None], y8.astype(np.float32) / 255.0
    ycrcb = np.stack([y_final, _fuse_chroma8(ycc8[:, 2]), _fuse_chroma8(ycc8[:, 1])], axis=-1)
    rgb = cv2.cvtColor(np.ascontiguousarray(ycrcb), cv2.COLOR_YCrCb2RGB)
    return np.moveaxis(rgb, -1, 0).astype(np.float32) / 255.0, y8.astype(np.float32) / 255.0


# ---------------------------------------------------------------------------------------------
# the method


def _check(stack: np.ndarray, o: IFCNNOptions) -> np.ndarray:
    stack = np.asarray(stack)
    if stack.ndim != 4 or stack.shape[0] < 2 or stack.shape[1] not in (1, 3):
        raise InputError(f"expected an (N>=2, C=1|3, H, W) stack, got shape {stack.shape}")
    if o.modality not in MODALITIES:
        raise InputError(f"unknown IFCNN modality {o.modality!r}; choose one of {', '.join(MODALITIES)}")
    check_fuse_rule(o.fuse_rule)
    if o.precision not in PRECISIONS:
        raise InputError(f"unknown precision {o.precision!r}; choose one of {', '.join(PRECISIONS)}")
    if not isinstance(o.tile, int) or o.tile < 0:
        raise InputError(f"tile must be an integer >= 0 (0 = no tiling), got {o.tile!r}")
    if 0 < o.tile < 16:
        raise InputError(f"tile must be 0 or at least 16 pixels, got {o.tile}")
    return stack.astype(np.float32, copy=False)


def ifcnn_fusion(stack: np.ndarray, options: IFCNNOptions | None = None) -> FusionResult:
    """Fuse (N, C, H, W) float32 [0, 1] frames with IFCNN.

    Returns:
        FusionResult with ``fused`` (C, H, W) (RGB for colour frames; grey for grey frames); for the
        exposure mode ``maps["luma"]`` is the network's Y' before enhancement. IFCNN has no weight
        or decision map.
    """
    o = options or IFCNNOptions()
    stack = _check(stack, o)
    net = load_network(o)
    run = dict(tile=o.tile, precision=o.precision, threads=o.threads)
    n, c = stack.shape[:2]
    maps: dict[str, np.ndarray] = {}
    if o.modality == "exposure":
        fused, maps["luma"] = _exposure(net, stack, run, o.exposure_enhance)
    else:
        frames = np.repeat(stack, 3, axis=1) if c == 1 else stack
        out = np.clip(run_network(net, frames, normalize=o.modality == "multifocus", **run), 0.0, 1.0)
        fused = _grey(out)[None] if c == 1 else out
    fused = np.clip(fused, 0.0, 1.0).astype(np.float32)
    info = {"fuse_rule": o.fuse_rule, "modality": o.modality, "tile": o.tile, "precision": o.precision,
            "weights": "state dict" if isinstance(o.weights, dict) else getattr(net, "weights_path", None)}
    return FusionResult(fused=fused, maps=maps, info=info)
