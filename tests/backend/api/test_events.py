"""Server-Sent Events over a real server: epochs carry their number as event id; a reconnect with
Last-Event-ID resumes with no duplicates and no gaps; the stream ends with `end` once the run is terminal."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import API, WORKER, LiveServer, epoch_record, tiny_spec


def sse(response: httpx.Response) -> Iterator[tuple[str, str | None, dict[str, Any]]]:
    """(event, id, data) of each event in a text/event-stream response."""
    fields: dict[str, str] = {}
    for line in response.iter_lines():
        if line.startswith(":"):
            continue
        if line:
            key, _, value = line.partition(":")
            fields[key] = value.removeprefix(" ")
            continue
        if "data" in fields:
            yield fields.get("event", "message"), fields.get("id"), json.loads(fields["data"])
        fields = {}


def later(action: Callable[[], object], delay: float = 0.3) -> threading.Timer:
    """Run `action` on another thread once the stream is open; join it before closing its client."""
    timer = threading.Timer(delay, action)
    timer.start()
    return timer


class Driver:
    """Plays the worker's part over HTTP, so the test decides when each epoch arrives."""

    def __init__(self, server: LiveServer) -> None:
        self.http = httpx.Client(base_url=server.url, timeout=30)
        self.run_id = int(self.http.post("/api/runs", json=tiny_spec(epochs=6), headers=API).json()["id"])
        claim = self.http.post(f"/api/runs/{self.run_id}/claim", json={"worker": "t"}, headers=WORKER).json()
        self.attempt, self.lease = claim["attempt"], claim["lease"]

    def epoch(self, n: int) -> None:
        body = {"attempt": self.attempt, "lease": self.lease, "record": epoch_record(n)}
        assert self.http.post(f"/api/runs/{self.run_id}/epochs", json=body, headers=WORKER).status_code == 200

    def finish(self) -> None:
        result = {"stopped": "completed", "epochs_run": 6, "total_seconds": 3.0}
        self.http.post(
            f"/api/runs/{self.run_id}/finish",
            json={"attempt": self.attempt, "lease": self.lease, "result": result},
            headers=WORKER,
        )


@pytest.fixture
def driver(live_server: LiveServer) -> Iterator[Driver]:
    driver = Driver(live_server)
    yield driver
    driver.http.close()


def test_reconnect_with_last_event_id_has_no_duplicates_and_no_gaps(live_server: LiveServer, driver: Driver) -> None:
    driver.epoch(1)
    driver.epoch(2)
    received: list[int] = []
    with httpx.Client(base_url=live_server.url, headers=API, timeout=30) as http:
        with http.stream("GET", f"/api/runs/{driver.run_id}/events") as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            events = sse(response)
            for event, event_id, data in events:
                if event == "epoch":
                    assert event_id == str(data["epoch"])
                    received.append(data["epoch"])
                if received == [1, 2]:
                    break
            driver.epoch(3)  # arrives live on the open stream
            for event, _, data in events:
                if event == "epoch":
                    received.append(data["epoch"])
                    break
        # Disconnected: epochs 4 and 5 happen while nobody listens.
        driver.epoch(4)
        driver.epoch(5)
        ended: list[dict[str, Any]] = []
        with http.stream(
            "GET", f"/api/runs/{driver.run_id}/events", headers={"Last-Event-ID": str(received[-1])}
        ) as response:
            timer = later(lambda: (driver.epoch(6), driver.finish()))
            for event, _, data in sse(response):
                if event == "epoch":
                    received.append(data["epoch"])
                elif event == "end":
                    ended.append(data)
            timer.join()
    assert received == [1, 2, 3, 4, 5, 6]
    assert ended[0]["status"] == "succeeded"
    assert ended[0]["summary"]["epochs_done"] == 6


def test_run_events_carry_progress(live_server: LiveServer, driver: Driver) -> None:
    seen: list[dict[str, Any]] = []
    with httpx.Client(base_url=live_server.url, headers=API, timeout=30) as http:
        with http.stream("GET", f"/api/runs/{driver.run_id}/events") as response:
            beat = {
                "attempt": driver.attempt,
                "lease": driver.lease,
                "progress": {"epoch": 1, "batch": 5, "batches": 8},
            }
            timer = later(lambda: driver.http.post(f"/api/runs/{driver.run_id}/progress", json=beat, headers=WORKER))
            for event, event_id, data in sse(response):
                if event == "run":
                    assert event_id is None  # status events never move the client's Last-Event-ID
                    seen.append(data["progress"])
                    if data["progress"]["batch"] == 5:
                        break
            timer.join()
    assert seen[-1] == {"epoch": 1, "batch": 5, "batches": 8}


def test_runs_list_stream_sends_changed_runs(live_server: LiveServer) -> None:
    with httpx.Client(base_url=live_server.url, headers=API, timeout=30) as http:
        with http.stream("GET", "/api/events") as response:
            timer = later(lambda: http.post("/api/runs", json=tiny_spec(name="streamed")))
            for event, _, data in sse(response):
                assert event == "run"
                assert (data["name"], data["status"]) == ("streamed", "queued")
                break
            timer.join()


def test_an_ended_run_streams_its_epochs_then_end(live_server: LiveServer, driver: Driver) -> None:
    for n in (1, 2):
        driver.epoch(n)
    driver.finish()
    with httpx.Client(base_url=live_server.url, headers=API, timeout=30) as http:
        with http.stream("GET", f"/api/runs/{driver.run_id}/events?after=1") as response:
            events = [(event, data.get("epoch")) for event, _, data in sse(response)]
    assert events[0] == ("epoch", 2)
    assert [e for e, _ in events[1:]] == ["run", "end"]


def test_a_requeued_run_resets_the_stream(live_server: LiveServer, driver: Driver) -> None:
    driver.epoch(1)
    driver.epoch(2)
    events: list[tuple[str, Any]] = []
    with httpx.Client(base_url=live_server.url, headers=API, timeout=30) as http:
        with http.stream("GET", f"/api/runs/{driver.run_id}/events") as response:
            stream = sse(response)
            for event, _, data in stream:
                if event == "epoch" and data["epoch"] == 2:
                    break

            def requeue_and_restart() -> None:
                from sqlmodel import Session

                from backend.db import make_engine
                from backend.tables import Run
                from trainboard.schemas import RunStatus

                engine = make_engine(live_server.settings.database)
                with Session(engine) as session:  # what the lost-run check does
                    run = session.get(Run, driver.run_id)
                    assert run is not None
                    run.status = RunStatus.queued
                    session.add(run)
                    session.commit()
                engine.dispose()
                claim = driver.http.post(
                    f"/api/runs/{driver.run_id}/claim", json={"worker": "t2"}, headers=WORKER
                ).json()
                driver.attempt, driver.lease = claim["attempt"], claim["lease"]
                driver.epoch(1)
                driver.finish()

            timer = later(requeue_and_restart)
            for event, _, data in stream:
                events.append((event, data.get("epoch") if event == "epoch" else data.get("attempt")))
            timer.join()
    assert ("reset", 2) in events
    after_reset = events[events.index(("reset", 2)) :]
    assert ("epoch", 1) in after_reset and after_reset[-1][0] == "end"


def three_epochs_and_a_checkpoint_of_2(driver: Driver) -> None:
    import hashlib

    for n in (1, 2, 3):
        driver.epoch(n)
    headers = WORKER | {
        "X-Trainboard-Attempt": str(driver.attempt),
        "X-Trainboard-Lease": driver.lease,
        "X-Trainboard-Epoch": "2",
        "X-Trainboard-Sha256": hashlib.sha256(b"ck").hexdigest(),
    }
    put = driver.http.put(
        f"/api/runs/{driver.run_id}/artifacts/checkpoint-2.safetensors", content=b"ck", headers=headers
    )
    assert put.status_code == 200, put.text


def test_a_run_resumed_from_a_checkpoint_rewinds_the_stream_to_it(live_server: LiveServer, driver: Driver) -> None:
    three_epochs_and_a_checkpoint_of_2(driver)
    events: list[tuple[str, Any]] = []
    with httpx.Client(base_url=live_server.url, headers=API, timeout=30) as http:
        with http.stream("GET", f"/api/runs/{driver.run_id}/events") as response:
            stream = sse(response)
            for event, _, data in stream:
                if event == "epoch" and data["epoch"] == 3:
                    break

            def kill_and_resume() -> None:
                killed = {"attempt": driver.attempt, "lease": driver.lease, "signal": 9}
                driver.http.post(f"/api/runs/{driver.run_id}/killed", json=killed, headers=WORKER)
                claim = driver.http.post(
                    f"/api/runs/{driver.run_id}/claim", json={"worker": "t2"}, headers=WORKER
                ).json()
                assert claim["resume"]["epoch"] == 2
                driver.attempt, driver.lease = claim["attempt"], claim["lease"]
                driver.epoch(3)
                driver.finish()

            timer = later(kill_and_resume)
            for event, _, data in stream:
                events.append((event, data["epoch"] if event in ("epoch", "rewind") else None))
            timer.join()
    assert ("rewind", 2) in events and ("reset", None) not in events
    after = events[events.index(("rewind", 2)) :]
    assert [e for e in after if e[0] == "epoch"] == [("epoch", 3)]  # epoch 3 again, of the new attempt; 1-2 kept
    assert after[-1][0] == "end"


def test_a_client_reconnecting_with_an_older_attempt_is_rewound_first(live_server: LiveServer, driver: Driver) -> None:
    three_epochs_and_a_checkpoint_of_2(driver)
    killed = {"attempt": driver.attempt, "lease": driver.lease, "signal": 9}
    driver.http.post(f"/api/runs/{driver.run_id}/killed", json=killed, headers=WORKER)
    claim = driver.http.post(f"/api/runs/{driver.run_id}/claim", json={"worker": "t2"}, headers=WORKER).json()
    driver.attempt, driver.lease = claim["attempt"], claim["lease"]
    driver.epoch(3)
    driver.finish()
    # The client drew epochs 1-3 of attempt 1 and reconnects: it is told to drop epoch 3, then gets attempt 2's.
    with httpx.Client(base_url=live_server.url, headers=API, timeout=30) as http:
        url = f"/api/runs/{driver.run_id}/events?attempt=1"
        with http.stream("GET", url, headers={"Last-Event-ID": "3"}) as response:
            events = [(event, data.get("epoch")) for event, _, data in sse(response)]
    assert events[0] == ("rewind", 2) and events[1] == ("epoch", 3) and events[-1][0] == "end"
    with httpx.Client(base_url=live_server.url, headers=API, timeout=30) as http:  # already at attempt 2: no rewind
        url = f"/api/runs/{driver.run_id}/events?attempt=2"
        with http.stream("GET", url, headers={"Last-Event-ID": "3"}) as response:
            assert [event for event, _, _ in sse(response)] == ["run", "end"]


def test_the_first_claim_of_a_run_is_no_reset(live_server: LiveServer) -> None:
    events: list[str] = []
    with httpx.Client(base_url=live_server.url, headers=API, timeout=30) as http:
        run_id = int(http.post("/api/runs", json=tiny_spec(epochs=1)).json()["id"])
        with http.stream("GET", f"/api/runs/{run_id}/events") as response:
            stream = sse(response)
            event, _, data = next(stream)
            assert (event, data["attempt"]) == ("run", 0)  # queued, never claimed

            def claim_and_finish() -> None:
                claim = http.post(f"/api/runs/{run_id}/claim", json={"worker": "t"}, headers=WORKER).json()
                body = {"attempt": claim["attempt"], "lease": claim["lease"], "record": epoch_record(1)}
                http.post(f"/api/runs/{run_id}/epochs", json=body, headers=WORKER)
                result = {"stopped": "completed", "epochs_run": 1, "total_seconds": 1.0}
                finish = {"attempt": claim["attempt"], "lease": claim["lease"], "result": result}
                http.post(f"/api/runs/{run_id}/finish", json=finish, headers=WORKER)

            timer = later(claim_and_finish)
            events = [event for event, _, _ in stream]
            timer.join()
    assert "reset" not in events and "rewind" not in events
    assert "epoch" in events and events[-1] == "end"


def test_a_page_from_before_a_restart_is_told_to_reload(live_server: LiveServer) -> None:
    with httpx.Client(base_url=live_server.url, headers=API, timeout=30) as http:
        with http.stream("GET", "/api/events?since=deadbeef.3") as response:
            event, _, _ = next(sse(response))
    assert event == "reload"


def test_a_deleted_run_ends_its_stream_and_leaves_the_runs_list(live_server: LiveServer) -> None:
    with httpx.Client(base_url=live_server.url, headers=API, timeout=30) as http:
        run_id = int(http.post("/api/runs", json=tiny_spec()).json()["id"])
        run_events: list[tuple[str, dict[str, Any]]] = []
        with http.stream("GET", f"/api/runs/{run_id}/events") as response:
            timer = later(lambda: http.delete(f"/api/runs/{run_id}"))
            run_events = [(event, data) for event, _, data in sse(response)]  # the stream ends by itself
            timer.join()
        assert run_events[0][0] == "run"
        assert run_events[-1] == ("deleted", {"id": run_id})
        other = int(http.post("/api/runs", json=tiny_spec()).json()["id"])
        with http.stream("GET", "/api/events") as response:
            timer = later(lambda: http.delete(f"/api/runs/{other}"))
            for event, _, data in sse(response):
                assert (event, data) == ("deleted", {"id": other})
                break
            timer.join()
