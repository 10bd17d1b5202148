"""Placement and fair queues for real, on both brokers: a live API, real `trainboard worker` processes.

- Runs start by priority, then round-robin across studies: a lone run queued behind a study starts second.
- A run goes only to a worker of its queue; a run that asks for a GPU never trains on a CPU-only worker.
- SIGTERM drains a worker: it finishes its run, is listed as draining, takes no new run, then says goodbye.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import LiveServer, WorkerProcess, live_settings, tiny_spec, wait_for

pytestmark = pytest.mark.queue


@pytest.fixture(params=["sqlite-broker", "redis-broker"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LiveServer]:
    if request.param == "redis-broker":
        broker = request.getfixturevalue("redis_url")
    else:
        broker = f"sqla+sqlite:///{tmp_path / 'broker.db'}"
    # Each test has a queue name of its own: nothing another test left in Redis reaches its workers.
    live = LiveServer(live_settings(tmp_path, broker_url=broker, queue=f"placement-{tmp_path.name[-24:]}")).start()
    yield live
    live.stop()


def get(server: LiveServer, path: str) -> Any:
    with server.api() as api:
        response = api.get(path)
        assert response.status_code == 200, response.text
        return response.json()


def submit(server: LiveServer, spec: dict[str, Any], query: str = "") -> int:
    with server.api() as api:
        response = api.post(f"/api/runs{query}", json=spec)
        assert response.status_code == 201, response.text
        return int(response.json()["id"])


def ended(server: LiveServer, run_ids: list[int], workers: list[WorkerProcess]) -> list[dict[str, Any]]:
    def all_ended() -> list[dict[str, Any]] | None:
        found = [get(server, f"/api/runs/{run_id}") for run_id in run_ids]
        return found if all(r["status"] in ("succeeded", "failed", "cancelled") for r in found) else None

    try:
        return list(wait_for(all_ended, 120, 0.2, f"runs {run_ids} to end"))
    except AssertionError:
        logs = "\n".join(f"--- {w.log_path.name}\n{w.log()[-3000:]}" for w in workers)
        raise AssertionError(f"{[get(server, f'/api/runs/{r}') for r in run_ids]}\n{logs}") from None


def trained_by(worker: WorkerProcess, run_id: int) -> bool:
    return f"run {run_id}: attempt 1 started" in worker.log()


def test_runs_start_by_priority_then_round_robin_across_studies(server: LiveServer, tmp_path: Path) -> None:
    with server.api() as api:
        study = api.post(
            "/api/studies",
            json={"name": "big", "base": tiny_spec(epochs=1), "variants": [{"label": "a", "repeats": 3}]},
        )
        assert study.status_code == 201, study.text
    in_study = [run["id"] for run in study.json()["data"]]
    lone = submit(server, tiny_spec(name="lone", epochs=1))
    urgent = submit(server, tiny_spec(name="urgent", epochs=1), "?priority=5")
    worker = WorkerProcess(server.settings, "one-slot", tmp_path / "worker.log")  # started after all were queued
    try:
        runs = ended(server, [*in_study, lone, urgent], [worker])
    finally:
        worker.stop()
    assert {r["status"] for r in runs} == {"succeeded"}
    started = [r["id"] for r in sorted(runs, key=lambda r: r["started_at"])]
    assert started == [urgent, in_study[0], lone, in_study[1], in_study[2]]


def test_a_run_goes_only_to_a_worker_of_its_queue_and_a_gpu_run_never_to_a_cpu_worker(
    server: LiveServer, tmp_path: Path
) -> None:
    a = WorkerProcess(server.settings, "on-a", tmp_path / "a.log", "--queue", "a")
    b = WorkerProcess(server.settings, "on-b", tmp_path / "b.log", "--queue", "b", "--queue", "default")
    try:
        for_b = [submit(server, tiny_spec(name=f"b{i}"), "?queue=b") for i in range(2)]
        for_a = submit(server, tiny_spec(name="a0"), "?queue=a")
        wants_gpu = submit(server, tiny_spec(name="gpu", device="cuda"))
        plain = submit(server, tiny_spec(name="plain"))
        runs = ended(server, [*for_b, for_a, plain], [a, b])
        assert {r["status"] for r in runs} == {"succeeded"}
        assert all(trained_by(b, run_id) and not trained_by(a, run_id) for run_id in [*for_b, plain])
        assert trained_by(a, for_a) and not trained_by(b, for_a)
        gpu_run = get(server, f"/api/runs/{wants_gpu}")  # neither worker has a GPU: it waits, and says why
        assert (gpu_run["status"], gpu_run["attempt"]) == ("queued", 0)
        assert gpu_run["waiting"] == "no live worker with a GPU listens on queue default"
        assert not trained_by(a, wants_gpu) and not trained_by(b, wants_gpu)
        listed = {w["name"].split("@")[0]: w["queues"] for w in get(server, "/api/workers")["data"]}
        assert listed == {"on-a": ["a"], "on-b": ["b", "default"]}
    finally:
        a.stop()
        b.stop()


def test_sigterm_drains_a_worker(server: LiveServer, tmp_path: Path) -> None:
    worker = WorkerProcess(server.settings, "drained", tmp_path / "worker.log")
    try:
        first = submit(server, tiny_spec(name="long", epochs=40, dataset={"name": "digits"}))
        wait_for(lambda: get(server, f"/api/runs/{first}")["summary"]["epochs_done"] >= 1, 60, 0.1, "the run to train")
        os.kill(worker.process.pid, signal.SIGTERM)  # the worker alone, as `docker stop` does (not its run)

        def status() -> str:
            (listed,) = get(server, "/api/workers")["data"]
            return str(listed["status"])

        wait_for(lambda: status() == "draining", 10, 0.1, f"the worker to drain:\n{worker.log()[-2000:]}")
        later = submit(server, tiny_spec(name="later"))
        assert get(server, f"/api/runs/{later}")["waiting"] == "no live worker listens on queue default"
        (run,) = ended(server, [first], [worker])
        assert (run["status"], run["attempt"], run["summary"]["epochs_done"]) == ("succeeded", 1, 40)  # all of it
        assert worker.process.wait(timeout=30) == 0
        assert status() == "stopped"
        assert (get(server, f"/api/runs/{later}")["status"], get(server, f"/api/runs/{later}")["attempt"]) == (
            "queued",
            0,
        )
    finally:
        worker.stop()
