"""Pre-rendering throughput and streaming speed, as ratios in one run.

1. on-the-fly generation (``PairDataset.sample``) for the ``thinlens`` and ``layered`` recipes:
   samples/s on one process (the trainer's data cost today);
2. ``prerender`` of ``--count`` thin-lens pairs with 1 and 2 worker processes: pairs/s of the
   whole command (start-up included);
3. reading them back (``PrerenderedPairs`` through a ``DataLoader``, batch 8, float32
   conversion included): samples/s, and how many times faster than (1).

Needs ../shared (the training photos). Run on a quiet machine::

    flock /tmp/mfif-heavy.lock nice python benchmarks/prerender_speed.py --out benchmarks/results/prerender_speed.md
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from mfif.synth.datasets import PairDataset  # noqa: E402
from mfif.synth.prerender import PrerenderedPairs, prerender  # noqa: E402

TRAIN = REPO.parent / "shared" / "data" / "train"


def on_the_fly(recipe: str, n: int) -> float:
    ds = PairDataset(TRAIN, recipe, seed=1, length=n + 1)
    ds.sample(0)  # photo scan and first decode outside the timing
    t0 = time.perf_counter()
    for i in range(1, n + 1):
        ds.sample(i)
    return n / (time.perf_counter() - t0)


def read_back(folder: Path, epochs: int = 3) -> float:
    loader = torch.utils.data.DataLoader(PrerenderedPairs(folder), batch_size=8, shuffle=True,
                                         generator=torch.Generator().manual_seed(0))
    count = 0
    t0 = time.perf_counter()
    for _ in range(epochs):
        for batch in loader:
            count += batch["frames"].shape[0]
    return count / (time.perf_counter() - t0)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="pre-render throughput")
    p.add_argument("--count", type=int, default=600)
    p.add_argument("--live", type=int, default=40, help="samples timed on the fly")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    if not TRAIN.is_dir():
        print(f"needs {TRAIN}", file=sys.stderr)
        return 1
    rows = []
    live = {r: on_the_fly(r, args.live) for r in ("thinlens", "layered")}
    for r, v in live.items():
        rows.append((f"on the fly, {r} recipe, 1 process", v, 1.0 if r == "thinlens" else v / live["thinlens"]))
    tmp = Path(tempfile.mkdtemp(prefix="mfif-prerender-"))
    try:
        for workers in (1, 2):
            meta = prerender(TRAIN, "thinlens", args.count, tmp / f"w{workers}", workers=workers, progress=False)
            rows.append((f"prerender {args.count} thinlens pairs, {workers} worker(s), start-up included",
                         meta["pairs_per_s"], meta["pairs_per_s"] / live["thinlens"]))
        size_mb = sum(f.stat().st_size for f in (tmp / "w1").iterdir()) / 1e6
        v = read_back(tmp / "w1")
        rows.append(("read back: PrerenderedPairs + DataLoader (batch 8, float32)", v, v / live["thinlens"]))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    command = "python benchmarks/prerender_speed.py " + " ".join(sys.argv[1:] if argv is None else argv)
    lines = ["# Pre-rendered training pairs: throughput", "",
             f"`{command}` (under `flock /tmp/mfif-heavy.lock nice`), photos from `shared/data/train`, "
             f"224x224 thin-lens pairs, {size_mb:.0f} MB for {args.count} pairs on disk.", "",
             "| what | samples/s | x on-the-fly thinlens |", "|---|---|---|"]
    lines += [f"| {name} | {v:.1f} | {ratio:.2f} |" for name, v, ratio in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
