"""Command line: ``mfif fuse | list | metrics | synth | train``.

Exit codes: 0 success; 1 an error in the input or output (one line on stderr, no traceback);
2 a usage error (argparse); 130 interrupted. ``--debug`` shows the traceback of unexpected errors.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib
import sys
import time
from pathlib import Path

from mfif.errors import InputError, MfifError

# Subcommands that live next to their feature: command -> (module, one-line help). The module
# provides add_parser(subparsers) and run(args) and is imported only when its command runs, so
# `mfif --help`, `mfif list` and `mfif fuse` with a classical method import no torch.
_FEATURE_COMMANDS: dict[str, tuple[str, str]] = {
    "metrics": ("mfif.metrics.cli", "score fused images with the fusion-quality metrics"),
    "synth": ("mfif.synth.cli", "write a synthetic multi-focus dataset (or the dev set) with a contact sheet"),
    "eval": ("mfif.evaluation.cli", "run methods over datasets and write tables and figures"),
    "bench": ("mfif.evaluation.cli", "time and memory per method and image size"),
    "train": ("mfif.models.train_cli", "train a network on synthetic data"),
}


def _collect_options(args, spec) -> dict:
    """``--opt KEY=VALUE`` (typed by ``spec``'s options dataclass) plus --weights/--device/--mode."""
    from mfif.options import split_pairs

    options = spec.parse_options(split_pairs(args.opt))
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
    from mfif.io import check_output_path, write_image
    from mfif.stacking import fuse_stack, write_depth_map

    if len(paths) < 2:
        raise InputError(f"need at least 2 frames to fuse, got {len(paths)}" + (f" ({paths[0]})" if paths else ""))
    out = check_output_path(out, inputs=paths)
    extras = [Path(p) for p in (save_map, depth_map, save_transforms) if p]
    for extra in extras:
        if extra.suffix.lower() != ".json":
            check_output_path(extra, inputs=paths)
        if extra.resolve() == out.resolve():
            raise InputError(f"{extra}: the map path equals the output path")
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
    bit_depth = args.bit_depth or frames.bit_depth
    write_image(out, result.fused, bit_depth=bit_depth, inputs=paths, exif=frames.reference_exif)
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
    note = ""
    if sr.alignment is not None:
        x, y, w, h = sr.alignment.crop
        fallbacks = [s.method for s in sr.alignment.steps if s.method != "ecc"]
        note = f", aligned ({sr.alignment.model}; crop {w}x{h}+{x}+{y}" + (
            f"; {len(fallbacks)} step(s) by {'/'.join(sorted(set(fallbacks)))}" if fallbacks else "") + ")"
    return (f"{out}: fused {len(frames)} frames with {spec.name} in {time.perf_counter() - start:.2f} s "
            f"({bit_depth}-bit{note}; merge: {result.info.get('merge', 'in memory')})")


def _cmd_fuse(args) -> int:
    from mfif.io import expand_inputs
    from mfif.methods import get_method

    spec = get_method(args.method)
    options = _collect_options(args, spec)
    spec.make_options(**options)  # validate option names before any work
    if args.tile is not None and args.tile != 0 and args.tile < 16:
        raise InputError(f"--tile must be 0 (off) or at least 16 pixels, got {args.tile}")
    if args.batch_frames < 2:
        raise InputError(f"--batch-frames must be at least 2, got {args.batch_frames}")
    if args.batch:
        if args.inputs:
            raise InputError("--batch takes the stacks' parent folder; give no other inputs")
        return _cmd_fuse_batch(args, spec, options)
    if not args.inputs:
        args.usage_error("the following arguments are required: IMG (or --batch DIR)")
    paths = expand_inputs(args.inputs)
    line = _fuse_one(paths, Path(args.output), args, spec, options, save_map=args.save_map,
                     depth_map=args.depth_map, save_transforms=args.save_transforms)
    if not args.quiet:
        print(line)
    return 0


def _cmd_fuse_batch(args, spec, options) -> int:
    """One stack per subfolder of --batch DIR -> OUT_DIR/<name>.<format>; finished stacks (output
    present) are skipped unless --overwrite; a failed stack is reported and the others go on."""
    from mfif.io import IMAGE_SUFFIXES, expand_inputs

    root = Path(args.batch)
    if not root.is_dir():
        raise InputError(f"{root}: --batch expects a folder of stack folders")
    out_dir = Path(args.output)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir}: with --batch, -o names an output folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    stacks = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    stacks = [d for d in stacks if any(f.suffix.lower() in IMAGE_SUFFIXES for f in d.iterdir() if f.is_file())]
    if not stacks:
        raise InputError(f"{root}: no subfolders with image files (one subfolder per stack)")
    done, skipped, failed = [], [], []
    for d in stacks:
        out = out_dir / f"{d.name}.{args.format}"
        if out.exists() and not args.overwrite:
            skipped.append(d.name)
            if not args.quiet:
                print(f"{out}: exists, skipped (--overwrite to redo)")
            continue
        try:
            paths = expand_inputs([d])
            line = _fuse_one(paths, out, args, spec, options,
                             save_map=out_dir / f"{d.name}_map.png" if args.save_map else None,
                             depth_map=out_dir / f"{d.name}_depth.png" if args.depth_map else None,
                             save_transforms=out_dir / f"{d.name}_transforms.json" if args.save_transforms else None, batch=True)
            done.append(d.name)
            if not args.quiet:
                print(line)
        except KeyboardInterrupt:
            raise
        except MemoryError:
            failed.append((d.name, "out of memory (try --tile)"))
        except MfifError as exc:
            failed.append((d.name, str(exc)))
        except Exception as exc:  # a bad stack must not stop the batch
            if args.debug:
                raise
            failed.append((d.name, f"internal error: {exc.__class__.__name__}: {exc}"))
        if failed and failed[-1][0] == d.name:
            print(f"mfif: stack {d.name} failed: {failed[-1][1]}", file=sys.stderr)
    print(f"batch: {len(done)} fused, {len(skipped)} skipped (already done), {len(failed)} failed"
          + (": " + ", ".join(name for name, _ in failed) if failed else ""),
          file=sys.stderr if failed else sys.stdout)
    for name, message in failed:
        print(f"  {name}: {message}", file=sys.stderr)
    return 1 if failed else 0


def _cmd_list(args) -> int:
    from mfif.methods import DEFAULT_METHOD, METHODS

    width = max(len(n) for n in METHODS)
    for name, spec in METHODS.items():
        mark = " (default)" if name == DEFAULT_METHOD else ""
        print(f"{name:<{width}}  [{spec.kind}] {spec.summary}{mark}")
    if args.verbose:
        for name, spec in METHODS.items():
            _, opts = spec.load()
            fields = ", ".join(f"{f.name}={f.default!r}" for f in dataclasses.fields(opts)
                               if f.default is not dataclasses.MISSING)
            print(f"  {name}: {fields or '(no options)'}")
    return 0


def _command_of(argv: list[str] | None) -> str | None:
    """The subcommand that ``argv`` runs (its first word that is not an option; "" if none)."""
    return next((word for word in argv if not word.startswith("-")), "")


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The ``mfif`` parser; with ``argv``, only the feature command that ``argv`` runs is loaded
    (the others stay one-line entries of ``--help``); without, all are."""
    from mfif import __version__
    from mfif.methods import DEFAULT_METHOD

    parser = argparse.ArgumentParser(prog="mfif", description="Multi-focus image fusion (focus stacking).")
    parser.add_argument("--version", action="version", version=f"mfif {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of unexpected errors")
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
    g.add_argument("--overwrite", action="store_true", help="--batch: redo stacks whose output exists")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=_cmd_fuse, usage_error=p.error)

    p = sub.add_parser("list", help="list the fusion methods")
    p.add_argument("-v", "--verbose", action="store_true", help="also show each method's options")
    p.set_defaults(func=_cmd_list)

    wanted = None if argv is None else _command_of(argv)
    for module_name in dict.fromkeys(m for name, (m, _) in _FEATURE_COMMANDS.items() if wanted in (None, name)):
        module = importlib.import_module(module_name)
        before = set(sub.choices)
        module.add_parser(sub)
        for name in set(sub.choices) - before:
            if sub.choices[name].get_default("func") is None:
                sub.choices[name].set_defaults(func=module.run)
    for name, (_, summary) in _FEATURE_COMMANDS.items():
        if name not in sub.choices:  # not loaded: a one-line entry of --help
            sub.add_parser(name, help=summary, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    func = args.func
    try:
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
