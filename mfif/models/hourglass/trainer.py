"""Training HF-Seg and HF-Reg (Guerrero Peña et al. 2019, Sec. IV-A/C and V): losses, synthetic
pairs, one plain training loop.

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

Data (Sec. IV-A, Eq. 1), made on the fly by :class:`HourglassPairs`: a sharp photo y and one of its
label maps (BSDS500 *train* human segmentations, COCO128 instance masks with the background as a
segment); a random non-empty proper subset of the segments is the focus map g (1 = A sharp); the
whole photo is blurred with a Gaussian of sigma ~ U(1, 5) (kernel cut at 3 sigma, reflected
borders) and A = g y + (1 - g) blur(y), B = (1 - g) y + g blur(y), GT = y. Crops: a random square
of ``crop`` pixels (blurred with a 16-pixel margin of real context, then cut), random horizontal
and vertical mirroring. Every batch holds each pair and its reverse (B, A) (focus map inverted for
HF-Seg; the same GT for HF-Reg): the paper's commutative training protocol. Batch ``k`` is a pure
function of (seed, k), so a resumed run sees the same data as an uninterrupted one.

Validation: fixed full-size pairs from the BSDS500 *val* photos (first annotator's segmentation,
seeded subset and sigma); never the BSDS500 test split (the dev evaluation set).

This module writes its own minimal generator (about 60 lines) following SPEC rather than the
``mfif.synth`` engine, which was still being written when these networks were trained.

Example (a tiny run)::

    mfif train hf-seg --steps 20 --crop 64 --batch 2 --out runs/tiny
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import cv2
import numpy as np

from mfif.errors import InputError
from mfif.models.training import (CHECKPOINT, add_dataclass_flags, add_run_flags, atomic_save,
                                  check_resume_config, default_data_root, load_checkpoint, resume_path)

# torch is imported inside the functions: ``mfif`` builds every subcommand's flags at start-up
# (:func:`add_arguments`), and ``mfif list`` / classical methods must not pay for importing torch.

LOSSES = {"seg": ("bce",), "reg": ("nps", "l1", "mse")}
MARGIN = 16  # context pixels around a crop when blurring (3 sigma of sigma = 5 is 15)


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
# synthetic pairs


def make_pair(photo: np.ndarray, focus_a: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Eq. 1: (H, W, 3) sharp photo, (H, W) focus map of A, Gaussian sigma -> A, B (H, W, 3) float32."""
    k = 2 * int(math.ceil(3 * sigma)) + 1
    blurred = cv2.GaussianBlur(photo, (k, k), sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT_101)
    g = focus_a[..., None].astype(np.float32)
    a = g * photo + (1.0 - g) * blurred
    b = (1.0 - g) * photo + g * blurred
    return a.astype(np.float32), b.astype(np.float32)


def random_focus_map(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random proper subset of the segments of ``labels`` (H, W) -> focus map (H, W) float32.
    With a single segment the map is all ones or all zeros (one source sharp everywhere)."""
    ids = np.unique(labels)
    if ids.size < 2:
        return np.full(labels.shape, float(rng.random() < 0.5), np.float32)
    size = int(rng.integers(1, ids.size))
    chosen = rng.choice(ids, size=size, replace=False)
    return np.isin(labels, chosen).astype(np.float32)


def _read_rgb(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise InputError(f"{path}: cannot read image")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _read_labels(path: Path) -> np.ndarray:
    lab = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if lab is None:
        raise InputError(f"{path}: cannot read label map")
    return lab if lab.ndim == 2 else lab[..., 0]


def scan_training_photos(train_root: str | os.PathLike, split: str = "train") -> list[tuple[Path, list[Path]]]:
    """(photo, label maps) from ``<root>/bsds500`` (given split) and, for ``split="train"``,
    ``<root>/coco128-seg`` (instance masks). Photos without a label map are skipped."""
    root = Path(train_root)
    items: list[tuple[Path, list[Path]]] = []
    bsds = root / "bsds500"
    for img in sorted((bsds / "images" / split).glob("*.jpg")):
        segs = sorted((bsds / "segmentations" / split).glob(f"{img.stem}_*.png"))
        if segs:
            items.append((img, segs))
    coco = root / "coco128-seg"
    if split == "train":
        for img in sorted((coco / "images").glob("*.jpg")):
            mask = coco / "instance_masks" / f"{img.stem}.png"
            if mask.is_file():
                items.append((img, [mask]))
    if not items:
        raise InputError(f"{root}: no BSDS500 '{split}' photos with segmentations (or COCO128 masks) found")
    return items


class HourglassPairs:
    """On-the-fly synthetic training batches (see the module docstring).

    Args:
        items: (photo, label maps) from :func:`scan_training_photos`.
        crop: square crop side.
        sigma: (low, high) of the uniform Gaussian sigma.
    """

    def __init__(self, items, crop: int = 128, sigma: tuple[float, float] = (1.0, 5.0)):
        self.items = list(items)
        self.crop = int(crop)
        self.sigma = sigma
        self._photos: dict[Path, np.ndarray] = {}

    def photo(self, path: Path) -> np.ndarray:
        img = self._photos.get(path)
        if img is None:
            img = _read_rgb(path)
            self._photos[path] = img  # uint8: ~200 MB for BSDS500 train + COCO128
        return img

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
        """One pair: A, B, GT (3, c, c) float32 and the focus map of A (c, c)."""
        path, segs = self.items[int(rng.integers(len(self.items)))]
        img = self.photo(path)
        labels = _read_labels(segs[int(rng.integers(len(segs)))])
        h, w = labels.shape
        c = self.crop
        side = min(c + 2 * MARGIN, h, w)
        if side < c:
            scale = c / min(h, w)
            img = cv2.resize(img, (math.ceil(w * scale), math.ceil(h * scale)), interpolation=cv2.INTER_AREA)
            labels = cv2.resize(labels, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_NEAREST)
            h, w = labels.shape
            side = min(c + 2 * MARGIN, h, w)
        focus = random_focus_map(labels, rng)
        y0, x0 = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        photo = img[y0:y0 + side, x0:x0 + side].astype(np.float32) / 255.0
        focus = focus[y0:y0 + side, x0:x0 + side]
        sigma = float(rng.uniform(*self.sigma))
        a, b = make_pair(photo, focus, sigma)
        m0 = (side - c) // 2
        cut = (slice(m0, m0 + c), slice(m0, m0 + c))
        a, b, gt, focus = a[cut], b[cut], photo[cut], focus[cut]
        if rng.random() < 0.5:
            a, b, gt, focus = a[:, ::-1], b[:, ::-1], gt[:, ::-1], focus[:, ::-1]
        if rng.random() < 0.5:
            a, b, gt, focus = a[::-1], b[::-1], gt[::-1], focus[::-1]
        chw = lambda x: np.ascontiguousarray(np.moveaxis(x, -1, 0))  # noqa: E731
        return chw(a), chw(b), chw(gt), np.ascontiguousarray(focus)

    def batch(self, seed: int, step: int, pairs: int) -> dict[str, torch.Tensor]:
        """Batch ``step``: ``pairs`` pairs followed by their reverses -> x (2P, 6, c, c), focus (2P, c, c), gt (2P, 3, c, c)."""
        import torch

        rng = np.random.default_rng([int(seed), int(step)])
        samples = [self.sample(rng) for _ in range(pairs)]
        a = np.stack([s[0] for s in samples])
        b = np.stack([s[1] for s in samples])
        gt = np.stack([s[2] for s in samples])
        g = np.stack([s[3] for s in samples])
        x = np.concatenate([np.concatenate([a, b], 1), np.concatenate([b, a], 1)], 0)
        return {"x": torch.from_numpy(x), "focus": torch.from_numpy(np.concatenate([g, 1.0 - g], 0)),
                "gt": torch.from_numpy(np.concatenate([gt, gt], 0))}


def validation_pairs(train_root: str | os.PathLike, count: int, seed: int = 1234, split: str = "val") -> list[dict]:
    """Fixed full-size validation pairs from the first ``count`` BSDS500 ``split`` photos (first
    annotator's segmentation; subset and sigma ~ U(1, 5) drawn from (seed, index))."""
    out = []
    for i, (path, segs) in enumerate(scan_training_photos(train_root, split)[:count]):
        rng = np.random.default_rng([seed, i])
        photo = _read_rgb(path).astype(np.float32) / 255.0
        focus = random_focus_map(_read_labels(segs[0]), rng)
        a, b = make_pair(photo, focus, float(rng.uniform(1.0, 5.0)))
        chw = lambda x: np.ascontiguousarray(np.moveaxis(x, -1, 0))  # noqa: E731
        out.append({"name": path.stem, "a": chw(a), "b": chw(b), "gt": chw(photo), "focus": focus})
    return out


# ---------------------------------------------------------------------------------------------
# configuration and loop


@dataclass
class HourglassTrainConfig:
    """One training run (stored in every checkpoint).

    Attributes:
        variant: ``"seg"`` (HF-Seg) or ``"reg"`` (HF-Reg).
        loss: ``"bce"`` (seg); ``"nps"``, ``"l1"`` or ``"mse"`` (reg); None = bce / nps.
        alpha: NPS alpha (paper 6).
        range_terms: add the |min| / |max| range terms (HF-Reg, paper Eq. 4).
        base, depth: network width and number of poolings (:class:`HourglassConfig`).
        residual: HF-Reg only: the net adds the mean of the sources to its output (not in the paper).
        crop: square training crop (paper 400; 128 on CPU).
        pairs: pairs per batch; each is also fed reversed, so the batch holds 2 * pairs samples.
        steps: optimiser steps; the learning rate follows a cosine from ``lr`` to ``lr * lr_final``.
        lr: Adam learning rate (paper 1e-5 for 1000 epochs; 1e-3 for our short CPU budget).
        lr_final: final fraction of ``lr``.
        sigma: range of the Gaussian blur sigma (paper U(1, 5)).
        seed: seeds the weights and every batch (batch k = f(seed, k)).
        init_weights: start from this weights file (an exported ``hf_<variant>.safetensors``, a ``best.pt``
            or a ``last.pt``; its architecture must match) instead of the random init; the
            optimiser and the schedule start afresh (a warm restart). Ignored by ``--resume``.
        train_root: folder with ``bsds500`` and ``coco128-seg``.
        val_count: BSDS500 val photos used for validation (0 = no validation).
        val_every: steps between validations.
        out: run folder (``last.pt``, ``best.pt``, ``history.json``, the exported weights).
        checkpoint_minutes: wall minutes between checkpoints.
        max_minutes: stop (checkpointed, resumable) after this many wall minutes in total (resumed
            runs count the earlier time); 0 = no limit. Also drives the cosine schedule (see
            :func:`_lr_at`).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``.
        threads: torch CPU threads (0 = torch default).
    """

    variant: str = "seg"
    loss: str | None = None
    alpha: float = 6.0
    range_terms: bool = True
    base: int = 16
    depth: int = 4
    residual: bool = False
    crop: int = 128
    pairs: int = 4
    steps: int = 2000
    lr: float = 1e-3
    lr_final: float = 0.02
    sigma: tuple[float, float] = (1.0, 5.0)
    seed: int = 0
    init_weights: str = ""
    train_root: str = ""
    val_count: int = 12
    val_every: int = 250
    out: str = "runs/hf-seg"
    checkpoint_minutes: float = 3.0
    max_minutes: float = 0.0
    device: str = "auto"
    threads: int = 0

    def resolved(self) -> "HourglassTrainConfig":
        if self.variant not in LOSSES:
            raise InputError(f"unknown hourglass variant {self.variant!r}; choose one of seg, reg")
        loss = self.loss or LOSSES[self.variant][0]
        if loss not in LOSSES[self.variant]:
            raise InputError(f"loss {loss!r} is not valid for hf-{self.variant}; choose one of {', '.join(LOSSES[self.variant])}")
        if self.crop < 16 or self.pairs < 1 or self.steps < 1 or self.lr <= 0:
            raise InputError(f"invalid training config: crop={self.crop}, pairs={self.pairs}, steps={self.steps}, lr={self.lr}")
        lo, hi = self.sigma
        if not 0 < lo <= hi:
            raise InputError(f"sigma range must satisfy 0 < low <= high, got {self.sigma}")
        d = asdict(self)
        d["loss"] = loss
        d["sigma"] = (float(lo), float(hi))
        if not d["train_root"]:
            d["train_root"] = str(default_data_root())
        return HourglassTrainConfig(**d)

    def net_config(self):
        from mfif.models.hourglass.network import HourglassConfig

        return HourglassConfig(variant=self.variant, base=self.base, depth=self.depth, residual=self.residual)


def _lr_at(cfg: HourglassTrainConfig, step: int, elapsed_s: float = 0.0) -> float:
    """Cosine from ``lr`` to ``lr * lr_final``. Progress is step / steps or, with ``max_minutes``,
    the larger of that and the fraction of the wall budget used (so a time-limited run on a busy
    machine still ends at the low learning rate; its schedule then depends on the speed)."""
    t = step / max(cfg.steps, 1)
    if cfg.max_minutes > 0:
        t = max(t, elapsed_s / (60.0 * cfg.max_minutes))
    t = min(t, 1.0)
    return cfg.lr * (cfg.lr_final + (1 - cfg.lr_final) * 0.5 * (1 + math.cos(math.pi * t)))


def compute_loss(cfg: HourglassTrainConfig, net, batch: dict):
    out = net(batch["x"])
    if cfg.variant == "seg":
        return seg_bce_loss(out, batch["focus"])
    return regression_loss(out, batch["gt"], cfg.loss, cfg.alpha, cfg.range_terms)


def _psnr(x: np.ndarray, ref: np.ndarray) -> float:
    mse = float(np.mean((x.astype(np.float64) - ref) ** 2))
    return 99.0 if mse <= 1e-10 else 10.0 * math.log10(1.0 / mse)


def validate(cfg: HourglassTrainConfig, net, pairs: list[dict], device) -> dict:
    """Mean PSNR of the fused image vs GT, mean L1 error, and the commutativity MSE between
    f(A, B) and f(B, A) over the validation pairs; HF-Reg also reports PSNR after Near."""
    import torch

    with torch.no_grad():
        return _validate(cfg, net, pairs, device)


def _validate(cfg, net, pairs, device) -> dict:
    import torch

    was_training = net.training
    net.eval()
    psnr, l1, comm, psnr_near = [], [], [], []
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
        l1.append(float(np.abs(f_ab - p["gt"]).mean()))
        comm.append(float(np.mean((f_ab - f_ba) ** 2)))
    net.train(was_training)
    res = {"psnr": float(np.mean(psnr)), "l1": float(np.mean(l1)), "commutativity_mse": float(np.mean(comm))}
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


def train(cfg: HourglassTrainConfig, *, resume: bool | str = False, progress: bool = True) -> dict:
    """Run (or resume) one training run; returns a summary dict (also written to ``out/summary.json``).

    Files in ``cfg.out``: ``last.pt`` (model, optimiser, step, config, history; written every
    ``checkpoint_minutes`` and at the end), ``best.pt`` (best validation PSNR), ``hf_<variant>.safetensors``
    (fp16 export of the best, or the last model without validation), ``history.json``.
    """
    import torch
    from tqdm import tqdm

    from mfif.models.device import resolve_device
    from mfif.models.weights import provenance
    from mfif.models.hourglass.network import HourglassNet, save_hourglass_weights

    cfg = cfg.resolved()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    device = resolve_device(cfg.device)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    net = HourglassNet(cfg.net_config()).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    step, history, best, elapsed_before = 0, [], None, 0.0
    ckpt_path = out / CHECKPOINT
    if resume:
        ckpt, loaded_from = load_checkpoint(resume_path(resume, out))
        check_resume_config(loaded_from, ckpt["config"], asdict(cfg), ignore=(
            "out", "max_minutes", "device", "threads", "steps", "net", "checkpoint_minutes", "val_every"))
        net.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        step, history, best = ckpt["step"], ckpt.get("history", []), ckpt.get("best")
        elapsed_before = ckpt.get("elapsed_s", 0.0)
    elif cfg.init_weights:
        _load_init_weights(net, cfg)
    data = HourglassPairs(scan_training_photos(cfg.train_root, "train"), cfg.crop, cfg.sigma)
    val = validation_pairs(cfg.train_root, cfg.val_count) if cfg.val_count > 0 else []

    def checkpoint(elapsed: float) -> None:
        atomic_save({"model": net.state_dict(), "optimizer": opt.state_dict(), "step": step,
                      "config": {**asdict(cfg), "net": asdict(cfg.net_config())}, "history": history,
                      "best": best, "elapsed_s": elapsed}, ckpt_path)
        (out / "history.json").write_text(json.dumps(history, indent=1))

    def export(state_source: str) -> Path:
        meta = {"config": asdict(cfg), "step": step, "best": best, "wall_s": round(elapsed_before + time.perf_counter() - t0, 1),
                "source": state_source, "torch": str(torch.__version__), "device": str(device),
                **provenance(cfg.train_root)}
        return save_hourglass_weights(net, out / f"hf_{cfg.variant}.safetensors", meta)

    net.train()
    t0 = time.perf_counter()
    last_ckpt = t0
    run_loss, seen = None, 0
    bar = tqdm(total=cfg.steps, initial=step, desc=f"hf-{cfg.variant} ({cfg.loss})", unit="step",
               disable=not progress, dynamic_ncols=True)
    stopped_early = False
    while step < cfg.steps:
        if cfg.max_minutes > 0 and elapsed_before + time.perf_counter() - t0 > 60 * cfg.max_minutes:
            stopped_early = True
            break
        batch = {k: v.to(device) for k, v in data.batch(cfg.seed, step, cfg.pairs).items()}
        lr = _lr_at(cfg, step, elapsed_before + time.perf_counter() - t0)
        for group in opt.param_groups:
            group["lr"] = lr
        loss = compute_loss(cfg, net, batch)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} at step {step}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        seen += batch["x"].shape[0]
        value = float(loss.detach())
        run_loss = value if run_loss is None else 0.95 * run_loss + 0.05 * value
        now = time.perf_counter()
        bar.update(1)
        bar.set_postfix(loss=f"{run_loss:.4f}", samples_s=f"{seen / max(now - t0, 1e-9):.1f}")
        record = {"step": step, "loss": value, "lr": lr, "wall_s": round(elapsed_before + now - t0, 1)}
        if val and (step % cfg.val_every == 0 or step == cfg.steps):
            v = validate(cfg, net, val, device)
            record.update({f"val_{k}": x for k, x in v.items()})
            if best is None or v["psnr"] > best["psnr"]:
                best = {"step": step, **v}
                atomic_save({"model": net.state_dict(), "config": {**asdict(cfg), "net": asdict(cfg.net_config())},
                              "step": step, "val": v}, out / "best.pt")
            bar.write(f"step {step}: " + ", ".join(f"{k} {x:.5g}" for k, x in v.items()))
        history.append(record)
        if now - last_ckpt > 60 * cfg.checkpoint_minutes:
            checkpoint(elapsed_before + now - t0)
            last_ckpt = now
    bar.close()
    if val and history and "val_psnr" not in history[-1]:  # stopped between validations
        v = validate(cfg, net, val, device)
        history[-1].update({f"val_{k}": x for k, x in v.items()})
        if best is None or v["psnr"] > best["psnr"]:
            best = {"step": step, **v}
            atomic_save({"model": net.state_dict(), "config": {**asdict(cfg), "net": asdict(cfg.net_config())},
                          "step": step, "val": v}, out / "best.pt")
    elapsed = elapsed_before + time.perf_counter() - t0
    checkpoint(elapsed)
    if best is not None and (out / "best.pt").is_file():
        net.load_state_dict(load_checkpoint(out / "best.pt")[0]["model"])
    exported = export("best" if best is not None else "last")
    summary = {"variant": cfg.variant, "loss": cfg.loss, "steps_done": step, "steps": cfg.steps,
               "stopped_early": stopped_early, "wall_s": round(elapsed, 1), "best": best, "weights": str(exported),
               "final_loss_ema": run_loss}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


# ---------------------------------------------------------------------------------------------
# command line (``mfif train hf-seg|hf-reg``, table in :mod:`mfif.models.train_cli`)


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    """Flags of ``mfif train hf-seg|hf-reg``: one per field of :class:`HourglassTrainConfig`."""
    variant = name.split("-", 1)[-1]
    add_dataclass_flags(parser, HourglassTrainConfig, skip=("variant",), defaults={"out": f"runs/{name}"},
                        choices={"loss": LOSSES[variant]}, helps={"loss": f"default: {LOSSES[variant][0]}"})
    add_run_flags(parser)
    parser.set_defaults(hourglass_name=name)


def config_from_args(args) -> HourglassTrainConfig:
    name = getattr(args, "hourglass_name", None) or getattr(args, "net", "hf-seg")
    values = {f.name: getattr(args, f.name) for f in fields(HourglassTrainConfig) if f.name != "variant"}
    values["sigma"] = tuple(values["sigma"])
    return HourglassTrainConfig(variant=name.split("-", 1)[-1], **values)


def run(args) -> int:
    """``mfif train hf-seg|hf-reg``: train, print the summary as JSON."""
    summary = train(config_from_args(args), resume=args.resume, progress=not args.quiet)
    print(json.dumps(summary, indent=1))
    return 0


__all__ = ["HourglassTrainConfig", "HourglassPairs", "nps", "dissimilarity", "regression_loss", "seg_bce_loss",
           "make_pair", "random_focus_map", "scan_training_photos", "validation_pairs", "validate", "train", "add_arguments", "run"]
