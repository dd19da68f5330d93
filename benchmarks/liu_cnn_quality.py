"""Quality of the Liu et al. 2017 CNN fusion on the dev sets: our trained weights (``cnn``,
``cnn-slight``) next to the authors' released slight weights and ``gff``.

Metrics: Q_G and Q_Y in Yu Liu's corrected form (``Q_G_yl``, ``Q_Y_yl``: the survey convention,
SPEC "Fusion metrics"), Q_CB and Q_MI (Zheng Liu's toolbox), and PSNR/SSIM against the ground truth
where the dataset has one (the synthetic dev set). Prints a markdown table of means per dataset.

Run (heavy: take the shared lock)::

    flock /tmp/mfif-heavy.lock python benchmarks/liu_cnn_quality.py \
        --data ../shared/data/mf-real/liu-grayscale --data runs/devset/pairs \
        --mat ../shared/reference/liu-cnn/cnnmodel-slight.mat --json runs/liu_cnn_quality.json
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

METRIC_KEYS = ("Q_G_yl", "Q_Y_yl", "Q_CB", "Q_MI")
GT_KEYS = ("PSNR_GT", "SSIM_GT")


def main(argv=None) -> int:
    import mfif
    from mfif.datasets import discover
    from mfif.io import read_stack
    from mfif.metrics import METRICS

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", action="append", required=True)
    p.add_argument("--mat", help="the authors' cnnmodel.mat (adds the row 'cnn-slight (authors)')")
    p.add_argument("--methods", default="cnn-slight,cnn,gff")
    p.add_argument("--limit", type=int, default=0, help="first N items per dataset (0 = all)")
    p.add_argument("--json")
    args = p.parse_args(argv)

    runs = [(m, m, {}) for m in args.methods.split(",") if m]
    if args.mat:
        runs.insert(0, ("cnn-slight (authors)", "cnn-slight", {"weights": args.mat}))
    results: dict = {}
    for folder in args.data:
        ds = discover(folder)
        items = [it for it in ds.items if it.kind == "pair"]
        if args.limit:
            items = items[: args.limit]
        table = results.setdefault(str(folder), {})
        for item in items:
            stack = read_stack(item.sources).images
            gt = read_stack([item.ground_truth, item.ground_truth]).images[0] if item.ground_truth else None
            for label, method, opts in runs:
                t = time.perf_counter()
                fused = mfif.fuse(stack, method=method, **opts).fused
                seconds = time.perf_counter() - t
                keys = METRIC_KEYS + (GT_KEYS if gt is not None else ())
                row = table.setdefault(label, {})
                for k in keys:
                    m = METRICS[k]
                    value = m.function(stack, fused, ground_truth=gt)
                    row.setdefault(k, []).append(float(value))
                row.setdefault("seconds", []).append(seconds)
            print(f"{Path(folder).name}/{item.name} done", flush=True)
    summary = {ds: {label: {k: float(np.mean(v)) for k, v in row.items()} for label, row in table.items()}
               for ds, table in results.items()}
    for ds, table in summary.items():
        n = len(next(iter(results[ds].values()))["seconds"]) if results[ds] else 0
        print(f"\n### {ds} ({n} pairs, means)\n")
        keys = [k for k in METRIC_KEYS + GT_KEYS + ("seconds",) if any(k in r for r in table.values())]
        print("| method | " + " | ".join(keys) + " |")
        print("|---|" + "---|" * len(keys))
        for label, row in table.items():
            print(f"| {label} | " + " | ".join(f"{row[k]:.4f}" if k in row else "" for k in keys) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps({"means": summary, "per_item": results}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
