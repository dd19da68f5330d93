"""Decision-map tools: guided filter against independent implementations, small-region removal
on hand-made maps, N-way argmax and blending."""
from __future__ import annotations

import math

import numpy as np
import pytest

from mfif.decision import (argmax_decision, blend, box_mean, guided_filter, normalize_weights, one_hot,
                           remove_small_regions, remove_small_regions_multi)


def _naive_guided_filter(guide, src, r, eps):
    """Direct O(r^2) evaluation of He et al.'s Algorithm 1 with windows clipped at the border
    (the normalisation of He's MATLAB boxfilter(I, r) ./ N) -- written independently of box_mean."""
    h, w = guide.shape

    def mean(x):
        out = np.empty_like(x)
        for y in range(h):
            for xx in range(w):
                out[y, xx] = x[max(0, y - r): y + r + 1, max(0, xx - r): xx + r + 1].mean()
        return out

    mi, mp = mean(guide), mean(src)
    a = (mean(guide * src) - mi * mp) / (mean(guide * guide) - mi * mi + eps)
    b = mp - a * mi
    return mean(a) * guide + mean(b)


def test_box_mean_counts_only_pixels_inside():
    img = np.arange(12, dtype=np.float64).reshape(3, 4)
    out = box_mean(img, 1)
    assert out[0, 0] == pytest.approx(np.mean([0, 1, 4, 5]))
    assert out[1, 1] == pytest.approx(np.mean(img[0:3, 0:3]))
    assert out[2, 3] == pytest.approx(np.mean([6, 7, 10, 11]))


def test_guided_filter_matches_direct_definition_everywhere():
    rng = np.random.default_rng(0)
    guide = rng.random((23, 31))
    src = (rng.random((23, 31)) > 0.5).astype(np.float64)
    for r, eps in ((2, 0.01), (4, 0.1)):
        np.testing.assert_allclose(guided_filter(guide, src, r, eps), _naive_guided_filter(guide, src, r, eps),
                                   atol=1e-10)


def test_guided_filter_matches_opencv_contrib_in_the_interior():
    cv2 = pytest.importorskip("cv2")
    if not hasattr(cv2, "ximgproc"):
        pytest.skip("opencv-contrib (cv2.ximgproc) not installed")
    rng = np.random.default_rng(1)
    guide = rng.random((80, 90)).astype(np.float32)
    src = (rng.random((80, 90)) > 0.5).astype(np.float32)
    r, eps = 4, 0.01
    ours = guided_filter(guide, src, r, eps)
    ref = cv2.ximgproc.guidedFilter(guide, src, r, eps)
    # OpenCV reflects at the border where He's code clips the window, and works in float32:
    # equal (to float32 round-off) wherever no window of either stage touches the border.
    m = 2 * r
    np.testing.assert_allclose(ours[m:-m, m:-m], ref[m:-m, m:-m], atol=5e-5)
    assert np.abs(ours - ref).max() > 1e-4  # the border normalisation really differs


def test_guided_filter_edge_preserving_and_identity_limits():
    guide = np.zeros((20, 20)); guide[:, 10:] = 1.0
    src = guide.copy()
    # tiny eps: the output follows the guide's step exactly
    np.testing.assert_allclose(guided_filter(guide, src, 3, 1e-8), src, atol=1e-5)
    # huge eps: a plain box mean of the input
    np.testing.assert_allclose(guided_filter(guide, src, 3, 1e8), box_mean(box_mean(src, 3), 3), atol=1e-6)


def test_small_region_removal_hand_made():
    mask = np.zeros((20, 20), bool)
    mask[:, :10] = True          # big region A
    mask[2:4, 15:17] = True      # 4-pixel island of A inside B
    mask[12:13, 5:6] = False     # 1-pixel hole of B inside A
    out = remove_small_regions(mask, area=5)
    expected = np.zeros((20, 20), bool); expected[:, :10] = True
    np.testing.assert_array_equal(out, expected)
    # threshold from the fraction: ceil(0.01 * 400) = 4 -> the 4-pixel island stays
    out = remove_small_regions(mask, area_fraction=0.01)
    assert out[2:4, 15:17].all() and out[12, 5]
    assert math.ceil(0.01 * 400) == 4


def test_small_region_removal_is_8_connected():
    mask = np.zeros((10, 10), bool)
    mask[0:5, 0:5] = True
    mask[5, 5] = True  # touches the block only diagonally
    assert remove_small_regions(mask, area=3)[5, 5]  # 8-connected: part of a 26-pixel region
    assert not remove_small_regions(mask, area=0)[9, 9]


def test_multi_label_small_regions_take_surrounding_label():
    dec = np.zeros((30, 30), np.int64)
    dec[:, 15:] = 1
    dec[5:7, 5:7] = 2   # small island of label 2 inside 0
    dec[20:22, 25:27] = 0  # small island of 0 inside 1
    out = remove_small_regions_multi(dec, 3, area_fraction=0.01)  # area 9
    expected = np.zeros((30, 30), np.int64); expected[:, 15:] = 1
    np.testing.assert_array_equal(out, expected)


def test_argmax_one_hot_blend():
    scores = np.array([[[1, 5]], [[3, 2]], [[0, 9]]], np.float32)
    dec = argmax_decision(scores)
    np.testing.assert_array_equal(dec, [[1, 2]])
    w = one_hot(dec, 3)
    assert w.shape == (3, 1, 2) and np.all(w.sum(0) == 1)
    stack = np.arange(3 * 2 * 1 * 2, dtype=np.float32).reshape(3, 2, 1, 2)
    out = blend(stack, w)
    np.testing.assert_array_equal(out[:, 0, 0], stack[1, :, 0, 0])
    np.testing.assert_array_equal(out[:, 0, 1], stack[2, :, 0, 1])
    nw = normalize_weights(np.zeros((2, 2, 2)))
    np.testing.assert_allclose(nw, 0.5)
