"""Boundary-aware multi-focus fusion (method ``ba``).

H. Ma, J. Zhang, S. Liu, Q. Liao, "Boundary aware multi-focus image fusion using deep neural
network", ICME 2019, Sec. 2. Stages, for a pair (A, B):

1. grey: 0.298936 R + 0.587043 G + 0.114021 B on [0, 1] values (:func:`mfif.decision.luminance`);
2. initial score map S0 (H, W): p(A in focus) of the 64x64 window around every pixel from the
   initial net (:mod:`mfif.models.ba.network`), computed densely and exactly (the image is
   reflection padded, 32 pixels before and 31 after; see :func:`pixel_scores`);
3. near the focused/defocused boundary (FDB): the mean of S0 over a ``window`` x ``window`` box
   (clipped at the image border, :func:`mfif.decision.box_mean`) is close to 0.5:
   ``|mean - 0.5| < tau`` (the paper's formulas are lost from our copy; this is the rule of
   ``SPEC.md``). Far from the boundary the window mean is near 0 or 1; within about
   ``tau * window`` pixels of a straight boundary it is not;
4. refined score map S1: S0 with the near-boundary pixels replaced by the boundary refinement
   net's scores (run densely only over the tiles that hold such pixels, :func:`refine_scores`);
   the initial net serves as the "normal" refinement net elsewhere (the paper's simplification);
5. binarisation S1 > ``threshold`` and small-region removal (8-connected, ``area_fraction`` of
   H*W, on the map and then its inverse, :func:`mfif.decision.remove_small_regions`);
6. fusion by the decision map: F = D A + (1 - D) B, per channel. No guided filter (the paper
   drops it).

Our choices, tuned on 36 held-apart synthetic scenes (``benchmarks/ba_tune.py``, results in
``benchmarks/results/ba_tune.json`` and the model card ``mfif/weights/ba_boundary.md``):
``window`` = :data:`WINDOW` = 7, ``tau`` = :data:`TAU` = 0.45, i.e. a pixel goes to the boundary
net unless the initial scores of its 7x7 neighbourhood average below 0.05 or above 0.95 (~19 % of
the pixels of those scenes). Over the grid w in {7, 15, 31, 47, 63} x tau in {0.1 .. 0.45} the
final decision accuracy within 8 px of the true boundary rose monotonically with the share of
refined pixels and saturated (0.8754 here, 0.8757 with the boundary net everywhere, 0.8276
without refinement); w = 7, tau = 0.45 is the cheapest setting within 0.001 of the best.
``refine=False`` gives the paper's "without refinement" column.

Order: the network is trained on both orders of every patch (channels exchanged, label flipped),
so swapping A and B gives nearly the complementary map (the paper relies on this). By default
(``symmetric=True``, our choice) both orders are scored and averaged, p = (p(A, B) + 1 - p(B, A)) / 2,
which makes the score maps exactly complementary under a swap, at twice the network cost
(520x520 on 2 CPU threads: ~3.5 s instead of ~1.7 s, ``benchmarks/ba_speed.py``);
``symmetric=False`` is the paper's single pass.

More than two frames: the network compares two images. Default (``stack_rule="auto"``): each
frame is compared with the running mosaic of the frames so far and takes the pixels where it wins
(:func:`mfif.stack_rule.champion_decision`, N - 1 comparisons), then the N-frame rule of
:mod:`mfif.stack_rule` (label consistency, multiresolution spline; no small-region removal, which
deletes the thin slices a frame of a long stack is sharp on). ``stack_rule="pair"``: frames are
folded in series, in the given order (the paper's suggestion for pairwise methods):
F1 = ba(frame 0, frame 1), F2 = ba(F1, frame 2), ...; ``weights`` are the products of the
pairwise decisions, ``decision`` their argmax; ``maps`` are those of the last step.

Example:
    >>> import numpy as np
    >>> from mfif.models.ba.pipeline import BAOptions, ba_fusion
    >>> stack = np.random.rand(2, 1, 40, 48).astype(np.float32)
    >>> res = ba_fusion(stack, BAOptions(init="random"))
    >>> res.fused.shape, sorted(res.maps)
    ((1, 40, 48), ['boundary', 'final', 'initial', 'refined'])
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from mfif.decision import blend, box_mean, luminance, one_hot, remove_small_regions
from mfif.errors import InputError
from mfif.models.ba.network import PATCH, BAResNet, build_ba_resnet, for_inference, logits_to_focus, pad_for_pixels
from mfif.models.cache import cached_network, file_key
from mfif.models.series import series_fold
from mfif.result import FusionResult
from mfif.stack_rule import champion_decision, nframe_fusion_from_decision, use_nframe_rule
from mfif.models.device import resolve_device

WINDOW = 7  # boundary window (pixels), chosen on synthetic validation data (benchmarks/ba_tune.py)
TAU = 0.45  # |window mean - 0.5| < TAU marks a pixel near the boundary
MIN_SIDE = 2


@dataclass
class BAOptions:
    """Options of the ``ba`` method.

    Attributes:
        weights: initial net weights file (None = the shipped ``mfif/weights/ba_initial.safetensors``).
        boundary_weights: boundary refinement net weights (None = the shipped ``ba_boundary.safetensors``).
        refine: replace the near-boundary scores by the boundary net's (False: the paper's
            "without refinement" column).
        window: side of the box over which the initial score map is averaged (odd, >= 1).
        tau: a pixel is near the boundary when |window mean - 0.5| < tau (0 < tau <= 0.5).
        threshold: binarisation threshold of the refined score map.
        area_fraction: small-region threshold as a fraction of H*W (0 disables).
        symmetric: average both input orders, p = (p(A, B) + 1 - p(B, A)) / 2, so swapping the
            inputs gives exactly the complementary maps (twice the network cost; False is the
            paper's single pass).
        device: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``, ...
        max_strip_bytes: memory budget of one strip of the dense pass (results do not depend on it).
        tile: side of the output tiles on which the boundary net runs.
        init: ``"pretrained"`` (load weights) or ``"random"`` (untrained nets, for tests).
    """

    weights: str | None = None
    boundary_weights: str | None = None
    refine: bool = True
    window: int = WINDOW
    tau: float = TAU
    threshold: float = 0.5
    area_fraction: float = 0.01
    symmetric: bool = True
    device: str = "auto"
    max_strip_bytes: int = 512 * 2**20
    tile: int = 96
    init: str = "pretrained"
    stack_rule: str = "auto"


# ---------------------------------------------------------------------------------------------
# networks (cached per file and device)

def load_network(role: str, weights: str | None, device: str = "auto", init: str = "pretrained") -> BAResNet:
    """The ``initial`` or ``boundary`` net (weights file or shipped weights), on its device, eval mode."""
    dev = resolve_device(device)
    if init == "random":
        torch.manual_seed(0 if role == "initial" else 1)
        return for_inference(BAResNet().to(dev))
    if init != "pretrained":
        raise InputError(f"init must be 'pretrained' or 'random', got {init!r}")
    return cached_network(("ba", role, str(dev), *file_key(weights)), lambda: for_inference(
        build_ba_resnet(weights=weights, role=role, pretrained=weights is None).to(dev)))


# ---------------------------------------------------------------------------------------------
# dense scores


def _bytes_per_pixel(net: BAResNet) -> int:
    # a few live float32 maps of the widest stage at full-resolution equivalent (space-to-batch
    # keeps the pixel count), measured peak ~ 6x the widest map
    cfg = net.config
    return 6 * 4 * cfg.expansion * max(cfg.widths)


def _pair_input(grey_a: np.ndarray, grey_b: np.ndarray, symmetric: bool) -> torch.Tensor:
    pair = np.stack([grey_a, grey_b]).astype(np.float32)
    padded = pad_for_pixels(pair)  # (1, 2, H + 63, W + 63)
    if symmetric:
        padded = torch.cat([padded, padded.flip(1)])
    return padded


def _scores_from_logits(logits: torch.Tensor, symmetric: bool) -> torch.Tensor:
    p = logits_to_focus(logits.float())
    if symmetric:
        return 0.5 * (p[0] + 1.0 - p[1])
    return p[0]


@torch.inference_mode()
def pixel_scores(net: BAResNet, grey_a: np.ndarray, grey_b: np.ndarray, *, symmetric: bool = False,
                 max_strip_bytes: int = 512 * 2**20) -> np.ndarray:
    """Dense score map p(A in focus at each pixel), (H, W) float32, from grey (H, W) sources.

    Pixel (y, x) is scored on the 64x64 window of the reflection-padded pair whose centre (index
    32) is (y, x), exactly as the patch network would score that window. Large images run in
    strips of output rows (each with its 63 rows of context): identical results."""
    height, width = grey_a.shape
    device = next(net.parameters()).device
    padded = _pair_input(grey_a, grey_b, symmetric)
    per_row = _bytes_per_pixel(net) * (width + PATCH - 1) * padded.shape[0]
    rows = max(8, int(max_strip_bytes // max(per_row, 1)) - (PATCH - 1))
    out = np.empty((height, width), np.float32)
    for r0 in range(0, height, rows):
        r1 = min(height, r0 + rows)
        logits = net.dense_logits(padded[:, :, r0:r1 + PATCH - 1].to(device))
        out[r0:r1] = _scores_from_logits(logits, symmetric).cpu().numpy()
    return out


@torch.inference_mode()
def refine_scores(net: BAResNet, grey_a: np.ndarray, grey_b: np.ndarray, initial: np.ndarray, near: np.ndarray, *,
                  tile: int = 96, symmetric: bool = False, max_strip_bytes: int = 512 * 2**20) -> np.ndarray:
    """``initial`` with the pixels where ``near`` is True replaced by the boundary net's scores.

    The boundary net runs densely on ``tile`` x ``tile`` output tiles (each with its 63 pixels of
    context) that contain at least one near-boundary pixel, several tiles per batch; the result
    equals running it over the whole image and keeping the near-boundary pixels."""
    refined = np.array(initial, dtype=np.float32, copy=True)
    if not near.any():
        return refined
    height, width = initial.shape
    device = next(net.parameters()).device
    padded = _pair_input(grey_a, grey_b, symmetric)
    ty, tx = math.ceil(height / tile), math.ceil(width / tile)
    # pad so every tile has its full context (the extra outputs are discarded)
    extra = (tx * tile - width, ty * tile - height)
    padded = torch.nn.functional.pad(padded, (0, extra[0], 0, extra[1]))
    hit = np.zeros((ty, tx), bool)
    ys, xs = np.nonzero(near)
    hit[ys // tile, xs // tile] = True
    tiles = list(zip(*np.nonzero(hit)))
    side = tile + PATCH - 1
    per_tile = _bytes_per_pixel(net) * side * side * padded.shape[0]
    batch = max(1, int(max_strip_bytes // per_tile))
    for s in range(0, len(tiles), batch):
        group = tiles[s:s + batch]
        crops = torch.cat([padded[:, :, i * tile:i * tile + side, j * tile:j * tile + side] for i, j in group])
        logits = net.dense_logits(crops.to(device))
        n = padded.shape[0]
        for k, (i, j) in enumerate(group):
            p = _scores_from_logits(logits[k * n:(k + 1) * n], symmetric).cpu().numpy()
            y0, x0 = i * tile, j * tile
            y1, x1 = min(height, y0 + tile), min(width, x0 + tile)
            sel = near[y0:y1, x0:x1]
            refined[y0:y1, x0:x1][sel] = p[: y1 - y0, : x1 - x0][sel]
    return refined


def boundary_mask(initial: np.ndarray, window: int = WINDOW, tau: float = TAU) -> np.ndarray:
    """Pixels near the focused/defocused boundary: |mean of ``initial`` over a window x window
    box (clipped at the border) - 0.5| < tau. (H, W) bool."""
    mean = box_mean(initial, window // 2)
    return np.abs(mean - 0.5) < tau


# ---------------------------------------------------------------------------------------------
# the pipeline


def _check(stack: np.ndarray, o: BAOptions) -> np.ndarray:
    stack = np.asarray(stack)
    if stack.ndim != 4 or stack.shape[0] < 2 or stack.shape[1] not in (1, 3):
        raise InputError(f"expected an (N>=2, C=1|3, H, W) stack, got shape {stack.shape}")
    if min(stack.shape[2:]) < MIN_SIDE:
        raise InputError(f"the BA method needs images of at least {MIN_SIDE}x{MIN_SIDE} pixels, "
                         f"got {stack.shape[2]}x{stack.shape[3]}")
    if not (isinstance(o.window, int) and o.window >= 1 and o.window % 2 == 1):
        raise InputError(f"window must be an odd integer >= 1, got {o.window!r}")
    if not (0.0 < o.tau <= 0.5):
        raise InputError(f"tau must be in (0, 0.5], got {o.tau!r}")
    if not (0.0 < o.threshold < 1.0):
        raise InputError(f"threshold must be in (0, 1), got {o.threshold!r}")
    if not math.isfinite(o.area_fraction) or o.area_fraction < 0:
        raise InputError(f"area_fraction must be >= 0, got {o.area_fraction!r}")
    if not (isinstance(o.tile, int) and o.tile >= 8):
        raise InputError(f"tile must be an integer >= 8, got {o.tile!r}")
    return stack.astype(np.float32, copy=False)


def fuse_pair(pair: np.ndarray, o: BAOptions, initial_net: BAResNet, boundary_net: BAResNet | None) -> dict:
    """The paper's pipeline on a (2, C, H, W) pair; returns every intermediate map."""
    grey = luminance(pair)
    initial = pixel_scores(initial_net, grey[0], grey[1], symmetric=o.symmetric, max_strip_bytes=o.max_strip_bytes)
    near = boundary_mask(initial, o.window, o.tau)
    if o.refine and boundary_net is not None:
        refined = refine_scores(boundary_net, grey[0], grey[1], initial, near, tile=o.tile, symmetric=o.symmetric,
                                max_strip_bytes=o.max_strip_bytes)
    else:
        refined = initial.copy()
    final = remove_small_regions(refined > o.threshold, o.area_fraction)
    weights = one_hot((~final).astype(np.int64), 2)
    return {"initial": initial, "near": near, "refined": refined, "final": final, "weights": weights,
            "fused": blend(pair, weights)}


def ba_fusion(stack: np.ndarray, options: BAOptions | None = None) -> FusionResult:
    """Fuse (N, C, H, W) float32 [0, 1] frames with the boundary-aware method.

    Returns:
        FusionResult: ``fused`` (C, H, W); ``decision`` (H, W) index of the chosen frame;
        ``weights`` (N, H, W) one-hot; ``score`` the refined score map p(A) (pair) of the last
        step; ``maps``: ``initial`` (initial net's score map), ``refined`` (after the boundary
        net), ``final`` (binary decision map after small-region removal, 1 = first frame of the
        step) and ``boundary`` (the near-boundary pixels).
    """
    o = options or BAOptions()
    stack = _check(stack, o)
    initial_net = load_network("initial", o.weights, o.device, o.init)
    boundary_net = load_network("boundary", o.boundary_weights, o.device, o.init) if o.refine else None
    n = stack.shape[0]
    if use_nframe_rule(o.stack_rule, n):
        # N-1 comparisons of each frame with the running mosaic, then the N-frame rule
        decision = champion_decision(
            stack, lambda a, b: fuse_pair(np.stack([a, b]), o, initial_net, boundary_net)["refined"])
        return nframe_fusion_from_decision(stack, decision, info={
            "mode": "champion", "refine": bool(o.refine and boundary_net is not None)})
    current, weights, last = series_fold(stack, lambda pair: fuse_pair(pair, o, initial_net, boundary_net))
    decision = np.argmax(weights, axis=0)
    maps = {"initial": last["initial"], "refined": last["refined"], "final": last["final"].astype(np.float32),
            "boundary": last["near"].astype(np.float32)}
    info = {"mode": "pair" if n == 2 else "series", "refine": bool(o.refine and boundary_net is not None),
            "window": o.window, "tau": o.tau, "boundary_fraction": float(last["near"].mean()),
            "weights": str(getattr(getattr(initial_net, "weights_info", None), "path", None) or o.init)}
    if n > 2:
        info["note"] = "frames folded in series in the given order; maps are those of the last step"
    return FusionResult(fused=np.clip(current, 0.0, 1.0), weights=weights, decision=decision, score=last["refined"],
                        maps=maps, info=info)
