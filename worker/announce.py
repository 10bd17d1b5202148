"""The worker's own heartbeat: the long-lived worker process tells the API who it is, what it trains on,
which queues it listens on and what each of its slots is running — at start-up, every few seconds (the
API's answer says how often), and once more, as `stopped`, when it shuts down. The Workers page shows
these, and a queued run that no live worker can take says so. At a warm shutdown (SIGTERM) it says
`draining` until its runs end: the API sends it nothing more.

It runs on a thread of the Celery parent process, started by Celery's `worker_ready` signal (after the
pool has forked its first run processes) and stopped by `worker_shutdown`. A missed heartbeat is only
logged: the API marks a worker gone after its lost-after time, and the next heartbeat brings it back.
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from celery.signals import worker_ready, worker_shutdown, worker_shutting_down

from trainboard import __version__
from trainboard.protocol import WorkerAnswer, WorkerDevice, WorkerHeartbeat

log = logging.getLogger(__name__)

FIRST_INTERVAL_SECONDS = 2.0
# Touched after every heartbeat the API took: `trainboard health --worker` (a container's healthcheck) reads it.
ALIVE_FILE = Path(tempfile.gettempdir()) / "trainboard-worker.alive"


@dataclass
class Announcer:
    api_url: str
    worker_token: str
    name: str
    queues: list[str]
    slots: int
    device: WorkerDevice
    models: list[str] = field(default_factory=list)  # the custom models it offers (TRAINBOARD_MODELS)
    state: str = "up"  # draining once a warm shutdown began (SIGTERM): it finishes its runs, takes no new one
    _stop: threading.Event = field(default_factory=threading.Event)
    _wake: threading.Event = field(default_factory=threading.Event)  # a heartbeat now, not at the interval
    _thread: threading.Thread | None = None

    def heartbeat(self, state: str | None = None) -> WorkerAnswer:
        beat = WorkerHeartbeat(
            name=self.name,
            host=socket.gethostname(),
            pid=os.getpid(),
            version=__version__,
            queues=self.queues,
            device=self.device,
            slots=self.slots,
            running=running_runs(),
            state=state or self.state,
            models=self.models,
        )
        response = httpx.post(
            f"{self.api_url.rstrip('/')}/api/workers/heartbeat",
            json=beat.model_dump(mode="json"),
            headers={"Authorization": f"Bearer {self.worker_token}"},
            timeout=httpx.Timeout(10.0, connect=5.0),
        )
        response.raise_for_status()
        return WorkerAnswer.model_validate(response.json())

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="trainboard-worker-heartbeat", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        interval = FIRST_INTERVAL_SECONDS
        while True:
            try:
                interval = self.heartbeat().every_seconds
                ALIVE_FILE.write_text(f"{self.name} {interval}\n")
            except OSError as exc:
                log.warning("could not touch %s (%s)", ALIVE_FILE, exc)
            except (httpx.HTTPError, ValueError) as exc:
                log.warning("worker heartbeat not delivered (%s); retrying in %.0f s", exc, interval)
            self._wake.wait(interval)
            self._wake.clear()
            if self._stop.is_set():
                return

    def drain(self) -> None:
        """A warm shutdown began: say so at once (the API sends this worker nothing more), and in every
        heartbeat until the runs it has end. The heartbeat thread sends it, so it can never arrive after the
        goodbye."""
        self.state = "draining"
        self._wake.set()

    def stop(self) -> None:
        """Stop the heartbeats and say goodbye (the Workers page shows the worker as stopped)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            self.heartbeat(state="stopped")
        except (httpx.HTTPError, ValueError) as exc:
            log.info("could not tell the API this worker stopped (%s): it will show as gone", exc)


def running_runs() -> list[int]:
    """The runs this worker's slots train now: the tasks Celery has handed to its run processes."""
    from celery.worker import state

    runs = []
    for request in list(state.active_requests):
        args = request.args or []
        if args and isinstance(args[0], int):
            runs.append(args[0])
    return sorted(runs)


_announcer: Announcer | None = None


def install(announcer: Announcer) -> None:
    """Announce this worker once Celery's worker is ready, until it shuts down."""
    global _announcer
    _announcer = announcer
    worker_ready.connect(_on_ready, weak=False)
    worker_shutting_down.connect(_on_shutting_down, weak=False)
    worker_shutdown.connect(_on_shutdown, weak=False)


def _on_ready(**_kwargs: object) -> None:
    if _announcer is not None:
        _announcer.start()


def _on_shutting_down(how: str = "Warm", **_kwargs: object) -> None:
    """Celery's signal handler, at the first SIGTERM or Ctrl-C (a warm shutdown: the runs go on to their end)."""
    if _announcer is not None and how == "Warm":
        _announcer.drain()


def _on_shutdown(**_kwargs: object) -> None:
    if _announcer is not None:
        _announcer.stop()
