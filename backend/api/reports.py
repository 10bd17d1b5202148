"""Routes the workers report through: claim a run, then epochs, heartbeats, and the end of it.

Authenticated with the worker token. Every report names the attempt it belongs to; a report for
an attempt that is no longer current (the run was requeued, or cancelled) gets 409 and the worker stops.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, status
from pydantic import BaseModel, Field

from backend import lifecycle
from backend.api.deps import FeedDep, RunDep, SessionDep, require_worker
from trainboard.reports import EpochRecord, Progress, RunInfo, RunResult

router = APIRouter(prefix="/api/runs/{run_id}", tags=["worker reports"], dependencies=[Depends(require_worker)])


class ClaimRequest(BaseModel):
    worker: str = Field(max_length=200, description="hostname:pid of the worker process")


class Claim(BaseModel):
    run_id: int
    attempt: int
    spec: dict[str, Any]


class EpochReport(BaseModel):
    attempt: int = Field(ge=1)
    record: EpochRecord


class ProgressReport(BaseModel):
    attempt: int = Field(ge=1)
    progress: Progress


class InfoReport(BaseModel):
    attempt: int = Field(ge=1)
    info: RunInfo


class FinishReport(BaseModel):
    attempt: int = Field(ge=1)
    result: RunResult | None = None
    error: str | None = Field(None, max_length=20_000)


@router.post("/claim", response_model=Claim)
def claim_run(run: RunDep, body: ClaimRequest, session: SessionDep, feed: FeedDep) -> Claim:
    """Atomic queued -> running. 409: another worker owns the run, or it was cancelled: the worker exits."""
    claimed = lifecycle.claim_run(session, run, body.worker)
    if claimed is None:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=f"run {run.id} is {run.status}, not queued")
    assert claimed.id is not None
    feed.notify(claimed.id)
    return Claim(run_id=claimed.id, attempt=claimed.attempt, spec=claimed.spec)


@router.post("/epochs")
def report_epoch(run: RunDep, body: EpochReport, session: SessionDep, feed: FeedDep) -> dict[str, bool]:
    created = lifecycle.record_epoch(session, run, body.attempt, body.record)
    if created:
        assert run.id is not None
        feed.notify(run.id)
    return {"created": created}


@router.post("/progress")
def report_progress(run: RunDep, body: ProgressReport, session: SessionDep, feed: FeedDep) -> dict[str, bool]:
    cancel = lifecycle.record_progress(session, run, body.attempt, body.progress)
    assert run.id is not None
    feed.notify(run.id)
    return {"cancel": cancel}


@router.post("/info")
def report_info(run: RunDep, body: InfoReport, session: SessionDep, feed: FeedDep) -> dict[str, bool]:
    lifecycle.record_info(session, run, body.attempt, body.info)
    assert run.id is not None
    feed.notify(run.id)
    return {"stored": True}


@router.post("/finish")
def report_finish(run: RunDep, body: FinishReport, session: SessionDep, feed: FeedDep) -> dict[str, str]:
    run = lifecycle.finish_run(session, run, body.attempt, body.result, body.error)
    assert run.id is not None
    feed.notify(run.id)
    return {"status": run.status.value}
