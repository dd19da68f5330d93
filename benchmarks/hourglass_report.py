"""Tables for the HF-Seg / HF-Reg retraining (issue 15) from ``mfif eval`` results and training runs.

    python benchmarks/hourglass_report.py --eval scratch/eval-hg/results.csv \\
        [--eval benchmarks/results/eval-learned/results.csv] \\
        [--run LABEL=training/checkpoints/hf-seg-thinlens ...] [--pairs-dataset pairs] > OUT.md

From the per-item rows of ``mfif eval`` (``results.csv``; several files are merged, the later
ones win on the same dataset/item/method):

- mean PSNR_GT / SSIM_GT on the dev GT pairs and mean Q_G_yl / Q_CB per other dataset, per method;
- per-item comparisons on the dev pairs (PSNR_GT): for each ``--compare X:Y`` (default the ones the
  issue asks for: every hf-reg* vs ``average``, hf-reg vs hf-seg, hf-seg vs ``sml``): the mean
  difference, how many items X is below Y and the worst margin;
- for each ``--run``: the validation records of its ``history.json`` against training hours
  (``val_wall_s``; legs resumed from a checkpoint keep counting).
"""
from __future__ import annotations

import argparse
import csv
import json
from collections import defaultdict
from pathlib import Path

import numpy as np


def load_rows(paths: list[str]) -> dict[tuple[str, str, str], dict]:
    rows = {}
    for path in paths:
        with open(path, newline="") as f:
            for r in csv.DictReader(f):
                rows[(r["dataset"], r["item"], r["method"])] = r
    return rows


def _values(rows, dataset: str, metric: str) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = defaultdict(dict)
    for (ds, item, method), r in rows.items():
        if ds == dataset and r.get(metric) not in (None, ""):
            out[method][item] = float(r[metric])
    return out


def means_table(rows, datasets_metrics: list[tuple[str, str]]) -> str:
    methods = sorted({m for (_, _, m) in rows})
    cols = [f"{ds} {m}" for ds, m in datasets_metrics]
    lines = ["| method | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for method in methods:
        cells = []
        for ds, metric in datasets_metrics:
            v = _values(rows, ds, metric).get(method, {})
            cells.append(f"{np.mean(list(v.values())):.4f} ({len(v)})" if v else "")
        if any(cells):
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def compare_table(rows, dataset: str, pairs: list[tuple[str, str]], metric: str = "PSNR_GT") -> str:
    vals = _values(rows, dataset, metric)
    lines = [f"| {metric}: X vs Y | items | mean X | mean Y | mean X - Y | items X < Y | worst X - Y |",
             "|---|---|---|---|---|---|---|"]
    for x, y in pairs:
        common = sorted(set(vals.get(x, {})) & set(vals.get(y, {})))
        if not common:
            continue
        d = np.array([vals[x][k] - vals[y][k] for k in common])
        worst = common[int(np.argmin(d))]
        lines.append(f"| {x} vs {y} | {len(common)} | {np.mean([vals[x][k] for k in common]):.2f} | "
                     f"{np.mean([vals[y][k] for k in common]):.2f} | {d.mean():+.2f} | {int((d < 0).sum())} | "
                     f"{d.min():+.2f} ({worst}) |")
    return "\n".join(lines)


def history_table(label: str, folder: Path) -> str:
    hist = json.loads((folder / "history.json").read_text())
    val = [r for r in hist if "val_psnr" in r]
    keys = [k for k in ("val_psnr", "val_psnr_average", "val_psnr_near", "val_below_average", "val_commutativity_mse")
            if any(k in r for r in val)]
    lines = [f"**{label}** (`{folder}`)", "", "| step | hours | " + " | ".join(k[4:] for k in keys) + " |",
             "|---|---|" + "---|" * len(keys)]
    for r in val:
        cells = [f"{r[k]:.4g}" if isinstance(r.get(k), float) else str(r.get(k, "")) for k in keys]
        lines.append(f"| {r['step']} | {r.get('val_wall_s', 0) / 3600:.2f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--eval", action="append", default=[], help="mfif eval results.csv (repeatable)")
    p.add_argument("--pairs-dataset", default="pairs")
    p.add_argument("--real", action="append", default=[], help="dataset(s) for Q_G_yl / Q_CB (default mfifb)")
    p.add_argument("--compare", action="append", default=[], metavar="X:Y")
    p.add_argument("--run", action="append", default=[], metavar="LABEL=FOLDER")
    args = p.parse_args()
    out = []
    if args.eval:
        rows = load_rows(args.eval)
        real = [(ds, m) for ds in (args.real or ["mfifb"]) for m in ("Q_G_yl", "Q_CB")]
        out += ["## Means (items in brackets)", "",
                means_table(rows, [(args.pairs_dataset, "PSNR_GT"), (args.pairs_dataset, "SSIM_GT")] + real), ""]
        methods = {m for (_, _, m) in rows}
        pairs = [tuple(c.split(":", 1)) for c in args.compare] or (
            [(m, "average") for m in sorted(methods) if m.startswith("hf-reg")]
            + [(m, "hf-seg") for m in sorted(methods) if m.startswith("hf-reg")]
            + [(m, "sml") for m in sorted(methods) if m.startswith("hf-seg")])
        out += [f"## Per item on the dev GT pairs (`{args.pairs_dataset}`)", "",
                compare_table(rows, args.pairs_dataset, pairs), ""]
    if args.run:
        out += ["## Validation vs training hours", ""]
        for spec in args.run:
            label, _, folder = spec.partition("=")
            out += [history_table(label, Path(folder)), ""]
    print("\n".join(out))


if __name__ == "__main__":
    main()
