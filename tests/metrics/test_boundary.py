"""Boundary-band metrics (PSNR_band, SSIM_band): pinned to hand-computed cases, and `mfif eval`
reading the focus maps beside the sources."""
from __future__ import annotations

import math

import numpy as np
import pytest

from mfif.errors import InputError
from mfif.evaluation.runner import EvalConfig, evaluate
from mfif.io import write_image
from mfif.metrics.boundary import (BAND_METRICS, band_metric, boundary_band, focus_labels, psnr_band,
                                   ssim_band)


def _halves(h: int, w: int, split: int) -> np.ndarray:
    """Two complementary focus maps: frame 0 in focus left of column ``split``."""
    a = np.zeros((h, w), np.float32)
    a[:, :split] = 1
    return np.stack([a, 1 - a])


def test_band_is_the_chamfer_distance_to_another_label():
    labels = np.zeros((9, 9), np.int32)
    labels[4, 4] = 1  # one pixel of another label
    # the centre is at distance 1 from its neighbours; the others at their offset's 5x5 chamfer
    # length from it: (1, 0) -> 1, (1, 1) -> 1.4, (2, 0) -> 2, (2, 1) -> 2.1969 (sqrt 5 = 2.236)
    assert boundary_band(labels, 1).sum() == 1 + 4
    assert boundary_band(labels, 1.39).sum() == 1 + 4
    assert boundary_band(labels, 1.4).sum() == 1 + 4 + 4  # + diagonals
    assert boundary_band(labels, 2.19).sum() == 1 + 4 + 4 + 4  # + (2, 0)
    assert boundary_band(labels, 2.2).sum() == 1 + 4 + 4 + 4 + 8  # + knight's moves
    assert not boundary_band(np.zeros((5, 5), np.int32), 3).any()  # one label: no boundary (borders are none)


def test_labels_are_the_in_focus_frame():
    maps = np.zeros((3, 2, 3), np.float32)
    maps[0, :, 0] = 1
    maps[1, :, 1] = 1
    maps[2, :, 2] = 1
    assert focus_labels(maps).tolist() == [[0, 1, 2], [0, 1, 2]]
    assert focus_labels([maps[0] * 255]).tolist() == [[0, 1, 1], [0, 1, 1]]  # one map: >= half scale
    assert focus_labels([np.uint8(255) * maps[0].astype(np.uint8)]).tolist() == [[0, 1, 1], [0, 1, 1]]


def test_psnr_band_hand_computed():
    # 4 x 12, frame 0 in focus on columns 0..5: with width 2 the band is columns 4..7 (16 pixels)
    focus = _halves(4, 12, 6)
    gt = np.full((4, 12), 100, np.uint8)
    fused = gt.copy()
    fused[0, 4] = 110  # in the band: squared error 100
    fused[0, 0] = 150  # outside: ignored by the band metric
    # MSE over the band = 100 / 16 = 6.25, RMSE 2.5: 20 log10(255 / 2.5) = 20 log10(102) = 40.1720 dB
    assert psnr_band(None, fused, ground_truth=gt, focus_maps=focus, width=2) == pytest.approx(40.17200, abs=1e-5)
    # width 1: columns 5..6, no error there
    assert psnr_band(None, fused, ground_truth=gt, focus_maps=focus, width=1) == math.inf
    # width 6 takes columns 0..11: MSE (100 + 2500) / 48, as a whole-image PSNR
    assert psnr_band(None, fused, ground_truth=gt, focus_maps=focus, width=6) == pytest.approx(
        20 * math.log10(255 / math.sqrt(2600 / 48)), abs=1e-9)


def test_ssim_band_hand_computed():
    # 16 x 40, boundary between columns 19 and 20; band width 8 = columns 12..27, whose 11x11
    # windows cover columns 7..32. GT constant 100; the fused image is 110 from column 7 on, so
    # every band window sees constant 100 vs constant 110: SSIM = (2*100*110 + C1) / (100^2 + 110^2 + C1)
    # times (0 + C2) / (0 + C2) = 1, with C1 = (0.01 * 255)^2 = 6.5025.
    focus = _halves(16, 40, 20)
    gt = np.full((16, 40), 100, np.uint8)
    fused = gt.copy()
    fused[:, 7:] = 110
    expected = (2 * 100 * 110 + 6.5025) / (100 ** 2 + 110 ** 2 + 6.5025)  # 0.995476...
    assert ssim_band(None, fused, ground_truth=gt, focus_maps=focus) == pytest.approx(expected, abs=1e-12)
    fused[:, :7] = 0  # far from the band: no change there
    assert ssim_band(None, fused, ground_truth=gt, focus_maps=focus) == pytest.approx(expected, abs=1e-12)


def test_names_errors_and_table():
    assert set(BAND_METRICS) == {"PSNR_band", "SSIM_band"}
    assert band_metric("PSNR_band4").function.keywords["width"] == 4
    assert band_metric("SSIM_band").function.keywords["width"] == 8
    assert band_metric("PSNR_bandx") is None and band_metric("PSNR_GT") is None
    gt = np.full((4, 12), 100, np.uint8)
    with pytest.raises(InputError, match="needs the focus maps"):
        psnr_band(None, gt, ground_truth=gt)
    with pytest.raises(InputError, match="no focus boundary"):
        psnr_band(None, gt, ground_truth=gt, focus_maps=np.ones((1, 4, 12), np.float32))
    with pytest.raises(InputError, match="focus maps have size"):
        psnr_band(None, gt, ground_truth=gt, focus_maps=_halves(4, 10, 5))


def test_eval_reads_focus_maps_beside_the_sources(tmp_path):
    """`mfif eval --metrics PSNR_band2`: the maps in focus/ give the hand-computed value above;
    an item without maps and an item without GT get no band metric."""
    root = tmp_path / "set"
    (root / "focus").mkdir(parents=True)
    gt = np.full((1, 4, 12), 100 / 255, np.float32)
    a = gt.copy()
    a[0, 0, 4] = 110 / 255  # 'average' of (a, gt) is 105 there: MSE 25 / 16 in the band
    focus = _halves(4, 12, 6)
    for name in ("x", "nomaps"):
        write_image(root / f"{name}_A.png", a)
        write_image(root / f"{name}_B.png", gt)
        write_image(root / f"{name}_GT.png", gt)
    write_image(root / "focus" / "x_A.png", focus[0][None])
    write_image(root / "focus" / "x_B.png", focus[1][None])
    write_image(root / "nogt_A.png", a)
    write_image(root / "nogt_B.png", gt)
    config = EvalConfig(methods=["average"], out_dir=tmp_path / "out", metrics=["PSNR_GT", "PSNR_band2"],
                        progress=False)
    rows = {r.item: r.values for r in evaluate([root], config).rows}
    assert rows["x"]["PSNR_band2"] == pytest.approx(20 * math.log10(255 / math.sqrt(25 / 16)), abs=1e-9)
    assert "PSNR_band2" not in rows["nomaps"] and "PSNR_GT" in rows["nomaps"]
    assert rows["nogt"] == {}
