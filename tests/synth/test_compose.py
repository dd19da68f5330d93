"""Layered, occlusion-aware compositing versus the papers' hard-mask blend (mfif.synth.compose)."""
import numpy as np
import pytest

from mfif.synth.blur import defocus_support, gaussian_blur
from mfif.synth.compose import LayerStack, composite_hard, push_pull_fill, spill_band


def _disk_scene(h=64, w=64, r=12):
    yy, xx = np.mgrid[0:h, 0:w]
    fg = (np.hypot(yy - h / 2, xx - w / 2) <= r).astype(np.float32)
    return fg


def test_all_sharp_render_is_the_photo_exactly():
    rng = np.random.default_rng(0)
    img = rng.random((48, 40, 3), dtype=np.float32)
    labels = rng.integers(0, 3, size=(48, 40))
    alphas = np.stack([(labels == k).astype(np.float32) for k in range(3)])
    stack = LayerStack(img, alphas, [0.1, 0.5, 0.9])
    assert np.array_equal(stack.ground_truth(), img)


@pytest.mark.parametrize("psf,size", [("disk", 4.0), ("gaussian", 2.0)])
def test_blurred_foreground_spills_over_sharp_background(psf, size):
    """Real optics: a defocused near object spreads over the in-focus background behind it."""
    fg = _disk_scene()
    # white foreground disk, black background: any white outside the disk is spill
    colors = np.stack([np.ones((64, 64, 1), np.float32), np.zeros((64, 64, 1), np.float32)])
    stack = LayerStack(colors, np.stack([fg, 1 - fg]), [0.2, 0.8], complete_colors=True)
    gt = stack.ground_truth()[..., 0]
    bg_focused = stack.render([size, 0.0], psf)[..., 0]  # foreground blurred
    outside = fg == 0
    spill = outside & (bg_focused > 0.01)
    assert spill.any(), "a blurred foreground must spill onto the background"
    s = defocus_support(size, psf)
    band = spill_band(1 - fg, s + 1)  # background pixels within reach of the foreground
    assert np.array_equal(bg_focused[outside & ~band], gt[outside & ~band])
    assert np.all(bg_focused[fg == 1].min() < 1.0)  # the blurred edge is semi-transparent inside too
    np.testing.assert_array_equal(stack.render([size, 0.0], psf)[stack.exact_mask([size, 0.0], psf)],
                                  stack.ground_truth()[stack.exact_mask([size, 0.0], psf)])


def test_sharp_foreground_hides_blurred_background_without_halo():
    """A sharp near object over a blurred far one: no background colour leaks into it, and no
    foreground colour leaks into the blurred background (the hard-mask blend has such a halo)."""
    fg = _disk_scene()
    img = np.where(fg[..., None] > 0, 1.0, 0.0).astype(np.float32)  # white disk on black
    stack = LayerStack(img, np.stack([fg, 1 - fg]), [0.2, 0.8])
    fg_focused = stack.render([0.0, 5.0], "disk")
    assert np.array_equal(fg_focused, img)  # background is uniform: blurred it stays black
    hard = composite_hard(np.stack([img, gaussian_blur(img, 2.0)]), np.stack([fg, 1 - fg]))
    assert hard[fg == 0].max() > 0.1  # the papers' blend: white halo around the sharp disk
    assert np.array_equal(hard[fg == 1], img[fg == 1])  # but exact inside the mask


def test_exact_mask_marks_pixels_equal_to_ground_truth():
    rng = np.random.default_rng(1)
    img = rng.random((60, 60, 3), dtype=np.float32)
    labels = np.zeros((60, 60), int)
    labels[10:35, 5:30] = 1
    labels[30:55, 28:58] = 2
    alphas = np.stack([(labels == k).astype(np.float32) for k in range(3)])
    stack = LayerStack(img, alphas, [0.9, 0.5, 0.1])
    gt = stack.ground_truth()
    for radii in ([0.0, 3.0, 6.0], [5.0, 0.0, 2.0], [4.0, 4.0, 0.0]):
        frame = stack.render(radii)
        m = stack.exact_mask(radii)
        assert np.array_equal(frame[m], gt[m])
        equal = (frame == gt).all(axis=-1)
        assert m.sum() >= 0.7 * equal.sum() > 0  # the mask is reasonably tight, not just safe
        assert np.abs(frame - gt).max() > 0.01


def test_composite_hard_is_exact_with_binary_masks():
    rng = np.random.default_rng(2)
    a, b = rng.random((2, 20, 20, 3), dtype=np.float32)
    m = (rng.random((20, 20)) > 0.5).astype(np.float32)
    out = composite_hard(np.stack([a, b]), np.stack([m, 1 - m]))
    assert np.array_equal(out[m == 1], a[m == 1]) and np.array_equal(out[m == 0], b[m == 0])


def test_push_pull_fill_keeps_covered_pixels_and_fills_holes():
    img = np.full((33, 47, 3), 0.25, np.float32)
    img[..., 1] = 0.75
    a = np.zeros((33, 47), np.float32)
    a[:, :10] = 1
    out = push_pull_fill(img * a[..., None], a)
    np.testing.assert_allclose(out, img, atol=1e-5)


def test_layer_stack_checks_shapes():
    with pytest.raises(ValueError, match="depths"):
        LayerStack(np.zeros((4, 4, 3), np.float32), np.ones((1, 4, 4), np.float32), [0.1, 0.2])
    with pytest.raises(ValueError, match="do not match"):
        LayerStack(np.zeros((5, 4, 3), np.float32), np.ones((1, 4, 4), np.float32), [0.1])
