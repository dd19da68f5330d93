"""The trainers' shared contract: one flags helper, one resume flag and file, one config check,
checkpoints of plain data read with weights_only=True."""
from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from mfif.errors import InputError
from mfif.models.train_cli import TRAINERS


def _parse(name: str, *argv: str) -> argparse.Namespace:
    import importlib

    parser = argparse.ArgumentParser()
    importlib.import_module(TRAINERS[name][0]).add_arguments(parser, name)
    return parser.parse_args(list(argv))


@pytest.mark.parametrize("name", list(TRAINERS))
def test_every_trainer_has_the_same_resume_and_quiet_flags(name, tmp_path):
    from mfif.models.training import resume_path

    args = _parse(name, "--out", str(tmp_path), "--resume", "--no-progress")
    assert args.quiet is True
    assert resume_path(args.resume, args.out) == tmp_path / "last.pt"
    args = _parse(name, "--resume", str(tmp_path / "x.pt"), "--quiet")
    assert resume_path(args.resume, ".") == tmp_path / "x.pt" and args.quiet
    assert resume_path(_parse(name).resume, ".") is None


def test_flags_are_typed_from_the_dataclass_fields():
    args = _parse("hf-reg", "--residual", "yes", "--crop-area", "0.1", "0.5", "--loss", "l1", "--init-weights", "w")
    assert args.residual is True and args.crop_area == [0.1, 0.5] and args.loss == "l1" and args.init_weights == "w"
    assert _parse("cnn", "--lr", "0.01", "--pairs", "none").pairs is None  # int | None
    assert _parse("ifcnn").out is None and _parse("ifcnn", "--jitter", "0.1").jitter == 0.1
    with pytest.raises(SystemExit):  # not an int: argparse's usage error
        _parse("ba", "--steps", "many")
    with pytest.raises(SystemExit):
        _parse("hf-seg", "--loss", "l1")  # a reg loss for the seg net


def test_resume_config_check_names_the_setting():
    from mfif.models.training import check_resume_config

    check_resume_config("c.pt", {"seed": 0, "out": "a"}, {"seed": 0, "out": "b"}, ignore=("out",))
    with pytest.raises(InputError, match=r"c.pt: the checkpoint was made with different settings: checkpoint has "
                                         r"seed=0, this run seed=1"):
        check_resume_config("c.pt", {"seed": 0}, {"seed": 1})
    check_resume_config("c.pt", {"sigma": [1.0, 5.0]}, {"sigma": (1.0, 5.0)})  # compared as JSON


def test_checkpoints_are_plain_data_and_pickles_are_refused(tmp_path):
    torch = pytest.importorskip("torch")
    from mfif.models.training import atomic_save, load_checkpoint

    atomic_save({"model": {"w": torch.ones(2)}, "step": 3, "rng": {"state": 2**100}}, tmp_path / "last.pt")
    ckpt, path = load_checkpoint(tmp_path)  # a run folder: its last.pt
    assert path == tmp_path / "last.pt" and ckpt["step"] == 3 and ckpt["rng"]["state"] == 2**100
    torch.save({"step": 1, "cls": Path}, tmp_path / "evil.pt")  # a pickled class
    with pytest.raises(InputError, match="refused") as info:
        load_checkpoint(tmp_path / "evil.pt")
    assert "weights_only" not in str(info.value)
    with pytest.raises(InputError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_every_trainer_finds_the_photos_in_the_same_place(monkeypatch, tmp_path):
    from mfif.models.ba.trainer import BATrainConfig
    from mfif.models.hourglass.trainer import HourglassTrainConfig
    from mfif.models.ifcnn.trainer import IFCNNTrainConfig
    from mfif.models.liu_cnn.trainer import LiuTrainConfig
    from mfif.models.training import default_data_root

    monkeypatch.setenv("MFIF_SHARED", str(tmp_path))
    root = str(tmp_path / "data" / "train")
    assert str(default_data_root()) == root
    assert LiuTrainConfig().resolved().data == root
    assert BATrainConfig().check().data == root
    assert HourglassTrainConfig().resolved().train_root == root
    assert IFCNNTrainConfig().resolved().train_root == root
    monkeypatch.delenv("MFIF_SHARED")
    assert default_data_root() == Path(__file__).resolve().parents[3] / "shared" / "data" / "train"


def test_fit_bf16_autocast_trains_and_keeps_fp32_weights():
    import time

    import torch

    from mfif.models.training import fit

    torch.manual_seed(0)
    net = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    x = torch.randn(32, 4)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
    dtypes = []

    def step_loss(step):
        out = net(x)
        dtypes.append(out.dtype)
        return ((out.float() - y) ** 2).mean()

    first = float(((net(x) - y) ** 2).mean())
    result = fit(net, opt, step_loss, start_step=0, total_steps=200, lr_at=lambda s: 0.05,
                 checkpoint=lambda s: None, checkpoint_minutes=1e9, wall_start=time.time(),
                 progress=False, precision="bf16")
    assert set(dtypes) == {torch.bfloat16}  # the forward pass really ran in bf16
    assert net.weight.dtype == torch.float32
    assert result.loss_ema < 0.05 * first


def test_fit_rejects_unknown_precision():
    import time

    import pytest
    import torch

    from mfif.errors import InputError
    from mfif.models.training import fit

    net = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    with pytest.raises(InputError, match="precision 'fp8'"):
        fit(net, opt, lambda s: net(torch.ones(1, 2)).sum(), start_step=0, total_steps=1, lr_at=lambda s: 0.1,
            checkpoint=lambda s: None, checkpoint_minutes=1e9, wall_start=time.time(), progress=False,
            precision="fp8")


@pytest.mark.parametrize("name, module, cls, out", [("cnn", "mfif.models.liu_cnn.trainer", "LiuTrainConfig", "runs/liu_cnn"),
                                                    ("ba", "mfif.models.ba.trainer", "BATrainConfig", "runs/ba")])
def test_liu_and_ba_configs_share_run_config_and_keep_their_flags(name, module, cls, out):
    import dataclasses
    import importlib

    from mfif.models.training import RunConfig

    config = getattr(importlib.import_module(module), cls)
    assert issubclass(config, RunConfig)
    own = {f.name for f in dataclasses.fields(config)} - {f.name for f in dataclasses.fields(RunConfig)}
    assert not own & {"seed", "device", "threads", "checkpoint_minutes", "max_minutes", "max_steps", "precision"}
    args = _parse(name)  # the defaults these flags had before RunConfig
    assert (args.out, args.seed, args.device, args.threads, args.checkpoint_minutes, args.max_minutes,
            args.max_steps, args.precision) == (out, 0, "auto", 0, 5.0, 0.0, 0, "fp32")
    assert _parse(name, "--precision", "bf16", "--seed", "3", "--max-steps", "7").precision == "bf16"
    with pytest.raises(SystemExit):
        _parse(name, "--precision", "fp16")


def test_matmul_gflops_counts_2n3_flops_per_best_multiply(monkeypatch):
    import time

    from mfif.models.device import matmul_gflops

    ticks = iter([0.0, 0.5, 10.0, 10.25, 20.0, 21.0])  # three timed multiplies: 0.5 s, 0.25 s, 1 s
    monkeypatch.setattr(time, "perf_counter", lambda: next(ticks))
    assert matmul_gflops(8, repeats=3) == 2 * 8 ** 3 / 0.25 / 1e9
