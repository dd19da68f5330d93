"""`mfif bench`: one tiny run end to end (numbers are printed by the benchmark, not asserted)."""
from __future__ import annotations

from mfif.cli import main
from mfif.evaluation.bench import run_one, synthetic_pair


def test_synthetic_pair_shapes():
    a, b = synthetic_pair(40)
    assert a.shape == b.shape == (3, 40, 40) and a.min() >= 0 and a.max() <= 1


def test_run_one_measures_time_and_memory():
    row = run_one("average", 64, repeats=1)
    assert row.error == "" and row.seconds > 0 and row.peak_mb >= row.base_mb > 0


def test_bench_cli_writes_csv_and_plot(tmp_path, capsys):
    code = main(["bench", "--methods", "average", "--sizes", "48", "--repeats", "1", "-o", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0 and "average" in out
    assert (tmp_path / "bench.csv").read_text().count("\n") == 2 and (tmp_path / "bench.png").exists()
    assert main(["bench", "--methods", "nope"]) == 1


def test_memory_budget_skips_sizes_predicted_over_it():
    from mfif.evaluation.bench import BenchRow, benchmark, predicted_peak_mb

    # method memory 100 MB at 100 px -> 400 MB at 200 px, plus the 50 MB base
    assert predicted_peak_mb(BenchRow("m", 100, 1.0, 150.0, 50.0), 200) == 450.0
    rows = benchmark(["average"], [96, 48], repeats=1, cli=False, progress=False, memory_budget_mb=1.0)
    assert [r.size for r in rows] == [48, 96]
    assert rows[0].error == "" and rows[1].error.startswith("skipped:") and "budget" in rows[1].error
