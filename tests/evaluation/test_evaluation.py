"""`mfif eval`: a tiny generated dataset end to end, caching, markdown == CSV, bad items reported."""
from __future__ import annotations

import csv
import re

import numpy as np
import pytest

from mfif.cli import main
from mfif.dataset_folders import discover
from mfif.evaluation.report import markdown_table, read_csv, write_report
from mfif.errors import InputError
from mfif.evaluation.runner import EvalConfig, evaluate
from mfif.io import write_image
from tests.helpers import complementary_pair, textured_image

METRICS = ["Q_G_yl", "SSIM", "EN", "SF"]


@pytest.fixture
def tiny_dataset(tmp_path):
    root = tmp_path / "tiny"
    root.mkdir()
    for i in range(3):
        gt = textured_image(48, 64, 3, seed=10 + i)
        a, b, _ = complementary_pair(gt, sigma=2.0, axis=i % 2)
        write_image(root / f"s{i}_A.png", a)
        write_image(root / f"s{i}_B.png", b)
        write_image(root / f"s{i}_GT.png", gt)
    write_image(root / "lonely_A.png", textured_image(48, 64, 3, seed=1))  # no _B
    write_image(root / "odd-A.png", textured_image(48, 64, 3, seed=2))  # '-A' naming, size mismatch
    write_image(root / "odd-B.png", textured_image(40, 64, 3, seed=3))
    stack = root / "scene"
    stack.mkdir()
    gt = textured_image(48, 64, 1, seed=4)
    for k in range(3):
        write_image(stack / f"scene_{k + 1}.png", gt * (0.8 + 0.05 * k))
    write_image(stack / "GT.png", gt)
    return root


def test_discover_layouts(tiny_dataset):
    ds = discover(tiny_dataset)
    names = {it.name: it for it in ds.items}
    assert set(names) == {"s0", "s1", "s2", "odd", "scene"}
    assert names["s0"].ground_truth.name == "s0_GT.png" and [p.name for p in names["s0"].sources] == ["s0_A.png", "s0_B.png"]
    assert names["scene"].kind == "stack" and len(names["scene"].sources) == 3 and names["scene"].ground_truth.name == "GT.png"
    assert any("lonely" in p and "at least 2 sources" in p for p in ds.problems)


def test_eval_end_to_end_cache_and_tables(tiny_dataset, tmp_path):
    out = tmp_path / "report"
    config = EvalConfig(methods=["average", "sml"], out_dir=out, metrics=[*METRICS, "PSNR_GT"], progress=False)
    first = evaluate([tiny_dataset], config)
    # 3 pairs + 1 stack, 2 methods; 'odd' (size mismatch) and 'lonely' (no _B) reported, not fatal
    assert len(first.rows) == 8 and first.method_runs == 8
    assert any("odd" in p and "differs" in p for p in first.problems)
    assert any("lonely" in p for p in first.problems)
    by = {(r.item, r.method): r for r in first.rows}
    assert by[("s0", "sml")].values["PSNR_GT"] > by[("s0", "average")].values["PSNR_GT"] + 3
    assert "Q_G_yl" not in by[("scene", "sml")].values  # two-source metric skipped for a 3-frame stack
    assert "EN" in by[("scene", "sml")].values

    paths = write_report(first, out)
    assert paths["csv"].exists() and paths["markdown"].exists() and (out / "tiny_metrics.png").exists()
    assert list(out.glob("grid_tiny_*.png"))

    # cached re-run: no method work, no metric work, same numbers
    second = evaluate([tiny_dataset], config)
    assert second.method_runs == 0 and second.metric_runs == 0
    assert [(r.item, r.method, r.values) for r in second.rows] == [(r.item, r.method, r.values) for r in first.rows]
    assert all(r.cached for r in second.rows)

    # the markdown table's numbers equal the CSV's
    rows = read_csv(paths["csv"])
    md = paths["markdown"].read_text()
    for metric in [*METRICS, "PSNR_GT"]:
        line = next(l for l in md.splitlines() if l.startswith(f"| {metric} "))
        cells = [c.strip().strip("*") for c in line.split("|")[2:-1]]
        for method, cell in zip(["average", "sml"], cells):
            match = re.match(r"([-\d.]+) ± ([-\d.]+)", cell)
            assert match, (metric, method, line)
            mean, std = map(float, match.groups())
            vals = [r.values[metric] for r in rows if r.method == method and not np.isnan(r.values.get(metric, np.nan))]
            assert mean == pytest.approx(np.mean(vals), abs=6e-5) and std == pytest.approx(np.std(vals), abs=6e-5)


def test_new_item_only_computes_new_work(tiny_dataset, tmp_path):
    config = EvalConfig(methods=["average"], out_dir=tmp_path / "r", metrics=["EN"], progress=False)
    evaluate([tiny_dataset], config)
    gt = textured_image(48, 64, 3, seed=99)
    a, b, _ = complementary_pair(gt)
    write_image(tiny_dataset / "new_A.png", a)
    write_image(tiny_dataset / "new_B.png", b)
    again = evaluate([tiny_dataset], config)
    assert again.method_runs == 1


def test_eval_cli(tiny_dataset, tmp_path, capsys):
    code = main(["eval", "--data", str(tiny_dataset), "--methods", "average,dct-cv", "--metrics", "EN,SF",
                 "-o", str(tmp_path / "r")])
    out, err = capsys.readouterr()
    assert code == 0 and "results" in out and "problem" not in out
    assert "mfif: warning: " in err  # the tiny dataset's broken item, on stderr
    with open(tmp_path / "r" / "results.csv") as fh:
        assert len(list(csv.DictReader(fh))) == 8
    code = main(["eval", "--data", str(tiny_dataset), "--methods", "nope", "-o", str(tmp_path / "r")])
    assert code == 1


def test_variants_run_under_their_label_with_their_options(tiny_dataset, tmp_path):
    config = EvalConfig(methods=["sml"], out_dir=tmp_path / "r", metrics=["PSNR_GT"], progress=False,
                        variants={"sml-r1": ("sml", {"window_radius": 1})})
    result = evaluate([tiny_dataset], config)
    by = {(r.item, r.method): r for r in result.rows}
    assert {m for _, m in by} == {"sml", "sml-r1"} and result.method_runs == 8
    # a different option is a different result (the label is not just a copy of the method)
    assert by[("s0", "sml")].values["PSNR_GT"] != by[("s0", "sml-r1")].values["PSNR_GT"]
    assert (tmp_path / "r" / "cache" / "tiny" / "sml-r1" / "s0.png").exists()


def test_variant_errors_before_any_work(tiny_dataset, tmp_path):
    from mfif.errors import InputError

    for variants, message in [({"gff": ("sml", {})}, "clashes"), ({"v": ("nope", {})}, "unknown method"),
                              ({"v": ("sml", {"no_such_option": 1})}, "no option")]:
        config = EvalConfig(methods=["average"], out_dir=tmp_path / "r", progress=False, variants=variants)
        with pytest.raises(InputError, match=message):
            evaluate([tiny_dataset], config)
    assert not (tmp_path / "r" / "cache").exists()


def test_variant_cli_parsing(tiny_dataset, tmp_path, capsys):
    from mfif.evaluation.cli import parse_variant

    assert parse_variant("ba-initial=ba:refine=false") == ("ba-initial", ("ba", {"refine": False}))
    assert parse_variant("x=sml:window-radius=2:area-fraction=0.5") == ("x", ("sml", {"window_radius": 2,
                                                                                     "area_fraction": 0.5}))
    with pytest.raises(InputError, match="no option area"):  # checked against the options dataclass
        parse_variant("x=sml:area=0.5")
    with pytest.raises(InputError, match="window_radius expects int"):  # typed by the field, not guessed
        parse_variant("x=sml:window-radius=2.5")
    code = main(["eval", "--data", str(tiny_dataset), "--methods", "average", "--variant", "sml-r1=sml:window_radius=1",
                 "--metrics", "EN", "-o", str(tmp_path / "r")])
    assert code == 0
    with open(tmp_path / "r" / "results.csv") as fh:
        assert {row["method"] for row in csv.DictReader(fh)} == {"average", "sml-r1"}
    assert main(["eval", "--data", str(tiny_dataset), "--variant", "justalabel", "-o", str(tmp_path / "r2")]) == 1
    assert "LABEL=METHOD" in capsys.readouterr().err


def test_cache_follows_content_not_path_or_mtime(tiny_dataset, tmp_path):
    import os
    import shutil

    config = EvalConfig(methods=["average"], out_dir=tmp_path / "r", metrics=["EN"], progress=False,
                        cache_dir=tmp_path / "cache")
    evaluate([tiny_dataset], config)
    moved = tmp_path / "elsewhere" / "tiny"
    shutil.copytree(tiny_dataset, moved)  # new path, new mtimes, same bytes
    for f in moved.rglob("*.png"):
        os.utime(f, (1, 1))
    assert evaluate([moved], config).method_runs == 0
    gt = textured_image(48, 64, 3, seed=77)
    write_image(moved / "s0_A.png", gt)  # changed content: only this item is recomputed
    assert evaluate([moved], config).method_runs == 1


def test_eval_with_no_usable_item_is_one_error_line(tmp_path, capsys):
    (tmp_path / "ds").mkdir()
    write_image(tmp_path / "ds" / "x_A.png", textured_image(16, 16, 1))  # an _A without its _B
    code = main(["eval", "--data", str(tmp_path / "ds"), "--methods", "average", "-o", str(tmp_path / "r")])
    out, err = capsys.readouterr()
    assert code == 1 and out == ""
    assert err.startswith("mfif: error: no results: ") and "x_A.png" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r" / "results.md").exists()
