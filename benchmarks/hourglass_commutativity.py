"""Commutativity of HF-Seg / HF-Reg weights on the real pairs, without ``symmetrize`` (issue 15).

    python benchmarks/hourglass_commutativity.py --weights shipped=seg:mfif/weights/hf_seg.safetensors \\
        --weights new=seg:training/checkpoints/hf-seg-thinlens/hf_seg.safetensors \\
        [--data ../shared/data/mf-real] [--limit N] [--threads 1] [--jsonl OUT.jsonl] [--md OUT.md]

For every pair ``<name>_A.* / <name>_B.*`` under ``--data`` (recursively; the 109 real pairs of
../shared/data/mf-real: liu-grayscale 10, mfifb 85, sesf-extra 14) and every ``LABEL=VARIANT:FILE``:
f(A, B) and f(B, A) as the method computes them (``hf_seg_fusion`` / ``hf_reg_fusion``, frames read
with :func:`mfif.io.read_stack`), and their mean absolute difference in grey levels (x 255, over
every pixel and channel). Rows are appended to ``--jsonl`` as they are computed; a rerun skips the
(label, pair) rows already there. Prints (and writes to ``--md``) mean / median / max per label.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mfif.io import read_stack  # noqa: E402


def real_pairs(root: Path) -> list[tuple[str, Path, Path]]:
    """(dataset/name, A, B) for every ``<name>_A.<ext>`` with a ``<name>_B.<ext>`` beside it, sorted."""
    out = []
    for a in sorted(root.rglob("*_A.*")):
        b = next(iter(sorted(a.parent.glob(a.name[:-len("_A" + a.suffix)] + "_B.*"))), None)
        if b is not None:
            out.append((f"{a.parent.name}/{a.name[:-len('_A' + a.suffix)]}", a, b))
    return out


def both_orders(variant: str, weights: str, stack: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from mfif.models.hourglass.pipeline import HFRegOptions, HFSegOptions, hf_reg_fusion, hf_seg_fusion

    if variant == "seg":
        run = lambda s: hf_seg_fusion(s, HFSegOptions(weights=weights, device="cpu")).fused  # noqa: E731
    else:
        run = lambda s: hf_reg_fusion(s, HFRegOptions(weights=weights, device="cpu")).fused  # noqa: E731
    return run(stack), run(stack[::-1].copy())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", action="append", required=True, metavar="LABEL=VARIANT:FILE")
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "mf-real"))
    p.add_argument("--limit", type=int, default=0, help="first N pairs (0 = all)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--jsonl", default=str(ROOT / "scratch" / "hourglass_commutativity.jsonl"))
    p.add_argument("--md")
    args = p.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    pairs = real_pairs(Path(args.data))
    if args.limit:
        pairs = pairs[:args.limit]
    if not pairs:
        raise SystemExit(f"{args.data}: no <name>_A / <name>_B pairs")
    jsonl = Path(args.jsonl)
    jsonl.parent.mkdir(parents=True, exist_ok=True)
    done = {}
    if jsonl.is_file():
        for line in jsonl.read_text().splitlines():
            r = json.loads(line)
            done[(r["label"], r["item"])] = r
    specs = []
    for spec in args.weights:
        label, _, rest = spec.partition("=")
        variant, _, path = rest.partition(":")
        if variant not in ("seg", "reg") or not path:
            raise SystemExit(f"--weights expects LABEL=seg|reg:FILE, got {spec!r}")
        specs.append((label, variant, path))
    for label, variant, path in specs:
        for name, a, b in pairs:
            if (label, name) in done:
                continue
            stack = read_stack([a, b]).images
            ab, ba = both_orders(variant, path, stack)
            row = {"label": label, "item": name, "weights": path,
                   "mean_abs_grey": float(np.mean(np.abs(ab.astype(np.float64) - ba)) * 255.0)}
            done[(label, name)] = row
            with jsonl.open("a") as f:
                f.write(json.dumps(row) + "\n")
    lines = ["| weights | pairs | mean abs f(A,B) - f(B,A), grey levels | median | max |", "|---|---|---|---|---|"]
    for label, variant, path in specs:
        v = np.array([done[(label, n)]["mean_abs_grey"] for n, _, _ in pairs])
        lines.append(f"| {label} (`{path}`) | {len(v)} | {v.mean():.3f} | {np.median(v):.3f} | {v.max():.3f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.md:
        Path(args.md).write_text(text)


if __name__ == "__main__":
    main()
