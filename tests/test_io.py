"""Image IO: formats, bit depths, orientation, and every bad input with a one-line message."""
from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
from PIL import Image

from mfif.errors import InputError, OutputError
from mfif.io import as_stack, expand_inputs, read_image, read_image_with_info, read_stack, write_image
from tests.helpers import textured_image


def _save_u8(path, arr):
    Image.fromarray(arr).save(path)
    return path


def test_png_8bit_roundtrip(tmp_path):
    img = textured_image(20, 30, 3)
    write_image(tmp_path / "a.png", img, bit_depth=8)
    back, info = read_image_with_info(tmp_path / "a.png")
    assert info.bit_depth == 8 and back.shape == (3, 20, 30) and back.dtype == np.float32
    np.testing.assert_array_equal(back, np.round(img * 255) / np.float32(255))


@pytest.mark.parametrize("suffix", [".png", ".tif"])
@pytest.mark.parametrize("channels", [1, 3])
def test_16bit_roundtrip_is_exact(tmp_path, suffix, channels):
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 65536, size=(17, 23, channels) if channels == 3 else (17, 23), dtype=np.uint16)
    src = tmp_path / f"src{suffix}"
    if suffix == ".tif":
        import tifffile
        tifffile.imwrite(src, raw)
    else:
        import cv2
        cv2.imwrite(str(src), raw[..., ::-1] if channels == 3 else raw)
    img, info = read_image_with_info(src)
    assert info.bit_depth == 16
    out = tmp_path / f"out{suffix}"
    write_image(out, img, bit_depth=16)
    back, _ = read_image_with_info(out)
    again = np.round(back * 65535).astype(np.uint16)
    expected = raw if channels == 1 else raw
    np.testing.assert_array_equal(again[0] if channels == 1 else np.moveaxis(again, 0, -1), expected)


def test_grey_jpeg_and_rgba_warning(tmp_path):
    grey = (textured_image(16, 16, 1)[0] * 255).astype(np.uint8)
    _save_u8(tmp_path / "g.jpg", grey)
    assert read_image(tmp_path / "g.jpg").shape == (1, 16, 16)
    rgba = np.dstack([(np.moveaxis(textured_image(16, 16, 3), 0, -1) * 255).astype(np.uint8),
                      np.full((16, 16), 128, np.uint8)])
    _save_u8(tmp_path / "a.png", rgba)
    with pytest.warns(UserWarning, match="alpha channel dropped"):
        img = read_image(tmp_path / "a.png")
    assert img.shape == (3, 16, 16)
    np.testing.assert_array_equal(np.round(np.moveaxis(img, 0, -1) * 255).astype(np.uint8), rgba[..., :3])


def test_exif_orientation_is_applied(tmp_path):
    arr = np.zeros((10, 20, 3), np.uint8)
    arr[:, :5] = 255  # bright stripe on the left
    im = Image.fromarray(arr)
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90 CW to display
    im.save(tmp_path / "o.jpg", exif=exif, quality=100)
    img = read_image(tmp_path / "o.jpg")
    assert img.shape == (3, 20, 10)  # portrait after orientation
    assert img[:, :5, :].mean() > 0.9 and img[:, -5:, :].mean() < 0.1  # stripe now on top


def test_missing_empty_truncated_and_non_image(tmp_path):
    with pytest.raises(InputError, match="nope.png: file not found"):
        read_image(tmp_path / "nope.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(InputError, match="empty.png: file is empty"):
        read_image(tmp_path / "empty.png")
    _save_u8(tmp_path / "full.png", (textured_image(64, 64, 3).transpose(1, 2, 0) * 255).astype(np.uint8))
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="cut.png: cannot decode image, file truncated or corrupt"):
        read_image(tmp_path / "cut.png")
    Image.fromarray((textured_image(64, 64, 3).transpose(1, 2, 0) * 255).astype(np.uint8)).save(tmp_path / "full.jpg")
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="cut.jpg: cannot decode image"):
        read_image(tmp_path / "cut.jpg")
    (tmp_path / "notes.png").write_text("hello")
    with pytest.raises(InputError, match="notes.png: not an image file"):
        read_image(tmp_path / "notes.png")
    (tmp_path / "bad.tif").write_bytes(b"II*\x00garbage")
    with pytest.raises(InputError, match="bad.tif: cannot read TIFF"):
        read_image(tmp_path / "bad.tif")


def test_unreadable_file(tmp_path, monkeypatch):
    p = _save_u8(tmp_path / "x.png", np.zeros((4, 4), np.uint8))
    p.chmod(0)
    if os.geteuid() == 0:  # root reads anything: simulate the permission check failing
        monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(InputError, match="x.png: file is not readable"):
        read_image(p)


def test_stack_checks(tmp_path):
    a = _save_u8(tmp_path / "a.png", np.zeros((8, 8), np.uint8))
    b = _save_u8(tmp_path / "b.png", np.zeros((8, 9), np.uint8))
    c = _save_u8(tmp_path / "c.png", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(InputError, match=r"need at least 2 frames to fuse, got 1 \(.*a.png\)"):
        read_stack([a])
    with pytest.raises(InputError, match=r"b.png: size 9x8 differs from .*a.png \(8x8\)"):
        read_stack([a, b])
    with pytest.warns(UserWarning, match="converting grey frame"):
        stack = read_stack([a, c])
    assert stack.images.shape == (2, 3, 8, 8)


def test_array_inputs_checked():
    good = np.zeros((8, 8), np.float32)
    with pytest.raises(InputError, match="NaN"):
        as_stack([good, np.full((8, 8), np.nan, np.float32)])
    with pytest.raises(InputError, match="zero size"):
        as_stack([np.zeros((0, 8), np.float32), np.zeros((0, 8), np.float32)])
    with pytest.raises(InputError, match="unsupported pixel type int64"):
        as_stack([np.zeros((8, 8), np.int64), np.zeros((8, 8), np.int64)])
    with pytest.raises(InputError, match=r"must lie in \[0, 1\]"):
        as_stack([good, good + 2])
    with pytest.raises(InputError, match="got 1"):
        as_stack([good])
    s = as_stack(np.zeros((3, 3, 8, 8), np.uint16))
    assert s.images.shape == (3, 3, 8, 8) and s.bit_depth == 16


def test_write_refuses_inputs_and_bad_folders(tmp_path):
    a = _save_u8(tmp_path / "a.png", np.full((4, 4), 7, np.uint8))
    before = a.read_bytes()
    with pytest.raises(OutputError, match="a.png: output path is one of the input files"):
        write_image(a, np.zeros((1, 4, 4), np.float32), inputs=[a])
    assert a.read_bytes() == before
    with pytest.raises(OutputError, match="does not exist"):
        write_image(tmp_path / "missing" / "o.png", np.zeros((1, 4, 4), np.float32))
    with pytest.raises(OutputError, match="unsupported output format"):
        write_image(tmp_path / "o.gif", np.zeros((1, 4, 4), np.float32))


def test_unwritable_folder(tmp_path, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    if os.geteuid() == 0:  # root writes anywhere: simulate the permission check failing
        monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(OutputError, match="not writable"):
        write_image(ro / "o.png", np.zeros((1, 4, 4), np.float32))


def test_atomic_write_leaves_no_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "o.png"
    write_image(target, np.zeros((1, 4, 4), np.float32))
    before = target.read_bytes()

    def boom(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OutputError, match="o.png: cannot write"):
        write_image(target, np.ones((1, 4, 4), np.float32))
    assert target.read_bytes() == before  # old content intact
    assert [p.name for p in tmp_path.iterdir()] == ["o.png"]  # no temp file left


def test_expand_inputs(tmp_path):
    for n in ("b.png", "a.png", "notes.txt"):
        (tmp_path / n).write_bytes(b"x")
    assert [p.name for p in expand_inputs([tmp_path])] == ["a.png", "b.png"]
    assert [p.name for p in expand_inputs([str(tmp_path / "*.png")])] == ["a.png", "b.png"]
    with pytest.raises(InputError, match="matches no files"):
        expand_inputs([str(tmp_path / "*.jpg")])
    (tmp_path / "sub").mkdir()
    with pytest.raises(InputError, match="folder contains no image files"):
        expand_inputs([tmp_path / "sub"])
