"""The routes workers call (trainboard/protocol.py): claim a run, then its info, epochs, heartbeats, and the
end of it.

Authenticated with the worker token. Every message names the attempt it belongs to; a message for
an attempt that is no longer current (the run was requeued, or cancelled) gets 409 and the worker stops.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends

from backend.deps import DispatcherDep, FeedDep, RunDep, SessionDep, SettingsDep, require_worker
from backend.responses import COMMON, CONFLICT, NOT_FOUND
from backend.services import artifacts, lifecycle
from backend.services.errors import Conflict
from trainboard.protocol import (
    Claim,
    ClaimRequest,
    EpochAnswer,
    EpochMessage,
    FinishAnswer,
    FinishMessage,
    HeartbeatAnswer,
    InfoAnswer,
    InfoMessage,
    KilledMessage,
    ProgressMessage,
)
from trainboard.schemas import RunStatus

router = APIRouter(
    prefix="/api/runs/{run_id}",
    tags=["worker"],
    dependencies=[Depends(require_worker)],
    responses=COMMON | NOT_FOUND | CONFLICT,
)


@router.post("/claim", response_model=Claim)
def claim_run(run: RunDep, body: ClaimRequest, session: SessionDep, feed: FeedDep, settings: SettingsDep) -> Claim:
    """Atomic queued -> running. 409: another worker owns the run, or it was cancelled: the worker exits."""
    claimed = lifecycle.claim_run(session, run, body.worker, settings.artifacts_dir)
    if claimed is None:
        raise Conflict(f"run {run.id} is {run.status}, not queued")
    assert claimed.run.id is not None
    artifacts.remove_unlisted(session, settings.artifacts_dir, claimed.run.id)  # the files the new attempt dropped
    feed.notify(claimed.run.id)
    return Claim(
        run_id=claimed.run.id,
        attempt=claimed.run.attempt,
        lease=claimed.lease,
        spec=claimed.run.spec,
        resume=claimed.resume,
    )


@router.post("/epochs", response_model=EpochAnswer)
def report_epoch(run: RunDep, body: EpochMessage, session: SessionDep, feed: FeedDep) -> EpochAnswer:
    created = lifecycle.record_epoch(session, run, body.attempt, body.lease, body.record)
    if created:
        assert run.id is not None
        feed.notify(run.id)
    return EpochAnswer(created=created)


@router.post("/progress", response_model=HeartbeatAnswer)
def report_progress(run: RunDep, body: ProgressMessage, session: SessionDep, feed: FeedDep) -> HeartbeatAnswer:
    cancel = lifecycle.record_progress(session, run, body.attempt, body.lease, body.progress)
    assert run.id is not None
    feed.notify(run.id)
    return HeartbeatAnswer(cancel=cancel)


@router.post("/info", response_model=InfoAnswer)
def report_info(run: RunDep, body: InfoMessage, session: SessionDep, feed: FeedDep) -> InfoAnswer:
    lifecycle.record_info(session, run, body.attempt, body.lease, body.info)
    assert run.id is not None
    feed.notify(run.id)
    return InfoAnswer(stored=True)


@router.post("/finish", response_model=FinishAnswer)
def report_finish(
    run: RunDep, body: FinishMessage, session: SessionDep, feed: FeedDep, dispatcher: DispatcherDep
) -> FinishAnswer:
    """The attempt ended (succeeded, failed, cancelled): its slot is free, so a dispatch round sends the next run."""
    run = lifecycle.finish_run(session, run, body.attempt, body.lease, body.result, body.error)
    assert run.id is not None
    feed.notify(run.id)
    dispatcher.request()
    return FinishAnswer(status=run.status.value)


@router.post("/killed", response_model=FinishAnswer)
def report_killed(
    run: RunDep,
    body: KilledMessage,
    session: SessionDep,
    feed: FeedDep,
    dispatcher: DispatcherDep,
    settings: SettingsDep,
) -> FinishAnswer:
    """From a worker's long-lived process: the run's own process was killed by a signal. The run is requeued,
    or failed when it was killed at the same epoch before; the error says so (SIGKILL: out of memory?)."""
    run = lifecycle.run_killed(session, run, body.attempt, body.lease, body.signal, settings.max_attempts)
    assert run.id is not None
    if run.status == RunStatus.queued:
        dispatcher.request()
    feed.notify(run.id)
    return FinishAnswer(status=run.status.value)
