"""The pixel budget: the largest frame (width x height, declared in the file header) mfif decodes.

A file's header says how large the image is before any pixel is decoded; a few kilobytes of
compressed data can declare a 30000 x 30000 image (a "decompression bomb") that would need
gigabytes once decoded. Every reader in :mod:`mfif.io` asks :func:`check_pixels` with the declared
size first and refuses, in one line, a frame over the budget, whatever the format (PNG, JPEG,
TIFF pages, RAW, ...). The budget replaces Pillow's own ``MAX_IMAGE_PIXELS`` check (a warning at
89 MP, an error at 179 MP) for the files mfif reads, so one limit applies to every format.

The default, 2**28 pixels (268 MP, e.g. 16384 x 16384), admits the largest real stitched or
scanned frames and refuses bombs; one float32 RGB frame of that size is 3.2 GB. Change it with
``mfif ... --max-pixels N``, the environment variable ``MFIF_MAX_PIXELS`` or
:func:`set_max_pixels` (0 = no limit).
"""
from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from pathlib import Path

from mfif.errors import InputError

DEFAULT_MAX_PIXELS = 1 << 28
_max_pixels: int | None = None  # None: not set in this process (environment or default)
_PILLOW_LOCK = threading.Lock()


def max_pixels() -> int:
    """The budget now in force (0 = no limit)."""
    if _max_pixels is not None:
        return _max_pixels
    env = os.environ.get("MFIF_MAX_PIXELS")
    if env:
        return parse_max_pixels(env, source="MFIF_MAX_PIXELS")
    return DEFAULT_MAX_PIXELS


def parse_max_pixels(text: str, *, source: str = "--max-pixels") -> int:
    """'268435456', '250e6', '250M' or '0' -> a pixel count (0 = no limit)."""
    s = str(text).strip().upper().replace("_", "")
    scale = 1
    if s.endswith("M"):
        s, scale = s[:-1], 1_000_000
    try:
        value = int(float(s) * scale)
    except ValueError:
        raise InputError(f"{source}: expected a pixel count such as 250000000 or 250M, got '{text}'") from None
    if value < 0:
        raise InputError(f"{source}: must be 0 (no limit) or positive, got '{text}'")
    return value


def set_max_pixels(value: int | str | None) -> None:
    """Set the budget for this process (None: back to ``MFIF_MAX_PIXELS`` or the default)."""
    global _max_pixels
    _max_pixels = None if value is None else (parse_max_pixels(value) if isinstance(value, str) else int(value))


def check_pixels(path: str | os.PathLike, width: int, height: int, what: str = "image") -> None:
    """Refuse a declared (width, height) over the budget or not positive, before decoding."""
    limit = max_pixels()
    width, height = int(width), int(height)
    if width <= 0 or height <= 0:
        raise InputError(f"{path}: {what} declares a size of {width}x{height} (width x height); nothing to read")
    if limit and width * height > limit:
        raise InputError(
            f"{path}: {what} declares {width}x{height} (width x height) = {_megapixels(width * height)}, over the "
            f"pixel budget of {_megapixels(limit)} (raise it with --max-pixels or MFIF_MAX_PIXELS if the file is genuine)")


def _megapixels(pixels: int) -> str:
    return f"{pixels / 1e6:.3g} MP" if pixels >= 1_000_000 else f"{pixels} pixels"


@contextmanager
def pillow_open(path: Path):
    """``PIL.Image.open`` with the budget checked on the header size instead of Pillow's limit.

    Pillow's decompression-bomb check reads a module global; it is switched off only for the
    header read (under a lock, restored at once) because :func:`check_pixels` runs right after.
    """
    from PIL import Image

    with _PILLOW_LOCK:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            im = Image.open(path)
        finally:
            Image.MAX_IMAGE_PIXELS = saved
    try:
        w, h = im.size
        check_pixels(path, w, h)
        yield im
    finally:
        im.close()
