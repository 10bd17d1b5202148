"""Sends a run's reports to the API over HTTP, without ever blocking the training loop.

The engine calls `epoch()` and `progress()` from its loop; both return at once. A background
thread sends epochs in order (retrying while the API is unreachable, so nothing is dropped) and
a heartbeat with the latest progress about every `heartbeat_seconds`. The heartbeat's answer can
say "cancel"; a 409 says this attempt is no longer current. Either makes `should_stop()` true.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from trainboard.reports import EpochRecord, Progress, RunResult

log = logging.getLogger(__name__)


class Stale(Exception):
    """The API answered 409: this attempt no longer owns the run."""


@dataclass(frozen=True)
class Claim:
    run_id: int
    attempt: int
    spec: dict[str, Any]


class ApiReporter:
    def __init__(self, api_url: str, worker_token: str, run_id: int, *, heartbeat_seconds: float = 1.0,
                 retry_seconds: float = 3600.0, transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.run_id = run_id
        self.heartbeat_seconds = heartbeat_seconds
        self.retry_seconds = retry_seconds
        self._sleep = sleep
        self._client = httpx.Client(base_url=api_url.rstrip("/"), timeout=httpx.Timeout(10.0, connect=5.0),
                                    headers={"Authorization": f"Bearer {worker_token}"}, transport=transport)
        self.attempt = 0
        self._epochs: queue.Queue[EpochRecord | None] = queue.Queue()
        self._latest_progress: Progress | None = None
        self._progress_lock = threading.Lock()
        self._stop = threading.Event()  # cancel requested, or stale attempt
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        self.stop_reason = ""

    # -- the engine's side ------------------------------------------------------------------------

    def epoch(self, record: EpochRecord) -> None:
        self._epochs.put(record)

    def progress(self, progress: Progress) -> None:
        with self._progress_lock:
            self._latest_progress = progress

    def should_stop(self) -> bool:
        return self._stop.is_set()

    # -- the task's side --------------------------------------------------------------------------

    def claim(self, worker: str) -> Claim | None:
        """Claim the run (atomic on the API). None: someone else has it, or it was cancelled."""
        try:
            body = self._post("claim", {"worker": worker})
        except Stale:
            return None
        self.attempt = int(body["attempt"])
        self._thread = threading.Thread(target=self._send_loop, name=f"reporter-{self.run_id}", daemon=True)
        self._thread.start()
        return Claim(run_id=int(body["run_id"]), attempt=self.attempt, spec=body["spec"])

    def finish(self, result: RunResult | None = None, error: str | None = None) -> str | None:
        """Flush every buffered epoch, then send the end of the run. Returns the final status, None if stale."""
        self._epochs.put(None)
        if self._thread is not None:
            self._thread.join()
        try:
            body = self._post("finish", {"attempt": self.attempt, "error": error,
                                         "result": None if result is None else result.model_dump()})
        except Stale:
            return None
        return str(body["status"])

    def close(self) -> None:
        self._closing.set()
        self._client.close()

    # -- the sending thread -----------------------------------------------------------------------

    def _send_loop(self) -> None:
        next_beat = 0.0
        while True:
            timeout = max(0.0, next_beat - time.monotonic())
            try:
                record = self._epochs.get(timeout=timeout)
            except queue.Empty:
                record = False  # no epoch waiting: time for a heartbeat
            if record is None:
                return
            try:
                if record is not False:
                    self._post("epochs", {"attempt": self.attempt, "record": record.model_dump()})
                    continue
                next_beat = time.monotonic() + self.heartbeat_seconds
                self._beat()
            except Stale as exc:
                self.stop_reason = str(exc)
                self._stop.set()
            except ConnectionError as exc:  # a missed heartbeat; the next one goes out in heartbeat_seconds
                log.warning("%s", exc)
            except Exception:  # retries ran out, or the API refused the report: keep training, say it in the log
                log.exception("run %s: a report could not be delivered", self.run_id)

    def _beat(self) -> None:
        with self._progress_lock:
            progress = self._latest_progress
        if progress is None or self._stop.is_set():
            return
        body = self._post("progress", {"attempt": self.attempt, "progress": progress.model_dump()}, retry=False)
        if body.get("cancel"):
            self.stop_reason = "cancel requested"
            self._stop.set()

    def _post(self, route: str, payload: dict[str, Any], retry: bool = True) -> dict[str, Any]:
        """POST with retries on connection errors and 5xx, backing off up to 10 s, for `retry_seconds` in all."""
        deadline = time.monotonic() + self.retry_seconds
        delay = 0.25
        while True:
            try:
                response = self._client.post(f"/api/runs/{self.run_id}/{route}", json=payload)
                if response.status_code == 409:
                    raise Stale(response.json().get("detail", "conflict"))
                if response.status_code < 500:
                    response.raise_for_status()
                    return dict(response.json())
                problem = f"HTTP {response.status_code}"
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            if not retry or time.monotonic() + delay > deadline or self._closing.is_set():
                raise ConnectionError(f"run {self.run_id}: {route} not delivered ({problem})")
            log.warning("run %s: %s failed (%s); retrying in %.1f s", self.run_id, route, problem, delay)
            self._sleep(delay)
            delay = min(delay * 2, 10.0)
