"""Workers as they announce themselves: their heartbeats stored, the list the Workers page shows, and which
queues no live worker listens on (a queued run there says so instead of waiting in silence), and the
capacity the dispatch round fills."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func
from sqlalchemy import select as sql_select
from sqlmodel import Session, col, select

from backend.db import utcnow
from backend.services import scheduling
from backend.services.scheduling import Served, WorkerCapacity
from backend.tables import Run, Worker
from trainboard.placement import DEFAULT_QUEUE
from trainboard.protocol import WorkerDevice, WorkerHeartbeat
from trainboard.schemas import RunStatus, WorkerPublic

# A worker reports about this often, at most (the answer to each heartbeat says when to send the next).
MAX_HEARTBEAT_SECONDS = 5.0


def heartbeat_interval(lost_after_seconds: float) -> float:
    """How often workers should report: several times per lost-after time, so one lost message is no alarm."""
    return min(MAX_HEARTBEAT_SECONDS, max(0.2, lost_after_seconds / 4))


def record_heartbeat(session: Session, beat: WorkerHeartbeat, deployment_queue: str | None = None) -> Worker:
    """Store what the worker says of itself; a worker seen for the first time (or restarted) is (re)started.
    A worker older than run queues announces the deployment's broker queue (`deployment_queue`): that is
    the default run queue."""
    worker = session.exec(select(Worker).where(Worker.name == beat.name)).first()
    now = utcnow()
    if worker is None or worker.pid != beat.pid:
        if worker is None:
            worker = Worker(
                name=beat.name, host=beat.host, pid=beat.pid, version=beat.version, slots=beat.slots, state=beat.state
            )
        worker.started_at = now
    worker.host, worker.pid, worker.version = beat.host, beat.pid, beat.version
    queues = [DEFAULT_QUEUE if queue == deployment_queue else queue for queue in beat.queues]
    worker.queues, worker.device = list(dict.fromkeys(queues)), beat.device.model_dump()
    worker.slots, worker.running, worker.state = beat.slots, list(beat.running), beat.state
    worker.models = list(dict.fromkeys(beat.models))
    worker.last_seen = now
    session.add(worker)
    session.commit()
    session.refresh(worker)
    return worker


def status(worker: Worker, lost_after_seconds: float) -> str:
    if worker.state == "stopped":
        return "stopped"
    if worker.last_seen < utcnow() - timedelta(seconds=lost_after_seconds):
        return "gone"
    return "draining" if worker.state == "draining" else "live"


def public(worker: Worker, lost_after_seconds: float) -> WorkerPublic:
    state = status(worker, lost_after_seconds)
    return WorkerPublic(
        name=worker.name,
        host=worker.host,
        pid=worker.pid,
        version=worker.version,
        queues=list(worker.queues),
        device=WorkerDevice.model_validate(worker.device),
        slots=worker.slots,
        running=list(worker.running) if state in ("live", "draining") else [],
        models=list(worker.models or []),
        status=state,
        started_at=worker.started_at,
        last_seen=worker.last_seen,
    )


def list_workers(session: Session, lost_after_seconds: float) -> list[WorkerPublic]:
    """Every worker ever seen: live ones first, then by name."""
    found = [public(w, lost_after_seconds) for w in session.exec(select(Worker).order_by(col(Worker.name))).all()]
    return sorted(found, key=lambda w: (w.status not in ("live", "draining"), w.name))


def live(session: Session, lost_after_seconds: float) -> list[Worker]:
    """The workers heard from within the lost-after time that have not said goodbye (draining ones too)."""
    since = utcnow() - timedelta(seconds=lost_after_seconds)
    return list(session.exec(select(Worker).where(col(Worker.last_seen) >= since, Worker.state != "stopped")).all())


def offered_models(session: Session, lost_after_seconds: float) -> set[str]:
    """The custom model names live workers offer (draining ones too: they may be back soon)."""
    return {name for worker in live(session, lost_after_seconds) for name in worker.models or []}


def capacity(worker: Worker) -> WorkerCapacity:
    return WorkerCapacity(
        name=worker.name,
        queues=tuple(worker.queues),
        gpu=WorkerDevice.model_validate(worker.device).kind == "cuda",
        slots=worker.slots,
    )


def taking(session: Session, lost_after_seconds: float) -> list[WorkerCapacity]:
    """What the live workers that take new runs (not draining) can train: the dispatch round's capacity."""
    return [capacity(w) for w in live(session, lost_after_seconds) if w.state == "up"]


def served(session: Session, lost_after_seconds: float) -> Served:
    """The (queue, GPU) buckets that live workers taking new runs serve."""
    return scheduling.served(taking(session, lost_after_seconds))


@dataclass(frozen=True)
class QueueLine:
    """One place runs wait (a queue, or its GPU variant): how many wait there and which workers take them."""

    queue: str
    gpu: bool
    queued: int
    takers: list[str]


def queues(session: Session, lost_after_seconds: float) -> list[QueueLine]:
    """Every bucket that has queued runs or a live worker taking from it, by queue then GPU: the Workers page's
    answer to "why does my run wait"."""
    rows = session.execute(
        sql_select(col(Run.queue), col(Run.gpu), func.count())
        .where(col(Run.status) == RunStatus.queued)
        .group_by(col(Run.queue), col(Run.gpu))
    ).all()
    queued: dict[tuple[str, bool], int] = {(queue, gpu): count for queue, gpu, count in rows}
    takers: dict[tuple[str, bool], list[str]] = {}
    for worker in taking(session, lost_after_seconds):
        for bucket in sorted(worker.serves()):
            takers.setdefault(bucket, []).append(worker.name)
    return [
        QueueLine(queue, gpu, queued.get((queue, gpu), 0), sorted(takers.get((queue, gpu), [])))
        for queue, gpu in sorted(set(queued) | set(takers))
    ]
