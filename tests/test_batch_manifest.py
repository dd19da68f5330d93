"""mfif.batch in this process (the executor of ``mfif fuse --batch``): the manifest decides what a
re-run skips (same inputs, method, options and untouched outputs) and what it recomputes; files it
did not write are never overwritten; a task run twice in one batch writes once."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

from mfif.batch import (MANIFEST_NAME, BatchSettings, discover_stacks, fuse_stack_job, read_manifest,
                        run_batch, tile_for_memory)
from mfif.cli import main
from mfif.io import read_image
from tests.helpers import gaussian_blur, textured_image


def make_stack(folder, n=2, seed=0, h=40, w=48):
    """n frames; frame i is sharp in the i-th vertical band of a textured image."""
    folder.mkdir(parents=True)
    gt = textured_image(h, w, 3, seed=seed)
    blurred = gaussian_blur(gt, 2.0)
    for i in range(n):
        band = (np.arange(w) * n // w == i)[None, None, :]
        frame = np.where(band, gt, blurred)
        Image.fromarray(np.round(np.moveaxis(frame, 0, -1) * 255).astype(np.uint8)).save(folder / f"f{i}.png")


@pytest.fixture
def stacks(tmp_path):
    root = tmp_path / "stacks"
    for k, name in enumerate(("s1", "s2", "s3")):
        make_stack(root / name, seed=k)
    return root


def _batch(root, out, *extra):
    return main(["fuse", "--batch", str(root), "-o", str(out), "-q", *extra])


def test_rerun_with_another_method_recomputes_everything(stacks, tmp_path, capsys):
    # the hostile-input report: a re-run with another method used to keep the old results ("exists, skipped")
    out = tmp_path / "out"
    assert _batch(stacks, out, "-m", "average") == 0
    before = read_image(out / "s1.png")
    assert _batch(stacks, out, "-m", "sml") == 0
    assert "batch: 3 fused, 0 skipped (already done), 0 failed" in capsys.readouterr().out
    after = read_image(out / "s1.png")
    assert np.abs(after - before).max() > 0.05  # the sml result, not the average kept
    expected = main(["fuse", str(stacks / "s1"), "-o", str(tmp_path / "single.png"), "-m", "sml", "-q"])
    assert expected == 0 and np.array_equal(after, read_image(tmp_path / "single.png"))
    records = read_manifest(out / MANIFEST_NAME)
    assert {r["method"] for r in records.values()} == {"sml"}
    assert sum(1 for _ in open(out / MANIFEST_NAME)) == 3  # superseded lines compacted away
    assert _batch(stacks, out, "-m", "sml") == 0
    assert "batch: 0 fused, 3 skipped (already done), 0 failed" in capsys.readouterr().out


def test_only_what_changed_is_recomputed(stacks, tmp_path, capsys):
    out = tmp_path / "out"
    assert _batch(stacks, out, "-m", "sml") == 0
    capsys.readouterr()
    # s1: one frame with new content; s2: same content, new mtime; s3: its output deleted
    frame = stacks / "s1" / "f0.png"
    Image.fromarray(255 - np.asarray(Image.open(frame))).save(frame)
    os.utime(stacks / "s2" / "f1.png", ns=(1, 1))
    (out / "s3.png").unlink()
    assert _batch(stacks, out, "-m", "sml") == 0
    assert "batch: 2 fused, 1 skipped (already done), 0 failed" in capsys.readouterr().out
    records = read_manifest(out / MANIFEST_NAME)
    assert records["s2"]["run"] != records["s1"]["run"] == records["s3"]["run"]
    # an option that changes the method's result (and nothing else) recomputes every stack
    assert _batch(stacks, out, "-m", "sml", "--opt", "window_radius=2") == 0
    assert "batch: 3 fused, 0 skipped" in capsys.readouterr().out
    # asking for fewer extra files is served by the stored run, asking for more is not
    assert _batch(stacks, out, "-m", "sml", "--opt", "window_radius=2", "--depth-map", "x") == 0
    assert "batch: 3 fused, 0 skipped" in capsys.readouterr().out
    assert (out / "s1_depth.png").exists() and (out / "s1_depth_raw.png").exists()
    assert _batch(stacks, out, "-m", "sml", "--opt", "window_radius=2") == 0
    assert "batch: 0 fused, 3 skipped" in capsys.readouterr().out


def test_files_it_did_not_write_are_not_overwritten(stacks, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "s1.png").write_bytes(b"somebody else's file")
    assert _batch(stacks, out, "-m", "average") == 1
    err = capsys.readouterr().err
    assert "2 fused, 0 skipped (already done), 1 failed: s1" in err and "not overwritten (--overwrite" in err
    assert (out / "s1.png").read_bytes() == b"somebody else's file"
    # an output edited after mfif wrote it is kept too
    Image.fromarray(np.zeros((40, 48, 3), np.uint8)).save(out / "s2.png")
    assert _batch(stacks, out, "-m", "sml") == 1
    assert "1 fused, 0 skipped (already done), 2 failed: s1, s2" in capsys.readouterr().err
    assert read_image(out / "s2.png").max() == 0
    assert _batch(stacks, out, "-m", "sml", "--overwrite") == 0
    assert read_image(out / "s2.png").max() > 0 and (out / "s1.png").read_bytes()[:4] == b"\x89PNG"


def test_manifest_records_and_torn_line(stacks, tmp_path):
    out = tmp_path / "out"
    jobs = discover_stacks(stacks, out)
    settings = BatchSettings(method="sml")
    report = run_batch(jobs, settings, progress=False)
    assert report.done == ["s1", "s2", "s3"] and report.exit_code == 0
    record = read_manifest(out / MANIFEST_NAME)["s2"]
    assert record["status"] == "done" and record["method"] == "sml" and "error" not in record
    assert [e["path"] for e in record["inputs"]] == [str(stacks / "s2" / "f0.png"), str(stacks / "s2" / "f1.png")]
    assert all(len(e["sha256"]) == 64 for e in record["inputs"] + record["outputs"])
    assert record["outputs"][0]["path"] == str(out / "s2.png") and record["seconds"] > 0
    assert record["peak_memory_mb"] > 10 and record["network_loads"] == 0 and record["version"]
    with open(out / MANIFEST_NAME, "a") as fh:
        fh.write('{"stack": "s1", "status": "do')  # a crash mid-line
    report = run_batch(jobs, settings, progress=False)
    assert report.skipped == ["s1", "s2", "s3"] and not report.done


def test_a_task_run_twice_in_one_batch_writes_once(stacks, tmp_path):
    # Dask reruns a task whose result was lost with a dead worker: the receipt makes it a no-op
    out = tmp_path / "out"
    out.mkdir()
    job = discover_stacks(stacks, out)[0]
    settings = BatchSettings(method="sml")
    (out / ".s1.png.dead0001.tmp").write_bytes(b"half a file")  # left by a killed attempt
    first = fuse_stack_job(job, settings, "run-1")
    stamp = os.stat(out / "s1.png").st_mtime_ns
    second = fuse_stack_job(job, settings, "run-1")
    assert first["status"] == second["status"] == "done" and second.get("reused") and not first.get("reused")
    assert os.stat(out / "s1.png").st_mtime_ns == stamp
    assert not list(out.glob(".*.tmp"))
    receipt = json.loads(job.receipt.read_text())
    assert len(receipt["attempts"]) == 1 and receipt["status"] == "done"
    # a new run with overwrite=True does redo it
    third = fuse_stack_job(job, settings, "run-2", overwrite=True)
    assert not third.get("reused") and os.stat(out / "s1.png").st_mtime_ns != stamp


def test_tile_for_memory_hand_computed():
    # 4000x3000 classical: 12e6 px * 200 B = 2.4 GB > 1 GB -> side sqrt(1e9 / 200) = 2236 -> 2176 (64s)
    assert tile_for_memory("classical", (4000, 3000), 1e9) == 2176
    assert tile_for_memory("classical", (2000, 2000), 1e9) is None  # 0.8 GB fits
    assert tile_for_memory("learned", (2000, 2000), 1e9) == 1152  # sqrt(1e9 / 700) = 1195
    assert tile_for_memory("learned", (9000, 9000), 1e7) == 256  # never below 256
    assert tile_for_memory("classical", (4000, 3000), None) is None


def test_mfif_batch_command_in_process(stacks, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["batch", str(stacks), "-o", str(out), "--scheduler", "sequential", "-m", "average", "-q",
                 "--format", "tif", "--depth-map"])
    captured = capsys.readouterr()
    assert code == 0 and "batch: 3 fused, 0 skipped (already done), 0 failed" in captured.out
    assert "dashboard" not in captured.err and sorted(p.name for p in out.glob("*.tif")) == ["s1.tif", "s2.tif", "s3.tif"]
    assert not list(out.glob("*_depth.png"))  # average chooses no frame per pixel: no depth map, no error
    assert main(["batch", str(stacks), "-o", str(out), "--scheduler", "sequential", "-m", "nope"]) == 1
    assert "unknown method 'nope'" in capsys.readouterr().err
    assert main(["batch", str(tmp_path / "missing"), "-o", str(out), "--scheduler", "sequential"]) == 1
    assert "expected a folder of stack folders" in capsys.readouterr().err
    assert main(["batch", str(stacks), "-o", str(out), "--scheduler", "lokal"]) == 1
    assert "--scheduler expects 'local', 'sequential' or a scheduler address" in capsys.readouterr().err


def test_a_stack_too_large_for_the_worker_memory_limit_is_tiled(tmp_path, monkeypatch):
    from types import SimpleNamespace

    import mfif.batch

    make_stack(tmp_path / "stacks" / "big", seed=4, h=300, w=400)
    job = discover_stacks(tmp_path / "stacks", tmp_path / "out")[0]
    (tmp_path / "out").mkdir()
    whole = fuse_stack_job(job, BatchSettings(method="gff"), "run-1")
    reference = read_image(tmp_path / "out" / "big.png")
    # a worker with 20 MB per thread: 400 x 300 px x 200 B = 24 MB does not fit -> sqrt(20e6 / 200) -> 256
    worker = SimpleNamespace(address="tcp://fake:1", state=SimpleNamespace(nthreads=2),
                             memory_manager=SimpleNamespace(memory_limit=40e6))
    monkeypatch.setattr(mfif.batch, "_worker", lambda: worker)
    tiled = fuse_stack_job(job, BatchSettings(method="gff"), "run-2", overwrite=True)
    assert whole["status"] == tiled["status"] == "done" and "tile" not in whole and tiled["tile"] == 256
    assert tiled["worker"] == "tcp://fake:1"
    assert np.abs(read_image(tmp_path / "out" / "big.png") - reference).max() <= 1 / 255 + 1e-6


def test_a_stack_failing_after_its_first_file_leaves_nothing_and_is_redone(stacks, tmp_path, capsys):
    out = tmp_path / "out"
    (out / "s2_depth_raw.png").mkdir(parents=True)  # the last file s2 writes cannot be written
    assert _batch(stacks, out, "-m", "sml", "--depth-map", "x") == 1
    err = capsys.readouterr().err
    assert "2 fused, 0 skipped (already done), 1 failed: s2" in err and "is a folder" in err
    assert not (out / "s2.png").exists() and not (out / "s2_depth.png").exists()
    assert (out / "s1.png").exists() and (out / "s1_depth_raw.png").exists()
    (out / "s2_depth_raw.png").rmdir()
    assert _batch(stacks, out, "-m", "sml", "--depth-map", "x") == 0
    assert "1 fused, 2 skipped (already done), 0 failed" in capsys.readouterr().out


def test_a_run_stopped_before_its_manifest_lines_is_resumed_from_the_receipts(stacks, tmp_path, capsys):
    out = tmp_path / "out"
    assert _batch(stacks, out, "-m", "average") == 0
    # the next run's worker finished s1 with sml, then the command died before writing the manifest
    job = discover_stacks(stacks, out)[0]
    assert fuse_stack_job(job, BatchSettings(method="sml"), "lost-run")["status"] == "done"
    capsys.readouterr()
    assert _batch(stacks, out, "-m", "sml") == 0  # s1 is neither refused nor fused again
    assert "batch: 2 fused, 1 skipped (already done), 0 failed" in capsys.readouterr().out
