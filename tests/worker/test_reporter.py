"""The worker's report path against a real API server: buffering through an outage, cancel, stale attempts."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.conftest import API, LiveServer, epoch_record, live_settings, tiny_spec, wait_for
from trainboard.reports import EpochRecord, Progress, RunResult
from worker.reporter import ApiReporter


def create_run(server: LiveServer) -> int:
    with server.api() as api:
        return int(api.post("/api/runs", json=tiny_spec()).json()["id"])


def reporter_for(server: LiveServer, run_id: int) -> ApiReporter:
    return ApiReporter(server.url, server.settings.worker_token, run_id, heartbeat_seconds=0.1, retry_seconds=60)


def test_epochs_reported_while_the_api_is_down_are_delivered_in_order(tmp_path: Path) -> None:
    settings = live_settings(tmp_path)
    server = LiveServer(settings).start()
    run_id = create_run(server)
    reporter = reporter_for(server, run_id)
    assert reporter.claim("w:1") is not None
    server.stop()  # the API goes away mid-run
    for epoch in (1, 2, 3):
        reporter.epoch(EpochRecord.model_validate(epoch_record(epoch)))  # returns at once: training goes on
    server = LiveServer(settings).start()  # same port, same database
    try:
        status = reporter.finish(RunResult(stopped="completed", epochs_run=3, total_seconds=1.0))
        assert status == "succeeded"
        with server.api() as api:
            epochs = [m["epoch"] for m in api.get(f"/api/runs/{run_id}/metrics").json()["data"]]
        assert epochs == [1, 2, 3]
    finally:
        reporter.close()
        server.stop()


def test_cancel_arrives_with_the_heartbeat_answer(live_server: LiveServer) -> None:
    run_id = create_run(live_server)
    reporter = reporter_for(live_server, run_id)
    try:
        reporter.claim("w:1")
        reporter.progress(Progress(epoch=1, batch=2, batches=9))
        with live_server.api() as api:
            wait_for(lambda: api.get(f"/api/runs/{run_id}").json()["progress"]["batch"] == 2, 10, message="heartbeat")
            assert not reporter.should_stop()
            api.post(f"/api/runs/{run_id}/cancel")
        wait_for(reporter.should_stop, 10, message="the cancel to reach the worker")
        assert reporter.stop_reason == "cancel requested"
        assert reporter.finish(RunResult(stopped="cancelled", epochs_run=0, total_seconds=0.5)) == "cancelled"
    finally:
        reporter.close()


def test_a_claim_that_loses_returns_none(live_server: LiveServer) -> None:
    run_id = create_run(live_server)
    first, second = reporter_for(live_server, run_id), reporter_for(live_server, run_id)
    try:
        assert first.claim("w:1") is not None
        assert second.claim("w:2") is None
    finally:
        first.finish(RunResult(stopped="completed", epochs_run=0, total_seconds=0.1))
        first.close()
        second.close()


def test_wrong_worker_token_is_a_clear_error(live_server: LiveServer) -> None:
    run_id = create_run(live_server)
    reporter = ApiReporter(live_server.url, "not-the-token", run_id, retry_seconds=1)
    try:
        try:
            reporter.claim("w:1")
        except httpx.HTTPStatusError as exc:
            assert exc.response.status_code == 401
        else:
            raise AssertionError("a claim with a wrong token must fail")
    finally:
        reporter.close()
    with httpx.Client(base_url=live_server.url, headers=API) as api:
        assert api.get(f"/api/runs/{run_id}").json()["status"] == "queued"
