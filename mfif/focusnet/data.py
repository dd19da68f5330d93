"""Training data of ``focusnet``: a pool of rendered stacks with ground truth (npz files).

Every sample is a crop of a BSDS500 *train/val* photo (the *test* split is the dev set's source and
is never used) rendered by one of the project's defocus recipes (:mod:`mfif.synth`), chosen by the
sample index ``i`` and the pool's mix (:data:`MIXES`, :func:`pool_kind`): ``thinlensK`` =
:func:`mfif.synth.recipes.make_thinlens` with K frames (defocus spread at occlusions: the halo
case), ``layeredK`` = :func:`mfif.synth.recipes.make_layered` (``layeredN``: 4..8 frames in depth
order), ``ifcnn2`` / ``hourglass2`` = the IFCNN / Hourglass recipes (pairs), ``sweep`` =
:func:`mfif.synth.sweep.make_sweep` with 5..10 frames (noise, JPEG, breathing).

A pool file ``<i>.npz`` holds ``frames`` uint8 (N, 3, S, S), ``gt`` uint8 (3, S, S) and ``focus``
uint8 (N, S, S) (1 where the frame is the sharpest). Sample ``i`` with seed ``s`` is always the
same (rng seeded by ``[s, i]``).
"""
from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np

MIXES = {  # mix name -> (kind, share in %)
    "v1": (("thinlens2", 30), ("layered2", 20), ("thinlens3", 15), ("layeredN", 20), ("sweep", 15)),
    "v2": (("layered2", 30), ("layered3", 15), ("thinlens2", 20), ("ifcnn2", 10), ("hourglass2", 10),
           ("layeredN", 15)),
}


def pool_kind(i: int, mix: str = "v1") -> str:
    """The recipe of pool sample ``i`` (a fixed cycle of 100 with the shares of the mix)."""
    slot = (i * 37) % 100
    for kind, end in zip([k for k, _ in MIXES[mix]], np.cumsum([s for _, s in MIXES[mix]])):
        if slot < end:
            return kind
    return MIXES[mix][-1][0]


def render_sample(source, i: int, seed: int, size: int = 192, mix: str = "v1"):
    """Pool sample ``i``: (frames (N, 3, S, S), gt (3, S, S), focus (N, S, S)) float32 in [0, 1]."""
    from mfif.synth import recipes as R
    from mfif.synth.sweep import make_sweep

    rng = np.random.default_rng([seed, i])
    kind = pool_kind(i, mix)
    photo = int(rng.integers(len(source)))
    if kind == "sweep":
        image = np.moveaxis(source.image(photo), -1, 0)
        labels = source.label_map(photo, 0)
        h, w = labels.shape
        y, x = int(rng.integers(0, max(h - size, 0) + 1)), int(rng.integers(0, max(w - size, 0) + 1))
        crop = np.ascontiguousarray(image[:, y:y + size, x:x + size])
        sample = make_sweep(crop, np.ascontiguousarray(labels[y:y + size, x:x + size]), int(rng.integers(5, 11)), rng,
                            breathing=bool(rng.random() < 0.5))
    elif kind.startswith("thinlens"):
        sample = R.make_thinlens(source, photo, rng, R.ThinLensRecipe(size=size), frames=int(kind[-1]))
    elif kind == "ifcnn2":
        sample = R.make_ifcnn(source, photo, rng, R.IfcnnRecipe(size=size), frames=2)
    elif kind == "hourglass2":
        sample = R.make_hourglass(source, photo, rng, R.HourglassRecipe(size=size), frames=2)
    else:
        frames = int(kind[-1]) if kind[-1].isdigit() else int(rng.integers(4, 9))
        recipe = R.LayeredRecipe(size=size)
        if kind == "layeredN":
            recipe = replace(recipe, shuffle_frames=False)
        sample = R.make_layered(source, photo, rng, recipe, frames=frames)
    return sample.frames, sample.gt, sample.focus


def write_pool(data_root: str | os.PathLike, out: str | os.PathLike, count: int, *, seed: int = 0, size: int = 192,
               start: int = 0, step: int = 1, mix: str = "v1") -> None:
    """Render pool samples ``start, start + step, ...`` below ``count`` into ``out/<i>.npz``
    (atomically; existing files are kept, so a stopped run resumes)."""
    from mfif.synth.sources import PhotoSource

    source = PhotoSource.from_folder(Path(data_root) / "bsds500")  # every split but 'test'
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for i in range(start, count, step):
        path = out / f"{i:05d}.npz"
        if path.exists():
            continue
        frames, gt, focus = render_sample(source, i, seed, size, mix)
        u8 = lambda a: np.clip(np.rint(np.asarray(a) * 255.0), 0, 255).astype(np.uint8)  # noqa: E731
        tmp = out / f".{i:05d}.tmp.npz"
        np.savez(tmp, frames=u8(frames), gt=u8(gt), focus=(np.asarray(focus) > 0.5).astype(np.uint8))
        os.replace(tmp, path)


def read_pool(folder: str | os.PathLike) -> list[Path]:
    """The pool files present (sorted)."""
    return sorted(Path(folder).glob("[0-9]*.npz"))


if __name__ == "__main__":  # python -m mfif.focusnet.data DATA_ROOT OUT COUNT [SEED [MIX]]
    import sys

    args = sys.argv[1:]
    write_pool(args[0], args[1], int(args[2]), seed=int(args[3]) if len(args) > 3 else 0,
               mix=args[4] if len(args) > 4 else "v1")
