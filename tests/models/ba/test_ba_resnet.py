"""BA network (:mod:`mfif.models.ba.network`): dense == patchwise, pixel convention, every config
forwards and backwards without NaN, weights files round-trip and bad ones are refused.

The reference for the dense pass is the definition itself: the patch network applied to every
64x64 window (``Tensor.unfold``), in float64 so the comparison is tight."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mfif.errors import InputError, WeightsError
from mfif.models.weights import read_weights
from mfif.models.ba.network import (CENTRE, CONFIGS, PATCH, BAConfig, BAResNet, batch_to_space, build_ba_resnet,
                                 final_size, load_ba_weights, pad_for_pixels, save_ba_weights, space_to_batch)


def _random_net(config: BAConfig, seed: int = 0) -> BAResNet:
    """A net with non-trivial batch-norm statistics and biases (eval mode)."""
    torch.manual_seed(seed)
    net = BAResNet(config)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
        net.classifier.bias.uniform_(-0.1, 0.1)
        net.mean.copy_(torch.tensor([0.43, 0.45]))
    return net.eval()


def _patchwise(net: BAResNet, x: torch.Tensor) -> torch.Tensor:
    """The definition: the patch network on every 64x64 window, (B, 2, H-63, W-63)."""
    b, _, h, w = x.shape
    win = x.unfold(2, PATCH, 1).unfold(3, PATCH, 1)  # (B, 2, h, w, 64, 64)
    oh, ow = win.shape[2:4]
    patches = win.permute(0, 2, 3, 1, 4, 5).reshape(-1, 2, PATCH, PATCH)
    logits = torch.cat([net(patches[s:s + 512]) for s in range(0, len(patches), 512)])
    return logits.reshape(b, oh, ow, 2).permute(0, 3, 1, 2)


@pytest.mark.parametrize("name", ["resnet20-narrow", pytest.param("resnet38", marks=pytest.mark.slow)])
def test_dense_equals_patchwise(name):
    net = _random_net(CONFIGS[name]).double()
    x = torch.rand(1, 2, 74, 69, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        dense = net.dense_logits(x)
        ref = _patchwise(net, x)
    assert dense.shape == (1, 2, 11, 6)
    torch.testing.assert_close(dense, ref, rtol=0, atol=1e-10)


def test_dense_odd_and_even_sizes():
    net = _random_net(CONFIGS["resnet20-narrow"]).double()
    with torch.no_grad():
        for h, w in ((64, 64), (65, 67)):
            x = torch.rand(1, 2, h, w, dtype=torch.float64)
            torch.testing.assert_close(net.dense_logits(x), _patchwise(net, x), rtol=0, atol=1e-10)


def test_space_to_batch_roundtrip():
    x = torch.rand(3, 5, 8, 6)
    torch.testing.assert_close(batch_to_space(space_to_batch(x)), x)
    y = space_to_batch(x)
    torch.testing.assert_close(y[1 * 3 + 2], x[2, :, 0::2, 1::2])  # phase (0, 1), image 2


def test_pixel_convention():
    """Pixel (y, x) is scored on the reflection-padded window whose index-32 pixel is (y, x)."""
    net = _random_net(CONFIGS["resnet20-narrow"])
    rng = np.random.default_rng(0)
    pair = rng.random((2, 40, 50)).astype(np.float32)
    padded = pad_for_pixels(pair)
    assert padded.shape == (1, 2, 40 + 63, 50 + 63)
    torch.testing.assert_close(padded[0, :, CENTRE:CENTRE + 40, CENTRE:CENTRE + 50], torch.from_numpy(pair))
    with torch.no_grad():
        dense = net.dense_logits(padded)
        for y, x in ((0, 0), (17, 31), (39, 49)):
            window = padded[:, :, y:y + PATCH, x:x + PATCH]
            torch.testing.assert_close(dense[:, :, y, x], net(window), atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("name", [n if n == "resnet20-narrow" else pytest.param(n, marks=pytest.mark.slow)
                                  for n in CONFIGS])
def test_forward_backward_no_nan(name):
    torch.manual_seed(0)
    net = BAResNet(CONFIGS[name]).train()
    x = torch.rand(4, 2, 64, 64)
    y = torch.tensor([0, 1, 1, 0])
    loss = torch.nn.functional.cross_entropy(net(x), y)
    loss.backward()
    assert torch.isfinite(loss)
    for p in net.parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all()
    dense = net.dense_logits(torch.rand(2, 2, 70, 66))
    assert dense.shape == (2, 2, 7, 3) and torch.isfinite(dense).all()
    dense.sum().backward()


def test_config_checks():
    assert final_size(2) == 9 and final_size(4) == 2 and final_size(6) == 0
    with pytest.raises(InputError, match="do not fit"):
        BAConfig(blocks=6)
    with pytest.raises(InputError):
        BAResNet().forward(torch.rand(1, 2, 32, 32))
    with pytest.raises(InputError):
        BAResNet().dense_logits(torch.rand(1, 1, 80, 80))


def test_weights_roundtrip_and_errors(tmp_path):
    net = _random_net(CONFIGS["resnet20-narrow"])
    path = save_ba_weights(net, tmp_path / "ba_initial.pt", "initial", meta={"note": "test"})
    assert path.stat().st_size < 10 * 2**20
    loaded = build_ba_resnet(weights=path, role="initial").eval()
    x = torch.rand(2, 2, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), net(x), atol=5e-2, rtol=5e-2)  # fp16 storage
    assert loaded.weights_info.meta == {"note": "test"}
    # the other net's weights
    with pytest.raises(WeightsError, match="boundary net, not the initial"):
        save_ba_weights(net, tmp_path / "b.pt", "boundary")
        build_ba_resnet(weights=tmp_path / "b.pt", role="initial")
    # not a torch file
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="not a readable"):
        load_ba_weights(tmp_path / "junk.pt")
    # another network's state dict
    torch.save({"state_dict": {"conv1.weight": torch.zeros(64, 1, 3, 3)}, "variant": "slight"}, tmp_path / "liu.pt")
    with pytest.raises(WeightsError, match="not a BA weights file"):
        load_ba_weights(tmp_path / "liu.pt")
    # right format, wrong shapes
    obj = read_weights(path).as_legacy_dict()  # rewritten as a legacy torch file of plain data
    obj["state_dict"]["stem.weight"] = torch.zeros(3, 2, 3, 3)
    torch.save(obj, tmp_path / "bad_shape.pt")
    with pytest.raises(WeightsError, match="stem.weight"):
        load_ba_weights(tmp_path / "bad_shape.pt")
    # NaN weights
    obj = read_weights(path).as_legacy_dict()  # rewritten as a legacy torch file of plain data
    obj["state_dict"]["classifier.bias"] = torch.tensor([float("nan"), 0.0])
    torch.save(obj, tmp_path / "nan.pt")
    with pytest.raises(WeightsError, match="NaN"):
        load_ba_weights(tmp_path / "nan.pt")
    with pytest.raises(WeightsError, match="not found"):
        load_ba_weights(tmp_path / "missing.pt")
