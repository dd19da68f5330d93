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


def test_memory_budget_stops_runs_over_it():
    from mfif.evaluation.bench import benchmark

    # any Python process with numpy is over 30 MB: the first size is stopped, the next not tried
    rows = benchmark(["average"], [96, 48], repeats=1, cli=False, progress=False, memory_budget_mb=30)
    assert [r.size for r in rows] == [48, 96]
    assert rows[0].error.startswith("over the 30 MB budget") and rows[1].error.startswith("not run")
    ok = benchmark(["average"], [48], repeats=1, cli=False, progress=False, memory_budget_mb=4000)
    assert ok[0].error == "" and ok[0].peak_mb < 4000


def test_stack_bench_frames_of_a_dev_set_stack_folder_leave_out_the_ground_truth(tmp_path, capsys):
    import numpy as np

    from mfif.evaluation.stack_bench import stack_frames
    from mfif.io import write_image

    folder = tmp_path / "stack_00"  # as `mfif synth --devset` writes a stack
    rng = np.random.default_rng(0)
    for name in ("stack_00_1.png", "stack_00_2.png", "stack_00_3.png", "GT.png", "focus/stack_00_1.png"):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        write_image(folder / name, rng.random((3, 24, 32), dtype=np.float32))
    frames = [folder / f"stack_00_{k}.png" for k in (1, 2, 3)]
    assert stack_frames([folder]) == frames
    assert stack_frames([folder / "GT.png", str(folder / "*_1.png")]) == [folder / "GT.png", frames[0]]  # named files stay
    code = main(["bench", "--stack", str(folder), "--methods", "average", "--repeats", "1", "-o", str(tmp_path / "b")])
    assert code == 0 and "3 frames" in (tmp_path / "b" / "stack_bench.md").read_text()
