"""The inputs photographers and microscopists bring (issue 18): multi-page TIFF z-stacks (16-bit
grey, resolution kept), ICC profiles carried from the reference frame, camera RAW (a DNG made
here) through rawpy."""
from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image

from mfif.cli import main
from mfif.errors import InputError
from mfif.io import expand_inputs, read_image, read_image_with_info, write_image
from mfif.pixel_budget import set_max_pixels
from mfif.raw import RawOptions, set_raw_options
from mfif.tiff_pages import TiffFrame
from tests.helpers import complementary_pair, textured_image


@pytest.fixture(autouse=True)
def _default_budget():
    set_max_pixels(None)
    yield
    set_max_pixels(None)


def _icc_profile() -> bytes:
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


# ---------------------------------------------------------------------------------------------
# microscopy z-stacks


def _zstack(path, *, ome=False):
    """A 3-frame 16-bit grey focal series: frame k is sharp in band k and blurred elsewhere."""
    import cv2

    sharp = textured_image(48, 60, 1, seed=5)[0]
    blurred = cv2.GaussianBlur(sharp, (0, 0), 3)
    frames = []
    for k in range(3):
        f = blurred.copy()
        f[k * 16:(k + 1) * 16] = sharp[k * 16:(k + 1) * 16]
        frames.append(np.round(f * 65535).astype(np.uint16))
    frames = np.stack(frames)
    kwargs = dict(photometric="minisblack", resolution=(25000.0, 25000.0), resolutionunit="CENTIMETER")
    if ome:
        tifffile.imwrite(path, frames, ome=True, metadata={"axes": "ZYX"}, **kwargs)
    else:
        tifffile.imwrite(path, frames, **kwargs)
    return frames, np.round(sharp * 65535).astype(np.uint16)


@pytest.mark.parametrize("ome", [False, True])
def test_multipage_tiff_is_a_stack_and_round_trips_16bit_grey(tmp_path, ome):
    frames, sharp = _zstack(tmp_path / "z.tif", ome=ome)
    assert expand_inputs([tmp_path / "z.tif"]) == [TiffFrame(tmp_path / "z.tif", k) for k in range(3)]
    for k in range(3):  # each page reads back exactly
        img, info = read_image_with_info(TiffFrame(tmp_path / "z.tif", k))
        assert info.bit_depth == 16 and img.shape == (1, 48, 60)
        np.testing.assert_array_equal(np.round(img[0] * 65535).astype(np.uint16), frames[k])
    out = tmp_path / "fused.tif"
    assert main(["fuse", str(tmp_path / "z.tif"), "-o", str(out), "-m", "sml", "--no-align", "-q"]) == 0
    with tifffile.TiffFile(out) as tif:
        page = tif.pages[0]
        fused = page.asarray()
        assert fused.dtype == np.uint16 and fused.shape == (48, 60)  # 16-bit grey stays 16-bit grey
        assert page.resolution == (25000.0, 25000.0) and int(page.resolutionunit) == 3  # px per cm
    # the fusion picked each band from its sharp frame (away from the band borders)
    for k in range(3):
        rows = slice(k * 16 + 4, (k + 1) * 16 - 4)
        err = np.abs(fused[rows, 4:-4].astype(np.float64) - sharp[rows, 4:-4]).mean() / 65535
        assert err < 0.01, (k, err)


def test_multipage_tiff_pages_checked_and_named(tmp_path, capsys):
    _zstack(tmp_path / "z.tif")
    with pytest.raises(InputError, match=r"multi-page TIFF \(3 frames\)"):
        read_image(tmp_path / "z.tif")  # one image wanted (e.g. a metric): refused, not guessed
    set_max_pixels(100)
    with pytest.raises(InputError, match=r"z.tif: TIFF page declares 60x48"):
        read_image(TiffFrame(tmp_path / "z.tif", 1))
    assert str(TiffFrame(tmp_path / "z.tif", 1)).endswith("z.tif[page 2]")
    # focus and channel axes together: refused, not guessed
    tifffile.imwrite(tmp_path / "zc.ome.tif", np.zeros((3, 2, 16, 16), np.uint16), ome=True,
                     photometric="minisblack", metadata={"axes": "ZCYX"})
    with pytest.raises(InputError, match=r"zc.ome.tif: a ZCYX hyperstack \(Z=3, C=2\)"):
        expand_inputs([tmp_path / "zc.ome.tif"])
    set_max_pixels(None)
    (tmp_path / "bad.tif").write_bytes(b"II*\x00garbage")
    with pytest.raises(InputError, match="bad.tif: cannot read TIFF"):
        expand_inputs([tmp_path / "bad.tif"])


# ---------------------------------------------------------------------------------------------
# ICC profiles and resolution


@pytest.mark.parametrize("in_suffix", [".png", ".jpg", ".tif"])
@pytest.mark.parametrize("out_suffix", [".png", ".jpg", ".tif"])
def test_icc_profile_of_the_reference_frame_is_carried(tmp_path, in_suffix, out_suffix):
    icc = _icc_profile()
    gt = textured_image(40, 48, 3, seed=7)
    a, b, _ = complementary_pair(gt)
    paths = []
    for name, img in (("a", a), ("b", b)):
        arr = np.round(np.moveaxis(img, 0, -1) * 255).astype(np.uint8)
        p = tmp_path / f"{name}{in_suffix}"
        if in_suffix == ".tif":
            tifffile.imwrite(p, arr, photometric="rgb", iccprofile=icc, resolution=(300.0, 300.0), resolutionunit="INCH")
        else:
            Image.fromarray(arr).save(p, icc_profile=icc, dpi=(300, 300), **({"quality": 95} if in_suffix == ".jpg" else {}))
        paths.append(str(p))
    assert read_image_with_info(paths[0])[1].icc == icc
    out = tmp_path / f"out{out_suffix}"
    assert main(["fuse", *paths, "-o", str(out), "-q"]) == 0
    with Image.open(out) as im:
        assert im.info.get("icc_profile") == icc
        assert tuple(round(float(v)) for v in im.info.get("dpi", (0, 0))) == (300, 300)
    # the pixels are unchanged by the metadata (decoding still works)
    assert read_image(out).shape == (3, 40, 48)


def test_no_profile_means_none_written(tmp_path):
    write_image(tmp_path / "a.png", textured_image(8, 8, 3))
    info = read_image_with_info(tmp_path / "a.png")[1]
    assert info.icc is None
    with Image.open(tmp_path / "a.png") as im:
        assert "icc_profile" not in im.info


# ---------------------------------------------------------------------------------------------
# camera RAW


def _dng(path, cfa: np.ndarray, white: int = 4095):
    """A minimal Bayer (RGGB) DNG: 16-bit CFA data, identity colour matrix, neutral white balance,
    black level 0, white level ``white``; LibRaw reads it like a camera's DNG."""
    tags = [
        (50706, "B", 4, (1, 4, 0, 0), True),  # DNGVersion
        (50707, "B", 4, (1, 1, 0, 0), True),  # DNGBackwardVersion
        (50708, "s", 0, "mfif test camera", True),  # UniqueCameraModel
        (33421, "H", 2, (2, 2), True),  # CFARepeatPatternDim
        (33422, "B", 4, (0, 1, 1, 2), True),  # CFAPattern: R G / G B
        (50714, "I", 1, 0, True),  # BlackLevel
        (50717, "I", 1, white, True),  # WhiteLevel
        (50721, "2i", 9, (1, 1, 0, 1, 0, 1, 0, 1, 1, 1, 0, 1, 0, 1, 0, 1, 1, 1), True),  # ColorMatrix1 = I
        (50778, "H", 1, 21, True),  # CalibrationIlluminant1: D65
        (50728, "2I", 3, (1, 1, 1, 1, 1, 1), True),  # AsShotNeutral
    ]
    tifffile.imwrite(path, cfa, photometric=32803, extratags=tags, subfiletype=0)
    return path


def test_raw_dng_reads_16bit_linear_and_fuses_to_16bit(tmp_path):
    pytest.importorskip("rawpy", reason="rawpy (pip install 'mfif[raw]') is not installed")
    # linear development: a flat CFA at 1000 and 2000 of 4095 -> 1000/4095 and 2000/4095, neutral
    for value in (1000, 2000):
        _dng(tmp_path / f"flat{value}.dng", np.full((32, 48), value, np.uint16))
        img, info = read_image_with_info(tmp_path / f"flat{value}.dng")
        assert info.bit_depth == 16 and img.shape == (3, 32, 48)
        np.testing.assert_allclose(img, value / 4095, atol=2 / 65535)
    # a stack of two textured RAW frames fuses to a 16-bit file by default
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        _dng(tmp_path / f"{name}.dng", (rng.random((32, 48)) * 3000 + 500).astype(np.uint16))
    assert expand_inputs([tmp_path]) == sorted(tmp_path.glob("*.dng"))  # a folder of RAW frames
    out = tmp_path / "fused.png"
    assert main(["fuse", str(tmp_path / "a.dng"), str(tmp_path / "b.dng"), "-o", str(out), "-q"]) == 0
    assert read_image_with_info(out)[1].bit_depth == 16
    # camera RGB (no colour matrix): grey stays the same linear grey, colours differ from sRGB primaries
    out2 = tmp_path / "camera.png"
    assert main(["fuse", str(tmp_path / "a.dng"), str(tmp_path / "b.dng"), "-o", str(out2), "-q",
                 "--raw-colour", "camera"]) == 0
    try:
        np.testing.assert_allclose(read_image(tmp_path / "flat1000.dng"), 1000 / 4095, atol=2 / 65535)
        assert np.abs(read_image(out2) - read_image(out)).max() > 0.05
    finally:
        set_raw_options(RawOptions())


def test_fuse_batch_finds_raw_only_stack_folders(tmp_path):
    pytest.importorskip("rawpy", reason="rawpy (pip install 'mfif[raw]') is not installed")
    rng = np.random.default_rng(1)
    for stack in ("s1", "s2"):
        (tmp_path / "stacks" / stack).mkdir(parents=True)
        for name in ("a", "b"):
            _dng(tmp_path / "stacks" / stack / f"{name}.dng", (rng.random((32, 48)) * 3000 + 500).astype(np.uint16))
    assert main(["fuse", "--batch", str(tmp_path / "stacks"), "-o", str(tmp_path / "out"), "-m", "average", "-q"]) == 0
    for stack in ("s1", "s2"):
        fused, info = read_image_with_info(next((tmp_path / "out").glob(f"{stack}.*")))
        assert fused.shape == (3, 32, 48) and info.bit_depth == 16


def test_raw_errors_are_one_line(tmp_path):
    pytest.importorskip("rawpy", reason="rawpy (pip install 'mfif[raw]') is not installed")
    (tmp_path / "junk.nef").write_bytes(b"not a raw file at all" * 10)
    with pytest.raises(InputError, match="junk.nef: not a RAW file LibRaw can read"):
        read_image(tmp_path / "junk.nef")
    _dng(tmp_path / "x.dng", np.full((32, 48), 100, np.uint16))
    set_max_pixels(1000)
    with pytest.raises(InputError, match=r"x.dng: RAW sensor declares 48x32 .* pixel budget"):
        read_image(tmp_path / "x.dng")
