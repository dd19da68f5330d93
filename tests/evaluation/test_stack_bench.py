"""`mfif bench --stack` timing helper: wall time, peak memory and CPU seconds of a child process."""
from __future__ import annotations

import sys

from mfif.evaluation.stack_bench import EndToEnd, _record, format_report, run_timed


def test_run_timed_reports_the_cpu_time_of_the_child():
    busy = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass"
    seconds, peak_mb, err, cpu = run_timed([sys.executable, "-c", busy])
    assert err == "" and cpu >= 0.3 and seconds >= 0.3 and peak_mb > 1.0


def test_run_timed_reports_a_failure():
    seconds, _, err, _ = run_timed([sys.executable, "-c", "import sys; sys.stderr.write('bad'); sys.exit(3)"])
    assert err.startswith("exit 3") and "bad" in err


def test_report_gives_ratios_to_the_first_external():
    rows = [EndToEnd("mfif gff"), EndToEnd("enfuse")]
    _record(rows[0], 3.0, 500.0, "", 2.0)
    _record(rows[1], 2.0, 200.0, "", 4.0)
    text = format_report(rows, {}, inputs=[None] * 3, shape=(3, 3, 100, 200), repeats=1)
    assert "| mfif gff | 3.00 | 1.50 | 2.00 | 0.50 | 500 |" in text
