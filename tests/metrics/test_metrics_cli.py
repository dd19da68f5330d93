"""``compute_metrics``, ``score_folder`` and the ``mfif metrics`` subcommand (called through
``add_parser`` / ``run`` on a local parser, as the main CLI does)."""
from __future__ import annotations

import argparse
import csv
import json
import math
import warnings

import numpy as np
import pytest
from PIL import Image

from mfif.errors import InputError, MfifError
from mfif.metrics import METRICS
from mfif.metrics import cli as metrics_cli
from mfif.metrics.compute import MetricWarning, compute_metrics, find_source_sets, score_folder
from tests.helpers import complementary_pair, textured_image


def _u8(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def triple():
    """Colour sources A, B, the sharp fused image F and the ground truth (= F), 96x128."""
    gt = textured_image(96, 128, 3, seed=9)
    a, b, _ = complementary_pair(gt, sigma=2.5)
    hwc = lambda x: _u8(np.moveaxis(x, 0, -1))  # noqa: E731
    return hwc(a), hwc(b), hwc(gt), hwc(gt)


def _save(path, image):
    Image.fromarray(image).save(path)
    return str(path)


def _parser():
    parser = argparse.ArgumentParser(prog="mfif")
    sub = parser.add_subparsers(dest="command")
    metrics_cli.add_parser(sub)
    return parser


def _run(argv, capsys):
    args = _parser().parse_args(["metrics", *argv])
    assert args.func is metrics_cli.run
    assert metrics_cli.run(args) == 0
    return capsys.readouterr()


def _same(x: float, y) -> bool:
    """JSON null stands for a non-finite value."""
    return y is None if not math.isfinite(x) else x == y


# ---------------------------------------------------------------------------------------------
# compute_metrics


def test_selection_rules(triple):
    a, b, f, gt = triple
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetricWarning)
        no_gt = compute_metrics([a, b], f)
        with_gt = compute_metrics([a, b], f, ground_truth=gt)
        three = compute_metrics([a, b, a], f)
    gt_keys = {k for k, m in METRICS.items() if m.needs_ground_truth}
    two_source = {k for k, m in METRICS.items() if m.n_sources == 2}
    assert set(no_gt) == set(METRICS) - gt_keys
    assert set(with_gt) == set(METRICS)
    assert list(with_gt) == [k for k in METRICS if k in with_gt]  # registry order
    assert set(three) == set(METRICS) - gt_keys - two_source
    assert "MEF_SSIM" in three
    assert all(isinstance(v, float) for v in with_gt.values())
    assert with_gt["PSNR_GT"] == math.inf and with_gt["SSIM_GT"] == pytest.approx(1.0)


def test_explicit_names(triple):
    a, b, f, gt = triple
    got = compute_metrics([a, b], f, names=["Q_CB", "SSIM", "Q_CB"])
    assert list(got) == ["Q_CB", "SSIM"]
    assert got["SSIM"] == METRICS["SSIM"].function([a, b], f)
    with pytest.raises(InputError, match="unknown metric 'Q_NOPE'"):
        compute_metrics([a, b], f, names=["Q_NOPE"])
    with pytest.raises(InputError, match="SSIM_GT needs a ground-truth image"):
        compute_metrics([a, b], f, names=["SSIM_GT"])
    with pytest.raises(InputError, match="Q_CB takes exactly 2 sources, got 3"):
        compute_metrics([a, b, a], f, names=["Q_CB"])
    assert set(compute_metrics([a, b, a], f, names=["MEF_SSIM"])) == {"MEF_SSIM"}


def test_bad_inputs(triple):
    a, b, f, gt = triple
    with pytest.raises(InputError, match="at least 2 source"):
        compute_metrics([a], f)
    with pytest.raises(InputError, match="source 1 has size"):
        compute_metrics([a, b[:-1]], f)
    with pytest.raises(InputError, match="ground truth has size"):
        compute_metrics([a, b], f, ground_truth=gt[:, :-1])


def test_undefined_metric_is_nan_with_warning_unless_named(triple):
    a, b, f, _ = triple
    # both sources black in a band: Q_Y's weight and Q_C's weight are 0/0 there (NaN in the reference)
    a2, b2 = a.copy(), b.copy()
    a2[:20], b2[:20] = 0, 0
    with pytest.warns(MetricWarning) as record:
        got = compute_metrics([a2, b2], f, names=None)
    messages = [str(w.message) for w in record]
    assert any(m.startswith("Q_Y is undefined") for m in messages)
    assert any(m.startswith("Q_C is undefined") for m in messages)
    assert math.isnan(got["Q_Y"]) and math.isnan(got["Q_C"])
    assert math.isfinite(got["Q_Y_yl"]) and math.isfinite(got["Q_C_yl"])
    with pytest.raises(InputError, match="Q_Y is undefined"):
        compute_metrics([a2, b2], f, names=["Q_Y_yl", "Q_Y"])


# ---------------------------------------------------------------------------------------------
# the command line


@pytest.fixture(scope="module")
def files(triple, tmp_path_factory):
    d = tmp_path_factory.mktemp("single")
    a, b, f, gt = triple
    return _save(d / "a.png", a), _save(d / "b.png", b), _save(d / "f.png", f), _save(d / "gt.png", gt)


def test_json_output_equals_compute_metrics(files, triple, capsys):
    a, b, f, gt = triple
    out = _run([*files[:3], "--gt", files[3], "--json"], capsys).out
    parsed = json.loads(out)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetricWarning)
        expected = compute_metrics([a, b], f, ground_truth=gt)
    assert list(parsed) == list(expected)
    assert all(_same(v, parsed[k]) for k, v in expected.items())
    assert parsed["PSNR_GT"] is None  # inf -> null


def test_only_filters_and_keeps_order(files, triple, capsys):
    a, b, f, _ = triple
    parsed = json.loads(_run([*files[:3], "--only", "Q_Y_yl, Q_CB,VIFF", "--json"], capsys).out)
    assert list(parsed) == ["Q_Y_yl", "Q_CB", "VIFF"]
    assert parsed == compute_metrics([a, b], f, names=["Q_Y_yl", "Q_CB", "VIFF"])


def test_plain_table_has_directions(files, capsys):
    out = _run([*files[:3], "--only", "Q_CB,Q_CV,SSIM"], capsys).out.splitlines()
    assert out[0].split() == ["metric", "value"]
    rows = {line.split()[0]: line.split()[1:] for line in out[1:]}
    assert rows["Q_CB"][0] == "↑" and rows["Q_CV"][0] == "↓" and rows["SSIM"][0] == "↑"
    assert float(rows["SSIM"][1]) == pytest.approx(METRICS["SSIM"].function(
        [np.asarray(Image.open(files[0])), np.asarray(Image.open(files[1]))], np.asarray(Image.open(files[2]))), abs=1e-6)
    # columns are aligned
    assert len({line.index(line.split()[1]) for line in out[1:]}) == 1


def test_more_sources_use_the_last_file_as_fused(files, capsys):
    parsed = json.loads(_run([files[0], files[1], files[0], files[2], "--json"], capsys).out)
    assert "MEF_SSIM" in parsed and "Q_CB" not in parsed


@pytest.mark.parametrize("argv, message", [
    (["x.png", "y.png"], "need at least 2 source images and the fused image"),
    (["--only", "Q_NOPE"], "unknown metric"),
    (["--folder", "somewhere"], "needs both --folder"),
])
def test_cli_errors_are_mfif_errors(argv, message, files, capsys):
    if argv[0] == "--only":
        argv = [*files[:3], *argv]
    args = _parser().parse_args(["metrics", *argv])
    with pytest.raises(MfifError, match=message):
        metrics_cli.run(args)


def test_missing_file_is_an_input_error(files, tmp_path):
    args = _parser().parse_args(["metrics", files[0], files[1], str(tmp_path / "nope.png")])
    with pytest.raises(InputError, match="nope.png: file not found"):
        metrics_cli.run(args)


# ---------------------------------------------------------------------------------------------
# folders


@pytest.fixture(scope="module")
def folder(triple, tmp_path_factory):
    a, b, f, gt = triple
    root = tmp_path_factory.mktemp("folder")
    src, fused = root / "src", root / "fused"
    src.mkdir()
    fused.mkdir()
    _save(src / "one_A.png", a)
    _save(src / "one_B.png", b)
    _save(src / "one_GT.png", gt)
    _save(src / "two-1.png", b[:, ::-1])  # second layout, no ground truth
    _save(src / "two-2.png", a[:, ::-1])
    _save(fused / "one.png", f)
    _save(fused / "two_F.png", ((a[:, ::-1].astype(int) + b[:, ::-1]) // 2).astype(np.uint8))
    return src, fused


def test_find_source_sets(folder):
    src, _ = folder
    sets = find_source_sets(src)
    assert [s.name for s in sets] == ["one", "two"]
    assert [p.name for p in sets[0].sources] == ["one_A.png", "one_B.png"] and sets[0].ground_truth.name == "one_GT.png"
    assert [p.name for p in sets[1].sources] == ["two-1.png", "two-2.png"] and sets[1].ground_truth is None


def test_folder_scoring_writes_csv_and_markdown_with_the_same_numbers(folder, triple, tmp_path, capsys):
    src, fused = folder
    out_csv = tmp_path / "table.csv"
    keys = "Q_CB,SSIM,Q_Y_yl,MEF_SSIM,SSIM_GT,Q_CV"
    msg = _run(["--folder", str(fused), "--sources", str(src), "-o", str(out_csv), "--only", keys], capsys).out
    assert "table.csv" in msg and "table.md" in msg
    a, b, f, gt = triple
    expected_one = compute_metrics([a, b], f, names=keys.split(","), ground_truth=gt)
    with open(out_csv, newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["image", *keys.split(",")]
    one = dict(zip(rows[0][1:], map(float, rows[1][1:])))
    assert rows[1][0] == "one" and one == expected_one
    two = dict(zip(rows[0][1:], map(float, rows[2][1:])))
    assert rows[2][0] == "two" and math.isnan(two["SSIM_GT"]) and math.isfinite(two["Q_CB"])
    md = (tmp_path / "table.md").read_text().splitlines()
    assert md[0].startswith("| image | Q_CB ↑ | SSIM ↑") and "Q_CV ↓" in md[0]
    cells = [c.strip() for c in md[2].strip("|").split("|")]
    assert cells[0] == "one"
    assert [float(c) for c in cells[1:]] == [round(expected_one[k], 4) for k in keys.split(",")]
    assert md[3].split("|")[1 + keys.split(",").index("SSIM_GT") + 1].strip() == "–"  # "two" has no GT
    assert md[4].startswith("| **mean**")
    # the same table from the Python API
    table = score_folder(src, fused, names=keys.split(","))
    assert table.rows["one"] == expected_one


def test_folder_json_and_missing_fused(folder, tmp_path, capsys):
    src, fused = folder
    parsed = json.loads(_run(["--folder", str(fused), "--sources", str(src), "--only", "Q_CB", "--json"], capsys).out)
    assert set(parsed) == {"one", "two"} and set(parsed["one"]) == {"Q_CB"}
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no fused image found"):
        score_folder(src, empty, names=["Q_CB"])
    with pytest.raises(InputError, match="no source sets found"):
        score_folder(empty, fused)
