"""torch Datasets that synthesise multi-focus training data on the fly.

Every item is a pure function of ``(seed, index)``: item ``i`` draws from
``np.random.default_rng([seed, ...])`` keyed by ``i`` (and by its photo group), never from global
state, so the same seed gives the same bytes in any process, any worker, any order. Photos are
assigned to items by a seeded permutation per pass over the source, so every photo is used once
per pass. Decoded photos are cached per process (:class:`~mfif.synth.sources.PhotoSource`).

- :class:`LiuPatchDataset` — Liu et al.'s 16x16 patch pairs: items ``2 j`` and ``2 j + 1`` are
  the same pair in both orders with labels 1 and 0.
- :class:`BAPatchDataset` — BA's 64x64x2 patches labelled by the centre pixel, with the
  ``boundary`` flag; ``boundary_only=True`` for the boundary refinement net. Consecutive items
  share a scene; :class:`SceneShuffleSampler` shuffles while keeping them together, which lets the
  per-process scene cache work.
- :class:`PairDataset` — frames + ground truth + focus maps (IFCNN, Hourglass, layered, thinlens
  recipes), ``frames >= 2``. Pre-rendered copies: :mod:`mfif.synth.prerender`.

Items are dicts of tensors, so the default collate function batches them. Workers: the datasets
are safe with ``DataLoader(num_workers=W)`` (fork). Do not call ``cv2.setNumThreads`` inside a
forked worker (e.g. in ``worker_init_fn``): when the parent's OpenCV thread pool has run, that
call can deadlock the worker (seen here about one run in three). To limit OpenCV's threads, call
``cv2.setNumThreads(1)`` in the main process before the DataLoader starts, or use
``multiprocessing_context="spawn"``.

Example:
    >>> from torch.utils.data import DataLoader                      # doctest: +SKIP
    >>> ds = PairDataset("shared/data/train", recipe="layered", seed=0)  # doctest: +SKIP
    >>> batch = next(iter(DataLoader(ds, batch_size=4)))              # doctest: +SKIP
    >>> batch["frames"].shape                                         # doctest: +SKIP
    torch.Size([4, 2, 3, 256, 256])
"""
from __future__ import annotations

import os
from collections import OrderedDict
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from mfif.errors import InputError
from mfif.synth import recipes as R
from mfif.synth.sources import PhotoSource


def _as_source(source, min_side: int, what: str) -> PhotoSource:
    if isinstance(source, (str, os.PathLike)):
        source = PhotoSource.from_folder(source)
    if not isinstance(source, PhotoSource):
        raise InputError(f"source must be a folder or a PhotoSource, got {type(source).__name__}")
    return source.require_min_side(min_side, what) if min_side else source


class _PhotoOrder:
    """Photo of group ``g``: a seeded permutation of the pool for each pass over it."""

    def __init__(self, pool: list[int], seed: int, salt: int):
        self.pool, self.seed, self.salt = list(pool), int(seed), int(salt)
        self._perm: dict[int, np.ndarray] = {}

    def __call__(self, g: int) -> int:
        n = len(self.pool)
        rnd = g // n
        perm = self._perm.get(rnd)
        if perm is None:
            if len(self._perm) > 4:
                self._perm.clear()
            perm = self._perm[rnd] = np.random.default_rng([self.seed, rnd, self.salt]).permutation(n)
        return self.pool[int(perm[g % n])]


def _check_index(index: int, length: int) -> int:
    if index < 0:
        index += length
    if not 0 <= index < length:
        raise IndexError(f"index {index} out of range for a dataset of {length} items")
    return index


def _patch_item(s: R.PatchSample) -> dict:
    return {"inputs": torch.from_numpy(np.ascontiguousarray(s.inputs)),
            "label": torch.tensor(s.label, dtype=torch.int64),
            "boundary": torch.tensor(s.boundary, dtype=torch.bool)}


class LiuPatchDataset(Dataset):
    """Liu et al. 2017 patch pairs, generated on the fly.

    Args:
        source: folder of photos or a :class:`PhotoSource`.
        recipe: :class:`~mfif.synth.recipes.LiuRecipe` (5 cumulative sigma-2 blurs, 16x16).
        length: number of items (default: one pass, ``2 * levels * pairs_per_level`` per photo).
        seed: fixes every item.

    Item ``i``: photo group ``g = i // (2 * levels * pairs_per_level)``, pair ``j`` inside it
    (blur level ``j // pairs_per_level + 1``), order ``i % 2`` (1: (blurred, clear), label 0).
    Returns ``{"inputs": (2, 16, 16) float32, "label": int64, "boundary": False}``.
    """

    def __init__(self, source, recipe: R.LiuRecipe | None = None, *, length: int | None = None, seed: int = 0):
        self.recipe = recipe or R.LiuRecipe()
        self.source = _as_source(source, self.recipe.min_side, "patch")
        self.seed = int(seed)
        self.length = int(length) if length is not None else len(self.source) * self.recipe.samples_per_photo
        self._photo = _PhotoOrder(list(range(len(self.source))), self.seed, 1)

    def __len__(self) -> int:
        return self.length

    def sample(self, index: int) -> R.PatchSample:
        index = _check_index(index, self.length)
        spp = self.recipe.samples_per_photo
        g, r = divmod(index, spp)
        j, order = divmod(r, 2)
        level = j // self.recipe.pairs_per_level + 1
        rng = np.random.default_rng([self.seed, g, j])
        s = R.liu_patch(self.source, self._photo(g), rng, level, self.recipe)
        return s.swapped() if order else s

    def __getitem__(self, index: int) -> dict:
        return _patch_item(self.sample(index))


class BAPatchDataset(Dataset):
    """Boundary-aware (Ma et al. 2019) 64x64x2 patches, generated on the fly.

    Args:
        source: folder or :class:`PhotoSource`; photos with an alpha matte are the foregrounds,
            the others the backgrounds (if there are no mattes, foregrounds are cut from photos
            by random segment subsets; if there are only matted photos, they are backgrounds too).
        recipe: :class:`~mfif.synth.recipes.BARecipe`.
        length: number of items (default: 100 scenes per foreground).
        seed: fixes every item.
        boundary_only: only patches near the focus boundary (for the boundary refinement net).
        cache_scenes: scenes kept per process (consecutive items share a scene).

    Item ``i``: scene ``g = i // (2 * patches_per_scene)``, patch ``j``, order ``i % 2``.
    Returns ``{"inputs": (2, 64, 64) float32, "label": int64 (1: A focused at the centre),
    "boundary": bool}``.
    """

    def __init__(self, source, recipe: R.BARecipe | None = None, *, length: int | None = None, seed: int = 0,
                 boundary_only: bool | None = None, cache_scenes: int = 8):
        self.recipe = recipe or R.BARecipe()
        if boundary_only is not None:
            from dataclasses import replace

            self.recipe = replace(self.recipe, boundary_only=bool(boundary_only))
        self.source = _as_source(source, self.recipe.min_side, "patch")
        self.seed = int(seed)
        fg = self.source.with_alpha() or list(range(len(self.source)))
        bg = self.source.without_alpha() or list(range(len(self.source)))
        self.fg_pool, self.bg_pool = fg, bg
        self.length = int(length) if length is not None else len(fg) * 100 * self.recipe.samples_per_photo
        self._photo = _PhotoOrder(fg, self.seed, 2)
        self._scenes: OrderedDict[int, R.BAScene] = OrderedDict()
        self.cache_scenes = int(cache_scenes)

    def __len__(self) -> int:
        return self.length

    @property
    def group_size(self) -> int:
        return self.recipe.samples_per_photo

    def scene(self, g: int) -> R.BAScene:
        sc = self._scenes.get(g)
        if sc is not None:
            self._scenes.move_to_end(g)
            return sc
        rng = np.random.default_rng([self.seed, g])
        fg = self._photo(g)
        bgs = [b for b in self.bg_pool if b != fg] or self.bg_pool
        bg = int(bgs[int(rng.integers(0, len(bgs)))])
        sc = R.make_ba_scene(self.source, fg, bg, rng, self.recipe)
        self._scenes[g] = sc
        while len(self._scenes) > self.cache_scenes:
            self._scenes.popitem(last=False)
        return sc

    def sample(self, index: int) -> R.PatchSample:
        index = _check_index(index, self.length)
        g, r = divmod(index, self.recipe.samples_per_photo)
        j, order = divmod(r, 2)
        s = R.ba_patch(self.scene(g), np.random.default_rng([self.seed, g, j]), self.recipe)
        return s.swapped() if order else s

    def __getitem__(self, index: int) -> dict:
        return _patch_item(self.sample(index))


class PairDataset(Dataset):
    """Multi-focus frames with ground truth, generated on the fly.

    Args:
        source: folder of photos or a :class:`PhotoSource`.
        recipe: ``"ifcnn"``, ``"hourglass"``, ``"layered"``, ``"thinlens"`` or one of their configs.
        frames: frames per item (>= 2).
        length: number of items (default: 10 per photo).
        seed: fixes every item.

    Returns ``{"frames": (N, 3, S, S), "gt": (3, S, S), "focus": (N, S, S), "blur": (N, S, S)}``
    float32 tensors (S = the recipe's ``size``).
    """

    _MAKERS = {"ifcnn": R.make_ifcnn, "hourglass": R.make_hourglass, "layered": R.make_layered,
               "thinlens": R.make_thinlens}

    def __init__(self, source, recipe="layered", *, frames: int = 2, length: int | None = None, seed: int = 0):
        self.recipe = R.get_recipe(recipe) if isinstance(recipe, str) else recipe
        if self.recipe.name not in self._MAKERS:
            raise InputError(f"recipe {self.recipe.name!r} makes patches, not frame pairs; "
                             f"use {', '.join(self._MAKERS)} (or LiuPatchDataset / BAPatchDataset)")
        if int(frames) < 2:
            raise InputError(f"a multi-focus sample needs at least 2 frames, got {frames}")
        self.frames = int(frames)
        self.source = _as_source(source, self.recipe.min_side, "crop")
        self.seed = int(seed)
        self.length = int(length) if length is not None else 10 * len(self.source)
        self._photo = _PhotoOrder(list(range(len(self.source))), self.seed, 3)
        self._make = self._MAKERS[self.recipe.name]

    def __len__(self) -> int:
        return self.length

    def sample(self, index: int) -> R.MultiFocusSample:
        index = _check_index(index, self.length)
        rng = np.random.default_rng([self.seed, index])
        return self._make(self.source, self._photo(index), rng, self.recipe, frames=self.frames)

    def __getitem__(self, index: int) -> dict:
        s = self.sample(index)
        return {"frames": torch.from_numpy(s.frames), "gt": torch.from_numpy(s.gt),
                "focus": torch.from_numpy(s.focus), "blur": torch.from_numpy(s.blur)}


class SceneShuffleSampler(Sampler[int]):
    """Shuffle a scene-grouped dataset (BA, Liu) by whole groups, then inside each group.

    Keeps the items of a scene together so the per-process scene cache is hit; ``set_epoch``
    gives a new order per epoch (deterministic given ``seed``).
    """

    def __init__(self, dataset, group_size: int | None = None, *, seed: int = 0):
        self.n = len(dataset)
        self.group = int(group_size or getattr(dataset, "group_size", None) or dataset.recipe.samples_per_photo)
        self.seed, self.epoch = int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        rng = np.random.default_rng([self.seed, self.epoch])
        groups = -(-self.n // self.group)
        for g in rng.permutation(groups):
            start = int(g) * self.group
            idx = np.arange(start, min(start + self.group, self.n))
            yield from (int(i) for i in rng.permutation(idx))


__all__ = ["LiuPatchDataset", "BAPatchDataset", "PairDataset", "SceneShuffleSampler"]
