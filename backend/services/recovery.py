"""Keeps the DB and the broker in step: re-sends queued runs at start-up, requeues runs whose worker went silent.

The broker may lose messages (restarted without persistence); the DB never does. A re-sent id is
harmless: the worker's claim is atomic, so a duplicate message just finds the run taken and exits.
"""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy.engine import Engine
from sqlmodel import Session

from backend.services import lifecycle
from backend.services.changes import ChangeFeed
from backend.services.dispatch import Dispatcher

log = logging.getLogger(__name__)


class RecoveryLoop:
    def __init__(
        self, engine: Engine, dispatcher: Dispatcher, feed: ChangeFeed, lost_after_seconds: float, max_attempts: int
    ) -> None:
        self.engine, self.dispatcher, self.feed = engine, dispatcher, feed
        self.lost_after_seconds, self.max_attempts = lost_after_seconds, max_attempts
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._booted = time.monotonic()

    def resend_queued(self) -> list[int]:
        with Session(self.engine) as session:
            run_ids = lifecycle.queued_run_ids(session)
        self.dispatcher.send_all(run_ids)
        if run_ids:
            log.info("re-sent %d queued run(s) to the broker: %s", len(run_ids), run_ids)
        return run_ids

    def check_lost(self) -> lifecycle.LostRuns:
        if time.monotonic() - self._booted < self.lost_after_seconds:
            # Workers that buffered their reports while this API was down need time to reach it again:
            # silence before boot + lost_after is not evidence of a lost run.
            return lifecycle.LostRuns()
        with Session(self.engine) as session:
            found = lifecycle.recover_lost_runs(session, self.lost_after_seconds, self.max_attempts)
        for run_id in found.requeue:
            self.dispatcher.send(run_id)
        for run_id in found.changed:
            self.feed.notify(run_id)
        if found.changed:
            log.warning("lost runs (no heartbeat): %s; requeued: %s", found.changed, found.requeue)
        return found

    def start(self) -> None:
        # Check a few times per lost_after period (a lost run is noticed within ~1.25x that time), and at
        # least every 10 s so an undelivered run id goes out soon after the broker is back.
        interval = min(10.0, max(1.0, self.lost_after_seconds / 4))

        def loop() -> None:
            while not self._stop.wait(interval):
                try:
                    self.dispatcher.retry_undelivered()
                    self.check_lost()
                except Exception:  # a DB hiccup must not kill the checker
                    log.exception("lost-run check failed")

        self._thread = threading.Thread(target=loop, name="trainboard-recovery", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
