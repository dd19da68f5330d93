"""A compact table of per-dataset means from one or more ``mfif eval`` ``results.csv`` files.

Rows are (label, source CSV); columns are dataset/metric means over the items that every row has
(so rows taken from a committed report and from a new run are compared on the same items).

    python benchmarks/eval_summary.py \\
        --row "ours-max (start)=ifcnn-max@benchmarks/results/eval-learned/results.csv" \\
        --row "thinlens-300=thinlens-300@scratch/eval-ablation/results.csv" \\
        --metrics pairs:PSNR_GT,pairs:SSIM_GT,liu-grayscale:Q_G_yl --out table.md
"""
from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path


def read_rows(path: str, method: str) -> dict[tuple[str, str], dict[str, float]]:
    out = {}
    with open(path, newline="") as fh:
        for r in csv.DictReader(fh):
            if r["method"] == method:
                out[(r["dataset"], r["item"])] = {k: float(v) for k, v in r.items()
                                                  if k not in ("dataset", "item", "method") and v not in ("", None)}
    return out


def summary(rows: list[tuple[str, dict]], columns: list[tuple[str, str]]) -> str:
    head = "| weights | " + " | ".join(f"{d} {m}" for d, m in columns) + " |"
    lines = [head, "|---" * (len(columns) + 1) + "|"]
    for label, data in rows:
        cells = []
        for dataset, metric in columns:
            common = set.intersection(*[{k for k in d if k[0] == dataset} for _, d in rows])
            vals = [data[k][metric] for k in sorted(common) if metric in data[k]]
            vals = [v for v in vals if math.isfinite(v)]
            digits = 2 if metric.startswith("PSNR") else 4
            cells.append(f"{sum(vals) / len(vals):.{digits}f} (n={len(vals)})" if vals else "")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--row", action="append", required=True, metavar="LABEL=METHOD@CSV")
    p.add_argument("--metrics", required=True, metavar="DATASET:METRIC,...")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    rows = []
    for spec in args.row:
        label, _, rest = spec.partition("=")
        method, _, path = rest.partition("@")
        rows.append((label, read_rows(path, method)))
    columns = [tuple(c.split(":", 1)) for c in args.metrics.split(",") if c]
    text = summary(rows, columns)
    if args.out:
        Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
