"""The queue path for real: REST -> DB -> broker (SQLite, Redis) -> Celery worker processes -> engine -> API.

Each broker gets a live API server and two real `trainboard worker` processes for the module.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from backend.services.dispatch import Dispatcher
from tests.conftest import LiveServer, WorkerProcess, live_settings, tiny_spec, wait_for

pytestmark = pytest.mark.queue


@dataclass
class Stack:
    server: LiveServer
    workers: list[WorkerProcess]

    def run(self, run_id: int) -> dict[str, Any]:
        with self.server.api() as api:
            return dict(api.get(f"/api/runs/{run_id}").json())

    def wait_until_ended(self, run_id: int, timeout: float = 120.0) -> dict[str, Any]:
        def ended() -> dict[str, Any] | None:
            run = self.run(run_id)
            return run if run["status"] in ("succeeded", "failed", "cancelled") else None

        try:
            return dict(wait_for(ended, timeout, 0.2, f"run {run_id} to end"))
        except AssertionError:
            logs = "\n".join(f"--- {w.log_path.name}\n{w.log()[-3000:]}" for w in self.workers)
            raise AssertionError(f"run {run_id} did not end: {self.run(run_id)}\n{logs}") from None


@pytest.fixture(scope="module", params=["sqlite-broker", "redis-broker"])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data_dir = tmp_path_factory.mktemp(request.param)
    if request.param == "redis-broker":
        broker = request.getfixturevalue("redis_url")
    else:
        broker = f"sqla+sqlite:///{data_dir / 'broker.db'}"
    settings = live_settings(data_dir, broker_url=broker)
    server = LiveServer(settings).start()
    workers = [WorkerProcess(settings, f"w{i}", data_dir / f"worker{i}.log") for i in range(2)]
    yield Stack(server, workers)
    for worker in workers:
        worker.stop()
    server.stop()


def submit(stack: Stack, spec: dict[str, Any]) -> int:
    with stack.server.api() as api:
        response = api.post("/api/runs", json=spec)
        assert response.status_code == 201, response.text
        return int(response.json()["id"])


def test_run_succeeds_with_every_epoch(stack: Stack) -> None:
    run_id = submit(stack, tiny_spec(epochs=3))
    run = stack.wait_until_ended(run_id)
    assert run["status"] == "succeeded", run["error"]
    assert (run["attempt"], run["device"]) == (1, "cpu")
    with stack.server.api() as api:
        metrics = api.get(f"/api/runs/{run_id}/metrics").json()["data"]
        confusion = api.get(f"/api/runs/{run_id}/confusion").json()["matrix"]
    assert [m["epoch"] for m in metrics] == [1, 2, 3]
    assert metrics[-1]["test_loss"] < metrics[0]["test_loss"]
    assert sum(map(sum, confusion)) == 256  # every test image (test_limit) counted once
    assert run["summary"]["final_test_acc"] == pytest.approx(metrics[-1]["test_acc"])
    assert run["summary"]["final_test_acc"] == pytest.approx(sum(confusion[i][i] for i in range(10)) / 256)


def test_cancel_mid_run_keeps_finished_epochs(stack: Stack) -> None:
    spec = tiny_spec(
        name="long",
        epochs=1000,
        dataset={"name": "digits"},
        batch_size=16,
        model={"arch": "cnn", "channels": [16, 32], "hidden": [64]},
    )
    run_id = submit(stack, spec)
    wait_for(lambda: stack.run(run_id)["summary"]["epochs_done"] >= 2, 120, 0.2, "two epochs")
    with stack.server.api() as api:
        assert api.post(f"/api/runs/{run_id}/cancel").status_code == 200
    run = stack.wait_until_ended(run_id, timeout=20)
    assert run["status"] == "cancelled"
    with stack.server.api() as api:
        epochs = [m["epoch"] for m in api.get(f"/api/runs/{run_id}/metrics").json()["data"]]
    assert 2 <= len(epochs) < 1000
    assert epochs == list(range(1, len(epochs) + 1))
    assert run["summary"]["epochs_done"] == len(epochs)


def test_a_duplicated_message_never_runs_twice(stack: Stack) -> None:
    run_id = submit(stack, tiny_spec(name="dup", epochs=4))
    dispatcher = Dispatcher(stack.server.settings.broker, stack.server.settings.queue)
    try:
        assert dispatcher.send(run_id)  # the same id a second time: both workers get a message for it
    finally:
        dispatcher.close()
    run = stack.wait_until_ended(run_id)
    assert run["status"] == "succeeded"
    wait_for(
        lambda: any(f"run {run_id}: not claimed" in w.log() for w in stack.workers),
        60,
        0.2,
        "the second worker to give up its claim",
    )
    assert run["attempt"] == 1
    with stack.server.api() as api:
        assert [m["epoch"] for m in api.get(f"/api/runs/{run_id}/metrics").json()["data"]] == [1, 2, 3, 4]
    started = sum(w.log().count(f"run {run_id}: attempt 1 started") for w in stack.workers)
    assert started == 1
