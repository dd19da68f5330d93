"""focusnet against every other method, per item: means and per-item wins, from ``mfif eval`` CSVs.

    python benchmarks/focusnet_compare.py RUN.csv [RUN.csv ...] [--reference benchmarks/results/eval-learned/results.csv]
        [--out benchmarks/results/focusnet/summary.md]

Rows (dataset, item, method) come from the given runs; a (dataset, method) that no run has is taken
from ``--reference`` (the committed eval of the learned methods: same dev-set bytes, same metric
code, computed earlier) and marked with a dagger. For each dataset and metric: the mean of every
method over the items that focusnet has, and how many items focusnet beats it on (ties: half).
"""
from __future__ import annotations

import argparse
import csv
import math
from collections import defaultdict
from pathlib import Path

METRICS = ("PSNR_GT", "SSIM_GT", "Q_G_yl", "Q_CB")
OURS = "focusnet"


def read(path) -> dict:
    rows = {}
    with open(path, newline="") as fh:
        for r in csv.DictReader(fh):
            rows[(r["dataset"], r["item"], r["method"])] = r
    return rows


def value(row, metric):
    text = row.get(metric, "") if row else ""
    try:
        v = float(text)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--reference", default=str(Path(__file__).parent / "results" / "eval-learned" / "results.csv"))
    parser.add_argument("--methods", default="sml,gff,laplacian,ba,cnn-slight-authors,ifcnn-max-authors")
    parser.add_argument("--out")
    args = parser.parse_args()
    rows = {}
    for run in args.runs:
        rows.update(read(run))
    have = {(d, m) for d, _, m in rows}
    reference = read(args.reference) if args.reference and Path(args.reference).is_file() else {}
    borrowed = set()
    for (d, i, m), r in reference.items():
        if (d, m) not in have and (d, OURS) in have:
            rows[(d, i, m)] = r
            borrowed.add((d, m))
    others = args.methods.split(",")
    lines = []
    datasets = sorted({d for d, _, m in rows if m == OURS})
    for d in datasets:
        items = sorted({i for dd, i, m in rows if dd == d and m == OURS})
        for metric in METRICS:
            ours = {i: value(rows.get((d, i, OURS)), metric) for i in items}
            if all(v is None for v in ours.values()):
                continue
            for m in others:
                pairs = [(ours[i], value(rows.get((d, i, m)), metric)) for i in items]
                pairs = [(a, b) for a, b in pairs if a is not None and b is not None]
                if not pairs:
                    continue
                mean_m = sum(b for _, b in pairs) / len(pairs)
                mean_o = sum(a for a, _ in pairs) / len(pairs)
                wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in pairs)
                mark = " †" if (d, m) in borrowed else ""
                better = "**yes**" if mean_o > mean_m else "no"
                lines.append(f"| {d} | {metric} | {m}{mark} | {len(pairs)} | {mean_m:.4f} | {mean_o:.4f} | {better} | {wins:g} |")
    text = ("| dataset | metric | other method | items | its mean | focusnet mean | focusnet higher | focusnet per-item wins |\n"
            "|---|---|---|---|---|---|---|---|\n" + "\n".join(lines) + "\n")
    if borrowed:
        text += ("\n† from " + str(args.reference) + " (committed eval of the learned methods, same dev set and metric "
                 "code, not recomputed in this run): " + ", ".join(f"{d}/{m}" for d, m in sorted(borrowed)) + "\n")
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
