"""Command line: ``mfif fuse | batch | list | metrics | synth | train | app``.

Exit codes: 0 success; 1 an error in the input or output (one line on stderr, no traceback);
2 a usage error (argparse); 130 interrupted. ``--debug`` shows the traceback of unexpected errors.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib
import sys
import time
import warnings
from pathlib import Path

from mfif.errors import InputError, MfifError

# Subcommands that live next to their feature: module -> it provides add_parser(subparsers) and run(args).
_FEATURE_COMMANDS: tuple[str, ...] = (
    "mfif.metrics.cli",
    "mfif.synth.cli",
    "mfif.evaluation.cli",
    "mfif.train.cli",
    "mfif.batch",
    "mfif.app.cli",
)


def _parse_option_value(text: str):
    low = text.lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    if low in ("none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def _collect_options(args) -> dict:
    options = {}
    for item in args.opt or []:
        if "=" not in item:
            raise InputError(f"--opt expects KEY=VALUE, got '{item}'")
        key, value = item.split("=", 1)
        options[key.strip().replace("-", "_")] = _parse_option_value(value.strip())
    for name in ("weights", "device", "mode"):
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
    sr = fuse_stack(paths, spec.name, align=align, align_options=_align_options(args), tile=tile,
                    batch_frames=args.batch_frames, stream=stream, **options)
    result, frames = sr.result, sr.frames
    if getattr(args, "retouch", None):
        from mfif.retouching import retouch

        sr.result = result = retouch(result, frames, args.retouch)
    jpeg = out.suffix.lower() in (".jpg", ".jpeg")
    bit_depth = args.bit_depth or (8 if jpeg else frames.bit_depth)
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
            None if result.weights is None else result.weights.argmax(axis=0))
        if (depth is None or spec.name == "average") and batch:
            pass  # a batch asks for depth maps where there are any
        elif depth is None or spec.name == "average":
            raise MfifError(f"method '{spec.name}' does not choose a frame per pixel; no depth map to write")
        else:
            write_depth_map(depth_map, depth, len(frames), inputs=paths)
    if save_transforms and sr.alignment is not None:
        sr.alignment.save(save_transforms, frames.paths)


def _cmd_fuse(args) -> int:
    from mfif.interrupt import run_interruptibly
    from mfif.io import expand_inputs
    from mfif.methods import get_method

    spec = get_method(args.method)
    options = _collect_options(args)
    spec.make_options(**options)  # validate option names before any work
    from mfif.raw import RawOptions, set_raw_options

    set_raw_options(RawOptions(colour=getattr(args, "raw_colour", "linear")))
    if args.tile is not None and args.tile != 0 and args.tile < 16:
        raise InputError(f"--tile must be 0 (off) or at least 16 pixels, got {args.tile}")
    if args.batch_frames < 2:
        raise InputError(f"--batch-frames must be at least 2, got {args.batch_frames}")
    if args.retouch:
        from mfif.retouching import load_strokes

        load_strokes(args.retouch)  # a bad strokes file fails before any work
    if args.batch:
        if args.retouch:
            raise InputError("--retouch paints one result; it cannot be combined with --batch")
        if args.inputs:
            raise InputError("--batch takes the stacks' parent folder; give no other inputs")
        return _cmd_fuse_batch(args, spec, options)
    if not args.inputs:
        args.usage_error("the following arguments are required: IMG (or --batch DIR)")
    paths = expand_inputs(args.inputs)
    # in a worker thread: Ctrl-C is answered at once even inside a long C call (alignment)
    line = run_interruptibly(_fuse_one, paths, Path(args.output), args, spec, options, save_map=args.save_map,
                             depth_map=args.depth_map, save_transforms=args.save_transforms,
                             label=None if args.quiet else f"mfif: fusing {len(paths)} frames with {spec.name}")
    if not args.quiet:
        print(line)
    return 0


def _cmd_fuse_batch(args, spec, options) -> int:
    """One stack per subfolder of --batch DIR -> OUT_DIR/<name>.<format>, one after another in this
    process: the sequential executor of :mod:`mfif.batch` (``mfif batch`` runs the same on Dask)."""
    from mfif.batch import discover_stacks, print_report, run_batch, settings_from_args

    root = Path(args.batch)
    if not root.is_dir():
        raise InputError(f"{root}: --batch expects a folder of stack folders")
    out_dir = Path(args.output)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir}: with --batch, -o names an output folder")
    report = run_batch(discover_stacks(root, out_dir), settings_from_args(args), overwrite=args.overwrite,
                       progress=not args.quiet, debug=args.debug)
    print_report(report, quiet=args.quiet)
    return report.exit_code


def _cmd_list(args) -> int:
    from mfif.methods import DEFAULT_METHOD, METHODS

    width = max(len(n) for n in METHODS)
    for name, spec in METHODS.items():
        mark = " (default)" if name == DEFAULT_METHOD else ""
        print(f"{name:<{width}}  [{spec.kind}] {spec.summary}{mark}")
    if args.verbose:
        for name, spec in METHODS.items():
            opts = spec.make_options()  # the method's own defaults (ifcnn-mean: fuse_rule='mean')
            fields = ", ".join(f"{f.name}={getattr(opts, f.name)!r}" for f in dataclasses.fields(opts))
            print(f"  {name}: {fields or '(no options)'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from mfif import __version__
    from mfif.methods import DEFAULT_METHOD

    parser = argparse.ArgumentParser(prog="mfif", description="Multi-focus image fusion (focus stacking).")
    parser.add_argument("--version", action="version", version=f"mfif {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of unexpected errors")
    max_pixels_help = ("largest frame to decode, width x height as declared in the file (default 268M; "
                       "0: no limit); larger files are refused before decoding")
    parser.add_argument("--max-pixels", metavar="N", default=argparse.SUPPRESS, help=max_pixels_help)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("fuse", help="fuse a stack of frames into one all-in-focus image",
                       description="Fuse frames (files, globs or folders) into one image.")
    p.add_argument("inputs", nargs="*", metavar="IMG", help="frames: files, globs ('*.jpg') or a folder")
    p.add_argument("-o", "--output", required=True, help="output file (.png, .tif, .jpg); with --batch the output folder")
    p.add_argument("-m", "--method", default=DEFAULT_METHOD, help=f"fusion method (default {DEFAULT_METHOD}; see 'mfif list')")
    p.add_argument("--save-map", metavar="FILE", help="write the decision/weight map(s) (other maps as FILE_<name>.png)")
    p.add_argument("--bit-depth", type=int, choices=(8, 16), help="output bits per channel (default: as the input)")
    p.add_argument("--weights", help="network weights file for learned methods")
    p.add_argument("--device", help="torch device for learned methods (cpu, cuda)")
    p.add_argument("--mode", help="fusion mode for methods that have several (e.g. IFCNN)")
    p.add_argument("--opt", action="append", metavar="KEY=VALUE", help="method option (repeatable), see 'mfif list -v'")
    p.add_argument("--retouch", metavar="STROKES.json", help="paint source frames into the result along the brush "
                   "strokes saved by 'mfif app' (mfif.retouch)")
    g = p.add_argument_group("real stacks (alignment, long stacks, huge images, batches)")
    g.add_argument("--align", dest="align", action="store_true", default=None,
                   help="register every frame to the middle frame (default: on for more than 2 frames)")
    g.add_argument("--no-align", dest="align", action="store_false", help="do not register the frames")
    g.add_argument("--align-model", default="affine", choices=("translation", "similarity", "affine", "homography"),
                   help="motion model of the alignment (default affine)")
    g.add_argument("--save-transforms", metavar="FILE.json", help="write the estimated alignment (matrices, crop, gains)")
    g.add_argument("--depth-map", metavar="FILE", help="write the frame-index map: FILE (colour) and FILE_raw.png (16-bit index)")
    g.add_argument("--tile", type=int, metavar="SIZE", help="process images in tiles of SIZE pixels (default: 1024 for frames over 12 MP; 0: never)")
    g.add_argument("--batch-frames", type=int, default=8, metavar="K",
                   help="methods without a running reduction fuse at most K frames at once (default 8)")
    g.add_argument("--batch", metavar="DIR", help="fuse every subfolder of DIR as one stack into the folder -o")
    g.add_argument("--format", default="png", choices=("png", "tif", "jpg"), help="--batch output format (default png)")
    g.add_argument("--overwrite", action="store_true", help="--batch: redo every stack, replacing its outputs "
                   "(without it, stacks the manifest proves done are skipped and changed ones redone)")
    p.add_argument("--max-pixels", metavar="N", default=argparse.SUPPRESS, help=max_pixels_help)
    p.add_argument("--raw-colour", choices=("linear", "camera"), default="linear",
                   help="camera RAW frames: linear sRGB primaries (default) or the camera's own RGB")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=_cmd_fuse, usage_error=p.error)

    p = sub.add_parser("list", help="list the fusion methods")
    p.add_argument("-v", "--verbose", action="store_true", help="also show each method's options")
    p.set_defaults(func=_cmd_list)

    for module_name in _FEATURE_COMMANDS:
        module = importlib.import_module(module_name)
        before = set(sub.choices)
        module.add_parser(sub)
        for name in set(sub.choices) - before:
            if sub.choices[name].get_default("func") is None:
                sub.choices[name].set_defaults(func=module.run)
    return parser


def _one_line_warning_printer():
    """Warnings as one ``mfif: warning: ...`` line on stderr, each distinct message once (a frame
    is read more than once by the low-memory pipeline; its warning is said once)."""
    seen: set[str] = set()

    def show(message, category, filename, lineno, file=None, line=None):
        text = str(message).splitlines()[0] if str(message) else category.__name__
        if text not in seen:
            seen.add(text)
            print(f"mfif: warning: {text}", file=sys.stderr)

    return show


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = args.func
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warning_printer()
            if getattr(args, "max_pixels", None) is not None:
                from mfif.pixel_budget import set_max_pixels

                set_max_pixels(args.max_pixels)
            return int(func(args) or 0)
    except MfifError as exc:
        print(f"mfif: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("mfif: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print("mfif: error: out of memory (try a smaller image or tiling)", file=sys.stderr)
        return 1
    except Exception as exc:  # unexpected: one line unless --debug
        if args.debug:
            raise
        print(f"mfif: internal error: {exc.__class__.__name__}: {exc} (rerun with --debug for details)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
