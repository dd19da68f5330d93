"""One summary of an `mfif eval` report: per metric, the mean of every method on every dataset over
the items *all* methods have (so a method run on part of a set is compared on that part only),
with per-item wins among the methods.

    python benchmarks/eval_compare_summary.py benchmarks/results/eval-compare/results.csv \
        --out benchmarks/results/eval-compare/summary.md

Cells: ``mean (wins)``; the header gives the number of common items n per set (a set with fewer
items than the report's table for some method is marked ``n*``). Bold: the best mean. Wins: items
where the method is best (ties count for each tied method). A method with results on less than
half of a set is left out of that column (shown as ``(k items)``).
"""
from __future__ import annotations

import argparse
import math
import sys
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mfif.evaluation.report import read_csv  # noqa: E402
from mfif.metrics import METRICS  # noqa: E402

DIGITS = {"PSNR_GT": 2, "PSNR_band": 2}


def summary(rows) -> str:
    datasets = list(dict.fromkeys(r.dataset for r in rows))
    methods = list(dict.fromkeys(r.method for r in rows))
    metrics = list(dict.fromkeys(k for r in rows for k in r.values))
    values = defaultdict(dict)  # (dataset, metric) -> {(item, method): value}
    items_of = defaultdict(set)
    for r in rows:
        items_of[r.dataset].add(r.item)
        for k, v in r.values.items():
            if v is not None and not math.isnan(v):
                values[r.dataset, k][r.item, r.method] = v
    parts = []
    for metric in metrics:
        higher = METRICS[metric].higher_is_better if metric in METRICS else True
        digits = DIGITS.get(metric, 4)
        header, cells = [], defaultdict(list)
        for ds in datasets:
            vals = values.get((ds, metric), {})
            if not vals:
                continue
            counts = {m: sum(1 for (_, mm) in vals if mm == m) for m in methods}
            # a method run on less than half of the set is left out of it (not to shrink the others' n)
            present = [m for m in methods if counts[m] and 2 * counts[m] >= max(counts.values())]
            common = sorted(it for it in items_of[ds] if all((it, m) in vals for m in present))
            partial = any(sum(1 for (i, mm) in vals if mm == m) != len(common) for m in present)
            header.append(f"{ds} (n={len(common)}{'*' if partial else ''})")
            wins = defaultdict(int)
            for it in common:
                best = (max if higher else min)(vals[it, m] for m in present)
                for m in present:
                    wins[m] += vals[it, m] == best
            means = {m: sum(vals[it, m] for it in common) / len(common) for m in present if common}
            best_mean = (max if higher else min)(means.values()) if means else None
            for m in methods:
                if m not in means:
                    cells[m].append(f"({counts[m]} items)" if counts[m] else "–")
                    continue
                text = f"{means[m]:.{digits}f} ({wins[m]})"
                cells[m].append(f"**{text}**" if round(means[m], digits) == round(best_mean, digits) else text)
        if not header:
            continue
        parts.append(f"### {metric} {'↑' if higher else '↓'}\n")
        parts.append("| method | " + " | ".join(header) + " |")
        parts.append("|---|" + "---:|" * len(header))
        parts.extend(f"| {m} | " + " | ".join(cells[m]) + " |" for m in methods)
        parts.append("")
    parts.append("Cells: mean over the items every method of the set has (n), per-item wins in brackets (ties "
                 "count for each); bold: best mean. `n*`: some method has more items in the report than the "
                 "common set (it was run on more of the set); compare within this table only. `(k items)`: a "
                 "method run on less than half of the set so far, left out of that column.")
    return "\n".join(parts) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("csv", help="results.csv of an mfif eval report")
    p.add_argument("--out", help="write the markdown here as well")
    args = p.parse_args(argv)
    text = summary(read_csv(Path(args.csv)))
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
