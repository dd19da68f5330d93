"""JPEG frames are decoded by OpenCV (faster); the samples must be Pillow's, bit for bit."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from mfif.errors import InputError
from mfif.io import read_samples_with_info
from tests.helpers import textured_image


@pytest.mark.parametrize("mode", ["RGB", "L"])
@pytest.mark.parametrize("progressive", [False, True])
def test_jpeg_samples_equal_pillows(tmp_path, mode, progressive):
    image = np.round(np.moveaxis(textured_image(61, 83, 3, seed=2), 0, -1) * 255).astype(np.uint8)
    path = tmp_path / "f.jpg"
    Image.fromarray(image).convert(mode).save(path, quality=90, progressive=progressive, subsampling=2)
    samples, info = read_samples_with_info(path)
    with Image.open(path) as im:
        expected = np.asarray(im)
    assert samples.dtype == np.uint8 and info.bit_depth == 8
    np.testing.assert_array_equal(samples, expected)


def test_truncated_jpeg_is_still_refused(tmp_path):
    image = np.round(np.moveaxis(textured_image(64, 64, 3, seed=3), 0, -1) * 255).astype(np.uint8)
    path = tmp_path / "t.jpg"
    Image.fromarray(image).save(path, quality=90)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(InputError, match="truncated or corrupt"):
        read_samples_with_info(path)
