"""IFCNN: a general image fusion network (Zhang, Liu, Sun, Yan, Zhao, Zhang, Information Fusion 54
(2020) 99-118), built as the authors released it (``reference/ifcnn/MANIFEST.md``).

Architecture, per input frame ``I_k`` (B, 3, H, W)::

    conv1   replicate-pad 3, 7x7 conv 3->64, no bias, no BN/ReLU       (the paper's fixed CONV1)
    conv2   replicate-pad 1, 3x3 conv 64->64, no bias, BatchNorm, ReLU

then the features of all frames are fused elementwise (``max``, ``mean`` or ``sum``) and::

    conv3   replicate-pad 1, 3x3 conv 64->64, no bias, BatchNorm, ReLU
    conv4   1x1 conv 64->3 with bias

The output is the fused image in the network's input space (no clamp here: callers clamp). The
receptive field is 11x11 (:data:`RECEPTIVE_RADIUS` = 5 pixels each side), which is what tiling
needs as overlap. The state-dict keys are the authors' (``conv2.conv.weight``, ``conv2.bn.*``, ...),
so their ``.pth`` files load directly with :func:`load_ifcnn_weights` (their files have no BN
``num_batches_tracked`` buffers: those are added).

Example:
    >>> import torch
    >>> net = build_ifcnn("max").eval()
    >>> x = torch.rand(1, 2, 3, 32, 32)          # (B, N, 3, H, W): a pair
    >>> net(x).shape
    torch.Size([1, 3, 32, 32])
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from mfif.errors import InputError, WeightsError
from mfif.models.weights import WEIGHTS_DIR, check_state_dict, read_weights

FUSE_RULES = ("max", "mean", "sum")
RECEPTIVE_RADIUS = 5  # 3 (conv1) + 1 (conv2) + 1 (conv3) + 0 (conv4)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def check_fuse_rule(rule: str) -> str:
    """Return ``rule`` if it is one of :data:`FUSE_RULES`; anything else is an error (never a default)."""
    if rule not in FUSE_RULES:
        raise InputError(f"unknown IFCNN fuse rule {rule!r}; choose one of {', '.join(FUSE_RULES)}")
    return rule


class ConvBlock(nn.Module):
    """Replicate-pad 1, 3x3 conv without bias, BatchNorm, ReLU (the released CONV2/CONV3 block)."""

    def __init__(self, channels: int = 64):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=0, bias=False)
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(F.pad(x, (1, 1, 1, 1), mode="replicate"))))


def fuse_features(features: torch.Tensor, rule: str, *, exact_order: bool = False) -> torch.Tensor:
    """Fuse per-frame features elementwise over dim 0.

    Args:
        features: (N, B, C, H, W).
        rule: ``max``, ``mean`` or ``sum``.
        exact_order: for ``mean``/``sum`` with N > 2, sort the values over the frames first, so the
            result is bit-identical for any order of the frames (floating-point addition is not
            associative). N = 2 and ``max`` are order independent anyway.

    Returns:
        (B, C, H, W).
    """
    check_fuse_rule(rule)
    if rule == "max":
        return features.amax(dim=0)
    if exact_order and features.shape[0] > 2:
        features = torch.sort(features, dim=0).values
    total = features.sum(dim=0)
    return total / features.shape[0] if rule == "mean" else total


class IFCNN(nn.Module):
    """The IFCNN network (see the module docstring).

    Args:
        fuse_rule: ``max``, ``mean`` or ``sum`` (an unknown rule raises :class:`InputError`).

    Shapes:
        ``forward(x)``: x (B, N, 3, H, W) -> (B, 3, H, W). N >= 1 frames.
    """

    def __init__(self, fuse_rule: str = "max"):
        super().__init__()
        self.fuse_rule = check_fuse_rule(fuse_rule)
        self.conv1 = nn.Conv2d(3, 64, 7, padding=0, bias=False)
        self.conv2 = ConvBlock(64)
        self.conv3 = ConvBlock(64)
        self.conv4 = nn.Conv2d(64, 3, 1, bias=True)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Per-frame features after conv2: (B, 3, H, W) -> (B, 64, H, W)."""
        return self.conv2(self.conv1(F.pad(x, (3, 3, 3, 3), mode="replicate")))

    def decode(self, fused: torch.Tensor) -> torch.Tensor:
        """Fused features (B, 64, H, W) -> image (B, 3, H, W)."""
        return self.conv4(self.conv3(fused))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5 or x.shape[2] != 3:
            raise InputError(f"IFCNN expects (B, N, 3, H, W) input, got shape {tuple(x.shape)}")
        b, n = x.shape[:2]
        feats = self.encode(x.flatten(0, 1))
        feats = feats.view(b, n, *feats.shape[1:]).transpose(0, 1)
        return self.decode(fuse_features(feats, self.fuse_rule))


def build_ifcnn(fuse_rule: str = "max", weights: str | os.PathLike | dict | None = None) -> IFCNN:
    """Build an :class:`IFCNN`; with ``weights`` (a path or a state dict) load them (checked)."""
    net = IFCNN(fuse_rule)
    if weights is not None:
        load_ifcnn_weights(net, weights)
    return net


def _read_state_dict(weights: str | os.PathLike | dict) -> dict:
    if isinstance(weights, dict):
        return weights
    path = Path(weights)
    obj = read_weights(path, "IFCNN weights (safetensors, or the authors' .pth state dict)").as_legacy_dict()
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]  # ours (safetensors)
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        obj = obj["model"]  # one of our training checkpoints
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{path}: expected a state dict of tensors, found {type(obj).__name__}")
    return obj


def load_ifcnn_weights(net: IFCNN, weights: str | os.PathLike | dict) -> IFCNN:
    """Load an IFCNN state dict (the authors' ``IFCNN-*.pth`` or ours) into ``net``.

    Accepts ``module.``-prefixed keys (DataParallel) and fp16 tensors (ours are stored in fp16);
    missing BatchNorm ``num_batches_tracked`` buffers are filled in. Any other missing, unexpected
    or wrongly shaped tensor raises :class:`WeightsError` naming it.
    """
    name = str(weights) if not isinstance(weights, dict) else "state dict"
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in _read_state_dict(weights).items()}
    own = net.state_dict()
    for key, value in own.items():
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = torch.zeros_like(value)
    check_state_dict(state, {k: tuple(v.shape) for k, v in own.items()}, source=name, network="IFCNN")
    net.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()})
    return net


@dataclass(frozen=True)
class IFCNNWeights:
    """Metadata of one shipped weights file (kept apart from the architecture)."""

    fuse_rule: str
    filename: str
    card: str


#: Shipped weights, trained by ``mfif train ifcnn`` (see the model cards next to the files).
SHIPPED_WEIGHTS: dict[str, IFCNNWeights] = {
    "max": IFCNNWeights("max", "ifcnn-max.safetensors", "ifcnn-max.md"),
    "mean": IFCNNWeights("mean", "ifcnn-mean.safetensors", "ifcnn-mean.md"),
    "sum": IFCNNWeights("sum", "ifcnn-sum.safetensors", "ifcnn-sum.md"),
}



def default_weights_path(fuse_rule: str) -> Path:
    """Path of our shipped weights for ``fuse_rule``; :class:`WeightsError` if none is shipped."""
    check_fuse_rule(fuse_rule)
    meta = SHIPPED_WEIGHTS[fuse_rule]
    from mfif.models.weights import shipped_weights_file

    return shipped_weights_file(WEIGHTS_DIR / meta.filename, what=f"IFCNN weights for fuse rule '{fuse_rule}'",
                                train_command="mfif train ifcnn",
                                alternative="pass weights=<file.pth> (e.g. the authors' IFCNN-MAX.pth)")


def fold_batchnorm(net: IFCNN) -> nn.Module:
    """An inference copy of ``net`` with each BatchNorm folded into the conv before it.

    Same function as ``net.eval()`` up to float rounding (conv weight scaled by gamma/sqrt(var+eps),
    bias beta - gamma*mean/sqrt(var+eps)); one op fewer per block.
    """
    import copy

    folded = copy.deepcopy(net).eval()
    for block in (folded.conv2, folded.conv3):
        bn, conv = block.bn, block.conv
        scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
        new = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, bias=True)
        new.weight.data = conv.weight.detach() * scale[:, None, None, None]
        new.bias.data = bn.bias.detach() - bn.running_mean * scale
        block.conv = new
        block.bn = nn.Identity()
    return folded


class FastIFCNN(nn.Module):
    """Inference form of a trained :class:`IFCNN` with the same results up to float rounding.

    - conv1 (7x7, 3->64) and conv2 (3x3, 64->64) are linear up to conv2's BatchNorm, so they are
      merged into one 9x9 conv 3->64 with the BatchNorm folded in (46k -> 15.5k multiply-adds per
      pixel and frame); the input is replicate-padded by 4. That equals the released
      pad-conv1-pad-conv2 chain everywhere except on the outermost ring of pixels (there the
      released code replicates conv1's *output*), so those four 1-pixel borders are recomputed
      with the released chain on 5-pixel strips.
    - conv3's BatchNorm is folded into its conv.

    Shapes as :class:`IFCNN` (``encode``: (B, 3, H, W) -> (B, 64, H, W); ``decode``).
    """

    def __init__(self, net: IFCNN):
        super().__init__()
        import copy

        self.fuse_rule = net.fuse_rule
        self.reference = fold_batchnorm(net)  # released chain (BN folded) for the borders
        w1 = net.conv1.weight.detach().double()  # (64, 3, 7, 7)
        bn = net.conv2.bn
        scale = (bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)).double()
        w2 = net.conv2.conv.weight.detach().double() * scale[:, None, None, None]  # (64, 64, 3, 3)
        merged = torch.zeros(w2.shape[0], 3, 9, 9, dtype=torch.float64)
        for qy in range(3):
            for qx in range(3):
                merged[:, :, qy:qy + 7, qx:qx + 7] += torch.einsum("ok,kcij->ocij", w2[:, :, qy, qx], w1)
        self.enc = nn.Conv2d(3, w2.shape[0], 9, bias=True)
        self.enc.weight.data = merged.float()
        self.enc.bias.data = (bn.bias.detach().double() - bn.running_mean.double() * scale).float()
        self.conv3 = copy.deepcopy(self.reference.conv3)
        self.conv4 = copy.deepcopy(self.reference.conv4)
        self.eval()

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if h < 9 or w < 9:
            return self.reference.encode(x)
        y = F.relu(self.enc(F.pad(x, (4, 4, 4, 4), mode="replicate")))
        ref = self.reference
        y[..., :1, :] = ref.encode(x[..., :5, :])[..., :1, :]
        y[..., -1:, :] = ref.encode(x[..., -5:, :])[..., -1:, :]
        y[..., :, :1] = ref.encode(x[..., :, :5])[..., :, :1]
        y[..., :, -1:] = ref.encode(x[..., :, -5:])[..., :, -1:]
        return y

    def decode(self, fused: torch.Tensor) -> torch.Tensor:
        return self.conv4(self.conv3(fused))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n = x.shape[:2]
        feats = self.encode(x.flatten(0, 1))
        feats = feats.view(b, n, *feats.shape[1:]).transpose(0, 1)
        return self.decode(fuse_features(feats, self.fuse_rule))

