"""Dev-set evaluation of ``ba`` with and without refinement next to ``cnn`` and ``gff`` (issue 7).

    flock /tmp/mfif-heavy.lock python benchmarks/ba_devset.py --devset runs/devset \
        --out benchmarks/results/ba_dev [--parts synth,real] [--limit N] [--max-minutes M]

Parts (rows appended to ``OUT/<part>.jsonl`` as they are computed; a rerun skips done items):

- ``synth``: the dev set's GT pairs (``mfif synth --devset``, BSDS500 test, never used for
  training): PSNR_GT and SSIM_GT of the fused image, and PSNR_band: the PSNR against the ground
  truth over the pixels within 8 px of the true focus boundary (focus map of frame A at 0.5),
  where BA claims its gain; also the decision accuracy in that band for the decision methods.
- ``real``: ../shared/data/mf-real (liu-grayscale; sesf-extra without the Savic/TID pairs; mfifb
  without stand_* and newspaper: the same de-duplication as ``benchmarks/hourglass_dev.py``):
  Q_MI, Q_G_yl, Q_Y_yl, Q_CB (Yu Liu's corrected Q_G / Q_Y, as the published tables).

"ba" and "ba-norefine" come from one run of the pipeline (the unrefined decision is the initial
score map binarised, with the same small-region removal): the paper's last two columns.
``cnn`` runs when its shipped weights exist (else ``cnn-slight``'s, else it is left out).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import mfif  # noqa: E402
from mfif.decision import blend, one_hot, remove_small_regions  # noqa: E402
from mfif.io import read_image, read_stack  # noqa: E402
from mfif.metrics import METRICS  # noqa: E402

REAL_METRICS = ("Q_MI", "Q_G_yl", "Q_Y_yl", "Q_CB")
GT_METRICS = ("PSNR_GT", "SSIM_GT")
BAND = 8


def _cnn_method() -> str | None:
    from mfif.methods import METHODS

    for name, file in (("cnn", "liu_cnn_original.safetensors"), ("cnn-slight", "liu_cnn_slight.safetensors")):
        if name in METHODS and (ROOT / "mfif" / "weights" / file).is_file():
            return name
    return None


def _pairs(folder: Path):
    out = []
    for a in sorted(folder.glob("*_A.*")):
        stem = a.name[: a.name.rindex("_A.")]
        b = next(iter(sorted(folder.glob(f"{stem}_B.*"))), None)
        gt = next(iter(sorted(folder.glob(f"{stem}_GT.*"))), None)
        if b is not None:
            out.append((stem, a, b, gt))
    return out


def real_pairs(mf_real: Path):
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


def band_mask(focus: np.ndarray, width: int = BAND) -> np.ndarray:
    fg = (focus >= 0.5).astype(np.uint8)
    d_in = cv2.distanceTransform(fg, cv2.DIST_L2, 5)
    d_out = cv2.distanceTransform(1 - fg, cv2.DIST_L2, 5)
    return np.maximum(d_in, d_out) <= width


def outputs(stack: np.ndarray, cnn: str | None) -> tuple[dict, dict, dict]:
    """Fused images, decisions (1 = A) and seconds per method."""
    fused, decision, secs = {}, {}, {}
    t = time.perf_counter()
    r = mfif.fuse(stack, method="ba")
    secs["ba"] = time.perf_counter() - t
    fused["ba"], decision["ba"] = r.fused, r.decision == 0
    area = 0.01
    d0 = remove_small_regions(r.maps["initial"] > 0.5, area)
    fused["ba-norefine"] = np.clip(blend(stack, one_hot((~d0).astype(np.int64), 2)), 0, 1)
    decision["ba-norefine"] = d0
    for m in ["gff"] + ([cnn] if cnn else []):
        t = time.perf_counter()
        res = mfif.fuse(stack, method=m)
        secs[m] = time.perf_counter() - t
        fused[m] = res.fused
        if res.decision is not None:
            decision[m] = res.decision == 0
    return fused, decision, secs


def _score(names, sources, fused, gt=None) -> dict:
    out = {}
    for n in names:
        try:
            out[n] = float(METRICS[n].function(list(sources), np.clip(fused, 0, 1), ground_truth=gt))
        except Exception as exc:  # one failing metric must not stop the run
            out[n] = float("nan")
            print(f"metric {n} failed: {exc}", file=sys.stderr)
    return out


def _psnr(x, y) -> float:
    mse = float(np.mean((np.asarray(x, np.float64) - np.asarray(y, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def _done(path: Path) -> set[str]:
    if not path.is_file():
        return set()
    return {json.loads(line)["item"] for line in path.read_text().splitlines() if line.strip()}


def run(items, out: Path, part: str, cnn, deadline: float, limit: int, devset: Path | None) -> None:
    done = _done(out)
    for name, a_path, b_path, gt_path in (items[:limit] if limit else items):
        if name in done:
            continue
        if time.time() > deadline:
            print(f"time budget reached before {name}")
            return
        stack = read_stack([a_path, b_path]).images
        fused, decision, secs = outputs(stack, cnn)
        row = {"item": name, "seconds": secs, "methods": {}}
        if part == "synth":
            gt = read_image(gt_path)
            focus = read_image(a_path.parent / "focus" / a_path.name)[0]
            band = band_mask(focus)
            truth = focus >= 0.5
            for m, f in fused.items():
                vals = _score(GT_METRICS, stack, f, gt)
                vals["PSNR_band"] = _psnr(np.clip(f, 0, 1)[:, band], gt[:, band])
                if m in decision:
                    vals["decision_acc_band"] = float((decision[m] == truth)[band].mean())
                    vals["decision_acc"] = float((decision[m] == truth).mean())
                row["methods"][m] = vals
        else:
            for m, f in fused.items():
                row["methods"][m] = _score(REAL_METRICS, stack, f)
        with open(out, "a") as fh:
            fh.write(json.dumps(row) + "\n")
        print(f"{part} {name}: " + ", ".join(f"{m} {next(iter(v.values())):.4f}" for m, v in row["methods"].items()))


def summarize(out_dir: Path) -> str:
    lines = []
    for part in ("synth", "real"):
        path = out_dir / f"{part}.jsonl"
        if not path.is_file():
            continue
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        methods = list(rows[0]["methods"])
        keys = list(rows[0]["methods"][methods[0]])
        lines.append(f"\n### {part} ({len(rows)} pairs)\n")
        lines.append("| metric | " + " | ".join(methods) + " |")
        lines.append("|---|" + "---|" * len(methods))
        for k in keys:
            vals = []
            for m in methods:
                v = [r["methods"][m].get(k, np.nan) for r in rows]
                v = [x for x in v if np.isfinite(x)]
                vals.append(f"{np.mean(v):.4f}" if v else "-")
            lines.append(f"| {k} | " + " | ".join(vals) + " |")
        secs = {m: np.median([r["seconds"][m] for r in rows if m in r["seconds"]]) for m in rows[0]["seconds"]}
        lines.append("| median s/pair | " + " | ".join(f"{secs[m]:.2f}" if m in secs else "(with ba)" for m in methods) + " |")
    text = "\n".join(lines) + "\n"
    (out_dir / "summary.md").write_text(text)
    return text


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devset", default="runs/devset")
    ap.add_argument("--mf-real", default=str(ROOT.parent / "shared" / "data" / "mf-real"))
    ap.add_argument("--out", default="benchmarks/results/ba_dev")
    ap.add_argument("--parts", default="synth,real")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--max-minutes", type=float, default=0.0)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    deadline = time.time() + (args.max_minutes * 60 if args.max_minutes else 1e9)
    cnn = _cnn_method()
    print(f"cnn baseline: {cnn or 'none (no shipped Liu CNN weights)'}")
    for part in args.parts.split(","):
        if part == "synth":
            items = _pairs(Path(args.devset) / "pairs")
            if not items:
                print(f"no dev-set pairs under {args.devset}/pairs (run 'mfif synth --devset' first)")
                continue
        elif part == "real":
            items = real_pairs(Path(args.mf_real))
        else:
            raise SystemExit(f"unknown part {part!r}")
        run(items, out / f"{part}.jsonl", part, cnn, deadline, args.limit, Path(args.devset))
    print(summarize(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
