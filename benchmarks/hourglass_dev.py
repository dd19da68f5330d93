"""Order dependence of HF-Seg / HF-Reg / HF-Reg+Near on the dev set and the real pairs (issue 8).

    python benchmarks/hourglass_dev.py --devset scratch/devset --out benchmarks/results/hourglass_dev \
        [--parts stacks,comm] [--limit N] [--max-minutes M] [--seg-weights F] [--reg-weights F]

Quality on the dev set (the 100 GT pairs, the 20 three-frame stacks with each N-frame strategy as
a variant) and on ../shared/data/mf-real is ``mfif eval``: ``benchmarks/eval_learned.sh``. This
script measures what ``mfif eval`` does not: how much the result depends on the frame order.
Parts (rows are appended to ``OUT/<part>.jsonl`` as they are computed; a rerun skips done items):

- ``stacks``: the dev set's 20 three-frame stacks: PSNR_GT of HF-Seg ``series`` (the paper's
  f(f(x0, x1), x2)) and ``nway`` (our symmetric rule), HF-Reg series (+Near), gff, in the given
  and in the reversed frame order, and the mean squared difference between the two results.
- ``comm``: the commutativity error, mean squared difference between f(A, B) and f(B, A), for
  HF-Seg, HF-Reg (the regression) and HF-Reg+Near, on every synthetic pair (with their PSNR_GT /
  SSIM_GT) and every real pair of ../shared/data/mf-real, a deduplicated set first (liu-grayscale;
  sesf-extra without the Savic/TID pairs, which are larger copies of mfifb's savic_*; mfifb without
  stand_* and newspaper, half-size copies of liu-grayscale) and then the 19 copies it leaves out
  (rows flagged ``duplicate``), so a time-limited run covers the deduplicated set first.

A summary table is written to ``OUT/summary.md``. (The ``synth`` and ``real`` parts of earlier
versions, scores next to gff and cnn, are ``eval_learned.sh``'s ``eval-learned`` tables now.)
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

import mfif  # noqa: E402
from mfif.io import read_image, read_stack  # noqa: E402
from mfif.metrics import METRICS  # noqa: E402

GT_METRICS = ("PSNR_GT", "SSIM_GT")


def _mse(x, y) -> float:
    return float(np.mean((np.asarray(x, np.float64) - np.asarray(y, np.float64)) ** 2))


def _pairs(folder: Path) -> list[tuple[str, Path, Path, Path | None]]:
    out = []
    for a in sorted(folder.glob("*_A.*")):
        stem = a.name[: a.name.rindex("_A.")]
        b = next(iter(sorted(folder.glob(f"{stem}_B.*"))), None)
        gt = next(iter(sorted(folder.glob(f"{stem}_GT.*"))), None)
        if b is not None:
            out.append((stem, a, b, gt))
    return out


def real_pairs(mf_real: Path) -> list[tuple[str, Path, Path, None]]:
    items = []
    for name, a, b, _ in _pairs(mf_real / "liu-grayscale"):
        items.append((f"liu-grayscale/{name}", a, b, None))
    for name, a, b, _ in _pairs(mf_real / "sesf-extra"):
        if "_tid_" not in name:
            items.append((f"sesf-extra/{name}", a, b, None))
    for name, a, b, _ in _pairs(mf_real / "mfifb"):
        if not name.startswith("stand_") and name != "newspaper":
            items.append((f"mfifb/{name}", a, b, None))
    return items


def all_real_pairs(mf_real: Path) -> list[tuple[str, Path, Path, bool]]:
    """Every pair of ``mf_real``'s sub-folders as (name, A, B, duplicate): the :func:`real_pairs`
    set first (duplicate False), then the copies it leaves out (duplicate True)."""
    kept = [(name, a, b, False) for name, a, b, _ in real_pairs(mf_real)]
    names = {k[0] for k in kept}
    extra = [(f"{sub.name}/{name}", a, b, True) for sub in sorted(p for p in mf_real.iterdir() if p.is_dir())
             for name, a, b, _ in _pairs(sub) if f"{sub.name}/{name}" not in names]
    return kept + extra


class Runner:
    def __init__(self, args):
        self.seg_opts = {"weights": args.seg_weights} if args.seg_weights else {}
        self.reg_opts = {"weights": args.reg_weights} if args.reg_weights else {}


def _score(names, sources, fused, gt=None) -> dict:
    out = {}
    for n in names:
        try:
            out[n] = float(METRICS[n].function(list(sources), np.clip(fused, 0, 1), ground_truth=gt))
        except Exception as exc:  # a metric failing on one image must not stop the run
            out[n] = float("nan")
            print(f"metric {n} failed: {exc}", file=sys.stderr)
    return out


def _done(path: Path) -> set[str]:
    if not path.is_file():
        return set()
    return {json.loads(line)["item"] for line in path.read_text().splitlines() if line.strip()}


def _append(path: Path, row: dict) -> None:
    with open(path, "a") as fh:
        fh.write(json.dumps(row) + "\n")


def _pending(items, out: Path, deadline: float, name=lambda item: item[0]):
    """The items whose name is not yet in ``out`` (a rerun resumes), until the wall-clock deadline."""
    done = _done(out)
    for item in items:
        if name(item) in done:
            continue
        if time.time() > deadline:
            print(f"time budget reached before {name(item)}")
            return
        yield item


def run_stacks(runner: Runner, devset: Path, out: Path, deadline: float, limit: int) -> None:
    folders = sorted(p for p in (devset / "stacks").iterdir() if p.is_dir())
    for folder in _pending(folders[:limit] if limit else folders, out, deadline, name=lambda f: f.name):
        frames = sorted(p for p in folder.glob(f"{folder.name}_*.png"))
        stack = read_stack(frames).images
        gt = read_image(folder / "GT.png")
        rev = stack[::-1].copy()
        res = {}
        for label, method, opts in (("hf-seg series", "hf-seg", {"nframe_strategy": "series", **runner.seg_opts}),
                                    ("hf-seg nway", "hf-seg", {"nframe_strategy": "nway", **runner.seg_opts}),
                                    ("hf-reg series", "hf-reg", {**runner.reg_opts}),
                                    ("hf-reg+near series", "hf-reg", {"near": True, **runner.reg_opts}),
                                    ("gff", "gff", {})):
            f = mfif.fuse(stack, method=method, **opts).fused
            fr = mfif.fuse(rev, method=method, **opts).fused
            res[label] = {"psnr": _score(["PSNR_GT"], stack, f, gt)["PSNR_GT"],
                          "psnr_reversed": _score(["PSNR_GT"], rev, fr, gt)["PSNR_GT"],
                          "order_mse": _mse(f, fr)}
        _append(out, {"item": folder.name, "results": res})
        print(folder.name + ": " + ", ".join(f"{k} {v['psnr']:.2f}/{v['psnr_reversed']:.2f}" for k, v in res.items()),
              flush=True)


def run_comm(runner: Runner, devset: Path, mf_real: Path, out: Path, deadline: float, limit: int) -> None:
    """Commutativity MSE f(A, B) vs f(B, A) of hf-seg, hf-reg, hf-reg+near (see the module docstring)."""
    synth = [(f"synth/{n}", a, b, gt, False) for n, a, b, gt in _pairs(devset / "pairs")]
    real = [(f"real/{n}", a, b, None, dup) for n, a, b, dup in all_real_pairs(mf_real)]
    items = (synth[:limit] + real[:limit]) if limit else synth + real
    for name, a_path, b_path, gt_path, dup in _pending(items, out, deadline):
        stack = read_stack([a_path, b_path]).images
        ab, ba = stack, stack[::-1].copy()
        fused, comm = {}, {}
        s1 = mfif.fuse(ab, method="hf-seg", **runner.seg_opts).fused
        s2 = mfif.fuse(ba, method="hf-seg", **runner.seg_opts).fused
        fused["hf-seg"], comm["hf-seg"] = s1, _mse(s1, s2)
        r1 = mfif.fuse(ab, method="hf-reg", near=True, **runner.reg_opts)
        r2 = mfif.fuse(ba, method="hf-reg", near=True, **runner.reg_opts)
        fused["hf-reg"], comm["hf-reg"] = r1.maps["regressed"], _mse(r1.maps["regressed"], r2.maps["regressed"])
        fused["hf-reg+near"], comm["hf-reg+near"] = r1.fused, _mse(r1.fused, r2.fused)
        row = {"item": name, "duplicate": dup, "shape": list(stack.shape), "comm": comm}
        if gt_path is not None:
            gt = read_image(gt_path)
            row["scores"] = {m: _score(list(GT_METRICS), stack, f, gt) for m, f in fused.items()}
        _append(out, row)
        print(f"{name}: " + ", ".join(f"{m} {v:.2e}" for m, v in comm.items()), flush=True)


def _comm_summary(rows: list[dict]) -> list[str]:
    lines = []
    groups = (("synthetic pairs", [r for r in rows if r["item"].startswith("synth/")]),
              ("real pairs, deduplicated (the `real` set)", [r for r in rows if r["item"].startswith("real/")
                                                             and not r["duplicate"]]),
              ("real pairs, all (with the copies)", [r for r in rows if r["item"].startswith("real/")]
               if any(r.get("duplicate") for r in rows) else []))
    lines.append("## commutativity: mean squared difference between f(A, B) and f(B, A)\n")
    lines.append("| set | pairs | method | mean | median | max |")
    lines.append("|---|---|---|---|---|---|")
    for label, group in groups:
        if not group:
            continue
        for m in group[0]["comm"]:
            v = [r["comm"][m] for r in group]
            lines.append(f"| {label} | {len(group)} | {m} | {_mean(v):.2e} | {_median(v):.2e} | {max(v):.2e} |")
    synth = [r for r in rows if "scores" in r]
    if synth:
        lines.append(f"\nThe same run's synthetic scores ({len(synth)} pairs; mean (median)):\n")
        lines.append("| method | " + " | ".join(GT_METRICS) + " |")
        lines.append("|---" * (len(GT_METRICS) + 1) + "|")
        for m in synth[0]["scores"]:
            lines.append(f"| {m} | " + " | ".join(f"{_mean(r['scores'][m][k] for r in synth):.4f} "
                                                  f"({_median(r['scores'][m][k] for r in synth):.4f})"
                                                  for k in GT_METRICS) + " |")
    lines.append("")
    return lines


def _mean(values) -> float:
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], np.float64)
    return float(v.mean()) if v.size else float("nan")


def _median(values) -> float:
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], np.float64)
    return float(np.median(v)) if v.size else float("nan")


def summarise(out_dir: Path) -> str:
    lines = ["# Hourglass order dependence\n"]
    path = out_dir / "stacks.jsonl"
    if path.is_file():
        rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
        lines.append(f"## three-frame stacks ({len(rows)} stacks, PSNR vs GT)\n")
        lines.append("| strategy | PSNR (given order) | PSNR (reversed order) | MSE between the two orders |")
        lines.append("|---|---|---|---|")
        for k in rows[0]["results"]:
            lines.append(f"| {k} | {_mean(r['results'][k]['psnr'] for r in rows):.2f} | "
                         f"{_mean(r['results'][k]['psnr_reversed'] for r in rows):.2f} | "
                         f"{_mean(r['results'][k]['order_mse'] for r in rows):.2e} |")
        lines.append("")
    path = out_dir / "comm.jsonl"
    if path.is_file():
        lines += _comm_summary([json.loads(x) for x in path.read_text().splitlines() if x.strip()])
    text = "\n".join(lines)
    (out_dir / "summary.md").write_text(text)
    return text


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--devset", default=str(ROOT / "scratch" / "devset"))
    p.add_argument("--real", default=str(ROOT.parent / "shared" / "data" / "mf-real"))
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "hourglass_dev"))
    p.add_argument("--parts", default="stacks,comm")
    p.add_argument("--limit", type=int, default=0, help="at most N items per part (0 = all)")
    p.add_argument("--max-minutes", type=float, default=0.0, help="stop starting new items after this long")
    p.add_argument("--seg-weights")
    p.add_argument("--reg-weights")
    p.add_argument("--summary-only", action="store_true")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runner = Runner(args)
    deadline = time.time() + 60 * args.max_minutes if args.max_minutes > 0 else float("inf")
    if not args.summary_only:
        for part in args.parts.split(","):
            if part == "stacks":
                run_stacks(runner, Path(args.devset), out / "stacks.jsonl", deadline, args.limit)
            elif part == "comm":
                run_comm(runner, Path(args.devset), Path(args.real), out / "comm.jsonl", deadline, args.limit)
            else:
                raise SystemExit(f"unknown part {part!r}")
    print(summarise(out))


if __name__ == "__main__":
    main()
