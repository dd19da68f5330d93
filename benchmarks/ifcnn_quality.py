"""IFCNN quality on the dev sets: our shipped weights next to the authors' and ``gff``.

- real multi-focus pairs (``shared/data/mf-real``, no ground truth): Q_G (Yu Liu's corrected
  ``Q_G_yl``), Q_Y (``Q_Y_yl``), Q_CB, Q_MI;
- the synthetic GT dev set (``mfif synth --devset``, BSDS500 test photos): PSNR_GT, SSIM_GT;
- the paper's other image types (``shared/data/other``): SF and AG (IR-visible and medical with
  ``max`` in infrared/medical mode), SF, AG and MEF-SSIM (multi-exposure with ``mean`` in exposure
  mode).

Fused images are cached as 8-bit PNG under ``--cache`` (``<set>/<method>/<item>.png``), so a
re-run only recomputes what is missing. Prints a Markdown table and writes ``--json``.

Usage::

    python benchmarks/ifcnn_quality.py --devset /path/to/devset --json ifcnn_quality.json
    python benchmarks/ifcnn_quality.py --sets mf-real --mf-real-folders liu-grayscale --methods ours-max,gff
"""
from __future__ import annotations

import argparse
import glob
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mfif import fuse  # noqa: E402
from mfif.io import read_image, read_stack, write_image  # noqa: E402
from mfif.metrics import METRICS  # noqa: E402

MF_METRICS = ("Q_G_yl", "Q_Y_yl", "Q_CB", "Q_MI")
GT_METRICS = ("PSNR_GT", "SSIM_GT")


def _shared() -> Path:
    return REPO.parent / "shared"


def method_table(ours_dir: Path | None, authors_dir: Path) -> dict[str, tuple[str, dict]]:
    """label -> (method name, options)."""
    table = {}
    for rule in ("max", "mean", "sum"):
        if ours_dir is not None:
            p = ours_dir / f"ifcnn-{rule}.safetensors"
            if p.is_file():
                table[f"ours-{rule}"] = (f"ifcnn-{rule}", {"weights": str(p)})
        else:
            table[f"ours-{rule}"] = (f"ifcnn-{rule}", {})
        a = authors_dir / f"IFCNN-{rule.upper()}.pth"
        if a.is_file():
            table[f"authors-{rule}"] = (f"ifcnn-{rule}", {"weights": str(a)})
    table["gff"] = ("gff", {})
    return table


def pairs_in(folder: Path) -> list[tuple[str, list[Path], Path | None]]:
    """<name>_A/_B[/_GT] pairs in a folder."""
    out = []
    for a in sorted(folder.glob("*_A.*")):
        name = a.name[: a.name.rfind("_A.")]
        b = sorted(folder.glob(f"{name}_B.*"))
        gt = sorted(folder.glob(f"{name}_GT.*"))
        if b:
            out.append((name, [a, b[0]], gt[0] if gt else None))
    return out


def _fused(cache: Path, set_name: str, label: str, item: str, method: str, options: dict, frames, stack=None):
    path = cache / set_name / label / f"{item}.png"
    if path.is_file():
        return read_image(path), None
    path.parent.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    r = fuse(stack if stack is not None else [str(f) for f in frames], method=method, **options)
    seconds = time.perf_counter() - t
    write_image(path, r.fused, bit_depth=8)
    return np.round(r.fused * 255) / 255, seconds


def score(metrics, sources, fused, gt=None) -> dict:
    out = {}
    for m in metrics:
        out[m] = float(METRICS[m].function(list(sources), fused, ground_truth=gt))
    return out


def run_set(set_name, items, labels, table, metrics, cache, options_extra=None, mean_rule_only=False):
    rows = {lab: [] for lab in labels}
    for name, frames, gt_path in items:
        stack = read_stack(frames)
        gt = read_image(gt_path) if gt_path is not None else None
        for lab in labels:
            method, opts = table[lab]
            opts = dict(opts, **(options_extra or {})) if method.startswith("ifcnn") else opts
            fused, _ = _fused(cache, set_name, lab, name, method, opts, frames, stack=stack)
            ms = [m for m in metrics if METRICS[m].n_sources in (None, 0, len(frames)) or m == "MEF_SSIM"]
            rows[lab].append(score(ms, stack.images, fused, gt))
        print(f"  {set_name}/{name} done", file=sys.stderr, flush=True)
    return {lab: {m: float(np.mean([r[m] for r in rs if m in r])) for m in rs[0]} if rs else {}
            for lab, rs in rows.items()}


def markdown(results: dict) -> str:
    lines = []
    for set_name, per_method in results.items():
        metrics = sorted({m for v in per_method.values() for m in v})
        lines.append(f"\n### {set_name}\n")
        lines.append("| method | " + " | ".join(metrics) + " |")
        lines.append("|---|" + "---|" * len(metrics))
        for lab, vals in per_method.items():
            lines.append(f"| {lab} | " + " | ".join(f"{vals.get(m, float('nan')):.4f}" for m in metrics) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    shared = _shared()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ours", default=None, help="folder with ifcnn-<rule>.safetensors (default: the shipped weights)")
    p.add_argument("--authors", default=str(shared / "reference" / "ifcnn" / "weights"))
    p.add_argument("--devset", default=None, help="synthetic GT dev set folder (with pairs/)")
    p.add_argument("--sets", default="mf-real,synthetic,ir-vis,medical,exposure")
    p.add_argument("--mf-real-folders", default="liu-grayscale,sesf-extra,mfifb")
    p.add_argument("--methods", default="ours-max,ours-mean,authors-max,authors-mean,gff")
    p.add_argument("--limit", type=int, default=0, help="items per set (0 = all)")
    p.add_argument("--cache", default="ifcnn-quality-cache")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)

    table = method_table(Path(args.ours) if args.ours else None, Path(args.authors))
    wanted = [m for m in args.methods.split(",") if m]
    missing = [m for m in wanted if m not in table]
    if missing:
        print(f"skipping methods without weights: {', '.join(missing)}", file=sys.stderr)
    labels = [m for m in wanted if m in table]
    cache = Path(args.cache)
    lim = (lambda xs: xs[: args.limit]) if args.limit else (lambda xs: xs)
    results = {}
    sets = args.sets.split(",")
    if "mf-real" in sets:
        items = []
        for folder in args.mf_real_folders.split(","):
            items += [(f"{folder}-{n}", f, g) for n, f, g in pairs_in(shared / "data" / "mf-real" / folder)]
        results["mf-real"] = run_set("mf-real", lim(items), labels, table, MF_METRICS, cache, {"modality": "multifocus"})
    if "synthetic" in sets and args.devset:
        items = pairs_in(Path(args.devset) / "pairs")
        results["synthetic-gt"] = run_set("synthetic", lim(items), labels, table, GT_METRICS, cache, {"modality": "multifocus"})
    other = shared / "data" / "other"
    if "ir-vis" in sets:
        names = sorted({Path(f).name.rsplit("_", 1)[0] for f in glob.glob(str(other / "ir-vis" / "*_IR.png"))})
        items = [(n, [other / "ir-vis" / f"{n}_Vis.png", other / "ir-vis" / f"{n}_IR.png"], None) for n in names]
        labs = [lab for lab in labels if lab.endswith("max")]
        results["ir-vis (max, infrared mode)"] = run_set("ir-vis", lim(items), labs, table, ("SF", "AG"), cache,
                                                         {"modality": "infrared"})
    if "medical" in sets:
        items = [(f"c0{i}", [other / "medical" / f"c0{i}_1.png", other / "medical" / f"c0{i}_2.png"], None)
                 for i in range(1, 9)]
        labs = [lab for lab in labels if lab.endswith("max")]
        results["medical (max, medical mode)"] = run_set("medical", lim(items), labs, table, ("SF", "AG"), cache,
                                                         {"modality": "medical"})
    if "exposure" in sets:
        items = [(d.name, sorted(d.glob("*.jpg")), None) for d in sorted((other / "multi-exposure").iterdir()) if d.is_dir()]
        labs = [lab for lab in labels if lab.endswith("mean")]
        results["multi-exposure (mean, exposure mode)"] = run_set("exposure", lim(items), labs, table,
                                                                  ("SF", "AG", "MEF_SSIM"), cache, {"modality": "exposure"})
    print(markdown(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
