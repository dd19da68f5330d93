"""Camera RAW frames (NEF, CR2, CR3, ARW, DNG, ...) through LibRaw (the ``rawpy`` binding).

Install with ``pip install "mfif[raw]"``. A RAW frame is demosaiced to a 16-bit image with these
defaults (:class:`RawOptions`), chosen so that fusion sees the sensor's data without tone changes:

- ``colour="linear"``: linear (gamma 1) values in sRGB primaries, the camera's white balance, no
  automatic brightening (a frame keeps its exposure, so frames of one stack stay comparable);
  ``colour="camera"``: the camera's own RGB (no colour matrix), still linear and white balanced.
- 16 bits per channel; the fused result of a RAW stack is written at 16 bits by default
  (:attr:`mfif.io.ImageInfo.bit_depth` is 16).
- demosaicing: LibRaw's AHD; the camera's orientation flag is applied (pixels come out upright).

The sensor size from the file header is checked against :mod:`mfif.pixel_budget` before the
data is unpacked. Set the options for a process with :func:`set_raw_options`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mfif.errors import InputError
from mfif.pixel_budget import check_pixels

RAW_SUFFIXES = (".dng", ".nef", ".nrw", ".cr2", ".cr3", ".crw", ".arw", ".srf", ".sr2", ".raf", ".orf",
                ".rw2", ".pef", ".srw", ".x3f", ".3fr", ".iiq", ".erf", ".kdc", ".mrw", ".raw", ".rwl")


@dataclass
class RawOptions:
    """How RAW frames are developed (see the module docstring for the defaults)."""

    colour: str = "linear"  # "linear" (sRGB primaries, gamma 1) or "camera" (camera RGB, gamma 1)
    camera_white_balance: bool = True


_options = RawOptions()


def set_raw_options(options: RawOptions) -> None:
    """Use ``options`` for every RAW frame read in this process."""
    global _options
    if options.colour not in ("linear", "camera"):
        raise InputError(f"RAW colour must be 'linear' or 'camera', got '{options.colour}'")
    _options = options


def is_raw(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in RAW_SUFFIXES


def read_raw(path: str | os.PathLike) -> np.ndarray:
    """Demosaic a RAW file: uint16 (H, W, 3), linear, per :class:`RawOptions`."""
    path = Path(path)
    try:
        import rawpy
    except ImportError:
        raise InputError(f"{path}: reading camera RAW files needs rawpy (pip install \"mfif[raw]\")") from None
    try:
        raw = rawpy.imread(str(path))
    except rawpy.LibRawFileUnsupportedError:
        raise InputError(f"{path}: not a RAW file LibRaw can read (unsupported or not a camera RAW)") from None
    except (rawpy.LibRawError, OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read RAW file ({exc.__class__.__name__}: {exc})") from None
    with raw:
        sizes = raw.sizes
        check_pixels(path, sizes.raw_width, sizes.raw_height, "RAW sensor")
        check_pixels(path, sizes.width, sizes.height, "RAW image")
        o = _options
        try:
            rgb = raw.postprocess(
                output_bps=16, gamma=(1, 1), no_auto_bright=True, use_camera_wb=o.camera_white_balance,
                output_color=rawpy.ColorSpace.raw if o.colour == "camera" else rawpy.ColorSpace.sRGB,
                demosaic_algorithm=rawpy.DemosaicAlgorithm.AHD)
        except (rawpy.LibRawError, OSError, ValueError, MemoryError) as exc:
            raise InputError(f"{path}: cannot decode RAW data ({exc.__class__.__name__}: {exc})") from None
    arr = np.ascontiguousarray(rgb)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.size == 0:
        raise InputError(f"{path}: RAW decoding gave an image of shape {arr.shape}, expected (H, W, 3)")
    return arr
