"""Cleaning up and trying again: deleting, archiving and restoring runs and studies, and retrying runs.

The rules live here once, for the REST routes and the pages alike: a running run cannot be deleted (cancel
it first); a queued one can (the worker that later receives its id finds no run and drops it); only a failed
or cancelled run is retried (backend/services/lifecycle.py retry_run). Rows go in one transaction; a deleted
run's artifact folder is removed after the commit (a crash in between leaves files that `trainboard gc`
removes, never a row without its file). Every change is announced on the change feed, so open pages follow.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import delete, update
from sqlmodel import Session, col, select

from backend.db import utcnow
from backend.services import artifacts, lifecycle
from backend.services.changes import ChangeFeed
from backend.services.dispatch import Dispatcher
from backend.services.errors import Conflict
from backend.tables import Artifact, EpochMetric, Run, Study
from trainboard.schemas import RetryFrom, RunsChanged, RunStatus


def _ids(values: Sequence[int]) -> list[int]:
    return list(dict.fromkeys(values))  # de-duplicated, in the order given


def _found(session: Session, run_ids: Sequence[int]) -> list[Run]:
    return list(session.exec(select(Run).where(col(Run.id).in_(list(run_ids))).order_by(col(Run.id))).all())


def _words(run_ids: Sequence[int | None]) -> str:
    ids = [str(i) for i in run_ids if i is not None]
    return f"run {ids[0]} is" if len(ids) == 1 else f"runs {', '.join(ids)} are"


def check_deletable(runs: Sequence[Run]) -> None:
    """Conflict naming every running run of `runs`: it must be cancelled (and have stopped) first."""
    running = [run.id for run in runs if run.status == RunStatus.running]
    if running:
        raise Conflict(f"{_words(running)} running: cancel {'it' if len(running) == 1 else 'them'} first")


def _delete_rows(session: Session, run_ids: list[int]) -> None:
    """Delete the runs' rows (their epochs and artifact rows first: no reliance on the database's cascade).
    Not committed. A run claimed by a worker since it was checked is left alone: Conflict, nothing deleted."""
    if not run_ids:
        return
    session.execute(delete(EpochMetric).where(col(EpochMetric.run_id).in_(run_ids)))
    session.execute(delete(Artifact).where(col(Artifact.run_id).in_(run_ids)))
    result = session.execute(delete(Run).where(col(Run.id).in_(run_ids), col(Run.status) != RunStatus.running))
    if result.rowcount != len(run_ids):  # type: ignore[attr-defined]
        session.rollback()
        raise Conflict(f"{_words(run_ids)} being deleted, but one of them started meanwhile: cancel it first")


def _gone(root: Path, feed: ChangeFeed, run_ids: Sequence[int]) -> None:
    artifacts.remove_run_files(root, run_ids)
    for run_id in run_ids:
        feed.notify(run_id)  # the runs list drops the row; an open run page ends its stream


def delete_runs(session: Session, root: Path, feed: ChangeFeed, run_ids: Sequence[int]) -> RunsChanged:
    """Delete the runs of `run_ids`, with their epochs and artifacts; all or nothing: Conflict if any is running.
    Ids that name no run are listed as not found (a delete repeated after success changes nothing)."""
    asked = _ids(run_ids)
    found = _found(session, asked)
    check_deletable(found)
    ids = [run.id for run in found if run.id is not None]
    _delete_rows(session, ids)
    session.commit()
    _gone(root, feed, ids)
    return RunsChanged(run_ids=ids, not_found=[i for i in asked if i not in set(ids)])


def delete_study(session: Session, root: Path, feed: ChangeFeed, study: Study) -> RunsChanged:
    """Delete the study and all of its runs (Conflict, nothing deleted, if any of them is running)."""
    runs = list(session.exec(select(Run).where(Run.study_id == study.id)).all())
    check_deletable(runs)
    ids = [run.id for run in runs if run.id is not None]
    _delete_rows(session, ids)
    session.delete(study)
    session.commit()
    _gone(root, feed, ids)
    return RunsChanged(run_ids=ids)


def archive_runs(session: Session, feed: ChangeFeed, run_ids: Sequence[int], archived: bool) -> RunsChanged:
    """Archive (hide from the default lists) or restore the runs of `run_ids`; any status. Archiving an
    archived run keeps the time it was first archived."""
    asked = _ids(run_ids)
    ids = [run.id for run in _found(session, asked) if run.id is not None]
    _set_archived(session, ids, archived)
    session.commit()
    for run_id in ids:
        feed.notify(run_id)
    return RunsChanged(run_ids=ids, not_found=[i for i in asked if i not in set(ids)])


def _set_archived(session: Session, run_ids: list[int], archived: bool) -> None:
    if not run_ids:
        return
    query = update(Run).where(col(Run.id).in_(run_ids))
    if archived:
        session.execute(query.where(col(Run.archived_at).is_(None)).values(archived_at=utcnow()))
    else:
        session.execute(query.values(archived_at=None))


def archive_study(session: Session, feed: ChangeFeed, study: Study, archived: bool) -> Study:
    """Archive or restore the study and every one of its runs, together."""
    ids = [run_id for run_id in session.exec(select(Run.id).where(Run.study_id == study.id)).all() if run_id]
    if archived and study.archived_at is None:
        study.archived_at = utcnow()
    elif not archived:
        study.archived_at = None
    session.add(study)
    _set_archived(session, ids, archived)
    session.commit()
    session.refresh(study)
    for run_id in ids:
        feed.notify(run_id)
    return study


def retry_run(
    session: Session, root: Path, dispatcher: Dispatcher, feed: ChangeFeed, run: Run, start: RetryFrom = "checkpoint"
) -> Run:
    """Queue a failed or cancelled run again (Conflict otherwise) and run a dispatch round. From its latest
    checkpoint when it has one; `start="start"` forgets its checkpoints (their files go after the commit)
    so it starts over."""
    assert run.id is not None
    run_id = run.id

    def forget_checkpoints() -> None:
        artifacts.drop_checkpoints(session, root, run_id)

    run = lifecycle.retry_run(session, run, forget_checkpoints if start == "start" else None)
    if start == "start":
        artifacts.remove_unlisted(session, root, run_id)
    dispatcher.request()
    feed.notify(run_id)
    return run


def retry_failed(
    session: Session,
    root: Path,
    dispatcher: Dispatcher,
    feed: ChangeFeed,
    study: Study,
    start: RetryFrom = "checkpoint",
) -> RunsChanged:
    """Retry every failed run of the study (not the cancelled ones: a cancel was asked for); the ids queued."""
    failed = session.exec(
        select(Run).where(Run.study_id == study.id, Run.status == RunStatus.failed).order_by(col(Run.id))
    ).all()
    queued: list[int] = []
    for run in failed:
        try:
            retry_run(session, root, dispatcher, feed, run, start)
        except Conflict:  # retried (or deleted) by someone else meanwhile
            continue
        assert run.id is not None
        queued.append(run.id)
    return RunsChanged(run_ids=queued)
