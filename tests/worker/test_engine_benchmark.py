"""benchmarks/engine.py and engine_features.py run end to end on tiny sizes and write their tables; no timing
is asserted."""

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


def test_feature_benchmark_runs_its_cases_through_fit(tmp_path: Path) -> None:
    out = tmp_path / "features.json"
    cases = ["cnn, crop+flip+jitter+rotation", "resnet18 fc+layer4, adamw"]
    command = [sys.executable, str(REPO / "benchmarks" / "engine_features.py"), "--case", *cases]
    command += ["--train-size", "32", "--test-size", "8", "--batch-size", "16", "--epochs", "1", "--json", str(out)]

    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, check=False)

    assert result.returncode == 0, result.stderr
    assert "cpu: resize+normalise match the CPU; augmentation repeats with its seed" in result.stdout
    rows = json.loads(out.read_text())["rows"]
    assert [row["case"] for row in rows] == cases
    assert rows[1]["lr"] == [0.01, 0.0001] and rows[1]["trainable_parameters"] < 11_000_000  # fc + layer4 only
    assert all(row["images"] == 32 and row["images_per_s"] > 0 for row in rows)


def test_benchmark_graphs_flag_adds_the_graphed_engine_and_its_speedup(tmp_path: Path) -> None:
    """On the CPU the graphed pipeline trains eagerly (and says why); the table and JSON carry it either way."""
    out = tmp_path / "engine.json"
    command = [sys.executable, str(REPO / "benchmarks" / "engine.py"), "--arch", "mlp", "--graphs"]
    command += ["--train-size", "96", "--test-size", "16", "--batch-size", "32", "--epochs", "1", "--warmup", "0"]

    result = subprocess.run([*command, "--json", str(out)], capture_output=True, text=True, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert "cuda_graphs: training eagerly: the run is on cpu" in result.stderr
    assert "cuda graphs: " in result.stdout and "x the eager engine's" in result.stdout
    report = json.loads(out.read_text())
    assert [row["pipeline"] for row in report["rows"]][-1] == "engine, cuda_graphs"
    graphed = report["rows"][-1]
    assert report["graphs_speedup"]["mlp"] == 1 / graphed["time_vs_engine"] and graphed["images_per_s"] > 0
