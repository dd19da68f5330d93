"""Crop sheet of the real pcb stack (../shared/data/mf-stacks/pcb, 7 frames, 2048x1536) at 100 %:
the default method, ``sml``, ``gff`` and ``laplacian``, each decision-map method before (the
two-frame rules: ``stack_rule="pair"``) and after (the N-frame rule of :mod:`mfif.stack_rule`).

    python benchmarks/pcb_stack_rule.py [--stack DIR] [--out benchmarks/results/stacking]

Frames are aligned once (``mfif fuse``'s default for stacks) and every method fuses the same
prepared frames. Writes ``OUT/pcb_stack_rule_crops.jpg`` (rows: fine silkscreen text, dust and
fibres on the capacitor top, the tall header post against the barcode, gold pin tips; 256 x 256
reference pixels each, shown 1:1) and ``OUT/pcb_stack_rule.txt`` (seconds per fusion).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mfif.io import expand_inputs  # noqa: E402
from mfif.methods import DEFAULT_METHOD  # noqa: E402
from mfif.stacking import fuse_frames, prepare_frames  # noqa: E402

# (x, y, what) of 256x256 crops in the aligned (cropped) reference frame
CROPS = ((790, 800, "silkscreen text"), (110, 110, "dust, fibres on the capacitor top"),
         (1170, 260, "tall header post / barcode"), (1380, 760, "gold pin tips"))
CROP = 256


def runs() -> list[tuple[str, str, dict]]:
    out = []
    for method in dict.fromkeys([DEFAULT_METHOD, "sml", "gff"]):
        out.append((f"{method} before", method, {"stack_rule": "pair"}))
        out.append((f"{method} after", method, {}))
    out.append(("laplacian", "laplacian", {}))
    return out


def label(tile: np.ndarray, text: str) -> np.ndarray:
    tile = tile.copy()
    cv2.rectangle(tile, (0, 0), (tile.shape[1], 18), (0, 0, 0), -1)
    cv2.putText(tile, text, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1, cv2.LINE_AA)
    return tile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default=str(ROOT.parent / "shared" / "data" / "mf-stacks" / "pcb"))
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "stacking"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    paths = expand_inputs([args.stack])
    frames = prepare_frames(paths, align=True)
    lines = [f"pcb stack: {len(paths)} frames, aligned to {frames.shape[3]}x{frames.shape[2]}"]
    results = {}
    for name, method, options in runs():
        t0 = time.perf_counter()
        res = fuse_frames(frames, method, **options)
        lines.append(f"{name:20s} {time.perf_counter() - t0:6.1f} s")
        print(lines[-1], flush=True)
        results[name] = np.round(np.clip(np.moveaxis(res.fused, 0, -1), 0, 1) * 255).astype(np.uint8)
    rows = []
    for x, y, what in CROPS:
        tiles = [label(img[y:y + CROP, x:x + CROP], f"{name}") for name, img in results.items()]
        row = np.concatenate(tiles, axis=1)
        head = np.zeros((20, row.shape[1], 3), np.uint8)
        cv2.putText(head, f"{what} (x={x}, y={y}, 100 %)", (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (255, 230, 120), 1, cv2.LINE_AA)
        rows.append(np.concatenate([head, row], axis=0))
    sheet = np.concatenate(rows, axis=0)
    cv2.imwrite(str(out / "pcb_stack_rule_crops.jpg"), sheet[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 93])
    (out / "pcb_stack_rule.txt").write_text("\n".join(lines) + "\n")
    print(f"wrote {out / 'pcb_stack_rule_crops.jpg'}")


if __name__ == "__main__":
    main()
