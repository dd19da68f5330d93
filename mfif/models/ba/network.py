"""The 2-channel pre-activation ResNet of the boundary-aware method (BA): one focus score per pixel.

H. Ma, J. Zhang, S. Liu, Q. Liao, "Boundary aware multi-focus image fusion using deep neural
network", ICME 2019, Sec. 2.1 and 3.2. The two grey sources are stacked as one 2-channel 64x64
patch; the 2-way softmax says whether the patch's CENTRE pixel is in focus in the first channel
(class 1, "A in focus") or in the second (class 0). The same architecture serves as the initial
net and as the boundary refinement net.

Architecture (ResNet v2 for CIFAR, bottleneck blocks, as the authors' partial code; ``n`` blocks
per stage, depth 9n + 2)::

    input (B, 2, 64, 64) grey in [0, 1], minus the stored channel means
    stem      conv 3x3, 2 -> w0                                        (valid)
    stage 1   n bottleneck blocks, mid width w0, out e w0, scale 1
    stage 2   subsample x2, n blocks, mid w1, out e w1, scale 2
    stage 3   subsample x2, n blocks, mid w2, out e w2, scale 4    (expansion e)
    head      BN-ReLU, 1x1 conv -> h, BN-ReLU, conv F x F -> 2         (F = final map size)

    bottleneck (pre-activation): BN-ReLU-conv1x1, BN-ReLU-conv3x3, BN-ReLU-conv1x1, plus the
    shortcut (a 1x1 projection of the pre-activated input in the first block of a stage),
    centre-cropped by one pixel because the 3x3 conv is "valid".

Two deliberate departures from the CIFAR ResNet, both so that a whole image can be scored exactly
and cheaply (see "Dense inference"):

- every convolution is "valid" (no zero padding): a patch's score depends on its 64x64 pixels
  only, never on padding, so the network is exactly translation equivariant;
- the head is a "valid" F x F convolution over the final feature map (a fully connected layer
  that keeps position, which the centre-pixel label needs) instead of global average pooling.
  The downsampling is the ResNet v2 stride-2 1x1 convolution, written as "subsample, then 1x1".

With ``n`` blocks per stage the final map of a 64x64 patch is F = ceil((ceil((62 - 2n) / 2) - 2n)
/ 2) - 2n: n = 2 ("resnet20-narrow", our CPU default, and "resnet20") gives F = 9, n = 4 ("resnet38") F = 2. ResNet-56
(n = 6) does not fit a 64x64 patch with valid convolutions; it is not offered.

Mean subtraction: the authors subtract the per-pixel training mean of the 64x64x2 patches. A
per-position mean is not translation equivariant (and for random patch positions it is flat), so
we subtract one mean per channel, stored in the ``mean`` buffer (set from the training data).

Dense inference (exact): ``dense_logits`` runs the same layers on an image of any size H, W >= 64
and returns the logits of every 64x64 window, (B, 2, H - 63, W - 63), where output (y, x) is the
window with top-left corner (y, x). Nothing is approximated: at each x2 subsampling the dense pass
keeps all four phases of the map, stacked along the batch axis (space-to-batch, the "shift and
stitch" of Long et al. / the a-trous trick), so the layers after it run as ordinary valid
convolutions on each phase, and the phases are interleaved back at the end (batch-to-space). The
cost per output pixel is that of one position of each layer, not of a whole patch: for a 520x520
image ~1/2000 of running the patch network at every pixel. With channels-last weights
(:func:`for_inference`) the inputs and the phase maps are kept channels-last (faster on CPU). ``tests/models/ba/test_ba_resnet.py``
checks dense == patchwise on a small image.

Pixel convention: the score of pixel (y, x) is the window whose rows are y - 32 .. y + 31 (the
centre of an even window is taken as index 32); :func:`pixel_logits` pads the image by reflection
(32 before, 31 after) so every pixel gets a score.

Example:
    >>> import torch
    >>> net = build_ba_resnet().eval()
    >>> net(torch.rand(3, 2, 64, 64)).shape
    torch.Size([3, 2])
    >>> net.dense_logits(torch.rand(1, 2, 70, 66)).shape
    torch.Size([1, 2, 7, 3])
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mfif.errors import InputError, WeightsError
from mfif.models.weights import SUFFIX, WEIGHTS_DIR, read_weights, shipped_weights_file, write_weights
from mfif.models.weights import check_state_dict as check_weights

PATCH = 64  # input window
CENTRE = 32  # index of the labelled pixel inside the window (rows/cols 0..63)
WEIGHTS_FORMAT = "mfif-ba-resnet/1"
ROLES = ("initial", "boundary")


def final_size(blocks: int, patch: int = PATCH) -> int:
    """Side of the last feature map for a ``patch``-sized input (see the module docstring)."""
    size = patch - 2  # stem
    for stage in range(3):
        if stage:
            size = (size + 1) // 2
        size -= 2 * blocks
        if size < 1:
            return 0
    return size


@dataclass(frozen=True)
class BAConfig:
    """Architecture of :class:`BAResNet`.

    Attributes:
        blocks: bottleneck blocks per stage (n; depth 9n + 2). 1..4 fit a 64x64 patch.
        widths: bottleneck (middle) widths of the three stages; outputs are ``expansion`` x these.
        expansion: bottleneck expansion (4 in ResNet v2; 2 in our CPU default, which halves the
            memory traffic of the dense pass).
        head: width of the 1x1 layer before the F x F classifier.
    """

    blocks: int = 2
    widths: tuple[int, int, int] = (8, 16, 32)
    expansion: int = 2
    head: int = 16

    def __post_init__(self):
        if not (isinstance(self.blocks, int) and self.blocks >= 1):
            raise InputError(f"BAConfig.blocks must be an integer >= 1, got {self.blocks!r}")
        if len(self.widths) != 3 or min(self.widths) < 1 or self.expansion < 1 or self.head < 1:
            raise InputError(f"invalid BAConfig widths={self.widths} expansion={self.expansion} head={self.head}")
        if final_size(self.blocks) < 1:
            raise InputError(f"{self.blocks} blocks per stage do not fit a {PATCH}x{PATCH} patch with valid "
                             f"convolutions (at most 4)")

    @property
    def depth(self) -> int:
        return 9 * self.blocks + 2

    def to_dict(self) -> dict:
        d = asdict(self)
        d["widths"] = list(self.widths)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "BAConfig":
        try:
            return cls(blocks=int(d["blocks"]), widths=tuple(int(v) for v in d["widths"]),
                       expansion=int(d["expansion"]), head=int(d["head"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise WeightsError(f"invalid BA network config {d!r} ({exc})") from None


CONFIGS: dict[str, BAConfig] = {
    "resnet20-narrow": BAConfig(2, (8, 16, 32), expansion=2, head=16),  # CPU default (shipped weights)
    "resnet20": BAConfig(2, (16, 32, 64), expansion=4, head=32),
    "resnet38": BAConfig(4, (16, 64, 128), expansion=4, head=64),  # the deepest that fits 64x64 valid
}


# ---------------------------------------------------------------------------------------------
# space-to-batch (keeps every phase of a x2 subsampling)


def space_to_batch(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (4N, C, ceil(H/2), ceil(W/2)); batch index = (2 py + px) N + n holds
    x[n, :, py::2, px::2]. Odd sizes are zero padded at the bottom/right (those values only reach
    outputs that are cropped)."""
    n, c, h, w = x.shape
    channels_last = x.is_contiguous(memory_format=torch.channels_last) and c > 1
    if h % 2 or w % 2:
        x = F.pad(x, (0, w % 2, 0, h % 2))
        h, w = x.shape[-2:]
    x = x.reshape(n, c, h // 2, 2, w // 2, 2).permute(3, 5, 0, 1, 2, 4)
    x = x.reshape(4 * n, c, h // 2, w // 2)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def batch_to_space(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`space_to_batch`: (4N, C, h, w) -> (N, C, 2h, 2w)."""
    n4, c, h, w = x.shape
    n = n4 // 4
    x = x.reshape(2, 2, n, c, h, w).permute(2, 3, 4, 0, 5, 1)
    return x.reshape(n, c, 2 * h, 2 * w)


# ---------------------------------------------------------------------------------------------
# the network


class Bottleneck(nn.Module):
    """Pre-activation bottleneck with a valid 3x3 convolution (output is 2 pixels smaller)."""

    def __init__(self, cin: int, mid: int, cout: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, mid, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, bias=False)
        self.bn3 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, cout, 1, bias=False)
        self.proj = nn.Conv2d(cin, cout, 1, bias=False) if cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn1(x))
        shortcut = self.proj(h) if self.proj is not None else x
        h = self.conv1(h)
        h = self.conv2(F.relu(self.bn2(h)))
        h = self.conv3(F.relu(self.bn3(h)))
        return shortcut[:, :, 1:-1, 1:-1] + h


class BAResNet(nn.Module):
    """2-channel focus classifier of 64x64 windows (see the module docstring).

    Args:
        config: :class:`BAConfig` (default: ResNet-20 v2, narrow).

    Forward modes:
        ``forward(x)``: (B, 2, 64, 64) -> logits (B, 2); class 1 = the first channel is in focus
            at the centre pixel.
        ``dense_logits(x)``: (B, 2, H, W), H, W >= 64 -> (B, 2, H - 63, W - 63), exactly the
            patchwise logits of every window (top-left corner indexing).
    """

    def __init__(self, config: BAConfig | None = None):
        super().__init__()
        self.config = cfg = config or BAConfig()
        self.register_buffer("mean", torch.full((2,), 0.5))
        self.stem = nn.Conv2d(2, cfg.widths[0], 3, bias=False)
        stages = []
        cin = cfg.widths[0]
        for mid in cfg.widths:
            cout = cfg.expansion * mid
            blocks = []
            for _ in range(cfg.blocks):
                blocks.append(Bottleneck(cin, mid, cout))
                cin = cout
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        self.final = final_size(cfg.blocks)
        self.head_bn1 = nn.BatchNorm2d(cin)
        self.head_conv = nn.Conv2d(cin, cfg.head, 1, bias=False)
        self.head_bn2 = nn.BatchNorm2d(cfg.head)
        self.classifier = nn.Conv2d(cfg.head, 2, self.final)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He (fan-in) init for the convolutions, as the Keras CIFAR ResNet; BN weight 1, bias 0."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.classifier.weight, std=0.01)

    def _run(self, x: torch.Tensor, dense: bool) -> torch.Tensor:
        x = x - self.mean.to(x.dtype)[None, :, None, None]
        x = self.stem(x)
        for k, stage in enumerate(self.stages):
            if k:
                x = space_to_batch(x) if dense else x[:, :, ::2, ::2]
            x = stage(x)
        x = self.head_conv(F.relu(self.head_bn1(x)))
        return self.classifier(F.relu(self.head_bn2(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Patch mode: (B, 2, 64, 64) -> logits (B, 2)."""
        if x.ndim != 4 or tuple(x.shape[1:]) != (2, PATCH, PATCH):
            raise InputError(f"BAResNet patch mode expects (B, 2, {PATCH}, {PATCH}), got {tuple(x.shape)}")
        return self._run(x, dense=False).flatten(1)

    def dense_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Dense mode: (B, 2, H, W), H, W >= 64 -> (B, 2, H - 63, W - 63) window logits (exact)."""
        if x.ndim != 4 or x.shape[1] != 2 or min(x.shape[2:]) < PATCH:
            raise InputError(f"BAResNet dense mode expects (B, 2, H>={PATCH}, W>={PATCH}), got {tuple(x.shape)}")
        h, w = x.shape[2] - PATCH + 1, x.shape[3] - PATCH + 1
        if self.stem.weight.is_contiguous(memory_format=torch.channels_last):
            x = x.contiguous(memory_format=torch.channels_last)
        y = self._run(x, dense=True)
        y = batch_to_space(batch_to_space(y))  # undo the two subsamplings (last one first)
        return y[:, :, :h, :w]


def for_inference(net: BAResNet) -> BAResNet:
    """``net`` in eval mode with channels-last weights: the dense pass then runs ~1.4x faster on
    CPU (oneDNN), with the same results up to float rounding."""
    return net.eval().to(memory_format=torch.channels_last)


def logits_to_focus(logits: torch.Tensor) -> torch.Tensor:
    """(B, 2, ...) -> p(first channel in focus) = sigmoid(z1 - z0) (a softmax that cannot overflow)."""
    return torch.sigmoid(logits[:, 1] - logits[:, 0])


def pad_for_pixels(pair: np.ndarray | torch.Tensor) -> torch.Tensor:
    """(2, H, W) or (B, 2, H, W) -> reflection padded by 32 before and 31 after each spatial axis,
    so that :meth:`BAResNet.dense_logits` gives one score per pixel (H, W)."""
    t = torch.as_tensor(np.asarray(pair, dtype=np.float32)) if not torch.is_tensor(pair) else pair.float()
    if t.ndim == 3:
        t = t[None]
    lo, hi = CENTRE, PATCH - 1 - CENTRE
    if min(t.shape[-2:]) <= lo:  # torch's reflect pad needs pad < size: reflect repeatedly via numpy
        arr = np.pad(t.numpy(), ((0, 0), (0, 0), (lo, hi), (lo, hi)), mode="reflect")
        return torch.from_numpy(np.ascontiguousarray(arr))
    return F.pad(t, (lo, hi, lo, hi), mode="reflect")


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def macs_per_pixel(config: BAConfig) -> int:
    """Multiply-accumulates of the dense pass per output pixel (convolutions only)."""
    c = config
    total = 2 * c.widths[0] * 9
    cin = c.widths[0]
    for mid in c.widths:
        cout = c.expansion * mid
        for _ in range(c.blocks):
            total += cin * mid + mid * mid * 9 + mid * cout + (cin * cout if cin != cout else 0)
            cin = cout
    final = final_size(c.blocks)
    return total + cin * c.head + c.head * 2 * final * final


# ---------------------------------------------------------------------------------------------
# weights


@dataclass
class BAWeightsInfo:
    """Metadata of a weights file, kept apart from the architecture."""

    role: str | None
    config: BAConfig
    path: str | None = None
    meta: dict = field(default_factory=dict)


def default_weights_path(role: str) -> Path:
    """The shipped weights of the ``initial`` or ``boundary`` net (made by :mod:`mfif.models.ba.trainer`)."""
    if role not in ROLES:
        raise InputError(f"unknown BA network {role!r}; choose one of {', '.join(ROLES)}")
    return WEIGHTS_DIR / f"ba_{role}{SUFFIX}"


def check_state_dict(state: dict, config: BAConfig, source: str = "weights") -> None:
    """Raise :class:`WeightsError` unless ``state`` has exactly the keys and shapes of ``config``."""
    expected = {k: tuple(v.shape) for k, v in BAResNet(config).state_dict().items()}
    check_weights(state, expected, source=source, network=f"the BA ResNet {config}")


def load_ba_weights(path: str | os.PathLike, role: str | None = None) -> tuple[dict, BAWeightsInfo]:
    """Read one of our weights files (or a training checkpoint) -> (float32 state dict, info).

    Raises:
        WeightsError: missing/unreadable file, another network, or the other BA net's weights
            when ``role`` is given.
    """
    path = Path(path)
    obj = read_weights(path, "BA weights (safetensors, or a torch .pt dict with 'state_dict' and 'config')").as_legacy_dict()
    if not isinstance(obj, dict) or not isinstance(obj.get("state_dict", obj.get("model")), dict):
        raise WeightsError(f"{path}: not a BA weights file (expected a dict with 'state_dict' and 'config')")
    if obj.get("format") not in (WEIGHTS_FORMAT, None) or "config" not in obj:
        raise WeightsError(f"{path}: not a BA weights file (format {obj.get('format')!r})")
    cfg_dict = obj.get("net_config", obj["config"])  # a training checkpoint keeps it in "net_config"
    config = BAConfig.from_dict(cfg_dict) if isinstance(cfg_dict, dict) else None
    if config is None:
        raise WeightsError(f"{path}: the BA weights file has no network config")
    file_role = obj.get("role")
    if role is not None and file_role is not None and file_role != role:
        raise WeightsError(f"{path}: holds the BA {file_role} net, not the {role} net")
    state = {k: (v.float() if torch.is_tensor(v) and v.is_floating_point() else v)
             for k, v in obj.get("state_dict", obj.get("model")).items()}
    check_state_dict(state, config, str(path))
    return state, BAWeightsInfo(file_role, config, str(path), dict(obj.get("meta") or {}))


def build_ba_resnet(config: BAConfig | str | None = None, weights: str | os.PathLike | None = None, *,
                    role: str | None = None, pretrained: bool = False) -> BAResNet:
    """Build the network, optionally with weights.

    Args:
        config: a :class:`BAConfig` or a name in :data:`CONFIGS` (ignored when weights are loaded:
            the file's config is used).
        weights: one of our ``.safetensors`` files or a training checkpoint.
        role: ``"initial"`` or ``"boundary"``: with ``pretrained`` selects the shipped file; with
            ``weights`` checks that the file holds that net.
        pretrained: load the shipped weights of ``role`` (when ``weights`` is None).
    """
    if isinstance(config, str):
        if config not in CONFIGS:
            raise InputError(f"unknown BA network config {config!r}; choose one of {', '.join(CONFIGS)}")
        config = CONFIGS[config]
    if weights is None and pretrained:
        shipped = role or "initial"
        weights = shipped_weights_file(default_weights_path(shipped), what=f"weights for the BA {shipped} net",
                                       train_command=f"mfif train ba --net {shipped}", alternative="pass the weights file")
    if weights is None:
        return BAResNet(config)
    state, info = load_ba_weights(weights, role)
    net = BAResNet(info.config)
    net.load_state_dict(state)
    net.weights_info = info
    return net


def save_ba_weights(net: BAResNet, path: str | os.PathLike, role: str, meta: dict | None = None) -> Path:
    """Save ``net`` for shipping: a safetensors file (fp16 tensors; role, config and ``meta`` in the
    header, :func:`mfif.models.weights.write_weights`)."""
    if role not in ROLES:
        raise InputError(f"unknown BA network {role!r}; choose one of {', '.join(ROLES)}")
    state = {k: (v.detach().cpu().half() if v.is_floating_point() else v.detach().cpu())
             for k, v in net.state_dict().items()}
    meta = dict(meta or {})
    return write_weights(path, state, format=WEIGHTS_FORMAT, arch={"role": role, "config": net.config.to_dict()},
                         meta=meta, training_command=meta.pop("training_command", ""),
                         data_digest=meta.pop("data_digest", ""))
