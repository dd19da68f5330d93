"""Hourglass multi-focus fusion (methods ``hf-seg`` and ``hf-reg``).

F. A. Guerrero Peña, P. D. Marrero Fernández, T. I. Ren, G. C. Vasconcelos, A. Cunha, "A Multiple
Source Hourglass Deep Network for Multi-Focus Image Fusion", arXiv:1908.10945 (2019), Sec. IV.
The network is :mod:`mfif.models.hourglass.network` (a U-Net over the two RGB sources as 6 channels).

Two sources (A, B):

- ``hf-seg`` (Eq. 2): the net gives a 2-way softmax (z0, z1); fused = z0 * A + z1 * B per
  channel. ``weights`` = (z0, z1); ``decision`` = argmax. z0 = sigmoid(l0 - l1) (stable softmax).
- ``hf-reg``: the net regresses the RGB all-in-focus image directly; the result is clipped to
  [0, 1]. ``near=True`` is the paper's "Near" post-processing (Eq. 6): every pixel takes the
  source whose RGB value is nearest (squared distance; ties go to the lower index) to the regressed
  one; ``weights`` is then that one-hot choice and ``maps["regressed"]`` the raw regression.
- ``symmetrize=True`` (both): also run the reversed pair and average (HF-Seg: z0 = (z0(A, B) +
  z1(B, A)) / 2; HF-Reg: the mean of both regressions), so f(A, B) = f(B, A) exactly at twice the
  cost. Off by default: the paper obtains commutativity by training (reversed pairs in every batch)
  and measures it (~1e-5 mean squared difference); ``benchmarks/hourglass_dev.py`` measures ours.

More than two frames (``nframe_strategy``):

- ``"series"`` (paper, Fig. 2): the functional power f(...f(f(x0, x1), x2)..., x_{N-1}) in the
  given order: the result depends on the order. HF-Seg tracks the per-source weights through the
  chain (products of the step weights). HF-Reg clips each step's regression to [0, 1] before
  the next step; with ``near`` the final regression picks, per pixel, the nearest of all N
  original frames (not just of the last pair).
- ``"champion"`` (HF-Seg only; the default): each frame is compared with the running mosaic of
  the frames so far and takes the pixels where z0 < 0.5 (:func:`mfif.stack_rule.champion_decision`,
  N - 1 passes), then the N-frame rule of :mod:`mfif.stack_rule` (label consistency,
  multiresolution spline). Linear in N; depends on the order (camera order is the intended one).
- ``"nway"`` (HF-Seg only; our symmetric alternative, order independent): the net runs on every
  ordered pair, p_ik = z0(x_i, x_k) = "frame i sharper than frame k"; the pair score is made
  symmetric, s_ik = (p_ik + 1 - p_ki) / 2 = 1 - s_ki, and frame i gets the weight
  w_i = prod_{k != i} s_ik / sum_j prod_{k != j} s_jk (a softmax of summed log scores: "i beats
  every other frame"). A frame blurred against any other frame gets ~0 weight, which a mean of
  the s_ik would not give. Permuting the frames permutes the weights (up to float rounding of
  the sums). Cost: N (N - 1) forward passes. For N = 2 it equals the symmetrised pair.

Grey input (C = 1) is replicated to RGB for the net (it was trained on colour); HF-Reg returns the
mean of its three output channels.

Example:
    >>> import numpy as np
    >>> from mfif.models.hourglass.pipeline import HFSegOptions, hf_seg_fusion
    >>> stack = np.random.rand(3, 3, 40, 52).astype(np.float32)
    >>> res = hf_seg_fusion(stack, HFSegOptions(init="random"))
    >>> res.fused.shape, res.weights.shape
    ((3, 40, 52), (3, 40, 52))
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from mfif.decision import blend
from mfif.errors import InputError
from mfif.models.hourglass.network import HourglassNet, build_hourglass, check_variant
from mfif.models.cache import cached_network, file_key
from mfif.result import FusionResult
from mfif.stack_rule import champion_decision, nframe_fusion_from_decision
from mfif.models.device import resolve_device

MODES = ("series", "nway", "champion")


@dataclass
class HFSegOptions:
    """Options of ``hf-seg``.

    Attributes:
        weights: weights file (ours, ``mfif train hf-seg``); None = the shipped ``hf_seg.safetensors``.
        nframe_strategy: more than two frames: ``"champion"`` (default; N - 1 passes, then the N-frame rule),
            ``"nway"`` (symmetric, order independent, N (N - 1) passes) or ``"series"`` (the
            paper's functional power f(f(x0, x1), x2)...).
        symmetrize: average f(A, B) and the reversed f(B, A): exact commutativity, 2x cost.
        device: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``, ...
        init: ``"pretrained"`` (load ``weights`` / the shipped file) or ``"random"`` (tests only).
    """

    weights: str | None = None
    RENAMED_OPTIONS: ClassVar[dict[str, str]] = {"mode": "nframe_strategy"}

    nframe_strategy: str = "champion"
    symmetrize: bool = False
    device: str = "auto"
    init: str = "pretrained"


@dataclass
class HFRegOptions:
    """Options of ``hf-reg``.

    Attributes:
        weights: weights file (ours, ``mfif train hf-reg``); None = the shipped ``hf_reg.safetensors``.
        near: the paper's "Near" post-processing: each pixel takes the nearest source value.
        nframe_strategy: more than two frames: only ``"series"`` (the paper's functional power).
        symmetrize: average f(A, B) and f(B, A): exact commutativity, 2x cost.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ...
        init: ``"pretrained"`` or ``"random"`` (tests only).
    """

    weights: str | None = None
    near: bool = False
    RENAMED_OPTIONS: ClassVar[dict[str, str]] = {"mode": "nframe_strategy"}

    nframe_strategy: str = "series"
    symmetrize: bool = False
    device: str = "auto"
    init: str = "pretrained"


# ---------------------------------------------------------------------------------------------
# network loading (cached per file and device)

def load_network(variant: str, weights: str | None, device: str = "auto", init: str = "pretrained") -> HourglassNet:
    """The HF-Seg / HF-Reg network (weights file or shipped weights) on its device, in eval mode."""
    check_variant(variant)
    dev = resolve_device(device)
    if init == "random":
        torch.manual_seed(0)
        return build_hourglass(variant).to(dev).eval()
    if init != "pretrained":
        raise InputError(f"init must be 'pretrained' or 'random', got {init!r}")
    return cached_network(("hourglass", variant, str(dev), *file_key(weights)),
                          lambda: build_hourglass(variant, weights, pretrained=weights is None).to(dev).eval())


# ---------------------------------------------------------------------------------------------
# the two networks on a pair


def _to_rgb(stack: np.ndarray) -> np.ndarray:
    return np.repeat(stack, 3, axis=1) if stack.shape[1] == 1 else stack


def _tensor(x: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(device)


@torch.inference_mode()
def seg_pair_weight(net: HourglassNet, a: np.ndarray, b: np.ndarray, symmetrize: bool = False) -> np.ndarray:
    """z0 = weight of A (H, W) float32 for RGB sources (3, H, W) each (stable 2-way softmax)."""
    dev = next(net.parameters()).device
    ta, tb = _tensor(a, dev)[None], _tensor(b, dev)[None]
    if symmetrize:
        logits = net(torch.cat([torch.cat([ta, tb], 1), torch.cat([tb, ta], 1)], 0))
        z_ab = torch.sigmoid(logits[0, 0] - logits[0, 1])
        z_ba = torch.sigmoid(logits[1, 1] - logits[1, 0])  # z1 of (B, A) = weight of A
        z = 0.5 * (z_ab + z_ba)
    else:
        logits = net(torch.cat([ta, tb], 1))
        z = torch.sigmoid(logits[0, 0] - logits[0, 1])
    return z.float().cpu().numpy()


@torch.inference_mode()
def reg_pair(net: HourglassNet, a: np.ndarray, b: np.ndarray, symmetrize: bool = False) -> np.ndarray:
    """Regressed RGB image (3, H, W) float32 (not clipped) for RGB sources (3, H, W) each."""
    dev = next(net.parameters()).device
    ta, tb = _tensor(a, dev)[None], _tensor(b, dev)[None]
    if symmetrize:
        out = net(torch.cat([torch.cat([ta, tb], 1), torch.cat([tb, ta], 1)], 0)).mean(0)
    else:
        out = net(torch.cat([ta, tb], 1))[0]
    return out.float().cpu().numpy()


def pairwise_seg_weights(net: HourglassNet, stack: np.ndarray) -> np.ndarray:
    """All ordered pairs: (N, 3, H, W) -> p (N, N, H, W), p[i, k] = z0(x_i, x_k); diagonal 0.5."""
    n = stack.shape[0]
    p = np.full((n, n) + stack.shape[2:], 0.5, np.float32)
    for i in range(n):
        for k in range(n):
            if i != k:
                p[i, k] = seg_pair_weight(net, stack[i], stack[k])
    return p


def nway_weights(p: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Pairwise p (N, N, H, W) -> per-frame weights (N, H, W): softmax_i sum_{k != i} log s_ik with
    s_ik = (p_ik + 1 - p_ki) / 2 (see the module docstring)."""
    n = p.shape[0]
    s = 0.5 * (p.astype(np.float64) + 1.0 - np.swapaxes(p, 0, 1))
    logs = np.log(np.clip(s, eps, 1.0))
    logs[np.arange(n), np.arange(n)] = 0.0
    score = logs.sum(axis=1)  # (N, H, W)
    score -= score.max(axis=0, keepdims=True)
    w = np.exp(score)
    return (w / w.sum(axis=0, keepdims=True)).astype(np.float32)


def _check_stack(stack: np.ndarray) -> np.ndarray:
    stack = np.asarray(stack)
    if stack.ndim != 4 or stack.shape[0] < 2 or stack.shape[1] not in (1, 3):
        raise InputError(f"expected an (N>=2, C=1|3, H, W) stack, got shape {stack.shape}")
    if min(stack.shape[2:]) < 1:
        raise InputError(f"empty image: {stack.shape[2]}x{stack.shape[3]}")
    if not np.isfinite(stack).all():
        raise InputError("the stack contains NaN or infinite values")
    return stack.astype(np.float32, copy=False)


def _check_mode(mode: str, allowed: tuple[str, ...], method: str) -> None:
    if mode not in allowed:
        raise InputError(f"unknown nframe_strategy {mode!r} for {method}; choose one of {', '.join(allowed)}")


# ---------------------------------------------------------------------------------------------
# the methods


def hf_seg_fusion(stack: np.ndarray, options: HFSegOptions | None = None) -> FusionResult:
    """Fuse (N, C, H, W) float32 [0, 1] frames with HF-Seg.

    Returns:
        FusionResult: ``fused`` (C, H, W); ``weights`` (N, H, W) summing to 1; ``decision`` (H, W)
        argmax of the weights; ``maps["focus"]`` the weight of frame 0; for a pair ``score`` is
        z0 (H, W); in ``nway`` mode ``score`` is the pairwise p (N, N, H, W).
    """
    o = options or HFSegOptions()
    _check_mode(o.nframe_strategy, MODES, "hf-seg")
    stack = _check_stack(stack)
    net = load_network("seg", o.weights, o.device, o.init)
    rgb = _to_rgb(stack)
    n = stack.shape[0]
    score = None
    if n == 2:
        z0 = seg_pair_weight(net, rgb[0], rgb[1], o.symmetrize)
        weights = np.stack([z0, 1.0 - z0])
        score = z0
        mode = "pair"
    elif o.nframe_strategy == "champion":
        decision = champion_decision(rgb, lambda a, b: seg_pair_weight(net, a, b, o.symmetrize))
        result = nframe_fusion_from_decision(stack, decision)
        result.info.update({"mode": "champion", "symmetrize": o.symmetrize})
        return result
    elif o.nframe_strategy == "series":
        weights = np.zeros((n,) + stack.shape[2:], np.float32)
        weights[0] = 1.0
        current = rgb[0]
        for k in range(1, n):
            z0 = seg_pair_weight(net, current, rgb[k], o.symmetrize)
            weights[:k] *= z0
            weights[k] = 1.0 - z0
            current = blend(np.stack([current, rgb[k]]), np.stack([z0, 1.0 - z0]))
        mode = "series"
    else:
        score = pairwise_seg_weights(net, rgb)
        weights = nway_weights(score)
        mode = "nway"
    fused = np.clip(blend(stack, weights), 0.0, 1.0)
    info = {"mode": mode, "symmetrize": o.symmetrize,
            "weights": str(getattr(getattr(net, "weights_info", None), "path", None) or o.init)}
    return FusionResult(fused=fused, weights=weights.astype(np.float32), decision=np.argmax(weights, axis=0),
                        score=score, maps={"focus": weights[0].astype(np.float32)}, info=info)


def near_choice(regressed: np.ndarray, stack: np.ndarray) -> np.ndarray:
    """The paper's Near rule (Eq. 6): (H, W) index of the frame nearest (squared distance over the
    channels) to the regressed image; ties go to the lower index."""
    d = ((stack.astype(np.float64) - regressed[None].astype(np.float64)) ** 2).sum(axis=1)
    return np.argmin(d, axis=0)


def hf_reg_fusion(stack: np.ndarray, options: HFRegOptions | None = None) -> FusionResult:
    """Fuse (N, C, H, W) float32 [0, 1] frames with HF-Reg (optionally with Near).

    Returns:
        FusionResult: ``fused`` (C, H, W) (the clipped regression, or with ``near`` the chosen
        source pixels); with ``near``: ``weights`` (one-hot, N, H, W), ``decision`` (H, W) and
        ``maps["regressed"]`` (C, H, W); without: no weights (the regression is no weighted mean).
    """
    o = options or HFRegOptions()
    _check_mode(o.nframe_strategy, ("series",), "hf-reg (the symmetric 'nway' mode needs per-source scores: use hf-seg)")
    stack = _check_stack(stack)
    net = load_network("reg", o.weights, o.device, o.init)
    rgb = _to_rgb(stack)
    current = rgb[0]
    for k in range(1, stack.shape[0]):
        current = reg_pair(net, current, rgb[k], o.symmetrize)
        current = np.clip(current, 0.0, 1.0)
    regressed = current if stack.shape[1] == 3 else current.mean(axis=0, keepdims=True)
    info = {"mode": "pair" if stack.shape[0] == 2 else "series", "near": o.near, "symmetrize": o.symmetrize,
            "weights": str(getattr(getattr(net, "weights_info", None), "path", None) or o.init)}
    if not o.near:
        return FusionResult(fused=regressed.astype(np.float32), info=info)
    decision = near_choice(regressed, stack)
    weights = (np.arange(stack.shape[0])[:, None, None] == decision[None]).astype(np.float32)
    fused = blend(stack, weights)
    return FusionResult(fused=fused, weights=weights, decision=decision,
                        maps={"regressed": regressed.astype(np.float32)}, info=info)


__all__ = ["HFSegOptions", "HFRegOptions", "hf_seg_fusion", "hf_reg_fusion", "nway_weights", "near_choice",
           "seg_pair_weight", "reg_pair", "pairwise_seg_weights", "load_network"]
