"""The run state machine: queued -> running -> succeeded | failed | cancelled, and every worker message in
between (trainboard/protocol.py).

All functions take a sync Session and commit what they change. Transitions that can race (two
workers claiming one run) are single conditional UPDATEs, atomic on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import signal as signals
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError, InvalidRequestError
from sqlmodel import Session, col, select

from backend.db import utcnow
from backend.services import artifacts, epochs
from backend.services.errors import Conflict
from backend.tables import EpochMetric, Run, Study
from trainboard.protocol import EpochRecord, Progress, ResumePoint, RunInfo, RunResult, StopState
from trainboard.schemas import Placement, RunStatus
from trainboard.spec import RunSpec


def create_runs(
    session: Session,
    specs: Sequence[RunSpec],
    study: Study | None = None,
    labels: Sequence[str] | None = None,
    repeats: Sequence[int] | None = None,
    before_commit: Callable[[list[Run]], None] | None = None,
    placement: Placement | None = None,
) -> list[Run]:
    """Queued rows for `specs` (and their study, with each run's label), committed together: a study is
    stored with all of its runs or not at all. `before_commit` sees the runs with their ids, in the same
    transaction (the idempotency key that made them). `placement`: their queue and priority."""
    placement = placement or Placement()
    if study is not None:
        session.add(study)
        session.flush()  # the study's id, for its runs
    runs = [
        Run(
            name=spec.name,
            dataset=spec.dataset.name,
            arch=spec.model.arch,
            spec=spec.model_dump(mode="json"),
            study_id=None if study is None else study.id,
            label=None if labels is None else labels[index],
            repeat=0 if repeats is None else repeats[index],
            queue=placement.queue,
            priority=placement.priority,
            gpu=spec.wants_gpu,
        )
        for index, spec in enumerate(specs)
    ]
    session.add_all(runs)
    if before_commit is not None:
        session.flush()  # their ids
        before_commit(runs)
    session.commit()
    for run in runs:
        session.refresh(run)
    if study is not None:
        session.refresh(study)
    return runs


@dataclass(frozen=True)
class Claimed:
    run: Run
    lease: str  # the attempt's secret, given to its claimer once; only its hash is stored
    resume: ResumePoint | None = None  # the checkpoint the attempt goes on from


def lease_hash(lease: str) -> str:
    return hashlib.sha256(lease.encode("utf-8", "surrogateescape")).hexdigest()


def claim_run(session: Session, run: Run, worker: str, artifacts_dir: Path | None = None) -> Claimed | None:
    """Atomically move a queued run to running. None: another worker owns it, or it was cancelled.

    Idempotent for its winner: the same worker claiming again (its first answer was lost) gets the same attempt
    (with a new lease: the first one never reached it). A claim of a later attempt removes what it supersedes
    (see epochs.supersede). Every later message for the attempt must carry the lease.
    """
    now = utcnow()
    worker = worker[:200]
    lease = secrets.token_urlsafe(32)
    result = session.execute(
        update(Run)
        .where(col(Run.id) == run.id, col(Run.status) == RunStatus.queued)
        .values(
            status=RunStatus.running,
            attempt=col(Run.attempt) + 1,
            worker=worker,
            started_at=now,
            heartbeat_at=now,
            finished_at=None,
            progress_epoch=0,
            progress_batch=0,
            progress_batches=0,
            lease_hash=lease_hash(lease),
        )
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        session.rollback()
        try:
            session.refresh(run)
        except InvalidRequestError:  # deleted since the route loaded it: nothing to claim
            return None
        if run.status != RunStatus.running or run.worker != worker:
            return None
        run.lease_hash = lease_hash(lease)
        session.add(run)
        session.commit()
        session.refresh(run)
        resume = (
            None if run.resumed_from is None else artifacts.resume_point(session, run, run.resumed_from, artifacts_dir)
        )
        return Claimed(run, lease, resume)
    session.refresh(run)
    resume = None
    assert run.id is not None
    if run.attempt > 1:
        # A later attempt goes on from the run's newest checkpoint (none: from epoch 1). What the earlier
        # attempt recorded after it is dropped, so its epochs never mix with the new ones.
        resume = artifacts.resume_point(session, run, epochs.contiguous_through(session, run), artifacts_dir)
        keep = resume.epoch if resume is not None else 0
        epochs.supersede(session, run, keep_through=keep)
        artifacts.drop_after(session, run.id, keep)
        session.flush()
        _summarise(run, epochs.for_run(session, run.id))
        run.resumed_from = resume.epoch if resume is not None else None
        session.add(run)
    session.commit()
    session.refresh(run)
    return Claimed(run, lease, resume)


def _summarise(run: Run, kept: list[EpochRecord]) -> None:
    """The run's summary over the epochs it keeps (none: a run that starts over)."""
    best = max(kept, key=lambda r: r.test_acc, default=None)
    run.epochs_done = kept[-1].epoch if kept else 0
    run.best_test_acc, run.best_epoch = (best.test_acc, best.epoch) if best else (None, None)
    run.final_test_acc = kept[-1].test_acc if kept else None
    run.final_epoch = None
    run.total_seconds = sum(r.seconds for r in kept) if kept else None


def _check_attempt(run: Run, attempt: int, lease: str) -> None:
    if run.status != RunStatus.running or run.attempt != attempt:
        raise Conflict(f"run {run.id} is {run.status} at attempt {run.attempt}; this message is for attempt {attempt}")
    _check_lease(run, lease)


def _check_lease(run: Run, lease: str) -> None:
    if run.lease_hash is None or not hmac.compare_digest(run.lease_hash, lease_hash(lease)):
        raise Conflict(f"run {run.id}: this message does not carry the lease of attempt {run.attempt}'s claim")


def _lock_attempt(session: Session, run: Run, attempt: int, lease: str) -> None:
    """Touch the run's heartbeat if `attempt` is still its running attempt and `lease` its claim's, else Conflict.

    The conditional UPDATE also locks the row until commit, so a concurrent claim of a new attempt
    (which deletes the old attempt's epochs) cannot interleave with this message.
    """
    result = session.execute(
        update(Run)
        .where(
            col(Run.id) == run.id,
            col(Run.status) == RunStatus.running,
            col(Run.attempt) == attempt,
            col(Run.lease_hash) == lease_hash(lease),
        )
        .values(heartbeat_at=utcnow())
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        session.rollback()
        session.refresh(run)
        _check_attempt(run, attempt, lease)
    session.refresh(run)


def hold_attempt(session: Session, run: Run, attempt: int, lease: str) -> None:
    """Conflict unless `attempt` is the run's running attempt and `lease` its claim's; touches the heartbeat and
    holds the run's row until the session commits (an artifact upload registers its file under it)."""
    _lock_attempt(session, run, attempt, lease)


def record_epoch(session: Session, run: Run, attempt: int, lease: str, record: EpochRecord) -> bool:
    """Store one epoch's metrics. Idempotent: a repeated (run, attempt, epoch) changes nothing and returns False."""
    _lock_attempt(session, run, attempt, lease)
    if epochs.exists(session, run, record.epoch):
        session.commit()
        return False
    assert run.id is not None
    session.add(EpochMetric(run_id=run.id, attempt=attempt, **record.model_dump()))
    run.epochs_done = max(run.epochs_done, record.epoch)
    if record.epoch == run.epochs_done:
        run.final_test_acc = record.test_acc
    if run.best_test_acc is None or record.test_acc > run.best_test_acc:
        run.best_test_acc, run.best_epoch = record.test_acc, record.epoch
    run.total_seconds = (run.total_seconds or 0.0) + record.seconds
    session.add(run)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        if epochs.exists(session, run, record.epoch):  # the same epoch raced in through a retry
            return False
        raise
    return True


def record_progress(session: Session, run: Run, attempt: int, lease: str, progress: Progress) -> bool:
    """Store a heartbeat. Returns True when the run should stop (a cancel was requested)."""
    _lock_attempt(session, run, attempt, lease)
    run.progress_epoch, run.progress_batch, run.progress_batches = progress.epoch, progress.batch, progress.batches
    session.add(run)
    session.commit()
    return run.cancel_requested


def record_info(session: Session, run: Run, attempt: int, lease: str, info: RunInfo) -> None:
    """What the worker prepared (data size, normalisation, parameters), once per attempt."""
    _lock_attempt(session, run, attempt, lease)
    run.info = info.model_dump()
    run.device = info.device or run.device
    session.add(run)
    session.commit()


def finish_run(
    session: Session, run: Run, attempt: int, lease: str, result: RunResult | None, error: str | None
) -> Run:
    """The worker's last word: a result, or an error (with a traceback excerpt) when training raised.

    Idempotent: a retried finish for the attempt that already finished returns the run unchanged. A run
    finishes as cancelled only when a cancel was asked for.
    """
    if run.attempt == attempt and run.status.terminal:
        _check_lease(run, lease)
        return run
    _check_attempt(run, attempt, lease)
    if error is None and result is not None and result.stopped == StopState.cancelled and not run.cancel_requested:
        raise Conflict(f"run {run.id}: nobody asked to cancel it, so it cannot finish as cancelled")
    if error is not None:
        run.status, run.error = RunStatus.failed, error
    elif result is not None and result.stopped == StopState.cancelled:
        run.status = RunStatus.cancelled
    else:
        run.status = RunStatus.succeeded
    last = epochs.last_epoch(session, run)
    run.final_epoch = last
    if result is not None:
        run.stop_reason = result.stop_reason or None
        if result.final_epoch is not None:  # early stopping restored an earlier epoch: the run ends as that one
            restored = epochs.record_at(session, run, result.final_epoch)
            if restored is not None:
                run.final_test_acc, run.final_epoch = restored.test_acc, restored.epoch
        run.confusion = result.confusion or None
        # A resumed run took the time of the epochs it kept plus this attempt's.
        resumed_from = run.resumed_from or 0
        assert run.id is not None
        kept = [r.seconds for r in epochs.for_run(session, run.id) if r.epoch <= resumed_from]
        run.total_seconds = result.total_seconds + sum(kept)
        run.device = result.device or run.device
    run.finished_at = utcnow()
    session.add(run)
    session.commit()
    session.refresh(run)
    return run


def killed_reason(signal: int) -> str:
    try:
        name = signals.Signals(signal).name
    except ValueError:
        name = f"signal {signal}"
    hint = ": out of memory?" if signal == signals.SIGKILL else ""
    return f"the training process was killed by signal {signal} ({name}){hint}"


def run_killed(session: Session, run: Run, attempt: int, lease: str, signal: int, max_attempts: int) -> Run:
    """The run's process died by a signal (its worker says so): requeue it like a lost run, or fail it when it
    was killed at this same epoch before (a second try would only be killed again) or has no attempt left.
    Returns the run; queued again means it must go to the broker again."""
    _check_attempt(run, attempt, lease)
    reason = killed_reason(signal)
    if run.cancel_requested:  # it was to stop anyway: cancelled, not trained again
        run.status, run.finished_at = RunStatus.cancelled, utcnow()
        run.error = f"{reason} after its cancel was asked for"
    elif run.last_kill_epoch == run.epochs_done or attempts_used(run) >= max_attempts:
        again = " again at the same epoch" if run.last_kill_epoch == run.epochs_done else ""
        run.status, run.finished_at = RunStatus.failed, utcnow()
        run.error = f"{reason}{again} (epoch {run.epochs_done}, attempt {attempts_used(run)} of {max_attempts})"
    else:
        run.status, run.dispatched_at = RunStatus.queued, None
        run.error = f"attempt {run.attempt}: {reason}; requeued"
        run.last_kill_epoch = run.epochs_done
    run.lease_hash = None
    session.add(run)
    session.commit()
    session.refresh(run)
    return run


def attempts_used(run: Run) -> int:
    """The attempts that count against the lost-run budget (max_attempts): those since the latest retry."""
    return run.attempt - run.attempt_base


RETRYABLE = (RunStatus.failed, RunStatus.cancelled)


def retry_run(session: Session, run: Run, before_commit: Callable[[], None] | None = None) -> Run:
    """A failed or cancelled run queued again (Conflict for any other state): its next claim is a new attempt
    with a fresh budget of lost-run attempts; what the last attempt ended with (error, cancel, stop reason)
    is cleared. Its epochs and checkpoints stay: the claim resumes from the latest checkpoint, if any.
    `before_commit` runs in the same transaction (dropping the checkpoints, to start over). One conditional
    UPDATE, so two retries at once queue it once. Not sent to the broker here."""
    result = session.execute(
        update(Run)
        .where(col(Run.id) == run.id, col(Run.status).in_(RETRYABLE))
        .values(
            status=RunStatus.queued,
            dispatched_at=None,
            attempt_base=col(Run.attempt),
            error=None,
            stop_reason=None,
            cancel_requested=False,
            finished_at=None,
            confusion=None,
            last_kill_epoch=None,
            lease_hash=None,
        )
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        session.rollback()
        session.refresh(run)
        raise Conflict(f"run {run.id} is {run.status}: only a failed or cancelled run can be retried")
    if before_commit is not None:
        before_commit()
    session.commit()
    session.refresh(run)
    return run


def request_cancel(session: Session, run: Run) -> Run:
    """Queued: cancelled at once. Running: flagged; the worker's next heartbeat stops it cooperatively."""
    if run.status.terminal:
        raise Conflict(f"run {run.id} has already ended ({run.status})")
    result = session.execute(
        update(Run)
        .where(col(Run.id) == run.id, col(Run.status) == RunStatus.queued)
        .values(status=RunStatus.cancelled, cancel_requested=True, finished_at=utcnow())
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        session.execute(update(Run).where(col(Run.id) == run.id).values(cancel_requested=True))
    session.commit()
    session.refresh(run)
    return run


@dataclass
class LostRuns:
    """What one check for silent runs changed: the runs to send to the broker again, and every run it touched."""

    requeue: list[int] = field(default_factory=list)
    changed: list[int] = field(default_factory=list)


def recover_lost_runs(session: Session, lost_after_seconds: float, max_attempts: int) -> LostRuns:
    """Runs marked running whose worker has been silent for too long: requeue them, or give up after max_attempts.

    Each change is a conditional UPDATE on the silence it saw: a heartbeat that lands in between wins.
    """
    deadline = utcnow() - timedelta(seconds=lost_after_seconds)
    found = LostRuns()
    stale = session.exec(select(Run).where(Run.status == RunStatus.running, col(Run.heartbeat_at) < deadline)).all()
    for run in stale:
        assert run.id is not None
        silent = f"no heartbeat from worker {run.worker!r} for over {lost_after_seconds:.0f} s"
        if run.cancel_requested:
            values: dict[str, object] = {"status": RunStatus.cancelled, "finished_at": utcnow()}
        elif attempts_used(run) >= max_attempts:
            values = {
                "status": RunStatus.failed,
                "finished_at": utcnow(),
                "error": f"lost: {silent}, attempt {attempts_used(run)} of {max_attempts}",
            }
        else:
            values = {
                "status": RunStatus.queued,
                "dispatched_at": None,
                "error": f"attempt {run.attempt} lost: {silent}; requeued",
            }
        result = session.execute(
            update(Run)
            .where(
                col(Run.id) == run.id,
                col(Run.status) == RunStatus.running,
                col(Run.attempt) == run.attempt,
                col(Run.heartbeat_at) < deadline,
            )
            .values(**values)
        )
        if result.rowcount == 1:  # type: ignore[attr-defined]
            found.changed.append(run.id)
            if values["status"] == RunStatus.queued:
                found.requeue.append(run.id)
    session.commit()
    return found


def queued_run_ids(session: Session) -> list[int]:
    ids = session.exec(select(Run.id).where(Run.status == RunStatus.queued).order_by(col(Run.id))).all()
    return [run_id for run_id in ids if run_id is not None]


def sent_unclaimed(session: Session) -> dict[tuple[str, bool], list[tuple[int, datetime]]]:
    """Queued runs whose id went to the broker and no worker has claimed yet, per (queue, GPU), oldest sent first."""
    rows = session.exec(
        select(Run.id, Run.queue, Run.gpu, Run.dispatched_at)
        .where(Run.status == RunStatus.queued, col(Run.dispatched_at).is_not(None))
        .order_by(col(Run.dispatched_at), col(Run.id))
    ).all()
    found: dict[tuple[str, bool], list[tuple[int, datetime]]] = {}
    for run_id, queue, gpu, sent_at in rows:
        if run_id is not None and sent_at is not None:
            found.setdefault((queue, gpu), []).append((run_id, sent_at))
    return found
