"""``mfif synth``: write a synthetic multi-focus dataset (or the fixed dev set) to disk.

Usage::

    mfif synth --source DIR --recipe {liu,ifcnn,ba,hourglass,layered} -n N -o OUT [--frames K]
               [--seed S] [--split NAME] [--size PX] [--psf {disk,gaussian}]
               [--compositing {layered,hard}] [--boundary-only] [--noise SIGMA] [--jpeg LO-HI]
               [--bit-depth {8,16}] [--sheet PATH] [--force] [--quiet]
    mfif synth --devset --source SHARED/data/train/bsds500 -o OUT [--force]
    mfif synth --prerender --source DIR --recipe {thinlens,layered,ifcnn,hourglass} -n N -o OUT
               [--frames K] [--seed S] [--size PX] [--workers W] [--resume] [--force] [--quiet]

The first form writes ``N`` samples (frames ``<name>_A.png``, ``<name>_B.png``, ...,
``<name>_GT.png``, focus maps in ``focus/``; patch recipes write ``<name>_A/B.png`` and labels in
``index.csv``) and ``contact_sheet.png``. The second writes the dev evaluation set: 100 pairs + 20
three-frame stacks from the BSDS500 test split with the fixed seed
:data:`mfif.synth.write.DEVSET_SEED` (see :mod:`mfif.synth.write`). The third pre-renders N
training samples into memory-mappable uint8 arrays for :class:`mfif.synth.prerender.PrerenderedPairs`
(see :mod:`mfif.synth.prerender`) and prints its pairs/s.

Until the subcommand is wired into ``mfif/cli.py`` the same commands run as
``python -m mfif.synth.cli synth ...``.
"""
from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import replace

from mfif.errors import InputError, MfifError
from mfif.synth import recipes as R
from mfif.synth.write import DEVSET_SEED, generate, make_devset


def _jpeg_range(text: str) -> tuple[int, int]:
    try:
        parts = [int(p) for p in text.replace(",", "-").split("-")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"JPEG quality must be Q or LO-HI, got {text!r}") from None
    lo, hi = (parts[0], parts[0]) if len(parts) == 1 else (parts[0], parts[1])
    if len(parts) > 2 or not 1 <= lo <= hi <= 100:
        raise argparse.ArgumentTypeError(f"JPEG quality must be within 1..100 (LO <= HI), got {text!r}")
    return lo, hi


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``synth`` on an argparse subparsers object."""
    p = subparsers.add_parser(
        "synth", help="write a synthetic multi-focus dataset (or the dev set) with a contact sheet",
        description="Synthesise multi-focus training data from sharp photos (optionally with segmentation "
                    "masks or alpha mattes) and write it to disk with a contact sheet.")
    p.add_argument("--source", required=True, metavar="DIR",
                   help="folder of photos (BSDS500 / COCO / alpha-matting layouts or a plain folder)")
    p.add_argument("--recipe", choices=list(R.RECIPES), help="which paper's recipe (or 'layered', ours)")
    p.add_argument("-n", "--count", type=int, metavar="N", help="number of samples to write")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="output folder (created)")
    p.add_argument("--frames", type=int, default=2, metavar="K", help="frames per sample (image recipes; default 2)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default 0; the dev set has its own)")
    p.add_argument("--split", default=None,
                   help="BSDS-style split folder(s) to use, comma separated (default: all but 'test')")
    p.add_argument("--size", type=int, default=None, help="output crop size (ifcnn 224, hourglass/layered 256)")
    p.add_argument("--psf", choices=["disk", "gaussian"], default=None, help="layered: defocus PSF (default disk)")
    p.add_argument("--compositing", choices=["layered", "hard"], default=None,
                   help="ba: occlusion-aware layers (default) or the paper's hard blend")
    p.add_argument("--boundary-only", action="store_true", help="ba: only patches near the focus boundary")
    p.add_argument("--noise", type=float, default=None, metavar="SIGMA",
                   help="image recipes: sensor noise up to SIGMA per frame (e.g. 0.02)")
    p.add_argument("--jpeg", type=_jpeg_range, default=None, metavar="LO-HI",
                   help="image recipes: JPEG-compress half the frames at quality LO..HI")
    p.add_argument("--bit-depth", type=int, choices=[8, 16], default=8, help="PNG bit depth (default 8)")
    p.add_argument("--sheet", default="contact_sheet.png", metavar="PATH",
                   help="contact sheet file (a bare name goes inside OUT; default contact_sheet.png)")
    p.add_argument("--devset", action="store_true",
                   help="write the fixed dev evaluation set (100 pairs + 20 stacks from the BSDS500 test split)")
    p.add_argument("--prerender", action="store_true",
                   help="write N training samples as uint8 arrays (frames.npy, gt.npy, focus.npy) for streaming")
    p.add_argument("--workers", type=int, default=1, metavar="W", help="--prerender: parallel processes (default 1)")
    p.add_argument("--resume", action="store_true", help="--prerender: continue an interrupted OUT.partial")
    p.add_argument("--force", action="store_true", help="write into a non-empty output folder")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    return p


def _recipe_from_args(args):
    name = args.recipe
    recipe = R.get_recipe(name)
    kind = recipe.kind
    changes = {}
    if args.size is not None:
        if kind == "patches":
            raise InputError(f"--size applies to image recipes, not {name} (its patch size is fixed)")
        if args.size < 16:
            raise InputError(f"--size must be at least 16, got {args.size}")
        changes["size"] = args.size
    if args.psf is not None:
        if name != "layered":
            raise InputError(f"--psf applies to the layered recipe, not {name}")
        changes["psf"] = args.psf
    if args.compositing is not None or args.boundary_only:
        if name != "ba":
            raise InputError(f"--compositing / --boundary-only apply to the ba recipe, not {name}")
        if args.compositing is not None:
            changes["compositing"] = args.compositing
        changes["boundary_only"] = bool(args.boundary_only)
    if args.noise is not None or args.jpeg is not None:
        if kind == "patches":
            raise InputError(f"--noise / --jpeg apply to image recipes, not {name}")
        if args.noise is not None and not 0 <= args.noise <= 0.5:
            raise InputError(f"--noise must be within 0..0.5, got {args.noise}")
        aug = recipe.augment
        if args.noise is not None:
            aug = replace(aug, noise=float(args.noise))
        if args.jpeg is not None:
            aug = replace(aug, jpeg=args.jpeg)
        changes["augment"] = aug
    return replace(recipe, **changes) if changes else recipe


def run(args: argparse.Namespace) -> int:
    """Execute ``mfif synth``; raises :class:`mfif.errors.MfifError` on bad input."""
    command = "mfif synth " + " ".join(shlex.quote(a) for a in getattr(args, "argv", []) or [])
    if args.devset:
        if args.recipe or args.count:
            raise InputError("--devset makes a fixed set; do not combine it with --recipe or -n")
        seed = DEVSET_SEED if args.seed is None else args.seed
        make_devset(args.source, args.output, seed=seed, force=args.force, progress=not args.quiet,
                    command=f"mfif synth --devset --source {args.source} -o {args.output}"
                    + (f" --seed {seed}" if seed != DEVSET_SEED else ""))
        return 0
    if not args.recipe:
        raise InputError("--recipe is required (liu, ifcnn, ba, hourglass or layered), or use --devset")
    if args.count is None:
        raise InputError("-n N (number of samples) is required")
    if args.count < 1:
        raise InputError(f"-n must be at least 1, got {args.count}")
    if args.frames < 2:
        raise InputError(f"--frames must be at least 2, got {args.frames}")
    recipe = _recipe_from_args(args)
    if args.prerender:
        from mfif.synth.prerender import prerender

        meta = prerender(args.source, recipe, args.count, args.output, frames=args.frames,
                         seed=0 if args.seed is None else args.seed, workers=args.workers, resume=args.resume,
                         force=args.force, progress=not args.quiet)
        print(f"{args.output}: {meta['samples']} samples ({meta['bytes_per_sample'] / 1e3:.0f} kB each); "
              f"rendered {meta['rendered']} in {meta['seconds']:.1f} s = {meta['pairs_per_s']:.1f} pairs/s "
              f"with {args.workers} worker(s)")
        return 0
    from mfif.synth.sources import PhotoSource

    split = [s for s in args.split.split(",") if s] if args.split else None
    source = PhotoSource.from_folder(args.source, split=split)
    generate(source, recipe, args.count, args.output, frames=args.frames, seed=0 if args.seed is None else args.seed,
             bit_depth=args.bit_depth, sheet=args.sheet, force=args.force, progress=not args.quiet,
             command=command if getattr(args, "argv", None) else None)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point: ``python -m mfif.synth.cli synth ...``."""
    parser = argparse.ArgumentParser(prog="mfif")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser(sub)
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    args.argv = argv[1:]
    try:
        return args.func(args)
    except MfifError as exc:
        print(f"mfif: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
