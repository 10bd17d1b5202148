"""The run state machine on SQLite and PostgreSQL: claims, stale attempts, lost runs."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from backend.db import utcnow
from backend.services import lifecycle
from backend.services.errors import Conflict
from backend.tables import EpochMetric, Run
from tests.conftest import epoch_record, tiny_spec
from trainboard.protocol import EpochRecord, Progress, RunResult
from trainboard.schemas import RunStatus
from trainboard.spec import RunSpec


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with Session(engine) as db:
        yield db


def new_run(session: Session) -> Run:
    return lifecycle.create_runs(session, [RunSpec.model_validate(tiny_spec())])[0]


def go_silent(session: Session, run: Run, seconds: float) -> None:
    run.heartbeat_at = utcnow() - timedelta(seconds=seconds)
    session.add(run)
    session.commit()


def test_only_one_claim_wins(engine: Engine, session: Session) -> None:
    run = new_run(session)
    # Two workers, each with its own connection, both saw the run queued before either claims it.
    with Session(engine) as a, Session(engine) as b:
        seen_by_a, seen_by_b = a.get(Run, run.id), b.get(Run, run.id)
        assert seen_by_a is not None and seen_by_b is not None
        assert seen_by_a.status == seen_by_b.status == RunStatus.queued
        a.commit()
        b.commit()  # end the read transactions, as two request handlers would
        won = lifecycle.claim_run(a, seen_by_a, "a:1")
        second = lifecycle.claim_run(b, seen_by_b, "b:2")
    assert won is not None
    first = won.run
    assert (first.status, first.attempt, first.worker) == (RunStatus.running, 1, "a:1")
    assert second is None
    session.refresh(run)
    assert (run.worker, run.attempt) == ("a:1", 1)


def claim(session: Session, run: Run, worker: str = "a:1") -> str:
    claimed = lifecycle.claim_run(session, run, worker)
    assert claimed is not None
    return claimed.lease


def test_reports_of_a_stale_attempt_are_refused(session: Session) -> None:
    run = new_run(session)
    lease = claim(session, run)
    with pytest.raises(Conflict, match="attempt 2"):
        lifecycle.record_epoch(session, run, 2, lease, EpochRecord.model_validate(epoch_record(1)))
    with pytest.raises(Conflict):
        lifecycle.record_progress(session, run, 2, lease, Progress(epoch=1, batch=1, batches=2))


def test_every_message_must_carry_the_lease_of_its_claim(session: Session) -> None:
    run = new_run(session)
    lease = claim(session, run)
    record = EpochRecord.model_validate(epoch_record(1))
    for forged in ("", "not-the-lease", lease[:-1]):
        with pytest.raises(Conflict, match="does not carry the lease"):
            lifecycle.record_epoch(session, run, 1, forged, record)
        with pytest.raises(Conflict, match="does not carry the lease"):
            lifecycle.finish_run(session, run, 1, forged, RunResult(epochs_run=0, total_seconds=1.0), None)
    assert lifecycle.record_epoch(session, run, 1, lease, record)
    assert session.get(Run, run.id).lease_hash != lease  # type: ignore[union-attr]  (only its hash is stored)
    again = claim(session, run)  # the same worker again (its first answer was lost): a new lease replaces it
    with pytest.raises(Conflict):
        lifecycle.record_progress(session, run, 1, lease, Progress(epoch=1, batch=1, batches=2))
    assert lifecycle.record_progress(session, run, 1, again, Progress(epoch=1, batch=1, batches=2)) is False


def test_a_run_finishes_as_cancelled_only_when_a_cancel_was_asked_for(session: Session) -> None:
    run = new_run(session)
    lease = claim(session, run)
    cancelled = RunResult(stopped="cancelled", epochs_run=0, total_seconds=1.0)
    with pytest.raises(Conflict, match="nobody asked to cancel it"):
        lifecycle.finish_run(session, run, 1, lease, cancelled, None)
    lifecycle.request_cancel(session, run)
    assert lifecycle.finish_run(session, run, 1, lease, cancelled, None).status == RunStatus.cancelled


def test_a_killed_run_is_requeued_then_failed_when_killed_again_at_the_same_epoch(session: Session) -> None:
    run = new_run(session)
    lease = claim(session, run)
    lifecycle.record_epoch(session, run, 1, lease, EpochRecord.model_validate(epoch_record(1)))
    first = lifecycle.run_killed(session, run, 1, lease, 9, max_attempts=3)
    assert first.status == RunStatus.queued
    assert first.error == "attempt 1: the training process was killed by signal 9 (SIGKILL): out of memory?; requeued"
    lease = claim(session, run, "b:2")  # starts over (no checkpoints yet): killed again at epoch 0 is a new epoch
    second = lifecycle.run_killed(session, run, 2, lease, 9, max_attempts=3)
    assert second.status == RunStatus.queued and second.last_kill_epoch == 0
    lease = claim(session, run, "c:3")
    third = lifecycle.run_killed(session, run, 3, lease, 9, max_attempts=5)
    assert third.status == RunStatus.failed
    assert third.error == (
        "the training process was killed by signal 9 (SIGKILL): out of memory? again at the same epoch "
        "(epoch 0, attempt 3 of 5)"
    )
    with pytest.raises(Conflict):  # a late second report of the same death changes nothing
        lifecycle.run_killed(session, run, 3, lease, 9, max_attempts=5)


def test_lost_run_is_requeued_then_restarts_clean(session: Session) -> None:
    run = new_run(session)
    lease = claim(session, run)
    lifecycle.record_epoch(session, run, 1, lease, EpochRecord.model_validate(epoch_record(1)))
    go_silent(session, run, 300)
    found = lifecycle.recover_lost_runs(session, lost_after_seconds=120, max_attempts=3)
    assert (found.requeue, found.changed) == ([run.id], [run.id])
    session.refresh(run)
    assert run.status == RunStatus.queued
    assert "attempt 1 lost: no heartbeat from worker 'a:1'" in (run.error or "")
    # The old worker wakes up: its reports no longer count.
    with pytest.raises(Conflict):
        lifecycle.record_epoch(session, run, 1, lease, EpochRecord.model_validate(epoch_record(2)))
    claimed = lifecycle.claim_run(session, run, "b:2")
    assert claimed is not None and claimed.run.attempt == 2
    second = claimed.run
    assert session.exec(select(EpochMetric).where(EpochMetric.run_id == run.id)).all() == []
    assert (second.epochs_done, second.best_test_acc) == (0, None)


def test_a_fresh_heartbeat_is_not_lost(session: Session) -> None:
    run = new_run(session)
    claim(session, run)
    go_silent(session, run, 10)
    assert lifecycle.recover_lost_runs(session, lost_after_seconds=120, max_attempts=3).changed == []


def test_lost_run_fails_after_max_attempts_and_cancel_wins(session: Session) -> None:
    failing, cancelling = new_run(session), new_run(session)
    for run in (failing, cancelling):
        claim(session, run)
        go_silent(session, run, 300)
    lifecycle.request_cancel(session, cancelling)
    found = lifecycle.recover_lost_runs(session, lost_after_seconds=120, max_attempts=1)
    assert found.requeue == []
    session.refresh(failing)
    session.refresh(cancelling)
    assert failing.status == RunStatus.failed and "attempt 1 of 1" in (failing.error or "")
    assert cancelling.status == RunStatus.cancelled


def test_finish_is_idempotent(session: Session) -> None:
    run = new_run(session)
    lease = claim(session, run)
    result = RunResult(stopped="completed", epochs_run=0, total_seconds=1.0)
    assert lifecycle.finish_run(session, run, 1, lease, result, None).status == RunStatus.succeeded
    assert lifecycle.finish_run(session, run, 1, lease, result, "late error").status == RunStatus.succeeded
    assert session.get(Run, run.id).error is None  # type: ignore[union-attr]


def test_a_run_restored_to_an_earlier_epoch_ends_with_that_epochs_accuracy(session: Session) -> None:
    run = new_run(session)
    lease = claim(session, run)
    for epoch, acc in ((1, 0.6), (2, 0.9), (3, 0.7)):
        lifecycle.record_epoch(session, run, 1, lease, EpochRecord.model_validate(epoch_record(epoch, test_acc=acc)))
    result = RunResult(
        stopped="early_stopped",
        stop_reason="test_acc did not improve...",
        epochs_run=3,
        total_seconds=1.0,
        final_epoch=2,
    )
    done = lifecycle.finish_run(session, run, 1, lease, result, None)
    assert (done.final_test_acc, done.best_test_acc, done.stop_reason) == (0.9, 0.9, "test_acc did not improve...")


def test_a_retried_run_has_a_fresh_budget_of_attempts(session: Session) -> None:
    run = new_run(session)
    lease = claim(session, run)
    failed = lifecycle.run_killed(session, run, 1, lease, 9, max_attempts=1)
    assert failed.status == RunStatus.failed and "attempt 1 of 1" in (failed.error or "")
    retried = lifecycle.retry_run(session, run)
    assert (retried.status, retried.attempt, retried.attempt_base, retried.error) == (RunStatus.queued, 1, 1, None)
    assert retried.last_kill_epoch is None  # killed at epoch 0 again is not "the same epoch as before the retry"
    lease = claim(session, run, "b:2")
    again = lifecycle.run_killed(session, run, 2, lease, 9, max_attempts=2)
    assert again.status == RunStatus.queued  # attempt 1 of 2 since the retry, though the run's second attempt
    lease = claim(session, run, "c:3")
    go_silent(session, run, 300)
    lifecycle.recover_lost_runs(session, lost_after_seconds=120, max_attempts=2)
    session.refresh(run)
    assert run.status == RunStatus.failed and "attempt 2 of 2" in (run.error or "")
    with pytest.raises(Conflict, match="only a failed or cancelled run can be retried"):
        lifecycle.retry_run(session, new_run(session))


def test_two_retries_at_once_queue_the_run_once(engine: Engine, session: Session) -> None:
    run = new_run(session)
    lifecycle.request_cancel(session, run)
    with Session(engine) as a, Session(engine) as b:
        seen_by_a, seen_by_b = a.get(Run, run.id), b.get(Run, run.id)
        assert seen_by_a is not None and seen_by_b is not None
        a.commit()
        b.commit()
        lifecycle.retry_run(a, seen_by_a)
        with pytest.raises(Conflict):
            lifecycle.retry_run(b, seen_by_b)
