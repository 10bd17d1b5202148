"""REST routes that clean up and try again: delete, archive and restore runs and studies, retry runs.

Each calls backend/services/management.py, where the rules are (a running run is not deleted; only a
failed or cancelled run is retried)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status

from backend.deps import DispatcherDep, FeedDep, RunDep, SessionDep, SettingsDep, StudyDep, require_user
from backend.responses import NOT_FOUND, NOT_RETRYABLE, RUNNING, USER
from backend.services import management, runs, studies
from trainboard.schemas import RetryFrom, RunIds, RunPublic, RunsChanged, StudyPublic

router = APIRouter(prefix="/api", dependencies=[Depends(require_user)], responses=USER)

From = Annotated[
    RetryFrom,
    Query(
        alias="from",
        description="checkpoint: resume from the run's latest checkpoint when it has one; start: start over",
    ),
]


@router.delete("/runs/{run_id}", status_code=status.HTTP_204_NO_CONTENT, responses=NOT_FOUND | RUNNING, tags=["runs"])
def delete_run(run: RunDep, session: SessionDep, feed: FeedDep, settings: SettingsDep) -> Response:
    """Delete the run with its epochs and files. 409 while it is running: cancel it first. A queued run is
    deleted at once (a worker that receives it later finds nothing to do)."""
    assert run.id is not None
    management.delete_runs(session, settings.artifacts_dir, feed, [run.id])
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/runs/delete", response_model=RunsChanged, responses=RUNNING, tags=["runs"])
def delete_runs(body: RunIds, session: SessionDep, feed: FeedDep, settings: SettingsDep) -> RunsChanged:
    """Delete several runs (up to 500), all or nothing: 409, naming them, if any is running. Ids that name
    no run come back in `not_found`."""
    return management.delete_runs(session, settings.artifacts_dir, feed, body.run_ids)


@router.post("/runs/archive", response_model=RunsChanged, tags=["runs"])
def archive_runs(body: RunIds, session: SessionDep, feed: FeedDep) -> RunsChanged:
    """Archive several runs: hidden from the runs list (unless `archived=include` or `only`), still readable."""
    return management.archive_runs(session, feed, body.run_ids, archived=True)


@router.post("/runs/restore", response_model=RunsChanged, tags=["runs"])
def restore_runs(body: RunIds, session: SessionDep, feed: FeedDep) -> RunsChanged:
    """Bring archived runs back into the default runs list."""
    return management.archive_runs(session, feed, body.run_ids, archived=False)


@router.post("/runs/{run_id}/archive", response_model=RunPublic, responses=NOT_FOUND, tags=["runs"])
def archive_run(run: RunDep, session: SessionDep, feed: FeedDep) -> RunPublic:
    """Hide the run from the default runs list; its page and `GET /api/runs/{id}` still show it."""
    assert run.id is not None
    management.archive_runs(session, feed, [run.id], archived=True)
    session.refresh(run)
    return runs.public(run)


@router.post("/runs/{run_id}/restore", response_model=RunPublic, responses=NOT_FOUND, tags=["runs"])
def restore_run(run: RunDep, session: SessionDep, feed: FeedDep) -> RunPublic:
    assert run.id is not None
    management.archive_runs(session, feed, [run.id], archived=False)
    session.refresh(run)
    return runs.public(run)


@router.post("/runs/{run_id}/retry", response_model=RunPublic, responses=NOT_FOUND | NOT_RETRYABLE, tags=["runs"])
def retry_run(
    run: RunDep,
    session: SessionDep,
    feed: FeedDep,
    dispatcher: DispatcherDep,
    settings: SettingsDep,
    start: From = "checkpoint",
) -> RunPublic:
    """Queue a failed or cancelled run again: a new attempt of the same run, with a fresh budget of lost-run
    attempts, resuming from its latest checkpoint when it has one (`?from=start`: over from epoch 1)."""
    return runs.public(management.retry_run(session, settings.artifacts_dir, dispatcher, feed, run, start))


@router.delete(
    "/studies/{study_id}", status_code=status.HTTP_204_NO_CONTENT, responses=NOT_FOUND | RUNNING, tags=["studies"]
)
def delete_study(study: StudyDep, session: SessionDep, feed: FeedDep, settings: SettingsDep) -> Response:
    """Delete the study and all of its runs; 409, naming them, while any of them is running."""
    management.delete_study(session, settings.artifacts_dir, feed, study)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/studies/{study_id}/archive", response_model=StudyPublic, responses=NOT_FOUND, tags=["studies"])
def archive_study(study: StudyDep, session: SessionDep, feed: FeedDep) -> StudyPublic:
    """Archive the study and its runs: hidden from the studies and runs lists, still reachable by URL."""
    return studies.study_public(session, management.archive_study(session, feed, study, archived=True))


@router.post("/studies/{study_id}/restore", response_model=StudyPublic, responses=NOT_FOUND, tags=["studies"])
def restore_study(study: StudyDep, session: SessionDep, feed: FeedDep) -> StudyPublic:
    """Restore the study and its runs."""
    return studies.study_public(session, management.archive_study(session, feed, study, archived=False))


@router.post("/studies/{study_id}/retry", response_model=RunsChanged, responses=NOT_FOUND, tags=["studies"])
def retry_study(
    study: StudyDep,
    session: SessionDep,
    feed: FeedDep,
    dispatcher: DispatcherDep,
    settings: SettingsDep,
    start: From = "checkpoint",
) -> RunsChanged:
    """Retry every failed run of the study (see `POST /api/runs/{id}/retry`); `run_ids`: the runs queued."""
    return management.retry_failed(session, settings.artifacts_dir, dispatcher, feed, study, start)
