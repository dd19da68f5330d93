"""Training IFCNN (Zhang et al. 2020, Secs. 2.3-2.5): ``mfif train ifcnn``.

Data (all from :mod:`mfif.synth` recipes): each training pair is drawn from a weighted ``mix`` of
recipes (default ``thinlens:0.5,layered:0.3,ifcnn:0.2``):

- ``thinlens`` -- the thin-lens renderer: IFCNN-style segment depths cut into planes, each plane
  blurred by its disk circle of confusion (growing with the dioptric distance from the focal
  plane), occlusion-aware compositing (a blurred near layer spreads over a sharp far one), sensor
  noise, JPEG q75-98, +-0.15 EV exposure, +-3 % white balance, +-0.5 px misregistration
  (:class:`mfif.synth.recipes.ThinLensRecipe`);
- ``layered`` -- depth-layer scenes (segments at random depths, disk PSF, layered compositing;
  :class:`mfif.synth.recipes.LayeredRecipe`);
- ``ifcnn`` -- the paper's recipe (whole photo blurred by one Gaussian, hard-mask composite, Eq. 5;
  the first wave's only data).

Pairs are synthesised on the fly (``workers`` DataLoader processes), or read from folders made
once by ``mfif synth --prerender`` (``data``: comma-separated folders, weighted by the ``mix``
weight of the recipe each was rendered with; a random ``crop`` is cut from larger renders). Photos:
``data/train`` without the BSDS500 test split (the dev set) and val split (our validation). GT =
the all-in-focus render.

Two phases, as the paper:

1. basic pre-training with the MSE loss (Eq. 7); the BatchNorm momentum falls linearly from 0.99
   to 0 (PyTorch's convention: the weight of the new batch), so the running statistics settle;
2. fine-training with BatchNorm frozen (eval-mode statistics, affine parameters fixed) and the
   fine loss; the photos are jittered (brightness and saturation x U(0.8, 1.2), on-the-fly data)
   and turned grey (replicated to 3 channels) with probability ``grey_prob``, as the paper's
   colour augmentation.

Both phases use the 'poly' learning rate lr_i = lr_0 (1 - i / max_i)^0.9 (Eq. 9), restarting at
``lr`` for phase 2. ``--init`` starts from trained weights (e.g. a shipped file; ``--pre-steps 0``
continues with phase 2 only; a different ``--fuse-rule`` re-uses the weights of another rule).

What this environment forces (SPEC, IFCNN section), and our choices:

- CONV1: no ImageNet ResNet-101 exists here. ``conv1="bank"`` (default) fills the 64 7x7 filters
  with a fixed, hand-made filter bank (:func:`filter_bank`: per-channel near-identity, Gaussians,
  first/second derivatives of Gaussians, LoG, DoG and Gabor filters on the luminance, plus
  colour-opponent (R-G, B-Y) Gaussians and derivatives; unit L2 norm) and freezes it, as the paper
  freezes its CONV1. ``conv1="learned"`` starts from the same bank and trains it.
- Perceptual loss: no ResNet-101 features either. ``fine_loss="ssim-grad"`` (default) is
  MSE + w_ssim (1 - SSIM) + w_grad mean |grad P - grad G| (SSIM with an 11x11 Gaussian window,
  sigma 1.5; gradients as forward differences): both reward the texture and edges the paper's
  perceptual term is there for and that MSE alone blurs. ``fine_loss="mse"`` is the ablation
  (phase 2 with MSE only, the paper's BASELINE).
- Optimiser: the paper uses SGD (lr 0.01, minibatch 64 then 32, 5000 + 60000 iterations at
  224x224 on a GPU). A CPU budget is ~1/1000 of that; ``optimizer="adam"`` (default) converges much
  faster in so few steps, ``"sgd"`` (momentum 0.9) is the paper's.

The loop is :func:`mfif.models.training.fit` (``precision="bf16"``: autocast forward; the losses
are computed in fp32). Losses are computed in image space ([0, 1]; the network's output
de-normalised). Batch ``k`` of phase ``p`` is a pure function of (seed, p, k): a resumed run sees
the same data as an uninterrupted one. A checkpoint (tensors and plain data only) is written
every ``checkpoint_minutes``, at the end of each phase and when a budget (``max_minutes``,
``max_steps``) stops the run, to ``out/last.pt``; ``--resume [CKPT]`` continues from it. Every
invocation is recorded as a leg in ``out/history.json`` (steps, wall time, validation). The final
weights are exported as an fp16 safetensors file ``out/ifcnn-<rule>.safetensors`` that
:func:`mfif.models.ifcnn.network.load_ifcnn_weights` reads.

Validation: a fixed held-out set of ``val_count`` whole BSDS500 *val* photos, the recipes
``thinlens``, ``layered``, ``ifcnn`` in turn, without augmentation (independent of ``mix``, so
runs on different data compare); PSNR / SSIM of the fused image against the GT.

Example (a tiny run)::

    mfif train ifcnn --pre-steps 5 --fine-steps 5 --crop 48 --batch 2 --out runs/ifcnn-tiny
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import shlex
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from mfif.errors import InputError
from mfif.models.training import (CHECKPOINT, PRECISIONS, RunConfig, add_dataclass_flags, add_run_flags, parse_mix,
                                  atomic_save, check_resume_config, dataclass_from_args, default_data_root, fit,
                                  load_checkpoint, resume_path)

# torch is imported inside the functions (the CLI builds every trainer's flags at start-up).

CONV1_CHOICES = ("bank", "learned")
FINE_LOSSES = ("ssim-grad", "mse")
OPTIMIZERS = ("adam", "sgd")


# ---------------------------------------------------------------------------------------------
# CONV1 filter bank


def _gauss_grid(size: int = 7):
    r = size // 2
    y, x = np.mgrid[-r:r + 1, -r:r + 1].astype(np.float64)
    return y, x


def _spatial_filters() -> dict[str, np.ndarray]:
    y, x = _gauss_grid()
    out: dict[str, np.ndarray] = {}

    def g(s):
        k = np.exp(-(x * x + y * y) / (2 * s * s))
        return k / k.sum()

    for s in (0.5, 0.7, 1.0, 1.5, 2.0):
        out[f"G{s}"] = g(s)
    for s in (0.7, 1.0, 1.5, 2.0):
        out[f"Gx{s}"] = -x / (s * s) * g(s)
        out[f"Gy{s}"] = -y / (s * s) * g(s)
    for s in (1.0, 1.5):
        out[f"Gxx{s}"] = (x * x / s ** 4 - 1 / s ** 2) * g(s)
        out[f"Gyy{s}"] = (y * y / s ** 4 - 1 / s ** 2) * g(s)
        out[f"Gxy{s}"] = (x * y / s ** 4) * g(s)
    for s in (0.8, 1.5, 2.0):
        out[f"LoG{s}"] = ((x * x + y * y) / s ** 4 - 2 / s ** 2) * g(s)
    out["DoG"] = g(0.7) - g(1.5)
    for lam in (2.5, 3.0, 4.0, 5.0, 8.0):
        sigma = min(0.56 * lam, 2.0)
        for theta in (0.0, 22.5, 45.0, 67.5, 90.0, 112.5, 135.0, 157.5):
            t = math.radians(theta)
            u = x * math.cos(t) + y * math.sin(t)
            env = np.exp(-(x * x + y * y) / (2 * sigma * sigma))
            even = env * np.cos(2 * math.pi * u / lam)
            out[f"Gabor{lam}/{theta:.0f}/even"] = even - env * (even.sum() / env.sum())  # zero mean
            out[f"Gabor{lam}/{theta:.0f}/odd"] = env * np.sin(2 * math.pi * u / lam)
    return out


def filter_bank(min_residual: float = 0.25) -> tuple[np.ndarray, list[str]]:
    """The fixed CONV1 bank: (64, 3, 7, 7) float32 filters (unit L2 norm) and their names.

    Colour vectors: single channels R, G, B (a Gaussian of sigma 0.5: near identity), luminance
    (1, 1, 1)/sqrt(3), R-G (1, -1, 0)/sqrt(2) and B-Y (-1, -1, 2)/sqrt(6). Candidates are taken in
    a fixed priority order (identity, luminance Gaussians/derivatives/LoG/DoG, luminance Gabors,
    colour-opponent filters) and kept only when their component outside the span of the filters
    already kept has L2 norm >= ``min_residual``, until 64 are kept (so no filter is redundant).
    """
    sp = _spatial_filters()
    colours = {"R": np.array([1.0, 0, 0]), "G": np.array([0, 1.0, 0]), "B": np.array([0, 0, 1.0]),
               "lum": np.array([1, 1, 1]) / math.sqrt(3), "rg": np.array([1, -1, 0]) / math.sqrt(2),
               "by": np.array([-1, -1, 2]) / math.sqrt(6)}
    lum_names = ["G1.0", "G1.5", "Gx0.7", "Gy0.7", "Gx1.0", "Gy1.0", "Gx2.0", "Gy2.0", "Gxx1.0", "Gyy1.0",
                 "Gxy1.0", "Gxx1.5", "Gyy1.5", "Gxy1.5", "LoG0.8", "LoG1.5", "DoG"]
    opp_names = ["G1.0", "G1.5", "Gx0.7", "Gy0.7", "Gx1.0", "Gy1.0", "Gx2.0", "Gy2.0", "Gxx1.0", "Gyy1.0", "Gxy1.0",
                 "LoG0.8", "DoG"]
    plan = [(c, "G0.5") for c in "RGB"] + [("lum", k) for k in lum_names]
    plan += [("lum", k) for k in sp if k.startswith("Gabor")]
    plan += [(c, k) for k in opp_names for c in ("rg", "by")]
    plan += [("lum", k) for k in ("G0.7", "G2.0", "Gx1.5", "Gy1.5", "LoG2.0")]
    plan += [(c, k) for k in ("Gx1.0", "Gy1.0", "Gxx1.0", "Gyy1.0") for c in "RGB"]
    plan += [(c, f"Gabor{lam}/{t}/{ph}") for lam in (3.0, 5.0) for t in ("0", "45", "90", "135")
             for ph in ("even", "odd") for c in ("rg", "by")]
    kept: list[np.ndarray] = []
    basis = np.zeros((0, 3 * 49))
    names: list[str] = []
    for cname, sname in plan:
        f = (colours[cname][:, None, None] * sp[sname][None]).ravel()
        f = f / np.linalg.norm(f)
        residual = f - basis.T @ (basis @ f) if len(basis) else f
        if np.linalg.norm(residual) < min_residual:
            continue
        basis = np.vstack([basis, residual / np.linalg.norm(residual)])
        kept.append(f.reshape(3, 7, 7))
        names.append(f"{cname}:{sname}")
        if len(kept) == 64:
            return np.stack(kept).astype(np.float32), names
    raise RuntimeError(f"filter bank: only {len(kept)} independent filters among the candidates")


# ---------------------------------------------------------------------------------------------
# losses


def _ssim_window(device, dtype, size: int = 11, sigma: float = 1.5):
    import torch

    r = size // 2
    g = torch.exp(-(torch.arange(-r, r + 1, device=device, dtype=dtype) ** 2) / (2 * sigma * sigma))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(3, 1, size, size).contiguous()


def ssim(pred, target, data_range: float = 1.0):
    """Mean SSIM (Wang et al. 2004; 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03; no padding)
    of (B, 3, H, W) images, per channel, averaged."""
    import torch.nn.functional as F

    w = _ssim_window(pred.device, pred.dtype)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2

    def filt(x):
        return F.conv2d(x, w, groups=3)

    mu_p, mu_t = filt(pred), filt(target)
    var_p = filt(pred * pred) - mu_p ** 2
    var_t = filt(target * target) - mu_t ** 2
    cov = filt(pred * target) - mu_p * mu_t
    s = ((2 * mu_p * mu_t + c1) * (2 * cov + c2)) / ((mu_p ** 2 + mu_t ** 2 + c1) * (var_p + var_t + c2))
    return s.mean()


def gradient_l1(pred, target):
    """Mean |d/dx (P - G)| + |d/dy (P - G)| (forward differences)."""
    d = pred - target
    return (d[..., :, 1:] - d[..., :, :-1]).abs().mean() + (d[..., 1:, :] - d[..., :-1, :]).abs().mean()


def fine_loss(pred, target, kind: str, w_ssim: float, w_grad: float):
    """Phase-2 loss: ``"ssim-grad"`` = MSE + w_ssim (1 - SSIM) + w_grad gradient L1; ``"mse"`` = MSE."""
    import torch.nn.functional as F

    mse = F.mse_loss(pred, target)
    if kind == "mse":
        return mse
    if kind != "ssim-grad":
        raise InputError(f"unknown fine loss {kind!r}; choose one of {', '.join(FINE_LOSSES)}")
    return mse + w_ssim * (1.0 - ssim(pred, target)) + w_grad * gradient_l1(pred, target)


# ---------------------------------------------------------------------------------------------
# configuration

DATA_KINDS = ("thinlens", "layered", "ifcnn")  # the recipes a training mix may draw from
VAL_KINDS = DATA_KINDS  # validation pair i uses VAL_KINDS[i % 3], whatever the mix
DEFAULT_MIX = "thinlens:0.5,layered:0.3,ifcnn:0.2"
RESUME_FREE = ("out", "device", "threads", "workers", "checkpoint_minutes", "max_minutes", "max_steps",
               "val_every", "precision", "channels_last")  # may change when a run is resumed


@dataclass
class IFCNNTrainConfig(RunConfig):
    """One training run (stored in every checkpoint); the :class:`RunConfig` fields plus:

    Attributes:
        out: run folder (default ``runs/ifcnn-<fuse_rule>``).
        fuse_rule: ``max``, ``mean`` or ``sum``.
        conv1: ``"bank"`` (fixed filter bank, frozen) or ``"learned"`` (bank init, trained).
        fine_loss: ``"ssim-grad"`` (our perceptual-loss substitute) or ``"mse"`` (ablation).
        w_ssim, w_grad: weights of the substitute's terms.
        crop: training crop side (paper 224; smaller on CPU).
        batch: pairs per step (paper 64 then 32).
        pre_steps, fine_steps: steps of the two phases (paper 5000 and 60000).
        optimizer: ``"adam"`` or ``"sgd"`` (momentum 0.9, the paper's).
        lr: base learning rate of both phases (poly decay, power 0.9); None = 1e-3 (adam) / 1e-2 (sgd).
        weight_decay: L2 penalty.
        grey_prob: phase 2: probability a sample is turned grey (paper 0.5).
        jitter: phase 2, on-the-fly data: brightness and saturation factors in [1 - jitter, 1 + jitter] (paper 0.2).
        mix: recipe weights, ``"thinlens:0.5,layered:0.3,ifcnn:0.2"`` (names from :data:`DATA_KINDS`).
        data: pre-rendered folders (``mfif synth --prerender``), comma separated; empty = synthesise on the fly.
        train_root: folder with ``bsds500`` (+ COCO128, alpha matting); BSDS500 test and val are not trained on.
        val_count: validation pairs (BSDS500 val photos, whole images, fixed seed); 0 = none.
        val_every: steps between validations (and at the end of each phase).
        init: optional weights to start from (a shipped file, another run's export).
        channels_last: run the network in channels-last memory format.
        workers: DataLoader worker processes for the synthesis (0 = in the training process).
    """

    out: str = ""
    fuse_rule: str = "max"
    conv1: str = "bank"
    fine_loss: str = "ssim-grad"
    w_ssim: float = 0.2
    w_grad: float = 0.5
    crop: int = 96
    batch: int = 8
    pre_steps: int = 400
    fine_steps: int = 800
    optimizer: str = "adam"
    lr: float | None = None
    weight_decay: float = 0.0
    grey_prob: float = 0.5
    jitter: float = 0.2
    mix: str = DEFAULT_MIX
    data: str = ""
    train_root: str = ""
    val_count: int = 12
    val_every: int = 200
    init: str | None = None
    channels_last: bool = False
    workers: int = 0

    def resolved(self) -> "IFCNNTrainConfig":
        from mfif.models.ifcnn.network import check_fuse_rule

        check_fuse_rule(self.fuse_rule)
        if self.conv1 not in CONV1_CHOICES:
            raise InputError(f"unknown conv1 choice {self.conv1!r}; choose one of {', '.join(CONV1_CHOICES)}")
        if self.fine_loss not in FINE_LOSSES:
            raise InputError(f"unknown fine loss {self.fine_loss!r}; choose one of {', '.join(FINE_LOSSES)}")
        if self.optimizer not in OPTIMIZERS:
            raise InputError(f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
        if self.precision not in PRECISIONS:
            raise InputError(f"unknown precision {self.precision!r}; choose one of {', '.join(PRECISIONS)}")
        if self.crop < 24 or self.batch < 1 or self.pre_steps < 0 or self.fine_steps < 0 or self.pre_steps + self.fine_steps < 1:
            raise InputError(f"invalid training config: crop={self.crop} (>= 24), batch={self.batch}, "
                             f"pre_steps={self.pre_steps}, fine_steps={self.fine_steps}")
        parse_mix(self.mix, DATA_KINDS)
        d = asdict(self)
        if d["lr"] is None:
            d["lr"] = 1e-3 if self.optimizer == "adam" else 1e-2
        if d["lr"] <= 0:
            raise InputError(f"learning rate must be > 0, got {d['lr']}")
        if not d["train_root"]:
            d["train_root"] = str(default_data_root())
        if not d["out"]:
            d["out"] = f"runs/ifcnn-{self.fuse_rule}"
        return IFCNNTrainConfig(**d)


def poly_lr(base: float, step: int, total: int, power: float = 0.9) -> float:
    """Paper Eq. 9: base (1 - step / total)^power."""
    return base * max(0.0, 1.0 - step / max(total, 1)) ** power


def bn_momentum(step: int, total: int) -> float:
    """Phase 1: BatchNorm momentum falling linearly from 0.99 to 0."""
    return 0.99 * max(0.0, 1.0 - step / max(total, 1))


# ---------------------------------------------------------------------------------------------
# data


def _sources(cfg: IFCNNTrainConfig):
    from mfif.synth.sources import PhotoSource

    root = Path(cfg.train_root)
    if not root.is_dir():
        raise InputError(f"{root}: training photo folder not found (set --train-root or MFIF_SHARED)")
    every = PhotoSource.from_folder(root)  # all collections, without the BSDS500 test split
    val = PhotoSource.from_folder(root / "bsds500", split="val") if (root / "bsds500").is_dir() else None
    held = {e.image.resolve() for e in val.entries} if val is not None else set()
    train = PhotoSource(entries=[e for e in every.entries if e.image.resolve() not in held], root=root)
    return train, val


def _recipe(kind: str, size: int | None, phase: int = 1, jitter: float = 0.0):
    """The recipe ``kind`` at crop ``size``: its own augmentation (plus the phase-2 colour jitter);
    ``size=None``: the whole photo, no augmentation (validation)."""
    from dataclasses import replace

    from mfif.synth.augment import Augment
    from mfif.synth.recipes import get_recipe

    recipe = get_recipe(kind)
    if size is None:
        return replace(recipe, size=None, augment=Augment())
    aug = recipe.augment
    if phase == 2 and jitter > 0:
        aug = replace(aug, brightness=max(aug.brightness, jitter), saturation=max(aug.saturation, jitter))
    return replace(recipe, size=size, augment=aug)


class _Prerendered:
    """A :func:`mfif.synth.prerender.prerender` folder as a source of ``crop`` x ``crop`` pairs."""

    def __init__(self, folder: str, crop: int):
        from mfif.synth.prerender import PrerenderedPairs

        self.pairs = PrerenderedPairs(folder, as_uint8=True)
        self.kind = self.pairs.meta["recipe"]["name"]
        self.size = int(self.pairs.meta["shapes"]["gt"][-1])
        if self.pairs.meta["frames"] != 2 or self.size < crop:
            raise InputError(f"{folder}: pre-rendered with {self.pairs.meta['frames']} frames of {self.size} px; "
                             f"training needs 2 frames of at least --crop {crop} px")
        self.crop = crop

    def item(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        it = self.pairs[int(rng.integers(len(self.pairs)))]
        y, x = (int(v) for v in rng.integers(0, self.size - self.crop + 1, 2))
        frames = it["frames"].numpy()[..., y:y + self.crop, x:x + self.crop].astype(np.float32) / 255.0
        gt = it["gt"].numpy()[..., y:y + self.crop, x:x + self.crop].astype(np.float32) / 255.0
        if rng.random() < 0.5:
            frames, gt = frames[..., ::-1], gt[..., ::-1]
        return frames, gt


class _PhaseData:
    """Item ``i`` of a phase: a pair from the recipe (or pre-rendered folder) that a generator
    seeded by (seed, phase, i) picks by the ``mix`` weights; grey with probability ``grey_prob``
    in phase 2. Batch ``k`` is items k*B .. k*B+B-1."""

    def __init__(self, cfg: IFCNNTrainConfig, source, phase: int, steps: int):
        from mfif.synth.datasets import PairDataset

        self.cfg, self.phase = cfg, phase
        mix = parse_mix(cfg.mix, DATA_KINDS)
        if cfg.data:
            self.folders = [_Prerendered(f.strip(), cfg.crop) for f in cfg.data.split(",") if f.strip()]
            missing = [f.kind for f in self.folders if f.kind not in mix]
            if missing:
                raise InputError(f"--data holds {', '.join(missing)} renders, which --mix {cfg.mix!r} gives no weight")
            weights = np.array([mix[f.kind] for f in self.folders])
            self.sources = self.folders
        else:
            self.folders = None
            kinds = [k for k, w in mix.items() if w > 0]
            weights = np.array([mix[k] for k in kinds])
            self.sources = [PairDataset(source, _recipe(k, cfg.crop, phase, cfg.jitter), frames=2,
                                        length=max(1, steps) * cfg.batch, seed=cfg.seed * 1000 + phase) for k in kinds]
        self.weights = weights / weights.sum()

    def item(self, index: int) -> dict:
        rng = np.random.default_rng([self.cfg.seed, self.phase, 99, index])
        pick = int(rng.choice(len(self.sources), p=self.weights))
        if self.folders is not None:
            frames, gt = self.folders[pick].item(rng)
        else:
            s = self.sources[pick].sample(index)
            frames, gt = s.frames, s.gt
        if self.phase == 2 and self.cfg.grey_prob > 0:
            grey_rng = np.random.default_rng([self.cfg.seed, 77, index])
            if grey_rng.random() < self.cfg.grey_prob:
                w = np.array([0.299, 0.587, 0.114], np.float32)[:, None, None]
                frames = np.repeat((frames * w).sum(1, keepdims=True), 3, axis=1)
                gt = np.repeat((gt * w).sum(0, keepdims=True), 3, axis=0)
        return {"frames": np.ascontiguousarray(frames, np.float32), "gt": np.ascontiguousarray(gt, np.float32)}


class _BatchSet:
    """torch Dataset whose item k is batch k (so a DataLoader can make batches in workers)."""

    def __init__(self, data: _PhaseData, start: int, steps: int):
        self.data, self.start, self.steps = data, start, steps

    def __len__(self) -> int:
        return max(0, self.steps - self.start)

    def __getitem__(self, k: int):
        import torch

        step = self.start + k
        b = self.data.cfg.batch
        items = [self.data.item(step * b + i) for i in range(b)]
        return {"frames": torch.from_numpy(np.stack([it["frames"] for it in items])),
                "gt": torch.from_numpy(np.stack([it["gt"] for it in items]))}


def validation_pairs(cfg: IFCNNTrainConfig, source) -> list[dict]:
    """Fixed whole-image validation pairs from BSDS500 val photos: pair i is photo i rendered by
    recipe ``VAL_KINDS[i % 3]`` without augmentation (generator seeded by (4321, i))."""
    from mfif.synth import recipes as R

    makers = {"thinlens": R.make_thinlens, "layered": R.make_layered, "ifcnn": R.make_ifcnn}
    out = []
    if source is None:
        return out
    for i in range(min(cfg.val_count, len(source))):
        kind = VAL_KINDS[i % len(VAL_KINDS)]
        s = makers[kind](source, i, np.random.default_rng([4321, i]), _recipe(kind, None), frames=2)
        out.append({"name": source[i].name, "kind": kind, "frames": s.frames, "gt": s.gt})
    return out


# ---------------------------------------------------------------------------------------------
# network and loop


def build_training_net(cfg: IFCNNTrainConfig):
    import torch

    from mfif.models.ifcnn.network import build_ifcnn

    torch.manual_seed(cfg.seed)
    net = build_ifcnn(cfg.fuse_rule, cfg.init)
    if cfg.init is None:
        bank, _ = filter_bank()
        with torch.no_grad():
            net.conv1.weight.copy_(torch.from_numpy(bank))
    net.conv1.weight.requires_grad_(cfg.conv1 == "learned")
    return net


def _normalizer(device):
    import torch

    from mfif.models.ifcnn.network import IMAGENET_MEAN, IMAGENET_STD

    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 1, 3, 1, 1)
    return mean, std


def forward_image(net, frames, norm):
    """(B, N, 3, H, W) frames in [0, 1] -> (B, 3, H, W) prediction in image space (not clamped)."""
    mean, std = norm
    out = net((frames - mean) / std)
    return out * std[:, 0] + mean[:, 0]


def _set_phase(net, phase: int) -> None:
    net.train()
    frozen = phase == 2
    for block in (net.conv2, net.conv3):
        if frozen:
            block.bn.eval()
        for p in block.bn.parameters():
            p.requires_grad_(not frozen)


def _psnr(x: np.ndarray, ref: np.ndarray) -> float:
    mse = float(np.mean((x.astype(np.float64) - ref) ** 2))
    return 99.0 if mse <= 1e-12 else 10.0 * math.log10(1.0 / mse)


def validate(net, pairs: list[dict], device) -> dict:
    """Mean PSNR / SSIM (ours, 11x11 Gaussian, on [0, 1]) of the clamped fused image vs GT, over
    all pairs and per recipe (``psnr_<kind>``)."""
    import torch

    if not pairs:
        return {}
    net.eval()
    norm = _normalizer(device)
    psnr, ss = [], []
    with torch.no_grad():
        for p in pairs:
            f = torch.from_numpy(p["frames"])[None].to(device)
            pred = forward_image(net, f, norm).float().clamp(0, 1)
            gt = torch.from_numpy(p["gt"])[None].to(device)
            psnr.append(_psnr(pred[0].cpu().numpy(), p["gt"]))
            ss.append(float(ssim(pred, gt)))
    out = {"psnr": float(np.mean(psnr)), "ssim": float(np.mean(ss))}
    for kind in dict.fromkeys(p.get("kind", "") for p in pairs):
        if kind:
            out[f"psnr_{kind}"] = float(np.mean([v for v, p in zip(psnr, pairs) if p.get("kind") == kind]))
    return out


def export_weights(net, path: Path, meta: dict | None = None) -> Path:
    """fp16 state dict (BN counters dropped) as safetensors: what ``mfif fuse --weights`` and the
    shipped files use (:func:`mfif.models.weights.write_weights`)."""
    from mfif.models.weights import write_weights

    state = {k: (v.detach().to("cpu").half() if v.is_floating_point() else v.detach().cpu())
             for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    meta = dict(meta or {})
    return write_weights(path, state, format="mfif-ifcnn/1", arch={"fuse_rule": getattr(net, "fuse_rule", None)},
                         meta=meta, training_command=meta.pop("training_command", ""),
                         data_digest=meta.pop("data_digest", ""))


def _worker_init(_worker_id: int = 0) -> None:
    """One torch thread per DataLoader worker.

    OpenCV's thread count is deliberately not changed here: calling ``cv2.setNumThreads`` in a
    forked worker after the parent used OpenCV's thread pool can deadlock on an inherited lock
    (seen here about one run in three). See mfif/synth/datasets.py.
    """
    import torch

    torch.set_num_threads(1)


def _make_optimizer(cfg: IFCNNTrainConfig, net):
    import torch

    params = [p for p in net.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def _phase_loss(net, batch, norm, device, phase: int, cfg: IFCNNTrainConfig):
    """The loss of one batch: the forward pass (under the caller's autocast), the loss in fp32."""
    import torch

    frames = batch["frames"].to(device, non_blocking=True)
    gt = batch["gt"].to(device, non_blocking=True)
    pred = forward_image(net, frames, norm)
    with torch.autocast(device_type=device.type, enabled=False):
        pred = pred.float()
        if phase == 1:
            return torch.nn.functional.mse_loss(pred, gt)
        return fine_loss(pred, gt, cfg.fine_loss, cfg.w_ssim, cfg.w_grad)


def train(cfg: IFCNNTrainConfig, *, resume: bool | str = False, progress: bool = True, log=print) -> dict:
    """Run (or resume) a training; returns the history dict (also in ``out/history.json``).

    The run stops early (checkpointed, resumable) when ``max_minutes`` or ``max_steps`` is used;
    the weights reached so far are exported either way (``history["complete"]`` says which)."""
    import torch
    from torch.utils.data import DataLoader

    from mfif.models.device import resolve_device

    cfg = cfg.resolved()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    device = resolve_device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    net = build_training_net(cfg).to(device)
    if cfg.channels_last:
        net = net.to(memory_format=torch.channels_last)
    phase, step = (1, 0) if cfg.pre_steps > 0 else (2, 0)
    history: dict = {"config": asdict(cfg), "log": [], "legs": [], "wall_s": 0.0}
    opt_state = None
    if resume:
        ck, loaded_from = load_checkpoint(resume_path(resume, out))
        check_resume_config(loaded_from, ck["config"], asdict(cfg), ignore=RESUME_FREE)
        net.load_state_dict(ck["model"])
        phase, step, history, opt_state = ck["phase"], ck["step"], ck["history"], ck["optimizer"]
        log(f"resuming phase {phase} at step {step}")
    train_src, val_src = _sources(cfg)
    val = validation_pairs(cfg, val_src)
    norm = _normalizer(device)
    wall0, wall_before = time.time(), history.get("wall_s", 0.0)
    leg = {"command": shlex.join(sys.argv), "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
           "from": [phase, step], "precision": cfg.precision, "channels_last": cfg.channels_last,
           "threads": torch.get_num_threads()}
    run_steps = 0

    def save(ph, st, opt_state):
        for rec in history["log"]:
            rec.setdefault("phase", ph if st else ph - 1)
        history["wall_s"] = wall_before + time.time() - wall0
        atomic_save({"model": net.state_dict(), "optimizer": opt_state,
                     "phase": ph, "step": st, "config": asdict(cfg), "history": history}, out / CHECKPOINT)
        (out / "history.json").write_text(json.dumps(history, indent=1))

    def budget_left() -> bool:
        return not ((cfg.max_steps and run_steps >= cfg.max_steps)
                    or (cfg.max_minutes and time.time() - wall0 >= cfg.max_minutes * 60))

    stopped, stop_state = False, None
    while phase <= 2:
        total = cfg.pre_steps if phase == 1 else cfg.fine_steps
        if step < total and not budget_left():
            stopped, stop_state = True, opt_state
            break
        _set_phase(net, phase)
        opt = _make_optimizer(cfg, net)
        if opt_state is not None:
            opt.load_state_dict(opt_state)
            opt_state = None
        if step < total:
            data = _PhaseData(cfg, train_src, phase, total)
            batches = iter(DataLoader(_BatchSet(data, step, total), batch_size=None, shuffle=False,
                                      num_workers=cfg.workers, worker_init_fn=_worker_init if cfg.workers else None,
                                      persistent_workers=False))

            def step_loss(at, phase=phase, total=total, batches=batches):
                if phase == 1:
                    net.conv2.bn.momentum = net.conv3.bn.momentum = bn_momentum(at, total)
                return _phase_loss(net, next(batches), norm, device, phase, cfg)

            def validate_at(at, phase=phase, total=total):
                if not val or not (at % cfg.val_every == 0 or at == total):
                    return None
                v = validate(net, val, device)
                _set_phase(net, phase)
                v.update(phase=phase, wall_s=wall_before + time.time() - wall0)
                return v, f"val PSNR {v['psnr']:.2f} dB, SSIM {v['ssim']:.4f}"

            res = fit(net, opt, step_loss, start_step=step, total_steps=total,
                      lr_at=lambda s, total=total: poly_lr(cfg.lr, s, total),
                      checkpoint=lambda s, phase=phase, opt=opt: save(phase, s, opt.state_dict()),
                      checkpoint_minutes=cfg.checkpoint_minutes, wall_start=wall0, max_minutes=cfg.max_minutes,
                      max_steps=cfg.max_steps - run_steps if cfg.max_steps else 0, validate=validate_at,
                      history=history["log"], log_every=10, postfix_every=10, units_per_step=cfg.batch,
                      unit_name="pairs_s", desc=f"ifcnn-{cfg.fuse_rule} phase {phase}", progress=progress,
                      precision=cfg.precision)
            run_steps += res.step - step
            step = res.step
            if res.stopped_early:
                stopped, stop_state = True, opt.state_dict()
                break
        save(phase + 1, 0, None)  # phase boundary: the next phase starts a fresh optimiser
        phase, step = phase + 1, 0
    history["wall_s"] = wall_before + time.time() - wall0
    history["complete"] = not stopped
    history["final_val"] = validate(net, val, device) if val else {}
    history["hardware"] = {"device": str(device), "torch": str(torch.__version__), "threads": torch.get_num_threads(),
                           "cpu": platform.processor() or platform.machine()}
    leg.update(to=[phase, step], steps=run_steps, wall_s=time.time() - wall0, val=history["final_val"])
    history.setdefault("legs", []).append(leg)
    if stopped:
        save(phase, step, stop_state)
    from mfif.models.weights import provenance

    meta = provenance(cfg.data or cfg.train_root)
    meta.update(complete=not stopped, phase_step=[phase, step], legs=len(history["legs"]),
                trained_wall_s=round(history["wall_s"], 1))
    weights = export_weights(net, out / f"ifcnn-{cfg.fuse_rule}.safetensors", meta=meta)
    history["weights"] = str(weights)
    (out / "history.json").write_text(json.dumps(history, indent=1))
    log(f"{'stopped (resume with --resume)' if stopped else 'done'} after {run_steps} steps, "
        f"{history['wall_s'] / 60:.1f} min in all; weights {weights}"
        + (f"; val PSNR {history['final_val']['psnr']:.2f} dB" if history["final_val"] else ""))
    return history


# ---------------------------------------------------------------------------------------------
# CLI (``mfif train ifcnn``)


def add_arguments(parser: argparse.ArgumentParser, name: str = "ifcnn") -> None:
    d = IFCNNTrainConfig()
    add_dataclass_flags(
        parser, IFCNNTrainConfig, defaults={"out": None},
        choices={"fuse_rule": ("max", "mean", "sum"), "conv1": CONV1_CHOICES, "fine_loss": FINE_LOSSES,
                 "optimizer": OPTIMIZERS, "precision": PRECISIONS},
        helps={"conv1": "bank: fixed filter bank, frozen (default); learned: bank init, trained",
               "fine_loss": "phase-2 loss: MSE + SSIM + gradient (default) or MSE only (ablation)",
               "crop": f"training crop (default {d.crop}; paper 224)", "pre_steps": "phase 1 (MSE) steps",
               "fine_steps": "phase 2 (BN frozen) steps", "lr": "base learning rate (default 1e-3 adam, 1e-2 sgd)",
               "mix": f"recipe weights, from {', '.join(DATA_KINDS)} (default {DEFAULT_MIX})",
               "data": "pre-rendered folders (mfif synth --prerender), comma separated (default: synthesise on the fly)",
               "train_root": "folder with bsds500/ etc. (default ../shared/data/train)",
               "init": "start from these weights (e.g. a shipped file or another run's export)",
               "precision": "fp32 (default) or bf16 (autocast)",
               "out": "run folder (default runs/ifcnn-<rule>)"})
    add_run_flags(parser)


def config_from_args(args) -> IFCNNTrainConfig:
    return dataclass_from_args(IFCNNTrainConfig, args)


def run(args) -> int:
    train(config_from_args(args), resume=args.resume or False, progress=not args.quiet)
    return 0
