"""Sends run ids to the broker. A failed send leaves the run queued in the DB and is retried by
the recovery loop (and every queued run is re-sent at start-up)."""

from __future__ import annotations

import logging
import math
import threading
import time

from celery import Celery

from trainboard.queue import TRAIN_TASK, make_celery

log = logging.getLogger(__name__)


class Dispatcher:
    def __init__(self, broker_url: str, queue: str) -> None:
        self.queue = queue
        self.celery: Celery = make_celery(broker_url, queue)
        self._undelivered: set[int] = set()
        self._sent_at: dict[int, float] = {}  # run id -> when it was last sent (this process)
        self._lock = threading.Lock()

    def send(self, run_id: int) -> bool:
        self._sent_at[run_id] = time.monotonic()
        try:
            self.celery.send_task(
                TRAIN_TASK,
                args=[run_id],
                queue=self.queue,
                retry=True,
                retry_policy={"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5},
            )
        except Exception:  # the broker is down: the run stays queued in the DB and is re-sent at startup
            log.exception("could not send run %s to the broker; it stays queued and is retried", run_id)
            with self._lock:
                self._undelivered.add(run_id)
            return False
        with self._lock:
            self._undelivered.discard(run_id)
        return True

    def send_all(self, run_ids: list[int]) -> None:
        """Send each id; after the first failure the rest are only marked undelivered (no minutes of retries)."""
        for index, run_id in enumerate(run_ids):
            if not self.send(run_id):
                with self._lock:
                    self._undelivered.update(run_ids[index + 1 :])
                return

    def retry_undelivered(self) -> list[int]:
        """Send again what failed before; returns the ids delivered now."""
        with self._lock:
            pending = sorted(self._undelivered)
        delivered: list[int] = []
        for run_id in pending:
            if not self.send(run_id):
                break  # the broker is still down: try the rest next time
            delivered.append(run_id)
        return delivered

    def not_sent_within(self, run_ids: list[int], seconds: float) -> list[int]:
        """The runs of `run_ids` (in order) not sent in the last `seconds`; forgets runs no longer listed."""
        now = time.monotonic()
        listed = set(run_ids)
        for stale in [run_id for run_id in self._sent_at if run_id not in listed]:
            del self._sent_at[stale]
        return [r for r in run_ids if now - self._sent_at.get(r, -math.inf) >= seconds]

    def queue_size(self) -> int | None:
        """How many messages the broker holds for the queue (not counting ones a worker has taken but not
        acknowledged); None when the broker cannot be asked."""
        try:
            with self.celery.connection_for_read() as connection:
                channel = connection.default_channel
                try:
                    _, count, _ = channel.queue_declare(queue=self.queue, passive=True)
                except Exception as exc:  # the queue itself is gone (a flushed Redis): it holds nothing
                    if "NOT_FOUND" in str(exc) or "not found" in str(exc).lower():
                        return 0
                    raise
                return int(count)
        except Exception as exc:
            log.warning("could not count the broker's messages (%s)", exc)
            return None

    def close(self) -> None:
        self.celery.close()
