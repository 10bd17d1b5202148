"""The workers `trainboard serve` starts beside its API: placed (one per GPU, or N on the CPU, sharing the
cores), watched (a worker that dies is logged and started again, with a back-off so one that dies at once
does not spin), and stopped with `serve` — never outliving it.

Each worker runs in a session of its own (a Ctrl-C in the terminal reaches only `serve`, which stops the
workers in order) and with TRAINBOARD_PARENT_PID set: it asks the kernel to kill it the moment `serve`
dies, whatever killed `serve` (kill -9 included), and its run processes ask the same of it
(worker/process.py `die_with_parent`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

from trainboard.settings import Settings
from worker.process import Placement

log = logging.getLogger("trainboard.serve")

POLL_SECONDS = 0.5
FIRST_BACKOFF_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 60.0
HEALTHY_AFTER_SECONDS = 60.0  # a worker that ran this long before dying starts again at once
STOP_GRACE_SECONDS = 3.0  # Celery's warm shutdown, then SIGKILL: nothing lives past serve by more than this


def placements(workers: int, slots: int, gpus: str | None) -> list[Placement]:
    """One worker per GPU of `gpus` ("0,1"), else `workers` of them; the cores split between them all."""
    cores = os.cpu_count() or 1
    if gpus:
        try:
            ids = [int(part) for part in gpus.split(",") if part.strip()]
        except ValueError as exc:
            raise ValueError(f"--gpus takes GPU numbers separated by commas, like 0,1 (not {gpus!r})") from exc
        share = max(1, cores // len(ids))
        return [Placement(slots=slots, gpu=gpu, cores=share) for gpu in ids]
    share = max(1, cores // max(workers, 1))
    return [Placement(slots=slots, cores=share) for _ in range(workers)]


@dataclass
class EmbeddedWorker:
    name: str
    placement: Placement
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    backoff: float = FIRST_BACKOFF_SECONDS
    restart_at: float | None = None


@dataclass
class EmbeddedWorkers:
    settings: Settings
    worker_token: str
    workers: list[EmbeddedWorker] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    @classmethod
    def placed(cls, settings: Settings, worker_token: str, where: list[Placement]) -> EmbeddedWorkers:
        return cls(settings, worker_token, [EmbeddedWorker(f"embedded{i}", p) for i, p in enumerate(where)])

    def start(self) -> None:
        for worker in self.workers:
            self._launch(worker)
        if self.workers:
            self._thread = threading.Thread(target=self._watch, name="trainboard-embedded-workers", daemon=True)
            self._thread.start()

    def environment(self, worker: EmbeddedWorker) -> dict[str, str]:
        """What a worker needs, and no more: no database URL, no API token."""
        env = {k: v for k, v in os.environ.items() if k not in ("TRAINBOARD_DATABASE_URL", "TRAINBOARD_API_TOKEN")}
        return (
            env
            | {
                "TRAINBOARD_DATA_DIR": str(self.settings.data_dir),
                "TRAINBOARD_BROKER_URL": self.settings.broker,
                "TRAINBOARD_QUEUE": self.settings.queue,
                "TRAINBOARD_API_URL": self.settings.api_url,
                "TRAINBOARD_WORKER_TOKEN": self.worker_token,
                "TRAINBOARD_PARENT_PID": str(os.getpid()),
            }
            | worker.placement.environment()
        )  # what the worker would set itself (so it need not start again)

    def command(self, worker: EmbeddedWorker) -> list[str]:
        p = worker.placement
        command = [sys.executable, "-m", "trainboard", "worker", "--name", worker.name]
        command += ["--slots", str(p.slots), "--cores", str(p.cores)]
        return command + (["--gpu", str(p.gpu)] if p.gpu is not None else [])

    def _launch(self, worker: EmbeddedWorker) -> None:
        worker.process = subprocess.Popen(self.command(worker), env=self.environment(worker), start_new_session=True)
        worker.started, worker.restart_at = time.monotonic(), None

    def _watch(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            now = time.monotonic()
            for worker in self.workers:
                if worker.restart_at is not None:
                    if now >= worker.restart_at and not self._stop.is_set():
                        log.warning("starting embedded worker %s again", worker.name)
                        self._launch(worker)
                    continue
                code = worker.process.poll() if worker.process is not None else None
                if code is None:
                    continue
                if now - worker.started >= HEALTHY_AFTER_SECONDS:
                    worker.backoff = FIRST_BACKOFF_SECONDS
                how = f"signal {-code} ({signal.Signals(-code).name})" if code < 0 else f"exit code {code}"
                log.error(
                    "embedded worker %s (pid %d) exited with %s; starting it again in %.0f s",
                    worker.name,
                    worker.process.pid if worker.process else 0,
                    how,
                    worker.backoff,
                )
                worker.restart_at = now + worker.backoff
                worker.backoff = min(worker.backoff * 2, MAX_BACKOFF_SECONDS)

    def stop(self) -> None:
        """Celery's warm shutdown (SIGTERM to each worker itself, not its runs: an idle worker ends cleanly),
        then SIGKILL for whatever is left of each worker's session after STOP_GRACE_SECONDS. A run cut off here
        is requeued when the API next starts."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        running = [w.process for w in self.workers if w.process is not None and w.process.poll() is None]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for process in running:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
        for worker in self.workers:
            if worker.process is not None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(worker.process.pid, signal.SIGKILL)  # its run processes too
                worker.process.wait()
