"""A preset study through the real queue: `POST /api/studies` with the `mnist-ablations` preset and a global
override (1 epoch, a slice of the data), two `trainboard worker` processes, MNIST idx files in the data
directory (no network) — every one of the 18 runs succeeds, each with its label and its one epoch."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import LiveServer, WorkerProcess, live_settings, wait_for
from tests.datafiles import write_idx_dataset
from trainboard.presets import presets

pytestmark = pytest.mark.queue

TERMINAL = {"succeeded", "failed", "cancelled"}


def test_a_preset_study_runs_to_completion_through_the_queue(tmp_path: Path) -> None:
    settings = live_settings(tmp_path)
    write_idx_dataset(settings.datasets_dir, "MNIST", n_train=64, n_test=32, gz=True)
    server = LiveServer(settings).start()
    workers = [WorkerProcess(settings, f"w{i}", tmp_path / f"worker{i}.log") for i in range(2)]
    try:
        with server.api() as api:
            overrides = {"epochs": 1, "dataset.train_limit": 64, "dataset.test_limit": 32, "device": "cpu"}
            response = api.post("/api/studies", json={"preset": "mnist-ablations", "set": overrides})
            assert response.status_code == 201, response.text
            study_id = response.json()["id"]

            def ended() -> dict | None:
                study = api.get(f"/api/studies/{study_id}").json()
                return study if all(run["status"] in TERMINAL for run in study["data"]) else None

            try:
                study = wait_for(ended, timeout=240, interval=0.5, message="every run of the study to end")
            except AssertionError:
                logs = "\n".join(f"--- {w.log_path.name}\n{w.log()[-3000:]}" for w in workers)
                raise AssertionError(f"{api.get(f'/api/studies/{study_id}').json()['counts']}\n{logs}") from None
            runs = study["data"]
            failed = {run["label"]: run["error"] for run in runs if run["status"] != "succeeded"}
            assert failed == {}
            assert study["counts"]["succeeded"] == 18
            assert [run["label"] for run in runs] == [v.label for v in presets()["mnist-ablations"].variants]
            for run in runs:
                assert (run["attempt"], run["summary"]["epochs_done"], run["device"]) == (1, 1, "cpu"), run["label"]
                assert run["info"]["train_images"] == 64 and run["info"]["test_images"] == 32
                metrics = api.get(f"/api/runs/{run['id']}/metrics").json()["data"]
                assert [m["epoch"] for m in metrics] == [1]
                assert run["summary"]["final_test_acc"] == pytest.approx(metrics[0]["test_acc"])
                confusion = api.get(f"/api/runs/{run['id']}/confusion").json()["matrix"]
                assert sum(map(sum, confusion)) == 32  # every test image once
            # Both workers took part: the study is spread over the queue, not run by one process.
            assert all("attempt 1 started" in worker.log() for worker in workers)
    finally:
        for worker in workers:
            worker.stop()
        server.stop()
