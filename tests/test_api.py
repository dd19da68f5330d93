"""The Python API: mfif.fuse with arrays/paths, options checked, result fields."""
from __future__ import annotations

import numpy as np
import pytest

import mfif
from mfif.errors import InputError
from mfif.methods import METHODS, get_method
from tests.helpers import complementary_pair, textured_image


def test_fuse_arrays_channels_last_and_first_agree():
    gt = textured_image(40, 48, 3)
    a, b, _ = complementary_pair(gt)
    first = mfif.fuse([a, b], method="gff").fused
    last = mfif.fuse([np.moveaxis(a, 0, -1), np.moveaxis(b, 0, -1)], method="gff").fused
    np.testing.assert_array_equal(first, last)
    stacked = mfif.fuse(np.stack([a, b]), method="gff").fused
    np.testing.assert_array_equal(first, stacked)


def test_uint8_input_is_scaled():
    a = np.full((8, 8), 255, np.uint8)
    b = np.zeros((8, 8), np.uint8)
    assert mfif.fuse([a, b], method="average").fused.max() == pytest.approx(0.5)


def test_options_are_checked_and_applied():
    gt = textured_image(64, 64, 1)
    a, b, _ = complementary_pair(gt)
    with pytest.raises(InputError, match="has no option"):
        mfif.fuse([a, b], method="sml", nonsense=1)
    r0 = mfif.fuse([a, b], method="sml", guided_radius=0)
    assert set(np.unique(r0.weights)) <= {0.0, 1.0}  # no refinement: hard weights
    r1 = mfif.fuse([a, b], method="sml")
    assert 0 < r1.weights.min() or r1.weights.max() < 1 or not np.array_equal(r0.weights, r1.weights)


def test_result_metadata_and_table():
    r = mfif.fuse([textured_image(16, 16, 1)] * 2, method="average")
    assert r.info["method"] == "average" and r.info["bit_depth"] == 16 and r.info["seconds"] >= 0
    for name, spec in METHODS.items():
        assert spec.name == name and spec.summary and spec.kind in ("classical", "learned")
    with pytest.raises(InputError, match="unknown method"):
        get_method("nope")


def test_single_path_is_refused(tmp_path):
    with pytest.raises(InputError, match="single file"):
        mfif.fuse(str(tmp_path / "a.png"))
