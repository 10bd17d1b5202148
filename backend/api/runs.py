"""REST routes for runs: create, list (filter, search, sort, pages), read, tags and notes, metrics,
confusion matrix, cancel."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, status
from pydantic import BaseModel, Field, StringConstraints
from sqlmodel import col, select

from backend import lifecycle, run_queries
from backend.api.deps import DispatcherDep, FeedDep, RunDep, SessionDep, require_user
from backend.dispatch import queue_run
from backend.models import ConfusionPublic, EpochMetric, MetricsPublic, RunPublic, RunsPublic, RunStatus
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
    sort: Annotated[run_queries.SortKey, Query(description="A field; '-field' sorts descending")] = "-created",
    status: RunStatus | None = None,
    dataset: Annotated[str | None, Query(max_length=40)] = None,
    arch: Annotated[str | None, Query(max_length=40)] = None,
    tag: Annotated[str | None, Query(pattern=run_queries.TAG_PATTERN)] = None,
    q: Annotated[str | None, Query(max_length=200, description="Text in the name or the notes")] = None,
    study: Annotated[int | None, Query(ge=1, le=2**62, description="Only the runs of this study")] = None,
) -> RunsPublic:
    """Runs matching the filters, one page at a time (newest first by default); `count` is all that match."""
    where = run_queries.RunFilter(status=status, dataset=dataset, arch=arch, tag=tag, q=q, study=study)
    runs, count = run_queries.list_runs(session, where, sort, offset, limit)
    return RunsPublic(data=[RunPublic.of(r) for r in runs], count=count)


class RunUpdate(BaseModel):
    tags: list[Annotated[str, StringConstraints(pattern=run_queries.TAG_PATTERN)]] | None = Field(
        None, max_length=20, description="Replaces the run's tags: lowercase words of letters, digits, _ . -"
    )
    notes: str | None = Field(None, max_length=20_000)


@router.patch("/{run_id}", response_model=RunPublic)
def update_run(run: RunDep, body: RunUpdate, session: SessionDep, feed: FeedDep) -> RunPublic:
    """Edit the run's tags and notes (what the runs list filters and searches on)."""
    if body.tags is not None:
        run.tags = sorted(set(body.tags))
    if body.notes is not None:
        run.notes = body.notes
    session.add(run)
    session.commit()
    session.refresh(run)
    assert run.id is not None
    feed.notify(run.id)
    return RunPublic.of(run)


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
