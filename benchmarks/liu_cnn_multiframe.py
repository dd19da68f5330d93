"""More than two frames with the Liu et al. 2017 CNN: the N-way mode (argmax of symmetric per-frame
scores) against the paper's series folding, on stacks with a ground truth (the synthetic dev set's
``stacks/``). Reports PSNR/SSIM vs GT for each mode and the order sensitivity (the same stack fused
in reversed order: PSNR between the two results; N-way should be identical up to float noise).

Run (heavy: take the shared lock)::

    flock /tmp/mfif-heavy.lock python benchmarks/liu_cnn_multiframe.py --data runs/devset/stacks \
        --weights ../shared/reference/liu-cnn/cnnmodel-slight.mat
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    import mfif
    from mfif.dataset_folders import discover
    from mfif.io import read_stack
    from mfif.metrics import METRICS

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--method", default="cnn-slight")
    p.add_argument("--weights", default=None)
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--json")
    args = p.parse_args(argv)
    items = [it for it in discover(args.data).items if it.ground_truth is not None and len(it.sources) > 2]
    if args.limit:
        items = items[: args.limit]
    opts = {"weights": args.weights} if args.weights else {}
    psnr, ssim = METRICS["PSNR_GT"].function, METRICS["SSIM_GT"].function
    rows = []
    for item in items:
        stack = read_stack(item.sources).images
        gt = read_stack([item.ground_truth, item.ground_truth]).images[0]
        row = {"item": item.name, "frames": len(stack)}
        for mode in ("nway", "series"):
            fwd = mfif.fuse(stack, method=args.method, nframe_strategy=mode, **opts).fused
            rev = mfif.fuse(stack[::-1].copy(), method=args.method, nframe_strategy=mode, **opts).fused
            row[f"{mode}_psnr"] = float(psnr(stack, fwd, ground_truth=gt))
            row[f"{mode}_ssim"] = float(ssim(stack, fwd, ground_truth=gt))
            row[f"{mode}_psnr_reversed"] = float(psnr(stack, rev, ground_truth=gt))
            row[f"{mode}_order_maxdiff"] = float(np.abs(fwd - rev).max())
        rows.append(row)
        print(row, flush=True)
    keys = [k for k in rows[0] if k not in ("item", "frames")] if rows else []
    print(f"\n{len(rows)} stacks, {args.method} ({args.weights or 'shipped weights'}), means:")
    for k in keys:
        print(f"  {k}: {np.mean([r[k] for r in rows]):.4f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
