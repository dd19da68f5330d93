"""``mfif train focusnet``: train the refinement network of ``focusnet`` on rendered stacks.

Data: the pool of :mod:`mfif.focusnet.data` (rendered with ground truth from BSDS500 train/val;
``--pool``), rendered first if missing (``--pool-size`` samples). Every 50th pool sample is held
out (the first ``val_samples`` of each pool folder validate). A step takes ``batch`` samples (any frame count), a random ``crop`` square of
each (a multiple of 16) with a random flip/rotation; the features are computed in numpy
(:mod:`mfif.focusnet.features`, exactly those of inference), the logits, the softmax weights and
the multiresolution blend in torch (:func:`mfif.focusnet.torch_net.pyramid_blend`, equal to
:class:`mfif.stack_rule.PyramidBlend`). Loss: mean over pixels of |fused - GT| (summed over
channels) times (1 + ``band_weight`` within ``band_px`` of a focus-map boundary).

Validation: PSNR of the blended held-out samples against their GT, and the same for the initial
network (beta = 6, head 0: the multi-scale sharpness^6 rule), so the gain of the refinement is
logged (``history.json``). Export: ``--export`` writes the safetensors file (format
``mfif-focusnet/1``) read by :mod:`mfif.focusnet.network`.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import cv2
import numpy as np

from mfif.models.training import (CHECKPOINT, RunConfig, add_dataclass_flags, add_run_flags, atomic_save,
                                  check_resume_config, default_data_root, load_checkpoint, resume_path)


@dataclass
class FocusNetTrainConfig(RunConfig):
    out: str = "runs/focusnet"
    pool: str = "scratch/focusnet_pool"  # comma-separated folders (the first is rendered if missing)
    pool_size: int = 2000  # per folder
    min_pool: int = 2000  # fewer pool files: render the pool first (a pool rendered alongside may grow)
    val_samples: int = 6
    train_root: str = ""
    steps: int = 6000
    batch: int = 4
    crop: int = 128
    lr: float = 2e-3
    band_weight: float = 4.0
    band_px: int = 8
    val_every: int = 500
    export: str = ""


def boundary_band(focus: np.ndarray, px: int) -> np.ndarray:
    """(N, H, W) binary focus maps -> (H, W) float32, 1 within ``px`` of a change of the argmax."""
    label = np.argmax(focus, axis=0).astype(np.uint8)
    k = np.ones((3, 3), np.uint8)
    edge = (cv2.dilate(label, k) != cv2.erode(label, k)).astype(np.uint8)
    if px > 1:
        edge = cv2.dilate(edge, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px - 1, 2 * px - 1)))
    return edge.astype(np.float32)


def _dihedral(a: np.ndarray, k: int) -> np.ndarray:
    a = np.rot90(a, k % 4, axes=(-2, -1))
    return np.ascontiguousarray(a[..., ::-1] if k >= 4 else a)


def prepare(sample: dict, rng: np.random.Generator | None, crop: int, band_px: int):
    """A pool sample -> numpy (frames (N, 3, S, S), gt (3, S, S), band (S, S), bases, inputs): a
    random crop and dihedral transform (``rng`` None: the top-left crop, untransformed)."""
    from mfif.decision import luminance
    from mfif.focusnet.features import stack_features

    frames, gt, focus = sample["frames"], sample["gt"], sample["focus"]
    h, w = gt.shape[-2:]
    s = min(crop, h, w) // 16 * 16
    y = int(rng.integers(0, h - s + 1)) if rng is not None else 0
    x = int(rng.integers(0, w - s + 1)) if rng is not None else 0
    k = int(rng.integers(8)) if rng is not None else 0
    cut = lambda a: _dihedral(a[..., y:y + s, x:x + s], k)  # noqa: E731
    frames = cut(frames).astype(np.float32) / 255.0
    gt = cut(gt).astype(np.float32) / 255.0
    band = boundary_band(cut(focus), band_px)
    bases, inputs = stack_features(luminance(frames))
    return frames, gt, band, bases, inputs


def blended(net, frames, bases, inputs, levels: int):
    import torch

    from mfif.focusnet.torch_net import pyramid_blend

    logits = net(torch.from_numpy(inputs), torch.from_numpy(bases))
    weights = torch.softmax(logits, dim=0)
    return pyramid_blend(torch.from_numpy(frames), weights, levels)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((np.clip(a, 0, 1) - b) ** 2))
    return 10 * math.log10(1.0 / max(mse, 1e-12))


def train(cfg: FocusNetTrainConfig, resume=None, progress: bool = True) -> dict:
    import torch

    from mfif.focusnet.data import read_pool, write_pool
    from mfif.focusnet.network import FORMAT
    from mfif.focusnet.torch_net import FocusNet
    from mfif.models.training import fit
    from mfif.models.weights import write_weights
    from mfif.stack_rule import auto_levels

    wall_start = time.time()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    pools = [p for p in cfg.pool.split(",") if p]

    def scan() -> list[list[Path]]:
        return [read_pool(p)[:cfg.pool_size] for p in pools]

    if len(read_pool(pools[0])) < cfg.min_pool:
        write_pool(cfg.train_root or default_data_root(), pools[0], cfg.pool_size, seed=cfg.seed)
    val_files = [f for files in scan() for f in [f for f in files if int(f.stem) % 50 == 0][:cfg.val_samples]]
    train_files = [f for files in scan() for f in files if int(f.stem) % 50 != 0]
    cache: dict = {}

    def sample(path):
        if path not in cache:
            with np.load(path) as z:
                cache[path] = {k: z[k] for k in ("frames", "gt", "focus")}
        return cache[path]

    torch.manual_seed(cfg.seed)
    net = FocusNet()
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    history: list = []
    start = 0
    if resume:
        ck, loaded_from = load_checkpoint(resume_path(resume, out))
        check_resume_config(loaded_from, ck["config"], asdict(cfg),
                            keys=["pool", "pool_size", "steps", "batch", "crop", "lr", "band_weight", "band_px", "seed"])
        net.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        start, history = int(ck["step"]), list(ck["history"])

    def lr_at(step: int) -> float:
        warm = min(1.0, (step + 1) / 100)
        return cfg.lr * warm * 0.5 * (1 + math.cos(math.pi * min(step / cfg.steps, 1.0)))

    def step_loss(step: int):
        if step % 200 == 0:  # a pool still being rendered grows while we train
            train_files[:] = [f for files in scan() for f in files if int(f.stem) % 50 != 0]
        rng = np.random.default_rng([cfg.seed, 1, step])
        total = 0.0
        for j in rng.choice(len(train_files), cfg.batch, replace=False):
            frames, gt, band, bases, inputs = prepare(sample(train_files[int(j)]), rng, cfg.crop, cfg.band_px)
            levels = min(auto_levels(*gt.shape[-2:]), 4)
            fused = blended(net, frames, bases, inputs, levels)
            wmap = torch.from_numpy(1.0 + cfg.band_weight * band)
            err = (fused - torch.from_numpy(gt)).abs().sum(0)
            total = total + (err * wmap).mean()
        return total / cfg.batch

    val_cache = None

    def evaluate(model) -> float:
        nonlocal val_cache
        if val_cache is None:
            val_cache = [prepare(sample(f), None, 192, cfg.band_px) for f in val_files]
        scores = []
        with torch.no_grad():
            for frames, gt, band, bases, inputs in val_cache:
                fused = blended(model, frames, bases, inputs, min(auto_levels(*gt.shape[-2:]), 4)).numpy()
                scores.append(psnr(fused, gt))
        return float(np.mean(scores))

    baseline = evaluate(FocusNet())

    def validate(step: int):
        if step % cfg.val_every and step != cfg.steps:
            return None
        net.eval()
        value = evaluate(net)
        net.train()
        return ({"val_psnr": value, "val_psnr_initial": baseline, "beta": float(net.beta.detach())},
                f"val PSNR {value:.3f} dB (initial rule {baseline:.3f}), beta {float(net.beta.detach()):.2f}")

    def checkpoint(step: int) -> None:
        atomic_save({"model": net.state_dict(), "optimizer": opt.state_dict(), "step": step, "history": history,
                     "config": asdict(cfg)}, out / CHECKPOINT)

    result = fit(net, opt, step_loss, start_step=start, total_steps=cfg.steps, lr_at=lr_at, checkpoint=checkpoint,
                 checkpoint_minutes=cfg.checkpoint_minutes, wall_start=wall_start, max_minutes=cfg.max_minutes,
                 max_steps=cfg.max_steps, validate=validate, history=history, units_per_step=cfg.batch,
                 desc="focusnet", progress=progress, precision=cfg.precision)
    checkpoint(result.step)
    (out / "history.json").write_text(json.dumps(history, indent=1) + "\n")
    summary = {"step": result.step, "stopped_early": result.stopped_early, "loss_ema": result.loss_ema,
               "val_psnr_initial": baseline, "wall_minutes_this_run": (time.time() - wall_start) / 60,
               "train_samples": len(train_files), "val_samples": len(val_files)}
    vals = [h for h in history if "val_psnr" in h]
    if vals:
        summary["val_psnr"] = vals[-1]["val_psnr"]
    if cfg.export:
        from mfif.models.weights import provenance

        write_weights(cfg.export, net.export_tensors(), format=FORMAT, arch={"network": "focusnet"},
                      meta={**summary, "config": asdict(cfg)},
                      **provenance(cfg.train_root or default_data_root()))
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def add_arguments(parser: argparse.ArgumentParser, name: str = "focusnet") -> None:
    add_dataclass_flags(parser, FocusNetTrainConfig,
                        helps={"pool": "folder of rendered training samples (made if missing)",
                               "export": "write the trained weights (safetensors) here",
                               "train_root": "folder with bsds500/ (default ../shared/data/train)"})
    add_run_flags(parser)


def run(args) -> int:
    names = {f.name for f in fields(FocusNetTrainConfig)}
    cfg = FocusNetTrainConfig(**{k: v for k, v in vars(args).items() if k in names and v is not None})
    train(cfg, resume=args.resume, progress=not args.quiet)
    return 0
