"""Whole-process time of ``mfif fuse A B -o F -m METHOD`` for one real 512x512 pair, methods
interleaved, median of repeats, next to ``python -c "import numpy, cv2"`` (the floor).

    python benchmarks/focusnet_cli_time.py [--methods focusnet,sml] [--repeats 7]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAIR = ROOT.parent / "shared" / "data" / "mf-real" / "mfifb"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="focusnet,sml")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--a", default=str(PAIR / "aymaz_03_A.png"))
    parser.add_argument("--b", default=str(PAIR / "aymaz_03_B.png"))
    args = parser.parse_args()
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    commands = {"import numpy, cv2": [sys.executable, "-c", "import numpy, cv2"]}
    with tempfile.TemporaryDirectory() as tmp:
        for m in args.methods.split(","):
            commands[m] = [sys.executable, "-m", "mfif.cli", "fuse", args.a, args.b, "-o", f"{tmp}/{m}_{{}}.png", "-m", m,
                           "--quiet"]
        times = {k: [] for k in commands}
        for r in range(args.repeats):
            for k, cmd in commands.items():
                cmd = [c.replace("{}", str(r)) for c in cmd]  # a new output file each time
                t = time.perf_counter()
                subprocess.run(cmd, check=True, env=env, cwd=ROOT, capture_output=True)
                times[k].append(time.perf_counter() - t)
    base = statistics.median(times[args.methods.split(",")[-1]])
    print(f"{'command':<20} {'median s':>9} {'min s':>7}  ratio to {args.methods.split(',')[-1]}")
    for k, v in times.items():
        print(f"{k:<20} {statistics.median(v):>9.3f} {min(v):>7.3f}  {statistics.median(v) / base:.2f}")


if __name__ == "__main__":
    main()
