"""The thin-lens recipe and the between-frame camera differences (mfif.synth.recipes.make_thinlens,
mfif.synth.augment.frame_differences). Tiny generated photos keep it fast."""
import cv2
import numpy as np
import pytest

from mfif.synth import recipes as R
from mfif.synth.augment import Augment, exposure_white_balance, frame_differences, subpixel_shift
from mfif.synth.sources import PhotoSource

PLAIN = R.ThinLensRecipe(size=64, max_radius=(2.0, 4.0), augment=Augment(), shuffle_frames=False)


@pytest.mark.parametrize("frames", [2, 3])
@pytest.mark.parametrize("folder", ["bsds_like", "plain_folder"])
def test_thinlens_sharp_pixels_equal_ground_truth_and_maps_pick_least_blur(frames, folder, request):
    src = PhotoSource.from_folder(request.getfixturevalue(folder))
    for seed in range(3):
        s = R.make_thinlens(src, seed % len(src), np.random.default_rng([5, seed]), PLAIN, frames=frames)
        assert s.frames.shape == (frames, 3, 64, 64) and s.gt.shape == (3, 64, 64)
        assert s.frames.dtype == np.float32 and 0 <= s.frames.min() and s.frames.max() <= 1
        assert np.array_equal(s.focus.sum(axis=0), np.ones((64, 64), np.float32))
        chosen = np.argmax(s.focus, axis=0)
        least = s.blur.min(axis=0)
        assert np.array_equal(np.take_along_axis(s.blur, chosen[None], 0)[0], least)
        assert 2.0 - 1e-6 <= s.info["max_radius"] <= 4.0 + 1e-6
        reach = s.info["spill"]
        for k in range(frames):
            sharp = (s.blur[k] == 0).astype(np.uint8)
            # sharp pixels no blurred layer can reach are bit-identical to the ground truth
            core = cv2.erode(sharp, np.ones((2 * reach + 1, 2 * reach + 1), np.uint8)) > 0
            assert np.array_equal(s.frames[k][:, core], s.gt[:, core])
            assert (s.blur[k] > 0).any()


def test_thinlens_same_seed_same_bytes_with_all_camera_effects(bsds_like):
    cfg = R.ThinLensRecipe(size=64)  # the default augment: noise, JPEG, exposure, WB, shift
    src = PhotoSource.from_folder(bsds_like)
    a = R.make_thinlens(src, 1, np.random.default_rng(42), cfg)
    b = R.make_thinlens(PhotoSource.from_folder(bsds_like), 1, np.random.default_rng(42), cfg)
    c = R.make_thinlens(src, 1, np.random.default_rng(43), cfg)
    assert a.frames.tobytes() == b.frames.tobytes() and a.gt.tobytes() == b.gt.tobytes()
    assert a.frames.tobytes() != c.frames.tobytes()
    d = a.info["frame_differences"]
    ref = d["reference_frame"]
    assert d["shift"][ref] == [0.0, 0.0] and d["exposure_ev"][ref] == 0.0
    other = 1 - ref
    assert all(abs(v) <= 0.5 for v in d["shift"][other]) and abs(d["exposure_ev"][other]) <= 0.15


def test_thinlens_breathing_magnifies_the_near_focused_frame(plain_folder):
    cfg = R.ThinLensRecipe(size=64, augment=Augment(), shuffle_frames=False, breathing=True)
    s = R.make_thinlens(PhotoSource.from_folder(plain_folder), 0, np.random.default_rng(1), cfg)
    near, far = s.info["focus_distances"]
    assert near < far
    scales = s.info["breathing_scales"]
    assert scales[1] == 1.0 and scales[0] > 1.0


def test_exposure_gain_in_linear_light_hand_computed():
    # sRGB 0.5 -> linear ((0.5 + 0.055) / 1.055) ** 2.4 = 0.214041; x2 (+1 EV) = 0.428083;
    # back: 1.055 * 0.428083 ** (1 / 2.4) - 0.055 = 0.685850
    grey = np.full((2, 2, 3), 0.5, np.float32)
    assert exposure_white_balance(grey, 2.0)[0, 0, 0] == pytest.approx(0.685850, abs=2e-5)
    assert np.allclose(exposure_white_balance(grey, 1.0), 0.5, atol=1e-6)
    wb = exposure_white_balance(grey, 1.0, [2.0, 1.0, 0.5])
    assert wb[0, 0, 0] == pytest.approx(0.685850, abs=2e-5) and wb[0, 0, 1] == pytest.approx(0.5, abs=1e-6)


def test_subpixel_shift_of_a_ramp_is_exact():
    ramp = np.tile(np.arange(32, dtype=np.float32) / 64, (16, 1))[..., None]
    out = subpixel_shift(ramp, 0.0, 0.5)  # content moves right by half a pixel: value drops by 0.5 / 64
    assert np.allclose(out[:, 4:-4, 0], ramp[:, 4:-4, 0] - 0.5 / 64, atol=1e-5)


def test_frame_differences_leave_the_reference_and_draw_nothing_when_off():
    rng = np.random.default_rng(0)
    frames = [rng.random((16, 16, 3), dtype=np.float32) for _ in range(3)]
    out, info = frame_differences(frames, np.random.default_rng(1), Augment())
    assert info == {} and out is frames
    aug = Augment(exposure=0.2, white_balance=0.05, shift=0.5)
    out, info = frame_differences(frames, np.random.default_rng(1), aug)
    ref = info["reference_frame"]
    for k in range(3):
        assert np.array_equal(out[k], frames[k]) == (k == ref)
