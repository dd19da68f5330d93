"""Thin-lens renderer: pinned to hand-computed optics.

Reference numbers (worked by hand from the formulas in mfif/synth/thinlens.py):
lens f = 50 mm, N = 2 (aperture A = 25 mm), pixel pitch p = 0.1 mm.
- focused at s = 1 m: v_s = 0.05 * 1 / 0.95 = 0.0526316 m; a point at d = 2 m has
  r = A v_s |1/2 - 1/1| / (2 p) = 0.025 * 0.0526316 * 0.5 / 2e-4 = 3.2894737 px.
- focused at s = 3 m: v_3 = 0.05 * 3 / 2.95 = 0.0508475 m; breathing scale 1 m vs 3 m:
  0.0526316 / 0.0508475 = 1.0350877.
"""
import math

import numpy as np
import pytest

from mfif.synth.thinlens import (LayeredScene, ThinLens, focal_sweep, random_scene, render_thin_lens,
                                 scene_from_depth_map)

LENS = ThinLens(focal_length=0.05, f_number=2.0, pixel_pitch=1e-4)


def test_coc_radius_and_breathing_hand_computed():
    assert LENS.image_distance(1.0) == pytest.approx(0.0526315789, rel=1e-9)
    assert LENS.coc_radius(2.0, 1.0) == pytest.approx(3.2894736842, rel=1e-9)
    assert LENS.coc_radius(1.0, 1.0) == 0.0
    # linear in dioptres: twice the dioptric distance, twice the radius (1/(2/3) - 1 = 0.5, 1/0.5 - 1 = 1)
    assert LENS.coc_radius(0.5, 1.0) == pytest.approx(2 * LENS.coc_radius(2.0, 1.0), rel=1e-12)
    assert LENS.breathing_scale(1.0, 3.0) == pytest.approx(1.0350877193, rel=1e-9)


def _point_scene(h, w, y, x, depth):
    img = np.zeros((1, h, w), np.float32)
    img[0, y, x] = 1.0
    return LayeredScene(img[None], np.ones((1, h, w), np.float32), [depth])


def test_point_renders_as_disk_of_predicted_radius():
    frame = render_thin_lens(_point_scene(41, 41, 20, 20, 2.0), LENS, 1.0)
    r = 3.2894736842
    img = frame.image[0]
    yy, xx = np.mgrid[-20:21, -20:21]
    dist = np.hypot(yy, xx)
    assert img.sum() == pytest.approx(1.0, abs=1e-5)  # energy kept
    inner = img[dist <= r - 0.75]
    # uniform disk: every fully covered pixel gets 1 / (pi r^2)
    assert np.allclose(inner, 1.0 / (math.pi * r * r), rtol=0.03)
    assert np.all(img[dist >= r + 0.75] == 0)
    assert np.all(img[dist <= r - 0.75] > 0)
    assert frame.radius[20, 20] == pytest.approx(r, rel=1e-6)
    assert not frame.in_focus.any()


def test_in_focus_layer_unchanged_and_sharp_edge_over_blurred_background():
    h, w = 64, 64
    rng = np.random.default_rng(0)
    fg_col = rng.random((3, h, w), dtype=np.float32)
    bg_col = rng.random((3, h, w), dtype=np.float32)
    square = np.zeros((h, w), np.float32)
    square[16:48, 16:48] = 1
    scene = LayeredScene(np.stack([fg_col, bg_col]), np.stack([square, 1 - square]), [1.0, 3.0])
    frame = render_thin_lens(scene, LENS, 1.0)
    inside = square > 0
    # the sharp near layer is bit-identical to its colours, with no background bleeding in
    assert np.array_equal(frame.image[:, inside], fg_col[:, inside])
    assert np.array_equal(frame.in_focus, inside)
    r_bg = LENS.coc_radius(3.0, 1.0)  # 0.025 * 0.0526316 * (2/3) / 2e-4 = 4.3859649
    assert r_bg == pytest.approx(4.3859649, rel=1e-6)
    assert np.allclose(frame.radius[~inside], r_bg)
    # the background is blurred: differs from its sharp colours
    far_from_square = np.ones((h, w), bool)
    far_from_square[8:56, 8:56] = False
    assert np.abs(frame.image[:, far_from_square] - bg_col[:, far_from_square]).mean() > 0.05


def _edge_fraction(t, r):
    """Share of a disk of radius r (centre at distance t from a straight edge) beyond the edge."""
    return (r * r * math.acos(t / r) - t * math.sqrt(r * r - t * t)) / (math.pi * r * r)


def test_blurred_foreground_spills_over_sharp_background():
    h, w = 64, 64
    square = np.zeros((h, w), np.float32)
    square[:, :32] = 1  # near layer: left half, white
    colors = np.stack([np.ones((1, h, w), np.float32), np.zeros((1, h, w), np.float32)])
    scene = LayeredScene(colors, np.stack([square, 1 - square]), [1.0, 3.0])
    frame = render_thin_lens(scene, LENS, 3.0)  # background in focus
    r = LENS.coc_radius(1.0, 3.0)  # 0.025 * 0.0508475 * (2/3) / 2e-4 = 4.2372881
    assert r == pytest.approx(4.2372881, rel=1e-6)
    row = frame.image[0, 32]
    for k in range(4):  # background pixels right of the edge, centres 0.5 + k px away
        assert row[32 + k] == pytest.approx(_edge_fraction(0.5 + k, r), abs=0.02)
    assert np.all(row[32 + 6:] == 0)  # beyond the disk: the background, untouched
    assert frame.in_focus[32, 40] and not frame.in_focus[32, 20]


def test_focus_breathing_moves_a_point_by_the_predicted_scale():
    scene = _point_scene(65, 129, 32, 114, 1.0)  # 50 px right of the centre column 64
    frame = render_thin_lens(scene, LENS, 1.0, breathing_reference=3.0)
    assert frame.scale == pytest.approx(1.0350877193, rel=1e-9)
    img = frame.image[0]
    x_centroid = float((img.sum(axis=0) * np.arange(129)).sum() / img.sum())
    assert x_centroid == pytest.approx(64 + 50 * 1.0350877193, abs=0.05)
    unscaled = render_thin_lens(scene, LENS, 3.0, breathing_reference=3.0)
    assert unscaled.scale == 1.0


def test_focal_sweep_each_layer_sharp_in_its_frame_and_seeded():
    scene = random_scene(48, 64, seed=3, layers=3)
    again = random_scene(48, 64, seed=3, layers=3)
    other = random_scene(48, 64, seed=4, layers=3)
    assert np.array_equal(scene.colors, again.colors) and np.array_equal(scene.depths, again.depths)
    assert not np.array_equal(scene.colors, other.colors)
    assert np.all(np.diff(scene.depths) < 0)  # far -> near
    stack = focal_sweep(scene, LENS, scene.depths)
    assert stack.frames.shape == (3, 3, 48, 64) and stack.frames.dtype == np.float32
    assert 0 <= stack.frames.min() and stack.frames.max() <= 1
    visible = scene.visible_layer()
    for k in range(3):
        assert np.array_equal(stack.in_focus[k], visible == k)
        assert np.all(stack.radius[k][visible == k] == 0)
    # the nearest layer is never covered: it equals the ground truth when in focus
    near = visible == 2
    assert np.array_equal(stack.frames[2][:, near], stack.gt[:, near])


def test_scene_from_depth_map_planes_in_dioptres():
    img = np.random.default_rng(1).random((3, 16, 16), dtype=np.float32)
    depth = np.full((16, 16), 4.0)
    depth[:, :8] = 0.5
    scene = scene_from_depth_map(img, depth, planes=8)
    assert sorted(scene.depths.tolist()) == pytest.approx([0.5, 4.0])
    frame = render_thin_lens(scene, LENS, 0.5)
    assert np.array_equal(frame.image[:, :, :8], img[:, :, :8])


def test_bad_input_errors():
    with pytest.raises(ValueError, match="sum to 1"):
        LayeredScene(np.zeros((2, 3, 8, 8)), np.zeros((2, 8, 8)), [1.0, 2.0])
    with pytest.raises(ValueError, match="beyond the focal length"):
        LENS.coc_radius(2.0, 0.01)
    with pytest.raises(ValueError, match="positive number"):
        ThinLens(f_number=0)
