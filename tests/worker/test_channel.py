"""The worker's channel to the API, against a real API server: buffering through an outage, cancel, stale attempts."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.conftest import API, LiveServer, epoch_record, live_settings, tiny_spec, wait_for
from trainboard.protocol import EpochRecord, Progress, RunResult
from worker.channel import RunChannel


def create_run(server: LiveServer) -> int:
    with server.api() as api:
        return int(api.post("/api/runs", json=tiny_spec()).json()["id"])


def channel_for(server: LiveServer, run_id: int) -> RunChannel:
    return RunChannel(server.url, server.settings.worker_token, run_id, heartbeat_seconds=0.1, retry_seconds=60)


def test_epochs_reported_while_the_api_is_down_are_delivered_in_order(tmp_path: Path) -> None:
    settings = live_settings(tmp_path)
    server = LiveServer(settings).start()
    run_id = create_run(server)
    channel = channel_for(server, run_id)
    assert channel.claim("w:1") is not None
    server.stop()  # the API goes away mid-run
    for epoch in (1, 2, 3):
        channel.epoch(EpochRecord.model_validate(epoch_record(epoch)))  # returns at once: training goes on
    server = LiveServer(settings).start()  # same port, same database
    try:
        status = channel.finish(RunResult(stopped="completed", epochs_run=3, total_seconds=1.0))
        assert status == "succeeded"
        with server.api() as api:
            epochs = [m["epoch"] for m in api.get(f"/api/runs/{run_id}/metrics").json()["data"]]
        assert epochs == [1, 2, 3]
    finally:
        channel.close()
        server.stop()


def test_cancel_arrives_with_the_heartbeat_answer(live_server: LiveServer) -> None:
    run_id = create_run(live_server)
    channel = channel_for(live_server, run_id)
    try:
        channel.claim("w:1")
        channel.progress(Progress(epoch=1, batch=2, batches=9))
        with live_server.api() as api:
            wait_for(lambda: api.get(f"/api/runs/{run_id}").json()["progress"]["batch"] == 2, 10, message="heartbeat")
            assert not channel.should_stop()
            api.post(f"/api/runs/{run_id}/cancel")
        wait_for(channel.should_stop, 10, message="the cancel to reach the worker")
        assert channel.stop_reason == "cancel requested"
        assert channel.finish(RunResult(stopped="cancelled", epochs_run=0, total_seconds=0.5)) == "cancelled"
    finally:
        channel.close()


def test_a_claim_that_loses_returns_none(live_server: LiveServer) -> None:
    run_id = create_run(live_server)
    first, second = channel_for(live_server, run_id), channel_for(live_server, run_id)
    try:
        assert first.claim("w:1") is not None
        assert second.claim("w:2") is None
    finally:
        first.finish(RunResult(stopped="completed", epochs_run=0, total_seconds=0.1))
        first.close()
        second.close()


def test_wrong_worker_token_is_a_clear_error(live_server: LiveServer) -> None:
    run_id = create_run(live_server)
    channel = RunChannel(live_server.url, "not-the-token", run_id, retry_seconds=1)
    try:
        try:
            channel.claim("w:1")
        except httpx.HTTPStatusError as exc:
            assert exc.response.status_code == 401
        else:
            raise AssertionError("a claim with a wrong token must fail")
    finally:
        channel.close()
    with httpx.Client(base_url=live_server.url, headers=API) as api:
        assert api.get(f"/api/runs/{run_id}").json()["status"] == "queued"


def test_a_run_deleted_before_its_claim_is_nothing_to_do(live_server: LiveServer) -> None:
    run_id = create_run(live_server)
    with live_server.api() as api:
        assert api.delete(f"/api/runs/{run_id}").status_code == 204
    channel = channel_for(live_server, run_id)
    try:
        assert channel.claim("w:1") is None  # the 404 is "not claimed", not an error
    finally:
        channel.close()
