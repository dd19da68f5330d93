"""The recipes' promises (mfif.synth.recipes): in-focus pixels equal the ground truth (exactly
for the Gaussian hard-mask recipes, outside the blur spill band for the layered recipe), focus
maps are complementary, labels flip with the pair, the same seed gives the same bytes, and
photos without masks still give samples. Tiny generated photos keep it fast."""
import numpy as np
import pytest

from mfif.synth import focus_maps as fm
from mfif.synth import recipes as R
from mfif.synth.augment import Augment
from mfif.synth.blur import defocus_support, liu_blur_levels
from mfif.synth.compose import spill_band
from mfif.synth.sources import PhotoSource

SMALL = {
    "ifcnn": (R.make_ifcnn, R.IfcnnRecipe(size=64)),
    "hourglass": (R.make_hourglass, R.HourglassRecipe(size=64)),
    "layered": (R.make_layered, R.LayeredRecipe(size=64, radius_scale=(1.5, 3.0))),
}
# three frames double the largest blur: smaller blurs keep pixels outside the spill band
LAYERED_3 = R.LayeredRecipe(size=72, radius_scale=(1.0, 1.5))


def _samples(folder, name, frames, seeds=range(4)):
    make, cfg = SMALL[name]
    if name == "layered" and frames > 2:
        cfg = LAYERED_3
    src = PhotoSource.from_folder(folder)
    return [make(src, s % len(src), np.random.default_rng([7, s]), cfg, frames=frames) for s in seeds]


def _check_common(s, frames):
    n = len(s.frames)
    assert n == frames and s.frames.shape[1:] == s.gt.shape and s.focus.shape == (n,) + s.gt.shape[1:]
    assert s.frames.dtype == np.float32 and 0 <= s.frames.min() and s.frames.max() <= 1
    np.testing.assert_allclose(s.focus.sum(axis=0), 1.0, atol=1e-6)  # complementary maps
    for k in range(n):
        assert (s.focus[k] >= 1).mean() > 0.03, "every frame is in focus somewhere"
        out = s.focus[k] <= 0
        assert np.abs(s.frames[k] - s.gt)[:, out].max() > 0.02, "and blurred somewhere"


@pytest.mark.parametrize("name", ["ifcnn", "hourglass"])
@pytest.mark.parametrize("frames", [2, 3])
@pytest.mark.parametrize("folder", ["bsds_like", "plain_folder"])
def test_gaussian_recipes_in_focus_pixels_equal_ground_truth_exactly(name, frames, folder, request):
    for s in _samples(request.getfixturevalue(folder), name, frames):
        _check_common(s, frames)
        assert set(np.unique(s.focus)) <= {0.0, 1.0}
        assert np.array_equal(s.focus.sum(axis=0), np.ones(s.focus.shape[1:], np.float32))
        for k in range(frames):
            m = s.focus[k] == 1
            assert np.array_equal(s.frames[k][:, m], s.gt[:, m])
        assert s.info["spill"] == 0


@pytest.mark.parametrize("frames", [2, 3])
@pytest.mark.parametrize("folder", ["bsds_like", "plain_folder", "alpha_like"])
def test_layered_in_focus_pixels_equal_ground_truth_outside_spill_band(frames, folder, request):
    for s in _samples(request.getfixturevalue(folder), "layered", frames):
        _check_common(s, frames)
        checked = 0
        for k in range(frames):
            band = spill_band(s.focus[k], s.info["spill"])
            m = (s.focus[k] >= 1) & ~band
            checked += int(m.sum())
            assert np.array_equal(s.frames[k][:, m], s.gt[:, m])
            # inside the band the map says "in focus" but blur from nearer layers may spill in
            assert np.abs(s.frames[k] - s.gt)[:, (s.focus[k] >= 1) & band].max(initial=0) < 1
        assert checked > 0.1 * s.focus[0].size  # (a tiny in-focus region may lie all in the band)


def test_layered_alpha_matte_is_a_soft_near_layer_over_another_photo(alpha_like):
    src = PhotoSource.from_folder(alpha_like)
    cfg = R.LayeredRecipe(size=96, augment=Augment(), shuffle_frames=False)
    s = R.make_layered(src, src.with_alpha()[0], np.random.default_rng(0), cfg)
    assert s.info["mask_source"] == "alpha matte" and "background" in s.info
    soft = (s.focus[0] > 0) & (s.focus[0] < 1)
    assert soft.any()  # the matte's soft edge is kept
    # frame 0 (near focus) is the sharp foreground; its blurred version spills in frame 1
    fg = s.focus[0] >= 1
    assert np.abs(s.frames[1] - s.gt)[:, fg].max() > 0.02


def test_swapping_frames_keeps_maps_attached():
    rng = np.random.default_rng(0)
    s = R.MultiFocusSample(rng.random((2, 3, 8, 8), dtype=np.float32), rng.random((3, 8, 8), dtype=np.float32),
                           np.stack([np.ones((8, 8), np.float32), np.zeros((8, 8), np.float32)]),
                           np.zeros((2, 8, 8), np.float32))
    t = s.swapped()
    assert np.array_equal(t.frames[0], s.frames[1]) and np.array_equal(t.focus[0], s.focus[1])


@pytest.mark.parametrize("name", ["ifcnn", "hourglass", "layered"])
def test_same_seed_same_bytes(name, bsds_like):
    make, cfg = SMALL[name]
    src = PhotoSource.from_folder(bsds_like)
    a = make(src, 1, np.random.default_rng(42), cfg, frames=2)
    b = make(PhotoSource.from_folder(bsds_like), 1, np.random.default_rng(42), cfg, frames=2)
    c = make(src, 1, np.random.default_rng(43), cfg, frames=2)
    for x, y in ((a.frames, b.frames), (a.gt, b.gt), (a.focus, b.focus)):
        assert x.tobytes() == y.tobytes()
    assert a.frames.tobytes() != c.frames.tobytes()


@pytest.mark.parametrize("name", ["ifcnn", "hourglass", "layered"])
def test_photo_without_mask_still_yields_samples(name, plain_folder):
    for s in _samples(plain_folder, name, 2, seeds=range(2)):
        assert s.info["mask_source"] == "smooth shapes"
        _check_common(s, 2)


def test_ifcnn_threshold_rule_near_is_depth_at_most_threshold():
    depths = np.array([0.05, 0.2, 0.4, 0.6, 0.8, 1.0])
    area = np.ones(6)
    for seed in range(10):
        g = fm.threshold_groups(depths, area, 2, np.random.default_rng(seed), min_fraction=0.0)
        t = depths[g == 0].max()
        assert 0.3 - 1e-9 <= depths[g == 1].min() and t <= 0.7  # threshold in U(0.3, 0.7) * max depth
        assert np.all(depths[g == 0] < depths[g == 1].min())


# ----------------------------------------------------------------------------------------------
# Liu patches


def test_liu_patch_pairs_follow_the_paper(bsds_like):
    src = PhotoSource.from_folder(bsds_like)
    cfg = R.LiuRecipe()
    grey = R.to_grey(src.image(0))
    levels = liu_blur_levels(grey, cfg.levels, cfg.sigma, cfg.ksize)
    for level in (1, 3, 5):
        s = R.liu_patch(src, 0, np.random.default_rng(level), level, cfg)
        assert s.inputs.shape == (2, 16, 16) and s.label == 1
        assert np.var(s.inputs[0]) * 255 ** 2 > 25  # clear patch variance > 25 on 0..255
        y, x = s.info["y"], s.info["x"]
        np.testing.assert_allclose(s.inputs[0], grey[y:y + 16, x:x + 16], atol=1e-6)
        # the blurred patch is the same window of the photo blurred `level` times (whole-image blur)
        np.testing.assert_allclose(s.inputs[1], levels[level - 1][y:y + 16, x:x + 16], atol=1e-5)
        t = s.swapped()
        assert t.label == 0 and np.array_equal(t.inputs, s.inputs[::-1])


# ----------------------------------------------------------------------------------------------
# BA scenes and patches


@pytest.mark.parametrize("compositing", ["hard", "layered"])
def test_ba_scene_frames_match_ground_truth_where_focused(alpha_like, compositing):
    src = PhotoSource.from_folder(alpha_like)
    cfg = R.BARecipe(compositing=compositing, augment=Augment(), sigma_range=(1.0, 2.0), patch=32)
    fg, bg = src.with_alpha()[0], src.without_alpha()[0]
    sc = R.make_ba_scene(src, fg, bg, np.random.default_rng(0), cfg)
    assert sc.frames.shape == (2,) + sc.gt.shape and sc.gt.shape == (70, 75)
    spill = 0 if compositing == "hard" else defocus_support(2.0, "gaussian") + 1
    for k, fmap in enumerate((sc.focus, 1 - sc.focus)):
        m = (fmap >= 1) & ~spill_band(fmap, spill)
        assert m.sum() > 100 and np.array_equal(sc.frames[k][m], sc.gt[m])
        assert np.abs(sc.frames[k] - sc.gt)[fmap <= 0].max() > 0.02


def test_ba_patches_labelled_by_centre_pixel_with_boundary_flag(alpha_like):
    src = PhotoSource.from_folder(alpha_like)
    cfg = R.BARecipe(patch=32)
    sc = R.make_ba_scene(src, src.with_alpha()[1], src.without_alpha()[1], np.random.default_rng(1), cfg)
    flags = []
    for j in range(40):
        p = R.ba_patch(sc, np.random.default_rng(j), cfg)
        y, x = p.info["y"], p.info["x"]
        fmap = sc.focus[y:y + 32, x:x + 32]
        assert p.inputs.shape == (2, 32, 32)
        assert np.array_equal(p.inputs, sc.frames[:, y:y + 32, x:x + 32])
        assert p.label == int(fmap[16, 16] >= 0.5)
        frac = (fmap >= 0.5).mean()
        assert p.boundary == (0.1 <= frac <= 0.9)
        q = p.swapped()
        assert q.label == 1 - p.label and np.array_equal(q.inputs[0], p.inputs[1])
        flags.append(p.boundary)
    assert any(flags) and not all(flags)
    for j in range(20):
        assert R.ba_patch(sc, np.random.default_rng(j), cfg, boundary_only=True).boundary


def test_ba_without_mattes_cuts_foregrounds_from_photos(plain_folder):
    src = PhotoSource.from_folder(plain_folder)
    cfg = R.BARecipe(patch=32)
    sc = R.make_ba_scene(src, 0, 1, np.random.default_rng(0), cfg)
    assert sc.info["mask_source"] == "smooth shapes"
    assert 0.05 < (sc.focus >= 0.5).mean() < 0.95
