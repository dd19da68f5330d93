"""mfif.retouch: brush masks pinned to the formula by hand, compositing, strokes files, CLI --retouch."""
from __future__ import annotations

import json

import numpy as np
import pytest

import mfif
from mfif.cli import main
from mfif.errors import InputError
from mfif.io import read_image, write_image
from mfif.retouching import Stroke, load_strokes, save_strokes, stroke_mask


def test_mask_values_by_hand():
    # horizontal segment (2, 5)-(8, 5), r = 4, softness 0.5: core to d = 2, linear ramp to d = 4
    (rows, cols), m = stroke_mask(Stroke(0, [(2, 5), (8, 5)], radius=4, softness=0.5), (11, 11))
    full = np.zeros((11, 11), np.float32)
    full[rows, cols] = m
    assert full[5, 5] == 1.0 and full[7, 5] == 1.0  # d = 0, d = 2 (core edge)
    assert full[8, 5] == pytest.approx(0.5)  # d = 3: (4 - 3) / 2
    assert full[9, 5] == 0.0  # d = 4
    assert full[5, 0] == 1.0  # (x, y) = (0, 5): d = 2 from the end point (2, 5), core edge
    assert full[2, 0] == pytest.approx((4 - np.hypot(2, 3)) / 2)  # (0, 2): d = sqrt(13) from (2, 5)
    assert full[8, 10] == pytest.approx((4 - np.hypot(2, 3)) / 2)  # nearest point is the end (8, 5)


def test_hard_brush_dab_counts_pixels():
    (_, _), m = stroke_mask(Stroke(0, [(10, 10)], radius=3, softness=0), (21, 21))
    # lattice points with x^2 + y^2 <= 9: 29
    assert int(m.sum()) == 29


def test_retouch_composites_in_order_and_keeps_input():
    fused = np.zeros((3, 20, 30), np.float32)
    frames = np.stack([np.full((3, 20, 30), v, np.float32) for v in (0.2, 0.6)])
    strokes = [{"frame": 0, "points": [[5, 10], [25, 10]], "radius": 4, "softness": 0.5},
               {"frame": 1, "points": [[15, 10]], "radius": 3, "softness": 0}]
    result = mfif.FusionResult(fused=fused, info={"method": "x"})
    out = mfif.retouch(result, frames, strokes)
    assert np.all(result.fused == 0)  # input untouched
    assert out.fused[0, 10, 5] == pytest.approx(0.2)
    assert out.fused[0, 10, 15] == pytest.approx(0.6)  # the later stroke wins
    assert out.fused[0, 13, 5] == pytest.approx(0.2 * 0.5)  # d = 3 on a 4 px brush with 2 px feather
    assert out.fused[0, 0, 0] == 0
    assert out.maps["retouch"][10, 5] == 1.0 and out.maps["retouch"][0, 0] == 0.0
    assert out.info["retouch_strokes"] == 2


def test_strokes_file_round_trip_and_errors(tmp_path):
    path = save_strokes(tmp_path / "s.json", [Stroke(1, [(1, 2), (3, 4)], 5, 0.25)], size=(20, 30))
    data = json.loads(path.read_text())
    assert data["format"] == "mfif-strokes" and data["size"] == [20, 30]
    edit = load_strokes(path)
    assert edit.strokes[0] == Stroke(1, [(1.0, 2.0), (3.0, 4.0)], 5.0, 0.25)
    with pytest.raises(InputError, match="painted on a 30x20 result"):
        mfif.retouch(np.zeros((1, 10, 10), np.float32), np.zeros((2, 1, 10, 10), np.float32), path)
    with pytest.raises(InputError, match="paints frame 5"):
        mfif.retouch(np.zeros((1, 10, 10), np.float32), np.zeros((2, 1, 10, 10), np.float32),
                     [{"frame": 5, "points": [[1, 1]]}])
    with pytest.raises(InputError, match="softness"):
        Stroke(0, [(1, 1)], 3, 1.5)
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(InputError, match="bad.json: not valid JSON"):
        load_strokes(tmp_path / "bad.json")


def test_cli_retouch(tmp_path):
    rng = np.random.default_rng(0)
    a = rng.random((3, 40, 50)).astype(np.float32)
    b = rng.random((3, 40, 50)).astype(np.float32)
    write_image(tmp_path / "a.png", a)
    write_image(tmp_path / "b.png", b)
    save_strokes(tmp_path / "s.json", [Stroke(1, [(10, 20), (40, 20)], radius=6, softness=0.5)])
    assert main(["fuse", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "-o", str(tmp_path / "plain.png"), "-q"]) == 0
    assert main(["fuse", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "-o", str(tmp_path / "r.png"), "-q",
                 "--retouch", str(tmp_path / "s.json")]) == 0
    plain, out, frame_b = (read_image(tmp_path / n) for n in ("plain.png", "r.png", "b.png"))
    assert np.array_equal(out[:, 17:24, 10:41], frame_b[:, 17:24, 10:41])  # the hard core (d <= 3)
    assert np.array_equal(out[:, :10], plain[:, :10])  # far from the stroke
    assert not np.array_equal(plain[:, 17:24, 10:41], frame_b[:, 17:24, 10:41])


def test_cli_retouch_bad_file_fails_before_work(tmp_path, capsys):
    (tmp_path / "s.json").write_text('{"format": "mfif-strokes", "strokes": [{"frame": 0}]}')
    assert main(["fuse", "x.png", "y.png", "-o", str(tmp_path / "o.png"), "--retouch", str(tmp_path / "s.json")]) == 1
    assert "s.json: stroke 0: expected keys" in capsys.readouterr().err
