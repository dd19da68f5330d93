"""Training of the boundary-aware (BA) networks: ``mfif train ba --net initial|boundary``.

Ma et al. 2019, Sec. 3.1-3.2 and ``SPEC.md``. Both nets are :class:`mfif.models.ba.network.BAResNet`
(the same architecture), trained on 64x64x2 grey patches labelled by the centre pixel (row and
column 32; class 1 = the first channel is in focus there); every patch is used in both orders
(channels exchanged, label flipped) in the same batch.

Data (:mod:`mfif.synth`, generated on the fly from a rolling pool of scenes):

- ``ba-hard`` -- the paper's composites: an alpha-matting foreground (halved) over another photo,
  each layer Gaussian-blurred (sigma ~ U(1, 5)) as a whole image and mixed by the matte
  (:func:`mfif.synth.recipes.make_ba_scene`, ``compositing="hard"``);
- ``ba-layered`` -- the same scenes rendered occlusion-aware (a defocused foreground spreads over
  the sharp background, :class:`mfif.synth.compose.LayerStack`);
- ``layered`` -- the layered multi-segment recipe (:func:`mfif.synth.recipes.make_layered`: BSDS500
  segmentations / COCO masks at random depths, disk PSF), grey, focus map of frame 0.

Dense training (our CPU choice): instead of isolated 64x64 patches, each step takes ``crops``
random ``crop_size`` x ``crop_size`` crops of the scenes (and their channel-swapped copies) and
runs the network densely (:meth:`BAResNet.dense_logits`, exactly the patchwise logits of every
64x64 window in the crop), with one cross-entropy term per window labelled by its centre pixel.
This is the paper's objective over all windows of the crops: a 128x128 crop gives 65 x 65 window
labels for about the cost of ten isolated patches (neighbouring windows share their
computation). Batch-norm statistics are then taken over all windows of the batch. The initial
net uses every window of random crops (most far from the boundary); the boundary net only the
windows with >= 10 % focused and >= 10 % defocused pixels (the paper's rule), in crops placed
around such windows.

Photos: training = alpha-matting GT01..GT23 (foregrounds) over BSDS500 ``train`` + COCO128; held
apart for validation = alpha-matting GT24..GT27 over BSDS500 ``val`` (and ``layered`` scenes of
BSDS500 ``val``). BSDS500 ``test`` is never used (the synthetic dev set's source).

Validation (:func:`validation_set`, seed ``val_seed``, the same for both nets, scene kinds in
turn): random patches ("overall") and near-boundary patches, both orders; :func:`evaluate`
reports the accuracy of each.

Optimisation (the authors' code: Adam, lr 1e-3, steps at epochs 80/120/160/180 of 200, batch 16):
Adam lr 1e-3, lr x0.1 at 40 / 60 / 80 / 90 % of the steps (the same fractions), batch = 4 crops
of 128x128 x 2 orders (33,800 windows). The number of steps is the CPU budget (see the model
cards).
The channel means subtracted by the network are measured on 4096 training patches at the start.

``--init FILE`` starts from trained weights (our shipped boundary net starts from the initial net
and is then trained on near-boundary windows only: with a CPU budget this reaches a higher
near-boundary accuracy than training it from scratch; the paper does not say).

A run saves ``last.pt`` every ``checkpoint_minutes`` and at the end (model, optimiser, step, RNG of
the data pool); ``--resume`` continues from it; ``final.pt`` holds the float32 weights and
``--export FILE`` writes the shipped fp16 file (:func:`mfif.models.ba.network.save_ba_weights`).
"""
from __future__ import annotations

import dataclasses
import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from mfif.errors import InputError
from mfif.models.training import (CHECKPOINT, PRECISIONS, RunConfig, add_dataclass_flags, add_run_flags, atomic_save,
                                  check_resume_config, default_data_root, fit, load_checkpoint, resume_path)

NETS = ("initial", "boundary")
PATCH, CENTRE = 64, 32
SOURCES = ("ba-hard", "ba-layered", "layered")
VAL_FOREGROUNDS = ("GT24", "GT25", "GT26", "GT27")
LR_DROPS = (0.4, 0.6, 0.8, 0.9)  # the paper's epochs 80/120/160/180 of 200


@dataclass
class BATrainConfig(RunConfig):
    """One training run (every field is a ``--flag`` of ``mfif train ba``): the shared run fields of
    :class:`~mfif.models.training.RunConfig` (out, seed, device, threads, precision, checkpoint and
    budget) plus these."""

    out: str = "runs/ba"
    net: str = "initial"
    data: str = ""
    arch: str = "resnet20-narrow"
    steps: int = 300
    crops: int = 4
    crop_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    mix: str = "ba-hard:0.3,ba-layered:0.4,layered:0.3"
    pool: int = 24
    refresh: int = 3
    val_scenes: int = 48
    val_patches: int = 20
    val_every: int = 0
    val_seed: int = 0
    init: str | None = None
    export: str | None = None
    resume: str | None = None

    def check(self) -> "BATrainConfig":
        from mfif.models.ba.network import CONFIGS

        if self.net not in NETS:
            raise InputError(f"--net must be one of {', '.join(NETS)}, got {self.net!r}")
        if self.arch not in CONFIGS:
            raise InputError(f"unknown --arch {self.arch!r}; choose one of {', '.join(CONFIGS)}")
        if self.crops < 1 or self.crop_size < PATCH:
            raise InputError(f"need crops >= 1 and crop-size >= {PATCH}, got {self.crops}, {self.crop_size}")
        if self.steps < 1 or self.pool < 1 or self.refresh < 0 or self.val_scenes < 0 or self.val_patches < 1:
            raise InputError("steps, pool, val-patches must be >= 1, refresh and val-scenes >= 0")
        parse_mix(self.mix)
        if not self.data:
            self.data = str(default_data_root())
        return self


def parse_mix(text: str) -> dict[str, float]:
    """``"ba-hard:0.3,ba-layered:0.4,layered:0.3"`` -> normalised weights of :data:`SOURCES`."""
    from mfif.models.training import parse_mix as parse_weights

    return parse_weights(text, SOURCES)


# ---------------------------------------------------------------------------------------------
# photos and scenes


def photo_sources(root: str | os.PathLike):
    """(train, val) :class:`mfif.synth.sources.PhotoSource` with the split described above."""
    from mfif.synth.sources import PhotoSource

    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: training photo folder not found")
    full = PhotoSource.from_folder(root)  # BSDS500 train + val, COCO128, alpha matting (not BSDS test)
    train, val = [], []
    for i, e in enumerate(full.entries):
        if e.collection == "alphamatting":
            (val if e.image.stem in VAL_FOREGROUNDS else train).append(i)
        elif e.collection == "bsds500":
            (val if e.image.parent.name == "val" else train).append(i)
        else:
            train.append(i)
    tr, va = full.subset(train), full.subset(val)
    for name, src in (("training", tr), ("validation", va)):
        if not src.with_alpha() or not src.without_alpha():
            raise InputError(f"{root}: the {name} photos need both alpha-matted foregrounds and plain "
                             f"backgrounds (alphamatting/ and bsds500/ folders)")
    return tr, va


def _scene_from_sample(sample, patch: int = 64):
    """A :class:`mfif.synth.recipes.MultiFocusSample` (2 frames) -> a grey BAScene (frame 0 = A)."""
    from mfif.synth import recipes as R

    frames = np.stack([R.to_grey(np.moveaxis(f, 0, -1)) for f in sample.frames]).astype(np.float32)
    focus = sample.focus[0].astype(np.float32)
    mixed = cv2.boxFilter((focus >= 0.5).astype(np.float32), -1, (patch, patch), anchor=(patch // 2, patch // 2),
                          normalize=True, borderType=cv2.BORDER_CONSTANT)
    gt = R.to_grey(np.moveaxis(sample.gt, 0, -1)).astype(np.float32)
    return R.BAScene(frames=frames, gt=gt, focus=focus, mixed=mixed, info=dict(sample.info))


def make_scene(source, kind: str, rng: np.random.Generator):
    """One grey two-frame scene of data source ``kind`` (see the module docstring)."""
    from mfif.synth import recipes as R

    if kind in ("ba-hard", "ba-layered"):
        fgs, bgs = source.with_alpha(), source.without_alpha()
        fg, bg = int(fgs[rng.integers(len(fgs))]), int(bgs[rng.integers(len(bgs))])
        recipe = R.BARecipe(compositing="hard" if kind == "ba-hard" else "layered")
        return R.make_ba_scene(source, fg, bg, rng, recipe)
    if kind == "layered":
        plain = source.without_alpha()
        for _ in range(10):
            idx = int(plain[rng.integers(len(plain))])
            if min(source.image_size(idx)) >= 256:
                break
        sample = R.make_layered(source, idx, rng, R.LayeredRecipe(size=256), frames=2)
        return _scene_from_sample(sample)
    raise InputError(f"unknown scene kind {kind!r}")


def _near_boundary(scene, fraction: float = 0.1) -> np.ndarray:
    """(H, W) bool: the 64x64 window centred at the pixel has >= 10 % focused and defocused pixels."""
    return (scene.mixed >= fraction - 1e-6) & (scene.mixed <= 1 - fraction + 1e-6)


def has_boundary(scene, fraction: float = 0.1, patch: int = PATCH) -> bool:
    half = patch // 2
    h, w = scene.focus.shape
    return bool(_near_boundary(scene, fraction)[half:h - patch + half + 1, half:w - patch + half + 1].any())


def draw_patches(scene, rng: np.random.Generator, n: int, boundary_only: bool):
    """``n`` patches of ``scene`` -> (inputs (n, 2, 64, 64) float32, labels (n,), boundary (n,))."""
    from mfif.synth import recipes as R

    cfg = R.BARecipe()
    xs, ys, bs = [], [], []
    for _ in range(n):
        s = R.ba_patch(scene, rng, cfg, boundary_only=boundary_only)
        xs.append(s.inputs)
        ys.append(s.label)
        bs.append(s.boundary)
    return np.stack(xs), np.array(ys, np.int64), np.array(bs, bool)


class ScenePool:
    """A rolling pool of scenes; ``refresh`` new scenes replace the oldest before each batch.

    Its state is plain data (:meth:`state`): the generator state now and the generator state each
    pool scene was made from, so a checkpoint rebuilds the pool exactly (:meth:`from_state`)
    without pickling it."""

    def __init__(self, source, mix: dict[str, float], size: int, seed: int, boundary_only: bool):
        self.source, self.mix, self.size, self.boundary_only = source, mix, size, boundary_only
        self.rng = np.random.default_rng([seed, 7])
        self.scenes: list = []
        self.scene_states: list[dict] = []  # the generator state each scene was made from
        while len(self.scenes) < size:
            self._add()

    def _make(self, rng):
        kinds, weights = list(self.mix), np.array(list(self.mix.values()))
        kind = kinds[int(rng.choice(len(kinds), p=weights))]
        return make_scene(self.source, kind, rng)

    def _add(self):
        for _ in range(20):
            before = self.rng.bit_generator.state
            scene = self._make(self.rng)
            if not self.boundary_only or has_boundary(scene):
                self.scenes.append(scene)
                self.scene_states.append(before)
                return
        raise InputError("could not make a scene with a focus boundary in 20 tries")

    def state(self) -> dict:
        """Plain data (dicts of ints) that :meth:`from_state` rebuilds the pool from."""
        return {"rng": self.rng.bit_generator.state, "scenes": list(self.scene_states), "size": self.size}

    @classmethod
    def from_state(cls, source, mix: dict[str, float], boundary_only: bool, state: dict) -> "ScenePool":
        pool = cls.__new__(cls)
        pool.source, pool.mix, pool.size, pool.boundary_only = source, mix, int(state["size"]), boundary_only
        pool.scenes, pool.scene_states = [], []
        for scene_state in state["scenes"]:
            rng = np.random.default_rng()
            rng.bit_generator.state = scene_state
            pool.scenes.append(pool._make(rng))
            pool.scene_states.append(scene_state)
        pool.rng = np.random.default_rng()
        pool.rng.bit_generator.state = state["rng"]
        return pool

    def crops(self, n_crops: int, size: int, refresh: int):
        """``n_crops`` random ``size`` x ``size`` crops of pool scenes for dense training.

        Returns inputs (n, 2, S, S) float32, labels (n, S-63, S-63) int64 (label of the window
        whose top-left corner is at that output position, i.e. of the pixel 32 below/right of it)
        and near-boundary flags of the same shape (>= 10 % focused and defocused in the window).
        For the boundary net each crop is placed so that a random near-boundary window is in it."""
        for _ in range(refresh):
            self.scenes.pop(0)
            self.scene_states.pop(0)
            self._add()
        out = size - PATCH + 1
        xs, ys, bs = [], [], []
        for k in self.rng.integers(0, len(self.scenes), n_crops):
            scene = self.scenes[int(k)]
            h, w = scene.focus.shape
            size_y, size_x = min(size, h), min(size, w)
            if self.boundary_only:
                near = _near_boundary(scene)
                cand = np.flatnonzero(near[CENTRE:h - PATCH + CENTRE + 1, CENTRE:w - PATCH + CENTRE + 1])
                ty, tx = divmod(int(cand[self.rng.integers(len(cand))]), w - PATCH + 1)
                y0 = int(np.clip(ty - self.rng.integers(0, size_y - PATCH + 1), 0, h - size_y))
                x0 = int(np.clip(tx - self.rng.integers(0, size_x - PATCH + 1), 0, w - size_x))
            else:
                y0, x0 = int(self.rng.integers(0, h - size_y + 1)), int(self.rng.integers(0, w - size_x + 1))
            crop = np.zeros((2, size, size), np.float32)
            label = np.zeros((out, out), np.int64)
            flag = np.zeros((out, out), bool)
            crop[:, :size_y, :size_x] = scene.frames[:, y0:y0 + size_y, x0:x0 + size_x]
            oy, ox = size_y - PATCH + 1, size_x - PATCH + 1
            cy, cx = y0 + CENTRE, x0 + CENTRE
            label[:oy, :ox] = scene.focus[cy:cy + oy, cx:cx + ox] >= 0.5
            near = _near_boundary(scene)[cy:cy + oy, cx:cx + ox]
            valid = np.zeros((out, out), bool)
            valid[:oy, :ox] = True
            flag[:oy, :ox] = near
            xs.append(crop)
            ys.append(np.where(valid, label, -100))  # -100: ignored by the loss (outside a small scene)
            bs.append(flag)
        return np.stack(xs), np.stack(ys), np.stack(bs)


def both_orders(x: np.ndarray, y: np.ndarray):
    """(n, 2, ...) inputs, (n, ...) labels -> torch (2n, 2, ...), (2n, ...): every patch (crop)
    also with A and B exchanged and the label flipped (ignored labels, -100, stay ignored)."""
    import torch

    xt = torch.from_numpy(np.ascontiguousarray(x))
    yt = torch.from_numpy(np.asarray(y, np.int64))
    return torch.cat([xt, xt.flip(1)]), torch.cat([yt, torch.where(yt < 0, yt, 1 - yt)])


def validation_set(source, n_scenes: int, per_scene: int, seed: int, mix: dict[str, float] | None = None) -> dict:
    """Fixed held-apart patches: ``random`` (natural positions) and ``boundary`` (near the FDB),
    each (inputs uint8-rounded float32, labels, boundary flags), one order (both are evaluated)."""
    mix = mix or {k: 1.0 / len(SOURCES) for k in SOURCES}
    kinds = [k for k, w in mix.items() if w > 0]
    rng = np.random.default_rng([seed, 1_000_003])
    out = {"random": ([], [], []), "boundary": ([], [], [])}
    made = 0
    while made < n_scenes:
        kind = kinds[made % len(kinds)]
        scene = make_scene(source, kind, rng)
        if not has_boundary(scene):
            continue
        for part, only in (("random", False), ("boundary", True)):
            x, y, b = draw_patches(scene, rng, per_scene, only)
            for lst, v in zip(out[part], (x, y, b)):
                lst.append(v)
        made += 1
    return {k: tuple(np.concatenate(v) for v in vals) for k, vals in out.items()}


def evaluate(net, val: dict, *, batch: int = 256, device=None) -> dict:
    """Accuracy (both orders) on the ``random`` patches, on their near-boundary subset, and on
    the ``boundary`` patches; plus the mean loss of each part."""
    import torch
    import torch.nn.functional as F

    device = device or next(net.parameters()).device
    was = net.training
    net.eval()
    res = {}
    with torch.inference_mode():
        for part, (x, y, b) in val.items():
            ok_ab, ok_ba = np.zeros(len(y), bool), np.zeros(len(y), bool)
            loss = 0.0
            for s in range(0, len(y), batch):
                xb, yb = both_orders(x[s:s + batch], y[s:s + batch])
                logits = net(xb.to(device)).float().cpu()
                loss += float(F.cross_entropy(logits, yb, reduction="sum"))
                ok = (logits.argmax(1) == yb).numpy()
                m = len(ok) // 2
                ok_ab[s:s + m], ok_ba[s:s + m] = ok[:m], ok[m:]
            correct = np.concatenate([ok_ab, ok_ba])
            res[f"{part}_accuracy"] = float(correct.mean())
            res[f"{part}_loss"] = loss / len(correct)
            res[f"{part}_examples"] = int(len(correct))
            if part == "random":
                flags = np.concatenate([b, b])
                res["random_near_boundary_accuracy"] = float(correct[flags].mean()) if flags.any() else float("nan")
                res["random_near_boundary_examples"] = int(flags.sum())
    net.train(was)
    return res


# ---------------------------------------------------------------------------------------------
# the loop


def lr_at(cfg: BATrainConfig, step: int) -> float:
    drops = sum(step >= int(f * cfg.steps) for f in LR_DROPS)
    return cfg.lr * (0.1 ** drops)


def train_ba(cfg: BATrainConfig, *, progress: bool = True, sources=None) -> dict:
    """Train (or resume) one BA network; returns a summary (also ``out/summary.json``).

    ``sources``: optional (train, val) photo sources (tests pass small ones)."""
    import torch
    import torch.nn.functional as F

    from mfif.models.ba.network import CONFIGS, BAResNet, save_ba_weights

    cfg.check()
    mix = parse_mix(cfg.mix)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    from mfif.models.device import resolve_device

    device = resolve_device(cfg.device)
    wall0 = time.time()
    train_src, val_src = sources if sources is not None else photo_sources(cfg.data)
    boundary_only = cfg.net == "boundary"

    torch.manual_seed(cfg.seed)
    net = BAResNet(CONFIGS[cfg.arch]).to(device).to(memory_format=torch.channels_last)  # faster on CPU
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    step, history, trained_seconds, pool = 0, [], 0.0, None

    if cfg.resume:
        ckpt, ckpt_path = load_checkpoint(cfg.resume)
        check_resume_config(ckpt_path, ckpt.get("config", {}), dataclasses.asdict(cfg),
                            keys=("net", "arch", "steps", "seed", "crops", "crop_size", "mix"))
        net.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        step, history, trained_seconds = ckpt["step"], ckpt.get("history", []), ckpt.get("trained_seconds", 0.0)
        pool = ScenePool.from_state(train_src, mix, boundary_only, ckpt["pool"])
    if pool is None and cfg.init:
        from mfif.models.ba.network import load_ba_weights

        state, info = load_ba_weights(cfg.init)
        if info.config != net.config:
            raise InputError(f"{cfg.init}: its network config {info.config} differs from --arch {cfg.arch}")
        net.load_state_dict(state)
    if pool is None:
        pool = ScenePool(train_src, mix, cfg.pool, cfg.seed, boundary_only)
        if not cfg.init:  # an initialised net keeps its channel means
            x, _, _ = ScenePool(train_src, mix, 8, cfg.seed + 1, False).crops(16, cfg.crop_size, 0)
            with torch.no_grad():
                net.mean.copy_(torch.from_numpy(x.mean(axis=(0, 2, 3))).to(net.mean))
    val = validation_set(val_src, cfg.val_scenes, cfg.val_patches, cfg.val_seed, mix) if cfg.val_scenes else None

    def checkpoint(at_step: int):
        atomic_save({"model": net.state_dict(), "optimizer": opt.state_dict(), "step": at_step,
                     "config": dataclasses.asdict(cfg), "net_config": net.config.to_dict(), "history": history,
                     "pool": pool.state(), "trained_seconds": trained_seconds + (time.time() - t_start)}, out / CHECKPOINT)

    def step_loss(at_step: int):
        x, y, near = pool.crops(cfg.crops, cfg.crop_size, cfg.refresh)
        if boundary_only:
            y = np.where(near, y, -100)
        xb, yb = both_orders(x, y)
        return F.cross_entropy(net.dense_logits(xb.to(device)), yb.to(device), ignore_index=-100)

    def validate(at_step: int):
        if val is None or not (cfg.val_every and at_step % cfg.val_every == 0):
            return None
        ev = evaluate(net, val, device=device)
        return ev, f"val accuracy random {ev['random_accuracy']:.4f} boundary {ev['boundary_accuracy']:.4f}"

    net.train()
    windows_per_step = 2 * cfg.crops * (cfg.crop_size - PATCH + 1) ** 2
    t_start = time.time()
    run = fit(net, opt, step_loss, start_step=step, total_steps=cfg.steps, lr_at=lambda s: lr_at(cfg, s),
              checkpoint=checkpoint, checkpoint_minutes=cfg.checkpoint_minutes, wall_start=wall0,
              max_minutes=cfg.max_minutes, max_steps=cfg.max_steps, validate=validate, history=history,
              log_every=5, postfix_every=5, units_per_step=windows_per_step, unit_name="windows_s",
              desc=f"train ba {cfg.net}", progress=progress, precision=cfg.precision)
    step, stopped_early, ema = run.step, run.stopped_early, run.loss_ema
    checkpoint(step)
    summary = {
        "net": cfg.net, "config": dataclasses.asdict(cfg), "net_config": net.config.to_dict(),
        "parameters": int(sum(p.numel() for p in net.parameters())), "steps": step, "stopped_early": stopped_early,
        "windows_seen": step * windows_per_step, "crops_seen": step * 2 * cfg.crops, "train_photos": len(train_src), "val_photos": len(val_src),
        "channel_mean": [float(v) for v in net.mean.cpu()],
        "train_seconds": trained_seconds + (time.time() - t_start), "wall_seconds_this_run": time.time() - wall0,
        "hardware": {"device": str(device), "cpu": platform.processor() or platform.machine(),
                     "torch_threads": torch.get_num_threads(), "torch": str(torch.__version__)},
        "final_loss_ema": ema,
    }
    if val is not None:
        summary["validation"] = evaluate(net, val, device=device)
    atomic_save({"format": "mfif-ba-resnet/1", "role": cfg.net, "config": net.config.to_dict(),
                  "state_dict": net.state_dict(), "meta": {"summary": json.loads(json.dumps(summary, default=str))}},
                 out / "final.pt")
    if cfg.export:
        from mfif.models.weights import provenance
        from mfif.models.ba.network import build_ba_resnet

        save_ba_weights(net.cpu(), cfg.export, cfg.net,
                        meta={**{k: summary[k] for k in ("net", "steps", "windows_seen", "train_seconds")},
                              **provenance(cfg.data)})
        summary["export"] = str(cfg.export)
        if val is not None:
            shipped = build_ba_resnet(weights=cfg.export, role=cfg.net)
            summary["validation_exported"] = evaluate(shipped, val, device=torch.device("cpu"))
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    (out / "history.json").write_text(json.dumps(history))
    return summary


# ---------------------------------------------------------------------------------------------
# command line (wired by mfif.models.train_cli)


def add_arguments(parser, name: str = "ba") -> None:
    """Flags of ``mfif train ba``: one per :class:`BATrainConfig` field."""
    add_dataclass_flags(parser, BATrainConfig, skip=("resume",), choices={"net": NETS, "precision": PRECISIONS},
                        helps={"net": "which BA net (default: initial)"})
    add_run_flags(parser)


def run(args) -> int:
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(BATrainConfig) if hasattr(args, f.name)}
    resume = resume_path(values.get("resume"), values["out"])
    values["resume"] = str(resume) if resume else None
    summary = train_ba(BATrainConfig(**values), progress=not args.quiet)
    v = summary.get("validation", {})
    print(f"ba {summary['net']}: {summary['steps']} steps, {summary['windows_seen']} windows, "
          f"validation accuracy random {v.get('random_accuracy', float('nan')):.4f}, "
          f"near-boundary {v.get('boundary_accuracy', float('nan')):.4f}, "
          f"{summary['train_seconds'] / 60:.1f} min -> {Path(values['out']) / 'final.pt'}")
    return 0
