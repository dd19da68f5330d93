"""Sharp photos (with optional masks and alpha mattes) to synthesise multi-focus data from.

:class:`PhotoSource` scans a folder and pairs every photo with its masks by file stem. Layouts
(checked in this order):

1. ``images/`` — photos in ``images/`` or in split subfolders ``images/<split>/`` (BSDS500).
   Without ``split`` every split except ``test`` is used: the test split is held out for the
   dev evaluation set. Label maps come from ``segmentations/``, ``instance_masks/`` or
   ``masks/`` (each optionally with the same split subfolders), mattes from ``alpha/``.
2. ``input/`` + ``alpha/`` — alpha-matting layout (``trimap*`` folders are ignored).
3. photos directly in the folder (not recursive), with optional ``masks/``, ``segmentations/``,
   ``instance_masks/`` and ``alpha/`` subfolders.
4. otherwise every subfolder that matches 1-3 (e.g. ``shared/data/train`` = BSDS500 + COCO128 +
   alpha matting), combined.

A mask belongs to photo ``<stem>`` when it is named ``<stem>.<ext>`` or ``<stem>_<k>.<ext>``
(several human segmentations). A label map is an integer image where each distinct value is one
segment (0 is a segment like any other: COCO's background); RGB label maps are read as one segment
per colour. Mattes are grey images in [0, 1].

Photos are decoded on demand and kept in a bounded in-memory cache (8-bit photos as uint8), so
random access over a training set of a few hundred photos costs one decode per photo per process.

Bad input raises :class:`mfif.errors.InputError` with a one-line message naming the file: a
missing, empty or unreadable folder, a file that is not an image, a mask whose size differs from
its photo's, and (via :meth:`PhotoSource.require_min_side`) photos smaller than the crop.
"""
from __future__ import annotations

import os
import re
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from mfif.errors import InputError
from mfif.io import IMAGE_SUFFIXES, read_image_with_info
from mfif.pixel_budget import pillow_open

_LABEL_DIRS = ("segmentations", "instance_masks", "masks")
_ALPHA_DIRS = ("alpha",)
_HELD_OUT_SPLITS = ("test",)
_K_SUFFIX = re.compile(r"^(.*)_(\d+)$")


@dataclass(frozen=True)
class PhotoEntry:
    """One photo and the files that go with it.

    Attributes:
        image: the photo file.
        label_maps: segmentation / instance label maps (possibly several annotators).
        alpha: an alpha matte (foreground coverage), or None.
        collection: the folder it came from (``bsds500``, ``coco128-seg``, ...).
        size: (H, W) read from the file header (EXIF orientation applied), (0, 0) if unchecked.
    """

    image: Path
    label_maps: tuple[Path, ...] = ()
    alpha: Path | None = None
    collection: str = ""
    size: tuple[int, int] = (0, 0)

    @property
    def name(self) -> str:
        return f"{self.collection}/{self.image.stem}" if self.collection else self.image.stem


def _image_files(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                      and not p.name.startswith("."))
    except PermissionError:
        raise InputError(f"{folder}: folder is not readable (permission denied)") from None


def _subdirs(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    except PermissionError:
        raise InputError(f"{folder}: folder is not readable (permission denied)") from None


def _masks_by_stem(folders: Sequence[Path], stems: set[str]) -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = {}
    seen: set[Path] = set()
    for folder in folders:
        if folder in seen or not folder.is_dir():
            continue
        seen.add(folder)
        for p in _image_files(folder):
            stem = p.stem
            if stem not in stems:
                m = _K_SUFFIX.match(stem)
                if not (m and m.group(1) in stems):
                    continue
                stem = m.group(1)
            out.setdefault(stem, []).append(p)
    for v in out.values():
        v.sort(key=lambda p: (len(p.stem), p.stem))
    return out


def _entries(images: list[Path], label_dirs: list[Path], alpha_dirs: list[Path], collection: str) -> list[PhotoEntry]:
    stems = {p.stem for p in images}
    labels = _masks_by_stem(label_dirs, stems)
    alphas = _masks_by_stem(alpha_dirs, stems)
    return [PhotoEntry(image=p, label_maps=tuple(labels.get(p.stem, ())),
                       alpha=(alphas.get(p.stem) or [None])[0], collection=collection) for p in images]


def _split_dirs(base: Path, splits: Sequence[str] | None) -> list[Path]:
    """``base/<split>`` folders to use, or [base] when ``base`` has no split subfolders."""
    subs = [d for d in _subdirs(base) if _image_files(d)]
    if not subs:
        if splits:
            raise InputError(f"{base}: no split {splits[0]!r} (the folder has no split subfolders)")
        return [base]
    names = [d.name for d in subs]
    if splits is None:
        chosen = [d for d in subs if d.name not in _HELD_OUT_SPLITS]
        return chosen or subs
    missing = [s for s in splits if s not in names]
    if missing:
        raise InputError(f"{base}: no split {missing[0]!r} (found: {', '.join(names)})")
    return [base / s for s in splits]


def _scan_one(root: Path, splits: Sequence[str] | None) -> list[PhotoEntry] | None:
    name = root.name
    if (root / "images").is_dir():
        entries = []
        for d in _split_dirs(root / "images", splits):
            sub = d.relative_to(root / "images")  # "." or the split name
            label_dirs = [(root / n / sub) for n in _LABEL_DIRS] + [root / n for n in _LABEL_DIRS]
            alpha_dirs = [(root / n / sub) for n in _ALPHA_DIRS] + [root / n for n in _ALPHA_DIRS]
            entries += _entries(_image_files(d), label_dirs, alpha_dirs, name)
        return entries
    if splits and ((root / "input").is_dir() or _image_files(root)):
        raise InputError(f"{root}: no split {splits[0]!r} (only folders with images/<split>/ have splits)")
    if (root / "input").is_dir() and (root / "alpha").is_dir():
        return _entries(_image_files(root / "input"), [root / n for n in _LABEL_DIRS],
                        [root / n for n in _ALPHA_DIRS], name)
    files = _image_files(root)
    if files:
        return _entries(files, [root / n for n in _LABEL_DIRS], [root / n for n in _ALPHA_DIRS], name)
    return None


def scan_folder(root: str | os.PathLike, *, split: str | Sequence[str] | None = None) -> list[PhotoEntry]:
    """Find the photos (and their masks) under ``root``; see the module docstring for layouts."""
    root = Path(root)
    if not root.exists():
        raise InputError(f"{root}: source folder not found")
    if not root.is_dir():
        raise InputError(f"{root}: is a file, not a folder of photos")
    if not os.access(root, os.R_OK | os.X_OK):
        raise InputError(f"{root}: folder is not readable (permission denied)")
    splits = [split] if isinstance(split, str) else (list(split) if split is not None else None)
    entries = _scan_one(root, splits)
    if entries is None:
        entries, split_error = [], None
        for sub in _subdirs(root):
            if sub.name in _LABEL_DIRS + _ALPHA_DIRS:
                continue
            try:
                found = _scan_one(sub, splits)
            except InputError as exc:
                if splits is None:
                    raise
                split_error = split_error or exc
                continue  # a requested split exists only in some collections
            entries += found or []
        if not entries and split_error is not None:
            raise split_error
    if not entries:
        raise InputError(f"{root}: no photos found (looked for {', '.join(IMAGE_SUFFIXES)} files in the folder, "
                         "images/, input/ or its subfolders)")
    return entries


def _header_size(path: Path) -> tuple[int, int]:
    """(H, W) from the file header, EXIF orientation applied."""
    from PIL import Image, UnidentifiedImageError

    try:
        if path.stat().st_size == 0:
            raise InputError(f"{path}: file is empty (0 bytes)")
        with pillow_open(path) as im:
            w, h = im.size
            try:
                orientation = im.getexif().get(0x0112)
            except Exception:  # damaged EXIF: the pixels may still be fine
                orientation = None
    except InputError:
        raise
    except PermissionError:
        raise InputError(f"{path}: file is not readable (permission denied)") from None
    except UnidentifiedImageError:
        raise InputError(f"{path}: not an image file (or an unsupported format)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{path}: cannot read image header ({exc})") from None
    return (w, h) if orientation in (5, 6, 7, 8) else (h, w)


def read_label_map(path: str | os.PathLike) -> np.ndarray:
    """Read a segmentation / instance label map as (H, W) int32 (one value per segment)."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with pillow_open(path) as im:
            im.load()
            if im.mode in ("RGB", "RGBA"):
                rgb = np.asarray(im.convert("RGB")).astype(np.int32)
                return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
            if im.mode == "LA":
                im = im.getchannel(0)
            arr = np.asarray(im)
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except UnidentifiedImageError:
        raise InputError(f"{path}: not an image file (or an unsupported format)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{path}: cannot decode label map ({exc})") from None
    if arr.ndim != 2:
        raise InputError(f"{path}: label map must be a single-channel image, got shape {arr.shape}")
    if np.issubdtype(arr.dtype, np.floating):
        raise InputError(f"{path}: label map must hold integers, got {arr.dtype}")
    return arr.astype(np.int32)


class _Cache:
    """A small LRU cache bounded in bytes (per process)."""

    def __init__(self, max_bytes: int):
        self.max_bytes = int(max_bytes)
        self.items: OrderedDict = OrderedDict()
        self.nbytes = 0

    def get(self, key):
        if key in self.items:
            self.items.move_to_end(key)
            return self.items[key]
        return None

    def put(self, key, value: np.ndarray) -> None:
        size = int(value.nbytes)
        if size > self.max_bytes:
            return
        self.items[key] = value
        self.nbytes += size
        while self.nbytes > self.max_bytes and self.items:
            _, old = self.items.popitem(last=False)
            self.nbytes -= int(old.nbytes)


@dataclass
class PhotoSource:
    """Photos to synthesise from, with their masks (see the module docstring).

    Build it with :meth:`from_folder`; index it with ``0 .. len - 1``.

    Attributes:
        entries: the photos.
        root: the folder they came from (for messages).
        cache_mb: memory for decoded photos and masks in each process.
    """

    entries: list[PhotoEntry]
    root: Path = Path(".")
    cache_mb: float = 512.0
    _cache: _Cache = field(init=False, repr=False)

    def __post_init__(self):
        if not self.entries:
            raise InputError(f"{self.root}: no photos")
        self._cache = _Cache(int(self.cache_mb * 2**20))

    @classmethod
    def from_folder(cls, root: str | os.PathLike, *, split: str | Sequence[str] | None = None, check: bool = True,
                    cache_mb: float = 512.0) -> "PhotoSource":
        """Scan ``root``. With ``check`` every photo's and mask's header is read (fast): files that
        are not images and masks of the wrong size are reported now rather than mid-training."""
        root = Path(root)
        entries = scan_folder(root, split=split)
        if check:
            checked = []
            for e in entries:
                size = _header_size(e.image)
                for m in e.label_maps + ((e.alpha,) if e.alpha else ()):
                    ms = _header_size(m)
                    if ms != size:
                        raise InputError(f"{m}: mask size {ms[1]}x{ms[0]} differs from its photo {e.image} "
                                         f"({size[1]}x{size[0]})")
                checked.append(PhotoEntry(e.image, e.label_maps, e.alpha, e.collection, size))
            entries = checked
        return cls(entries=entries, root=root, cache_mb=cache_mb)

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> PhotoEntry:
        return self.entries[index]

    def __getstate__(self):  # do not ship the cache to worker processes
        state = self.__dict__.copy()
        state["_cache"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._cache = _Cache(int(self.cache_mb * 2**20))

    # ------------------------------------------------------------------------------------------
    def subset(self, indices: Sequence[int]) -> "PhotoSource":
        sub = PhotoSource(entries=[self.entries[i] for i in indices], root=self.root, cache_mb=self.cache_mb)
        sub._cache = self._cache  # share decoded photos
        return sub

    def require_min_side(self, side: int, what: str = "crop") -> "PhotoSource":
        """Keep photos whose shorter side is at least ``side`` pixels (warn about the others).

        Raises InputError when none is left. Photos not checked at scan time are kept.
        """
        small = [i for i, e in enumerate(self.entries) if e.size != (0, 0) and min(e.size) < side]
        if not small:
            return self
        if len(small) == len(self.entries):
            big = max(self.entries, key=lambda e: min(e.size))
            raise InputError(f"{self.root}: all {len(self.entries)} photos are smaller than the {side}x{side} {what} "
                             f"(largest: {big.image}, {big.size[1]}x{big.size[0]})")
        e = self.entries[small[0]]
        warnings.warn(f"{self.root}: skipping {len(small)} of {len(self.entries)} photos smaller than the "
                      f"{side}x{side} {what} (e.g. {e.image}, {e.size[1]}x{e.size[0]})", stacklevel=2)
        keep = sorted(set(range(len(self.entries))) - set(small))
        return self.subset(keep)

    def derived(self, key, make):
        """Memoise ``make()`` (an array derived deterministically from the photos) in the cache."""
        key = ("derived",) + tuple(key)
        arr = self._cache.get(key)
        if arr is None:
            arr = make()
            self._cache.put(key, arr)
        return arr

    def with_alpha(self) -> list[int]:
        return [i for i, e in enumerate(self.entries) if e.alpha is not None]

    def without_alpha(self) -> list[int]:
        return [i for i, e in enumerate(self.entries) if e.alpha is None]

    # ------------------------------------------------------------------------------------------
    def raw_image(self, index: int) -> np.ndarray:
        """The decoded photo as stored in the cache: (H, W, 3) uint8 (8-bit files) or float32."""
        e = self.entries[index]
        key = ("img", e.image)
        arr = self._cache.get(key)
        if arr is None:
            img, info = read_image_with_info(e.image)
            if img.shape[0] == 1:
                img = np.repeat(img, 3, axis=0)
            hwc = np.moveaxis(img, 0, -1)
            arr = (np.round(hwc * 255.0).astype(np.uint8) if info.bit_depth == 8
                   else np.ascontiguousarray(hwc, dtype=np.float32))
            self._cache.put(key, arr)
        return arr

    def image_region(self, index: int, box: tuple[int, int, int, int]) -> np.ndarray:
        """The (y0, x0, height, width) region of the photo as (h, w, 3) float32 in [0, 1]."""
        y0, x0, h, w = box
        arr = self.raw_image(index)[y0:y0 + h, x0:x0 + w]
        if arr.dtype == np.uint8:
            return arr.astype(np.float32) * np.float32(1.0 / 255.0)
        return arr.copy()

    def image(self, index: int) -> np.ndarray:
        """The photo as (H, W, 3) float32 in [0, 1] (grey photos are replicated to RGB)."""
        arr = self.raw_image(index)
        if arr.dtype == np.uint8:
            return arr.astype(np.float32) * np.float32(1.0 / 255.0)
        return arr.copy()

    def image_size(self, index: int) -> tuple[int, int]:
        """(H, W) of the photo (from the header when checked, else by decoding it)."""
        e = self.entries[index]
        return e.size if e.size != (0, 0) else self.raw_image(index).shape[:2]

    def _check_size(self, index: int, path: Path, shape: tuple[int, ...]) -> None:
        e = self.entries[index]
        ref = self.image_size(index)
        if tuple(shape[:2]) != tuple(ref):
            raise InputError(f"{path}: mask size {shape[1]}x{shape[0]} differs from its photo {e.image} "
                             f"({ref[1]}x{ref[0]})")

    def label_map(self, index: int, k: int = 0) -> np.ndarray:
        """The k-th label map of photo ``index`` as (H, W) int32 (see :func:`read_label_map`)."""
        path = self.entries[index].label_maps[k]
        key = ("lab", path)
        arr = self._cache.get(key)
        if arr is None:
            arr = read_label_map(path)
            self._check_size(index, path, arr.shape)
            arr = arr.astype(np.uint8) if arr.min() >= 0 and arr.max() < 256 else arr
            self._cache.put(key, arr)
        return arr.astype(np.int32)

    def alpha(self, index: int) -> np.ndarray | None:
        """The alpha matte as (H, W) float32 in [0, 1], or None."""
        path = self.entries[index].alpha
        if path is None:
            return None
        key = ("alpha", path)
        arr = self._cache.get(key)
        if arr is None:
            img, info = read_image_with_info(path)
            a = img.mean(axis=0) if img.shape[0] > 1 else img[0]
            self._check_size(index, path, a.shape)
            arr = np.round(a * 255.0).astype(np.uint8) if info.bit_depth == 8 else a.astype(np.float32)
            self._cache.put(key, arr)
        return arr.astype(np.float32) * np.float32(1.0 / 255.0) if arr.dtype == np.uint8 else arr.copy()


__all__ = ["PhotoEntry", "PhotoSource", "scan_folder", "read_label_map"]
