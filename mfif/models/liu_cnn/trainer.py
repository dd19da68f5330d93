"""Training of the Liu et al. 2017 siamese CNN (``mfif train cnn`` / ``mfif train cnn-slight``).

Data (paper Sec. 3.3, ``SPEC.md``): sharp photos -> grey (MATLAB rgb2gray weights, 0..255) -> five
cumulative Gaussian blurs (sigma 2, 7x7; :func:`mfif.synth.blur.liu_blur_levels`); for each blur
level, random 16x16 positions whose *clear* patch has variance > 25 give a (clear, blurred) pair;
every pair is used in both orders: (clear, blurred) label 1, (blurred, clear) label 0, both in the
same batch. Patches are stored as 8-bit values (like 8-bit photos) and fed as value / 255. The
sampling is the recipe :func:`mfif.synth.liu_patches.make_liu_pairs`.

Photos: training = BSDS500 ``train`` + COCO128 + alpha-matting inputs; validation = BSDS500
``val`` (different photos, fixed seed); the BSDS500 ``test`` split is never used (it is the
synthetic dev set's source).

Optimisation: softmax loss (cross-entropy), batch 128 examples (64 pairs x 2 orders), Xavier init.
Schedules (:data:`SCHEDULES`):

- ``paper``: SGD, momentum 0.9, weight decay 5e-4, lr 1e-4, dropped 10x once (at 70 % of the
  steps), 10 epochs of 1M pairs (2M examples) -- what the paper did on a GPU.
- ``cpu-fast``: the same loss, data and batch, but Adam (lr 1e-3, weight decay 0), one 10x drop at
  70 % of the steps, and a budget that fits a CPU (pairs and epochs given on the command line). The
  paper's SGD at lr 1e-4 barely moves in a few thousand steps; Adam reaches > 95 % validation
  accuracy within minutes (see the model cards for what the shipped weights reached).

A run saves ``last.pt`` every ``checkpoint_minutes`` and at the end (model, optimiser, step, RNG),
``--resume`` continues from it exactly (the data pool is rebuilt from the seed), and the final
weights go to ``final.pt`` (float32) plus ``--export FILE`` (the shipped fp16/int8 format).
"""
from __future__ import annotations

import dataclasses
import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mfif.errors import InputError
from mfif.synth.liu_patches import make_liu_pairs
from mfif.models.training import (CHECKPOINT, PRECISIONS, RunConfig, add_dataclass_flags, add_run_flags, atomic_save,
                                  check_resume_config, default_data_root, fit, load_checkpoint, resume_path)

SCHEDULES = {
    "paper": dict(optimizer="sgd", lr=1e-4, momentum=0.9, weight_decay=5e-4, pairs=1_000_000, epochs=10),
    "cpu-fast": dict(optimizer="adam", lr=1e-3, momentum=0.9, weight_decay=0.0, pairs=200_000, epochs=1),
}
VARIANT_OF = {"cnn": "original", "cnn-slight": "slight"}


@dataclass
class LiuTrainConfig(RunConfig):
    """Configuration of one training run (every field is a ``--flag`` of ``mfif train cnn``): the
    shared run fields of :class:`~mfif.models.training.RunConfig` (out, seed, device, threads,
    precision, checkpoint and budget) plus these.

    Fields left at None take their value from ``schedule`` (:data:`SCHEDULES`).
    """

    out: str = "runs/liu_cnn"
    variant: str = "slight"
    data: str = ""
    schedule: str = "cpu-fast"
    optimizer: str | None = None
    lr: float | None = None
    momentum: float | None = None
    weight_decay: float | None = None
    pairs: int | None = None
    epochs: int | None = None
    lr_drop_at: float = 0.7
    batch_size: int = 128
    val_pairs: int = 5000
    variance_threshold: float = 25.0
    blur_levels: int = 5
    val_every: int = 0
    export: str | None = None
    resume: str | None = None
    photos_limit: int = 0

    def resolved(self) -> "LiuTrainConfig":
        if self.schedule not in SCHEDULES:
            raise InputError(f"unknown schedule {self.schedule!r}; choose one of {', '.join(SCHEDULES)}")
        values = {k: (v if v is not None else SCHEDULES[self.schedule].get(k))
                  for k, v in dataclasses.asdict(self).items()}
        values["data"] = values["data"] or str(default_data_root())
        cfg = LiuTrainConfig(**values)
        if cfg.variant not in ("original", "slight"):
            raise InputError(f"unknown variant {cfg.variant!r}")
        if cfg.optimizer not in ("sgd", "adam"):
            raise InputError(f"optimizer must be sgd or adam, got {cfg.optimizer!r}")
        if cfg.batch_size < 2 or cfg.batch_size % 2:
            raise InputError(f"batch size must be even (both orders of each pair), got {cfg.batch_size}")
        if cfg.pairs < cfg.batch_size // 2 or cfg.epochs < 1:
            raise InputError(f"need pairs >= batch/2 and epochs >= 1, got pairs={cfg.pairs}, epochs={cfg.epochs}")
        return cfg


# ---------------------------------------------------------------------------------------------
# data


def photo_files(root: str | os.PathLike, part: str) -> list[Path]:
    """Photo files of the ``train`` part (BSDS500 train, COCO128, alpha-matting inputs) or the
    ``val`` part (BSDS500 val) under the shared ``data/train`` folder."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: training photo folder not found")
    if part == "train":
        dirs = [root / "bsds500" / "images" / "train", root / "coco128-seg" / "images", root / "alphamatting" / "input"]
    elif part == "val":
        dirs = [root / "bsds500" / "images" / "val"]
    else:
        raise InputError(f"unknown part {part!r}")
    files = sorted(p for d in dirs if d.is_dir() for p in d.iterdir()
                   if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not files:
        raise InputError(f"{root}: no {part} photos found in {', '.join(str(d) for d in dirs)}")
    return files


def both_orders(clear, blurred):
    """Torch tensors (P, 16, 16) uint8 -> a, b (2P, 1, 16, 16) float in [0, 1] and labels (2P,):
    (clear, blurred) -> 1, (blurred, clear) -> 0."""
    import torch

    c = clear.float().div_(255.0)[:, None]
    b = blurred.float().div_(255.0)[:, None]
    a_in = torch.cat([c, b])
    b_in = torch.cat([b, c])
    labels = torch.cat([torch.ones(len(c), dtype=torch.long), torch.zeros(len(c), dtype=torch.long)])
    return a_in, b_in, labels


def evaluate(net, clear, blurred, *, batch: int = 1024, device=None) -> dict:
    """Patch-pair accuracy (both orders) and mean loss of ``net`` on uint8 pairs."""
    import torch
    import torch.nn.functional as F

    device = device or next(net.parameters()).device
    was_training = net.training
    net.eval()
    correct = total = 0
    loss_sum = 0.0
    with torch.inference_mode():
        for s in range(0, len(clear), batch):
            a, b, y = both_orders(torch.from_numpy(clear[s: s + batch]), torch.from_numpy(blurred[s: s + batch]))
            logits = net(a.to(device), b.to(device))
            loss_sum += float(F.cross_entropy(logits, y.to(device), reduction="sum"))
            correct += int((logits.argmax(1).cpu() == y).sum())
            total += len(y)
    net.train(was_training)
    return {"accuracy": correct / total, "loss": loss_sum / total, "examples": total}


# ---------------------------------------------------------------------------------------------
# the loop


def train_liu_cnn(cfg: LiuTrainConfig, *, progress: bool = True) -> dict:
    """Train (or resume) one network; returns a summary dict (also written to ``out/summary.json``)."""
    import torch
    import torch.nn.functional as F

    from mfif.models.liu_cnn.network import LiuCNN, save_liu_weights

    cfg = cfg.resolved()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = torch.device("cuda" if (cfg.device == "auto" and torch.cuda.is_available()) else
                          ("cpu" if cfg.device == "auto" else cfg.device))
    wall0 = time.time()

    train_files = photo_files(cfg.data, "train")
    val_files = photo_files(cfg.data, "val")
    if cfg.photos_limit:
        train_files, val_files = train_files[: cfg.photos_limit], val_files[: max(1, cfg.photos_limit // 2)]
    clear, blurred, _ = make_liu_pairs(train_files, cfg.pairs, cfg.seed, levels=cfg.blur_levels,
                                       variance_threshold=cfg.variance_threshold, progress=progress)
    v_clear, v_blurred, v_level = make_liu_pairs(val_files, cfg.val_pairs, cfg.seed + 1_000_003, levels=cfg.blur_levels,
                                                 variance_threshold=cfg.variance_threshold, progress=progress)
    clear_t, blurred_t = torch.from_numpy(clear), torch.from_numpy(blurred)

    torch.manual_seed(cfg.seed)
    net = LiuCNN(cfg.variant).to(device)
    if cfg.optimizer == "sgd":
        opt = torch.optim.SGD(net.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    else:
        opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    pairs_per_batch = cfg.batch_size // 2
    steps_per_epoch = len(clear) // pairs_per_batch
    total_steps = steps_per_epoch * cfg.epochs
    step, history, trained_seconds, drop_step = 0, [], 0.0, None

    if cfg.resume:
        ckpt, ckpt_path = load_checkpoint(cfg.resume)
        check_resume_config(ckpt_path, ckpt.get("config", {}), dataclasses.asdict(cfg),
                            keys=("variant", "pairs", "seed", "batch_size", "epochs", "optimizer"))
        net.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        step, history, trained_seconds = ckpt["step"], ckpt.get("history", []), ckpt.get("trained_seconds", 0.0)
        drop_step = ckpt.get("drop_step")

    def checkpoint(at_step: int):
        atomic_save({"model": net.state_dict(), "optimizer": opt.state_dict(), "step": at_step,
                     "config": dataclasses.asdict(cfg), "variant": cfg.variant, "history": history, "drop_step": drop_step,
                     "trained_seconds": trained_seconds + (time.time() - t_start)}, out / CHECKPOINT)

    def lr_at(at_step: int) -> float:
        nonlocal drop_step
        if drop_step is None and (at_step >= int(cfg.lr_drop_at * total_steps) or
                                  (cfg.max_minutes and time.time() - wall0 >= cfg.lr_drop_at * cfg.max_minutes * 60)):
            drop_step = at_step  # the one 10x drop: at lr_drop_at of the steps or of the time budget
        return cfg.lr * (0.1 if drop_step is not None else 1.0)

    def step_loss(at_step: int):
        epoch, within = divmod(at_step, steps_per_epoch)
        perm = torch.from_numpy(np.random.default_rng((cfg.seed, epoch)).permutation(len(clear)))
        idx = perm[within * pairs_per_batch: (within + 1) * pairs_per_batch]
        a, b, y = both_orders(clear_t[idx], blurred_t[idx])
        return F.cross_entropy(net(a.to(device), b.to(device)), y.to(device))

    def validate(at_step: int):
        if not (cfg.val_every and at_step % cfg.val_every == 0):
            return None
        ev = evaluate(net, v_clear, v_blurred, device=device)
        return ({"val_accuracy": ev["accuracy"], "val_loss": ev["loss"]},
                f"val accuracy {ev['accuracy']:.4f} loss {ev['loss']:.4f}")

    net.train()
    t_start = time.time()
    run = fit(net, opt, step_loss, start_step=step, total_steps=total_steps, lr_at=lr_at, checkpoint=checkpoint,
              checkpoint_minutes=cfg.checkpoint_minutes, wall_start=wall0, max_minutes=cfg.max_minutes,
              max_steps=cfg.max_steps, validate=validate, history=history, log_every=50, postfix_every=20,
              units_per_step=cfg.batch_size, desc=f"train {cfg.variant}", progress=progress, precision=cfg.precision)
    step, stopped_early, ema = run.step, run.stopped_early, run.loss_ema
    checkpoint(step)
    ev = evaluate(net, v_clear, v_blurred, device=device)
    per_level = {}
    with torch.inference_mode():
        for k in range(1, cfg.blur_levels + 1):
            sel = v_level == k
            if sel.any():
                per_level[str(k)] = evaluate(net, v_clear[sel], v_blurred[sel], device=device)["accuracy"]
    summary = {
        "variant": cfg.variant, "config": dataclasses.asdict(cfg), "steps": step, "total_steps": total_steps,
        "stopped_early": stopped_early, "lr_drop_step": drop_step, "examples_seen": step * cfg.batch_size,
        "train_pairs": int(len(clear)), "train_photos": len(train_files), "val_photos": len(val_files),
        "val_accuracy": ev["accuracy"], "val_loss": ev["loss"], "val_examples": ev["examples"],
        "val_accuracy_per_blur_level": per_level,
        "train_seconds": trained_seconds + (time.time() - t_start), "wall_seconds_this_run": time.time() - wall0,
        "hardware": {"device": str(device), "cpu": platform.processor() or platform.machine(),
                     "torch_threads": torch.get_num_threads(), "torch": torch.__version__},
        "final_loss_ema": ema,
    }
    atomic_save({"model": net.state_dict(), "variant": cfg.variant, "config": dataclasses.asdict(cfg),
                  "summary": json.loads(json.dumps(summary, default=str))}, out / "final.pt")
    if cfg.export:
        from mfif.models.liu_cnn.network import build_liu_cnn

        from mfif.models.weights import provenance

        save_liu_weights(net.cpu(), cfg.export, meta={**{k: summary[k] for k in ("variant", "steps", "examples_seen",
                                                                             "val_accuracy", "train_seconds")},
                                                      **provenance(cfg.data)})
        # the shipped file is fp16 (and int8 for fc1): report its own accuracy too
        shipped = build_liu_cnn(cfg.variant, cfg.export)
        summary["export"] = str(cfg.export)
        summary["val_accuracy_exported"] = evaluate(shipped, v_clear, v_blurred, device=torch.device("cpu"))["accuracy"]
        card = Path(cfg.export).with_suffix(".md")
        card.write_text(model_card(summary))
        summary["model_card"] = str(card)
    from mfif.io import write_bytes_atomic  # a kill mid-write must not leave half a JSON file

    write_bytes_atomic(out / "summary.json", json.dumps(summary, indent=2, default=str).encode())
    write_bytes_atomic(out / "history.json", json.dumps(history).encode())
    return summary


def model_card(summary: dict) -> str:
    """Markdown model card of a finished run (data, command, seed, schedule, hardware, time, scores)."""
    cfg = summary["config"]
    name = "cnn" if summary["variant"] == "original" else "cnn-slight"
    flags = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in cfg.items()
                     if v not in (None, 0, 0.0, "fp32") and k not in ("variant", "resume", "threads", "device"))
    levels = ", ".join(f"{k}: {v:.4f}" for k, v in summary.get("val_accuracy_per_blur_level", {}).items())
    return f"""# Liu et al. 2017 CNN, {summary['variant']} variant (`{name}`) -- weights trained by mfif

- **Architecture**: siamese, conv 3x3 64/128 -> 2x2 max-pool -> conv 3x3 256 per branch;
  {'fc1 8x8 512->256 + ReLU, fc2 1x1 256->2' if summary['variant'] == 'original' else 'one 8x8 512->2 output layer'}
  ({'8,759,042' if summary['variant'] == 'original' else '435,202'} parameters, paper Table 4 / Sec. 4.2.4).
- **Data**: {summary['train_pairs']:,} (clear, blurred) 16x16 grey patch pairs from {summary['train_photos']} photos
  (BSDS500 train, COCO128, alpha-matting inputs; `shared/data/train`), five cumulative Gaussian
  blurs (sigma 2, 7x7), clear-patch variance > {cfg['variance_threshold']:g} on 0..255, each pair in both orders with
  swapped labels (paper Sec. 3.3; the paper used 1M pairs from 10,000 ImageNet photos).
- **Validation**: {summary['val_examples']:,} examples ({summary['val_examples'] // 2:,} pairs x 2 orders) from the
  {summary['val_photos']} BSDS500 *val* photos (never seen in training), seed {cfg['seed']} + 1000003.
- **Command**: `mfif train {name} {flags}`
- **Seed**: {cfg['seed']}
- **Schedule** (`{cfg['schedule']}`): {cfg['optimizer']}, lr {cfg['lr']:g} (momentum {cfg['momentum']:g} for SGD),
  weight decay {cfg['weight_decay']:g}, batch {cfg['batch_size']} (= {cfg['batch_size'] // 2} pairs x 2 orders), softmax loss,
  Xavier init; one 10x lr drop at step {summary.get('lr_drop_step')} (at {cfg['lr_drop_at']:g} of the planned steps or
  of the time budget, whichever came first). {summary['steps']:,} of {summary['total_steps']:,} planned steps
  ({'stopped by the time budget' if summary['stopped_early'] else 'completed'}), {summary['examples_seen']:,} examples seen
  (the paper: about 10 epochs x 2M examples = 20M, SGD lr 1e-4).
- **Hardware**: {summary['hardware']['device']} ({summary['hardware']['cpu']}), {summary['hardware']['torch_threads']} torch threads,
  torch {summary['hardware']['torch']}; a 2-core machine shared with other jobs.
- **Wall time** (training loop): {summary['train_seconds'] / 60:.1f} min.
- **Validation accuracy**: {summary['val_accuracy']:.4f} (float32 weights), {summary.get('val_accuracy_exported', float('nan')):.4f}
  (this file); per blur level (1 = one sigma-2 blur): {levels}. The paper reports 99.49 % on
  real multi-focus patches after 20M examples on a GPU.
- **Storage**: safetensors (format, variant, training metadata, command and data digest in the
  header); tensors fp16, tensors with more than 1M elements (fc1) int8 with one fp16 scale per
  output channel; loads via `mfif.models.liu_cnn.network.build_liu_cnn`.
"""


# ---------------------------------------------------------------------------------------------
# command line (wired by mfif.models.train_cli)


def add_arguments(parser, name: str) -> None:
    """Flags of ``mfif train cnn|cnn-slight``: one per :class:`LiuTrainConfig` field."""
    parser.set_defaults(variant=VARIANT_OF[name])
    from_schedule = ("optimizer", "lr", "momentum", "weight_decay", "pairs", "epochs")
    add_dataclass_flags(parser, LiuTrainConfig, skip=("variant", "resume"),
                        choices={"schedule": SCHEDULES, "precision": PRECISIONS},
                        helps={k: "default: from --schedule" for k in from_schedule})
    add_run_flags(parser)


def run(args) -> int:
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(LiuTrainConfig) if hasattr(args, f.name)}
    resume = resume_path(values.get("resume"), values["out"])
    values["resume"] = str(resume) if resume else None
    summary = train_liu_cnn(LiuTrainConfig(**values), progress=not args.quiet)
    print(f"{summary['variant']}: {summary['steps']} steps, {summary['examples_seen']} examples, "
          f"validation accuracy {summary['val_accuracy']:.4f} ({summary['val_examples']} examples), "
          f"{summary['train_seconds'] / 60:.1f} min -> {Path(values['out']) / 'final.pt'}")
    return 0
