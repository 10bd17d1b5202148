"""Workers announce themselves (POST /api/workers/heartbeat) and are listed (GET /api/workers), on SQLite and
PostgreSQL: live, gone after the lost-after time, stopped after their goodbye; and a queued run that no live
worker listens for says so."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlmodel import Session, select

from backend.db import utcnow
from backend.tables import Worker
from tests.backend.api.test_runs import create
from tests.conftest import API, WORKER, tiny_spec


def beat(client: Any, name: str = "gpu0@lab", **changes: Any) -> dict[str, Any]:
    body = {
        "name": name,
        "host": "lab",
        "pid": 4242,
        "version": "0.1.0",
        "queues": ["default"],
        "device": {
            "kind": "cuda",
            "name": "NVIDIA H100 80GB HBM3",
            "memory_bytes": 85_520_809_984,
            "cores": 8,
            "gpu": 0,
        },
        "slots": 4,
        "running": [],
        "state": "up",
    } | changes
    response = client.post("/api/workers/heartbeat", json=body, headers=WORKER)
    assert response.status_code == 200, response.text
    return dict(response.json())


def listed(client: Any) -> list[dict[str, Any]]:
    return list(client.get("/api/workers", headers=API).json()["data"])


def silence(client: Any, name: str, seconds: float) -> None:
    with Session(client.app.state.engine) as session:
        worker = session.exec(select(Worker).where(Worker.name == name)).one()
        worker.last_seen = utcnow() - timedelta(seconds=seconds)
        session.add(worker)
        session.commit()


def test_a_worker_is_listed_live_then_gone_then_stopped(client: Any) -> None:
    assert client.get("/api/workers", headers=API).json() == {"data": [], "count": 0}
    answer = beat(client, running=[])
    assert 0 < answer["every_seconds"] <= 5  # several heartbeats per lost-after time
    run = create(client)
    beat(client, running=[run["id"]])
    (worker,) = listed(client)
    assert (worker["name"], worker["status"], worker["slots"], worker["running"]) == (
        "gpu0@lab",
        "live",
        4,
        [run["id"]],
    )
    assert worker["device"] == {
        "kind": "cuda",
        "name": "NVIDIA H100 80GB HBM3",
        "memory_bytes": 85_520_809_984,
        "cores": 8,
        "gpu": 0,
    }
    started = worker["started_at"]
    silence(client, "gpu0@lab", client.app.state.settings.lost_after_seconds + 1)
    (gone,) = listed(client)
    assert gone["status"] == "gone" and gone["running"] == []  # what it last said it ran is no longer true
    beat(client, pid=4243)  # restarted: a new process under the same name
    (back,) = listed(client)
    assert back["status"] == "live" and back["pid"] == 4243 and back["started_at"] > started
    beat(client, pid=4243, state="stopped")
    assert listed(client)[0]["status"] == "stopped"


def test_live_workers_come_first(client: Any) -> None:
    beat(client, "a@old")
    silence(client, "a@old", 10_000)
    beat(client, "z@new")
    assert [w["name"] for w in listed(client)] == ["z@new", "a@old"]


def test_a_queued_run_says_when_no_live_worker_listens_on_its_queue(client: Any) -> None:
    run = create(client)
    assert run["waiting"] == "no live worker listens on queue default"
    assert client.get("/api/runs", headers=API).json()["data"][0]["waiting"] == run["waiting"]
    beat(client, "other@lab", queues=["somewhere-else"])
    assert client.get(f"/api/runs/{run['id']}", headers=API).json()["waiting"] == run["waiting"]
    beat(client)
    assert client.get(f"/api/runs/{run['id']}", headers=API).json()["waiting"] is None
    silence(client, "gpu0@lab", 10_000)
    assert client.get(f"/api/runs/{run['id']}", headers=API).json()["waiting"] == run["waiting"]
    client.post(f"/api/runs/{run['id']}/cancel", headers=API)
    assert client.get(f"/api/runs/{run['id']}", headers=API).json()["waiting"] is None  # only queued runs wait


CPU = {"kind": "cpu", "name": "Xeon", "memory_bytes": 2**34, "cores": 2}


def test_a_run_that_asks_for_a_gpu_waits_for_a_gpu_worker_of_its_queue(client: Any) -> None:
    beat(client, "cpu@lab", device=CPU)
    wants = create(client, _spec(client, "cuda"))
    assert wants["waiting"] == "no live worker with a GPU listens on queue default"
    assert create(client, _spec(client, "auto"))["waiting"] is None  # auto: any worker of the queue takes it
    named = client.post("/api/runs?queue=a100&priority=5", json=_spec(client, "cuda"), headers=API).json()
    assert (named["queue"], named["priority"]) == ("a100", 5)
    assert named["waiting"] == "no live worker listens on queue a100 (with a GPU)"
    beat(client, "gpu@lab", queues=["default", "a100"])
    assert client.get(f"/api/runs/{wants['id']}", headers=API).json()["waiting"] is None
    assert client.get(f"/api/runs/{named['id']}", headers=API).json()["waiting"] is None


def _spec(_client: Any, device: str) -> dict[str, Any]:
    return tiny_spec(device=device)


def test_a_draining_worker_is_listed_and_takes_no_new_run(client: Any) -> None:
    beat(client, "only@lab", device=CPU, slots=1)
    beat(client, "only@lab", device=CPU, slots=1, state="draining", running=[])
    (worker,) = listed(client)
    assert worker["status"] == "draining"
    assert create(client)["waiting"] == "no live worker listens on queue default"


def test_placement_is_bounded(client: Any) -> None:
    for query in ("queue=Bad%20Name", "queue=" + "q" * 41, "priority=101", "priority=-101"):
        response = client.post(f"/api/runs?{query}", json=_spec(client, "cpu"), headers=API)
        assert response.status_code == 422, query
        assert response.json()["detail"][0]["field"] in ("queue", "priority")


def test_a_heartbeat_is_bounded(client: Any) -> None:
    response = client.post(
        "/api/workers/heartbeat",
        json={
            "name": "x" * 201,
            "host": "h",
            "pid": 1,
            "version": "1",
            "queues": [],
            "device": {"kind": "tpu", "name": "?", "cores": 1},
            "slots": 0,
            "running": [],
        },
        headers=WORKER,
    )
    assert response.status_code == 422
    fields = {e["field"] for e in response.json()["detail"]}
    assert {"name", "queues", "device.kind", "slots"} <= fields
