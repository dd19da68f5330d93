"""Validation of the BA nets and the choice of the boundary window w and threshold tau (issue 7).

    flock /tmp/mfif-heavy.lock python benchmarks/ba_tune.py --out benchmarks/results/ba_tune.json \
        [--initial mfif/weights/ba_initial.safetensors] [--boundary mfif/weights/ba_boundary.safetensors] [--scenes 36]

1. Patch accuracy of each net on the held-apart validation patches of :mod:`mfif.models.ba.trainer`
   (alpha-matting GT24..GT27 over BSDS500 ``val``, and layered scenes of BSDS500 ``val``; seed 0,
   both orders): overall (random positions) and near-boundary (>= 10 % focused and defocused).
2. Whole held-apart scenes (a different seed): the initial score map S0 (both input orders
   averaged, the method's default) and the boundary net's
   map S1 everywhere; for every (w, tau) of the grid, refined = S1 where |box_w(S0) - 0.5| < tau
   else S0; pixel accuracy of refined > 0.5 against the true focus map (alpha >= 0.5), over all
   pixels, in the band within 8 px of the true boundary, and after small-region removal (the
   final decision map). The choice maximises the final accuracy in the band; settings within
   0.001 of the best are ties, broken by the smallest share of pixels sent to the boundary net.
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

from mfif.decision import remove_small_regions  # noqa: E402
from mfif.models.ba.pipeline import boundary_mask, load_network, pixel_scores  # noqa: E402
from mfif.models.ba.trainer import (SOURCES, evaluate, has_boundary, make_scene, photo_sources,  # noqa: E402
                           validation_set)

WINDOWS = (7, 15, 31, 47, 63)
TAUS = (0.1, 0.2, 0.3, 0.4, 0.45)
BAND = 8


def band_mask(focus: np.ndarray, width: int = BAND) -> np.ndarray:
    """Pixels within ``width`` px of the true focus boundary (alpha = 0.5 contour)."""
    fg = (focus >= 0.5).astype(np.uint8)
    d_in = cv2.distanceTransform(fg, cv2.DIST_L2, 5)
    d_out = cv2.distanceTransform(1 - fg, cv2.DIST_L2, 5)
    return np.maximum(d_in, d_out) <= width


def choose(grid: dict, tolerance: float = 0.001) -> str:
    """The (w, tau) with the best final accuracy in the band; settings within ``tolerance`` of
    it count as ties, broken by the smallest share of pixels sent to the boundary net (cost)."""
    cands = {k: v for k, v in grid.items() if k.startswith("w=")}
    top = max(v["final_band"] for v in cands.values())
    ties = [k for k, v in cands.items() if v["final_band"] >= top - tolerance]
    return min(ties, key=lambda k: (cands[k]["near"], -cands[k]["final_band"]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "train"))
    ap.add_argument("--initial", default=None)
    ap.add_argument("--boundary", default=None)
    ap.add_argument("--scenes", type=int, default=36)
    ap.add_argument("--val-scenes", type=int, default=48)
    ap.add_argument("--val-patches", type=int, default=20)
    ap.add_argument("--out", default="benchmarks/results/ba_tune.json")
    args = ap.parse_args()
    t0 = time.time()
    init_net = load_network("initial", args.initial, "cpu")
    bnd_net = load_network("boundary", args.boundary, "cpu")
    _, val_src = photo_sources(args.data)
    report = {"initial": args.initial or "shipped", "boundary": args.boundary or "shipped"}

    # 1. patch accuracy, the same patches for both nets
    val = validation_set(val_src, args.val_scenes, args.val_patches, 0)
    report["patches"] = {"initial": evaluate(init_net, val), "boundary": evaluate(bnd_net, val)}
    for k, v in report["patches"].items():
        print(f"{k:8s} patch accuracy: overall {v['random_accuracy']:.4f} ({v['random_examples']}), "
              f"near-boundary {v['boundary_accuracy']:.4f} ({v['boundary_examples']}), "
              f"near-boundary among random {v['random_near_boundary_accuracy']:.4f}")

    # 2. whole scenes
    rng = np.random.default_rng([12345, 2])
    scenes = []
    kinds = list(SOURCES)
    while len(scenes) < args.scenes:
        sc = make_scene(val_src, kinds[len(scenes) % len(kinds)], rng)
        if has_boundary(sc):
            scenes.append(sc)
    per = []
    for sc in scenes:
        a, b = sc.frames
        s0 = pixel_scores(init_net, a, b, symmetric=True)  # the method's default scoring
        s1 = pixel_scores(bnd_net, a, b, symmetric=True)
        truth = sc.focus >= 0.5
        per.append((s0, s1, truth, band_mask(sc.focus), sc.info.get("recipe", "?")))

    def score(w, tau):
        acc = dict(all=[], band=[], final=[], final_band=[], near=[])
        for s0, s1, truth, band, _ in per:
            if w is None:
                refined, near = s0, np.zeros_like(truth)
            elif w == "everywhere":
                refined, near = s1, np.ones_like(truth)
            else:
                near = boundary_mask(s0, w, tau)
                refined = np.where(near, s1, s0)
            d = refined > 0.5
            final = remove_small_regions(d, 0.01)
            acc["all"].append((d == truth).mean())
            acc["band"].append((d == truth)[band].mean())
            acc["final"].append((final == truth).mean())
            acc["final_band"].append((final == truth)[band].mean())
            acc["near"].append(near.mean())
        return {k: float(np.mean(v)) for k, v in acc.items()}

    grid = {"no refinement": score(None, None), "boundary net everywhere": score("everywhere", None)}
    for w in WINDOWS:
        for tau in TAUS:
            grid[f"w={w} tau={tau}"] = score(w, tau)
    best = choose(grid)
    report["scenes"] = {"count": len(scenes), "band_px": BAND, "grid": grid, "choice": best}
    print(f"{'setting':26s} {'acc':>7s} {'band':>7s} {'final':>7s} {'fin.band':>8s} {'near%':>6s}")
    for k, v in grid.items():
        print(f"{k:26s} {v['all']:7.4f} {v['band']:7.4f} {v['final']:7.4f} {v['final_band']:8.4f} {100 * v['near']:6.1f}"
              + ("  <- choice" if k == best else ""))
    report["seconds"] = time.time() - t0
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out} ({report['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
