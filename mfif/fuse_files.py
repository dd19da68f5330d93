"""The work of ``mfif fuse`` on one stack (read, align, merge; every output written or none),
shared by :mod:`mfif.cli` and :mod:`mfif.batch` (which must not import the CLI: the CLI names it).
"""
from __future__ import annotations

import time
from pathlib import Path

from mfif.errors import InputError, MfifError


def _collect_options(args, spec) -> dict:
    """``--opt KEY=VALUE`` (typed by ``spec``'s options dataclass) plus --weights/--device, and the
    deprecated ``--mode X`` read as ``--opt mode=X`` (a renamed option's old name, with a warning)."""
    from mfif.options import split_pairs

    texts = split_pairs(args.opt)
    if getattr(args, "mode", None) is not None:
        texts.setdefault("mode", args.mode)
    options = spec.parse_options(texts)
    for name in ("weights", "device"):
        value = getattr(args, name, None)
        if value is not None:
            options[name] = value
    return options


def _map_to_image(array):
    import numpy as np

    arr = np.asarray(array, dtype=np.float32)
    lo, hi = float(arr.min()), float(arr.max())
    if lo < 0.0 or hi > 1.0:
        arr = (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)
    return arr


def _save_maps(result, path: Path, n_sources: int, inputs) -> list[Path]:
    """Write the decision map to ``path`` and every other map next to it (``<stem>_<name>.png``)."""
    import numpy as np

    from mfif.io import write_image

    written = []
    maps = {}
    if result.decision is not None:
        maps["decision"] = np.asarray(result.decision, np.float32) / max(n_sources - 1, 1)
    if result.weights is not None:
        maps["weight0"] = result.weights[0]
    for name, value in result.maps.items():
        value = np.asarray(value)
        if value.ndim == 3:
            value = value[0]
        if value.ndim == 2:
            maps[name] = value
    if not maps:
        raise MfifError(f"method '{result.info.get('method')}' produces no decision or weight map to save")
    first = next(iter(maps))
    for name, value in maps.items():
        target = path if name == first else path.with_name(f"{path.stem}_{name}{path.suffix}")
        written.append(write_image(target, _map_to_image(value), bit_depth=8, inputs=inputs))
    return written


def _uniform(weights) -> bool:
    """True when every frame has the same weight at every pixel (a mean: no frame is chosen)."""
    import numpy as np

    return bool(np.all(np.ptp(np.asarray(weights), axis=0) == 0))


def _align_options(args):
    from mfif.align import AlignOptions

    return AlignOptions(model=args.align_model)


def _fuse_one(paths, out: Path, args, spec, options, *, save_map=None, depth_map=None, save_transforms=None,
              batch: bool = False) -> str:
    """Load, align, merge and save one stack; returns the summary line."""
    from mfif.io import all_or_nothing, check_output_path
    from mfif.stacking import fuse_stack

    if len(paths) < 2:
        raise InputError(f"need at least 2 frames to fuse, got {len(paths)}" + (f" ({paths[0]})" if paths else ""))
    out = check_output_path(out, inputs=paths)
    extras = [Path(p) for p in (save_map, depth_map, save_transforms) if p]
    for extra in extras:
        if extra.suffix.lower() != ".json":
            check_output_path(extra, inputs=paths)
        elif not (extra.parent if str(extra.parent) else Path(".")).is_dir():
            raise MfifError(f"{extra}: output folder {extra.parent} does not exist")
        if extra.resolve() == out.resolve():
            raise InputError(f"{extra}: the map path equals the output path")
    if depth_map:  # its 16-bit companion too
        from mfif.stacking import raw_depth_path

        check_output_path(raw_depth_path(Path(depth_map)), inputs=paths)
    if depth_map and spec.name == "average" and not batch:  # known before any work
        raise MfifError(f"method '{spec.name}' does not choose a frame per pixel; no depth map to write")
    align = args.align
    if align is None:
        align = len(paths) > 2
    if save_transforms and not align:
        if batch:  # a two-frame stack in a batch: nothing to save
            save_transforms = None
        else:
            raise InputError("--save-transforms needs alignment (it is off: --no-align, or only two frames "
                             "without --align)")
    start = time.perf_counter()
    tile = "auto" if args.tile is None else (args.tile or None)
    # a pair with --save-map runs the method itself (all its maps); otherwise the running
    # reduction where the method has one (memory flat in the number of frames)
    stream = False if (save_map and len(paths) == 2 and spec.stream) else None
    sr = fuse_stack(paths, spec, align=align, align_options=_align_options(args), tile=tile,
                    batch_frames=args.batch_frames, stream=stream, **options)
    result, frames = sr.result, sr.frames
    if getattr(args, "retouch", None):
        from mfif.retouching import retouch

        sr.result = result = retouch(result, frames, args.retouch)
    jpeg = out.suffix.lower() in (".jpg", ".jpeg")
    bit_depth = args.bit_depth or (8 if jpeg else frames.bit_depth)
    from mfif import progress

    progress.status(f"writing {out.name}")
    with all_or_nothing():  # every output or none
        _write_outputs(out, sr, paths, bit_depth, spec, save_map, depth_map, save_transforms, batch)
    bit_depth = 8 if jpeg else bit_depth  # what the file holds (JPEG: 8 bits, with a warning if 16 was asked)
    note = ""
    if sr.alignment is not None:
        x, y, w, h = sr.alignment.crop
        fallbacks = [s.method for s in sr.alignment.steps if s.method != "ecc"]
        note = f", aligned ({sr.alignment.model}; crop {w}x{h}+{x}+{y}" + (
            f"; {len(fallbacks)} step(s) by {'/'.join(sorted(set(fallbacks)))}" if fallbacks else "") + ")"
    return (f"{out}: fused {len(frames)} frames with {spec.name} in {time.perf_counter() - start:.2f} s "
            f"({bit_depth}-bit{note}; merge: {result.info.get('merge', 'in memory')})")


def _write_outputs(out, sr, paths, bit_depth, spec, save_map, depth_map, save_transforms, batch) -> None:
    from mfif.io import write_image
    from mfif.stacking import write_depth_map

    result, frames = sr.result, sr.frames
    ref = frames.reference_info
    write_image(out, result.fused, bit_depth=bit_depth, inputs=paths, exif=frames.reference_exif,
                icc=ref.icc if ref else None, resolution=ref.resolution if ref else None)
    if save_map:
        _save_maps(result, Path(save_map), len(frames), paths)
    if depth_map:
        depth = result.decision if result.decision is not None else (
            None if result.weights is None or _uniform(result.weights) else result.weights.argmax(axis=0))
        if depth is None and batch:
            pass  # a batch asks for depth maps where there are any
        elif depth is None:
            raise MfifError(f"method '{spec.name}' does not choose a frame per pixel; no depth map to write")
        else:
            write_depth_map(depth_map, depth, len(frames), inputs=paths)
    if save_transforms and sr.alignment is not None:
        sr.alignment.save(save_transforms, frames.paths)
