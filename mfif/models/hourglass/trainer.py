"""Training HF-Seg and HF-Reg (Guerrero Peña et al. 2019, Sec. IV-A/C and V) on :mod:`mfif.synth`
data, with the one training loop :func:`mfif.models.training.fit`.

Losses (paper Eqs. 3-5):

- HF-Seg: binary cross-entropy of the 2-way softmax against the focus map,
  ``-mean(g log z0 + (1 - g) log z1)`` (:func:`seg_bce_loss`). **Convention:** ``g`` is the map
  where source A is sharp, so that fused = z0 A + z1 B selects the sharp pixels. (The paper's
  Eq. 1 blurs A where g^b = 1 while Eq. 3 pushes z0 -> 1 there; taken literally that would learn
  to pick the blurred source, so we read Eq. 3 with g = "A in focus".)
- HF-Reg (:func:`regression_loss`): ``sum_c mean_p phi(y_c, yhat_c) + sum_c |min y_c - min yhat_c|
  + sum_c |max y_c - max yhat_c|`` per image (Eq. 4: per-channel sum of means, not a mean over
  channels), averaged over the batch. ``phi`` is the NPS ``2 / (exp(-alpha |d|) + 1) - 1 =
  tanh(alpha |d| / 2)`` with alpha = 6 (Eq. 5), or L1 / MSE for the paper's comparison (Sec. V-C:
  only the dissimilarity changes; the range terms stay unless ``range_terms=False``).

Data: pairs of an :mod:`mfif.synth` recipe (:class:`RecipePairs`), made on the fly
(:class:`mfif.synth.datasets.PairDataset`, item ``step * pairs + j`` of the run's seed: a resumed
run sees the same data as an uninterrupted one) or read from a ``mfif synth --prerender`` folder
(``prerendered``; a random ``crop`` square of each stored sample, drawn from (seed, step)):

- ``thinlens`` (default): depth-layer scenes through a thin lens (disk PSF growing with the depth
  distance, occlusion-aware spill, camera noise, JPEG, exposure / white-balance differences, a
  sub-pixel shift); ``crop_area`` keeps the crop near the photo's own scale. HF-Seg learns the
  focus map of frame A (1 where A has the smaller blur); HF-Reg the all-in-focus GT.
- ``hourglass``: the first wave's data through :func:`mfif.synth.recipes.make_hourglass` (the
  paper's Eq. 1: a random subset of segments sharp, the rest one Gaussian blur, sigma ~ U(1, 5)).

Photos: BSDS500 *train* + COCO128 + alpha matting for training, BSDS500 *val* for validation
(:func:`photo_sources`); BSDS500 *test* (the dev set's source) is never read.

``commutative=True`` (the paper's protocol, Sec. IV-D): every batch holds each pair and its
reverse (B, A), the focus map inverted for HF-Seg and the same GT for HF-Reg.

BatchNorm statistics: with few steps at a high learning rate the running mean/variance lag behind
the weights, and an eval-mode net can then leave the range it was trained for (the first wave's
hf-reg shifted colours by up to 0.1 on saturated regions and fell 15 dB below the plain average).
Before each validation and before export the statistics are re-estimated with the current weights
on ``bn_batches`` fixed training batches (:func:`recalibrate_batchnorm`, a cumulative average).

Validation: ``val_count`` fixed full-size pairs of the same recipe from the BSDS500 *val* photos.

Example (a tiny run)::

    mfif train hf-seg --steps 20 --crop 64 --pairs 2 --out runs/tiny
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from mfif.errors import InputError
from mfif.models.training import (CHECKPOINT, PRECISIONS, RunConfig, add_dataclass_flags, add_run_flags, atomic_save,
                                  check_resume_config, dataclass_from_args, default_data_root, fit, load_checkpoint,
                                  resume_path)

# torch is imported inside the functions: ``mfif`` builds every subcommand's flags at start-up
# (:func:`add_arguments`), and ``mfif list`` / classical methods must not pay for importing torch.

LOSSES = {"seg": ("bce",), "reg": ("nps", "l1", "mse")}
DATA_RECIPES = ("thinlens", "hourglass")
CALIBRATION_STEP = 2**30  # BatchNorm calibration batches: far beyond any training step


# ---------------------------------------------------------------------------------------------
# losses


def nps(pred: torch.Tensor, target: torch.Tensor, alpha: float = 6.0) -> torch.Tensor:
    """Normalised Positive Sigmoid (Eq. 5), element-wise: 2 / (exp(-alpha |d|) + 1) - 1 = tanh(alpha |d| / 2)."""
    import torch

    return torch.tanh(0.5 * alpha * (pred - target).abs())


def dissimilarity(kind: str, pred: torch.Tensor, target: torch.Tensor, alpha: float = 6.0) -> torch.Tensor:
    """Element-wise phi: ``"nps"`` (alpha), ``"l1"`` |d| or ``"mse"`` d^2."""
    if kind == "nps":
        return nps(pred, target, alpha)
    if kind == "l1":
        return (pred - target).abs()
    if kind == "mse":
        return (pred - target) ** 2
    raise InputError(f"unknown regression loss {kind!r}; choose one of nps, l1, mse")


def regression_loss(pred: torch.Tensor, target: torch.Tensor, kind: str = "nps", alpha: float = 6.0,
                    range_terms: bool = True) -> torch.Tensor:
    """HF-Reg loss (Eq. 4) for (B, C, H, W) prediction and ground truth, averaged over the batch.

    Per image: ``sum_c mean_p phi(y_c(p), yhat_c(p)) + sum_c |min y_c - min yhat_c| + sum_c |max y_c - max yhat_c|``.
    """
    if pred.shape != target.shape or pred.ndim != 4:
        raise InputError(f"regression_loss: shapes {tuple(pred.shape)} and {tuple(target.shape)} must be equal (B, C, H, W)")
    per_channel = dissimilarity(kind, pred, target, alpha).flatten(2).mean(-1)  # (B, C)
    loss = per_channel.sum(1)
    if range_terms:
        p, t = pred.flatten(2), target.flatten(2)
        loss = loss + (t.amin(-1) - p.amin(-1)).abs().sum(1) + (t.amax(-1) - p.amax(-1)).abs().sum(1)
    return loss.mean()


def seg_bce_loss(logits: torch.Tensor, focus_a: torch.Tensor) -> torch.Tensor:
    """HF-Seg BCE (Eq. 3): logits (B, 2, H, W), focus_a (B, H, W) in [0, 1] (1 = A sharp, z0 -> 1)."""
    import torch.nn.functional as F

    if logits.ndim != 4 or logits.shape[1] != 2 or focus_a.shape != logits.shape[:1] + logits.shape[2:]:
        raise InputError(f"seg_bce_loss: logits {tuple(logits.shape)} and focus map {tuple(focus_a.shape)} do not match")
    logp = F.log_softmax(logits, dim=1)
    return -(focus_a * logp[:, 0] + (1.0 - focus_a) * logp[:, 1]).mean()


# ---------------------------------------------------------------------------------------------
# data


def photo_sources(train_root: str | os.PathLike):
    """(train, val) :class:`mfif.synth.sources.PhotoSource`: every photo under ``train_root``
    (BSDS500 train, COCO128, alpha matting) but the BSDS500 *val* split, which is validation."""
    from mfif.synth.sources import PhotoSource

    root = Path(train_root)
    if not root.is_dir():
        raise InputError(f"{root}: training photo folder not found")
    full = PhotoSource.from_folder(root)  # BSDS500 test is never scanned (held out for the dev set)
    val = [i for i, e in enumerate(full.entries) if e.collection == "bsds500" and e.image.parent.name == "val"]
    train = [i for i in range(len(full)) if i not in set(val)]
    if not train or not val:
        raise InputError(f"{root}: need BSDS500 'train' and 'val' photos (bsds500/images/{{train,val}})")
    return full.subset(train), full.subset(val)


def make_recipe(name: str, size: int | None, crop_area: tuple[float, float] = (0.08, 0.3)):
    """The :mod:`mfif.synth` recipe ``name`` making ``size`` squares (None: whole photos, no augmentation
    but the camera effects of ``thinlens``)."""
    from dataclasses import replace

    from mfif.synth import recipes as R
    from mfif.synth.augment import Augment

    if name == "thinlens":
        recipe = R.ThinLensRecipe(size=size, crop_scale=tuple(crop_area))
        return recipe if size is not None else replace(recipe, augment=replace(
            recipe.augment, hflip=False, vflip=False, rot90=False, brightness=0.0, contrast=0.0, saturation=0.0))
    if name == "hourglass":
        return R.HourglassRecipe(size=size) if size is not None else R.HourglassRecipe(size=None, augment=Augment())
    raise InputError(f"unknown training data recipe {name!r}; choose one of {', '.join(DATA_RECIPES)}")


def _both_orders(a, b, focus, gt, commutative: bool) -> dict:
    """Tensors A, B (P, 3, S, S), focus of A (P, S, S), GT -> the batch dict; with ``commutative``
    the P pairs are followed by their reverses (focus inverted, the same GT)."""
    import torch

    x = torch.cat([a, b], 1)
    if not commutative:
        return {"x": x, "focus": focus, "gt": gt}
    return {"x": torch.cat([x, torch.cat([b, a], 1)]), "focus": torch.cat([focus, 1.0 - focus]),
            "gt": torch.cat([gt, gt])}


class RecipePairs:
    """Training batches of one recipe: on the fly or from a pre-rendered folder.

    Args:
        source: training :class:`PhotoSource` (on the fly) or None with ``prerendered``.
        recipe: recipe name (:data:`DATA_RECIPES`).
        crop: square side of the training samples.
        seed: fixes every batch (batch ``k`` = f(seed, k)).
        prerendered: a ``mfif synth --prerender`` folder (its samples at least ``crop`` square).
    """

    def __init__(self, source, recipe: str = "thinlens", crop: int = 128, seed: int = 0, *,
                 prerendered: str = "", crop_area: tuple[float, float] = (0.08, 0.3)):
        self.crop, self.seed = int(crop), int(seed)
        if prerendered:
            from mfif.synth.prerender import PrerenderedPairs

            self.data = PrerenderedPairs(prerendered, as_uint8=True)
            side = int(self.data.meta["shapes"]["gt"][-1])
            if side < self.crop:
                raise InputError(f"{prerendered}: samples are {side} px, smaller than the {self.crop} px crop")
            self.prerendered = True
        else:
            from mfif.synth.datasets import PairDataset

            self.data = PairDataset(source, make_recipe(recipe, self.crop, crop_area), frames=2,
                                    length=2**40, seed=self.seed)
            self.prerendered = False

    def _item(self, index: int, rng: np.random.Generator):
        """(frames (2, 3, c, c), focus (2, c, c), gt (3, c, c)) float32 tensors of sample ``index``."""
        if not self.prerendered:
            item = self.data[index]
            return item["frames"], item["focus"], item["gt"]
        item = self.data[index % len(self.data)]
        s, c = item["gt"].shape[-1], self.crop
        y0, x0 = (int(v) for v in rng.integers(0, s - c + 1, 2))
        cut = lambda t: t[..., y0:y0 + c, x0:x0 + c].float().mul_(1.0 / 255.0)  # noqa: E731
        return cut(item["frames"]), cut(item["focus"]), cut(item["gt"])

    def batch(self, step: int, pairs: int, commutative: bool = True) -> dict:
        """Batch ``step``: x (P or 2P, 6, c, c), focus of A (.., c, c), gt (.., 3, c, c)."""
        import torch

        rng = np.random.default_rng([self.seed, int(step), 11])
        items = [self._item(int(step) * pairs + j, rng) for j in range(pairs)]
        frames = torch.stack([f for f, _, _ in items])
        return _both_orders(frames[:, 0], frames[:, 1], torch.stack([m[0] for _, m, _ in items]),
                            torch.stack([g for _, _, g in items]), commutative)


def validation_pairs(source, recipe: str, count: int, seed: int = 1234) -> list[dict]:
    """``count`` fixed full-size pairs of ``recipe`` from the photos of ``source`` (validation)."""
    from mfif.synth.datasets import PairDataset

    if count <= 0:
        return []
    data = PairDataset(source, make_recipe(recipe, None), frames=2, length=count, seed=seed)
    out = []
    for i in range(min(count, len(data))):
        s = data.sample(i)
        out.append({"name": s.info.get("photo", str(i)), "a": s.frames[0], "b": s.frames[1], "gt": s.gt,
                    "focus": s.focus[0]})
    return out


def recalibrate_batchnorm(net, batches) -> int:
    """Re-estimate every BatchNorm's running mean / variance with the current weights: reset them,
    run ``batches`` (input tensors) through the net in train mode without gradients, and keep the
    cumulative average of the batch statistics (``momentum=None``). Returns the number of layers.

    The running statistics of a short, high-learning-rate run are an exponential average over
    weights that no longer exist; the recalibrated ones belong to the weights that are shipped."""
    import torch

    layers = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not layers:
        return 0
    was, momenta = net.training, [m.momentum for m in layers]
    for m in layers:
        m.reset_running_stats()
        m.momentum = None
    net.train()
    with torch.no_grad():
        for x in batches:
            net(x)
    for m, mom in zip(layers, momenta):
        m.momentum = mom
    net.train(was)
    return len(layers)


# ---------------------------------------------------------------------------------------------
# configuration and loop


@dataclass
class HourglassTrainConfig(RunConfig):
    """One training run (stored in every checkpoint; every field is a ``--flag``).

    Attributes:
        variant: ``"seg"`` (HF-Seg) or ``"reg"`` (HF-Reg).
        out: run folder (``last.pt``, ``best.pt``, ``history.json``, the exported weights).
        loss: ``"bce"`` (seg); ``"nps"``, ``"l1"`` or ``"mse"`` (reg); None = bce / nps.
        alpha: NPS alpha (paper 6).
        range_terms: add the |min| / |max| range terms (HF-Reg, paper Eq. 4).
        base, depth: network width and number of poolings (:class:`HourglassConfig`).
        residual: HF-Reg only: the net adds the mean of the sources to its output (not in the paper).
        recipe: training data, ``"thinlens"`` or ``"hourglass"`` (the first wave's Gaussian pairs).
        prerendered: read the training pairs from this ``mfif synth --prerender`` folder instead.
        crop_area: area share of the photo a ``thinlens`` crop covers before it is resized to
            ``crop`` (0.08-0.3 of a BSDS500 photo at 128 px: close to the photo's own scale).
        crop: square training crop (paper 400; 128 on CPU).
        pairs: pairs per batch.
        commutative: each pair is also fed reversed in the same batch (paper Sec. IV-D).
        steps: optimiser steps; the learning rate follows a cosine from ``lr`` to ``lr * lr_final``.
        lr: Adam learning rate (paper 1e-5 for 1000 epochs; 1e-3 for our short CPU budget).
        lr_final: final fraction of ``lr``.
        init_weights: start from this weights file (an exported ``hf_<variant>.safetensors``, a
            ``best.pt`` or a ``last.pt``; its architecture must match) instead of the random init;
            the optimiser and the schedule start afresh. Ignored by ``--resume``.
        train_root: folder with ``bsds500``, ``coco128-seg``, ``alphamatting``.
        val_count: full-size validation pairs (0 = no validation).
        val_every: steps between validations.
        bn_batches: training batches that re-estimate the BatchNorm statistics before each
            validation and the export (0 = keep the running averages).
        channels_last: run the net in channels-last memory format (faster convolutions on CPU).
    """

    variant: str = "seg"
    out: str = "runs/hf-seg"
    loss: str | None = None
    alpha: float = 6.0
    range_terms: bool = True
    base: int = 16
    depth: int = 4
    residual: bool = False
    recipe: str = "thinlens"
    prerendered: str = ""
    crop_area: tuple[float, float] = (0.08, 0.3)
    crop: int = 128
    pairs: int = 4
    commutative: bool = True
    steps: int = 2000
    lr: float = 1e-3
    lr_final: float = 0.02
    init_weights: str = ""
    train_root: str = ""
    val_count: int = 8
    val_every: int = 250
    bn_batches: int = 8
    channels_last: bool = True
    checkpoint_minutes: float = 3.0

    def resolved(self) -> "HourglassTrainConfig":
        if self.variant not in LOSSES:
            raise InputError(f"unknown hourglass variant {self.variant!r}; choose one of seg, reg")
        loss = self.loss or LOSSES[self.variant][0]
        if loss not in LOSSES[self.variant]:
            raise InputError(f"loss {loss!r} is not valid for hf-{self.variant}; choose one of {', '.join(LOSSES[self.variant])}")
        if self.crop < 16 or self.pairs < 1 or self.steps < 1 or self.lr <= 0 or self.bn_batches < 0:
            raise InputError(f"invalid training config: crop={self.crop}, pairs={self.pairs}, steps={self.steps}, "
                             f"lr={self.lr}, bn_batches={self.bn_batches}")
        if self.recipe not in DATA_RECIPES:
            raise InputError(f"unknown training data recipe {self.recipe!r}; choose one of {', '.join(DATA_RECIPES)}")
        if self.precision not in PRECISIONS:
            raise InputError(f"precision {self.precision!r}: expected one of {', '.join(PRECISIONS)}")
        lo, hi = self.crop_area
        if not 0 < lo <= hi <= 1:
            raise InputError(f"crop area must satisfy 0 < low <= high <= 1, got {self.crop_area}")
        d = asdict(self)
        d.update(loss=loss, crop_area=(float(lo), float(hi)), train_root=self.train_root or str(default_data_root()))
        return HourglassTrainConfig(**d)

    def net_config(self):
        from mfif.models.hourglass.network import HourglassConfig

        return HourglassConfig(variant=self.variant, base=self.base, depth=self.depth, residual=self.residual)


def lr_at(cfg: HourglassTrainConfig, step: int) -> float:
    """Cosine from ``lr`` at step 0 to ``lr * lr_final`` at ``steps`` (a function of the step only,
    so a run stopped by its wall budget and resumed follows the same schedule)."""
    t = min(step / max(cfg.steps, 1), 1.0)
    return cfg.lr * (cfg.lr_final + (1 - cfg.lr_final) * 0.5 * (1 + math.cos(math.pi * t)))


def compute_loss(cfg: HourglassTrainConfig, net, batch: dict):
    out = net(batch["x"])
    if cfg.variant == "seg":
        return seg_bce_loss(out.float(), batch["focus"])
    return regression_loss(out.float(), batch["gt"], cfg.loss, cfg.alpha, cfg.range_terms)


def _psnr(x: np.ndarray, ref: np.ndarray) -> float:
    mse = float(np.mean((x.astype(np.float64) - ref) ** 2))
    return 99.0 if mse <= 1e-10 else 10.0 * math.log10(1.0 / mse)


def validate(cfg: HourglassTrainConfig, net, pairs: list[dict], device) -> dict:
    """Mean PSNR of the fused image vs GT (and of the sources' average), mean L1 error, and the
    commutativity MSE between f(A, B) and f(B, A) over the validation pairs; HF-Reg also reports
    PSNR after Near and how many pairs fall below the average."""
    import torch

    was_training = net.training
    net.eval()
    psnr, l1, comm, psnr_near, psnr_avg = [], [], [], [], []
    with torch.no_grad():
        for p in pairs:
            a, b = torch.from_numpy(p["a"])[None], torch.from_numpy(p["b"])[None]
            x = torch.cat([torch.cat([a, b], 1), torch.cat([b, a], 1)], 0).to(device)
            out = net(x).float().cpu()
            if cfg.variant == "seg":
                z_ab = torch.sigmoid(out[0, 0] - out[0, 1]).numpy()
                z_ba = torch.sigmoid(out[1, 1] - out[1, 0]).numpy()  # weight of A from the reversed pair
                f_ab = z_ab * p["a"] + (1 - z_ab) * p["b"]
                f_ba = z_ba * p["a"] + (1 - z_ba) * p["b"]
            else:
                f_ab, f_ba = out[0].numpy().clip(0, 1), out[1].numpy().clip(0, 1)
                d = ((np.stack([p["a"], p["b"]]) - f_ab[None]) ** 2).sum(1)
                near = np.where((d[0] <= d[1])[None], p["a"], p["b"])
                psnr_near.append(_psnr(near, p["gt"]))
            psnr.append(_psnr(f_ab, p["gt"]))
            psnr_avg.append(_psnr(0.5 * (p["a"] + p["b"]), p["gt"]))
            l1.append(float(np.abs(f_ab - p["gt"]).mean()))
            comm.append(float(np.mean((f_ab - f_ba) ** 2)))
    net.train(was_training)
    res = {"psnr": float(np.mean(psnr)), "psnr_average": float(np.mean(psnr_avg)), "l1": float(np.mean(l1)),
           "commutativity_mse": float(np.mean(comm)),
           "below_average": int(sum(p < q for p, q in zip(psnr, psnr_avg)))}
    if psnr_near:
        res["psnr_near"] = float(np.mean(psnr_near))
    return res


def _load_init_weights(net, cfg: HourglassTrainConfig) -> None:
    """Load ``cfg.init_weights`` into ``net`` (fp16 files are widened); the architectures must match."""
    from mfif.models.hourglass.network import check_state_dict, read_hourglass_weights

    state, info = read_hourglass_weights(cfg.init_weights)
    if asdict(info.config) != asdict(net.config):
        raise InputError(f"{cfg.init_weights}: holds the net {info.config}, but this run trains {net.config}")
    check_state_dict(net, state, cfg.init_weights)
    net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})


# settings a resumed run may change (budgets, where it runs, how often it reports)
_RESUMABLE = ("out", "max_minutes", "max_steps", "device", "threads", "steps", "net", "checkpoint_minutes",
              "val_every", "precision", "channels_last", "prerendered")


def train(cfg: HourglassTrainConfig, *, resume: bool | str = False, progress: bool = True, sources=None) -> dict:
    """Run (or resume) one training run; returns a summary dict (also written to ``out/summary.json``).

    Files in ``cfg.out``: ``last.pt`` (model, optimiser, step, config, history: tensors and plain
    data; every ``checkpoint_minutes`` and at the end), ``best.pt`` (best validation PSNR),
    ``hf_<variant>.safetensors`` (fp16 export of the best, or the last model without validation),
    ``history.json``. ``sources``: optional (train, val) photo sources (tests pass small ones).
    """
    import torch

    from mfif.models.device import resolve_device
    from mfif.models.hourglass.network import HourglassNet, save_hourglass_weights
    from mfif.models.weights import provenance

    cfg = cfg.resolved()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    wall0 = time.time()
    device = resolve_device(cfg.device)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
    net = HourglassNet(cfg.net_config()).to(device).to(memory_format=fmt)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    step, history, best, elapsed_before = 0, [], None, 0.0
    ckpt_path = out / CHECKPOINT
    if resume:
        ckpt, loaded_from = load_checkpoint(resume_path(resume, out))
        check_resume_config(loaded_from, ckpt["config"], asdict(cfg), ignore=_RESUMABLE)
        net.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        step, history, best = ckpt["step"], ckpt.get("history", []), ckpt.get("best")
        elapsed_before = ckpt.get("elapsed_s", 0.0)
    elif cfg.init_weights:
        _load_init_weights(net, cfg)
    train_src, val_src = sources if sources is not None else (
        (None, photo_sources(cfg.train_root)[1]) if cfg.prerendered else photo_sources(cfg.train_root))
    data = RecipePairs(train_src, cfg.recipe, cfg.crop, cfg.seed, prerendered=cfg.prerendered, crop_area=cfg.crop_area)
    val = validation_pairs(val_src, cfg.recipe, cfg.val_count)
    calibration = [data.batch(CALIBRATION_STEP + k, cfg.pairs, cfg.commutative)["x"] for k in range(cfg.bn_batches)]

    def to_device(x):
        return x.to(device).contiguous(memory_format=fmt)

    def recalibrate():
        if calibration:
            recalibrate_batchnorm(net, [to_device(x) for x in calibration])

    t_start = time.time()

    def elapsed() -> float:
        return elapsed_before + time.time() - t_start

    def checkpoint(at_step: int) -> None:
        atomic_save({"model": net.state_dict(), "optimizer": opt.state_dict(), "step": at_step,
                     "config": {**asdict(cfg), "net": asdict(cfg.net_config())}, "history": history,
                     "best": best, "elapsed_s": elapsed()}, ckpt_path)
        (out / "history.json").write_text(json.dumps(history, indent=1))

    def run_validation(at_step: int) -> dict:
        """Recalibrate the BatchNorm statistics, validate, keep ``best.pt``."""
        nonlocal best
        recalibrate()  # train-mode steps use batch statistics: the running ones only matter in eval
        v = validate(cfg, net, val, device)
        v["wall_s"] = round(elapsed(), 1)
        if best is None or v["psnr"] > best["psnr"]:
            best = {"step": at_step, **v}
            atomic_save({"model": net.state_dict(), "config": {**asdict(cfg), "net": asdict(cfg.net_config())},
                         "step": at_step, "val": v}, out / "best.pt")
        return v

    def step_loss(at_step: int):
        batch = data.batch(at_step, cfg.pairs, cfg.commutative)
        return compute_loss(cfg, net, {"x": to_device(batch["x"]), "focus": batch["focus"].to(device),
                                       "gt": batch["gt"].to(device)})

    def validate_hook(at_step: int):
        if not val or not (at_step % cfg.val_every == 0 or at_step == cfg.steps):
            return None
        v = run_validation(at_step)
        return {f"val_{k}": x for k, x in v.items()}, ", ".join(f"{k} {x:.5g}" for k, x in v.items())

    net.train()
    samples = cfg.pairs * (2 if cfg.commutative else 1)
    result = fit(net, opt, step_loss, start_step=step, total_steps=cfg.steps, lr_at=lambda s: lr_at(cfg, s),
                 checkpoint=checkpoint, checkpoint_minutes=cfg.checkpoint_minutes, wall_start=wall0,
                 max_minutes=cfg.max_minutes, max_steps=cfg.max_steps, validate=validate_hook, history=history,
                 log_every=10, postfix_every=5, units_per_step=samples, unit_name="samples_s",
                 desc=f"hf-{cfg.variant} ({cfg.loss}, {cfg.recipe})", progress=progress, precision=cfg.precision)
    step = result.step
    if val and not any(r.get("step") == step and "val_psnr" in r for r in history):  # stopped between validations
        v = run_validation(step)
        history.append({"step": step, **{f"val_{k}": x for k, x in v.items()}})
    checkpoint(step)
    if best is not None and (out / "best.pt").is_file():
        net.load_state_dict(load_checkpoint(out / "best.pt")[0]["model"])
    else:
        recalibrate()
    meta = {"config": asdict(cfg), "step": step, "best": best, "wall_s": round(elapsed(), 1),
            "source": "best" if best is not None else "last", "torch": str(torch.__version__), "device": str(device),
            **provenance(cfg.train_root)}
    exported = save_hourglass_weights(net.to(memory_format=torch.contiguous_format),
                                      out / f"hf_{cfg.variant}.safetensors", meta)
    summary = {"variant": cfg.variant, "loss": cfg.loss, "recipe": cfg.recipe, "steps_done": step, "steps": cfg.steps,
               "stopped_early": result.stopped_early, "wall_s": round(elapsed(), 1),
               "samples_seen": step * samples, "best": best, "weights": str(exported),
               "final_loss_ema": result.loss_ema}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


# ---------------------------------------------------------------------------------------------
# command line (``mfif train hf-seg|hf-reg``, table in :mod:`mfif.models.train_cli`)


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    """Flags of ``mfif train hf-seg|hf-reg``: one per field of :class:`HourglassTrainConfig`."""
    variant = name.split("-", 1)[-1]
    add_dataclass_flags(parser, HourglassTrainConfig, skip=("variant",), defaults={"out": f"runs/{name}"},
                        choices={"loss": LOSSES[variant], "recipe": DATA_RECIPES, "precision": PRECISIONS},
                        helps={"loss": f"default: {LOSSES[variant][0]}"})
    add_run_flags(parser)
    parser.set_defaults(hourglass_name=name)


def config_from_args(args) -> HourglassTrainConfig:
    name = getattr(args, "hourglass_name", None) or getattr(args, "net", "hf-seg")
    cfg = dataclass_from_args(HourglassTrainConfig, args, variant=name.split("-", 1)[-1])
    cfg.crop_area = tuple(cfg.crop_area)
    return cfg


def run(args) -> int:
    """``mfif train hf-seg|hf-reg``: train, print the summary as JSON."""
    summary = train(config_from_args(args), resume=args.resume, progress=not args.quiet)
    print(json.dumps(summary, indent=1))
    return 0


__all__ = ["HourglassTrainConfig", "RecipePairs", "nps", "dissimilarity", "regression_loss", "seg_bce_loss",
           "photo_sources", "make_recipe", "validation_pairs", "recalibrate_batchnorm", "validate", "lr_at", "train",
           "add_arguments", "run"]
