"""benchmarks/: the table of scripts in benchmarks/results/README.md names every script kept there."""
from __future__ import annotations

import re
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_results_readme_table_names_every_benchmark_script():
    text = (BENCHMARKS / "results" / "README.md").read_text()
    section = text[text.index("## The scripts in benchmarks/"):]
    rows = [line.split("|")[1] for line in section.splitlines() if line.startswith("| `")]  # first column
    named = {name for row in rows for name in re.findall(r"`([\w.]+\.(?:py|sh))`", row)}
    scripts = {p.name for p in BENCHMARKS.iterdir() if p.suffix in (".py", ".sh")}
    assert scripts - named == set(), "scripts missing from the README table"
    assert named - scripts == set(), "README names scripts that are gone"
