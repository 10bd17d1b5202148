"""Sends run ids to the broker. A failed send leaves the run queued in the DB and is retried by
the recovery loop (and every queued run is re-sent at start-up)."""

from __future__ import annotations

import logging
import threading

from celery import Celery

from trainboard.queue import QUEUE, TRAIN_TASK, make_celery

log = logging.getLogger(__name__)


class Dispatcher:
    def __init__(self, broker_url: str) -> None:
        self.celery: Celery = make_celery(broker_url)
        self._undelivered: set[int] = set()
        self._lock = threading.Lock()

    def send(self, run_id: int) -> bool:
        try:
            self.celery.send_task(TRAIN_TASK, args=[run_id], queue=QUEUE, retry=True,
                                  retry_policy={"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5})
        except Exception:  # the broker is down: the run stays queued in the DB and is re-sent at startup
            log.exception("could not send run %s to the broker; it stays queued and is retried", run_id)
            with self._lock:
                self._undelivered.add(run_id)
            return False
        with self._lock:
            self._undelivered.discard(run_id)
        return True

    def retry_undelivered(self) -> list[int]:
        """Send again what failed before; returns the ids delivered now."""
        with self._lock:
            pending = sorted(self._undelivered)
        return [run_id for run_id in pending if self.send(run_id)]

    def close(self) -> None:
        self.celery.close()
