"""Crash safety (issue 18): ``mfif fuse`` and ``mfif train`` killed with SIGKILL at random points.

After any kill, every output file that exists is complete (identical to what an uninterrupted run
writes, or loadable for checkpoints); nothing partial sits under an output name (only hidden
``.NAME.*.tmp`` / ``NAME.tmp`` staging files may remain: a kill cannot clean up; the next write of
the same output removes the ``.NAME.<pid>.*.tmp`` ones whose process is gone). A killed
training run resumes from its last checkpoint and ends with exactly the weights of an
uninterrupted run (seeded, deterministic on CPU with one thread).

The default suite kills each command a few times; the issue's 20 kills each are ``slow``.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mfif.io import write_image
from tests.helpers import textured_image

ROOT = Path(__file__).resolve().parents[1]


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    return env


def _mfif(*argv) -> list[str]:
    return [sys.executable, "-m", "mfif.cli", *[str(a) for a in argv]]


def _run_to_end(cmd, timeout=300) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-2000:]
    return time.perf_counter() - start, done.stderr


def _kill_after(cmd, seconds: float, *, once_exists: Path | None = None) -> bool:
    """Start ``cmd``, SIGKILL it ``seconds`` after the start (or after ``once_exists`` appears);
    True when the kill landed before the command ended."""
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if once_exists is not None:
        while not once_exists.exists() and proc.poll() is None:
            time.sleep(0.02)
    try:
        proc.wait(timeout=seconds)
        return False
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        return True


def _staging(name: str) -> bool:
    return name.endswith(".tmp")


# ---------------------------------------------------------------------------------------------
# fuse


@pytest.fixture(scope="module")
def fuse_case(tmp_path_factory):
    """Three frames, every output requested, and the bytes an uninterrupted run writes."""
    root = tmp_path_factory.mktemp("fuse_kill")
    frames = []
    for k in range(3):
        img = textured_image(160, 200, 3, seed=11)
        img[:, :, k * 60:(k + 1) * 60] = textured_image(160, 60, 3, seed=20 + k)  # a sharp band per frame
        frames.append(write_image(root / f"f{k}.png", img))
    ref = root / "ref"
    ref.mkdir()
    cmd = _fuse_cmd(frames, ref)
    seconds, _ = _run_to_end(cmd)
    expected = {p.name: p.read_bytes() for p in ref.iterdir() if p.name != "t.json"}
    expected_json = json.loads((ref / "t.json").read_text())
    assert set(expected) == {"out.png", "d.png", "d_raw.png"}
    return frames, seconds, expected, expected_json


def _fuse_cmd(frames, folder: Path):
    return _mfif("fuse", *frames, "-o", folder / "out.png", "-m", "sml", "--depth-map", folder / "d.png",
                 "--save-transforms", folder / "t.json", "-q")


def _check_fuse_outputs(folder: Path, expected: dict, expected_json: dict) -> set[str]:
    complete = set()
    for p in folder.iterdir():
        if _staging(p.name):
            assert p.name.startswith("."), p.name  # hidden staging file, never an output name
            continue
        if p.name == "t.json":
            assert json.loads(p.read_text()) == expected_json  # complete, and the same alignment
        else:
            assert p.name in expected, p.name
            assert p.read_bytes() == expected[p.name], f"{p.name} is partial or differs"
        complete.add(p.name)
    return complete


def _kill_fuse_runs(tmp_path, fuse_case, runs: int, seed: int):
    frames, seconds, expected, expected_json = fuse_case
    rng = np.random.default_rng(seed)
    killed = 0
    for i in range(runs):
        folder = tmp_path / f"run{i}"
        folder.mkdir()
        killed += _kill_after(_fuse_cmd(frames, folder), float(rng.uniform(0.0, seconds * 1.1)))
        _check_fuse_outputs(folder, expected, expected_json)
    assert killed >= runs // 2  # most kills landed mid-run (the rest are checked as full runs)


def test_fuse_killed_at_random_points_leaves_no_partial_output(tmp_path, fuse_case):
    _kill_fuse_runs(tmp_path, fuse_case, runs=3, seed=0)


@pytest.mark.slow
def test_fuse_killed_20_times(tmp_path, fuse_case):
    _kill_fuse_runs(tmp_path, fuse_case, runs=20, seed=1)


def test_next_fuse_removes_the_staging_files_a_killed_run_left(tmp_path, fuse_case):
    frames, _, expected, _ = fuse_case
    out = tmp_path / "out.png"
    # a writer killed while its output was staged (what SIGKILL of `mfif fuse` leaves)
    killed = subprocess.run([sys.executable, "-c", (
        "import os, signal; from pathlib import Path; from mfif.io import all_or_nothing, write_bytes_atomic\n"
        f"with all_or_nothing():\n    write_bytes_atomic(Path({str(out)!r}), b'partial')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)")], env=_env())
    assert killed.returncode == -signal.SIGKILL
    left = [p.name for p in tmp_path.iterdir()]
    assert len(left) == 1 and re.fullmatch(r"\.out\.png\.[0-9]+\.\w{8}\.tmp", left[0]), left
    old = tmp_path / ".out.png.abcd1234.tmp"  # an older version's name (no pid), from before this run
    old.write_bytes(b"x")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    live = tmp_path / f".out.png.{os.getpid()}.abcd1234.tmp"  # a live writer of the same output
    other = tmp_path / ".d.png.abcd1234.tmp"  # another output's staging file
    for p in (live, other):
        p.write_bytes(b"x")
    _run_to_end(_mfif("fuse", *frames, "-o", out, "-m", "sml", "-q"))
    assert out.read_bytes() == expected["out.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["out.png", live.name, other.name])


# ---------------------------------------------------------------------------------------------
# train


@pytest.fixture(scope="module")
def train_data(tmp_path_factory):
    """Four tiny photos for a tiny run (16 steps of 8, a checkpoint after every step)."""
    root = tmp_path_factory.mktemp("train_kill")
    for part, n in (("train", 3), ("val", 1)):
        d = root / "data" / "bsds500" / "images" / part
        d.mkdir(parents=True)
        for k in range(n):
            write_image(d / f"p{k}.png", textured_image(64, 64, 3, seed=30 + k + (10 if part == "val" else 0)))
    return root / "data"


@pytest.fixture(scope="module")
def train_reference(train_data):
    """Duration and final weights of an uninterrupted run."""
    out = train_data.parent / "ref"
    seconds, _ = _run_to_end(_train_cmd(train_data, out))
    return seconds, _final_model(out)


def _train_cmd(data: Path, out: Path, resume: bool = False):
    cmd = _mfif("train", "cnn-slight", "--data", data, "--out", out, "--pairs", 64, "--batch-size", 8,
                "--epochs", 1, "--val-pairs", 16, "--checkpoint-minutes", 0, "--threads", 1, "--device", "cpu")
    return cmd + (["--resume"] if resume else [])


def _final_model(run: Path) -> dict:
    import torch

    return torch.load(run / "final.pt", map_location="cpu", weights_only=True)["model"]


def _kill_and_resume(tmp_path, data, reference, runs: int, seed: int, *, after_checkpoint: bool = False):
    """Kill ``runs`` runs, check what they left, resume each; compare with ``reference`` =
    (seconds, final weights) when given. Returns the checkpoint step each resumed from (None: none yet)."""
    import torch

    seconds, weights = reference if reference is not None else (None, None)
    rng = np.random.default_rng(seed)
    resumed_from = []
    for i in range(runs):
        out = tmp_path / f"run{i}"
        if after_checkpoint:  # soon after the first checkpoint: mid-training for certain
            _kill_after(_train_cmd(data, out), float(rng.uniform(0.0, 0.2)), once_exists=out / "last.pt")
        else:
            _kill_after(_train_cmd(data, out), float(rng.uniform(0.0, seconds)))
        step = None
        if out.exists():
            for p in out.iterdir():  # nothing partial under an output name
                if _staging(p.name):
                    continue
                if p.suffix == ".pt":
                    ckpt = torch.load(p, map_location="cpu", weights_only=False)  # our own file: complete
                    if p.name == "last.pt":
                        step = ckpt["step"]
                elif p.suffix == ".json":
                    json.loads(p.read_text())
        resumed_from.append(step)
        _, log = _run_to_end(_train_cmd(data, out, resume=step is not None))
        first = re.search(r"train slight:.*?(\d+)/16", log)  # the progress bar starts where training resumed
        assert first and int(first.group(1)) == (step or 0), (step, log[-500:])
        assert json.loads((out / "summary.json").read_text())["steps"] == 16
        if weights is not None:
            final = _final_model(out)
            assert final.keys() == weights.keys()
            for key in weights:  # resumed = uninterrupted, bit for bit
                assert torch.equal(final[key], weights[key]), (i, step, key)
    return resumed_from


def test_train_killed_resumes_from_its_last_checkpoint(tmp_path, train_data):
    # one kill mid-training (after a checkpoint), resumed from that step to the end
    resumed = _kill_and_resume(tmp_path, train_data, None, runs=1, seed=3, after_checkpoint=True)
    assert resumed[0] is not None and 0 < resumed[0] < 16, resumed


@pytest.mark.slow
def test_train_killed_20_times(tmp_path, train_data, train_reference):
    # kills at random points (some before the first checkpoint); each resumed run ends with the
    # uninterrupted run's weights, bit for bit
    resumed = _kill_and_resume(tmp_path, train_data, train_reference, runs=20, seed=4)
    assert sum(step is not None and 0 < step < 16 for step in resumed) >= 5, resumed
