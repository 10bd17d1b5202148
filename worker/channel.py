"""The worker's channel to the API for one run: the claim, then every message of trainboard/protocol.py
over HTTP, without ever blocking the training loop.

The engine calls `epoch()` and `progress()` from its loop; both return at once. A background
thread sends epochs in order (retrying while the API is unreachable, so nothing is dropped) and
a heartbeat with the latest progress about every `heartbeat_seconds`. The heartbeat's answer can
say "cancel"; a 409 says this attempt is no longer current. Either makes `should_stop()` true.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import queue
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import certifi
import httpx
from pydantic import BaseModel

from trainboard.protocol import (
    ATTEMPT_HEADER,
    EPOCH_HEADER,
    LEASE_HEADER,
    SHA256_HEADER,
    ArtifactAnswer,
    Claim,
    ClaimRequest,
    EpochAnswer,
    EpochMessage,
    EpochRecord,
    FinishAnswer,
    FinishMessage,
    HeartbeatAnswer,
    InfoAnswer,
    InfoMessage,
    Progress,
    ProgressMessage,
    ResumePoint,
    RunInfo,
    RunResult,
)

UPLOAD_CHUNK = 1 << 20

log = logging.getLogger(__name__)


Answer = TypeVar("Answer", bound=BaseModel)


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The certificate checks for an https API, made once per process (a warm worker makes it before forking)."""
    return ssl.create_default_context(cafile=certifi.where())


class Stale(Exception):
    """The API answered 409 (this attempt no longer owns the run) or 404 (the run was deleted)."""


class RunChannel:
    def __init__(
        self,
        api_url: str,
        worker_token: str,
        run_id: int,
        *,
        heartbeat_seconds: float = 1.0,
        retry_seconds: float = 3600.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.run_id = run_id
        self.heartbeat_seconds = heartbeat_seconds
        self.retry_seconds = retry_seconds
        self._sleep = sleep
        self._client = httpx.Client(
            base_url=api_url.rstrip("/"),
            timeout=httpx.Timeout(10.0, connect=5.0),
            verify=tls_context(),
            headers={"Authorization": f"Bearer {worker_token}"},
            transport=transport,
        )
        self.attempt = 0
        self.lease = ""  # the claim's secret, sent with every later message
        self._epochs: queue.Queue[EpochRecord | RunInfo | None] = queue.Queue()
        # Until the first batch (loading, maybe downloading the dataset) the heartbeat says "preparing".
        self._latest_progress = Progress(epoch=0, batch=0, batches=0)
        self._progress_lock = threading.Lock()
        self._stop = threading.Event()  # cancel requested, or stale attempt
        self._finished = threading.Event()
        self._closing = threading.Event()
        self._threads: list[threading.Thread] = []
        self.stop_reason = ""
        # The newest epoch the API has (or that was given up on): a checkpoint of epoch k is sent only after
        # epoch k's record, so the API never holds a checkpoint ahead of the epochs it keeps.
        self.delivered_epoch = 0
        self.delivered = threading.Condition()

    # -- the engine's side ------------------------------------------------------------------------

    def epoch(self, record: EpochRecord) -> None:
        self._epochs.put(record)

    def info(self, info: RunInfo) -> None:
        """What the engine prepared; sent in order with the epochs."""
        self._epochs.put(info)

    def progress(self, progress: Progress) -> None:
        with self._progress_lock:
            self._latest_progress = progress

    def should_stop(self) -> bool:
        return self._stop.is_set()

    # -- the task's side --------------------------------------------------------------------------

    def claim(self, worker: str) -> Claim | None:
        """Claim the run (atomic on the API). None: someone else has it, or it was cancelled.

        From here on the heartbeat goes out every `heartbeat_seconds`, also while the data loads.
        """
        try:
            claim = self._post("claim", ClaimRequest(worker=worker), Claim)
        except Stale:
            return None
        self.attempt, self.lease = claim.attempt, claim.lease
        for target, name in ((self._send_epochs, "epochs"), (self._send_heartbeats, "heartbeat")):
            thread = threading.Thread(target=target, name=f"run-{self.run_id}-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return claim

    def finish(self, result: RunResult | None = None, error: str | None = None) -> str | None:
        """Flush every buffered epoch, then send the end of the run. Returns the final status, None if stale."""
        self._epochs.put(None)
        for thread in self._threads[:1]:
            thread.join()  # every epoch delivered (or given up on) before the run is declared over
        self._finished.set()
        try:
            answer = self._post(
                "finish",
                FinishMessage(attempt=self.attempt, lease=self.lease, result=result, error=error),
                FinishAnswer,
            )
        except Stale:
            return None
        finally:
            for thread in self._threads[1:]:
                thread.join()
        return answer.status

    def close(self) -> None:
        self._finished.set()
        self._closing.set()
        self._client.close()

    def wait_delivered(self, epoch: int, timeout: float) -> bool:
        """Wait until epoch `epoch`'s record has been sent (or given up on); False on timeout or a stale attempt."""
        with self.delivered:
            self.delivered.wait_for(lambda: self.delivered_epoch >= epoch or self.stale, timeout)
            return self.delivered_epoch >= epoch and not self.stale

    @property
    def stale(self) -> bool:
        return self._stop.is_set() and self.stop_reason != "cancel requested"

    def upload(self, path: Path, epoch: int) -> ArtifactAnswer:
        """PUT a file of this attempt (a checkpoint or the weights), streamed, retried like the epochs."""
        sha256 = file_sha256(path)

        def send() -> httpx.Response:
            headers = {
                ATTEMPT_HEADER: str(self.attempt),
                LEASE_HEADER: self.lease,
                EPOCH_HEADER: str(epoch),
                SHA256_HEADER: sha256,
                "Content-Type": "application/octet-stream",
                "Content-Length": str(path.stat().st_size),
            }
            timeout = httpx.Timeout(600.0, connect=5.0)
            url = f"/api/runs/{self.run_id}/artifacts/{path.name}"
            return self._client.put(url, content=_chunks(path), headers=headers, timeout=timeout)

        answer: ArtifactAnswer = self._request(f"artifacts/{path.name}", send, ArtifactAnswer)
        return answer

    def download(self, resume: ResumePoint, folder: Path) -> Path:
        """Fetch the checkpoint the claim resumes from into `folder`; its sha256 must be the claim's."""
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / resume.name
        headers = {ATTEMPT_HEADER: str(self.attempt), LEASE_HEADER: self.lease}

        def fetch() -> httpx.Response:
            digest = hashlib.sha256()
            url = f"/api/runs/{self.run_id}/checkpoints/{resume.name}"
            with self._client.stream("GET", url, headers=headers, timeout=httpx.Timeout(600.0, connect=5.0)) as got:
                if got.status_code != 200:
                    got.read()
                    return got
                with target.open("wb") as f:
                    for chunk in got.iter_bytes(UPLOAD_CHUNK):
                        digest.update(chunk)
                        f.write(chunk)
            if digest.hexdigest() != resume.sha256:
                target.unlink(missing_ok=True)
                raise ValueError(f"{resume.name}: downloaded sha256 {digest.hexdigest()} is not the claim's")
            return got

        self._request(f"checkpoints/{resume.name}", fetch, None)
        return target

    # -- the sending threads ----------------------------------------------------------------------

    def _send_epochs(self) -> None:
        """The run info and the epochs in order, each retried until delivered: a slow or absent API never drops one."""
        while (item := self._epochs.get()) is not None:
            if self._stop.is_set() and self.stop_reason != "cancel requested":
                continue  # stale attempt: the API refuses this attempt's messages
            try:
                if isinstance(item, RunInfo):
                    self._post("info", InfoMessage(attempt=self.attempt, lease=self.lease, info=item), InfoAnswer)
                else:
                    self._post("epochs", EpochMessage(attempt=self.attempt, lease=self.lease, record=item), EpochAnswer)
            except Stale as exc:
                self._stale(exc)
            except Exception:  # retries ran out, or the API refused the message: keep training, say so
                log.exception("run %s: %s could not be delivered", self.run_id, type(item).__name__)
            if isinstance(item, EpochRecord):
                with self.delivered:
                    self.delivered_epoch = item.epoch
                    self.delivered.notify_all()

    def _send_heartbeats(self) -> None:
        """The latest progress every heartbeat_seconds, on a thread of its own so epoch retries never delay it."""
        while not self._finished.wait(self.heartbeat_seconds):
            if self._stop.is_set():
                continue
            with self._progress_lock:
                progress = self._latest_progress
            message = ProgressMessage(attempt=self.attempt, lease=self.lease, progress=progress)
            try:
                answer = self._post("progress", message, HeartbeatAnswer, retry=False)
            except Stale as exc:
                self._stale(exc)
            except Exception as exc:  # a missed heartbeat; the next one goes out in heartbeat_seconds
                log.warning("run %s: heartbeat not delivered (%s)", self.run_id, exc)
            else:
                if answer.cancel:
                    self.stop_reason = "cancel requested"
                    self._stop.set()

    def _stale(self, exc: Stale) -> None:
        self.stop_reason = str(exc)
        self._stop.set()
        with self.delivered:
            self.delivered.notify_all()

    def _post(self, route: str, message: BaseModel, answer: type[Answer], retry: bool = True) -> Answer:
        payload = message.model_dump(mode="json")
        sent: Answer = self._request(
            route, lambda: self._client.post(f"/api/runs/{self.run_id}/{route}", json=payload), answer, retry
        )
        return sent

    def _request(
        self, route: str, send: Callable[[], httpx.Response], answer: type[Answer] | None, retry: bool = True
    ) -> Any:
        """Send with retries on connection errors and 5xx, backing off up to 10 s, for `retry_seconds` in all."""
        deadline = time.monotonic() + self.retry_seconds
        delay = 0.25
        while True:
            try:
                response = send()
                if response.status_code in (404, 409):  # 404: the run was deleted; nothing left to do for it
                    raise Stale(response.json().get("detail", "conflict"))
                if response.status_code < 500:
                    response.raise_for_status()
                    return None if answer is None else answer.model_validate(response.json())
                problem = f"HTTP {response.status_code}"
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            if not retry or time.monotonic() + delay > deadline or self._closing.is_set():
                raise ConnectionError(f"run {self.run_id}: {route} not delivered ({problem})")
            log.warning("run %s: %s failed (%s); retrying in %.1f s", self.run_id, route, problem, delay)
            self._sleep(delay)
            delay = min(delay * 2, 10.0)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(UPLOAD_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(UPLOAD_CHUNK):
            yield chunk
