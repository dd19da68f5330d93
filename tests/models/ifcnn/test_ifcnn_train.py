"""IFCNN training (:mod:`mfif.models.ifcnn.trainer`): the CONV1 filter bank, the losses, the schedules, and a
tiny run on synthetic pairs (needs ``shared/data/train``) that lowers the loss, exports weights the
fusion method loads, and resumes to the same weights as an uninterrupted run."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mfif.errors import InputError
from mfif.models.weights import read_weights
from mfif.models.ifcnn.network import build_ifcnn
from mfif.models.ifcnn import trainer as T


def test_filter_bank_is_full_rank_and_normalised():
    bank, names = T.filter_bank()
    assert bank.shape == (64, 3, 7, 7) and len(set(names)) == 64
    flat = bank.reshape(64, -1).astype(np.float64)
    assert np.allclose(np.linalg.norm(flat, axis=1), 1.0, atol=1e-5)
    assert np.linalg.matrix_rank(flat, tol=1e-3) == 64


def test_losses():
    torch.manual_seed(0)
    gt = torch.rand(2, 3, 32, 32)
    assert float(T.ssim(gt, gt)) == pytest.approx(1.0, abs=1e-5)
    assert float(T.gradient_l1(gt, gt)) == 0.0
    noisy = (gt + 0.1 * torch.randn_like(gt)).clamp(0, 1)
    blurred = torch.nn.functional.avg_pool2d(gt, 3, 1, 1)
    assert float(T.ssim(noisy, gt)) < 1.0
    for pred in (noisy, blurred):
        total = T.fine_loss(pred, gt, "ssim-grad", 0.2, 0.5)
        assert float(total) > float(T.fine_loss(pred, gt, "mse", 0.2, 0.5)) > 0
    with pytest.raises(InputError, match="fine loss"):
        T.fine_loss(gt, gt, "vgg", 1, 1)


def test_schedules():
    assert T.poly_lr(0.01, 0, 100) == pytest.approx(0.01)
    assert T.poly_lr(0.01, 50, 100) == pytest.approx(0.01 * 0.5 ** 0.9)
    assert T.poly_lr(0.01, 100, 100) == 0.0
    assert T.bn_momentum(0, 10) == pytest.approx(0.99) and T.bn_momentum(10, 10) == 0.0


def test_bad_configs_are_refused(tmp_path):
    with pytest.raises(InputError, match="fuse rule"):
        T.IFCNNTrainConfig(fuse_rule="min", train_root=str(tmp_path)).resolved()
    with pytest.raises(InputError, match="conv1"):
        T.IFCNNTrainConfig(conv1="resnet", train_root=str(tmp_path)).resolved()
    with pytest.raises(InputError, match="crop"):
        T.IFCNNTrainConfig(crop=8, train_root=str(tmp_path)).resolved()


def test_bn_is_frozen_in_phase_two():
    net = T.build_training_net(T.IFCNNTrainConfig(train_root="x"))
    assert not net.conv1.weight.requires_grad
    T._set_phase(net, 2)
    assert not net.conv2.bn.training and not net.conv2.bn.weight.requires_grad
    assert net.conv2.conv.weight.requires_grad
    T._set_phase(net, 1)
    assert net.conv3.bn.training and net.conv3.bn.weight.requires_grad


def _cfg(shared_dir, out, **kw):
    base = dict(crop=32, batch=2, pre_steps=6, fine_steps=4, val_count=1, val_every=1000, seed=3,
                train_root=str(shared_dir / "data" / "train"), out=str(out), checkpoint_minutes=1000.0,
                threads=1)
    base.update(kw)
    return T.IFCNNTrainConfig(**base)


def _batch_loss(cfg, net_state):
    """MSE of a net on phase-1 batch 0 (fixed data)."""
    cfg = cfg.resolved()
    train_src, _ = T._sources(cfg)
    batch = T._BatchSet(T._PhaseData(cfg, train_src, 1, cfg.pre_steps), 0, cfg.pre_steps)[0]
    net = build_ifcnn(cfg.fuse_rule, net_state).eval()
    with torch.no_grad():
        pred = T.forward_image(net, batch["frames"], T._normalizer("cpu"))
    return float(torch.nn.functional.mse_loss(pred, batch["gt"]))


@pytest.mark.shared
def test_tiny_run_lowers_the_loss_exports_and_resumes(shared_dir, tmp_path, monkeypatch):
    cfg = _cfg(shared_dir, tmp_path / "full")
    start = T.build_training_net(cfg.resolved()).state_dict()
    hist = T.train(cfg, progress=False, log=lambda *_: None)
    weights = tmp_path / "full" / "ifcnn-max.safetensors"
    assert weights.is_file() and json.loads((tmp_path / "full" / "history.json").read_text())["wall_s"] > 0
    assert _batch_loss(cfg, str(weights)) < _batch_loss(cfg, start)
    assert {v["phase"] for v in hist["log"]} == {1, 2}

    # the exported file works in the fusion method
    import mfif

    pair = np.random.default_rng(0).random((2, 3, 24, 24)).astype(np.float32)
    assert mfif.fuse(pair, method="ifcnn-max", weights=str(weights)).fused.shape == (3, 24, 24)

    # stopped by --max-steps in the middle of phase 2 (checkpoint with the optimiser state), then
    # resumed: same weights as the uninterrupted run, both legs recorded
    cfg2 = _cfg(shared_dir, tmp_path / "cut", max_steps=8)
    first = T.train(cfg2, progress=False, log=lambda *_: None)
    assert not first["complete"] and len(first["legs"]) == 1
    ck = torch.load(tmp_path / "cut" / "last.pt", weights_only=True)
    assert ck["phase"] == 2 and ck["step"] == 2 and ck["optimizer"] is not None
    second = T.train(cfg2, resume=True, progress=False, log=lambda *_: None)
    assert second["complete"] and [leg["steps"] for leg in second["legs"]] == [8, 2]
    a = read_weights(weights).tensors
    b = read_weights(tmp_path / "cut" / "ifcnn-max.safetensors").tensors
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), atol=1e-3), k
    with pytest.raises(InputError, match="different settings"):
        T.train(_cfg(shared_dir, tmp_path / "cut", crop=40), resume=True, progress=False, log=lambda *_: None)


def test_flags_follow_the_run_contract():
    import argparse

    parser = argparse.ArgumentParser()
    T.add_arguments(parser)
    args = parser.parse_args(["--fuse-rule", "sum", "--precision", "bf16", "--channels-last", "true",
                              "--mix", "thinlens:1", "--data", "a,b", "--max-minutes", "30", "--resume", "--quiet"])
    cfg = T.config_from_args(args).resolved()
    assert (cfg.fuse_rule, cfg.precision, cfg.channels_last, cfg.mix, cfg.data, cfg.max_minutes) == \
        ("sum", "bf16", True, "thinlens:1", "a,b", 30.0)
    assert cfg.out == "runs/ifcnn-sum" and args.quiet
    from mfif.models.training import resume_path

    assert str(resume_path(args.resume, cfg.out)) == "runs/ifcnn-sum/last.pt"
    with pytest.raises(InputError, match="mix"):
        T.IFCNNTrainConfig(mix="gaussian:1", train_root="x").resolved()
    with pytest.raises(InputError, match="precision"):
        T.IFCNNTrainConfig(precision="fp8", train_root="x").resolved()


@pytest.mark.shared
def test_prerendered_data_bf16_channels_last(shared_dir, tmp_path):
    """--data reads `mfif synth --prerender` folders (random crops of the renders); a bf16,
    channels-last run trains on them and exports."""
    from mfif.synth.prerender import prerender

    folder = tmp_path / "thinlens"
    from mfif.synth.recipes import get_recipe

    prerender(shared_dir / "data" / "train", get_recipe("thinlens", size=40), 3, folder, seed=5, progress=False)
    cfg = _cfg(shared_dir, tmp_path / "run", data=str(folder), mix="thinlens:1", pre_steps=2, fine_steps=2,
               precision="bf16", channels_last=True, val_count=0)
    data = T._PhaseData(cfg.resolved(), None, 1, 2)
    item = data.item(0)
    assert item["frames"].shape == (2, 3, 32, 32) and item["gt"].shape == (3, 32, 32)
    assert np.array_equal(item["frames"], data.item(0)["frames"])  # a pure function of the index
    hist = T.train(cfg, progress=False, log=lambda *_: None)
    assert hist["complete"] and all(np.isfinite(r["loss"]) for r in hist["log"] if "loss" in r)
    assert (tmp_path / "run" / "ifcnn-max.safetensors").is_file()
    with pytest.raises(InputError, match="no weight"):
        T._PhaseData(_cfg(shared_dir, tmp_path / "x", data=str(folder), mix="layered:1").resolved(), None, 1, 2)
