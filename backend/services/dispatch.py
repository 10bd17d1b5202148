"""Sends run ids to the broker, in dispatch rounds: only as many as the live workers have free slots, chosen
by services/scheduling.py (priority, then round-robin across studies), each to its queue's broker queue.

A round is asked for (`request`) whenever the answer could change: a run queued, ended or requeued, a
worker's heartbeat; the recovery loop runs one every check. Rounds run on one thread per API process, so no
request waits on the broker or on a round, and requests that come while one runs make one more round, not
one each. A round reads the database, marks the runs it chose as sent (`dispatched_at`) in one transaction
and then sends them; on PostgreSQL the transaction holds an advisory lock, so the rounds of several API
processes never choose together. A send that fails clears the mark (the next round sends again) and pauses
sending for a moment, so a broker that is down costs one failed send, not one per request.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from datetime import datetime, timedelta

from celery import Celery
from sqlalchemy import func, or_, text, update
from sqlalchemy import select as sql_select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from backend.db import utcnow
from backend.services import scheduling, workers
from backend.services.health import is_unavailable
from backend.services.scheduling import Bucket, Candidate, Group
from backend.tables import Run, Worker
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
        self._wanted = threading.Event()  # a round was asked for
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
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

    def start(self) -> None:
        """Run the asked-for rounds on a thread of their own (the API's lifespan starts it)."""
        self._thread = threading.Thread(target=self._loop, name="trainboard-dispatch", daemon=True)
        self._thread.start()

    def request(self) -> None:
        """Ask for a dispatch round soon; returns at once. Without the thread (a script, a test): run it now."""
        if self._thread is None:
            self.dispatch()
        else:
            self._wanted.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wanted.wait()
            self._wanted.clear()
            if self._stop.is_set():
                return
            try:
                self.dispatch()
            except Exception as exc:  # the next request or recovery check tries again
                if is_unavailable(exc):
                    log.warning("no dispatch round: the database is unreachable (%s)", type(exc).__name__)
                else:
                    log.exception("the dispatch round failed")

    def dispatch(self) -> list[int]:
        """Run one dispatch round now (after any round running in this process); the ids it sent."""
        if self.engine is None:
            raise RuntimeError("a Dispatcher without a database cannot choose runs: give it an engine")
        with self._round_lock:
            return self._round()

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
            free = scheduling.free_slots(taking, *self._holding(session, taking))
            room = sum(free.values())
            if room == 0:
                return []
            candidates = self._candidates(session, taking, room)
            if not candidates:
                return []
            chosen = scheduling.plan(taking, free, self._last_sent(session, candidates), candidates)
            if not chosen:
                return []
            marked = set(
                session.execute(
                    update(Run)
                    .where(
                        col(Run.id).in_([c.run_id for c in chosen]),
                        col(Run.status) == RunStatus.queued,
                        col(Run.dispatched_at).is_(None),
                    )
                    .values(dispatched_at=utcnow())
                    .returning(col(Run.id))
                ).scalars()
            )
            session.commit()
        going = [c for c in chosen if c.run_id in marked]  # not one cancelled or sent by another round meanwhile
        for index, candidate in enumerate(going):
            if not self.send(candidate.run_id, self.broker_queue(candidate.queue, candidate.gpu)):
                self.unmark([c.run_id for c in going[index:]])
                return [c.run_id for c in going[:index]]
        return [c.run_id for c in going]

    def _holding(
        self, session: Session, taking: list[scheduling.WorkerCapacity]
    ) -> tuple[Counter[str], Counter[Bucket]]:
        """The runs that hold a slot: per taking worker, the runs it trains (heard from within the lost-after
        time); per bucket, those sent and not yet claimed, and running ones of a worker the database does not
        know by name. A draining or gone worker's runs hold no taking worker's slot."""
        fresh = utcnow() - timedelta(seconds=self.lost_after)
        taking_names = {w.name for w in taking}
        known = set(session.exec(select(Worker.name)).all())
        running_on: Counter[str] = Counter()
        unattributed: Counter[Bucket] = Counter()
        running = session.execute(
            sql_select(col(Run.worker), col(Run.queue), col(Run.gpu)).where(
                col(Run.status) == RunStatus.running,
                or_(col(Run.heartbeat_at).is_(None), col(Run.heartbeat_at) >= fresh),
            )
        ).all()
        for claimer, queue, gpu in running:
            name = worker_name(claimer)
            if name in taking_names:
                running_on[name] += 1
            elif name not in known:
                unattributed[(queue, gpu)] += 1
        sent = session.execute(
            sql_select(col(Run.queue), col(Run.gpu), func.count())
            .where(col(Run.status) == RunStatus.queued, col(Run.dispatched_at).is_not(None))
            .group_by(col(Run.queue), col(Run.gpu))
        ).all()
        for queue, gpu, count in sent:
            unattributed[(queue, gpu)] += count
        return running_on, unattributed

    def _last_sent(self, session: Session, candidates: list[Candidate]) -> dict[Group, datetime]:
        """When each candidate's (queue, study) group last had a run sent: the round-robin's turns (one indexed
        lookup per group: run(queue, study_id, dispatched_at))."""
        found: dict[Group, datetime] = {}
        for queue, study_id in sorted({c.group for c in candidates}, key=lambda g: (g[0], g[1] or 0)):
            in_group = col(Run.study_id).is_(None) if study_id is None else col(Run.study_id) == study_id
            when = session.execute(
                sql_select(func.max(col(Run.dispatched_at))).where(col(Run.queue) == queue, in_group)
            ).scalar()
            if when is not None:
                found[(queue, study_id)] = when
        return found

    def _candidates(self, session: Session, taking: list[scheduling.WorkerCapacity], room: int) -> list[Candidate]:
        """Queued, unsent runs of the queues some worker takes from: per (bucket, study) only the first `room`
        (no round sends more than there are free slots), by priority then age."""
        queues = sorted({queue for w in taking for queue in w.queues})
        place = func.row_number().over(
            partition_by=(col(Run.queue), col(Run.gpu), col(Run.study_id)),
            order_by=(col(Run.priority).desc(), col(Run.id)),
        )
        waiting = (
            sql_select(
                col(Run.id), col(Run.queue), col(Run.gpu), col(Run.priority), col(Run.study_id), place.label("place")
            )
            .where(col(Run.status) == RunStatus.queued, col(Run.dispatched_at).is_(None), col(Run.queue).in_(queues))
            .subquery()
        )
        columns = (waiting.c.id, waiting.c.queue, waiting.c.gpu, waiting.c.priority, waiting.c.study_id)
        rows = session.execute(sql_select(*columns).where(waiting.c.place <= room)).all()
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
        self._stop.set()
        self._wanted.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.celery.close()


def worker_name(claimer: str | None) -> str | None:
    """The worker a run's claim names (`name@host:pid`, worker/tasks.py): its `name@host`."""
    return claimer.rsplit(":", 1)[0] if claimer and ":" in claimer else claimer
