"""Classical baselines: quality on a synthetic pair with ground truth, symmetry, identity."""
from __future__ import annotations

import numpy as np
import pytest

import mfif
from mfif.io import read_image
from tests.helpers import complementary_pair, psnr, textured_image

CLASSICAL = ["laplacian", "dwt", "gff", "dct-cv", "sml"]
# Every classical method must beat `average` by at least this many dB on a pair made of a sharp
# photo with complementary Gaussian-blurred halves (measured margins are 10-22 dB).
PSNR_MARGIN_DB = 5.0


def _photo(shared) -> np.ndarray:
    path = sorted((shared / "data/train/bsds500/images/test").glob("*.jpg"))[0]
    return read_image(path)


@pytest.mark.parametrize("method", CLASSICAL)
@pytest.mark.parametrize("axis", [0, 1])
def test_beats_average_on_synthetic_texture(method, axis):
    gt = textured_image(128, 160, 3, seed=1)
    a, b, _ = complementary_pair(gt, sigma=2.5, axis=axis)
    base = psnr(mfif.fuse([a, b], method="average").fused, gt)
    fused = mfif.fuse([a, b], method=method).fused
    assert fused.shape == gt.shape and fused.dtype == np.float32
    assert psnr(fused, gt) > base + PSNR_MARGIN_DB, (method, psnr(fused, gt), base)


@pytest.mark.parametrize("method", CLASSICAL)
def test_beats_average_on_photo(method, shared_dir):
    gt = _photo(shared_dir)
    a, b, _ = complementary_pair(gt, sigma=2.0)
    base = psnr(mfif.fuse([a, b], method="average").fused, gt)
    assert psnr(mfif.fuse([a, b], method=method).fused, gt) > base + PSNR_MARGIN_DB


@pytest.mark.parametrize("method", ["average", *CLASSICAL])
def test_order_does_not_matter(method):
    gt = textured_image(80, 96, 3, seed=2)
    a, b, _ = complementary_pair(gt, sigma=2.0)
    c = np.ascontiguousarray(gt[:, ::-1, :]) * 0.5 + a * 0.5
    ab = mfif.fuse([a, b, c], method=method).fused
    for order in ([b, a, c], [c, b, a], [b, c, a]):
        np.testing.assert_allclose(mfif.fuse(order, method=method).fused, ab, atol=1e-5)


@pytest.mark.parametrize("method", ["average", *CLASSICAL])
@pytest.mark.parametrize("n", [2, 5])
def test_copies_of_one_image_give_that_image(method, n):
    img = textured_image(70, 90, 3, seed=3)
    out = mfif.fuse([img] * n, method=method).fused
    np.testing.assert_allclose(out, img, atol=1e-5)


@pytest.mark.parametrize("method", CLASSICAL)
def test_grey_and_odd_sizes(method):
    gt = textured_image(67, 91, 1, seed=4)
    a, b, _ = complementary_pair(gt, sigma=2.0)
    fused = mfif.fuse([a[0], b[0]], method=method).fused
    assert fused.shape == (1, 67, 91)
    assert np.isfinite(fused).all() and fused.min() >= 0 and fused.max() <= 1


@pytest.mark.parametrize("method", ["sml", "dct-cv", "gff"])
def test_decision_follows_the_sharp_half(method):
    gt = textured_image(128, 128, 1, seed=5)
    a, b, mask = complementary_pair(gt, sigma=3.0)
    decision = mfif.fuse([a, b], method=method).decision
    # away from the boundary the chosen source is the sharp one
    inner_a = decision[8:-8, 8:56]
    inner_b = decision[8:-8, 72:-8]
    assert (inner_a == 0).mean() > 0.95 and (inner_b == 1).mean() > 0.95
