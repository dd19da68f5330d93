"""No-reference metrics of the fused image alone (EN, SD, AG, SF, EI; ``_yl`` and ``_vifb``).

Reference values: ``shared/refmetrics/cases/*/refmetrics_F_*.json``, made by running Yu Liu's
MFIF-Metrics (``EN``, ``SD``, ``AG``, ``SF``, ``metricsEdge_intensity``) and VIFB's
``metricsEntropy``/``metricsVariance``/``metricsAvg_gradient``/``metricsSpatial_frequency``/
``metricsEdge_intensity`` unmodified under GNU Octave on the same PNGs.
Measured agreement (``benchmarks/metrics_deviation.py``): <= 1.1e-12 relative (AG_yl; Octave's
sequential mean of 270k terms), <= 3e-15 for the others. Tolerance: 1e-9 relative for all.
The plain keys EN, SD, AG, SF are aliases of the ``_yl`` definitions and are checked against the
``_yl`` reference values.
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
from mfif.metrics import noreference as nr
from tests.conftest import SHARED
from tests.metrics.refcases import load_png as _png
from tests.metrics.refcases import reference_files as _reference_files
from tests.helpers import complementary_pair, textured_image

# metric key -> relative tolerance against the MATLAB reference
RTOL = {
    "EN_yl": 1e-9, "SD_yl": 1e-9, "AG_yl": 1e-9, "SF_yl": 1e-9, "EI_yl": 1e-9,
    "EN_vifb": 1e-9, "SD_vifb": 1e-9, "AG_vifb": 1e-9, "SF_vifb": 1e-9, "EI_vifb": 1e-9,
}
ALIASES = {"EN": "EN_yl", "SD": "SD_yl", "AG": "AG_yl", "SF": "SF_yl"}
ALL_KEYS = sorted(RTOL) + sorted(ALIASES)






@lru_cache(maxsize=None)
def _case(shared: Path, name: str):
    case, fused = name.split("/")
    d = shared / "refmetrics" / "cases" / case
    ref = json.loads((d / f"refmetrics_{fused}.json").read_text())
    return _png(d / "A.png"), _png(d / "B.png"), _png(d / f"{fused}.png"), ref


@pytest.mark.shared
@pytest.mark.parametrize("key", ALL_KEYS)
@pytest.mark.parametrize("name", _reference_files())
def test_matches_matlab_reference(shared_dir, name, key):
    a, b, f, ref = _case(shared_dir, name)
    ref_key = ALIASES.get(key, key)
    expected = ref[ref_key]
    # No case has a null (NaN/Inf in MATLAB) for these keys; a null appearing means the data changed.
    assert expected is not None, f"{name}: reference {ref_key} is null"
    ours = METRICS[key].function([a, b], f)
    assert isinstance(ours, float)
    assert ours == pytest.approx(expected, rel=RTOL[ref_key], abs=0.0), f"{name}: {key}"
    # fused-only: the sources are ignored
    assert METRICS[key].function(None, f) == ours
    assert METRICS[key].function([], f) == ours


def test_table_entries():
    for key in ALL_KEYS:
        m = METRICS[key]
        assert m.n_sources == 0 and m.higher_is_better and not m.needs_ground_truth
    for alias, target in ALIASES.items():
        assert METRICS[alias].function is METRICS[target].function
        assert f"alias of {target}" in METRICS[alias].reference


# ---------------------------------------------------------------------------------------------
# properties that do not need the reference data


def _u8(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)


def test_hand_computed_values():
    f = np.array([[0, 0, 10], [20, 0, 40]], dtype=np.uint8)
    # EN: levels {0: 3, 10: 1, 20: 1, 40: 1} of 6
    p = np.array([3, 1, 1, 1]) / 6
    assert nr.entropy(None, f) == pytest.approx(-np.sum(p * np.log2(p)), rel=1e-15)
    # SD_yl: mean of column sample stds; SD_vifb: population std of all pixels
    cols = [np.std(c, ddof=1) for c in f.T.astype(float)]
    assert nr.standard_deviation_yl(None, f) == pytest.approx(np.mean(cols), rel=1e-15)
    assert nr.standard_deviation_vifb(None, f) == pytest.approx(np.std(f.astype(float)), rel=1e-15)
    # SF: row diffs (20, 0, 30) and column diffs (0, 10, -20, 40) over M N = 6
    assert nr.spatial_frequency(None, f) == pytest.approx(math.sqrt((400 + 900) / 6 + (100 + 400 + 1600) / 6))
    # AG_yl: forward differences, last row/column 0
    gx = np.array([[20, 0, 30], [0, 0, 0]], float)
    gy = np.array([[0, 10, 0], [-20, 40, 0]], float)
    assert nr.average_gradient_yl(None, f) == pytest.approx(np.mean(np.sqrt((gx**2 + gy**2) / 2)))
    # AG_vifb: np.gradient == MATLAB gradient; divided by (M-1)(N-1) = 2
    gyv, gxv = np.gradient(f.astype(float))
    assert nr.average_gradient_vifb(None, f) == pytest.approx(np.sum(np.sqrt((gxv**2 + gyv**2) / 2)) / 2)


def test_edge_intensity_matches_opencv_sobel_with_replicate_border():
    import cv2

    f = _u8(textured_image(40, 50, 1, seed=2)[0])
    gx = cv2.Sobel(f.astype(np.float64), cv2.CV_64F, 0, 1, ksize=3, borderType=cv2.BORDER_REPLICATE)
    gy = cv2.Sobel(f.astype(np.float64), cv2.CV_64F, 1, 0, ksize=3, borderType=cv2.BORDER_REPLICATE)
    assert nr.edge_intensity(None, f) == pytest.approx(np.mean(np.hypot(gx, gy)), rel=1e-12)


def test_sharp_image_scores_higher_than_blurred_average():
    gt = textured_image(96, 128, 1, seed=5)
    a, b, _ = complementary_pair(gt, sigma=3.0)
    sharp, avg = _u8(gt[0]), _u8((a[0] + b[0]) / 2)
    for key in ("SD_yl", "AG_yl", "SF_yl", "EI_yl", "SD_vifb", "AG_vifb"):
        assert METRICS[key].function(None, sharp) > METRICS[key].function(None, avg), key


@pytest.mark.parametrize("key", ALL_KEYS)
def test_constant_image_scores_zero(key):
    c = np.full((20, 30), 77, np.uint8)
    value = METRICS[key].function(None, c)
    assert value == 0.0 and not math.copysign(1.0, value) < 0  # 0.0, not -0.0


@pytest.mark.parametrize("key", ALL_KEYS)
def test_colour_is_converted_like_the_reference(key):
    f = _u8(textured_image(30, 40, 3, seed=4).transpose(1, 2, 0))  # (H, W, 3)
    w = (0.298936021293775, 0.587043074451121, 0.114020904255103)
    grey = np.round(f[..., 0] * w[0] + f[..., 1] * w[1] + f[..., 2] * w[2]).astype(np.uint8)
    assert METRICS[key].function(None, f) == pytest.approx(METRICS[key].function(None, grey), rel=1e-15)


def test_degenerate_shapes():
    row = np.array([[1, 5, 9, 20]], dtype=np.uint8)
    # MATLAB std of a 1xN matrix is the std of the row
    assert nr.standard_deviation_yl(None, row) == pytest.approx(np.std(row.astype(float), ddof=1))
    assert nr.standard_deviation_yl(None, np.array([[7]], np.uint8)) == 0.0
    with pytest.raises(InputError, match="2x2"):
        nr.average_gradient_vifb(None, row)
    with pytest.raises(InputError):
        nr.entropy(None, np.zeros((4, 4, 4), np.uint8))  # RGBA
