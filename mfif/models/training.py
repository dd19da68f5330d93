"""What every trainer shares: the training loop :func:`fit`, the atomic save, the checkpoint (tensors and plain data only, read
with ``weights_only=True``), the resume config check, and dataclass -> command-line flags.

A checkpoint is a dict of tensors, numbers, strings, lists and dicts: nothing that unpickles into
code. State that is not plain data (a data pool, a generator) is rebuilt from its seed, or from
the plain generator states the checkpoint keeps (``numpy``'s ``bit_generator.state`` is a dict of
ints).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from mfif.errors import InputError


def atomic_save(obj, path: str | os.PathLike) -> Path:
    """``torch.save`` to a temporary file, then rename: a crash never leaves half a checkpoint."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, str(tmp))
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | os.PathLike, default_name: str = "last.pt") -> tuple[dict, Path]:
    """Read a checkpoint (a file, or a run folder holding ``default_name``) with
    ``weights_only=True``; one that holds pickled objects is refused in one line.

    Returns:
        (the checkpoint dict, its path).
    """
    from mfif.errors import WeightsError
    from mfif.models.weights import torch_load_plain

    path = Path(path)
    if path.is_dir():
        path = path / default_name
    if not path.is_file():
        raise InputError(f"{path}: checkpoint to resume from not found")
    try:
        ckpt = torch_load_plain(path, what="checkpoint")
    except WeightsError as exc:
        raise InputError(str(exc)) from None
    if not isinstance(ckpt, dict):
        raise InputError(f"{path}: not a training checkpoint (a {type(ckpt).__name__}, not a dict)")
    return ckpt, path


def check_resume_config(path, saved: dict, current: dict, *, keys: Iterable[str] | None = None,
                        ignore: Iterable[str] = ()) -> None:
    """The one config-compatibility check of a resume: the checkpoint's config must equal this run's
    on ``keys`` (default: every key of the checkpoint's config but ``ignore``), compared as JSON."""
    ignore = set(ignore)
    keys = [k for k in (keys if keys is not None else saved) if k not in ignore]
    for key in keys:
        old, new = saved.get(key), current.get(key)
        if json.dumps(old, sort_keys=True, default=str) != json.dumps(new, sort_keys=True, default=str):
            raise InputError(f"{path}: the checkpoint was made with different settings: checkpoint has "
                             f"{key}={old!r}, this run {key}={new!r}")


def add_dataclass_flags(parser: argparse.ArgumentParser, cls, *, skip: Iterable[str] = (),
                        choices: dict[str, Iterable] | None = None, helps: dict[str, str] | None = None,
                        defaults: dict[str, Any] | None = None) -> None:
    """The one dataclass -> flags helper of the trainers: a ``--field-name`` flag per field of the
    dataclass ``cls``, typed by the field (:func:`mfif.options.parse_value`: ``bool`` takes
    true/false/yes/no/on/off/1/0, ``X | None`` takes none; ``tuple[float, float]`` takes two values).
    ``defaults`` overrides the dataclass defaults; ``helps`` the "default: ..." help texts."""
    import typing

    from mfif.options import field_types, parse_value

    types_ = field_types(cls)
    choices, helps, defaults = choices or {}, helps or {}, defaults or {}
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        if f.name in defaults:
            default = defaults[f.name]
        else:
            default = f.default if f.default is not dataclasses.MISSING else (
                f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        tp = types_[f.name]
        extra: dict[str, Any] = {}
        if typing.get_origin(tp) is tuple:
            args = typing.get_args(tp)
            tp, extra = args[0], {"nargs": len(args)}
        name_choices = choices.get(f.name)
        parser.add_argument("--" + f.name.replace("_", "-"), dest=f.name, default=default,
                            help=helps.get(f.name, f"default: {default}"),
                            choices=list(name_choices) if name_choices is not None else None,
                            metavar=None if name_choices is not None else f.name.upper(),
                            type=lambda value, tp=tp, name=f.name: parse_value(tp, value, name=name), **extra)


def dataclass_from_args(cls, args: argparse.Namespace, **overrides: Any):
    """The dataclass ``cls`` from the flags of :func:`add_dataclass_flags` (plus ``overrides``)."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}
    values.update(overrides)
    return cls(**values)


CHECKPOINT = "last.pt"  # every trainer's checkpoint file in its run folder
_RESUME_OUT = "@out"


def add_run_flags(parser: argparse.ArgumentParser) -> None:
    """The flags every trainer has the same way: ``--resume [CKPT]`` (default ``OUT/last.pt``) and
    ``--quiet`` (no progress bar; ``--no-progress`` is the same)."""
    parser.add_argument("--resume", nargs="?", const=_RESUME_OUT, default=None, metavar="CKPT",
                        help=f"resume from CKPT (default: OUT/{CHECKPOINT})")
    parser.add_argument("--quiet", "--no-progress", dest="quiet", action="store_true", help="no progress bar")


def resume_path(resume, out: str | os.PathLike) -> Path | None:
    """The checkpoint a run resumes from: None (no resume), ``OUT/last.pt`` (``--resume`` alone or
    True), or the given file/folder."""
    if not resume:
        return None
    if resume is True or resume == _RESUME_OUT:
        return Path(out) / CHECKPOINT
    return Path(resume)


@dataclass
class RunConfig:
    """The fields every trainer's config shares (subclass it; a subclass may redeclare a field to
    change its default, e.g. ``out``). Each is a ``--flag`` through :func:`add_dataclass_flags`.

    Attributes:
        out: run folder (``last.pt``, the history, the exported weights).
        seed: seeds the initial weights and every batch.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        threads: torch CPU threads (0 = torch default).
        precision: ``"fp32"``, or ``"bf16"`` (autocast of the forward pass and loss on CPUs/GPUs
            that have it; weights and optimiser stay fp32).
        checkpoint_minutes: wall minutes between checkpoints.
        max_minutes: stop (checkpointed, resumable) after this many wall minutes (0 = no limit).
        max_steps: stop (checkpointed, resumable) after this many steps of this run (0 = no limit).
    """

    out: str = "runs/train"
    seed: int = 0
    device: str = "auto"
    threads: int = 0
    precision: str = "fp32"
    checkpoint_minutes: float = 5.0
    max_minutes: float = 0.0
    max_steps: int = 0


PRECISIONS = ("fp32", "bf16")


@dataclass
class FitResult:
    """What :func:`fit` ends with: the step reached, whether a budget stopped it, the loss EMA."""

    step: int
    stopped_early: bool
    loss_ema: float | None


def fit(net, optimizer, step_loss: Callable[[int], Any], *, start_step: int, total_steps: int,
        lr_at: Callable[[int], float], checkpoint: Callable[[int], None], checkpoint_minutes: float,
        wall_start: float, max_minutes: float = 0.0, max_steps: int = 0,
        validate: Callable[[int], tuple[dict, str] | None] | None = None, history: list | None = None,
        log_every: int = 50, postfix_every: int = 20, units_per_step: float = 1.0, unit_name: str = "samples_s",
        ema_decay: float = 0.98, desc: str = "train", progress: bool = True,
        precision: str = "fp32") -> FitResult:
    """The one training loop: per step the learning rate (``lr_at(step)``), the loss
    (``step_loss(step)``: the batch of that step through the net, a scalar tensor), backward and an
    optimiser step; a progress bar with the loss EMA, the LR and the throughput; the loss in
    ``history`` every ``log_every`` steps; ``validate(step)`` (-> (record, message) or None) after
    every step; ``checkpoint(step)`` every ``checkpoint_minutes``; a stop (resumable) when the wall
    budget (``max_minutes`` since ``wall_start``, a ``time.time()``) or ``max_steps`` of this run
    is used. A loss that is not finite stops the run with an error (divergence guard).
    ``precision="bf16"`` runs ``step_loss`` under bf16 autocast on the net's device (weights,
    gradients and the optimiser stay fp32).
    """
    import time

    from tqdm import tqdm

    autocast = _autocast(net, precision)  # checked before the first step
    history = history if history is not None else []
    step, ema, stopped_early = start_step, None, False
    last_ckpt = seen_t = time.time()
    seen_at = step
    bar = tqdm(total=total_steps, initial=step, desc=desc, unit="step", disable=not progress)
    while step < total_steps:
        lr = lr_at(step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        with autocast():
            loss = step_loss(step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        value = float(loss.detach())
        if not math.isfinite(value):
            raise RuntimeError(f"training diverged at step {step} (loss {value})")
        ema = value if ema is None else ema_decay * ema + (1.0 - ema_decay) * value
        bar.update(1)
        now = time.time()
        if step % postfix_every == 0:
            rate = (step - seen_at) * units_per_step / max(now - seen_t, 1e-9)
            bar.set_postfix({"loss": f"{ema:.4f}", "lr": f"{lr:.0e}", unit_name: f"{rate:.0f}"})
            seen_at, seen_t = step, now
        if step % log_every == 0 or step == 1:
            history.append({"step": step, "loss": value, "loss_ema": ema, "lr": lr})
        if validate is not None:
            done = validate(step)
            if done is not None:
                record, message = done
                history.append({"step": step, **record})
                bar.write(f"step {step}: {message}")
        if now - last_ckpt >= checkpoint_minutes * 60:
            checkpoint(step)
            last_ckpt = now
        if step < total_steps and ((max_minutes and (now - wall_start) >= max_minutes * 60)
                                   or (max_steps and step - start_step >= max_steps)):
            stopped_early = True
            break
    bar.close()
    return FitResult(step, stopped_early, ema)


def _autocast(net, precision: str) -> Callable[[], Any]:
    """A factory of the autocast context of ``precision`` for ``net``'s device (a no-op for fp32);
    the precision is checked and the device found once, not per step."""
    import contextlib

    import torch

    if precision == "fp32":
        return contextlib.nullcontext
    if precision != "bf16":
        raise InputError(f"precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    try:
        device_type = next(net.parameters()).device.type
    except StopIteration:
        device_type = "cpu"
    return lambda: torch.autocast(device_type=device_type, dtype=torch.bfloat16)


def default_data_root() -> Path:
    """Where every trainer finds its photos by default: ``$MFIF_SHARED/data/train``, else
    ``../shared/data/train`` beside this checkout (not relative to the working directory)."""
    env = os.environ.get("MFIF_SHARED")
    base = Path(env) if env else Path(__file__).resolve().parents[2].parent / "shared"
    return base / "data" / "train"


def parse_mix(text: str, choices: Iterable[str]) -> dict[str, float]:
    """``"a:0.3,b:0.7"`` -> weights of named data sources (from ``choices``) normalised to sum 1;
    a name without a weight counts 1."""
    choices = tuple(choices)
    out: dict[str, float] = {}
    for part in str(text).split(","):
        if not part.strip():
            continue
        name, _, weight = part.partition(":")
        name = name.strip()
        if name not in choices:
            raise InputError(f"unknown data source {name!r} in --mix; choose from {', '.join(choices)}")
        try:
            w = float(weight) if weight else 1.0
        except ValueError:
            raise InputError(f"bad weight {weight!r} for {name} in --mix") from None
        if not (w >= 0 and math.isfinite(w)):
            raise InputError(f"weight of {name} in --mix must be >= 0, got {weight}")
        out[name] = w
    total = sum(out.values())
    if total <= 0:
        raise InputError(f"--mix {text!r} gives no data source a positive weight")
    return {k: v / total for k, v in out.items()}
