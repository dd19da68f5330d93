"""Image-feature metrics (Q_G, Q_G_yl, Q_ABF_vifb, Q_M, Q_SF, Q_P) and phase congruency.

Reference values: ``shared/refmetrics/cases/*/refmetrics_F_*.json``, made by running the MATLAB
code (Zheng Liu's ``metricXydeas``/``metricPWW``/``metricZheng``/``metricZhao`` with
``myphasecong3``, Yu Liu's corrected ``metricXydeas``, VIFB's ``metricsQabf``) unmodified under
GNU Octave on the same PNGs (see ``shared/refmetrics/README.md``).
Measured agreement (``benchmarks/metrics_deviation.py``): <= 5e-13 relative for the Sobel/Haar
metrics and <= 7e-12 for Q_P (FFT round-off: pocketfft here, FFTW in Octave). Tolerances: 1e-9
relative, 1e-7 for Q_P.
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
from mfif.metrics import gradient as grad
from mfif.metrics.phase_congruency import phase_congruency
from tests.conftest import SHARED
from tests.metrics.refcases import load_png as _png
from tests.metrics.refcases import reference_files as _reference_files
from tests.helpers import complementary_pair, textured_image

# metric key -> relative tolerance against the MATLAB reference
RTOL = {
    "Q_G": 1e-9,
    "Q_G_yl": 1e-9,
    "Q_ABF_vifb": 1e-9,
    "Q_M": 1e-9,
    "Q_SF": 1e-9,
    "Q_P": 1e-7,
}






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
    # No case has a null (NaN/Inf in MATLAB) for these keys; a null appearing means the data changed.
    assert expected is not None, f"{name}: reference {key} is null"
    ours = _score(shared_dir, name, key)
    assert isinstance(ours, float)
    assert ours == pytest.approx(expected, rel=RTOL[key], abs=0.0), f"{name}: {key}"


@pytest.mark.shared
@pytest.mark.parametrize("key", ["Q_G", "Q_G_yl", "Q_P"])
def test_sharp_ground_truth_beats_average_on_reference_cases(shared_dir, key):
    cases = sorted((shared_dir / "refmetrics" / "cases").glob("t*"))
    assert cases
    for d in cases:
        assert _score(shared_dir, f"{d.name}/F_sharp", key) > _score(shared_dir, f"{d.name}/F_avg", key), \
            f"{d.name}: {key}"


# ---------------------------------------------------------------------------------------------
# properties that do not need the reference data


def _u8(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def grey():
    return _u8(textured_image(80, 96, 1, seed=11)[0])


@pytest.fixture(scope="module")
def triple():
    gt = textured_image(96, 128, 1, seed=5)
    a, b, _ = complementary_pair(gt, sigma=3.0)
    return _u8(a[0]), _u8(b[0]), _u8(gt[0]), _u8((a[0] + b[0]) / 2)


@pytest.mark.parametrize("key", ["Q_G", "Q_G_yl", "Q_ABF_vifb", "Q_M", "Q_P"])
def test_sharp_fusion_beats_average(key, triple):
    a, b, sharp, avg = triple
    fn = METRICS[key].function
    assert fn([a, b], sharp) > fn([a, b], avg)


def test_spatial_frequency_error_is_closer_to_zero_for_sharp_fusion(triple):
    a, b, sharp, avg = triple
    q_sharp = grad.spatial_frequency_error([a, b], sharp)
    q_avg = grad.spatial_frequency_error([a, b], avg)
    assert q_avg < q_sharp <= 0.0


def test_identical_inputs(grey):
    x = grey
    s = lambda gamma, kappa, t: gamma / (1 + math.exp(kappa * t))  # noqa: E731  sigmoid at offset t
    # ZL: G = 1 and A = 1 everywhere -> (1 / (1 + e^-5))^2 per pixel, pooled per pixel
    assert grad.gradient_preservation_zl([x, x], x) == pytest.approx(s(1, -10, 0.5) * s(1, -20, 0.25), rel=1e-12)
    # YL (Petrovic's constants): G = A = 1
    expected_yl = s(0.9994, -15, 0.5) * s(0.9879, -22, 0.2)
    assert grad.gradient_preservation_yl([x, x], x) == pytest.approx(expected_yl, rel=1e-12)
    assert expected_yl == pytest.approx(0.97479, abs=1e-5)
    # VIFB quirk: g_A == g_F -> relative strength 255 g_F, the strength sigmoid saturates at 0.9994
    assert grad.gradient_preservation_vifb([x, x], x) == pytest.approx(0.9994 * s(0.9879, -22, 0.2), rel=1e-12)
    # Q_M: EP = 3 in every band -> 3; Q_SF: SF_F = SF_R -> 0
    assert grad.multiscale_edge_preservation([x, x], x) == pytest.approx(3.0, rel=1e-12)
    assert grad.spatial_frequency_error([x, x], x) == 0.0
    # Q_P: the masked source maps differ from the unmasked fused map near mask edges -> a bit below 1
    q_p = grad.phase_congruency_feature([x, x], x)
    assert 0.9 < q_p < 1.0
    assert q_p == pytest.approx(0.959152, abs=1e-6)


def test_constant_images_are_defined_or_refused(grey):
    c7 = np.full_like(grey, 7)
    c9 = np.full_like(grey, 9)
    zero = np.zeros_like(grey)
    # defined (1e-5 guards): a constant triple scores like identical inputs
    assert grad.gradient_preservation_zl([c7, c7], c7) == pytest.approx(
        grad.gradient_preservation_zl([grey, grey], grey), rel=1e-9)
    assert math.isfinite(grad.gradient_preservation_yl([zero, zero], zero))
    # a constant fused image against textured sources loses (almost) everything
    assert grad.gradient_preservation_yl([grey, 255 - grey], c7) < 0.1
    assert grad.spatial_frequency_error([grey, 255 - grey], c7) == -1.0
    # 0/0 in the formula -> InputError with a message, never a NaN
    with pytest.raises(InputError, match="Q_ABF_vifb is undefined"):
        grad.gradient_preservation_vifb([zero, zero], grey)
    with pytest.raises(InputError, match="Q_M is undefined"):
        grad.multiscale_edge_preservation([c7, c9], grey)
    with pytest.raises(InputError, match="Q_SF is undefined"):
        grad.spatial_frequency_error([c7, c9], grey)
    with pytest.raises(InputError, match="Q_P is undefined"):
        grad.phase_congruency_feature([c7, c9], grey)
    with pytest.raises(InputError, match="Q_P is undefined for a constant fused image"):
        grad.phase_congruency_feature([grey, 255 - grey], c7)
    for key in RTOL:
        for sources, fused in (([c7, c9], grey), ([grey, 255 - grey], c7), ([c7, grey], grey)):
            try:
                value = METRICS[key].function(sources, fused)
            except InputError:
                continue
            assert math.isfinite(value), key


@pytest.mark.parametrize("key", sorted(RTOL))
def test_bad_inputs_raise_input_error(key, grey):
    fn = METRICS[key].function
    with pytest.raises(InputError, match="size"):
        fn([grey, grey], grey[:-1])
    with pytest.raises(InputError, match="size"):
        fn([grey, grey[:, :-2]], grey)
    with pytest.raises(InputError, match="2 sources"):
        fn([grey], grey)
    with pytest.raises(InputError, match="2 sources"):
        fn([grey, grey, grey], grey)


def test_q_m_needs_two_haar_levels():
    tiny = np.arange(9, dtype=np.uint8).reshape(3, 3)
    with pytest.raises(InputError, match="4x4"):
        grad.multiscale_edge_preservation([tiny, tiny], tiny)


@pytest.mark.parametrize("key", sorted(RTOL))
def test_colour_and_odd_sizes(key, grey):
    """RGB goes through the reference's rgb2gray + uint8 rounding (a replicated grey image scores
    like the grey one); odd sizes work (Haar drops the odd last row/column, as buildWpyr does)."""
    fn = METRICS[key].function
    a, b = grey[:-1, :-3], np.roll(grey, 7, axis=1)[:-1, :-3]
    f = ((a.astype(np.uint16) + b) // 2).astype(np.uint8)
    assert a.shape[0] % 2 and a.shape[1] % 2
    rgb = lambda x: np.repeat(x[..., None], 3, axis=2)  # noqa: E731
    value = fn([a, b], f)
    assert math.isfinite(value)
    assert fn([rgb(a), rgb(b)], rgb(f)) == pytest.approx(value, rel=1e-12)


def test_phase_congruency_single_and_stacked_agree(grey):
    x = grey.astype(np.float64)
    y = np.roll(x, 5, axis=0)
    pc, big_m, small_m = phase_congruency(np.stack([x, y]))
    pc1, m1, mm1 = phase_congruency(y)
    np.testing.assert_allclose(pc[1], pc1, rtol=0, atol=1e-12)
    np.testing.assert_allclose(big_m[1], m1, rtol=0, atol=1e-12)
    np.testing.assert_allclose(small_m[1], mm1, rtol=0, atol=1e-12)
    assert pc.min() >= 0 and pc.max() <= 1
    assert np.all(big_m >= small_m)


def test_phase_congruency_marks_a_step_edge():
    img = np.zeros((64, 64))
    img[:, 32:] = 200.0
    pc, big_m, _ = phase_congruency(img)
    # the edge columns (31/32) carry the phase congruency; the flat interior far from it does not
    assert pc[:, 31:33].mean() > 0.5
    assert pc[:, 8:20].max() < 0.05
    assert big_m[:, 31:33].mean() > big_m[:, 8:20].mean()
