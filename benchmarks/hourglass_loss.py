"""HF-Reg weights files compared on the same pairs (issue 8: NPS vs L1 vs MSE at an equal training
budget; a longer training run vs the shipped weights).

    python benchmarks/hourglass_loss.py --weights nps=scratch/hourglass-loss/nps/hf_reg.pt \\
        --weights l1=scratch/hourglass-loss/l1/hf_reg.pt [--devset scratch/devset] [--limit 30] \\
        [--val-count 8] [--threads 2] [--json OUT.json]

For every ``LABEL=FILE``:

- dev set (the first ``--limit`` pairs of ``DEVSET/pairs`` by name, ``mfif synth --devset``, BSDS500
  test): mean PSNR_GT and SSIM_GT of the regression and of the regression + Near (paper Eq. 6),
  and the commutativity error (mean squared difference between the regressions f(A, B) and f(B, A));
- validation (fixed BSDS500 *val* pairs of the ``hourglass`` recipe, :func:`mfif.models.hourglass.trainer.validation_pairs`,
  seed 1234): the trainer's own validation numbers (PSNR, PSNR after Near, mean abs error,
  commutativity MSE), recomputed from the file (fp16 weights, so they can differ in the last digit
  from the numbers the training run logged with fp32 weights).

Prints a markdown table (and writes the per-pair numbers to ``--json``).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mfif.io import read_image, read_stack  # noqa: E402
from mfif.models.hourglass.pipeline import HFRegOptions, hf_reg_fusion  # noqa: E402
from mfif.metrics import METRICS  # noqa: E402


def dev_pairs(folder: Path, limit: int) -> list[tuple[str, Path, Path, Path]]:
    """(name, A, B, GT) for ``<name>_A/_B/_GT.png`` in ``folder``, sorted, at most ``limit`` (0 = all)."""
    items = []
    for a in sorted(folder.glob("*_A.png")):
        name = a.name[: -len("_A.png")]
        b, gt = folder / f"{name}_B.png", folder / f"{name}_GT.png"
        if b.is_file() and gt.is_file():
            items.append((name, a, b, gt))
    return items[:limit] if limit else items


def _mse(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean((x.astype(np.float64) - y) ** 2))


def evaluate_dev(weights: str, items) -> list[dict]:
    rows = []
    for name, a_path, b_path, gt_path in items:
        stack = read_stack([a_path, b_path]).images
        gt = read_image(gt_path)
        res = hf_reg_fusion(stack, HFRegOptions(weights=weights, near=True, device="cpu"))
        rev = hf_reg_fusion(stack[::-1].copy(), HFRegOptions(weights=weights, device="cpu")).fused
        reg = res.maps["regressed"]
        row = {"item": name, "comm_mse": _mse(reg, rev)}
        for label, fused in (("reg", reg), ("near", res.fused)):
            for metric in ("PSNR_GT", "SSIM_GT"):
                row[f"{label}_{metric}"] = float(METRICS[metric].function(list(stack), fused, ground_truth=gt))
        rows.append(row)
    return rows


def evaluate_val(weights: str, count: int) -> dict:
    from mfif.models.hourglass.network import build_hourglass
    from mfif.models.hourglass.trainer import HourglassTrainConfig, photo_sources, validate, validation_pairs

    import torch

    net = build_hourglass("reg", weights)
    # the first wave's validation data (Gaussian pairs of the hourglass recipe, BSDS500 val)
    pairs = validation_pairs(photo_sources(HourglassTrainConfig().resolved().train_root)[1], "hourglass", count)
    return validate(HourglassTrainConfig(variant="reg"), net, pairs, torch.device("cpu"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", action="append", required=True, metavar="LABEL=FILE")
    p.add_argument("--devset", default=str(ROOT / "scratch" / "devset"))
    p.add_argument("--limit", type=int, default=30, help="first N dev pairs (0 = all)")
    p.add_argument("--val-count", type=int, default=8, help="BSDS500 val pairs (0 = skip)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json")
    args = p.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    items = dev_pairs(Path(args.devset) / "pairs", args.limit)
    if not items:
        raise SystemExit(f"{args.devset}/pairs: no <name>_A/_B/_GT.png pairs")
    results = {}
    for spec in args.weights:
        label, _, path = spec.partition("=")
        if not path:
            raise SystemExit(f"--weights expects LABEL=FILE, got {spec!r}")
        t = time.perf_counter()
        val = evaluate_val(path, args.val_count) if args.val_count > 0 else {}
        rows = evaluate_dev(path, items)
        results[label] = {"weights": path, "val": val, "dev": rows, "seconds": round(time.perf_counter() - t, 1)}
        print(f"{label}: done in {results[label]['seconds']} s", file=sys.stderr, flush=True)

    keys = ("reg_PSNR_GT", "reg_SSIM_GT", "near_PSNR_GT", "near_SSIM_GT", "comm_mse")
    print(f"dev: first {len(items)} pairs of {args.devset}/pairs; val: {args.val_count} BSDS500 val pairs\n")
    print("| weights | dev PSNR | dev SSIM | dev PSNR + Near | dev SSIM + Near | dev commutativity MSE "
          "| val PSNR | val PSNR + Near | val mean abs error | val commutativity MSE |")
    print("|---" * 10 + "|")
    for label, r in results.items():
        dev = [float(np.mean([row[k] for row in r["dev"]])) for k in keys]
        v = r["val"]
        val = (f"{v['psnr']:.2f} | {v['psnr_near']:.2f} | {v['l1']:.4f} | {v['commutativity_mse']:.1e}" if v
               else "- | - | - | -")
        print(f"| {label} | {dev[0]:.2f} | {dev[1]:.4f} | {dev[2]:.2f} | {dev[3]:.4f} | {dev[4]:.1e} | {val} |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
