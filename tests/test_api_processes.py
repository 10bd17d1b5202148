"""Several API processes on one PostgreSQL database and one Redis: real uvicorn processes, each on its own port
(as behind a load balancer). A page on one follows epochs reported to another, live (well inside the streams'
15 s idle wake-up, so only the shared feed can pass), with no gaps and no duplicates; the runs list of one
wakes for a run created on another, resuming from a token the other rendered; one process leads recovery:
a queued run whose message the broker lost is sent again once, and a killed leader is replaced."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from sqlmodel import Session

from backend import schema
from backend.db import make_engine
from backend.services import lifecycle
from tests.backend.api.test_events import sse
from tests.conftest import (
    API,
    API_TOKEN,
    REPO,
    WORKER,
    epoch_record,
    free_port,
    ghost_heartbeat,
    make_settings,
    reset_database,
    tiny_spec,
    wait_for,
)
from trainboard.settings import Settings
from trainboard.spec import RunSpec

pytestmark = pytest.mark.postgres

LIVE_S = 5.0  # an event must arrive within this (the idle wake-up is 15 s)


class ApiProcess:
    """`uvicorn --factory backend.app:create_app` as a real process of this checkout, configured by the environment."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = os.environ | {
            "TRAINBOARD_DATA_DIR": str(settings.data_dir),
            "TRAINBOARD_DATABASE_URL": settings.database,
            "TRAINBOARD_BROKER_URL": settings.broker,
            "TRAINBOARD_QUEUE": settings.queue,
            "TRAINBOARD_API_URL": self.url,
            "TRAINBOARD_API_TOKEN": settings.api_token,
            "TRAINBOARD_WORKER_TOKEN": settings.worker_token,
            "TRAINBOARD_LOST_AFTER_SECONDS": str(settings.lost_after_seconds),
            "PYTHONUNBUFFERED": "1",
        }
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "backend.app:create_app", "--port", str(self.port)],
            cwd=REPO,  # this checkout's code, not an installed copy
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def health(self) -> dict[str, Any] | None:
        try:
            answer = httpx.get(f"{self.url}/api/health", headers=API, timeout=5)
        except httpx.HTTPError:
            return None
        return dict(answer.json()) if answer.status_code == 200 else None

    def wait_until_up(self) -> None:
        wait_for(lambda: self.health() or self.process.poll() is not None, 60, 0.1, f"the API on {self.port}")
        assert self.process.poll() is None, self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()


@pytest.fixture
def deployment(tmp_path: Path, postgres_server_url: str, redis_url: str) -> Iterator[Settings]:
    """Settings of a deployment of this test's own: a fresh database, a broker queue and change stream of its own."""
    if not redis_url.startswith("redis://"):
        pytest.skip("needs a Redis server on TCP (the local one)")
    reset_database(postgres_server_url)
    engine = make_engine(postgres_server_url)
    schema.upgrade(engine)  # a shared database is upgraded beforehand (`trainboard db upgrade`), never by the API
    engine.dispose()
    queue = f"trainboard-processes-{uuid.uuid4().hex[:8]}"
    settings = make_settings(tmp_path, database_url=postgres_server_url, broker_url=redis_url, queue=queue)
    yield settings
    client = redis.Redis.from_url(redis_url)
    client.delete(queue, f"trainboard:{queue}:changes", f"_kombu.binding.{queue}")  # only this test's keys
    client.close()


@pytest.fixture
def start_pair(deployment: Settings, tmp_path: Path) -> Iterator[Callable[..., tuple[ApiProcess, ApiProcess]]]:
    """Two API processes of the deployment (`lost_after_seconds` for both), started side by side."""
    started: list[ApiProcess] = []

    def start(**overrides: Any) -> tuple[ApiProcess, ApiProcess]:
        settings = deployment.model_copy(update=overrides)
        a, b = ApiProcess(settings, tmp_path / "a.log"), ApiProcess(settings, tmp_path / "b.log")
        started.extend((a, b))
        a.wait_until_up()
        b.wait_until_up()
        return a, b

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def pair(start_pair: Callable[..., tuple[ApiProcess, ApiProcess]]) -> tuple[ApiProcess, ApiProcess]:
    return start_pair()  # the default lost-after time: no run is declared lost while a test drives it


def test_a_page_on_one_process_follows_epochs_reported_to_another(pair: tuple[ApiProcess, ApiProcess]) -> None:
    a, b = pair
    with (
        httpx.Client(base_url=b.url, timeout=30) as worker_b,
        httpx.Client(base_url=a.url, headers=API, timeout=httpx.Timeout(30, read=LIVE_S)) as page_a,
    ):
        run_id = worker_b.post("/api/runs", json=tiny_spec(epochs=5), headers=API).json()["id"]
        claim = worker_b.post(f"/api/runs/{run_id}/claim", json={"worker": "t"}, headers=WORKER).json()
        lease = {"attempt": claim["attempt"], "lease": claim["lease"]}
        received: list[int] = []
        delays: list[float] = []
        with page_a.stream("GET", f"/api/runs/{run_id}/events") as response:
            events = sse(response)
            assert next(events)[0] == "run"
            for epoch in range(1, 6):  # a worker reports to B; the page is on A
                sent = time.monotonic()
                body = lease | {"record": epoch_record(epoch)}
                assert worker_b.post(f"/api/runs/{run_id}/epochs", json=body, headers=WORKER).status_code == 200
                for event, event_id, data in events:  # httpx.ReadTimeout after LIVE_S: not live
                    if event == "epoch":
                        assert event_id == str(data["epoch"])
                        received.append(data["epoch"])
                        delays.append(time.monotonic() - sent)
                        break
            result = {"stopped": "completed", "epochs_run": 5, "total_seconds": 1.0}
            worker_b.post(f"/api/runs/{run_id}/finish", json=lease | {"result": result}, headers=WORKER)
            tail = [(event, data) for event, _, data in events]  # to the `end` event: the stream closes
    assert received == [1, 2, 3, 4, 5]  # no gaps, no duplicates
    assert max(delays) < LIVE_S
    assert not [event for event, _ in tail if event == "epoch"]
    assert tail[-1][0] == "end" and tail[-1][1]["status"] == "succeeded"


def since_token(server: ApiProcess) -> str:
    """The change token the runs page of `server` is rendered at, as a browser gets it."""
    with httpx.Client(base_url=server.url, timeout=30, follow_redirects=True) as browser:
        page = browser.get(f"/?token={API_TOKEN}").text
    found = re.search(r'id="runs" data-since="([^"]+)"', page)
    assert found, page[:500]
    return found.group(1)


def test_the_runs_list_on_one_process_wakes_for_a_run_created_on_another(pair: tuple[ApiProcess, ApiProcess]) -> None:
    a, b = pair
    httpx.post(f"{b.url}/api/runs", json=tiny_spec(name="before"), headers=API, timeout=30)
    token = since_token(b)  # rendered by B; the page's stream reaches A (another process behind the address)
    with httpx.Client(base_url=a.url, headers=API, timeout=httpx.Timeout(30, read=LIVE_S)) as page_a:
        with page_a.stream("GET", "/api/events", params={"since": token}) as response:
            events = sse(response)
            created = httpx.post(f"{b.url}/api/runs", json=tiny_spec(name="on-b"), headers=API, timeout=30).json()
            event, _, data = next(events)  # not `reload`: A understands B's token
    assert event == "run"
    assert (data["id"], data["name"], data["status"]) == (created["id"], "on-b", "queued")


def leaders(*servers: ApiProcess) -> list[bool]:
    return [bool((server.health() or {}).get("leader")) for server in servers]


def test_one_process_leads_recovery_and_another_takes_over_when_it_dies(
    start_pair: Callable[..., tuple[ApiProcess, ApiProcess]], deployment: Settings, redis_url: str
) -> None:
    engine = make_engine(deployment.database)
    with Session(engine) as session:  # queued in the database, its message lost while no API ran
        run_id = lifecycle.create_runs(session, [RunSpec.model_validate(tiny_spec())])[0].id
    engine.dispose()
    broker = redis.Redis.from_url(redis_url)
    stop = threading.Event()
    try:
        a, b = start_pair(lost_after_seconds=2.0)  # recovery rounds every 0.5 s
        assert sorted(leaders(a, b)) == [False, True]
        # A worker with one free slot that never takes its message, heard from by both processes in turn: the
        # run's id goes to the broker once (a second send would need a second slot), and stays there.
        threading.Thread(target=ghost_worker, args=([a, b], stop), daemon=True).start()
        wait_for(lambda: broker.llen(deployment.queue) > 0, 10, 0.1, "the run to be sent")
        time.sleep(1.5)  # both loops go round a few times: a second leader would have sent it at its start too
        assert broker.llen(deployment.queue) == 1

        broker.delete(deployment.queue)  # the broker loses it while both run (a Redis restarted without persistence)
        wait_for(lambda: broker.llen(deployment.queue) > 0, 10, 0.1, "the lost message to be sent again")
        time.sleep(1.5)
        assert broker.llen(deployment.queue) == 1
        assert f"sent 1 again: [{run_id}]" in (a.log_path.read_text() + b.log_path.read_text())

        leader, other = (a, b) if leaders(a, b)[0] else (b, a)
        leader.kill()  # kill -9: its lock goes with its connection
        wait_for(lambda: leaders(other) == [True], 10, 0.1, "the other process to take the lead")
    finally:
        stop.set()
        broker.close()


def ghost_worker(servers: list[ApiProcess], stop: threading.Event) -> None:
    beat = ghost_heartbeat(slots=1)
    turn = 0
    while not stop.wait(0.3):
        server = servers[turn % len(servers)]
        turn += 1
        try:
            httpx.post(f"{server.url}/api/workers/heartbeat", json=beat, headers=WORKER, timeout=5)
        except httpx.HTTPError:
            continue  # a process the test killed
