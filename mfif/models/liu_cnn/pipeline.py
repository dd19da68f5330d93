"""Liu et al. 2017 CNN multi-focus fusion (methods ``cnn`` and ``cnn-slight``).

Y. Liu, X. Chen, H. Peng, Z. Wang, "Multi-focus image fusion with a deep convolutional neural
network", Information Fusion 36 (2017) 191-207, Sec. 3.4. Stages, for a pair (A, B):

1. grey: 0.298936 R + 0.587043 G + 0.114021 B on [0, 1] values (:func:`mfif.decision.luminance`);
2. dense score map: the siamese network run fully convolutionally (:mod:`mfif.models.liu_cnn.network`),
   score (j, i) = p(A in focus) for the 16x16 patches at (2j, 2i), stable softmax;
3. focus map: each pixel averages every score whose patch covers it (:func:`focus_map_from_scores`);
4. initial segmentation: map > 0.5 (1 = A);
5. consistency verification: remove 8-connected regions smaller than ceil(area_fraction * H * W)
   from the map and then from its inverse; guided filter (r, eps) of the binary decision map,
   guided by the grey initial fused image (grey A where the map is 1, grey B elsewhere);
   the filter output is not clipped (as the authors' code);
6. fusion: F = w A + (1 - w) B per channel (the fused image is clipped to [0, 1]).

More than two frames (``nframe_strategy``):

- ``"nway"`` (default, order independent): the trunk runs once per frame; for every ordered pair
  (i, k) the head gives p_ik = p(i sharper than k); the pair score s_ik = (p_ik + 1 - p_ki) / 2
  is symmetric by construction; frame i scores mean_k s_ik; the per-frame focus maps (overlap
  averaging) give an argmax decision, N-way small-region removal, one guided filter per frame's
  binary map (guided by the grey initial fused image) and normalised weights. The expensive 8x8
  layer is split by branch, so N frames cost N trunks and 2N half heads, not N(N-1) heads.
- ``"series"`` (the paper's suggestion): fuse frame 0 with frame 1, the result with frame 2, ... in
  the given order; the result depends on the order.

With exactly two frames both strategies are the paper's pipeline above. Step 2 is symmetrised by
default for our weights (``symmetric``: the score is (p(A, B) + 1 - p(B, A)) / 2, so swapping A
and B gives the same fused image); with the authors' ``.mat`` weights it is off, so the parity
test against the authors' outputs checks the paper's pipeline unchanged.

Example:
    >>> import numpy as np
    >>> from mfif.models.liu_cnn.pipeline import LiuCNNOptions, liu_cnn_fusion
    >>> stack = np.random.rand(2, 1, 48, 40).astype(np.float32)
    >>> res = liu_cnn_fusion(stack, LiuCNNOptions(variant="slight", weights=None, init="random"))
    >>> res.fused.shape, res.weights.shape, res.maps["focus"].shape
    ((1, 48, 40), (2, 48, 40), (48, 40))
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from mfif.decision import (blend, guided_filter, luminance, normalize_weights, one_hot, remove_small_regions,
                           remove_small_regions_multi)
from mfif.errors import InputError
from mfif.models.liu_cnn.network import (CONTEXT, PATCH, LiuCNN, build_liu_cnn, check_variant, logits_to_focus,
                               score_map_size)
from mfif.models.cache import cached_network, file_key
from mfif.models.series import series_fold
from mfif.result import FusionResult
from mfif.stack_rule import nframe_fusion_from_decision, use_nframe_rule
from mfif.models.device import resolve_device

NFRAME_STRATEGIES = ("nway", "series")


@dataclass
class LiuCNNOptions:
    """Options of the ``cnn`` / ``cnn-slight`` methods.

    Attributes:
        variant: ``"original"`` (``cnn``) or ``"slight"`` (``cnn-slight``).
        weights: weights file: the authors' ``.mat`` (slight) or one of our ``.safetensors``; None = the
            shipped weights of the variant.
        area_fraction: small-region threshold as a fraction of H*W (paper 0.01); 0 disables.
        radius: guided filter radius r (paper 8).
        eps: guided filter epsilon (paper 0.1; images in [0, 1]).
        threshold: focus-map threshold of the initial segmentation (paper 0.5).
        symmetric: for a pair, score both orders and use (p(A, B) + 1 - p(B, A)) / 2, which makes
            the result independent of the order by construction (paper Sec. 4.2.1 requires
            commutativity; the paper's pipeline only approximates it: fused SSIM between the two
            orders 0.99996 in the paper; 0.99985 / 0.99980 on liu-grayscale g_01 with our / the
            authors' slight weights). The trunk is shared by both orders (slight: no measurable
            extra cost, the linear output layer is shared too; original: a second fc1 pass, about
            +75 % time; numbers in the model cards ``mfif/weights/liu_cnn_*.md``). None (default):
            on, except with the authors' MATLAB weights (``weights=*.mat``), where the paper's
            one-order pipeline is kept so that their outputs are reproduced. True/False force it.
        nframe_strategy: more than two frames: ``"nway"`` (argmax of per-frame scores) or ``"series"``
            (formerly ``mode``; the old name still works, with a warning).
        stack_rule: ``nway`` with more than two frames: ``"auto"`` = the argmax goes through the
            N-frame rule of :mod:`mfif.stack_rule` (label consistency, multiresolution spline)
            instead of small-region removal and guided filtering; ``"pair"``: the paper's steps.
        device: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``, ...
        max_strip_bytes: memory budget of one strip of the dense pass (large images run in strips
            of score rows; results are identical to one pass).
        init: ``"pretrained"`` (load ``weights`` / the shipped file) or ``"random"`` (tests only).
    """

    RENAMED_OPTIONS: ClassVar[dict[str, str]] = {"mode": "nframe_strategy"}

    variant: str = "slight"
    weights: str | None = None
    area_fraction: float = 0.01
    radius: int = 8
    eps: float = 0.1
    threshold: float = 0.5
    symmetric: bool | None = None
    nframe_strategy: str = "nway"
    device: str = "auto"
    max_strip_bytes: int = 768 * 2**20
    init: str = "pretrained"
    stack_rule: str = "auto"


# ---------------------------------------------------------------------------------------------
# network loading (cached per file and device)

def load_network(options: LiuCNNOptions) -> LiuCNN:
    """The network for ``options`` (weights file or shipped weights), on its device, in eval mode."""
    variant = check_variant(options.variant)
    device = resolve_device(options.device)
    if options.init == "random":
        torch.manual_seed(0)
        return LiuCNN(variant).to(device).eval()
    if options.init != "pretrained":
        raise InputError(f"init must be 'pretrained' or 'random', got {options.init!r}")
    return cached_network(("liu_cnn", variant, str(device), *file_key(options.weights)),
                          lambda: build_liu_cnn(variant, options.weights,
                                                pretrained=options.weights is None).to(device).eval())


# ---------------------------------------------------------------------------------------------
# dense scores


def _strip_rows(width: int, n_images: int, budget: int) -> int:
    # conv1 (64) + conv2 (128) activations, float32, 2 input rows per score row, per image
    per_row = (64 + 128) * 2 * max(width, 1) * 4 * n_images
    return max(8, int(budget // per_row))


def _strips(height: int, width: int, n_images: int, budget: int):
    """Yield (j0, j1, in0, in1, local0): score rows [j0, j1) come from input rows [in0, in1), and
    their pooled features start at local pooled row ``local0`` of the strip."""
    h, _ = score_map_size(height, width)
    rows = _strip_rows(width, n_images, budget)
    for j0 in range(0, h, rows):
        j1 = min(h, j0 + rows)
        in0 = max(0, 2 * j0 - CONTEXT)
        in1 = min(height, 2 * j1 + 2 * (PATCH // 2 + 1))  # last needed input row is 2(j1-1)+15+CONTEXT
        yield j0, j1, in0, in1, j0 - in0 // 2


@torch.inference_mode()
def pair_score_map(net: LiuCNN, grey_a: np.ndarray, grey_b: np.ndarray, *,
                   max_strip_bytes: int = 768 * 2**20, symmetric: bool = False) -> np.ndarray:
    """Dense score map p(A in focus) of a grey pair (H, W) -> (ceil(H/2)-7, ceil(W/2)-7) float32.

    The trunk runs once per image (in strips of score rows for large images, with exactly the
    context each strip needs, so the result equals a single pass). ``symmetric``: the map is
    (p(A, B) + 1 - p(B, A)) / 2 from the same features (:meth:`LiuCNN.symmetric_focus`), and
    swapping A and B gives 1 - the map."""
    height, width = grey_a.shape
    if min(height, width) < PATCH:
        raise InputError(f"the Liu CNN needs images of at least 16x16 pixels, got {height}x{width}")
    device = next(net.parameters()).device
    h, w = score_map_size(height, width)
    out = np.empty((h, w), np.float32)
    pair = torch.from_numpy(np.stack([grey_a, grey_b]).astype(np.float32))[:, None]
    for j0, j1, in0, in1, local0 in _strips(height, width, 2, max_strip_bytes):
        f = net.branch(pair[:, :, in0:in1].to(device))
        f = f[:, :, local0: local0 + (j1 - j0) + 7]
        if symmetric:
            p = net.symmetric_focus(f[:1], f[1:])[0]
        else:
            p = logits_to_focus(net.head_dense(f[:1], f[1:]))[0]
        out[j0:j1] = p.float().cpu().numpy()
    return out


@torch.inference_mode()
def pairwise_score_maps(net: LiuCNN, greys: np.ndarray, *, max_strip_bytes: int = 768 * 2**20) -> np.ndarray:
    """All ordered pairs: greys (N, H, W) -> p (N, N, h, w), p[i, k] = p(frame i sharper than frame k).

    Features of each frame are computed once; the first head layer is split by branch
    (:meth:`LiuCNN.head_halves`), so the 8x8 layer costs 2N half-convolutions. The diagonal is 0.5."""
    n, height, width = greys.shape
    if min(height, width) < PATCH:
        raise InputError(f"the Liu CNN needs images of at least 16x16 pixels, got {height}x{width}")
    device = next(net.parameters()).device
    h, w = score_map_size(height, width)
    out = np.full((n, n, h, w), 0.5, np.float32)
    frames = torch.from_numpy(np.ascontiguousarray(greys, dtype=np.float32))[:, None]
    for j0, j1, in0, in1, local0 in _strips(height, width, 1, max_strip_bytes // 2):
        halves = []
        for i in range(n):
            f = net.branch(frames[i: i + 1, :, in0:in1].to(device))[:, :, local0: local0 + (j1 - j0) + 7]
            halves.append(net.head_halves(f))
        for i in range(n):
            for k in range(n):
                if i != k:
                    logits = net.head_from_halves(halves[i][0], halves[k][1])
                    out[i, k, j0:j1] = logits_to_focus(logits)[0].float().cpu().numpy()
    return out


def focus_map_from_scores(scores: np.ndarray, height: int, width: int) -> np.ndarray:
    """Score map (..., h, w) -> pixel focus map (..., H, W): each pixel averages the scores of all
    16x16 patches (stride 2) that cover it (paper Sec. 3.4.1, Fig. 3). Float64 integral images."""
    scores = np.asarray(scores, dtype=np.float64)
    h, w = scores.shape[-2:]
    if (h, w) != score_map_size(height, width):
        raise InputError(f"score map {h}x{w} does not match a {height}x{width} image")
    lead = scores.shape[:-2]
    # place score (j, i) at pixel (2j, 2i) of a canvas, then sum over 16x16 windows ending at each pixel
    canvas_h, canvas_w = 2 * (h - 1) + PATCH, 2 * (w - 1) + PATCH
    canvas = np.zeros(lead + (canvas_h, canvas_w))
    canvas[..., : 2 * h: 2, : 2 * w: 2] = scores
    count = np.zeros((canvas_h, canvas_w))
    count[: 2 * h: 2, : 2 * w: 2] = 1.0

    def window_sum(x):
        c = np.zeros(x.shape[:-2] + (x.shape[-2] + 1, x.shape[-1] + 1))
        c[..., 1:, 1:] = x.cumsum(-2).cumsum(-1)
        ys = np.arange(canvas_h)
        xs = np.arange(canvas_w)
        y0, x0 = np.maximum(ys - PATCH + 1, 0), np.maximum(xs - PATCH + 1, 0)
        y1, x1 = ys + 1, xs + 1
        return (c[..., y1[:, None], x1[None, :]] - c[..., y0[:, None], x1[None, :]]
                - c[..., y1[:, None], x0[None, :]] + c[..., y0[:, None], x0[None, :]])

    total = window_sum(canvas)[..., :height, :width]
    n = window_sum(count)[:height, :width]
    return total / n


# ---------------------------------------------------------------------------------------------
# the pipeline


def _check_stack(stack: np.ndarray) -> np.ndarray:
    stack = np.asarray(stack)
    if stack.ndim != 4 or stack.shape[0] < 2 or stack.shape[1] not in (1, 3):
        raise InputError(f"expected an (N>=2, C=1|3, H, W) stack, got shape {stack.shape}")
    if min(stack.shape[2:]) < PATCH:
        raise InputError(f"the Liu CNN needs images of at least 16x16 pixels, got {stack.shape[2]}x{stack.shape[3]}")
    return stack.astype(np.float32, copy=False)


def uses_symmetric_scores(net: LiuCNN, options: LiuCNNOptions) -> bool:
    """``options.symmetric``, or when None: True unless ``net`` holds the authors' ``.mat`` weights."""
    if options.symmetric is not None:
        return bool(options.symmetric)
    return getattr(getattr(net, "weights_info", None), "source", None) != "mat"


def _fuse_pair(net: LiuCNN, pair: np.ndarray, o: LiuCNNOptions) -> dict:
    """The paper's pipeline on (2, C, H, W); returns the intermediate maps."""
    _, _, height, width = pair.shape
    grey = luminance(pair)
    scores = pair_score_map(net, grey[0], grey[1], max_strip_bytes=o.max_strip_bytes,
                            symmetric=uses_symmetric_scores(net, o))
    focus = focus_map_from_scores(scores, height, width)
    initial = focus > o.threshold
    chosen = remove_small_regions(initial, o.area_fraction)
    guide = np.where(chosen, grey[0], grey[1])
    if o.radius > 0:
        w = guided_filter(guide, chosen.astype(np.float64), o.radius, o.eps)
    else:
        w = chosen.astype(np.float64)
    weights = np.stack([w, 1.0 - w]).astype(np.float32)
    return {"scores": scores, "focus": focus.astype(np.float32), "initial": initial, "chosen": chosen,
            "weights": weights, "fused": blend(pair, weights)}


def _series(net: LiuCNN, stack: np.ndarray, o: LiuCNNOptions) -> FusionResult:
    current, weights, last = series_fold(stack, lambda pair: _fuse_pair(net, pair, o))
    fused = np.clip(current, 0.0, 1.0)
    decision = np.argmax(weights, axis=0)
    return FusionResult(fused=fused, weights=weights, decision=decision, score=last["scores"],
                        maps={"focus": last["focus"], "refined": last["weights"][0]},
                        info={"mode": "series", "note": "maps are those of the last pairwise step"})


def _nway(net: LiuCNN, stack: np.ndarray, o: LiuCNNOptions) -> FusionResult:
    n, _, height, width = stack.shape
    grey = luminance(stack)
    p = pairwise_score_maps(net, grey, max_strip_bytes=o.max_strip_bytes)
    sym = 0.5 * (p + 1.0 - np.swapaxes(p, 0, 1))  # s_ik = (p_ik + 1 - p_ki) / 2, s_ii = 0.5
    per_frame = (sym.sum(axis=1) - 0.5) / (n - 1)  # mean over k != i
    focus = focus_map_from_scores(per_frame, height, width)
    decision = np.argmax(focus, axis=0)
    if use_nframe_rule(o.stack_rule, n):
        result = nframe_fusion_from_decision(stack, decision, score=per_frame.astype(np.float32))
        result.maps["focus"] = focus.astype(np.float32)
        result.info["mode"] = "nway"
        return result
    decision = remove_small_regions_multi(decision, n, o.area_fraction)
    guide = luminance(blend(stack, one_hot(decision, n)))
    if o.radius > 0:
        refined = np.stack([guided_filter(guide, (decision == i).astype(np.float64), o.radius, o.eps) for i in range(n)])
        weights = normalize_weights(refined).astype(np.float32)
    else:
        weights = one_hot(decision, n)
    fused = np.clip(blend(stack, weights), 0.0, 1.0)
    return FusionResult(fused=fused, weights=weights, decision=decision, score=per_frame.astype(np.float32),
                        maps={"focus": focus.astype(np.float32)}, info={"mode": "nway"})


def liu_cnn_fusion(stack: np.ndarray, options: LiuCNNOptions | None = None) -> FusionResult:
    """Fuse (N, C, H, W) float32 [0, 1] frames with the Liu et al. 2017 CNN.

    Returns:
        FusionResult: ``fused`` (C, H, W); ``weights`` (N, H, W) (for a pair: the guided-filter
        output w and 1 - w, not clipped, as the paper); ``decision`` (H, W) index of the chosen
        frame after small-region removal; ``score`` the dense score map (pair: (h, w) p(A); N-way:
        (N, h, w) per-frame scores); ``maps``: ``focus`` (pixel focus map of frame 0 / per frame),
        ``initial`` (thresholded map, 1 = A) and ``refined`` (w) for a pair.
    """
    o = options or LiuCNNOptions()
    if o.nframe_strategy not in NFRAME_STRATEGIES:
        raise InputError(f"unknown nframe_strategy {o.nframe_strategy!r} for the Liu CNN; "
                         f"choose one of {', '.join(NFRAME_STRATEGIES)}")
    if not math.isfinite(o.area_fraction) or o.area_fraction < 0 or o.radius < 0 or o.eps <= 0:
        raise InputError(f"invalid options: area_fraction={o.area_fraction}, radius={o.radius}, eps={o.eps}")
    stack = _check_stack(stack)
    net = load_network(o)
    info = {"variant": o.variant, "weights": str(getattr(getattr(net, "weights_info", None), "path", None) or o.init)}
    if stack.shape[0] == 2 or o.nframe_strategy == "series":
        info["symmetric"] = uses_symmetric_scores(net, o)
    if stack.shape[0] == 2:
        r = _fuse_pair(net, stack, o)
        result = FusionResult(fused=np.clip(r["fused"], 0.0, 1.0), weights=r["weights"],
                              decision=(~r["chosen"]).astype(np.int64), score=r["scores"],
                              maps={"focus": r["focus"], "initial": r["initial"].astype(np.float32),
                                    "refined": r["weights"][0]},
                              info={"mode": "pair"})
    elif o.nframe_strategy == "series":
        result = _series(net, stack, o)
    else:
        result = _nway(net, stack, o)
    result.info.update(info)
    return result
