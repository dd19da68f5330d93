"""Perceptual metrics: Q_CB, Q_CB_vifb, Q_CV, Q_CV_vifb (lower is better), VIFF.

Reference values: ``shared/refmetrics/cases/*/refmetrics_F_*.json`` (MATLAB code run unmodified under
GNU Octave, see ``shared/refmetrics/README.md``). Largest measured relative deviation over all 12
case/fused pairs: Q_CB / Q_CB_vifb 2e-14, Q_CV / Q_CV_vifb 1e-15, VIFF 2e-14 (FFT and filtering
round-off only). Tolerance: 1e-9 relative for all five. No reference value is null for these keys.
"""
from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mfif.errors import InputError
from mfif.metrics import METRICS
from mfif.metrics import perceptual as pc
from tests.conftest import SHARED
from tests.metrics.refcases import load_png as _png
from tests.metrics.refcases import reference_files as _reference_files
from tests.helpers import complementary_pair, textured_image

RTOL = {"Q_CB": 1e-9, "Q_CB_vifb": 1e-9, "Q_CV": 1e-9, "Q_CV_vifb": 1e-9, "VIFF": 1e-9}






@lru_cache(maxsize=None)
def _case(shared: Path, name: str):
    case, fused = name.split("/")
    d = shared / "refmetrics" / "cases" / case
    ref = json.loads((d / f"refmetrics_{fused}.json").read_text())
    return _png(d / "A.png"), _png(d / "B.png"), _png(d / f"{fused}.png"), ref


@lru_cache(maxsize=None)
def _score(shared: Path, name: str, key: str) -> float:
    a, b, f, _ = _case(shared, name)
    return METRICS[key].function([a, b], f)


@pytest.mark.shared
@pytest.mark.parametrize("key", sorted(RTOL))
@pytest.mark.parametrize("name", _reference_files())
def test_matches_matlab_reference(shared_dir, name, key):
    expected = _case(shared_dir, name)[3][key]
    assert expected is not None, f"{name}: reference {key} is null"
    ours = _score(shared_dir, name, key)
    assert isinstance(ours, float)
    assert ours == pytest.approx(expected, rel=RTOL[key], abs=0.0), f"{name}: {key}"


@pytest.mark.shared
def test_sharp_fusion_beats_average_on_reference_cases(shared_dir):
    cases = sorted(p.name for p in (shared_dir / "refmetrics" / "cases").iterdir() if p.name.startswith("t"))
    assert len(cases) == 4
    for case in cases:
        sharp = {k: _score(shared_dir, f"{case}/F_sharp", k) for k in ("Q_CB", "Q_CV", "VIFF")}
        avg = {k: _score(shared_dir, f"{case}/F_avg", k) for k in ("Q_CB", "Q_CV", "VIFF")}
        assert sharp["Q_CB"] > avg["Q_CB"], case
        assert sharp["Q_CV"] < avg["Q_CV"], case  # lower is better
        assert sharp["VIFF"] > avg["VIFF"], case


# ---------------------------------------------------------------------------------------------
# properties that do not need the reference data


def _u8(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def pair():
    gt = textured_image(96, 128, 1, seed=5)
    a, b, _ = complementary_pair(gt, sigma=3.0)
    return _u8(a[0]), _u8(b[0]), _u8(gt[0]), _u8((a[0] + b[0]) / 2)


def test_sharp_fusion_beats_average_synthetic(pair):
    a, b, sharp, avg = pair
    assert pc.chen_blum([a, b], sharp) > pc.chen_blum([a, b], avg)
    assert pc.viff([a, b], sharp) > pc.viff([a, b], avg)
    # (Q_CV is not checked here: on this small synthetic noise texture it prefers the average -- its
    # CSF is scaled to the image size and each 16x16 block is weighted by gradient^5; on the
    # natural-image reference cases it ranks the sharp result first, see the test above.)


def test_identical_inputs_give_textbook_values(pair):
    x = pair[2]
    assert pc.chen_blum([x, x], x) == 1.0
    assert pc.chen_varshney([x, x], x) == 0.0
    # VIF of an image with itself: 1 up to the 1e-10 floor on the noise variance
    assert pc.viff([x, x], x) == pytest.approx(1.0, abs=1e-9)


def test_vifb_keys_are_the_same_code():
    assert METRICS["Q_CB_vifb"].function is METRICS["Q_CB"].function
    assert METRICS["Q_CV_vifb"].function is METRICS["Q_CV"].function
    assert not METRICS["Q_CV"].higher_is_better and not METRICS["Q_CV_vifb"].higher_is_better
    assert METRICS["Q_CB"].higher_is_better and METRICS["VIFF"].higher_is_better


def test_constant_images_are_defined_or_refused(pair):
    a, b, sharp, _ = pair
    c = np.full_like(a, 77)
    z = np.zeros_like(a)
    # min-max normalisation of a constant image divides 0 by 0 in the reference (NaN): refused
    for fn, key in ((pc.chen_blum, "Q_CB"), (pc.chen_varshney, "Q_CV")):
        with pytest.raises(InputError, match=f"{key} is undefined when the fused image is constant"):
            fn([a, b], c)
        with pytest.raises(InputError, match=f"{key} is undefined when the first source is constant"):
            fn([c, b], sharp)
    with pytest.raises(InputError, match="Q_CB is undefined"):
        pc.chen_blum([z, z], z)  # all-zero images: contrast 0/0
    with pytest.raises(InputError, match="Q_CV is undefined when neither source has any gradient"):
        pc.chen_varshney([z, z], sharp)
    # VIFF: no signal variance anywhere -> every term is the 1e-7 floor -> 1 (the reference's value)
    assert pc.viff([c, c], c) == 1.0
    assert math.isfinite(pc.viff([a, b], c)) and pc.viff([a, b], c) < 1e-3
    # an all-zero source is fine for Q_CV (no saliency from it)
    assert math.isfinite(pc.chen_varshney([z, b], sharp))


@pytest.mark.parametrize("key", sorted(RTOL))
def test_bad_inputs_raise_input_error(key, pair):
    x = pair[0]
    fn = METRICS[key].function
    with pytest.raises(InputError, match="size"):
        fn([x, x], x[:-1])
    with pytest.raises(InputError, match="2 sources"):
        fn([x], x)
    with pytest.raises(InputError, match="2 sources"):
        fn([x, x, x], x)


def test_viff_needs_four_scales():
    x = np.random.default_rng(0).integers(0, 256, (40, 60)).astype(np.uint8)
    with pytest.raises(InputError, match="VIFF needs images of at least 41x41"):
        pc.viff([x, x], x)
    y = np.random.default_rng(0).integers(0, 256, (41, 41)).astype(np.uint8)
    assert math.isfinite(pc.viff([y, y[::-1]], y))


def test_matlab_round_and_normalize1():
    np.testing.assert_array_equal(pc.matlab_round(np.array([0.5, 1.5, 2.5, -0.5, 2.4999])), [1, 2, 3, -1, 2])
    # (1 - 0) / 2 * 255 = 127.5 -> 128 (MATLAB), numpy would give 128 here but 126 for 126.5
    np.testing.assert_array_equal(pc.normalize1(np.array([[0.0, 1.0, 2.0]]), "x", "Q_CB"), [[0, 128, 255]])
    np.testing.assert_array_equal(pc.normalize1(np.zeros((2, 2)), "x", "Q_CB"), np.zeros((2, 2)))


def test_freqspace_matches_matlab_for_odd_and_even_sizes():
    # freqspace(n): ((0:n-1) - floor(n/2)) * 2/n ; zero frequency at index floor(n/2) (fftshift layout)
    r = pc._freqspace_radius((4, 5), 1.0, 1.0)
    np.testing.assert_allclose(r[2], np.abs(np.array([-2, -1, 0, 1, 2]) * 2 / 5))
    np.testing.assert_allclose(r[:, 2], np.abs(np.array([-2, -1, 0, 1]) * 2 / 4))
    assert r[2, 2] == 0.0
