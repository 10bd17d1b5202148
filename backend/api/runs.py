"""REST routes for runs: create, list (filter, search, sort, pages), read, tags and notes, metrics,
confusion matrix, cancel."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, status

from backend.deps import (
    DispatcherDep,
    FeedDep,
    IdempotencyKey,
    RunDep,
    ServedDep,
    SessionDep,
    SettingsDep,
    require_user,
)
from backend.responses import CONFLICT, NOT_FOUND, REUSED_KEY, USER
from backend.services import idempotency, run_list, runs
from trainboard.placement import DEFAULT_QUEUE, QUEUE_PATTERN
from trainboard.protocol import MAX_ID
from trainboard.schemas import (
    MAX_PRIORITY,
    MIN_PRIORITY,
    TAG_PATTERN,
    Archived,
    ConfusionPublic,
    MetricsPublic,
    Placement,
    RunPublic,
    RunsPublic,
    RunStatus,
    RunUpdate,
)
from trainboard.spec import RunSpec
from trainboard.text import NUL_PATTERN

router = APIRouter(prefix="/api/runs", tags=["runs"], dependencies=[Depends(require_user)], responses=USER)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=RunPublic, responses=REUSED_KEY)
def create_run(
    spec: RunSpec,
    session: SessionDep,
    feed: FeedDep,
    dispatcher: DispatcherDep,
    served: ServedDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKey = None,
    queue: Annotated[
        str, Query(pattern=QUEUE_PATTERN, description="The queue it waits in (workers take it with `--queue NAME`)")
    ] = DEFAULT_QUEUE,
    priority: Annotated[
        int, Query(ge=MIN_PRIORITY, le=MAX_PRIORITY, description="Higher starts first in its queue")
    ] = 0,
) -> RunPublic:
    """Queue a run. The row is committed first; a dispatch round then sends its id to the broker when a live
    worker of its queue has a free slot (by priority, then round-robin across studies). 422 when its
    estimated training memory is over TRAINBOARD_MEMORY_BUDGET_GB (the message gives both), or when it names a
    custom model (`arch: custom`) that no live worker offers (the message lists those they do)."""
    asked = idempotency.request("runs", idempotency_key, spec)
    placement = Placement(queue=queue, priority=priority)
    run = runs.queue_run(
        session,
        spec,
        dispatcher,
        feed,
        asked,
        settings.memory_budget_gb,
        placement,
        lost_after_seconds=settings.lost_after_seconds,
    )
    return runs.public(run, served)


@router.get("", response_model=RunsPublic)
def read_runs(
    session: SessionDep,
    served: ServedDep,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    sort: Annotated[run_list.SortKey, Query(description="A field; '-field' sorts descending")] = "-created",
    status: RunStatus | None = None,
    dataset: Annotated[str | None, Query(max_length=40, pattern=NUL_PATTERN)] = None,
    arch: Annotated[str | None, Query(max_length=40, pattern=NUL_PATTERN)] = None,
    tag: Annotated[str | None, Query(pattern=TAG_PATTERN)] = None,
    q: Annotated[
        str | None, Query(max_length=200, pattern=NUL_PATTERN, description="Text in the name or the notes")
    ] = None,
    study: Annotated[int | None, Query(ge=1, le=MAX_ID, description="Only the runs of this study")] = None,
    archived: Annotated[Archived, Query(description="Archived runs: left out, included, or only them")] = "exclude",
) -> RunsPublic:
    """Runs matching the filters, one page at a time (newest first by default); `count` is all that match."""
    where = run_list.RunFilter(status=status, dataset=dataset, arch=arch, tag=tag, q=q, study=study, archived=archived)
    found, count = run_list.list_runs(session, where, sort, offset, limit)
    return RunsPublic(data=[runs.public(r, served) for r in found], count=count)


@router.patch("/{run_id}", response_model=RunPublic, responses=NOT_FOUND)
def update_run(run: RunDep, body: RunUpdate, session: SessionDep, feed: FeedDep) -> RunPublic:
    """Edit the run's tags and notes (what the runs list filters and searches on)."""
    return runs.public(runs.update_run(session, run, body, feed))


@router.get("/{run_id}", response_model=RunPublic, responses=NOT_FOUND)
def read_run(run: RunDep, served: ServedDep) -> RunPublic:
    return runs.public(run, served)


@router.get("/{run_id}/metrics", response_model=MetricsPublic, responses=NOT_FOUND)
def read_metrics(run: RunDep, session: SessionDep) -> MetricsPublic:
    """One record per finished epoch, in order."""
    return runs.metrics(session, run)


@router.get("/{run_id}/confusion", response_model=ConfusionPublic, responses=NOT_FOUND)
def read_confusion(run: RunDep, session: SessionDep) -> ConfusionPublic:
    """confusion[true][predicted] on the test set after the last epoch; null until the run has ended."""
    return runs.confusion(session, run)


@router.post("/{run_id}/cancel", response_model=RunPublic, responses=NOT_FOUND | CONFLICT)
def cancel_run(run: RunDep, session: SessionDep, feed: FeedDep) -> RunPublic:
    """A queued run is cancelled at once; a running one stops within a few seconds, keeping its finished epochs."""
    return runs.public(runs.cancel_run(session, run, feed))
