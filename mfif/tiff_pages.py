"""TIFF reading with the pixel budget, and multi-page / OME-TIFF z-stacks as stacks of frames.

A microscope writes a focal series as one multi-page (often OME- or ImageJ-) TIFF: each page of the
file's first series is one frame. :func:`tiff_frame_count` says how many frames a file holds and
:class:`TiffFrame` names one of them; it is path-like (``os.fspath`` gives the file), so the rest
of mfif treats it as a file, and :func:`mfif.io.read_image_with_info` reads just that page.

Every page's declared size is checked against :mod:`mfif.pixel_budget` before it is decoded (the
header of a 2 MB tiled, compressed TIFF can declare 30000 x 30000), tiles included.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mfif.errors import InputError
from mfif.pixel_budget import check_pixels

_RESOLUTION_UNITS = {1: "none", 2: "inch", 3: "cm"}


class TiffFrame(os.PathLike):
    """Page ``index`` of the first series of the TIFF at ``path`` (a frame of a z-stack)."""

    def __init__(self, path: str | os.PathLike, index: int):
        self.path = Path(path)
        self.index = int(index)

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return f"{self.path}[page {self.index + 1}]"

    def __repr__(self) -> str:
        return f"TiffFrame({str(self.path)!r}, {self.index})"

    def __eq__(self, other) -> bool:
        return isinstance(other, TiffFrame) and (self.path, self.index) == (other.path, other.index)

    def __hash__(self) -> int:
        return hash((self.path, self.index))


def _open(path: Path):
    import tifffile

    try:
        tif = tifffile.TiffFile(str(path))
        if not tif.series:
            tif.close()
            raise InputError(f"{path}: cannot read TIFF (no image data found)")
        return tif
    except InputError:
        raise
    except Exception as exc:  # tifffile raises many types for damaged files
        raise InputError(f"{path}: cannot read TIFF ({exc.__class__.__name__}: {exc})") from None


def tiff_frame_count(path: str | os.PathLike) -> int:
    """Number of frames (pages of the first series) in a TIFF file; 1 for a plain image.

    A hyperstack with more than one axis besides the image's own (e.g. OME ``ZCYX``: focus and
    fluorescence channels) is refused: which pages form the focal series is not for mfif to guess."""
    path = Path(path)
    with _open(path) as tif:
        series = tif.series[0]
        extra = [f"{axis}={n}" for axis, n in zip(series.axes, series.shape) if axis not in "YXS" and n > 1]
        if len(extra) > 1:
            raise InputError(f"{path}: a {series.axes} hyperstack ({', '.join(extra)}); mfif fuses one focal "
                             "series: save one channel / time point per file")
        return max(1, len(series))


def read_tiff(path: str | os.PathLike, index: int | None = None) -> tuple[np.ndarray, dict]:
    """Read one frame of a TIFF: (H, W) or (H, W, C) array plus metadata.

    Args:
        index: the page of the first series; None = the file must hold one image.

    Returns:
        (array, meta) with meta keys ``icc`` (bytes or None) and ``resolution``
        ((x, y, unit) with unit 'inch', 'cm' or 'none'; or None).
    """
    path = Path(path)
    with _open(path) as tif:
        series = tif.series[0]
        n = max(1, len(series))
        if index is None and n > 1:
            raise InputError(f"{path}: a multi-page TIFF ({n} frames); give it as a stack "
                             "(mfif fuse FILE.tif) or one frame per file")
        index = 0 if index is None else index
        if not 0 <= index < n:
            raise InputError(f"{path}: has {n} frame(s), page {index + 1} requested")
        try:
            page = series.pages[index] if n > 1 else series.keyframe
            key = getattr(page, "keyframe", None) or page
            check_pixels(path, key.imagewidth, key.imagelength, "TIFF page")
            if key.is_tiled:
                check_pixels(path, key.tilewidth, key.tilelength, "TIFF tile")
            if key.samplesperpixel > 4:
                raise InputError(f"{path}: TIFF page with {key.samplesperpixel} samples per pixel "
                                 "(expected grey, RGB or RGBA)")
            arr = np.asarray(series.asarray(key=index) if n > 1 else series.asarray())
        except InputError:
            raise
        except Exception as exc:
            raise InputError(f"{path}: cannot read TIFF ({exc.__class__.__name__}: {exc})") from None
        meta = {"icc": None, "resolution": None}
        icc = key.tags.get(34675)
        if icc is not None and isinstance(icc.value, (bytes, bytearray)) and icc.value:
            meta["icc"] = bytes(icc.value)
        try:
            x, y = key.resolution
            unit = _RESOLUTION_UNITS.get(int(key.resolutionunit), "none")
            if key.tags.get(282) is not None and x > 0 and y > 0:
                meta["resolution"] = (float(x), float(y), unit)
        except (TypeError, ValueError, ZeroDivisionError):
            pass
    if arr.size == 0:
        raise InputError(f"{path}: cannot read TIFF (no image data found)")
    if arr.ndim == 3 and arr.shape[0] in (3, 4) and arr.shape[2] not in (3, 4):
        arr = np.moveaxis(arr, 0, -1)  # planar configuration
    if arr.ndim not in (2, 3):
        raise InputError(f"{path}: TIFF with shape {arr.shape} is not a single 2-D image")
    return arr, meta
