"""Pictures of the thin-lens data (mfif/synth/README.md shows them).

1. ``thinlens_optics.png``: an alpha-matted foreground at 0.8 m over a photo at 6 m, through a
   50 mm f/2 lens focused near, then far, with 3x zooms of the occlusion boundary (a blurred
   foreground spilling over the sharp background; a sharp foreground edge on the blurred
   background), the per-pixel blur radius, and focus breathing (near-focused frame minus the
   far-focused frame's geometry).
2. ``camera_effects.png``: one crop with each camera effect at the recipe's largest setting
   (sensor noise, JPEG 75, +-0.15 EV, white balance, a 0.5 px shift) and |effect - clean| x 8.
3. ``thinlens_contact_sheet.png``: 8 samples of ``mfif synth --recipe thinlens`` (the
   command's own contact sheet).

Needs ../shared (the training photos). ``python benchmarks/synth_sheets.py --out benchmarks/results/synth``
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mfif.io import read_image  # noqa: E402
from mfif.synth.augment import exposure_white_balance, jpeg_roundtrip, sensor_noise, subpixel_shift  # noqa: E402
from mfif.synth.thinlens import LayeredScene, ThinLens, render_thin_lens  # noqa: E402

TRAIN = REPO.parent / "shared" / "data" / "train"
FONT = cv2.FONT_HERSHEY_SIMPLEX


def _u8(chw: np.ndarray) -> np.ndarray:
    img = np.moveaxis(np.clip(chw, 0, 1), 0, -1) if chw.ndim == 3 else np.repeat(np.clip(chw, 0, 1)[..., None], 3, 2)
    return np.round(img * 255).astype(np.uint8)


def _label(tile: np.ndarray, text: str) -> np.ndarray:
    out = np.concatenate([np.full((18, tile.shape[1], 3), 24, np.uint8), tile], axis=0)
    cv2.putText(out, text, (3, 13), FONT, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def _grid(rows: list[list[np.ndarray]]) -> np.ndarray:
    width = max(sum(t.shape[1] for t in r) + 4 * (len(r) - 1) for r in rows)
    out = []
    for r in rows:
        h = max(t.shape[0] for t in r)
        line = np.full((h, width, 3), 255, np.uint8)
        x = 0
        for t in r:
            line[:t.shape[0], x:x + t.shape[1]] = t
            x += t.shape[1] + 4
        out.append(line)
        out.append(np.full((4, width, 3), 255, np.uint8))
    return np.concatenate(out[:-1], axis=0)


def _zoom(img: np.ndarray, y: int, x: int, side: int, factor: int = 3) -> np.ndarray:
    crop = img[y:y + side, x:x + side]
    return cv2.resize(crop, (side * factor, side * factor), interpolation=cv2.INTER_NEAREST)


def optics_sheet(out: Path) -> Path:
    fg = read_image(TRAIN / "alphamatting" / "input" / "GT04.jpg")
    alpha = read_image(TRAIN / "alphamatting" / "alpha" / "GT04.png")[0]
    bg = read_image(TRAIN / "bsds500" / "images" / "train" / "100075.jpg")
    h, w = 240, 320
    fg = np.stack([cv2.resize(c, (w, h), interpolation=cv2.INTER_AREA) for c in fg])
    alpha = np.clip(cv2.resize(alpha, (w, h), interpolation=cv2.INTER_AREA), 0, 1)
    bg = np.stack([cv2.resize(c, (w, h), interpolation=cv2.INTER_AREA) for c in bg[:, :h * bg.shape[1] // h]])
    scene = LayeredScene(np.stack([fg, bg]), np.stack([alpha, 1 - alpha]), [0.8, 6.0])
    lens = ThinLens(focal_length=0.05, f_number=2.0, pixel_pitch=1.5e-4)
    near = render_thin_lens(scene, lens, 0.8)
    far = render_thin_lens(scene, lens, 6.0)
    breathing = render_thin_lens(scene, lens, 0.8, breathing_reference=6.0)
    # a solid edge (not hair): opaque pixels within 2 px of clear background, in the lower half
    solid = (alpha > 0.99).astype(np.uint8)
    near_bg = cv2.dilate((alpha < 0.01).astype(np.uint8), np.ones((5, 5), np.uint8))
    edge = (solid & near_bg).astype(bool)
    edge[: h // 2] = False
    ys, xs = np.nonzero(edge)
    k = len(ys) // 2
    zy, zx = int(np.clip(ys[k] - 32, 0, h - 64)), int(np.clip(xs[k] - 32, 0, w - 64))
    r_max = max(float(near.radius.max()), float(far.radius.max()))
    rows = [
        [_label(_u8(near.image), f"focus 0.8 m (fg r=0, bg r={near.layer_radii[1]:.1f} px)"),
         _label(_u8(far.image), f"focus 6 m (fg r={far.layer_radii[0]:.1f} px, bg r=0)"),
         _label(_u8(near.radius / r_max), "blur radius, focus 0.8 m (white = max)")],
        [_label(_zoom(_u8(near.image), zy, zx, 64), "x3: sharp fg edge on blurred bg"),
         _label(_zoom(_u8(far.image), zy, zx, 64), "x3: blurred fg spills over sharp bg"),
         _label(_u8(np.clip(np.abs(breathing.image - near.image).mean(0) * 2, 0, 1)),
                f"breathing: scale {breathing.scale:.4f}, |diff| x2")],
    ]
    path = out / "thinlens_optics.png"
    cv2.imwrite(str(path), _grid(rows)[..., ::-1])
    return path


def effects_sheet(out: Path) -> Path:
    img = read_image(TRAIN / "bsds500" / "images" / "train" / "100080.jpg")
    crop = np.ascontiguousarray(np.moveaxis(img[:, 100:228, 150:278], 0, -1))
    rng = np.random.default_rng(0)
    effects = [
        ("clean", crop),
        ("noise 0.02 (read+shot)", sensor_noise(crop, np.random.default_rng(1), 0.02)),
        ("JPEG q75", jpeg_roundtrip(crop, 75)),
        ("+0.15 EV", exposure_white_balance(crop, 2 ** 0.15)),
        ("-0.15 EV", exposure_white_balance(crop, 2 ** -0.15)),
        ("WB R x e^.03, B x e^-.03", exposure_white_balance(crop, 1.0, [np.exp(0.03), 1.0, np.exp(-0.03)])),
        ("shift (0.5, 0.5) px", subpixel_shift(crop, 0.5, 0.5)),
    ]
    del rng
    up = lambda a: cv2.resize(np.round(np.clip(a, 0, 1) * 255).astype(np.uint8), (256, 256),  # noqa: E731
                              interpolation=cv2.INTER_NEAREST)
    top = [_label(up(e), name) for name, e in effects]
    bottom = [_label(up(np.clip(np.abs(e - crop) * 8, 0, 1)), "|diff| x8") for _, e in effects]
    path = out / "camera_effects.png"
    sheet = _grid([top[:4], bottom[:4], top[4:], bottom[4:]])
    cv2.imwrite(str(path), sheet[..., ::-1])
    return path


def contact_sheet(out: Path) -> Path:
    from mfif.synth.cli import main

    with tempfile.TemporaryDirectory() as tmp:
        path = out / "thinlens_contact_sheet.png"
        main(["synth", "--source", str(TRAIN / "bsds500"), "--recipe", "thinlens", "-n", "8", "-o",
              str(Path(tmp) / "s"), "--sheet", str(path.resolve()), "--quiet"])
    return path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="thin-lens data pictures")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "synth"))
    args = p.parse_args(argv)
    if not TRAIN.is_dir():
        print(f"needs {TRAIN}", file=sys.stderr)
        return 1
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for fn in (optics_sheet, effects_sheet, contact_sheet):
        print(fn(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
