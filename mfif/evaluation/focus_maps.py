"""Focus maps of a dataset item, for the boundary-band metrics (:mod:`mfif.metrics.boundary`).

``mfif synth`` writes the focus map of every frame under the name of the frame in a ``focus/``
folder beside it (``pairs/focus/pair_000_A.png``, ``stacks/stack_00/focus/stack_00_1.png``, ...):
:func:`focus_map_paths` looks there. An item without a complete set of maps has none (the band
metrics are then skipped for it, as the ground-truth metrics are for an item without GT).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from mfif.dataset_folders import DatasetItem
from mfif.errors import InputError
from mfif.io import read_image


def focus_map_paths(item: DatasetItem) -> list[Path] | None:
    """``<frame folder>/focus/<frame file name>`` for every source, or None when one is missing."""
    paths = [Path(p).parent / "focus" / Path(p).name for p in item.sources]
    return paths if all(p.is_file() for p in paths) else None


def read_focus_maps(item: DatasetItem) -> np.ndarray | None:
    """(N, H, W) float32 focus maps of the item's N sources in [0, 1], or None (see module doc)."""
    paths = focus_map_paths(item)
    if paths is None:
        return None
    maps = [read_image(p) for p in paths]
    for p, m in zip(paths, maps):
        if m.shape[-2:] != maps[0].shape[-2:]:
            raise InputError(f"{p}: focus map size {m.shape[-1]}x{m.shape[-2]} differs from "
                             f"{paths[0].name} ({maps[0].shape[-1]}x{maps[0].shape[-2]})")
    return np.stack([m.mean(axis=0) for m in maps])
