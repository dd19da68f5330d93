"""mfif.batch on a dask.distributed LocalCluster of 2 worker processes (one cluster for the module):
all stacks fused, a corrupt one reported while the others finish, re-runs skip or recompute by the
manifest, a learned network loaded once per worker, and a worker killed with SIGKILL mid-stack has
its stack retried elsewhere with nothing lost, nothing written twice and no partial file."""
from __future__ import annotations

import json
import os
import signal
import threading
import time

import numpy as np
import pytest

from mfif.batch import MANIFEST_NAME, RECEIPTS_DIR, BatchSettings, discover_stacks, read_manifest, run_batch, start_client
from mfif.cli import main
from mfif.io import read_image
from tests.test_batch_manifest import make_stack

pytest.importorskip("distributed", reason="mfif batch needs dask.distributed (pip install 'mfif[batch]')")


@pytest.fixture(scope="module")
def client():
    client = start_client("local", workers=2, threads_per_worker=1, memory_limit="3GB")
    yield client
    cluster = client.cluster
    client.close()
    cluster.close()


def _reference(tmp_path, stack, method):
    """The same stack fused by ``mfif fuse`` in this process."""
    target = tmp_path / f"ref_{stack.name}_{method}.png"
    assert main(["fuse", str(stack), "-o", str(target), "-m", method, "-q"]) == 0
    return read_image(target)


def test_all_fused_corrupt_reported_reruns_by_manifest(client, tmp_path):
    root, out = tmp_path / "stacks", tmp_path / "out"
    for k in range(5):
        make_stack(root / f"s{k}", seed=k)
    make_stack(root / "s_corrupt", seed=9)
    data = (root / "s_corrupt" / "f1.png").read_bytes()
    (root / "s_corrupt" / "f1.png").write_bytes(data[: len(data) // 3])
    jobs = discover_stacks(root, out)

    report = run_batch(jobs, BatchSettings(method="sml"), client=client, progress=False)
    assert sorted(report.done) == [f"s{k}" for k in range(5)]
    assert [name for name, _ in report.failed] == ["s_corrupt"] and "truncated or corrupt" in report.failed[0][1]
    assert report.exit_code == 1
    workers = {r["worker"] for r in report.records}
    assert all(w.startswith("tcp://") for w in workers)
    for k in range(5):
        assert np.array_equal(read_image(out / f"s{k}.png"), _reference(tmp_path, root / f"s{k}", "sml"))

    again = run_batch(jobs, BatchSettings(method="sml"), client=client, progress=False)
    assert sorted(again.skipped) == [f"s{k}" for k in range(5)] and not again.done
    assert [name for name, _ in again.failed] == ["s_corrupt"]  # a failed stack is tried again

    # another method, a learned one: every stack recomputed, its network loaded once per worker
    learned = run_batch(jobs, BatchSettings(method="ifcnn-max"), client=client, progress=False)
    assert sorted(learned.done) == [f"s{k}" for k in range(5)] and not learned.skipped
    loads: dict[str, int] = {}
    for r in learned.records:
        loads[r["worker"]] = loads.get(r["worker"], 0) + r["network_loads"]
    assert set(loads.values()) == {1}, loads
    assert np.array_equal(read_image(out / "s3.png"), _reference(tmp_path, root / "s3", "ifcnn-max"))
    assert {r["method"] for r in read_manifest(out / MANIFEST_NAME).values()} == {"ifcnn-max"}


def _wait_for_running(receipt, pids, timeout=60.0):
    """The pid of the worker that is fusing the stack of ``receipt`` once it has started."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            record = json.loads(receipt.read_text())
        except (OSError, ValueError):
            record = {}
        if record.get("status") == "running" and record["attempts"][-1]["pid"] in pids:
            return record["attempts"][-1]["pid"]
        time.sleep(0.005)
    raise AssertionError(f"{receipt} never showed a running attempt")


def test_worker_killed_mid_stack_is_retried_nothing_lost_or_doubled(client, tmp_path):
    root, out = tmp_path / "stacks", tmp_path / "out"
    make_stack(root / "a_big", n=4, seed=0, h=384, w=512)  # ~1.5 s of work: killed while fusing
    for k in range(6):
        make_stack(root / f"s{k}", seed=k + 1)
    jobs = discover_stacks(root, out)
    client.wait_for_workers(2, timeout=60)
    pids = set(client.run(os.getpid).values())
    result = {}
    runner = threading.Thread(target=lambda: result.update(
        report=run_batch(jobs, BatchSettings(method="sml"), client=client, progress=False)))
    runner.start()
    big = next(j for j in jobs if j.name == "a_big")
    victim = _wait_for_running(big.receipt, pids)
    os.kill(victim, signal.SIGKILL)
    runner.join(timeout=120)
    assert not runner.is_alive()
    report = result["report"]

    assert sorted(report.done) == sorted(j.name for j in jobs) and not report.failed
    manifest_lines = [json.loads(line) for line in open(out / MANIFEST_NAME)]
    assert sorted(r["stack"] for r in manifest_lines) == sorted(j.name for j in jobs)  # one record each
    receipt = json.loads(big.receipt.read_text())
    assert [a["pid"] for a in receipt["attempts"]][0] == victim and len(receipt["attempts"]) == 2
    assert receipt["attempts"][1]["pid"] != victim and receipt["status"] == "done"
    for job in jobs:
        r = json.loads(job.receipt.read_text())
        # a stack the killed worker had finished is not fused again (its receipt is reused)
        assert len(r["attempts"]) == (2 if job.name == "a_big" else 1), (job.name, r["attempts"])
    assert not list(out.glob(".*.tmp")) and not list((out / RECEIPTS_DIR).rglob(".*.tmp"))
    assert np.array_equal(read_image(out / "a_big.png"), _reference(tmp_path, root / "a_big", "sml"))
    assert np.array_equal(read_image(out / "s4.png"), _reference(tmp_path, root / "s4", "sml"))


def test_mfif_batch_command_on_an_existing_scheduler(client, tmp_path, capsys):
    client.wait_for_workers(2, timeout=60)  # the nanny restarts a killed worker
    root, out = tmp_path / "stacks", tmp_path / "out"
    for k in range(3):
        make_stack(root / f"s{k}", seed=k)
    code = main(["batch", str(root), "-o", str(out), "--scheduler", client.scheduler.address, "-m", "average"])
    captured = capsys.readouterr()
    assert code == 0 and "batch: 3 fused, 0 skipped (already done), 0 failed" in captured.out
    assert "dask dashboard:" in captured.err and "(2 workers, 2 threads)" in captured.err
    assert "3/3" in captured.err  # the progress bar over stacks
    assert len(client.nthreads()) == 2  # the command left the cluster it did not start running
