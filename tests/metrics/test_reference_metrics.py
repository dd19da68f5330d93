"""Reference-image metrics (SSIM_GT, PSNR_GT, GMSD_GT) and VIFB's source-based PSNR_vifb / RMSE_vifb.

Reference values: ``shared/refmetrics/cases/*/refmetrics_F_*.json`` (MATLAB code run unmodified under
GNU Octave). Largest measured relative deviation: SSIM_GT 3e-14, PSNR_GT 4e-16, GMSD_GT 6e-14,
PSNR_vifb and RMSE_vifb 0 (bit-identical). Tolerance: 1e-9 relative (GMSD_GT: also 1e-12 absolute,
its value is 0 for F = GT).

Reference ``null``: PSNR_GT when F equals the ground truth (MATLAB's PSNR.m raises an error); ours
returns ``inf``. The GT metrics are only defined for the synthetic cases t1..t4 (they have GT.png).
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
from mfif.metrics import reference as rf
from tests.conftest import SHARED
from tests.metrics.refcases import load_png as _png
from tests.metrics.refcases import reference_files as _reference_files
from tests.helpers import textured_image

RTOL = {"SSIM_GT": 1e-9, "PSNR_GT": 1e-9, "GMSD_GT": 1e-9, "PSNR_vifb": 1e-9, "RMSE_vifb": 1e-9}
GT_KEYS = ("SSIM_GT", "PSNR_GT", "GMSD_GT")






@lru_cache(maxsize=None)
def _case(shared: Path, name: str):
    case, fused = name.split("/")
    d = shared / "refmetrics" / "cases" / case
    ref = json.loads((d / f"refmetrics_{fused}.json").read_text())
    gt = _png(d / "GT.png") if (d / "GT.png").exists() else None
    return _png(d / "A.png"), _png(d / "B.png"), _png(d / f"{fused}.png"), gt, ref


@pytest.mark.shared
@pytest.mark.parametrize("key", sorted(RTOL))
@pytest.mark.parametrize("name", _reference_files())
def test_matches_matlab_reference(shared_dir, name, key):
    a, b, f, gt, ref = _case(shared_dir, name)
    if key in GT_KEYS and gt is None:
        assert key not in ref, f"{name}: reference has {key} but the case has no GT.png"
        with pytest.raises(InputError, match="needs a ground-truth image"):
            METRICS[key].function([a, b], f)
        return
    ours = METRICS[key].function([a, b], f, ground_truth=gt)
    assert isinstance(ours, float)
    expected = ref[key]
    if expected is None:
        assert key == "PSNR_GT" and np.array_equal(f, gt), f"{name}: reference {key} is null"
        assert ours == math.inf
        return
    assert ours == pytest.approx(expected, rel=RTOL[key], abs=1e-12 if key == "GMSD_GT" else 0.0), name


# ---------------------------------------------------------------------------------------------
# properties that do not need the reference data


def _u8(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def img():
    return _u8(textured_image(64, 80, 1, seed=2)[0])


def test_textbook_values(img):
    x = img
    y = np.clip(x.astype(int) + 4, 0, 255).astype(np.uint8)
    assert rf.ssim_to_ground_truth([x, y], x, ground_truth=x) == pytest.approx(1.0, rel=1e-12)
    assert rf.psnr_to_ground_truth([x, y], x, ground_truth=x) == math.inf
    assert rf.gmsd_to_ground_truth([x, y], x, ground_truth=x) == 0.0
    # PSNR of a known error: every pixel off by 4 (where not clipped)
    mse = np.mean((x.astype(float) - y) ** 2)
    assert rf.psnr_to_ground_truth([x, y], y, ground_truth=x) == pytest.approx(10 * math.log10(255 ** 2 / mse), rel=1e-12)
    # VIFB's non-standard RMSE: sqrt of the *sum* of squared errors over the pixel count
    e = math.sqrt(np.sum((x.astype(float) - y) ** 2)) / x.size
    assert rf.rmse_vifb([x, x], y) == pytest.approx(e, rel=1e-12)
    assert rf.psnr_vifb([x, x], y) == pytest.approx(20 * math.log10(255 / math.sqrt(e)), rel=1e-12)
    assert rf.rmse_vifb([x, x], x) == 0.0 and rf.psnr_vifb([x, x], x) == math.inf


def test_worse_fusion_scores_worse(img):
    x = img
    noise = np.random.default_rng(0).integers(-20, 21, x.shape)
    bad = np.clip(x.astype(int) + noise, 0, 255).astype(np.uint8)
    slight = np.clip(x.astype(int) + noise // 10, 0, 255).astype(np.uint8)
    assert rf.ssim_to_ground_truth(None, slight, ground_truth=x) > rf.ssim_to_ground_truth(None, bad, ground_truth=x)
    assert rf.psnr_to_ground_truth(None, slight, ground_truth=x) > rf.psnr_to_ground_truth(None, bad, ground_truth=x)
    assert rf.gmsd_to_ground_truth(None, slight, ground_truth=x) < rf.gmsd_to_ground_truth(None, bad, ground_truth=x)


def test_constant_images_are_defined(img):
    c = np.full_like(img, 90)
    assert rf.ssim_to_ground_truth([c, c], c, ground_truth=c) == pytest.approx(1.0, rel=1e-12)
    assert 0 < rf.gmsd_to_ground_truth([c, c], c, ground_truth=img) < 1  # structureless F vs textured GT
    assert rf.gmsd_to_ground_truth([c, c], c, ground_truth=c) == 0.0
    # two different constants differ only at the border (zero padding of the gradient filters)
    assert 0 < rf.gmsd_to_ground_truth([c, c], c, ground_truth=np.full_like(img, 10)) < 1
    assert math.isfinite(rf.psnr_vifb([c, img], c))


def test_gmsd_odd_sizes_and_known_map():
    # the 2x2 averaging uses zero padding past the last row/column (conv2 'same'): an odd-sized
    # image keeps its last row/column, averaged with zeros
    x = np.arange(35, dtype=np.uint8).reshape(5, 7) * 7
    prepared = rf._gmsd_prepare(x.astype(float))
    assert prepared.shape == (3, 4)
    assert prepared[0, 0] == pytest.approx(x[:2, :2].mean())
    assert prepared[2, 3] == pytest.approx(x[4, 6] / 4)


@pytest.mark.parametrize("key", GT_KEYS)
def test_ground_truth_problems_raise_input_error(key, img):
    fn = METRICS[key].function
    assert METRICS[key].needs_ground_truth and METRICS[key].n_sources is None
    with pytest.raises(InputError, match="needs a ground-truth image"):
        fn([img, img], img)
    with pytest.raises(InputError, match="ground truth has size"):
        fn([img, img], img, ground_truth=img[:-1])
    with pytest.raises(InputError, match="source 1 has size"):
        fn([img, img[:, 1:]], img, ground_truth=img)


@pytest.mark.parametrize("key", ["PSNR_vifb", "RMSE_vifb"])
def test_source_metrics_bad_inputs(key, img):
    fn = METRICS[key].function
    assert not METRICS[key].needs_ground_truth and METRICS[key].n_sources == 2
    with pytest.raises(InputError, match="size"):
        fn([img, img], img[:-1])
    with pytest.raises(InputError, match="2 sources"):
        fn([img, img, img], img)
