"""The ``focusnet`` network and a differentiable multiresolution blend in torch (training only;
inference is :mod:`mfif.focusnet.network`, which must equal this, see ``tests/test_focusnet.py``)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mfif.focusnet.features import CELL
from mfif.focusnet.network import BETA_INIT, EXCHANGE_BEFORE, FORMAT, LAYERS


def max_of_others(x: torch.Tensor) -> torch.Tensor:
    """For (N, ...) the maximum over the other N - 1 entries along dim 0 (N = 1: itself)."""
    n = x.shape[0]
    if n == 1:
        return x
    top2 = torch.topk(x, 2, dim=0).values
    return torch.where(x >= top2[:1], top2[1:2], top2[:1])


class FocusNet(nn.Module):
    """(inputs (N, 7, h, w), bases (N, 3, H, W)) -> logits (N, H, W); see :mod:`mfif.focusnet.network`."""

    def __init__(self):
        super().__init__()
        self.beta = nn.Parameter(torch.tensor([BETA_INIT]))
        for name, cin, cout, dilation in LAYERS:
            conv = nn.Conv2d(cin, cout, 3, padding=dilation, dilation=dilation, padding_mode="replicate")
            if name == "head":
                nn.init.zeros_(conv.weight)
                nn.init.zeros_(conv.bias)
            setattr(self, name, conv)

    def correction(self, inputs: torch.Tensor) -> torch.Tensor:
        x = inputs
        for name, *_ in LAYERS:
            if name == EXCHANGE_BEFORE:
                x = torch.cat([x, x - max_of_others(x)], dim=1)
            x = getattr(self, name)(x)
            if name != "head":
                x = F.relu(x)
        return x  # (N, 4, h, w): correction, three scale votes

    def forward(self, inputs: torch.Tensor, bases: torch.Tensor) -> torch.Tensor:
        """inputs (N, 7, h, w), bases (N, 3, H, W) -> logits (N, H, W)."""
        out = self.correction(inputs)  # (N, 4, h, w)
        mix = torch.softmax(out[:, 1:].mean(0, keepdim=True), dim=1)  # (1, 3, h, w)
        hq, wq = out.shape[-2:]
        h, w = bases.shape[-2:]
        up = F.interpolate(torch.cat([out[:, :1], mix.expand(out.shape[0], -1, -1, -1)], 1),
                           size=(hq * CELL, wq * CELL), mode="bilinear", align_corners=False)[..., :h, :w]
        return self.beta * (up[:, 1:] * bases).sum(1) + up[:, 0]

    def export_tensors(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().float().cpu().contiguous() for k, v in self.state_dict().items()}


_K1 = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0


def _blur(x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """5x5 binomial blur of (B, C, H, W), reflect-101 borders (OpenCV's pyramid kernel)."""
    c = x.shape[1]
    k = (_K1[:, None] * _K1[None, :]).to(x) * scale
    k = k.expand(c, 1, 5, 5)
    pad = F.pad(x, (2, 2, 2, 2), mode="reflect")
    return F.conv2d(pad, k, groups=c)


def pyr_down(x: torch.Tensor) -> torch.Tensor:
    return _blur(x)[..., ::2, ::2]


def pyr_up(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    b, c, h, w = x.shape
    up = torch.zeros(b, c, 2 * h, 2 * w, dtype=x.dtype, device=x.device)
    up[..., ::2, ::2] = x
    return _blur(up, 4.0)[..., :size[0], :size[1]]


def pyramid_blend(frames: torch.Tensor, weights: torch.Tensor, levels: int) -> torch.Tensor:
    """Multiresolution spline (Burt & Adelson 1983) as :class:`mfif.stack_rule.PyramidBlend`:
    frames (N, C, H, W), non-negative weights (N, H, W) -> (C, H, W), each level normalised by
    the summed weights (H, W divisible by 2^levels)."""
    g, wts = frames, weights[:, None]
    sums = []
    for _ in range(levels):
        g_down, w_down = pyr_down(g), pyr_down(wts)
        detail = g - pyr_up(g_down, g.shape[-2:])
        sums.append((detail * wts).sum(0) / wts.sum(0).clamp_min(1e-12))
        g, wts = g_down, w_down
    image = (g * wts).sum(0) / wts.sum(0).clamp_min(1e-12)
    for detail in reversed(sums):
        image = pyr_up(image[None], detail.shape[-2:])[0] + detail
    return image


__all__ = ["FocusNet", "pyramid_blend", "FORMAT"]
