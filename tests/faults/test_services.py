"""The services going away under a live API and real workers: Redis restarted without persistence or flushed
with run ids sent to it and not yet taken (every run still runs, once), and the database unreachable —
refusing, then frozen — for longer than the lost-after time (503s with Retry-After, the event stream waits
it out, nothing lost, no run called lost)."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import (
    API,
    WORKER,
    LiveServer,
    WorkerProcess,
    ghost_heartbeat,
    live_settings,
    reset_database,
    tiny_spec,
    wait_for,
)
from tests.faults.conftest import PrivateRedis
from tests.faults.proxy import Proxy

pytestmark = pytest.mark.faults


def submit(server: LiveServer, spec: dict[str, Any]) -> int:
    with server.api() as api:
        response = api.post("/api/runs", json=spec)
        assert response.status_code == 201, response.text
        return int(response.json()["id"])


def read(server: LiveServer, path: str, patience: float = 15.0) -> Any:
    """A GET as a client makes it: a 503 (the database gone, or no answer within the request timeout on a
    machine the suite keeps busy) is retried after a moment, for up to `patience` seconds; anything else but
    a 200 fails the test with the answer's status and body."""
    deadline = time.monotonic() + patience
    with server.api() as api:
        while True:
            response = api.get(path)
            if response.status_code != 503 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    assert response.status_code == 200, f"GET {path}: {response.status_code} {response.text}"
    return response.json()


def ended(server: LiveServer, run_id: int, worker: WorkerProcess, timeout: float = 90) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        run = read(server, f"/api/runs/{run_id}")
        return run if run["status"] in ("succeeded", "failed", "cancelled") else None

    try:
        return dict(wait_for(done, timeout, 0.2, f"run {run_id} to end"))
    except AssertionError:
        raise AssertionError(f"run {run_id}: {read(server, f'/api/runs/{run_id}')}\n{worker.log()[-3000:]}") from None


def epochs(server: LiveServer, run_id: int) -> list[int]:
    return [m["epoch"] for m in read(server, f"/api/runs/{run_id}/metrics")["data"]]


def announce_ghost(server: LiveServer, slots: int) -> None:
    """A worker that says it has free slots and never takes a message: the API sends it `slots` run ids, which
    stay in the broker (until the test makes Redis lose them)."""
    beat = ghost_heartbeat(slots)
    with httpx.Client(base_url=server.url, headers=WORKER, timeout=10) as http:
        assert http.post("/api/workers/heartbeat", json=beat).status_code == 200


def messages_sent(server: LiveServer, redis: PrivateRedis, queue: str, run_ids: list[int]) -> None:
    """Wait until the broker holds one message per run, saying what the API knew if it does not."""
    try:
        wait_for(lambda: redis.command("LLEN", queue) == str(len(run_ids)), 10, 0.1, f"{len(run_ids)} messages")
    except AssertionError as exc:
        runs = [read(server, f"/api/runs/{run_id}") for run_id in run_ids]
        state = [(r["id"], r["status"], r["waiting"]) for r in runs]
        raise AssertionError(
            f"{exc}: LLEN {redis.command('LLEN', queue)}; {state}; {read(server, '/api/workers')}"
        ) from None


def test_runs_whose_messages_redis_lost_still_run_once(private_redis: PrivateRedis, tmp_path: Path) -> None:
    settings = live_settings(tmp_path, broker_url=private_redis.url, lost_after_seconds=2.0)
    server = LiveServer(settings).start()
    try:
        first = [submit(server, tiny_spec(name=f"flushed-{i}")) for i in range(3)]
        announce_ghost(server, slots=3)  # the three ids go to Redis
        messages_sent(server, private_redis, settings.queue, first)
        private_redis.command("FLUSHALL")  # every message gone; the runs are queued, and sent, in the database
        worker = WorkerProcess(settings, "w1", tmp_path / "w1.log")
        try:
            for run_id in first:
                run = ended(server, run_id, worker)
                assert (run["status"], run["attempt"]) == ("succeeded", 1)
                assert epochs(server, run_id) == [1, 2, 3]
        finally:
            worker.stop()
        # A duplicate re-send of the first part may still wait there (it would find its run claimed): start clean.
        private_redis.command("DEL", settings.queue)
        second = [submit(server, tiny_spec(name=f"restarted-{i}")) for i in range(2)]
        announce_ghost(server, slots=2)
        messages_sent(server, private_redis, settings.queue, second)
        private_redis.restart()  # no persistence: an empty broker comes back
        worker = WorkerProcess(settings, "w2", tmp_path / "w2.log")
        try:
            for run_id in second:
                run = ended(server, run_id, worker)
                assert (run["status"], run["attempt"]) == ("succeeded", 1)  # ran once
                assert epochs(server, run_id) == [1, 2, 3]
        finally:
            worker.stop()
    finally:
        server.stop()


@pytest.fixture
def proxied_database(postgres_server_url: str) -> Iterator[tuple[str, Proxy]]:
    """The shared PostgreSQL, reached through a proxy of this test's own (the server itself is never touched)."""
    reset_database(postgres_server_url)
    url = make_url(postgres_server_url)
    proxy = Proxy(url.host or "127.0.0.1", url.port or 5432)
    yield url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False), proxy
    proxy.close()
    reset_database(postgres_server_url)


@pytest.mark.postgres
def test_a_database_outage_is_503_and_loses_nothing(
    proxied_database: tuple[str, Proxy], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url, proxy = proxied_database
    settings = live_settings(tmp_path, database_url=url, lost_after_seconds=3.0, request_timeout_seconds=2.0)
    server = LiveServer(settings).start()
    worker = WorkerProcess(settings, "w1", tmp_path / "w1.log")
    caplog.set_level(logging.WARNING, logger="trainboard.database")
    streamed: list[tuple[str, Any]] = []
    try:
        spec = tiny_spec(
            name="through-an-outage",
            epochs=1000,
            dataset={"name": "digits"},
            batch_size=16,
            model={"arch": "cnn", "channels": [16, 32], "hidden": [64]},
        )
        run_id = submit(server, spec)
        wait_for(lambda: len(epochs(server, run_id)) >= 2, 90, 0.2, f"two epochs:\n{worker.log()[-3000:]}")

        def follow() -> None:  # a page's live stream, open across the outage
            with httpx.Client(base_url=server.url, headers=API, timeout=None) as http:
                with http.stream("GET", f"/api/runs/{run_id}/events") as response:
                    event = ""
                    for line in response.iter_lines():
                        if line.startswith("event:"):
                            event = line.split(":", 1)[1].strip()
                        elif line.startswith("data:"):
                            streamed.append((event, json.loads(line.split(":", 1)[1])))
                            if event == "end":
                                return

        threading.Thread(target=follow, daemon=True).start()
        wait_for(lambda: any(e == "epoch" for e, _ in streamed), 10, 0.1, "the stream")

        proxy.refuse()  # down: connections cut, new ones refused
        with server.api() as api:
            down = api.get("/api/runs")
            assert down.status_code == 503 and down.headers["retry-after"] == "5"
            assert "the database is unreachable" in down.json()["detail"]
            page = api.get(f"/runs/{run_id}", headers={"accept": "text/html"}, follow_redirects=False)
            assert page.status_code in (303, 503)  # a page: to the login, or an error page saying so
        threading.Event().wait(settings.lost_after_seconds + 1.5)  # longer than the lost-after time
        proxy.stall()  # frozen: connections open, no answer ever comes
        with httpx.Client(base_url=server.url, headers=API, timeout=20) as api:
            frozen = api.get("/api/runs?limit=1")
        assert frozen.status_code == 503 and "no answer within 2 s" in frozen.json()["detail"]
        threading.Event().wait(1.5)
        proxy.forward()  # back

        before = len(epochs(server, run_id))
        wait_for(lambda: len(epochs(server, run_id)) >= before + 2, 60, 0.2, "training to go on")
        wait_for(lambda: sum(e == "epoch" for e, _ in streamed) >= 4, 30, 0.2, "the stream to go on")
        with server.api() as api:
            assert api.post(f"/api/runs/{run_id}/cancel").status_code == 200
        run = ended(server, run_id, worker)
        assert (run["status"], run["attempt"]) == ("cancelled", 1), run["error"]  # never called lost
        stored = epochs(server, run_id)
        assert stored == list(range(1, len(stored) + 1))  # nothing lost, nothing twice
        streamed_epochs = [data["epoch"] for event, data in streamed if event == "epoch"]
        assert streamed_epochs == sorted(set(streamed_epochs))  # no duplicate through the outage
        outages = [r for r in caplog.records if "unreachable" in r.getMessage()]
        assert 1 <= len(outages) <= 2 and not any(r.exc_info for r in caplog.records)  # a line, not tracebacks
    finally:
        worker.stop()
        server.stop()
