"""Q_Y_stable (issue 18): Yang's metric with an exact floor for flat windows.

Pinned three ways:
- to the MATLAB reference values of Q_Y_yl (``shared/refmetrics``), which are well conditioned on
  every reference case: measured deviation <= 5e-12 on 11 of 12 cases; r2/F_avg 5.9e-6 (the
  averaged seascape has windows flat in F whose reference SSIM is a ratio of round-off);
- to hand-computed values on flat windows whose statistics carry round-off of +-1e-11;
- to an independent brute-force computation (two-pass local variances, exactly 0 on flat windows)
  on a crop of liu-grayscale g_06 fused by gff, where Q_Y_yl is 252 (out of its [-1, 1] range).
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from mfif.evaluation.report import markdown_table, summarize
from mfif.evaluation.runner import DEFAULT_METRICS, EvalRow
from mfif.metrics import METRICS
from mfif.metrics import structural as st
from mfif.metrics._common import to_uint8
from tests.metrics.refcases import load_png
from tests.metrics.refcases import reference_files

LOOSE = {"r2_seascape_colour_liucnn/F_avg": 1e-5}


@pytest.mark.parametrize("name", reference_files())
def test_equals_the_reference_q_y_yl_where_it_is_well_conditioned(shared_dir, name):
    case, fused = name.split("/")
    d = shared_dir / "refmetrics" / "cases" / case
    ref = json.loads((d / f"refmetrics_{fused}.json").read_text())["Q_Y_yl"]
    a, b, f = load_png(d / "A.png"), load_png(d / "B.png"), load_png(d / f"{fused}.png")
    got = METRICS["Q_Y_stable"].function([a, b], f)
    assert -1.0 <= ref <= 1.0
    assert got == pytest.approx(ref, abs=LOOSE.get(name, 1e-9))


def test_flat_windows_with_round_off_give_the_hand_value():
    # every window flat: means 100 (A), 50 (B), 80 (F); variances and covariances are round-off
    rng = np.random.default_rng(0)
    shape = (6, 7)
    mu = [np.full(shape, 100.0), np.full(shape, 50.0), np.full(shape, 80.0)]
    var = [rng.uniform(-1e-11, 1e-11, shape) for _ in range(3)]
    cov = {pair: rng.uniform(-3e-11, 3e-11, shape) for pair in ((0, 1), (0, 2), (1, 2))}
    # SSIM of two flat windows = luminance term; SSIM(A, B) = 2*100*50/(100^2+50^2) = 0.8 >= 0.75,
    # so Q = 0.5 SSIM(A, F) + 0.5 SSIM(B, F) (lambda = 0.5: both sources flat)
    expected = 0.5 * (2 * 100 * 80 / (100**2 + 80**2)) + 0.5 * (2 * 50 * 80 / (50**2 + 80**2))
    assert st._yang_stable(mu, var, cov) == pytest.approx(expected, abs=1e-12)
    # one source textured, the other flat: SSIM(A, B) = 0 < 0.75 -> max(SSIM(A, F), SSIM(B, F)),
    # F = A textured: SSIM(A, F) = 1 exactly
    var[0] = np.full(shape, 40.0)
    var[2] = np.full(shape, 40.0)
    cov[0, 2] = np.full(shape, 40.0)
    assert st._yang_stable(mu[:1] * 3, var, cov) == pytest.approx(1.0, abs=1e-12)


def test_identical_images_with_flat_areas_score_exactly_one():
    img = np.zeros((40, 48), np.uint8)
    img[:, 24:] = 200  # two flat halves
    img[10:20, 5:40] = np.arange(35, dtype=np.uint8)[None] * 7  # and some texture
    assert METRICS["Q_Y_stable"].function([img, img], img) == pytest.approx(1.0, abs=1e-12)


def _brute_force_q_y_stable(a, b, f):
    """Direct windowed computation: two-pass (co)variances per 7x7 window, flat = variance < 1e-6."""
    w = st._YANG_WINDOW
    h, wd = a.shape
    total, n = 0.0, 0
    for y in range(h - 6):
        for x in range(wd - 6):
            p = [im[y:y + 7, x:x + 7] for im in (a, b, f)]
            mu = [float((w * q).sum()) for q in p]
            var = [float((w * (q - m) ** 2).sum()) for q, m in zip(p, mu)]
            var = [0.0 if v < 1e-6 else v for v in var]

            def ssim(i, j):
                c = 0.0 if var[i] == 0 or var[j] == 0 else float((w * (p[i] - mu[i]) * (p[j] - mu[j])).sum())
                return ((2 * mu[i] * mu[j] + 2e-16) * (2 * c + 2e-16)) / ((mu[i] ** 2 + mu[j] ** 2 + 2e-16) * (var[i] + var[j] + 2e-16))

            q_ab, q_af, q_bf = ssim(0, 1), ssim(0, 2), ssim(1, 2)
            lam = 0.5 if var[0] == var[1] == 0 else var[0] / (var[0] + var[1])
            total += lam * q_af + (1 - lam) * q_bf if q_ab >= 0.75 else max(q_af, q_bf)
            n += 1
    return total / n


def test_matches_brute_force_where_q_y_yl_is_round_off(shared_dir):
    from mfif.api import fuse
    from mfif.io import read_image

    d = shared_dir / "data" / "mf-real" / "liu-grayscale"
    a, b = read_image(d / "g_06_A.png"), read_image(d / "g_06_B.png")
    f = fuse([a, b], "gff").fused
    crop = (slice(192, 224), slice(16, 48))  # a flat dark area with an edge: Q_Y_yl is 7320 here
    ga, gb, gf = (to_uint8(x)[crop] for x in (a, b, f))
    yl = METRICS["Q_Y_yl"].function([ga, gb], gf)
    stable = METRICS["Q_Y_stable"].function([ga, gb], gf)
    assert not METRICS["Q_Y_yl"].in_range(yl)  # the defect: reference arithmetic gives round-off
    assert -1.0 <= stable <= 1.0
    expected = _brute_force_q_y_stable(*(x.astype(np.float64) for x in (ga, gb, gf)))
    assert stable == pytest.approx(expected, abs=1e-9)
    # on the whole image too: in range (Q_Y_yl is 252.4 there)
    assert -1.0 <= METRICS["Q_Y_stable"].function([a, b], f) <= 1.0


def test_eval_defaults_use_it_and_never_rank_values_out_of_range():
    assert "Q_Y_stable" in DEFAULT_METRICS and "Q_Y_yl" not in DEFAULT_METRICS
    rows = [EvalRow("ds", "i1", "good", 1.0, {"Q_Y_yl": 0.95}), EvalRow("ds", "i1", "garbage", 1.0, {"Q_Y_yl": 252.4}),
            EvalRow("ds", "i2", "good", 1.0, {"Q_Y_yl": 0.96}), EvalRow("ds", "i2", "garbage", 1.0, {"Q_Y_yl": 0.5})]
    table = summarize(rows)["ds"]["Q_Y_yl"]
    # i1: 252.4 is not ranked, so nobody wins i1 (one rankable value); i2: good wins
    assert table["good"][3] == 1 and table["garbage"][3] == 0
    text = markdown_table(rows)
    line = next(l for l in text.splitlines() if l.startswith("| Q_Y_yl"))
    good, garbage = line.split("|")[2:4]
    assert good.strip().startswith("**0.9550") and "⚠ 1 out of range" in garbage and "**" not in garbage
    assert not METRICS["Q_Y_stable"].in_range(math.nan)
