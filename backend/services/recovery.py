"""Keeps the DB and the broker in step: re-sends queued runs at start-up and runs the broker lost, requeues
runs whose worker went silent, and runs a dispatch round every check.

The broker may lose messages (restarted without persistence); the DB never does. A re-sent id is
harmless: the worker's claim is atomic, so a duplicate message just finds the run taken and exits.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session

from backend.db import utcnow
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
        """At start-up the broker may have lost what it held (the DB never does): every queued run counts as not
        sent, and a dispatch round sends as many as the live workers can start now. The leading process only."""
        if not self.leadership.held():
            return []
        with Session(self.engine) as session:
            run_ids = lifecycle.queued_run_ids(session)
        self.dispatcher.unmark(run_ids)
        sent = self.dispatcher.dispatch() if run_ids else []
        if run_ids:
            log.info("%d run(s) queued at start-up; sent %d to the broker now: %s", len(run_ids), len(sent), sent)
        return sent

    def resend_missing(self) -> list[int]:
        """Runs sent to the broker that it lost while the API runs (Redis restarted without persistence, a
        FLUSHALL): when a broker queue holds fewer messages than the database has runs sent there and not yet
        claimed, the missing number of them, oldest first and each at most once per lost-after time, count as
        not sent again, and the dispatch round sends them. A run sent twice is harmless: the second message
        finds it claimed."""
        with Session(self.engine) as session:
            unclaimed = lifecycle.sent_unclaimed(session)
        lost: list[int] = []
        held_by_queue: dict[str, int] = {}
        for (queue, gpu), runs in unclaimed.items():
            name = self.dispatcher.broker_queue(queue, gpu)
            held = self.dispatcher.queue_size(name)
            if held is None:  # the broker cannot be asked: ask again next check, not once per queue now
                break
            if held >= len(runs):
                continue
            held_by_queue[name] = held
            cutoff = utcnow() - timedelta(seconds=self.lost_after_seconds)
            lost += [run_id for run_id, sent_at in runs if sent_at <= cutoff][: len(runs) - held]
        if not lost:
            return []
        self.dispatcher.unmark(lost)
        sent = self.dispatcher.dispatch()
        log.warning(
            "the broker holds %s message(s) for runs sent to it: sent %d again: %s", held_by_queue, len(lost), lost
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
        if found.requeue:
            self.dispatcher.dispatch()
        for run_id in found.changed:
            self.feed.notify(run_id)
        if found.changed:
            log.warning("lost runs (no heartbeat): %s; requeued: %s", found.changed, found.requeue)
        return found

    def check(self) -> None:
        """One round: vanished messages, silent runs, then whatever there is room for now (a send that failed
        earlier, a worker that came back). A database outage is logged once."""
        try:
            if not self.leadership.held():  # one process recovers (a failed send is in the database: any may)
                return
            self.resend_missing()
            self.health.ok()
            self.check_lost()
            self.dispatcher.dispatch()
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
