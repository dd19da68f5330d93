"""A picture grid of IFCNN results: per row one input set (two real multi-focus pairs, an
IR-visible pair, a medical pair, a multi-exposure stack), columns: the first two inputs, our
shipped weights, the authors' weights and ``gff`` (multi-focus rows only).

Usage::

    python benchmarks/ifcnn_grid.py -o ifcnn_grid.png
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mfif import fuse  # noqa: E402
from mfif.io import read_stack, write_image  # noqa: E402


def _rows(shared: Path):
    d = shared / "data"
    me = sorted((d / "other" / "multi-exposure" / "door").glob("*.jpg"))
    return [
        ("colour: flower", [d / "mf-real" / "mfifb" / "flower_A.jpg", d / "mf-real" / "mfifb" / "flower_B.jpg"], "multifocus", "max"),
        ("grey: clock", [d / "mf-real" / "liu-grayscale" / "g_01_A.png", d / "mf-real" / "liu-grayscale" / "g_01_B.png"], "multifocus", "max"),
        ("IR-visible: Kayak", [d / "other" / "ir-vis" / "Kayak_Vis.png", d / "other" / "ir-vis" / "Kayak_IR.png"], "infrared", "max"),
        ("medical: c02", [d / "other" / "medical" / "c02_1.png", d / "other" / "medical" / "c02_2.png"], "medical", "max"),
        ("exposure: door", me, "exposure", "mean"),
    ]


def _tile(img: np.ndarray, h: int, label: str) -> np.ndarray:
    arr = np.asarray(img, np.float32)
    arr = np.repeat(arr, 3, 0) if arr.shape[0] == 1 else arr
    arr = np.moveaxis(np.clip(arr, 0, 1), 0, -1)
    w = max(1, round(arr.shape[1] * h / arr.shape[0]))
    out = cv2.resize(arr, (w, h), interpolation=cv2.INTER_AREA)
    out = np.ascontiguousarray(np.round(out * 255).astype(np.uint8))  # OpenCV 5 draws text on 8-bit only
    cv2.putText(out, label, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(out, label, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1, cv2.LINE_AA)
    return out.astype(np.float32) / 255


def main(argv=None) -> int:
    shared = REPO.parent / "shared"
    p = argparse.ArgumentParser(description="IFCNN picture grid")
    p.add_argument("-o", "--output", default="ifcnn_grid.png")
    p.add_argument("--ours", default=None, help="folder with ifcnn-<rule>.pt (default: shipped weights)")
    p.add_argument("--height", type=int, default=200)
    args = p.parse_args(argv)
    authors = shared / "reference" / "ifcnn" / "weights"
    rows = []
    for title, files, mode, rule in _rows(shared):
        stack = read_stack(files)
        tiles = [_tile(stack.images[0], args.height, f"{title} (1)"), _tile(stack.images[1], args.height, "(2)")]
        ours = {"weights": str(Path(args.ours) / f"ifcnn-{rule}.pt")} if args.ours else {}
        tiles.append(_tile(fuse(stack, method=f"ifcnn-{rule}", modality=mode, **ours).fused, args.height, f"ours {rule}"))
        a = authors / f"IFCNN-{rule.upper()}.pth"
        if a.is_file():
            tiles.append(_tile(fuse(stack, method=f"ifcnn-{rule}", modality=mode, weights=str(a)).fused, args.height,
                               f"authors {rule}"))
        if mode == "multifocus":
            tiles.append(_tile(fuse(stack, method="gff").fused, args.height, "gff"))
        rows.append(np.concatenate(tiles, axis=1))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=1.0) for r in rows]
    grid = np.concatenate(rows, axis=0)
    write_image(args.output, np.moveaxis(grid, -1, 0), bit_depth=8)
    print(args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
