"""benchmarks/engine.py runs end to end on tiny sizes and writes its table; no timing is asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_benchmark_script_runs_all_three_pipelines(tmp_path: Path) -> None:
    out = tmp_path / "engine.json"
    command = [sys.executable, str(REPO / "benchmarks" / "engine.py"), "--dataset", "cifar10", "--arch", "mlp", "cnn"]
    command += ["--train-size", "96", "--test-size", "16", "--batch-size", "32", "--epochs", "1", "--warmup", "0"]

    result = subprocess.run([*command, "--json", str(out)], capture_output=True, text=True, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert "engine efficiency (bare time / engine time)" in result.stdout
    report = json.loads(out.read_text())
    assert report["setup"]["image_shape"] == [3, 32, 32] and report["setup"]["train_images"] == 96
    rows = [(row["arch"], row["pipeline"]) for row in report["rows"]]
    pipelines = ["engine", "bare loop", "DataLoader+PIL, 0 workers"]
    assert rows == [(arch, pipeline) for arch in ("mlp", "cnn") for pipeline in pipelines]
    engine_rows = [row for row in report["rows"] if row["pipeline"] == "engine"]
    assert all(row["time_vs_engine"] == 1.0 and row["images_per_s"] > 0 for row in engine_rows)
