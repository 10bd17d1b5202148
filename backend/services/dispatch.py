"""Sends run ids to the broker, in dispatch rounds: only as many as the live workers have free slots, chosen
by services/scheduling.py (priority, then round-robin across studies), each to its queue's broker queue.

A round runs whenever that could change the answer: a run queued, ended or requeued, a worker's heartbeat,
and every recovery check. It reads the database, marks the runs it chose as sent (`dispatched_at`) in the
same transaction and then sends them; on PostgreSQL the transaction holds an advisory lock, so the rounds of
several API processes never choose together. A send that fails clears the mark (the next round sends again)
and pauses sending for a moment, so a broker that is down costs one failed send, not one per request.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from datetime import datetime, timedelta

from celery import Celery
from sqlalchemy import and_, func, or_, text, update
from sqlalchemy import select as sql_select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from backend.db import utcnow
from backend.services import scheduling, workers
from backend.services.scheduling import Bucket, Candidate, Group
from backend.tables import Run
from trainboard.placement import broker_queue
from trainboard.queue import TRAIN_TASK, make_celery
from trainboard.schemas import RunStatus

log = logging.getLogger(__name__)

# After a failed send, rounds choose nothing for this long (the runs stay queued and unsent).
BROKER_PAUSE_SECONDS = 2.0
# The key of the PostgreSQL advisory lock a round holds (any constant shared by every API process).
ROUND_LOCK = 0x7472_6169_6E62  # "trainb"


class Dispatcher:
    def __init__(self, broker_url: str, deployment_queue: str, engine: Engine | None = None, lost_after: float = 120.0):
        self.deployment_queue = deployment_queue
        self.celery: Celery = make_celery(broker_url, deployment_queue)
        self.engine, self.lost_after = engine, lost_after
        self._round_lock = threading.Lock()
        self._again = threading.Event()  # a round was asked for while one ran: run one more
        self._paused_until = 0.0

    def broker_queue(self, queue: str, gpu: bool) -> str:
        return broker_queue(self.deployment_queue, queue, gpu)

    def send(self, run_id: int, queue: str | None = None) -> bool:
        """Send one id to a broker queue (the deployment's default one when not named). False: the broker is down."""
        try:
            self.celery.send_task(
                TRAIN_TASK,
                args=[run_id],
                queue=queue or self.deployment_queue,
                retry=True,
                retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.3},
            )
        except Exception as exc:  # the broker is down: the caller leaves the run queued and unsent
            log.warning("could not send run %s to the broker (%s); it stays queued and is sent again", run_id, exc)
            self._paused_until = time.monotonic() + BROKER_PAUSE_SECONDS
            return False
        return True

    def dispatch(self) -> list[int]:
        """Run a dispatch round (and one more if another was asked for meanwhile); the ids sent. When a round is
        already running in this process, ask it for one more and return at once."""
        if self.engine is None:
            raise RuntimeError("a Dispatcher without a database cannot choose runs: give it an engine")
        self._again.set()
        if not self._round_lock.acquire(blocking=False):
            return []
        sent: list[int] = []
        try:
            while self._again.is_set():
                self._again.clear()
                sent += self._round()
        finally:
            self._round_lock.release()
        return sent

    def _round(self) -> list[int]:
        if time.monotonic() < self._paused_until:
            return []
        assert self.engine is not None
        with Session(self.engine) as session:
            if session.get_bind().dialect.name == "postgresql":
                session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ROUND_LOCK})
            taking = workers.taking(session, self.lost_after)
            if not taking:
                return []
            candidates = self._candidates(session, taking)
            if not candidates:
                return []
            busy = self._busy(session)
            chosen = scheduling.plan(taking, busy, self._last_sent(session, candidates), candidates)
            if not chosen:
                return []
            ids = [c.run_id for c in chosen]
            session.execute(
                update(Run)
                .where(col(Run.id).in_(ids), col(Run.status) == RunStatus.queued, col(Run.dispatched_at).is_(None))
                .values(dispatched_at=utcnow())
            )
            session.commit()
        for index, candidate in enumerate(chosen):
            if not self.send(candidate.run_id, self.broker_queue(candidate.queue, candidate.gpu)):
                self.unmark(ids[index:])
                return ids[:index]
        return ids

    def _busy(self, session: Session) -> Counter[Bucket]:
        """Runs that hold a slot, per bucket: running (heard from within the lost-after time) or sent and not
        yet claimed."""
        fresh = utcnow() - timedelta(seconds=self.lost_after)
        holding = or_(
            and_(
                col(Run.status) == RunStatus.running,
                or_(col(Run.heartbeat_at).is_(None), col(Run.heartbeat_at) >= fresh),
            ),
            and_(col(Run.status) == RunStatus.queued, col(Run.dispatched_at).is_not(None)),
        )
        rows = session.execute(
            sql_select(col(Run.queue), col(Run.gpu), func.count()).where(holding).group_by(col(Run.queue), col(Run.gpu))
        ).all()
        return Counter({(queue, gpu): count for queue, gpu, count in rows})

    def _last_sent(self, session: Session, candidates: list[Candidate]) -> dict[Group, datetime]:
        """When each candidate's (queue, study) group last had a run sent: the round-robin's turns."""
        queues = sorted({c.queue for c in candidates})
        studies = {c.study_id for c in candidates}
        in_study = col(Run.study_id).in_(sorted(s for s in studies if s is not None))
        rows = session.execute(
            sql_select(col(Run.queue), col(Run.study_id), func.max(col(Run.dispatched_at)))
            .where(
                col(Run.queue).in_(queues),
                col(Run.dispatched_at).is_not(None),
                or_(in_study, col(Run.study_id).is_(None)) if None in studies else in_study,
            )
            .group_by(col(Run.queue), col(Run.study_id))
        ).all()
        return {(queue, study_id): when for queue, study_id, when in rows if when is not None}

    def _candidates(self, session: Session, taking: list[scheduling.WorkerCapacity]) -> list[Candidate]:
        """Queued, unsent runs in the buckets some worker serves: per (bucket, study), only the first as many as
        there are slots in all (no round sends more), by priority then age."""
        slots = sum(w.slots for w in taking)
        queues = sorted({queue for w in taking for queue in w.queues})
        place = func.row_number().over(
            partition_by=(col(Run.queue), col(Run.gpu), col(Run.study_id)),
            order_by=(col(Run.priority).desc(), col(Run.id)),
        )
        waiting = (
            sql_select(
                col(Run.id), col(Run.queue), col(Run.gpu), col(Run.priority), col(Run.study_id), place.label("place")
            )
            .where(
                col(Run.status) == RunStatus.queued,
                col(Run.dispatched_at).is_(None),
                col(Run.cancel_requested).is_(False),
                col(Run.queue).in_(queues),
            )
            .subquery()
        )
        columns = (waiting.c.id, waiting.c.queue, waiting.c.gpu, waiting.c.priority, waiting.c.study_id)
        rows = session.execute(sql_select(*columns).where(waiting.c.place <= slots)).all()
        return [Candidate(run_id, queue, gpu, priority, study_id) for run_id, queue, gpu, priority, study_id in rows]

    def unmark(self, run_ids: list[int]) -> None:
        """These runs count as not sent (a failed send, a message the broker lost): the next round sends them."""
        if not run_ids or self.engine is None:
            return
        with Session(self.engine) as session:
            session.execute(
                update(Run)
                .where(col(Run.id).in_(run_ids), col(Run.status) == RunStatus.queued)
                .values(dispatched_at=None)
            )
            session.commit()

    def queue_size(self, queue: str | None = None) -> int | None:
        """How many messages the broker holds for a broker queue (the deployment's default one when not named;
        not counting ones a worker has taken but not acknowledged); None when the broker cannot be asked."""
        name = queue or self.deployment_queue
        try:
            with self.celery.connection_for_read() as connection:
                channel = connection.default_channel
                try:
                    _, count, _ = channel.queue_declare(queue=name, passive=True)
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
