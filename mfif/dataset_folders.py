"""Readers for the common multi-focus dataset layouts.

A folder may hold:

- pairs/series as files ``<name>_A.ext``, ``<name>_B.ext`` (also ``-A``/``-B``, ``_1``/``_2``,
  any single letter or number as the tag), with an optional ground truth ``<name>_GT.ext``;
- stacks as one sub-folder per scene: every image inside is a frame (sorted by name), except a
  ground truth named ``GT.ext`` or ``<anything>_GT.ext``. Sub-folders named ``focus``, ``maps``,
  ``masks`` or ``cache`` hold side data (e.g. the synthetic sets' focus maps) and are skipped.

:func:`discover` returns the items it found and the problems it met (an item with one source, an
unreadable folder), so an evaluation can report them and go on with the rest.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from mfif.errors import InputError
from mfif.io import IMAGE_SUFFIXES

_TAGGED = re.compile(r"^(?P<name>.+?)[_-](?P<tag>GT|gt|[A-Za-z]|\d+)$")
# Sub-folders with these names hold per-item side data (focus maps, masks), not stacks.
SIDE_FOLDERS = frozenset({"focus", "focus_maps", "maps", "masks", "cache"})


@dataclass
class DatasetItem:
    """One scene: its source frames (in order), optional ground truth."""

    name: str
    sources: list[Path]
    ground_truth: Path | None = None
    kind: str = "pair"  # "pair" (2 files), "series" (>2 tagged files) or "stack" (a sub-folder)


@dataclass
class Dataset:
    root: Path
    items: list[DatasetItem] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.root.name


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def _tag_key(tag: str):
    return (0, int(tag)) if tag.isdigit() else (1, tag.upper())


def is_ground_truth(path: str | os.PathLike) -> bool:
    """True for a ground-truth file name: ``GT.ext``, ``<anything>_GT.ext`` or ``<anything>-GT.ext``
    (any case); such a file in a stack folder is not a frame."""
    stem = Path(path).stem.upper()
    return stem == "GT" or stem.endswith("_GT") or stem.endswith("-GT")


def _stack_item(folder: Path) -> tuple[DatasetItem | None, str | None]:
    files = sorted(p for p in folder.iterdir() if _is_image(p))
    gt = [p for p in files if is_ground_truth(p)]
    frames = [p for p in files if p not in gt]
    if len(frames) < 2:
        return None, f"{folder}: stack folder has {len(frames)} frame(s); need at least 2"
    if len(gt) > 1:
        return None, f"{folder}: more than one ground-truth file ({', '.join(p.name for p in gt)})"
    return DatasetItem(folder.name, frames, gt[0] if gt else None, "stack"), None


def discover(root: str | Path) -> Dataset:
    """Find the items of a dataset folder (see the module docstring for the layouts)."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: dataset folder not found")
    dataset = Dataset(root)
    groups: dict[str, dict[str, Path]] = {}
    for path in sorted(root.iterdir()):
        if path.is_dir():
            if path.name.lower() in SIDE_FOLDERS:
                continue
            if any(_is_image(p) for p in path.iterdir()):
                item, problem = _stack_item(path)
                if item:
                    dataset.items.append(item)
                else:
                    dataset.problems.append(problem)
            continue
        if not _is_image(path):
            continue
        match = _TAGGED.match(path.stem)
        if not match:
            dataset.problems.append(f"{path}: name has no source tag (_A/_B, _1/_2, _GT); skipped")
            continue
        tag = match["tag"].upper()
        group = groups.setdefault(match["name"], {})
        if tag in group:
            dataset.problems.append(f"{path}: duplicate tag {tag} for '{match['name']}' (also {group[tag].name}); skipped")
            continue
        group[tag] = path
    for name, tagged in groups.items():
        gt = tagged.pop("GT", None)
        sources = [tagged[t] for t in sorted(tagged, key=_tag_key)]
        if len(sources) < 2:
            have = ", ".join(p.name for p in sources) or "none"
            dataset.problems.append(f"{root / name}: needs at least 2 sources (e.g. {name}_A and {name}_B), found {have}")
            continue
        dataset.items.append(DatasetItem(name, sources, gt, "pair" if len(sources) == 2 else "series"))
    dataset.items.sort(key=lambda it: it.name)
    if not dataset.items and not dataset.problems:
        dataset.problems.append(f"{root}: no images found")
    return dataset
