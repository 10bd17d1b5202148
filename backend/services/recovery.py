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
from backend.services.health import DatabaseHealth, is_unavailable
from backend.services.leadership import Leadership

log = logging.getLogger(__name__)


class RecoveryLoop:
    def __init__(
        self,
        engine: Engine,
        dispatcher: Dispatcher,
        feed: ChangeFeed,
        lost_after_seconds: float,
        max_attempts: int,
        health: DatabaseHealth | None = None,
        leadership: Leadership | None = None,
    ) -> None:
        self.engine, self.dispatcher, self.feed = engine, dispatcher, feed
        self.lost_after_seconds, self.max_attempts = lost_after_seconds, max_attempts
        self.health = health or DatabaseHealth()
        self.leadership = leadership or Leadership()  # several API processes: only the leader recovers
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._booted = time.monotonic()

    def resend_queued(self) -> list[int]:
        if not self.leadership.held():
            return []
        with Session(self.engine) as session:
            run_ids = lifecycle.queued_run_ids(session)
        self.dispatcher.send_all(run_ids)
        if run_ids:
            log.info("re-sent %d queued run(s) to the broker: %s", len(run_ids), run_ids)
        return run_ids

    def resend_missing(self) -> list[int]:
        """Queued runs whose message the broker lost while the API runs (Redis restarted without persistence,
        a FLUSHALL): when the broker holds fewer messages for the queue than the database has queued runs,
        send again as many of them as are missing, oldest first, each at most once per lost-after time.
        A 200-run study legitimately queued behind one worker is not flooded: its count matches. A run sent
        twice is harmless: the second message finds it claimed."""
        with Session(self.engine) as session:
            queued = lifecycle.queued_run_ids(session)
        if not queued:
            return []
        held = self.dispatcher.queue_size()
        if held is None or held >= len(queued):
            return []
        due = self.dispatcher.not_sent_within(queued, self.lost_after_seconds)[: len(queued) - held]
        sent = [run_id for run_id in due if self.dispatcher.send(run_id)]
        if sent:
            log.warning(
                "the broker holds %d message(s) for %d queued run(s): sent %d again: %s",
                held,
                len(queued),
                len(sent),
                sent,
            )
        return sent

    def _grace_left(self) -> bool:
        """Whether workers may still be catching up: within lost_after of this API's start or of the end of a
        database outage, a silent run is not evidence of a lost one (its heartbeats could not land)."""
        since = max(self._booted, self.health.recovered_at or self._booted)
        return self.health.down or time.monotonic() - since < self.lost_after_seconds

    def check_lost(self) -> lifecycle.LostRuns:
        if self._grace_left():
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

    def check(self) -> None:
        """One round: undelivered ids, vanished messages, silent runs. A database outage is logged once."""
        try:
            self.dispatcher.retry_undelivered()  # this process's own failed sends: every process retries its own
            if not self.leadership.held():
                return
            self.resend_missing()
            self.health.ok()
            self.check_lost()
        except Exception as exc:
            if not is_unavailable(exc):
                log.exception("the recovery check failed")  # a bug: the loop goes on, the traceback says where
                return
            self.health.failed(exc)

    def start(self) -> None:
        # Check a few times per lost_after period (a lost run is noticed within ~1.25x that time), and at
        # least every 10 s so an undelivered run id goes out soon after the broker is back.
        interval = min(10.0, max(0.5, self.lost_after_seconds / 4))

        def loop() -> None:
            while not self._stop.wait(interval):
                self.check()

        self._thread = threading.Thread(target=loop, name="trainboard-recovery", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
