"""REST routes for runs: create, list, read, metrics, confusion matrix, cancel."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, status
from sqlmodel import col, select

from backend import lifecycle
from backend.dispatch import queue_run
from backend.api.deps import DispatcherDep, FeedDep, RunDep, SessionDep, require_user
from backend.models import ConfusionPublic, EpochMetric, MetricsPublic, RunPublic, RunsPublic
from trainboard.spec import CLASS_NAMES, RunSpec

router = APIRouter(prefix="/api/runs", tags=["runs"], dependencies=[Depends(require_user)])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=RunPublic)
def create_run(spec: RunSpec, session: SessionDep, feed: FeedDep, dispatcher: DispatcherDep) -> RunPublic:
    """Queue a run. The row is committed first; only its id goes to the broker."""
    return RunPublic.of(queue_run(session, spec, dispatcher, feed))


@router.get("", response_model=RunsPublic)
def read_runs(
    session: SessionDep,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> RunsPublic:
    """Runs, newest first."""
    runs, count = lifecycle.list_runs(session, offset, limit)
    return RunsPublic(data=[RunPublic.of(r) for r in runs], count=count)


@router.get("/{run_id}", response_model=RunPublic)
def read_run(run: RunDep) -> RunPublic:
    return RunPublic.of(run)


@router.get("/{run_id}/metrics", response_model=MetricsPublic)
def read_metrics(run: RunDep, session: SessionDep) -> MetricsPublic:
    """One record per finished epoch, in order."""
    rows = session.exec(select(EpochMetric).where(EpochMetric.run_id == run.id).order_by(col(EpochMetric.epoch)))
    records = [row.record() for row in rows]
    assert run.id is not None
    return MetricsPublic(run_id=run.id, data=records, count=len(records))


@router.get("/{run_id}/confusion", response_model=ConfusionPublic)
def read_confusion(run: RunDep) -> ConfusionPublic:
    """confusion[true][predicted] on the test set after the last epoch; null until the run has ended."""
    assert run.id is not None
    return ConfusionPublic(run_id=run.id, classes=CLASS_NAMES.get(run.dataset, []), matrix=run.confusion)


@router.post("/{run_id}/cancel", response_model=RunPublic)
def cancel_run(run: RunDep, session: SessionDep, feed: FeedDep) -> RunPublic:
    """A queued run is cancelled at once; a running one stops within a few seconds, keeping its finished epochs."""
    run = lifecycle.request_cancel(session, run)
    assert run.id is not None
    feed.notify(run.id)
    return RunPublic.of(run)
