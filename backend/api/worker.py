"""The routes workers call (trainboard/protocol.py): claim a run, then its info, epochs, heartbeats, and the
end of it.

Authenticated with the worker token. Every message names the attempt it belongs to; a message for
an attempt that is no longer current (the run was requeued, or cancelled) gets 409 and the worker stops.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends

from backend.deps import FeedDep, RunDep, SessionDep, require_worker
from backend.services import lifecycle
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
    ProgressMessage,
)

router = APIRouter(prefix="/api/runs/{run_id}", tags=["worker"], dependencies=[Depends(require_worker)])


@router.post("/claim", response_model=Claim)
def claim_run(run: RunDep, body: ClaimRequest, session: SessionDep, feed: FeedDep) -> Claim:
    """Atomic queued -> running. 409: another worker owns the run, or it was cancelled: the worker exits."""
    claimed = lifecycle.claim_run(session, run, body.worker)
    if claimed is None:
        raise Conflict(f"run {run.id} is {run.status}, not queued")
    assert claimed.id is not None
    feed.notify(claimed.id)
    return Claim(run_id=claimed.id, attempt=claimed.attempt, spec=claimed.spec)


@router.post("/epochs", response_model=EpochAnswer)
def report_epoch(run: RunDep, body: EpochMessage, session: SessionDep, feed: FeedDep) -> EpochAnswer:
    created = lifecycle.record_epoch(session, run, body.attempt, body.record)
    if created:
        assert run.id is not None
        feed.notify(run.id)
    return EpochAnswer(created=created)


@router.post("/progress", response_model=HeartbeatAnswer)
def report_progress(run: RunDep, body: ProgressMessage, session: SessionDep, feed: FeedDep) -> HeartbeatAnswer:
    cancel = lifecycle.record_progress(session, run, body.attempt, body.progress)
    assert run.id is not None
    feed.notify(run.id)
    return HeartbeatAnswer(cancel=cancel)


@router.post("/info", response_model=InfoAnswer)
def report_info(run: RunDep, body: InfoMessage, session: SessionDep, feed: FeedDep) -> InfoAnswer:
    lifecycle.record_info(session, run, body.attempt, body.info)
    assert run.id is not None
    feed.notify(run.id)
    return InfoAnswer(stored=True)


@router.post("/finish", response_model=FinishAnswer)
def report_finish(run: RunDep, body: FinishMessage, session: SessionDep, feed: FeedDep) -> FinishAnswer:
    run = lifecycle.finish_run(session, run, body.attempt, body.result, body.error)
    assert run.id is not None
    feed.notify(run.id)
    return FinishAnswer(status=run.status.value)
