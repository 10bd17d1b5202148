"""Workers as they announce themselves: their heartbeats stored, the list the Workers page shows, and which
queues no live worker listens on (a queued run there says so instead of waiting in silence)."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session, col, select

from backend.db import utcnow
from backend.tables import Worker
from trainboard.protocol import WorkerDevice, WorkerHeartbeat
from trainboard.schemas import WorkerPublic

# A worker reports about this often, at most (the answer to each heartbeat says when to send the next).
MAX_HEARTBEAT_SECONDS = 5.0


def heartbeat_interval(lost_after_seconds: float) -> float:
    """How often workers should report: several times per lost-after time, so one lost message is no alarm."""
    return min(MAX_HEARTBEAT_SECONDS, max(0.2, lost_after_seconds / 4))


def record_heartbeat(session: Session, beat: WorkerHeartbeat) -> Worker:
    """Store what the worker says of itself; a worker seen for the first time (or restarted) is (re)started."""
    worker = session.exec(select(Worker).where(Worker.name == beat.name)).first()
    now = utcnow()
    if worker is None or worker.pid != beat.pid:
        if worker is None:
            worker = Worker(
                name=beat.name, host=beat.host, pid=beat.pid, version=beat.version, slots=beat.slots, state=beat.state
            )
        worker.started_at = now
    worker.host, worker.pid, worker.version = beat.host, beat.pid, beat.version
    worker.queues, worker.device = list(beat.queues), beat.device.model_dump()
    worker.slots, worker.running, worker.state = beat.slots, list(beat.running), beat.state
    worker.last_seen = now
    session.add(worker)
    session.commit()
    session.refresh(worker)
    return worker


def status(worker: Worker, lost_after_seconds: float) -> str:
    if worker.state == "stopped":
        return "stopped"
    return "live" if worker.last_seen >= utcnow() - timedelta(seconds=lost_after_seconds) else "gone"


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
        running=list(worker.running) if state == "live" else [],
        status=state,
        started_at=worker.started_at,
        last_seen=worker.last_seen,
    )


def list_workers(session: Session, lost_after_seconds: float) -> list[WorkerPublic]:
    """Every worker ever seen: live ones first, then by name."""
    found = [public(w, lost_after_seconds) for w in session.exec(select(Worker).order_by(col(Worker.name))).all()]
    return sorted(found, key=lambda w: (w.status != "live", w.name))


def live_queues(session: Session, lost_after_seconds: float) -> set[str]:
    """The queues at least one live worker listens on."""
    since = utcnow() - timedelta(seconds=lost_after_seconds)
    rows = session.exec(select(Worker.queues).where(col(Worker.last_seen) >= since, Worker.state != "stopped")).all()
    return {queue for queues in rows for queue in queues}


def idle_queue(session: Session, queue: str, lost_after_seconds: float) -> str | None:
    """`queue` when no live worker listens on it (its queued runs wait for nobody), else None."""
    return None if queue in live_queues(session, lost_after_seconds) else queue
