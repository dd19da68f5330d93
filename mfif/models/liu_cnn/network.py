"""The siamese focus network of Liu, Chen, Peng, Wang, "Multi-focus image fusion with a deep
convolutional neural network", Information Fusion 36 (2017) 191-207.

Architecture (paper Fig. 2 and Sec. 4.2.4; the authors' released MATLAB pipeline for the details)::

    branch (shared weights, applied to each grey source, values in [0, 1], no mean subtraction)
        conv1  3x3, 1 -> 64,    zero pad 1, ReLU
        conv2  3x3, 64 -> 128,  zero pad 1, ReLU
        pool   2x2 max, stride 2 (odd sizes padded at the bottom/right)
        conv3  3x3, 128 -> 256, zero pad 1, ReLU
    head on the concatenated features [branch(A), branch(B)] (512 channels, A first)
        original ("cnn"):       fc1 8x8 512 -> 256, ReLU; fc2 1x1 256 -> 2
        slight ("cnn-slight"):  out 8x8 512 -> 2

On a 16x16 patch pair the 8x8 layers see the whole 8x8 feature map: they are the paper's fully
connected layers. On whole images the same weights run as "valid" convolutions and give a dense
(ceil(H/2) - 7) x (ceil(W/2) - 7) score map, stride 2: score (j, i) is the patch pair at rows
2j..2j+15, cols 2i..2i+15 (paper Fig. 3). Nothing is recomputed for overlapping patches: the
trunk runs once per image.

Class 1 of the 2-way softmax means "A (first input) is in focus" (the paper's positive label), so
the focus probability of A is ``sigmoid(z1 - z0)``: the numerically stable form of the softmax
(the authors' ``exp(z1) / (exp(z0) + exp(z1))`` overflows to NaN for large logits).

A dense score is *not* exactly the score of the isolated 16x16 patch: in a whole image the 3x3
convolutions near the patch border see real neighbouring pixels where the isolated patch sees zero
padding (that is the paper's own train/test setting). The exact statement is: the dense score at
(j, i) depends on input rows 2j-4 .. 2j+19 and cols 2i-4 .. 2i+19 (:data:`CONTEXT` = 4 pixels of
context around the patch, zero outside the image).

Weights: our own ``.safetensors`` files (:func:`save_liu_weights`) and the authors' MATLAB ``cnnmodel.mat``
(:func:`load_mat_weights`; key layout in ``reference/liu-cnn/MANIFEST.md``). The authors' fusion
code applies the output layer WITHOUT its bias (the bias is ~8e-4); ``use_output_bias=False`` on a
network loaded from ``.mat`` reproduces that.

Example:
    >>> import torch
    >>> net = build_liu_cnn("slight").eval()
    >>> net(torch.rand(4, 1, 16, 16), torch.rand(4, 1, 16, 16)).shape   # patch mode: logits
    torch.Size([4, 2])
    >>> net.dense_logits(torch.rand(1, 1, 40, 36), torch.rand(1, 1, 40, 36)).shape
    torch.Size([1, 2, 13, 11])
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mfif.errors import InputError, WeightsError
from mfif.models.weights import SUFFIX, WEIGHTS_DIR, read_weights, shipped_weights_file, write_weights
from mfif.models.weights import check_state_dict as check_weights

VARIANTS = ("original", "slight")
PATCH = 16  # training patch size
STRIDE = 2  # score-map stride (one 2x2 max-pool)
CONTEXT = 4  # input pixels around a patch that reach its dense score (see module docstring)
WEIGHTS_FORMAT = "mfif-liu-cnn/1"


def check_variant(variant: str) -> str:
    """Return ``variant`` if it is ``original`` or ``slight``; anything else is an error."""
    if variant not in VARIANTS:
        raise InputError(f"unknown Liu CNN variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    return variant


class LiuCNN(nn.Module):
    """Siamese focus classifier (Liu et al. 2017).

    Args:
        variant: ``"original"`` (fc1 with 256 units) or ``"slight"`` (no fc1).

    Forward modes:
        ``forward(a, b)``: patch pairs (B, 1, 16, 16) each -> logits (B, 2) (fc layers as matmuls).
        ``dense_logits(a, b)``: images (B, 1, H, W) each -> logits (B, 2, ceil(H/2)-7, ceil(W/2)-7).
        ``dense_focus(a, b)``: the same as the focus probability of A, (B, h, w).
    """

    def __init__(self, variant: str = "slight"):
        super().__init__()
        self.variant = check_variant(variant)
        self.conv1 = nn.Conv2d(1, 64, 3, padding=1)
        self.conv2 = nn.Conv2d(64, 128, 3, padding=1)
        self.conv3 = nn.Conv2d(128, 256, 3, padding=1)
        if variant == "original":
            self.fc1 = nn.Conv2d(512, 256, 8)
            self.fc2 = nn.Conv2d(256, 2, 1)
        else:
            self.out = nn.Conv2d(512, 2, 8)
        self.use_output_bias = True
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier (uniform) weights and zero biases, as the paper (Caffe ``xavier`` filler)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    # -- the trunk --------------------------------------------------------------------------
    def branch(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) grey -> (B, 256, ceil(H/2), ceil(W/2)) features."""
        x = F.relu(self.conv1(x), inplace=True)
        x = F.relu(self.conv2(x), inplace=True)
        x = F.max_pool2d(x, 2, 2, ceil_mode=True)  # odd sizes: the last row/col pools alone
        return F.relu(self.conv3(x), inplace=True)

    def _head_layers(self) -> list[nn.Conv2d]:
        return [self.fc1, self.fc2] if self.variant == "original" else [self.out]

    def head_dense(self, fa: torch.Tensor, fb: torch.Tensor) -> torch.Tensor:
        """Features (B, 256, h, w) of A and B -> logits (B, 2, h-7, w-7) (fc layers as convs)."""
        x = torch.cat([fa, fb], dim=1)
        layers = self._head_layers()
        for k, layer in enumerate(layers):
            last = k == len(layers) - 1
            bias = layer.bias if (not last or self.use_output_bias) else None
            x = valid_conv(x, layer.weight, bias)
            if not last:
                x = F.relu(x)
        return x

    def head_halves(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The first head layer split by branch: (W_A * f, W_B * f) for features f (B, 256, h, w).

        ``head_from_halves(U_i, V_k)`` equals ``head_dense(f_i, f_k)``; with N frames the expensive
        8x8 layer then costs 2N half-convolutions instead of N(N-1) full ones (the N-way mode)."""
        first = self._head_layers()[0]
        return valid_conv(f, first.weight[:, :256]), valid_conv(f, first.weight[:, 256:])

    def head_from_halves(self, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Finish the head from the halves of A (``u``) and B (``v``) -> logits (B, 2, h-7, w-7)."""
        layers = self._head_layers()
        x = u + v
        if len(layers) > 1 or self.use_output_bias:
            x = x + layers[0].bias[None, :, None, None]
        for layer in layers[1:]:
            x = F.relu(x)
            bias = layer.bias if (layer is not layers[-1] or self.use_output_bias) else None
            x = valid_conv(x, layer.weight, bias)
        return x

    def symmetric_focus(self, fa: torch.Tensor, fb: torch.Tensor) -> torch.Tensor:
        """Order-independent focus probability of A from features (B, 256, h, w) of A and B:
        ``(p(A, B) + 1 - p(B, A)) / 2`` -> (B, h-7, w-7). Swapping ``fa`` and ``fb`` gives 1 - the result.

        Both orders share the per-image work. Slight: the output layer is linear, so only the
        logit difference z1 - z0 = a * f_A + b * f_B + c is needed; one 2-output 8x8 convolution of
        each image gives a * f and b * f, so both orders together cost what one order costs with
        the 2-logit layer. Original: the ReLU after fc1 prevents sharing, so both orders run
        :meth:`head_dense` (as one batch): two fc1 passes, the most expensive layer. (Splitting fc1
        by branch, :meth:`head_halves`, has the same FLOPs and measured no faster.)"""
        n = fa.shape[0]
        x = torch.cat([fa, fb], dim=0)
        if self.variant == "slight":
            w = self.out.weight[1] - self.out.weight[0]  # (512, 8, 8): logit difference
            g = valid_conv(x, torch.stack([w[:256], w[256:]]))  # (2B, 2, h', w'): a * f, b * f
            c = (self.out.bias[1] - self.out.bias[0]) if self.use_output_bias else 0.0
            d_ab = g[:n, 0] + g[n:, 1] + c
            d_ba = g[n:, 0] + g[:n, 1] + c
            p_ab, p_ba = torch.sigmoid(d_ab), torch.sigmoid(d_ba)
        else:
            p = logits_to_focus(self.head_dense(x, torch.cat([fb, fa], dim=0)))
            p_ab, p_ba = p[:n], p[n:]
        # 0.5 + (p_ab - p_ba) / 2: swapping A and B negates the bracket exactly
        return 0.5 + 0.5 * (p_ab - p_ba)

    def head_patch(self, fa: torch.Tensor, fb: torch.Tensor) -> torch.Tensor:
        """Features (B, 256, 8, 8) of A and B -> logits (B, 2) (fc layers as matrix products)."""
        x = torch.cat([fa, fb], dim=1).flatten(1)
        layers = self._head_layers()
        for k, layer in enumerate(layers):
            last = k == len(layers) - 1
            bias = layer.bias if (not last or self.use_output_bias) else None
            x = F.linear(x, layer.weight.flatten(1), bias)
            if not last:
                x = F.relu(x)
        return x

    # -- the two modes ------------------------------------------------------------------------
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Patch mode: (B, 1, 16, 16) pairs -> logits (B, 2); class 1 = A in focus."""
        if a.shape != b.shape or a.ndim != 4 or a.shape[1:] != (1, PATCH, PATCH):
            raise InputError(f"LiuCNN patch mode expects two (B, 1, 16, 16) tensors, got {tuple(a.shape)} and {tuple(b.shape)}")
        f = self.branch(torch.cat([a, b], dim=0))  # one trunk pass for both branches (shared weights)
        return self.head_patch(f[: a.shape[0]], f[a.shape[0]:])

    def dense_logits(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Dense mode: (B, 1, H, W) images, H, W >= 16 -> logits (B, 2, ceil(H/2)-7, ceil(W/2)-7)."""
        if a.shape != b.shape or a.ndim != 4 or a.shape[1] != 1 or min(a.shape[2:]) < PATCH:
            raise InputError(f"LiuCNN dense mode expects two (B, 1, H>=16, W>=16) tensors, got {tuple(a.shape)} and {tuple(b.shape)}")
        f = self.branch(torch.cat([a, b], dim=0))
        return self.head_dense(f[: a.shape[0]], f[a.shape[0]:])

    def dense_focus(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Dense focus probability of A, (B, h, w), with a stable softmax."""
        return logits_to_focus(self.dense_logits(a, b))


def valid_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """"Valid" convolution (no padding), fast for few output channels.

    With few outputs (the slight head: 2 x 512 x 8 x 8) a direct convolution runs at a few percent
    of the machine's matrix-multiply speed. Here it is one 1x1 convolution (a large GEMM) to
    ``cout * k * k`` channels followed by ``k * k`` shifted additions; the FLOP count is the same.
    Larger outputs (fc1: 256 channels) use the direct convolution, which is efficient there."""
    cout, cin, kh, kw = weight.shape
    if cout * kh * kw > 512 or kh * kw == 1:
        return F.conv2d(x, weight, bias)
    b, _, height, width = x.shape
    ho, wo = height - kh + 1, width - kw + 1
    g = F.conv2d(x, weight.permute(0, 2, 3, 1).reshape(cout * kh * kw, cin, 1, 1))
    g = g.view(b, cout, kh, kw, height, width)
    out = g[:, :, 0, 0, :ho, :wo].clone()
    for r in range(kh):
        for c in range(kw):
            if r or c:
                out += g[:, :, r, c, r: r + ho, c: c + wo]
    if bias is not None:
        out += bias[None, :, None, None]
    return out


def logits_to_focus(logits: torch.Tensor) -> torch.Tensor:
    """(B, 2, ...) logits -> (B, ...) p(class 1) = sigmoid(z1 - z0): a softmax that cannot overflow."""
    return torch.sigmoid(logits[:, 1] - logits[:, 0])


def score_map_size(height: int, width: int) -> tuple[int, int]:
    """Size of the dense score map for an H x W image: (ceil(H/2) - 7, ceil(W/2) - 7) (paper Sec. 3.2)."""
    return math.ceil(height / 2) - 7, math.ceil(width / 2) - 7


def flops_per_pair(variant: str, height: int, width: int) -> dict[str, int]:
    """Multiply-add FLOPs (2 per MAC) of a dense pass over one H x W pair, per layer and in total.

    Counts the convolutions only (ReLU, pooling and the softmax are negligible)."""
    check_variant(variant)
    hp, wp = math.ceil(height / 2), math.ceil(width / 2)
    hs, ws = score_map_size(height, width)
    flops = {
        "conv1": 2 * 2 * height * width * 64 * 1 * 9,
        "conv2": 2 * 2 * height * width * 128 * 64 * 9,
        "conv3": 2 * 2 * hp * wp * 256 * 128 * 9,
    }
    if variant == "original":
        flops["fc1"] = 2 * hs * ws * 256 * 512 * 64
        flops["fc2"] = 2 * hs * ws * 2 * 256
    else:
        flops["out"] = 2 * hs * ws * 2 * 512 * 64
    flops["total"] = sum(flops.values())
    return flops


# ---------------------------------------------------------------------------------------------
# weights


@dataclass(frozen=True)
class LiuWeightsInfo:
    """Metadata of a weights file, kept apart from the architecture."""

    variant: str
    source: str  # "mat" (authors) or "pt" (ours)
    path: str | None = None
    meta: dict | None = None


_MAT_SLIGHT = {  # key -> (module attribute, kernel size, in channels, out channels)
    "weights_b1_1": ("conv1", 3, 1, 64),
    "weights_b1_2": ("conv2", 3, 64, 128),
    "weights_b1_3": ("conv3", 3, 128, 256),
    "weights_output": ("out", 8, 512, 2),
}
_MAT_BIASES = {"biases_b1_1": "conv1", "biases_b1_2": "conv2", "biases_b1_3": "conv3", "biases_output": "out"}


def _mat_kernel(array: np.ndarray, key: str, k: int, cin: int, cout: int) -> torch.Tensor:
    """MATLAB (cin, k*k, cout) column-major kernel -> torch (cout, cin, k, k).

    ``torch weight[o, i, r, c] = w[i, r + k*c, o]``; MATLAB drops a leading singleton, so conv1 is (9, 64)."""
    arr = np.asarray(array)
    if arr.ndim == 2 and cin == 1:
        arr = arr[None]
    if arr.shape != (cin, k * k, cout):
        raise WeightsError(f"'{key}' has shape {np.asarray(array).shape}, expected ({cin}, {k * k}, {cout})"
                           + (" (or (9, 64))" if cin == 1 else ""))
    arr = arr.astype(np.float32).reshape(cin, k, k, cout)  # [i, c, r, o] (index r + k*c)
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(3, 0, 2, 1)))


def load_mat_weights(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], LiuWeightsInfo]:
    """Read the authors' MATLAB model (``cnnmodel.mat``, the slight network) into a state dict.

    Raises:
        WeightsError: not a MATLAB file, missing keys, or wrong shapes (the message names them).
    """
    from scipy.io import loadmat

    path = Path(path)
    try:
        mat = loadmat(str(path))
    except Exception as exc:  # scipy raises several types for a bad file
        raise WeightsError(f"{path}: not a readable MATLAB .mat file ({exc.__class__.__name__}: {exc})") from None
    keys = sorted(k for k in mat if not k.startswith("__"))
    missing = [k for k in list(_MAT_SLIGHT) + list(_MAT_BIASES) if k not in mat]
    if missing:
        hint = ""
        if any(k.startswith("weights_fc") or "fc1" in k for k in keys):
            hint = " (a two-fc-layer MATLAB model is not supported: only the released slight model's layout is known)"
        raise WeightsError(f"{path}: not a Liu et al. CNN model: missing {', '.join(missing)}; "
                           f"found {', '.join(keys) or 'no variables'}{hint}")
    state: dict[str, torch.Tensor] = {}
    for key, (name, k, cin, cout) in _MAT_SLIGHT.items():
        state[f"{name}.weight"] = _mat_kernel(mat[key], f"{path.name}:{key}", k, cin, cout)
    for key, name in _MAT_BIASES.items():
        bias = np.asarray(mat[key], dtype=np.float32).reshape(-1)
        expected = state[f"{name}.weight"].shape[0]
        if bias.shape != (expected,):
            raise WeightsError(f"{path.name}:{key} has {bias.size} values, expected {expected}")
        state[f"{name}.bias"] = torch.from_numpy(bias.copy())
    return state, LiuWeightsInfo("slight", "mat", str(path))


def _expected_shapes(variant: str) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in LiuCNN(variant).state_dict().items()}


def _dequantize(state: dict) -> dict[str, torch.Tensor]:
    """Undo the int8 storage of :func:`save_liu_weights` (``<name>.int8`` + ``<name>.scale``)."""
    out = {}
    for key, value in state.items():
        if key.endswith(".int8"):
            base = key[: -len(".int8")]
            scale = state.get(base + ".scale")
            if scale is None:
                raise WeightsError(f"quantised tensor '{base}' has no '.scale'")
            shape = [value.shape[0]] + [1] * (value.ndim - 1)
            out[base] = value.float() * scale.float().reshape(shape)
        elif key.endswith(".scale"):
            continue
        else:
            out[key] = value.float() if torch.is_tensor(value) else value
    return out


def load_pt_weights(path: str | os.PathLike, variant: str | None = None) -> tuple[dict[str, torch.Tensor], LiuWeightsInfo]:
    """Read one of our weights files (safetensors, :func:`mfif.models.weights.read_weights`; or a
    training checkpoint) into a float32 state dict."""
    path = Path(path)
    obj = read_weights(path, "Liu CNN weights (safetensors, a torch .pt file or the authors' MATLAB .mat)").as_legacy_dict()
    if not isinstance(obj, dict):
        raise WeightsError(f"{path}: expected a dict of tensors, got {type(obj).__name__}")
    meta = {}
    file_variant = None
    if "state_dict" in obj or "model" in obj:  # our format / a training checkpoint
        meta = obj.get("meta", {}) or {}
        file_variant = obj.get("variant") or (obj.get("config", {}) or {}).get("variant")
        state = obj.get("state_dict", obj.get("model"))
    else:
        state = obj
    if not isinstance(state, dict):
        raise WeightsError(f"{path}: the state dict is a {type(state).__name__}, not a dict of tensors")
    state = _dequantize(state)
    if file_variant is None:
        file_variant = "original" if "fc1.weight" in state else "slight" if "out.weight" in state else None
    if file_variant not in VARIANTS:
        raise WeightsError(f"{path}: not a Liu et al. CNN state dict (keys: {', '.join(sorted(state)[:6])}...)")
    if variant is not None and file_variant != variant:
        other = "cnn" if file_variant == "original" else "cnn-slight"
        raise WeightsError(f"{path}: holds the {file_variant} Liu CNN, not the {variant} one (use --method {other})")
    return state, LiuWeightsInfo(file_variant, "pt", str(path), meta)


def check_state_dict(state: dict, variant: str, source: str = "weights") -> None:
    """Raise :class:`WeightsError` unless ``state`` has exactly the keys and shapes of ``variant``."""
    check_weights(state, _expected_shapes(variant), source=source, network=f"the {variant} Liu CNN")


def default_weights_path(variant: str) -> Path:
    """The shipped weights of ``variant`` (trained by :mod:`mfif.models.liu_cnn.trainer`)."""
    return WEIGHTS_DIR / f"liu_cnn_{check_variant(variant)}{SUFFIX}"


def build_liu_cnn(variant: str = "slight", weights: str | os.PathLike | dict | None = None, *,
                  pretrained: bool = False) -> LiuCNN:
    """Build the network, optionally with weights.

    Args:
        variant: ``"original"`` or ``"slight"``.
        weights: a ``.mat`` file of the authors (slight only; the output bias is then not applied,
            as in their pipeline), one of our ``.safetensors`` files / training checkpoints, or a state dict.
        pretrained: load the shipped weights of ``variant`` (ignored when ``weights`` is given).

    Raises:
        WeightsError: the file is missing, unreadable, or holds another network / variant / shapes.
    """
    net = LiuCNN(variant)
    if weights is None and pretrained:
        weights = shipped_weights_file(default_weights_path(variant), what=f"weights for the {variant} Liu CNN",
                                       train_command=f"mfif train {'cnn' if variant == 'original' else 'cnn-slight'}")
    if weights is None:
        return net
    if isinstance(weights, dict):
        state, info = _dequantize(weights), LiuWeightsInfo(variant, "dict")
    else:
        path = Path(weights)
        if not path.is_file():
            raise WeightsError(f"{path}: weights file not found")
        with open(path, "rb") as fh:
            head = fh.read(128)
        if head.startswith(b"MATLAB") or path.suffix.lower() == ".mat":
            if variant != "slight":
                raise WeightsError(f"{path}: the authors' .mat model is the slight network (no fc1); "
                                   f"use --method cnn-slight with it")
            state, info = load_mat_weights(path)
        else:
            state, info = load_pt_weights(path, variant)
    check_state_dict(state, variant, str(info.path or "state dict"))
    net.load_state_dict(state)
    net.use_output_bias = info.source != "mat"
    net.weights_info = info
    return net


def save_liu_weights(net: LiuCNN, path: str | os.PathLike, meta: dict | None = None, *,
                     quantize_above: int = 1_000_000) -> Path:
    """Save ``net`` for shipping: fp16 tensors; tensors with more than ``quantize_above`` elements
    (the original network's fc1, 8.4M weights) as int8 with one fp16 scale per output channel, so
    both files stay under 10 MB. A safetensors file (:func:`mfif.models.weights.write_weights`)."""
    state = {}
    for key, value in net.state_dict().items():
        value = value.detach().float().cpu()
        if value.numel() > quantize_above:
            flat = value.reshape(value.shape[0], -1)
            scale = flat.abs().amax(dim=1).clamp_min(1e-12) / 127.0
            q = torch.round(flat / scale[:, None]).clamp(-127, 127).to(torch.int8)
            state[key + ".int8"] = q.reshape(value.shape)
            state[key + ".scale"] = scale.half()
        else:
            state[key] = value.half()
    meta = dict(meta or {})
    return write_weights(path, state, format=WEIGHTS_FORMAT, arch={"variant": net.variant}, meta=meta,
                         training_command=meta.pop("training_command", ""), data_digest=meta.pop("data_digest", ""))
