"""worker/tasks.py `execute`, in-process against a real API server: what a run's process does between its claim
and its end."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest

from tests.conftest import LiveServer, tiny_spec, wait_for
from worker import tasks
from worker.channel import RunChannel


def test_a_run_cancelled_while_the_engine_is_imported_ends_cancelled_without_training(
    live_server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cold worker takes seconds to import the engine after its claim: a cancel that lands meanwhile ends the
    run as cancelled before `fit` is called (no epoch, no training), not after a first epoch."""
    with live_server.api() as api:
        run_id = int(api.post("/api/runs", json=tiny_spec()).json()["id"])

    channels: list[RunChannel] = []

    class Recorded(RunChannel):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            channels.append(self)

    fitted: list[object] = []

    def fit(*args: object, **kwargs: object) -> None:
        fitted.append(args)
        raise AssertionError("a run cancelled before it started must not train")

    def import_engine(name: str) -> object:
        """`from worker.engine import fit`, slow as on a cold worker: the user cancels the run meanwhile."""
        if name != "fit":
            raise AttributeError(name)
        (channel,) = channels
        assert channel.attempt == 1  # claimed: the run is running when the cancel comes
        with live_server.api() as api:
            assert api.get(f"/api/runs/{run_id}").json()["status"] == "running"
            assert api.post(f"/api/runs/{run_id}/cancel").status_code == 200
        wait_for(channel.should_stop, 10, message="the cancel to reach the worker with a heartbeat")
        return fit

    engine = types.ModuleType("worker.engine")
    engine.__getattr__ = import_engine  # type: ignore[method-assign]
    monkeypatch.setitem(sys.modules, "worker.engine", engine)
    monkeypatch.setattr(tasks, "RunChannel", Recorded)

    assert tasks.execute(run_id, live_server.settings) == "cancelled"

    assert fitted == []
    with live_server.api() as api:
        run = api.get(f"/api/runs/{run_id}").json()
        metrics = api.get(f"/api/runs/{run_id}/metrics").json()
    assert run["status"] == "cancelled" and run["error"] is None
    assert run["summary"]["epochs_done"] == 0 and metrics["data"] == []
    assert channels[0].stop_reason == "cancel requested"
