"""Focal-sweep dev-set stacks (mfif.synth.sweep): optics hand-checked, camera order, determinism."""
from __future__ import annotations

import numpy as np

from mfif.synth.sweep import DIOPTRE_RANGE, make_sweep, slanted_segment_depth, sweep_frame_count, sweep_lens


def test_lens_pitch_gives_the_requested_largest_blur():
    lo, hi = DIOPTRE_RANGE
    lens = sweep_lens(10.0)
    # A v_s |1/d - 1/s| / (2 p): largest for a point at one end of the range, focus at the other
    assert abs(max(lens.coc_radius(1 / lo, 1 / hi), lens.coc_radius(1 / hi, 1 / lo)) - 10.0) < 1e-9
    assert lens.coc_radius(1 / lo, 1 / lo) == 0.0


def test_frame_counts_span_5_to_30():
    ks = [sweep_frame_count(j) for j in range(20)]
    assert ks[0] == 5 and ks[-1] == 30 and ks == sorted(ks)


def test_depth_stays_in_range_and_slants():
    labels = np.zeros((40, 60), np.int32)
    labels[:, 30:] = 1
    depth = slanted_segment_depth(labels, np.random.default_rng(0))
    inv = 1.0 / depth
    assert inv.min() >= DIOPTRE_RANGE[0] - 1e-12 and inv.max() <= DIOPTRE_RANGE[1] + 1e-12
    assert np.ptp(inv[:, :30]) > 0  # a tilted surface, not one plane


def test_sweep_is_in_camera_order_and_deterministic():
    rng = np.random.default_rng(1)
    image = rng.random((3, 48, 64)).astype(np.float32)
    labels = (np.arange(64)[None, :] // 16).repeat(48, axis=0).astype(np.int32)
    a = make_sweep(image, labels, 7, np.random.default_rng(5), breathing=False, noise=0.0, jpeg=None)
    b = make_sweep(image, labels, 7, np.random.default_rng(5), breathing=False, noise=0.0, jpeg=None)
    np.testing.assert_array_equal(a.frames, b.frames)
    assert a.frames.shape == (7, 3, 48, 64) and a.gt.shape == (3, 48, 64)
    np.testing.assert_array_equal(a.focus.sum(0), 1.0)
    # the frame sharpest at a pixel is the one whose focus is dioptrically nearest to its depth
    lo, hi = DIOPTRE_RANGE
    focus = np.linspace(hi, lo, 7) if a.info["order"] == "near to far" else np.linspace(lo, hi, 7)
    depth = 1.0 / slanted_segment_depth(labels, np.random.default_rng(5))
    expected = np.argmin(np.abs(focus[:, None, None] - depth[None]), axis=0)
    assert (np.argmax(a.focus, axis=0) == expected).mean() > 0.9
    # the sharpest frame is closest to the ground truth there
    err = np.abs(a.frames - a.gt[None]).mean(1)
    assert (np.argmin(err, 0) == np.argmax(a.focus, 0)).mean() > 0.5
