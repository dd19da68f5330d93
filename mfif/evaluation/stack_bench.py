"""``mfif bench --stack``: one real stack timed end to end and stage by stage, next to external tools.

End to end: every method runs as the whole ``mfif fuse`` process (start, decode, align, fuse,
encode) in a fresh subprocess; every ``--external`` command (e.g. ``enfuse -o {output} {inputs}``)
runs on the same frames; the runs are interleaved (mfif method 1, method 2, ..., external 1, ...)
``repeats`` times, so all tools see the same machine load, and the table gives the median wall
time, the ratio to the first external command and the peak resident memory of the process
(VmHWM, sampled every 20 ms), with the median CPU seconds (user + system, which a shared machine
inflates less than wall time) and their ratio to the first external command. Every command writes
TIFF (no PNG compression in one row only).

By stage (:func:`profile_stages`, in this process, once per method): the pipeline of
:mod:`mfif.stacking` with timers around decode (reading the files), warp + exposure (preparing a
frame), the alignment estimate, the merge (less the frame reads inside it; split into the N-frame
rule's decide / global step / blend when the method uses it) and encode.
"""
from __future__ import annotations

import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from mfif.errors import InputError


@dataclass
class EndToEnd:
    label: str
    seconds: list[float] = field(default_factory=list)
    peak_mb: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)
    error: str = ""

    @property
    def median(self) -> float | None:
        return statistics.median(self.seconds) if self.seconds else None

    @property
    def cpu(self) -> float | None:
        return statistics.median(self.cpu_seconds) if self.cpu_seconds else None

    @property
    def peak(self) -> float | None:
        return max(self.peak_mb) if self.peak_mb else None


def _peak_kb(pid: int) -> int:
    """VmHWM (peak resident set) of a live process in kB, 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_timed(argv, *, shell: bool = False) -> tuple[float, float, str, float]:
    """Run a command to completion: (wall seconds, peak RSS in MB, error text, CPU seconds).

    The peak is the process's VmHWM sampled every 20 ms (the rusage of a child would include the
    resident size of this process at the fork). CPU seconds: user + system time of the process
    and its children (``wait4``), which a machine shared with other work inflates less than wall
    time. A shell command runs as ``exec``, so its process is the tool itself."""
    if shell:
        argv = f"exec {argv}"
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, shell=shell, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    cpu = 0.0
    while True:
        peak = max(peak, _peak_kb(proc.pid))
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            cpu = usage.ru_utime + usage.ru_stime
            proc.returncode = os.waitstatus_to_exitcode(status)
            break
        time.sleep(0.02)
    seconds = time.perf_counter() - t0
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    proc.stderr.close()
    code = proc.returncode
    return seconds, peak / 1024.0, "" if code == 0 else f"exit {code}: {err.strip()[-300:]}", cpu


def stack_frames(items) -> list:
    """The frames of ``--stack`` items (files, globs, folders: :func:`mfif.io.expand_inputs`), less
    a folder's ground truth (``GT.png``, ``<name>_GT.png``: :func:`mfif.dataset_folders.is_ground_truth`),
    so a dev-set stack folder times its frames only (its focus maps sit in a ``focus/`` sub-folder,
    which a folder's expansion does not enter)."""
    from mfif.dataset_folders import is_ground_truth
    from mfif.io import expand_inputs

    return [frame for item in items for frame in expand_inputs([item])
            if not (Path(item).is_dir() and is_ground_truth(frame))]


def external_command(template: str, inputs: list[Path], output: Path) -> str:
    """Fill ``{inputs}`` (quoted, space separated) and ``{output}`` in a shell command template."""
    if "{output}" not in template:
        raise InputError(f"--external command must contain {{output}} (and usually {{inputs}}): {template!r}")
    return template.format(inputs=" ".join(shlex.quote(str(p)) for p in inputs), output=shlex.quote(str(output)))


def end_to_end(inputs: list[Path], methods: list[str], externals: list[str], *, repeats: int = 3,
               align: bool = True, options: dict[str, list[str]] | None = None) -> list[EndToEnd]:
    """Interleaved repeated runs (module docstring); rows: methods first, then the externals."""
    rows = [EndToEnd(f"mfif {m}") for m in methods] + [EndToEnd(t.split()[0]) for t in externals]
    with tempfile.TemporaryDirectory(prefix="mfif-stack-bench-") as tmp:
        for r in range(repeats):
            for k, m in enumerate(methods):
                out = Path(tmp) / f"{m}_{r}.tif"  # the externals' format: no PNG compression in one row only
                argv = [sys.executable, "-m", "mfif.cli", "fuse", *map(str, inputs), "-o", str(out), "-m", m, "-q",
                        "--align" if align else "--no-align", *(options or {}).get(m, [])]
                _record(rows[k], *run_timed(argv))
            for j, template in enumerate(externals):
                out = Path(tmp) / f"external{j}_{r}.tif"
                _record(rows[len(methods) + j], *run_timed(external_command(template, inputs, out), shell=True))
    return rows


def _record(row: EndToEnd, seconds: float, mb: float, err: str, cpu: float = 0.0) -> None:
    if err:
        row.error = err
    else:
        row.seconds.append(seconds)
        row.peak_mb.append(mb)
        row.cpu_seconds.append(cpu)


def _time_decodes(frames) -> list[float]:
    """Wrap ``frames.raw`` (file -> array) with a timer; returns the one-element list it adds to."""
    spent = [0.0]
    raw = frames.raw

    def timed_raw(i):
        t0 = time.perf_counter()
        try:
            return raw(i)
        finally:
            spent[0] += time.perf_counter() - t0

    frames.raw = timed_raw
    return spent


def profile_stages(inputs: list[Path], method: str, *, align: bool = True) -> dict[str, float]:
    """Seconds per stage of ``mfif fuse`` for one method (module docstring), in one thread
    (``MFIF_THREADS=1``): the stages' own costs; ``mfif fuse`` overlaps them in worker threads."""
    import os

    saved = os.environ.get("MFIF_THREADS")
    os.environ["MFIF_THREADS"] = "1"
    try:
        return _profile_stages(inputs, method, align=align)
    finally:
        if saved is None:
            os.environ.pop("MFIF_THREADS", None)
        else:
            os.environ["MFIF_THREADS"] = saved


def _profile_stages(inputs: list[Path], method: str, *, align: bool = True) -> dict[str, float]:
    from mfif.io import write_image
    from mfif.stacking import fuse_frames, prepare_frames

    decode_in_align = 0.0
    t0 = time.perf_counter()
    if align:
        # prepare_frames reads every frame once to estimate the alignment: time those reads apart
        import mfif.stacking as stacking

        original = stacking.read_samples_with_info

        def timed_read(path):
            nonlocal decode_in_align
            t = time.perf_counter()
            try:
                return original(path)
            finally:
                decode_in_align += time.perf_counter() - t

        stacking.read_samples_with_info = timed_read
        try:
            frames = prepare_frames(inputs, align=True)
        finally:
            stacking.read_samples_with_info = original
    else:
        frames = prepare_frames(inputs, align=False)
    t_align = time.perf_counter() - t0
    from mfif.stack_rule import ReadClock

    decodes = _time_decodes(frames)
    timed = ReadClock(frames)
    t1 = time.perf_counter()
    result = fuse_frames(timed, method)
    t_merge = time.perf_counter() - t1
    t2 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mfif-stack-bench-") as tmp:
        write_image(Path(tmp) / "fused.tif", result.fused, bit_depth=8)
    t_encode = time.perf_counter() - t2
    stages = {
        "decode": decode_in_align + decodes[0],
        "alignment estimate (+ first exposure pass)": t_align - decode_in_align,
        "warp + exposure": timed.seconds - decodes[0],
        "merge (focus measure, decision, blend)": t_merge - timed.seconds,
    }
    phases = dict(result.info.get("phase_seconds") or {})
    if phases:  # the N-frame rule's own split (its frame reads are counted above)
        del stages["merge (focus measure, decision, blend)"]
        phases.pop("frame_reads", None)
        for name, seconds in phases.items():
            stages[f"merge: {name}"] = seconds
    stages["encode (TIFF)"] = t_encode
    stages["total"] = time.perf_counter() - t0
    hits = frames.decoded.hits if getattr(frames, "decoded", None) is not None else 0
    stages["file decodes"] = float(len(inputs) + frames.reads - hits)
    stages["frame reads in the merge"] = float(frames.reads)
    return stages


def format_report(rows: list[EndToEnd], stages: dict[str, dict[str, float]], *, inputs: list[Path], shape,
                  repeats: int) -> str:
    base = next((r for r in rows if not r.label.startswith("mfif ") and r.median), None)
    lines = [f"stack: {len(inputs)} frames, {shape[3]}x{shape[2]} ({shape[3] * shape[2] / 1e6:.1f} MP), "
             f"median of {repeats} interleaved runs; cores shared with other work",
             "", "| command | median s | x first external | median CPU s | CPU x first external | peak MB |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        if r.error and not r.seconds:
            lines.append(f"| {r.label} | failed: {r.error[:80]} | | | | |")
            continue
        ratio = f"{r.median / base.median:.2f}" if base else ""
        cpu_ratio = f"{r.cpu / base.cpu:.2f}" if base and base.cpu else ""
        lines.append(f"| {r.label} | {r.median:.2f} | {ratio} | {r.cpu:.2f} | {cpu_ratio} | {r.peak:.0f} |")
    for method, st in stages.items():
        lines += ["", f"stages of `mfif fuse -m {method}` (one run, in process, one thread):", "",
                  "| stage | s |", "|---|---:|"]
        for name, s in st.items():
            if name in ("file decodes", "frame reads in the merge"):
                lines.append(f"| {name} (count) | {int(s)} |")
            else:
                lines.append(f"| {name} | {s:.2f} |")
    return "\n".join(lines) + "\n"
