"""Carry an ICC colour profile and the pixel resolution from the reference frame to the output.

The fused image has the reference frame's colours and geometry, so its embedded ICC profile (how
the numbers map to colours; wide-gamut and camera profiles are common) and its resolution (dots
per inch, or pixels per centimetre for a microscope) describe the output too. Readers in
:mod:`mfif.io` record them in :class:`mfif.io.ImageInfo` (``icc``, ``resolution``); the writer
embeds them: TIFF tags 34675 / 282-283-296, PNG ``iCCP`` and ``pHYs`` chunks, JPEG ``APP2
ICC_PROFILE`` segments and the JFIF density.

A resolution is ``(x, y, unit)``: pixels per unit along x and y, unit 'inch', 'cm' or 'none'.
"""
from __future__ import annotations

import struct
import zlib

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_ICC_CHUNK = 65519  # 65535 - 2 (length) - 12 ('ICC_PROFILE\0') - 2 (sequence, count)


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)


def _per_metre(value: float, unit: str) -> int:
    return int(round(value / 0.0254)) if unit == "inch" else int(round(value * 100)) if unit == "cm" else int(round(value))


def _add_png(data: bytes, icc: bytes | None, resolution) -> bytes:
    if data[:8] != _PNG_SIGNATURE or data[12:16] != b"IHDR":
        return data
    pos = 8 + 12 + struct.unpack(">I", data[8:12])[0]  # after IHDR
    extra = b""
    if icc:
        extra += _png_chunk(b"iCCP", b"icc\x00\x00" + zlib.compress(icc))
    if resolution:
        x, y, unit = resolution
        extra += _png_chunk(b"pHYs", struct.pack(">IIB", _per_metre(x, unit), _per_metre(y, unit), 0 if unit == "none" else 1))
    return data[:pos] + extra + data[pos:]


def _add_jpeg(data: bytes, icc: bytes | None, resolution) -> bytes:
    if data[:2] != b"\xff\xd8":
        return data
    out = bytearray(data)
    if resolution and out[2:4] == b"\xff\xe0" and out[6:11] == b"JFIF\x00":
        x, y, unit = resolution
        units = {"inch": 1, "cm": 2}.get(unit, 0)
        if 0 < x < 65536 and 0 < y < 65536:
            struct.pack_into(">BHH", out, 13, units, int(round(x)), int(round(y)))
    if icc:
        pos = 2
        while out[pos:pos + 1] == b"\xff" and 0xE0 <= out[pos + 1] <= 0xEF:  # after the APPn segments
            pos += 2 + struct.unpack(">H", out[pos + 2:pos + 4])[0]
        parts = [icc[i:i + _JPEG_ICC_CHUNK] for i in range(0, len(icc), _JPEG_ICC_CHUNK)]
        if len(parts) > 255:
            return bytes(out)
        segments = b"".join(b"\xff\xe2" + struct.pack(">H", 2 + 14 + len(p)) + b"ICC_PROFILE\x00"
                            + bytes([k + 1, len(parts)]) + p for k, p in enumerate(parts))
        out[pos:pos] = segments
    return bytes(out)


def add_colour_metadata(data: bytes, suffix: str, *, icc: bytes | None = None, resolution=None) -> bytes:
    """Embed an ICC profile and a resolution into encoded PNG or JPEG bytes (TIFF: see
    :func:`tiff_arguments`; the TIFF encoder writes them itself)."""
    suffix = suffix.lower()
    if not icc and not resolution:
        return data
    if suffix == ".png":
        return _add_png(data, icc, resolution)
    if suffix in (".jpg", ".jpeg"):
        return _add_jpeg(data, icc, resolution)
    return data


def tiff_arguments(*, icc: bytes | None = None, resolution=None) -> dict:
    """Keyword arguments for ``tifffile.imwrite`` that embed the profile and the resolution."""
    kwargs: dict = {}
    if icc:
        kwargs["iccprofile"] = icc
    if resolution:
        x, y, unit = resolution
        kwargs["resolution"] = (x, y)
        kwargs["resolutionunit"] = {"inch": 2, "cm": 3}.get(unit, 1)
    return kwargs
