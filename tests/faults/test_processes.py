"""Killing the processes of `trainboard serve`: the training process (its run is requeued at once, saying which
signal ended it), the embedded worker (serve starts it again), serve itself with SIGTERM or kill -9 (nothing
it started outlives it by more than 5 s)."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from typing import Any

from tests.conftest import tiny_spec, wait_for
from tests.faults.conftest import Serve, alive, children, using

LONG = tiny_spec(
    name="long",
    epochs=1000,
    dataset={"name": "digits"},
    batch_size=16,
    model={"arch": "cnn", "channels": [16, 32], "hidden": [64]},
)


def submit(serve: Serve, spec: dict[str, Any]) -> int:
    response = serve.http.post("/api/runs", json=spec)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def run(serve: Serve, run_id: int) -> dict[str, Any]:
    return dict(serve.get(f"/api/runs/{run_id}"))


def claimed_by(serve: Serve, run_id: int) -> int:
    """The pid of the process that claimed the run's current attempt (host:pid, in the embedded database)."""
    with sqlite3.connect(serve.data_dir / "trainboard.db") as db:
        (worker,) = db.execute("SELECT worker FROM run WHERE id = ?", (run_id,)).fetchone()
    return int(worker.rsplit(":", 1)[1])


def training(serve: Serve, run_id: int, attempt: int) -> int:
    wait_for(
        lambda: (
            run(serve, run_id)["status"] == "running"
            and run(serve, run_id)["attempt"] == attempt
            and run(serve, run_id)["summary"]["epochs_done"] >= 1
        ),
        60,
        0.1,
        f"run {run_id} attempt {attempt} to train:\n{serve.log()[-3000:]}",
    )
    return claimed_by(serve, run_id)


def gone_within(pids: list[int], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while any(alive(pid) for pid in pids):
        assert time.monotonic() < deadline, f"still alive after {seconds} s: {[p for p in pids if alive(p)]}"
        time.sleep(0.05)


def test_a_killed_training_process_a_killed_worker_and_a_sigterm_of_serve(serve_factory: Any) -> None:
    serve = serve_factory()
    wait_for(lambda: serve.live_workers(), 60, 0.2, "the embedded worker to announce itself")
    run_id = submit(serve, LONG)
    trainer = training(serve, run_id, attempt=1)

    # kill -9 of the training process (what the kernel's out-of-memory killer does): requeued at once, saying so.
    os.kill(trainer, signal.SIGKILL)
    wait_for(lambda: run(serve, run_id)["attempt"] == 2, 30, 0.1, f"the run's second attempt:\n{serve.log()[-3000:]}")
    assert (
        "the training process was killed by signal 9 (SIGKILL): out of memory?; requeued" in run(serve, run_id)["error"]
    )
    second = training(serve, run_id, attempt=2)
    assert second != trainer

    # kill -9 of the embedded worker: its run processes die with it, serve says so and starts a new one.
    (worker,) = children(serve.process.pid, using(serve.data_dir))
    os.kill(worker, signal.SIGKILL)
    gone_within([second], 5)
    wait_for(
        lambda: "embedded worker embedded0" in serve.log() and "exited with signal 9 (SIGKILL)" in serve.log(),
        10,
        0.1,
        "serve to notice",
    )
    wait_for(lambda: [w for w in serve.live_workers() if w["pid"] != worker], 60, 0.2, "a new worker")
    assert "starting embedded worker embedded0 again" in serve.log()

    # SIGTERM of serve (systemd, Docker): it stops everything it started, within 5 s, and exits.
    started = using(serve.data_dir)
    serve.process.send_signal(signal.SIGTERM)
    serve.process.wait(timeout=15)
    gone_within(started, 5)
    assert "Finished server process" in serve.log()  # a shutdown, not a kill


def test_kill_9_of_serve_takes_its_workers_and_runs_with_it(serve_factory: Any) -> None:
    serve = serve_factory()
    wait_for(lambda: serve.live_workers(), 60, 0.2, "the embedded worker to announce itself")
    run_id = submit(serve, LONG)
    training(serve, run_id, attempt=1)
    started = using(serve.data_dir)
    assert len(started) >= 3  # serve, its worker, the run's process
    os.kill(serve.process.pid, signal.SIGKILL)
    serve.process.wait()
    gone_within(started, 5)  # the parent-death signal: the kernel ended them all


def test_ctrl_c_of_serve_stops_an_idle_worker_without_an_error(serve_factory: Any) -> None:
    serve = serve_factory()
    wait_for(lambda: serve.live_workers(), 60, 0.2, "the embedded worker to announce itself")
    started = using(serve.data_dir)
    serve.process.send_signal(signal.SIGINT)
    assert serve.process.wait(timeout=15) == 0
    gone_within(started, 5)
    log = serve.log()
    assert "ERROR" not in log and "Traceback" not in log, log[-3000:]
