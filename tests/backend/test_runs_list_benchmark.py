"""benchmarks/runs_list.py runs end to end on a small database (its numbers live in the README)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO


def test_runs_list_benchmark_runs() -> None:
    result = subprocess.run(
        [sys.executable, "benchmarks/runs_list.py", "--runs", "60", "--epochs", "3", "--repeats", "2"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "seeded 60 runs x 3 epochs into sqlite" in result.stdout
    rows = [
        line for line in result.stdout.splitlines() if line.startswith(("runs list", "filtered", "sorted", "compare"))
    ]
    assert len(rows) == 4 and all(float(line.split()[-1]) > 0 for line in rows)
