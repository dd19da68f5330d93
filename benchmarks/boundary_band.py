"""RGB PSNR and decision accuracy near the true focus boundary, from the fused images of an eval run.

The grey ``PSNR_band`` / ``SSIM_band`` metrics of ``mfif eval --metrics`` (:mod:`mfif.metrics.boundary`)
replace this script for new tables (benchmarks/eval_compare.sh); it stays to reproduce
benchmarks/results/boundary_band.md (RGB PSNR and the decision accuracy ``acc_band``, which the
metrics do not give) and uses the metric's band (:func:`mfif.metrics.boundary.boundary_band`).

Boundary-aware fusion (Ma et al. 2019) claims its gain at the focused/defocused boundary, where a
whole-image PSNR hides it. This reads the fused images that ``mfif eval`` cached for the synthetic
dev set (``<cache>/<dataset>/<label>/<item>.png``) and scores each one twice: over the whole image
and over the pixels within ``--width`` px of the true boundary (the frame-A focus map of the dev set,
``pairs/focus/<item>_A.png``, thresholded at 0.5). Also the decision accuracy in the band, for
methods whose fused pixel equals one source: the fraction of band pixels whose fused value is
nearer the in-focus source than the other one (ties count as right).

No fusion is run: first ``mfif eval --data DEVSET/pairs ... --cache CACHE`` (see
benchmarks/results/README.md), then::

    python benchmarks/boundary_band.py --devset scratch/devset --cache scratch/eval-cache \
        --labels gff,cnn,ba,ba-initial --out benchmarks/results/boundary_band.md
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mfif.io import read_image  # noqa: E402
from mfif.metrics.boundary import boundary_band, focus_labels  # noqa: E402


def psnr(x: np.ndarray, ref: np.ndarray) -> float:
    mse = float(np.mean((x.astype(np.float64) - ref.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def score_item(devset_pairs: Path, cache: Path, item: str, label: str, width: float) -> dict | None:
    fused_path = cache / label / f"{item}.png"
    if not fused_path.is_file():
        return None
    fused = read_image(fused_path)
    gt = read_image(devset_pairs / f"{item}_GT.png")
    a = read_image(devset_pairs / f"{item}_A.png")
    b = read_image(devset_pairs / f"{item}_B.png")
    focus = read_image(devset_pairs / "focus" / f"{item}_A.png")[0]
    band = boundary_band(focus_labels([focus]), width)
    if not band.any():
        return None
    # decision proxy: is the fused pixel nearer the source that is in focus there?
    da = np.abs(fused - a).sum(0)
    db = np.abs(fused - b).sum(0)
    picks_a = da <= db
    truth_a = focus >= 0.5
    distinct = np.abs(a - b).sum(0) > 3 / 255  # where the sources differ, a choice is visible
    sel = band & distinct
    return {"psnr": psnr(fused, gt), "psnr_band": psnr(fused[:, band], gt[:, band]),
            "acc_band": float((picks_a == truth_a)[sel].mean()) if sel.any() else math.nan,
            "band_fraction": float(band.mean())}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--devset", required=True, help="folder made by 'mfif synth --devset' (with pairs/)")
    p.add_argument("--cache", required=True, help="the eval cache folder (mfif eval --cache)")
    p.add_argument("--dataset", default="pairs", help="dataset name inside the cache (default: pairs)")
    p.add_argument("--labels", required=True, help="comma-separated method labels as in the eval report")
    p.add_argument("--width", type=float, default=8.0, help="band half-width in pixels (default 8)")
    p.add_argument("--out", help="write the markdown table here as well")
    args = p.parse_args(argv)
    pairs = Path(args.devset) / "pairs"
    cache = Path(args.cache) / args.dataset
    labels = [s.strip() for s in args.labels.split(",") if s.strip()]
    items = sorted(f.name[:-len("_GT.png")] for f in pairs.glob("*_GT.png"))
    rows = {}
    for label in labels:
        vals = [v for v in (score_item(pairs, cache, it, label, args.width) for it in items) if v is not None]
        rows[label] = vals
    common = min((len(v) for v in rows.values()), default=0)
    lines = [f"RGB PSNR (all channels; the eval's PSNR_GT is on grey) vs ground truth over the whole image and within {args.width:g} px of the true focus "
             f"boundary; synthetic dev set `{args.dataset}` ({len(items)} items; n = items each method has "
             "in the cache). acc_band: fraction of band pixels (where the sources differ) whose fused value "
             "is nearer the in-focus source.", "",
             "| method | n | PSNR (dB) | PSNR band (dB) | acc band |", "|---|---|---|---|---|"]
    for label, vals in rows.items():
        if not vals:
            lines.append(f"| {label} | 0 | - | - | - |")
            continue
        mean = {k: float(np.nanmean([v[k] for v in vals])) for k in ("psnr", "psnr_band", "acc_band")}
        lines.append(f"| {label} | {len(vals)} | {mean['psnr']:.2f} | {mean['psnr_band']:.2f} | {mean['acc_band']:.4f} |")
    if common and any(len(v) != common for v in rows.values()):
        lines.append("")
        lines.append("Methods cover different numbers of items: compare only rows with the same n.")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
