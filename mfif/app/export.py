"""Export encoding: the image as PNG/TIFF (8/16-bit) or JPEG with the reference frame's EXIF
(PNG, JPEG; :func:`mfif.io.add_exif`) and ICC profile (PNG ``iCCP`` chunk, JPEG ``APP2
ICC_PROFILE`` segments, TIFF tag 34675), so colour-managed viewers show the colours the camera
recorded."""
from __future__ import annotations

import struct
import zlib

import numpy as np

from mfif.io import add_exif, encode_image, to_integer_image

_ICC_TAG = 34675
_JPEG_ICC_CHUNK = 65519  # 65535 - 2 (length) - 12 ("ICC_PROFILE\0") - 2 (sequence numbers)


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)


def add_icc(data: bytes, suffix: str, icc: bytes | None) -> bytes:
    """Insert an ICC profile into encoded PNG or JPEG bytes (other formats returned unchanged)."""
    if not icc:
        return data
    suffix = suffix.lower()
    if suffix == ".png" and data[:8] == b"\x89PNG\r\n\x1a\n":
        ihdr_end = 8 + 12 + struct.unpack(">I", data[8:12])[0]  # iCCP must precede PLTE and IDAT
        chunk = _png_chunk(b"iCCP", b"icc\x00\x00" + zlib.compress(icc))
        return data[:ihdr_end] + chunk + data[ihdr_end:]
    if suffix in (".jpg", ".jpeg") and data[:2] == b"\xff\xd8":
        parts = [icc[i:i + _JPEG_ICC_CHUNK] for i in range(0, len(icc), _JPEG_ICC_CHUNK)]
        if len(parts) > 255:
            return data
        segments = b"".join(b"\xff\xe2" + struct.pack(">H", 2 + 14 + len(p)) + b"ICC_PROFILE\x00"
                            + bytes([k + 1, len(parts)]) + p for k, p in enumerate(parts))
        pos = 2
        while data[pos:pos + 2] in (b"\xff\xe0", b"\xff\xe1"):  # after JFIF / EXIF
            pos += 2 + struct.unpack(">H", data[pos + 2:pos + 4])[0]
        return data[:pos] + segments + data[pos:]
    return data


def encode_with_metadata(image: np.ndarray, suffix: str, bit_depth: int, *, exif: bytes | None = None,
                         icc: bytes | None = None) -> bytes:
    """float (C, H, W) in [0, 1] -> file bytes for ``suffix`` (.png, .tif, .jpg) with metadata."""
    suffix = suffix.lower()
    if suffix in (".tif", ".tiff"):
        import io

        import tifffile

        arr = to_integer_image(image, bit_depth)
        buf = io.BytesIO()
        extratags = [(_ICC_TAG, 7, len(icc), icc, True)] if icc else []
        tifffile.imwrite(buf, arr, photometric="rgb" if arr.ndim == 3 else "minisblack", extratags=extratags)
        return buf.getvalue()
    return add_icc(add_exif(encode_image(image, suffix, bit_depth), suffix, exif), suffix, icc)
