"""Write synthetic datasets to disk, with a contact sheet to look at, and the fixed dev set.

Dataset layout (``mfif synth``; :func:`generate`)::

    OUT/<recipe>_000000_A.png, _B.png, ...   frames (patch recipes: grey patches A and B)
    OUT/<recipe>_000000_GT.png               all-in-focus ground truth (frame recipes)
    OUT/focus/<recipe>_000000_A.png, ...     focus map of each frame (white = in focus)
    OUT/index.csv                            one row per sample: label, photo, parameters
    OUT/manifest.json                        recipe settings, seed, source, counts
    OUT/contact_sheet.png                    the first samples side by side

Dev evaluation set (``mfif synth --devset``; :func:`make_devset`), generated from the BSDS500
*test* split only (never used for training; the training scan skips ``test`` by default)::

    OUT/pairs/pair_000_A.png, pair_000_B.png, pair_000_GT.png   100 pairs
    OUT/pairs/focus/pair_000_A.png, ...                          their focus maps
    OUT/stacks/stack_00/stack_00_1.png, _2.png, _3.png, GT.png   20 three-frame stacks (near -> far)
    OUT/stacks/stack_00/focus/stack_00_1.png, ...
    OUT/index.csv, OUT/manifest.json, OUT/README.md, OUT/contact_sheet_pairs.png, contact_sheet_stacks.png
    OUT/sweeps/, OUT/stacks8/                                    focal sweeps, 8-frame stacks (mfif.synth.sweep)
    OUT/halo/halo_00_A.png, ..., OUT/halo/halo_stack_00/         the halo set (mfif.synth.halo)

Composition (seed :data:`DEVSET_SEED`): each photo is used once (a seeded permutation of the 200
test photos: the first 100 for pairs, the next 20 for stacks); whole photos, no crop, flip or
jitter, no noise. Pair ``i`` uses the layered recipe (disk PSF, occlusion-aware) when
``i % 5 in (0, 1, 2)``, IFCNN's when ``i % 5 == 3`` and Hourglass's when ``i % 5 == 4`` (60/20/20);
its frame order is random. Stacks use the layered recipe with three frames focused near, middle,
far, in that order. The same seed gives the same bytes.
"""
from __future__ import annotations

import csv
import io
import json
import os
import string
from dataclasses import asdict, replace
from pathlib import Path
from typing import Iterable, Sequence

import cv2
import numpy as np

from mfif.errors import InputError, OutputError
from mfif.io import encode_image, write_bytes_atomic
from mfif.synth import recipes as R
from mfif.synth.augment import Augment
from mfif.synth.sources import PhotoSource

DEVSET_SEED = 20240917
DEVSET_PAIRS = 100
DEVSET_STACKS = 20

_LETTERS = string.ascii_uppercase


# ----------------------------------------------------------------------------------------------
# files


def _write(path: Path, image: np.ndarray, bit_depth: int) -> None:
    try:
        write_bytes_atomic(path, encode_image(image, path.suffix, bit_depth))
    except OSError as exc:
        raise OutputError(f"{path}: cannot write ({exc.strerror or exc})") from None


def prepare_output(out: str | os.PathLike, *, force: bool = False) -> Path:
    """Create ``out`` (and parents); refuse a non-empty folder unless ``force``."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise OutputError(f"{out}: folder is not empty (use --force to write into it)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{out}: cannot create folder ({exc.strerror or exc})") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise OutputError(f"{out}: folder is not writable")
    return out


def frame_letters(n: int) -> list[str]:
    if n > len(_LETTERS):
        raise InputError(f"at most {len(_LETTERS)} frames can be written, got {n}")
    return list(_LETTERS[:n])


def write_sample(out: Path, name: str, sample: R.MultiFocusSample, *, bit_depth: int = 8,
                 suffixes: Sequence[str] | None = None, gt_name: str | None = None) -> list[Path]:
    """Write frames ``<name>_<suffix>.png``, ``<name>_GT.png`` and ``focus/<name>_<suffix>.png``."""
    suffixes = list(suffixes) if suffixes is not None else frame_letters(len(sample.frames))
    (out / "focus").mkdir(exist_ok=True)
    paths = []
    for s, frame, fmap in zip(suffixes, sample.frames, sample.focus):
        paths.append(out / f"{name}_{s}.png")
        _write(paths[-1], frame, bit_depth)
        _write(out / "focus" / f"{name}_{s}.png", fmap, bit_depth)
    paths.append(out / (gt_name or f"{name}_GT.png"))
    _write(paths[-1], sample.gt, bit_depth)
    return paths


def write_patch(out: Path, name: str, sample: R.PatchSample, *, bit_depth: int = 8) -> None:
    """Write a patch pair as ``<name>_A.png`` and ``<name>_B.png`` (grey)."""
    _write(out / f"{name}_A.png", sample.inputs[0], bit_depth)
    _write(out / f"{name}_B.png", sample.inputs[1], bit_depth)


def _json_safe(v):
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    if isinstance(v, dict):
        return {k: _json_safe(x) for k, x in v.items()}
    return v


def _write_text(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    _write_text(path, buf.getvalue())


def recipe_settings(recipe) -> dict:
    d = _json_safe(asdict(recipe))
    d["name"] = recipe.name
    return d


# ----------------------------------------------------------------------------------------------
# contact sheets

_FONT = cv2.FONT_HERSHEY_SIMPLEX


def _to_rgb_u8(img: np.ndarray) -> np.ndarray:
    a = np.asarray(img, dtype=np.float32)
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[2] not in (1, 3):
        a = np.moveaxis(a, 0, -1)
    if a.ndim == 2:
        a = a[..., None]
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    return np.round(np.clip(a, 0, 1) * 255).astype(np.uint8)


def _fit(img: np.ndarray, h: int, w: int) -> np.ndarray:
    """Scale to fit (h, w) keeping aspect, centred on a dark grey canvas."""
    ih, iw = img.shape[:2]
    s = min(h / ih, w / iw)
    nh, nw = max(1, int(round(ih * s))), max(1, int(round(iw * s)))
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_NEAREST
    small = cv2.resize(img, (nw, nh), interpolation=interp)
    canvas = np.full((h, w, 3), 40, np.uint8)
    y, x = (h - nh) // 2, (w - nw) // 2
    canvas[y:y + nh, x:x + nw] = small
    return canvas


def _text(img: np.ndarray, text: str, org: tuple[int, int], scale: float = 0.4, color=(255, 255, 255)) -> None:
    """Text on a dark box so it reads on any tile."""
    if not text:
        return
    (tw, th), base = cv2.getTextSize(text, _FONT, scale, 1)
    x, y = org
    img[max(0, y - th - 2):y + base, max(0, x - 2):x + tw + 2] = (0, 0, 0)
    cv2.putText(img, text, org, _FONT, scale, color, 1, cv2.LINE_AA)


def contact_sheet_frames(samples: Sequence[tuple[str, R.MultiFocusSample]], *, tile: int = 128,
                         title: str = "") -> np.ndarray:
    """Rows of [frames | GT | focus maps | |frame - GT| x4] as an (H, W, 3) uint8 RGB image."""
    if not samples:
        raise InputError("no samples for the contact sheet")
    n = max(len(s.frames) for _, s in samples)
    letters = frame_letters(n)
    h0, w0 = samples[0][1].gt.shape[-2:]
    th, tw = (tile, int(round(tile * w0 / h0))) if w0 >= h0 else (tile, tile)
    cols = letters + ["GT"] + [f"focus {c}" for c in letters] + [f"|{c}-GT| x4" for c in letters]
    head = 34
    sheet = np.full((head + th * len(samples), tw * len(cols), 3), 24, np.uint8)
    _text(sheet, title, (4, 13), 0.45, (255, 230, 120))
    for j, c in enumerate(cols):
        _text(sheet, c, (j * tw + 4, 29))
    for i, (name, s) in enumerate(samples):
        tiles = {n: s.gt}  # column -> image
        for k, (f, m) in enumerate(zip(s.frames, s.focus)):
            tiles[k] = f
            tiles[n + 1 + k] = m
            tiles[2 * n + 1 + k] = np.clip(np.abs(f - s.gt).max(axis=0) * 4, 0, 1)
        y = head + i * th
        for col, t in tiles.items():
            sheet[y:y + th, col * tw:(col + 1) * tw] = _fit(_to_rgb_u8(t), th, tw)
        _text(sheet, name, (4, y + th - 6), 0.35)
    return sheet


def contact_sheet_patches(samples: Sequence[tuple[str, R.PatchSample]], *, per_row: int = 8, cell: int = 64,
                          title: str = "") -> np.ndarray:
    """A grid of patch pairs [A | B]; the bar below is green when A is the focused one (label 1),
    orange when B is; a yellow frame marks BA's "near the boundary" flag; the red dot is the
    labelled centre pixel."""
    if not samples:
        raise InputError("no samples for the contact sheet")
    pad, bar, head = 6, 6, 34
    cw, ch = 2 * cell + 2, cell + bar
    rows = -(-len(samples) // per_row)
    sheet = np.full((head + rows * (ch + pad) + pad, per_row * (cw + pad) + pad, 3), 24, np.uint8)
    _text(sheet, title, (4, 13), 0.45, (255, 230, 120))
    _text(sheet, "each cell: A | B. bar: green = A focused (label 1), orange = B focused; yellow frame = near boundary",
          (4, 29), 0.35)
    for i, (name, s) in enumerate(samples):
        r, c = divmod(i, per_row)
        y, x = head + pad + r * (ch + pad), pad + c * (cw + pad)
        for k in range(2):
            t = _to_rgb_u8(s.inputs[k])
            t = cv2.resize(t, (cell, cell), interpolation=cv2.INTER_NEAREST)
            p = s.inputs.shape[-1]
            if s.info.get("recipe") == "ba":
                cy = cx = int((p // 2 + 0.5) * cell / p)
                cv2.circle(t, (cx, cy), 2, (255, 0, 0), -1)
            sheet[y:y + cell, x + k * (cell + 2):x + k * (cell + 2) + cell] = t
        sheet[y + cell:y + cell + bar, x:x + cw] = (60, 200, 60) if s.label == 1 else (240, 140, 30)
        if s.boundary:
            cv2.rectangle(sheet, (x - 2, y - 2), (x + cw + 1, y + ch + 1), (255, 230, 0), 1)
    return sheet


def save_sheet(path: Path, sheet: np.ndarray) -> Path:
    _write(Path(path), np.moveaxis(sheet.astype(np.float32) / 255.0, -1, 0), 8)
    return Path(path)


# ----------------------------------------------------------------------------------------------
# generate a dataset


def _progress(iterable, total: int, desc: str, enabled: bool):
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit="sample", dynamic_ncols=True)


def make_dataset(source, recipe, *, frames: int = 2, seed: int = 0, length: int | None = None):
    """The on-the-fly dataset for ``recipe`` (a name or a config)."""
    from mfif.synth.datasets import BAPatchDataset, LiuPatchDataset, PairDataset

    recipe = R.get_recipe(recipe) if isinstance(recipe, str) else recipe
    if recipe.kind == "patches" and frames != 2:
        raise InputError(f"recipe {recipe.name} makes patch pairs; --frames must be 2, got {frames}")
    if recipe.name == "liu":
        return LiuPatchDataset(source, recipe, seed=seed, length=length)
    if recipe.name == "ba":
        return BAPatchDataset(source, recipe, seed=seed, length=length)
    return PairDataset(source, recipe, frames=frames, seed=seed, length=length)


def generate(source, recipe, n: int, out: str | os.PathLike, *, frames: int = 2, seed: int = 0, bit_depth: int = 8,
             sheet: str | os.PathLike | None = "contact_sheet.png", sheet_count: int | None = None,
             force: bool = False, progress: bool = True, command: str | None = None) -> dict:
    """Generate ``n`` samples of ``recipe`` from ``source`` into ``out`` (layout: module docstring).

    Returns the manifest (also written to ``out/manifest.json``).
    """
    if n < 1:
        raise InputError(f"number of samples must be at least 1, got {n}")
    if bit_depth not in (8, 16):
        raise InputError(f"bit depth must be 8 or 16, got {bit_depth}")
    ds = make_dataset(source, recipe, frames=frames, seed=seed, length=n)
    recipe = ds.recipe
    out = prepare_output(out, force=force)
    rows, shown = [], []
    count = sheet_count if sheet_count is not None else (8 if recipe.kind == "images" else 64)
    # the sheet shows samples spread over the whole run (patch recipes draw ~100 from each photo)
    show_at = set(np.linspace(0, n - 1, min(count, n)).round().astype(int).tolist())
    for i in _progress(range(n), n, f"synth {recipe.name}", progress):
        name = f"{recipe.name}_{i:06d}"
        s = ds.sample(i)
        info = _json_safe(s.info)
        if recipe.kind == "patches":
            write_patch(out, name, s, bit_depth=bit_depth)
            rows.append([name, s.label, int(s.boundary), info.get("photo", ""), json.dumps(info, sort_keys=True)])
        else:
            write_sample(out, name, s, bit_depth=bit_depth)
            rows.append([name, len(s.frames), info.get("photo", ""), info.get("mask_source", ""),
                         json.dumps(info, sort_keys=True)])
        if i in show_at:
            shown.append((name, s))
    header = (["name", "label", "boundary", "photo", "info"] if recipe.kind == "patches"
              else ["name", "frames", "photo", "mask_source", "info"])
    _write_csv(out / "index.csv", header, rows)
    manifest = {"recipe": recipe_settings(recipe), "frames": frames if recipe.kind == "images" else 2,
                "samples": n, "seed": seed, "bit_depth": bit_depth, "source": str(ds.source.root),
                "photos": len(ds.source), "layout": "<name>_A.png, <name>_B.png, ..." +
                (", <name>_GT.png, focus/<name>_A.png, ..." if recipe.kind == "images" else "; labels in index.csv"),
                }
    if command:
        manifest["command"] = command
    _write_text(out / "manifest.json", json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    if sheet:
        sheet_path = Path(sheet) if Path(sheet).is_absolute() or Path(sheet).parent != Path(".") else out / sheet
        title = f"mfif synth --recipe {recipe.name} --seed {seed}"
        title += f" --frames {frames}" if recipe.kind == "images" else ""
        img = (contact_sheet_patches(shown, title=title) if recipe.kind == "patches"
               else contact_sheet_frames(shown, title=title))
        manifest["contact_sheet"] = str(save_sheet(sheet_path, img))
    return manifest


# ----------------------------------------------------------------------------------------------
# the dev evaluation set


def _devset_recipe(kind: str):
    none = Augment()
    if kind == "layered":
        return R.LayeredRecipe(size=None, augment=none)
    if kind == "ifcnn":
        return R.IfcnnRecipe(size=None, augment=none)
    if kind == "hourglass":
        return R.HourglassRecipe(size=None, augment=none)
    raise ValueError(kind)


def devset_pair_kind(i: int) -> str:
    return ("layered", "layered", "layered", "ifcnn", "hourglass")[i % 5]


def devset_pair(source: PhotoSource, i: int, seed: int = DEVSET_SEED) -> R.MultiFocusSample:
    """Dev-set pair ``i`` (0..99)."""
    perm = np.random.default_rng([seed, 0]).permutation(len(source))
    photo = int(perm[i % len(source)])
    kind = devset_pair_kind(i)
    rng = np.random.default_rng([seed, 1, i])
    maker = {"layered": R.make_layered, "ifcnn": R.make_ifcnn, "hourglass": R.make_hourglass}[kind]
    return maker(source, photo, rng, _devset_recipe(kind), frames=2)


def devset_stack(source: PhotoSource, j: int, seed: int = DEVSET_SEED, *,
                 pairs: int = DEVSET_PAIRS) -> R.MultiFocusSample:
    """Dev-set stack ``j`` (0..19): three frames focused near, middle, far."""
    perm = np.random.default_rng([seed, 0]).permutation(len(source))
    photo = int(perm[(pairs + j) % len(source)])
    rng = np.random.default_rng([seed, 2, j])
    return R.make_layered(source, photo, rng, replace(_devset_recipe("layered"), shuffle_frames=False), frames=3)


_DEVSET_README = """# mfif synthetic dev evaluation set

Made by `{command}` (seed {seed}) from the BSDS500 *test* split ({photos} photos; never used for
training). {pairs} pairs in `pairs/` (`<name>_A.png`, `<name>_B.png`, `<name>_GT.png`, focus maps
in `pairs/focus/`) and {stacks} three-frame stacks in `stacks/<scene>/` (`<scene>_1.png` near ..
`<scene>_3.png` far, `GT.png`, focus maps in `focus/`). Focus maps: white = in focus in that frame.

Pairs: layered recipe (thin-lens disk PSF, occlusion-aware compositing) for i % 5 in 0, 1, 2;
IFCNN recipe (Gaussian kr 1..15, depth threshold) for i % 5 == 3; Hourglass recipe (Gaussian
sigma 1..5, random segment subset) for i % 5 == 4. Whole photos, no crop, flip, jitter or noise;
the frame order of pairs is random. `index.csv` lists the photo and parameters of each item.
The same command reproduces the same bytes.
"""


def write_sweeps(source: PhotoSource, out: Path, *, seed: int, offset: int, sweeps: int | None = None,
                 stacks8: int | None = None, layered_recipe=None, progress: bool = True,
                 sweep_ids=None, stack8_ids=None) -> list[list]:
    """Write ``sweeps/`` and ``stacks8/`` under ``out`` (layout: :mod:`mfif.synth.sweep`); photos from
    ``perm[offset:]``. Returns the index rows (name, kind, recipe, photo, frames, width, height, info)."""
    from mfif.synth.sweep import DEVSET_STACKS8, DEVSET_SWEEPS, devset_stack8, devset_sweep

    sweeps = DEVSET_SWEEPS if sweeps is None else sweeps
    stacks8 = DEVSET_STACKS8 if stacks8 is None else stacks8
    out = Path(out)
    (out / "sweeps").mkdir(exist_ok=True)
    (out / "stacks8").mkdir(exist_ok=True)
    sweep_ids = list(range(sweeps)) if sweep_ids is None else list(sweep_ids)
    stack8_ids = list(range(stacks8)) if stack8_ids is None else list(stack8_ids)
    jobs = [("sweep", j) for j in sweep_ids] + [("stack8", j) for j in stack8_ids]
    rows, sheet = [], []
    for kind, j in _progress(jobs, len(jobs), "dev set: sweeps", progress):
        if kind == "sweep":
            name = f"sweep_{j:02d}"
            s = devset_sweep(source, j, seed, offset=offset)
            d = out / "sweeps" / name
            suffixes = [f"{k + 1:02d}" for k in range(len(s.frames))]
        else:
            name = f"stack8_{j:02d}"
            s = devset_stack8(source, j, seed, offset=offset + sweeps, recipe=layered_recipe)
            d = out / "stacks8" / name
            suffixes = [str(k + 1) for k in range(len(s.frames))]
        d.mkdir(exist_ok=True)
        write_sample(d, name, s, suffixes=suffixes, gt_name="GT.png")
        if kind == "sweep" and len(sheet) < 6 and len(s.frames) <= 12:
            sheet.append((name, s))
        info = _json_safe(s.info)
        rows.append([name, kind, info.get("recipe", "layered"), info.get("photo", ""), len(s.frames), s.gt.shape[2],
                     s.gt.shape[1], json.dumps(info, sort_keys=True)])
    _write_csv(out / "index_sweeps.csv", ["name", "kind", "recipe", "photo", "frames", "width", "height", "info"], rows)
    if sheet:
        save_sheet(out / "contact_sheet_sweeps.png",
                   contact_sheet_frames(sheet, tile=120, title="dev set: focal sweeps (in the order taken)"))
    return rows


def write_halo(source: PhotoSource, out, *, seed: int, offset: int, pairs: int | None = None,
               stacks: int | None = None, pair_ids=None, stack_ids=None, progress: bool = True) -> list[list]:
    """Write the halo set (:mod:`mfif.synth.halo`): ``halo/`` under ``out`` (pairs as files, stacks
    as sub-folders), ``index_halo.csv`` and ``contact_sheet_halo.png``; photos ``perm[offset:]``
    (pairs first, then stacks). Returns the index rows (name, kind, recipe, photo, frames, width,
    height, info)."""
    from mfif.synth.halo import HALO_PAIRS, HALO_STACKS, halo_pair, halo_stack

    pairs = HALO_PAIRS if pairs is None else pairs
    stacks = HALO_STACKS if stacks is None else stacks

    folder = Path(out) / "halo"
    folder.mkdir(exist_ok=True)
    pair_ids = list(range(pairs)) if pair_ids is None else list(pair_ids)
    stack_ids = list(range(stacks)) if stack_ids is None else list(stack_ids)
    jobs = [("halo-pair", i) for i in pair_ids] + [("halo-stack", j) for j in stack_ids]
    rows, sheet = [], []
    for kind, i in _progress(jobs, len(jobs), "dev set: halo", progress):
        if kind == "halo-pair":
            name = f"halo_{i:02d}"
            sample = halo_pair(source, i, seed, offset=offset)
            write_sample(folder, name, sample)
            if len(sheet) < 6:
                sheet.append((name, sample))
        else:
            name = f"halo_stack_{i:02d}"
            sample = halo_stack(source, i, seed, offset=offset + pairs)
            (folder / name).mkdir(exist_ok=True)
            write_sample(folder / name, name, sample, suffixes=[str(k + 1) for k in range(len(sample.frames))],
                         gt_name="GT.png")
        info = _json_safe(sample.info)
        rows.append([name, kind, "halo", info["photo"], len(sample.frames), sample.gt.shape[2], sample.gt.shape[1],
                     json.dumps(info, sort_keys=True)])
    _write_csv(Path(out) / "index_halo.csv", ["name", "kind", "recipe", "photo", "frames", "width", "height", "info"],
               rows)
    if sheet:
        save_sheet(Path(out) / "contact_sheet_halo.png",
                   contact_sheet_frames(sheet, tile=200, title="dev set: halo pairs (detail in front / behind / both)"))
    return rows


def _halo_count() -> int:
    from mfif.synth.halo import HALO_PAIRS, HALO_STACKS

    return HALO_PAIRS + HALO_STACKS


def make_devset(source: str | os.PathLike | PhotoSource, out: str | os.PathLike, *, seed: int = DEVSET_SEED,
                pairs: int = DEVSET_PAIRS, stacks: int = DEVSET_STACKS, pair_ids: Iterable[int] | None = None,
                stack_ids: Iterable[int] | None = None, force: bool = False, progress: bool = True,
                command: str = "mfif synth --devset --source <shared>/data/train/bsds500 -o <out>",
                sweeps: int = 20, stacks8: int = 10, sweep_ids: Iterable[int] | None = None,
                stack8_ids: Iterable[int] | None = None, halo: bool = True, halo_ids: Iterable[int] | None = None,
                halo_stack_ids: Iterable[int] | None = None) -> dict:
    """Write the dev evaluation set (layout and composition: module docstring).

    ``source``: the BSDS500 folder (its ``test`` split is used) or a PhotoSource.
    ``pair_ids`` / ``stack_ids``: write only these items (for reproducibility checks).
    ``sweeps`` / ``stacks8``: focal sweeps and 8-frame stacks (:mod:`mfif.synth.sweep`);
    ``sweep_ids`` / ``stack8_ids``: write only these.
    ``halo``: also write the halo set (:mod:`mfif.synth.halo`); ``halo_ids`` / ``halo_stack_ids``: only these.
    """
    if not isinstance(source, PhotoSource):
        src_path = Path(source)
        try:
            source = PhotoSource.from_folder(src_path, split="test")
        except InputError as exc:
            if "no split 'test'" in str(exc):
                raise InputError(f"{src_path}: the dev set is made from the BSDS500 test split; "
                                 f"point --source at the bsds500 folder (with images/test)") from None
            raise
    needed = pairs + stacks + sweeps + stacks8 + (_halo_count() if halo else 0)
    if len(source) < needed:
        raise InputError(f"{source.root}: the dev set needs {needed} distinct photos, "
                         f"found {len(source)}")
    out = prepare_output(out, force=force)
    pair_ids = list(range(pairs)) if pair_ids is None else list(pair_ids)
    stack_ids = list(range(stacks)) if stack_ids is None else list(stack_ids)
    (out / "pairs").mkdir(exist_ok=True)
    (out / "stacks").mkdir(exist_ok=True)
    rows, sheet_pairs, sheet_stacks = [], [], []
    jobs = [("pair", i) for i in pair_ids] + [("stack", j) for j in stack_ids]
    for kind, i in _progress(jobs, len(jobs), "dev set", progress):
        if kind == "pair":
            name = f"pair_{i:03d}"
            s = devset_pair(source, i, seed)
            write_sample(out / "pairs", name, s)
            if len(sheet_pairs) < 10:
                sheet_pairs.append((name, s))
        else:
            name = f"stack_{i:02d}"
            s = devset_stack(source, i, seed, pairs=pairs)
            d = out / "stacks" / name
            d.mkdir(exist_ok=True)
            write_sample(d, name, s, suffixes=["1", "2", "3"], gt_name="GT.png")
            if len(sheet_stacks) < 10:
                sheet_stacks.append((name, s))
        info = _json_safe(s.info)
        rows.append([name, kind, info["recipe"], info["photo"], len(s.frames), s.gt.shape[2], s.gt.shape[1],
                     json.dumps(info, sort_keys=True)])
    _write_csv(out / "index.csv", ["name", "kind", "recipe", "photo", "frames", "width", "height", "info"], rows)
    from mfif.synth.sweep import readme_section  # focal sweeps and 8-frame stacks

    sweep_rows = write_sweeps(source, out, seed=seed, offset=pairs + stacks, sweeps=sweeps, stacks8=stacks8,
                              layered_recipe=_devset_recipe("layered"), progress=progress, sweep_ids=sweep_ids,
                              stack8_ids=stack8_ids)
    halo_rows = []
    if halo:
        from mfif.synth.halo import readme_section as halo_readme

        halo_rows = write_halo(source, out, seed=seed, offset=pairs + stacks + sweeps + stacks8, pair_ids=halo_ids,
                               stack_ids=halo_stack_ids, progress=progress)
    manifest = {"seed": seed, "pairs": len(pair_ids), "stacks": len(stack_ids), "source": "BSDS500 test split",
                "sweeps": sum(r[1] == "sweep" for r in sweep_rows), "stacks8": sum(r[1] == "stack8" for r in sweep_rows),
                "photos": len(source), "command": command,
                **({"halo_pairs": sum(r[1] == "halo-pair" for r in halo_rows),
                    "halo_stacks": sum(r[1] == "halo-stack" for r in halo_rows)} if halo else {}),
                "pair_recipes": {k: recipe_settings(_devset_recipe(k)) for k in ("layered", "ifcnn", "hourglass")}}
    _write_text(out / "manifest.json", json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    readme = _DEVSET_README.format(command=command, seed=seed, photos=len(source), pairs=len(pair_ids),
                                   stacks=len(stack_ids)) + readme_section(sweeps, stacks8)
    if halo:
        readme += halo_readme()
    _write_text(out / "README.md", readme)
    if sheet_pairs:
        save_sheet(out / "contact_sheet_pairs.png", contact_sheet_frames(sheet_pairs, tile=160, title="dev set: pairs"))
    if sheet_stacks:
        save_sheet(out / "contact_sheet_stacks.png",
                   contact_sheet_frames(sheet_stacks, tile=160, title="dev set: 3-frame stacks (1 near .. 3 far)"))
    return manifest


__all__ = [
    "DEVSET_SEED", "DEVSET_PAIRS", "DEVSET_STACKS", "prepare_output", "write_sample", "write_patch",
    "contact_sheet_frames", "contact_sheet_patches", "save_sheet", "make_dataset", "generate", "devset_pair",
    "devset_stack", "make_devset", "write_halo",
]
