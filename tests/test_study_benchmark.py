"""benchmarks/study.py runs a study through a real `serve` and reports figures that add up."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.queue


def test_the_study_benchmark_times_a_short_study(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    command = [
        sys.executable,
        "benchmarks/study.py",
        "--train-images",
        "256",
        "--train-limit",
        "128",
        "--runs",
        "2",
        "--epochs",
        "1",
        "--data-dir",
        str(tmp_path / "data"),
        "--json",
        str(out),
    ]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    figures = json.loads(out.read_text())
    assert (figures["runs"], figures["succeeded"], figures["train_images"]) == (2, 2, 128)
    assert 0 < figures["epoch_seconds"] < figures["wall_seconds"]
    assert 0 <= figures["claim_to_first_batch_s"] < figures["wall_seconds"]
    assert figures["ratio_to_report"] is None  # a shortened table is not comparable with the report's
    assert "2 runs (2 succeeded)" in result.stdout
