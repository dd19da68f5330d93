"""The real 7-frame pcb stack (../shared/data/mf-stacks/pcb, 2048x1536, unregistered) fused with
and without alignment by every classical method (and the learned ones with ``--learned``, those
whose weights load), plus a crop sheet that puts the two side by side.

    python benchmarks/pcb_stack.py [--out scratch/pcb] [--methods gff,sml] [--learned] [--scale 1.0]

Writes into OUT: ``<method>_noalign.jpg``, ``<method>_align.jpg``, ``<method>_align_depth.png``
(+ ``_raw.png``), ``transforms.json``, ``times.txt`` and ``crop_sheet.png``: for each of four
regions (256x256 reference pixels, shown 1:1) one row per method, columns without | with alignment.
Misregistration shows as doubled edges and halos in the left column.
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mfif.io import expand_inputs, write_image  # noqa: E402
from mfif.methods import METHODS  # noqa: E402
from mfif.stacking import fuse_stack, write_depth_map  # noqa: E402

# (x, y) of 256x256 crops in reference-frame pixels of the 2048x1536 frames: silkscreen text,
# gold pin tips, the header post against the barcode, SMD resistors
CROPS = ((780, 800), (1390, 760), (1230, 170), (520, 640))
CROP = 256


def learned_that_load() -> list[str]:
    names = []
    tiny = np.random.default_rng(0).random((2, 3, 64, 64)).astype(np.float32)
    for name, spec in METHODS.items():
        if spec.kind != "learned":
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                spec.load()[0](tiny, spec.make_options())
            names.append(name)
        except Exception as exc:  # missing weights, missing module ...
            print(f"  {name}: skipped ({exc.__class__.__name__}: {str(exc)[:90]})")
    return names


def label(img: np.ndarray, text: str) -> np.ndarray:
    import cv2

    out = np.ascontiguousarray(img.copy())
    cv2.rectangle(out, (0, 0), (min(out.shape[1], 9 * len(text) + 8), 20), (0, 0, 0), -1)
    cv2.putText(out, text, (4, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def crop_sheet(results: dict, out: Path, scale: float) -> Path:
    """results[method] = {"noalign": (image HWC uint8, (0, 0)), "align": (image, (crop_x, crop_y))}."""
    import cv2

    size = max(32, int(round(CROP * scale)))
    blocks = []
    for (cx, cy) in CROPS:
        cx, cy = int(round(cx * scale)), int(round(cy * scale))
        rows = []
        for method, r in results.items():
            cells = []
            for key in ("noalign", "align"):
                img, (ox, oy) = r[key]
                x, y = cx - ox, cy - oy
                cell = np.zeros((size, size, 3), np.uint8)
                patch = img[max(y, 0):y + size, max(x, 0):x + size]
                cell[:patch.shape[0], :patch.shape[1]] = patch
                cells.append(label(cell, f"{method} {'aligned' if key == 'align' else 'no align'}"))
            rows.append(np.concatenate([cells[0], np.full((size, 4, 3), 255, np.uint8), cells[1]], axis=1))
        block = np.concatenate([np.concatenate([r, np.full((4, r.shape[1], 3), 255, np.uint8)]) for r in rows])
        blocks.append(block)
        blocks.append(np.full((block.shape[0], 16, 3), 255, np.uint8))
    sheet = np.concatenate(blocks[:-1], axis=1)
    path = out / "crop_sheet.png"
    cv2.imwrite(str(path), sheet[..., ::-1])
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default=str(ROOT.parent / "shared" / "data" / "mf-stacks" / "pcb"))
    parser.add_argument("--out", default=str(ROOT / "scratch" / "pcb"))
    parser.add_argument("--methods", help="comma-separated (default: every classical method)")
    parser.add_argument("--learned", action="store_true", help="also the learned methods whose weights load")
    parser.add_argument("--scale", type=float, default=1.0, help="downscale the frames first (quick looks)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    paths = expand_inputs([args.stack])
    if args.scale != 1.0:
        import cv2

        small = out / "frames"
        small.mkdir(exist_ok=True)
        for p in paths:
            im = cv2.imread(str(p))
            cv2.imwrite(str(small / (p.stem + ".png")),
                        cv2.resize(im, None, fx=args.scale, fy=args.scale, interpolation=cv2.INTER_AREA))
        paths = expand_inputs([small])
    methods = args.methods.split(",") if args.methods else [n for n, s in METHODS.items() if s.kind == "classical"]
    if args.learned:
        methods += [m for m in learned_that_load() if m not in methods]
    print(f"{len(paths)} frames from {args.stack}; methods: {', '.join(methods)}")
    results: dict = {}
    lines = [f"{'method':<12} {'no align s':>10} {'align s':>8}  crop"]
    for method in methods:
        r = {}
        times = {}
        for key, align in (("noalign", False), ("align", True)):
            t0 = time.perf_counter()
            sr = fuse_stack(paths, method, align=align)
            times[key] = time.perf_counter() - t0
            img = np.round(np.clip(np.moveaxis(sr.result.fused, 0, -1), 0, 1) * 255).astype(np.uint8)
            write_image(out / f"{method}_{key}.jpg", sr.result.fused, exif=sr.frames.reference_exif)
            offset = (0, 0)
            if sr.alignment is not None:
                offset = sr.alignment.crop[:2]
                sr.alignment.save(out / "transforms.json", sr.frames.paths)
                if sr.result.decision is not None and method != "average":
                    write_depth_map(out / f"{method}_align_depth.png", sr.result.decision, len(paths))
            r[key] = (img, offset)
        results[method] = r
        crop = sr.alignment.crop if sr.alignment is not None else None
        lines.append(f"{method:<12} {times['noalign']:>10.1f} {times['align']:>8.1f}  {crop}")
        print(lines[-1], flush=True)
    (out / "times.txt").write_text("\n".join(lines) + "\n")
    print(f"crop sheet: {crop_sheet(results, out, args.scale)}")


if __name__ == "__main__":
    main()
