"""Sends run ids to the broker. A failed send leaves the run queued in the DB; startup re-sends it."""

from __future__ import annotations

import logging

from celery import Celery

from trainboard.queue import QUEUE, TRAIN_TASK, make_celery

log = logging.getLogger(__name__)


class Dispatcher:
    def __init__(self, broker_url: str) -> None:
        self.celery: Celery = make_celery(broker_url)

    def send(self, run_id: int) -> bool:
        try:
            self.celery.send_task(TRAIN_TASK, args=[run_id], queue=QUEUE, retry=True,
                                  retry_policy={"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5})
        except Exception:  # the broker is down: the run stays queued in the DB and is re-sent at startup
            log.exception("could not send run %s to the broker; it stays queued", run_id)
            return False
        return True

    def close(self) -> None:
        self.celery.close()
