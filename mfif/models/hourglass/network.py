"""The multiple-source hourglass networks HF-Seg and HF-Reg of Guerrero Peña, Marrero Fernández,
Ren, Vasconcelos, Cunha, "A Multiple Source Hourglass Deep Network for Multi-Focus Image Fusion",
arXiv:1908.10945 (2019), Sec. IV-B and Fig. 4.

Both are one U-Net that sees the two RGB sources stacked as a 6-channel input (a "multiple
source" network, not a siamese one). No code was released; the choices below are ours (see
``shared/SPEC.md``, "Hourglass"):

- **Depth / width.** ``depth`` 2x2 max-poolings (default 4) and ``base`` filters at full
  resolution, doubling per level (default 16 -> 256; the group's own U-Net uses 64 -> 1024, far
  too slow to train on two CPU cores). Each level is two 3x3 conv + BatchNorm + ReLU; the decoder
  upsamples bilinearly (x2), concatenates the skip connection and applies the same double conv.
  Xavier-normal init (paper Sec. V), zero biases.
- **Padding.** The paper's U-Net uses valid convolutions. We use "same" convolutions (zero padding
  1) so the output has the input's size, and reflect-pad the input to a multiple of
  ``2 ** depth`` (bottom/right, at least :data:`MIN_SIDE` // 2 ** depth cells) before the net,
  cropping the output back: any H x W >= 1 x 1 works and the output is aligned with the input.
- **Heads.** ``out_channels = 2`` (HF-Seg): logits of a 2-way softmax, z0 = weight of source A,
  z1 = weight of B; ``out_channels = 3`` (HF-Reg): the regressed RGB image, no output activation
  (the loss's range terms keep it in [0, 1]; the pipeline clips). ``residual=True`` (HF-Reg, not in
  the paper) adds the mean of the two sources to the output: the net then regresses a correction
  to the average, which a short CPU training reaches far sooner than the image itself.

Example:
    >>> import torch
    >>> net = build_hourglass("seg").eval()
    >>> net(torch.rand(1, 6, 37, 50)).shape
    torch.Size([1, 2, 37, 50])
    >>> build_hourglass("reg")(torch.rand(2, 6, 16, 16)).shape
    torch.Size([2, 3, 16, 16])
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from mfif.errors import InputError, WeightsError
from mfif.models.weights import SUFFIX, WEIGHTS_DIR, read_weights, write_weights
from mfif.models.weights import check_state_dict as check_weights

VARIANTS = ("seg", "reg")
OUT_CHANNELS = {"seg": 2, "reg": 3}
WEIGHTS_FORMAT = "mfif-hourglass/1"
MIN_SIDE = 32  # the padded input is at least this big (2 pixels per side at the bottleneck, depth 4)


def check_variant(variant: str) -> str:
    """Return ``variant`` if it is ``"seg"`` or ``"reg"``; anything else is an error."""
    if variant not in VARIANTS:
        raise InputError(f"unknown hourglass variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    return variant


@dataclass(frozen=True)
class HourglassConfig:
    """Architecture of one hourglass network (stored in its weights file).

    Attributes:
        variant: ``"seg"`` (HF-Seg, 2 output logits) or ``"reg"`` (HF-Reg, 3 output channels).
        base: filters at full resolution; level k has ``base * 2 ** k``.
        depth: number of 2x2 max-poolings.
        in_channels: 6 = two RGB sources.
        residual: HF-Reg only: add the mean of the two sources to the output (a global skip, so
            the net regresses a correction to the average). Not in the paper (which regresses the
            image directly, ``False``); an option for short CPU training budgets.
    """

    variant: str = "seg"
    base: int = 16
    depth: int = 4
    in_channels: int = 6
    residual: bool = False

    @property
    def out_channels(self) -> int:
        return OUT_CHANNELS[check_variant(self.variant)]

    def check(self) -> "HourglassConfig":
        check_variant(self.variant)
        if not (1 <= self.depth <= 6) or self.base < 1 or self.in_channels < 1:
            raise InputError(f"invalid hourglass config: base={self.base}, depth={self.depth}, in={self.in_channels}")
        if self.residual and (self.variant != "reg" or self.in_channels != 6):
            raise InputError("the residual (source-mean) skip exists only for HF-Reg with two RGB sources")
        return self


def _double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )


def pad_to_multiple(x: torch.Tensor, multiple: int, min_side: int = 0) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad (B, C, H, W) at the bottom/right to a multiple of ``multiple`` (and at least
    ``min_side``); returns the padded tensor and the original (H, W). Pads larger than the image
    (reflection needs pad < size) are done in several reflections, then replicated if needed."""
    h, w = x.shape[-2:]
    th = max(-(-h // multiple) * multiple, -(-min_side // multiple) * multiple)
    tw = max(-(-w // multiple) * multiple, -(-min_side // multiple) * multiple)
    while x.shape[-2] < th or x.shape[-1] < tw:
        ph, pw = th - x.shape[-2], tw - x.shape[-1]
        ch, cw = x.shape[-2], x.shape[-1]
        step_h, step_w = min(ph, ch - 1), min(pw, cw - 1)
        if step_h <= 0 and step_w <= 0:  # a 1-pixel side cannot be reflected: replicate
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
            break
        x = F.pad(x, (0, max(step_w, 0), 0, max(step_h, 0)), mode="reflect")
    return x, (h, w)


class HourglassNet(nn.Module):
    """U-Net over a 6-channel source pair: (B, 6, H, W) -> (B, out, H, W), any H, W.

    Args:
        config: :class:`HourglassConfig`.
    """

    def __init__(self, config: HourglassConfig | None = None):
        super().__init__()
        self.config = (config or HourglassConfig()).check()
        c, d = self.config.base, self.config.depth
        widths = [c * 2 ** k for k in range(d + 1)]
        self.enc = nn.ModuleList([_double_conv(self.config.in_channels, widths[0])]
                                 + [_double_conv(widths[k - 1], widths[k]) for k in range(1, d + 1)])
        self.dec = nn.ModuleList([_double_conv(widths[k + 1] + widths[k], widths[k]) for k in reversed(range(d))])
        self.head = nn.Conv2d(widths[0], self.config.out_channels, 1)
        self.reset_parameters()

    @property
    def variant(self) -> str:
        return self.config.variant

    def reset_parameters(self) -> None:
        """Xavier-normal conv weights (paper Sec. V), zero biases, unit BatchNorm; the residual
        HF-Reg's head starts at zero (its output starts at the average of the sources)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_normal_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if self.config.residual:  # a fresh residual HF-Reg returns the sources' average exactly
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.config.in_channels:
            raise InputError(f"hourglass net expects (B, {self.config.in_channels}, H, W), got {tuple(x.shape)}")
        inputs = x
        x, (h, w) = pad_to_multiple(x, 2 ** self.config.depth, MIN_SIDE)
        skips = []
        for k, block in enumerate(self.enc):
            if k > 0:
                x = F.max_pool2d(x, 2)
            x = block(x)
            skips.append(x)
        skips.pop()
        for block in self.dec:
            skip = skips.pop()
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        out = self.head(x)[..., :h, :w]
        if self.config.residual:
            out = out + 0.5 * (inputs[:, :3] + inputs[:, 3:])
        return out

    def pair(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Sources (B, 3, H, W) each -> output (B, out, H, W); A is the first three channels."""
        if a.shape != b.shape:
            raise InputError(f"the two sources differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
        return self(torch.cat([a, b], dim=1))


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


# ---------------------------------------------------------------------------------------------
# weights


@dataclass
class HourglassWeightsInfo:
    """Metadata of a weights file, kept apart from the architecture."""

    path: str | None
    config: HourglassConfig
    meta: dict = field(default_factory=dict)


def default_weights_path(variant: str) -> Path:
    """The shipped weights of ``variant`` (trained by :mod:`mfif.models.hourglass.trainer`)."""
    return WEIGHTS_DIR / f"hf_{check_variant(variant)}{SUFFIX}"


def save_hourglass_weights(net: HourglassNet, path: str | os.PathLike, meta: dict | None = None, *,
                           half: bool = True) -> Path:
    """Save ``net`` for shipping: a safetensors file (fp16 tensors; ``config`` and ``meta`` in the
    header, :func:`mfif.models.weights.write_weights`), atomic."""
    state = {k: (v.detach().cpu().half() if half and v.is_floating_point() else v.detach().cpu())
             for k, v in net.state_dict().items()}
    meta = json.loads(json.dumps(dict(meta or {}), default=str))  # plain JSON types only
    return write_weights(path, state, format=WEIGHTS_FORMAT, arch={"config": asdict(net.config)}, meta=meta,
                         training_command=meta.pop("training_command", ""), data_digest=meta.pop("data_digest", ""))


def read_hourglass_weights(path: str | os.PathLike) -> tuple[dict, HourglassWeightsInfo]:
    """Read one of our weights files or a training checkpoint (``model`` + ``config`` keys).

    Raises:
        WeightsError: missing/unreadable file, not an hourglass file, bad config.
    """
    path = Path(path)
    obj = read_weights(path, "hourglass (HF-Seg/HF-Reg) weights (safetensors or a torch .pt dict)").as_legacy_dict()
    state = obj.get("state_dict", obj.get("model"))
    cfg = obj.get("config") or obj.get("net_config")
    if isinstance(cfg, dict) and "net" in cfg and isinstance(cfg["net"], dict):  # training checkpoint
        cfg = cfg["net"]
    if not isinstance(state, dict) or not isinstance(cfg, dict) or "variant" not in cfg:
        raise WeightsError(f"{path}: not an hourglass (HF-Seg/HF-Reg) weights file "
                           f"(format {obj.get('format', 'unknown')!r}, keys {', '.join(sorted(map(str, obj))[:6])})")
    try:
        config = HourglassConfig(**{k: cfg[k] for k in ("variant", "base", "depth", "in_channels", "residual")
                                    if k in cfg}).check()
    except (TypeError, InputError) as exc:
        raise WeightsError(f"{path}: bad hourglass config {cfg}: {exc}") from None
    return state, HourglassWeightsInfo(str(path), config, dict(obj.get("meta") or {}))


def check_state_dict(net: HourglassNet, state: dict, source: str = "weights") -> None:
    """Raise :class:`WeightsError` unless ``state`` has exactly ``net``'s keys and shapes, finite."""
    expected = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    check_weights(state, expected, source=source, network=f"the hourglass net {net.config}")


def build_hourglass(variant: str = "seg", weights: str | os.PathLike | dict | None = None, *,
                    pretrained: bool = False, config: HourglassConfig | None = None) -> HourglassNet:
    """Build HF-Seg (``"seg"``) or HF-Reg (``"reg"``), optionally with weights.

    Args:
        variant: ``"seg"`` or ``"reg"``.
        weights: one of our ``.safetensors`` files / a training checkpoint (its stored config is used) or a
            state dict (for ``config``).
        pretrained: load the shipped weights of ``variant`` (ignored when ``weights`` is given).
        config: architecture when no file is given (default :class:`HourglassConfig`).

    Raises:
        WeightsError: the file is missing, unreadable, holds the other variant or wrong shapes.
    """
    check_variant(variant)
    if weights is None and pretrained:
        from mfif.models.weights import shipped_weights_file

        weights = shipped_weights_file(default_weights_path(variant), what=f"weights for hf-{variant}",
                                       train_command=f"mfif train hf-{variant}")
    if weights is None:
        return HourglassNet(config or HourglassConfig(variant=variant))
    if isinstance(weights, dict):
        net = HourglassNet(config or HourglassConfig(variant=variant))
        state, source = weights, "state dict"
    else:
        state, info = read_hourglass_weights(weights)
        if info.config.variant != variant:
            raise WeightsError(f"{weights}: holds hf-{info.config.variant} weights, not hf-{variant} "
                               f"(use --method hf-{info.config.variant})")
        net = HourglassNet(info.config)
        net.weights_info = info
        source = str(weights)
    if net.config.variant != variant:
        raise WeightsError(f"config variant {net.config.variant!r} does not match {variant!r}")
    check_state_dict(net, state, source)
    net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    return net


__all__ = [
    "VARIANTS", "HourglassConfig", "HourglassNet", "HourglassWeightsInfo", "build_hourglass", "check_state_dict",
    "count_parameters", "default_weights_path", "pad_to_multiple", "read_hourglass_weights", "save_hourglass_weights",
]
