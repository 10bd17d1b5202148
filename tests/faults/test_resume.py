"""Exact resume through the real queue: a seeded run whose training process is killed (kill -9) after a
checkpoint was acknowledged is requeued, resumes from that checkpoint in a new process, and ends with
metrics bit-identical to the same run uninterrupted (losses, accuracies, per-class, learning rates), with
no epoch missing or doubled. Once on the SQLite broker of `trainboard serve` (a CNN with augmentation, a
step schedule and early stopping), once on Redis with a separate `trainboard worker` (an MLP with dropout)."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from tests.conftest import API, LiveServer, WorkerProcess, live_settings, tiny_spec, wait_for
from tests.faults.conftest import PrivateRedis
from tests.faults.test_processes import claimed_by
from trainboard.spec import RunSpec
from worker.trained import accuracy_on_test_set, load_model

TIMING = {"seconds", "images_per_s", "system"}
CNN = tiny_spec(
    name="resume-cnn",
    epochs=5,
    dataset={"name": "digits"},
    batch_size=8,
    model={"arch": "custom_cnn", "blocks": [16, 32], "dropout": 0.1, "hidden": [32]},
    augment={"random_crop": {"size": 8, "padding": 1}, "hflip": {"p": 0.5}},
    optimizer={"name": "sgd", "lr": 0.02, "momentum": 0.9},
    scheduler={"name": "step", "step_size": 2, "gamma": 0.5},
    early_stopping={"patience": 20, "restore_best": True},
    checkpoint={"min_seconds": 0},
)
MLP = tiny_spec(
    name="resume-mlp",
    epochs=5,
    dataset={"name": "digits"},
    batch_size=4,
    model={"arch": "mlp", "hidden": [128, 64], "dropout": 0.2},
    optimizer={"name": "adam", "lr": 0.001},
    scheduler={"name": "cosine"},
    checkpoint={"min_seconds": 0},
)


def untimed(metrics: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in m.items() if k not in TIMING} for m in metrics]


def check_exact_resume(api: Any, spec: dict[str, Any], training_pid: Any, log: Any, tmp: Path) -> None:
    reference = submit_and_wait(api, spec, log)
    run_id = submit_to(api, spec)

    def checkpointed() -> int:
        names = [a for a in api.get(f"/api/runs/{run_id}/artifacts").json()["data"] if a["kind"] == "checkpoint"]
        run = api.get(f"/api/runs/{run_id}").json()
        assert run["status"] in ("queued", "running"), f"ended before it could be killed: {run}\n{log()[-2000:]}"
        return max((a["epoch"] for a in names), default=0)

    k = wait_for(lambda: checkpointed() >= 2, 120, 0.02, f"a checkpoint of epoch 2 or later:\n{log()[-2000:]}")
    assert k
    os.kill(training_pid(run_id), signal.SIGKILL)
    final = wait_for(lambda: ended(api, run_id), 180, 0.2, f"the resumed run to end:\n{log()[-3000:]}")
    assert final["status"] == "succeeded", f"{final['error']}\n{log()[-3000:]}"
    assert final["attempt"] == 2 and final["resumed_from"] is not None and final["resumed_from"] >= 2, final
    assert "killed by signal 9" in (final["error"] or ""), final
    metrics = api.get(f"/api/runs/{run_id}/metrics").json()["data"]
    assert [m["epoch"] for m in metrics] == list(range(1, spec["epochs"] + 1))  # no gap, no duplicate
    expected = api.get(f"/api/runs/{reference}/metrics").json()["data"]
    assert untimed(metrics) == untimed(expected)
    assert final["summary"]["final_test_acc"] == api.get(f"/api/runs/{reference}").json()["summary"]["final_test_acc"]
    kinds = sorted(a["kind"] for a in api.get(f"/api/runs/{run_id}/artifacts").json()["data"])
    assert kinds == ["checkpoint", "weights"]  # the newest checkpoint only, and the final weights

    # The weights download, load into the model of the spec, and score the run's own test accuracy.
    download = api.get(f"/api/runs/{run_id}/weights")
    assert download.status_code == 200 and download.headers["x-trainboard-sha256"]
    path = tmp / "weights.safetensors"
    path.write_bytes(download.content)
    model, loaded = load_model(path)
    assert loaded.model_dump() == RunSpec.model_validate(spec).model_dump()
    assert accuracy_on_test_set(model, loaded, tmp) == final["summary"]["final_test_acc"]


def submit_to(api: Any, spec: dict[str, Any]) -> int:
    response = api.post("/api/runs", json=spec)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def ended(api: Any, run_id: int) -> dict[str, Any] | None:
    run = api.get(f"/api/runs/{run_id}").json()
    return dict(run) if run["status"] in ("succeeded", "failed", "cancelled") else None


def submit_and_wait(api: Any, spec: dict[str, Any], log: Any) -> int:
    run_id = submit_to(api, spec)
    done = wait_for(lambda: ended(api, run_id), 180, 0.2, f"the reference run:\n{log()[-3000:]}")
    assert done["status"] == "succeeded", done
    return run_id


def test_a_killed_cnn_run_resumes_exactly_on_the_sqlite_broker(serve_factory: Any) -> None:
    serve = serve_factory()
    wait_for(lambda: serve.live_workers(), 60, 0.2, "the embedded worker")
    check_exact_resume(serve.http, CNN, lambda run_id: claimed_by(serve, run_id), serve.log, serve.data_dir)


def test_a_killed_mlp_run_resumes_exactly_on_redis(private_redis: PrivateRedis, tmp_path: Path) -> None:
    settings = live_settings(tmp_path, broker_url=private_redis.url, heartbeat_seconds=0.2, lost_after_seconds=4.0)
    server = LiveServer(settings).start()
    worker = WorkerProcess(settings, "resume", tmp_path / "worker.log")
    try:
        import httpx

        with httpx.Client(base_url=server.url, headers=API, timeout=30) as api:

            def training_pid(run_id: int) -> int:
                return int(run_worker(server, run_id).rsplit(":", 1)[1])

            check_exact_resume(api, MLP, training_pid, worker.log, tmp_path)
    finally:
        worker.stop()
        server.stop()


def run_worker(server: LiveServer, run_id: int) -> str:
    from sqlmodel import Session

    from backend.tables import Run

    app = server.server.config.app
    with Session(app.state.engine) as session:  # type: ignore[attr-defined]
        run = session.get(Run, run_id)
        assert run is not None and run.worker
        return run.worker
