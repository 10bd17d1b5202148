"""Studies in the database: queueing one with all of its runs, reading them (a page of studies, one with its
runs and groups, status counts), and their public shapes. backend/services/study_plans.py turns a posted
study into the runs to queue; backend/services/study_reports.py writes its report."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func
from sqlmodel import Session, col, select

from backend.services import idempotency, runs, statistics
from backend.services.changes import ChangeFeed
from backend.services.dispatch import Dispatcher
from backend.services.errors import Conflict, NotFound
from backend.services.run_list import archived_clauses
from backend.services.scheduling import Served
from backend.services.study_plans import ResolvedStudy
from backend.tables import Run, Study
from trainboard.protocol import MAX_ID
from trainboard.schemas import (
    Archived,
    RunFailure,
    RunPublic,
    RunStatus,
    StatusCounts,
    StudyDetail,
    StudyGroup,
    StudyPublic,
)


def get_study(session: Session, study_id: int) -> Study:
    study = session.get(Study, study_id) if 1 <= study_id <= MAX_ID else None  # no bigger id exists
    if study is None:
        raise NotFound(f"study {study_id} not found")
    return study


def public(study: Study, counts: dict[RunStatus, int]) -> StudyPublic:
    assert study.id is not None
    return StudyPublic(
        id=study.id,
        name=study.name,
        description=study.description,
        preset=study.preset,
        overrides=study.overrides,
        created_at=study.created_at,
        runs=sum(counts.values()),
        counts=StatusCounts(**{s.value: n for s, n in counts.items()}),
        archived_at=study.archived_at,
    )


def queue_study(
    session: Session,
    resolved: ResolvedStudy,
    dispatcher: Dispatcher,
    feed: ChangeFeed,
    idempotent: idempotency.Request | None = None,
) -> Study:
    """Store the study with all of its runs in one transaction, then send the runs to the broker. A retried
    request (the same idempotency key) gets the study the first one made."""
    made = idempotency.earlier(session, idempotent)
    if made is not None and made.study_id is not None:
        earlier = session.get(Study, made.study_id)
        if earlier is None:
            raise Conflict(
                "the study the first request with this Idempotency-Key made was deleted since: use a new key"
            )
        return earlier
    study = Study(
        name=resolved.name,
        description=resolved.description,
        preset=resolved.preset,
        overrides=resolved.overrides,
        reported={label: r.model_dump() for label, r in resolved.reported.items()},
    )
    queued = runs.queue_runs(
        session,
        resolved.specs,
        dispatcher,
        feed,
        study=study,
        labels=resolved.labels,
        repeats=resolved.repeats,
        idempotent=idempotent,
        placement=resolved.placement,
    )
    if queued and queued[0].study_id is not None and queued[0].study_id != study.id:  # a concurrent retry won
        return get_study(session, queued[0].study_id)
    return study


def list_studies(
    session: Session, offset: int, limit: int, archived: Archived = "exclude"
) -> tuple[list[StudyPublic], int]:
    """One page of studies, newest first, with their status counts, and how many there are."""
    where = archived_clauses(Study, archived)
    count = session.exec(select(func.count()).select_from(Study).where(*where)).one()
    query = select(Study).where(*where).order_by(col(Study.id).desc()).offset(offset).limit(limit)
    studies = list(session.exec(query).all())
    counts = status_counts(session, [s.id for s in studies if s.id is not None])
    return [public(s, counts[s.id]) for s in studies if s.id is not None], count


def study_runs(session: Session, study_id: int) -> list[Run]:
    """A study's runs in the order of its variants (a label's repeats in seed order)."""
    return list(session.exec(select(Run).where(Run.study_id == study_id).order_by(col(Run.id))).all())


def status_counts(session: Session, study_ids: Sequence[int]) -> dict[int, dict[RunStatus, int]]:
    """How many runs of each study are in each status (every status present, zeros included): one query."""
    counts = {study_id: dict.fromkeys(RunStatus, 0) for study_id in study_ids}
    if not study_ids:
        return counts
    rows = session.exec(
        select(Run.study_id, Run.status, func.count())
        .where(col(Run.study_id).in_(study_ids))
        .group_by(col(Run.study_id), col(Run.status))
    ).all()
    for study_id, run_status, count in rows:
        assert study_id is not None
        counts[study_id][RunStatus(run_status)] = count
    return counts


def study_groups(members: Sequence[RunPublic]) -> list[StudyGroup]:
    """One group per label, in the order of first appearance, with mean ± std over its counted runs."""
    groups = []
    for label, runs_of_label in statistics.group_by_label(members, lambda run: run.label or run.name).items():
        use = [run.summary for run in statistics.counted(runs_of_label, lambda run: run.status)]
        groups.append(
            StudyGroup(
                label=label,
                run_ids=[run.id for run in runs_of_label],
                succeeded=sum(run.status == RunStatus.succeeded for run in runs_of_label),
                best_test_acc=statistics.spread(s.best_test_acc for s in use),
                final_test_acc=statistics.spread(s.final_test_acc for s in use),
                total_seconds=statistics.spread(s.total_seconds for s in use),
            )
        )
    return groups


def failure_reason(error: str | None) -> str:
    """A failed run's reason in one line: the first non-empty line of its error."""
    return next((line.strip() for line in (error or "").splitlines() if line.strip()), "no error recorded")


def failures(members: Sequence[RunPublic]) -> list[RunFailure]:
    """The study's failed runs with their reasons, in the study's order (the study page and the report list them)."""
    return [
        RunFailure(run_id=run.id, label=run.label or run.name, reason=failure_reason(run.error))
        for run in members
        if run.status == RunStatus.failed
    ]


def none_succeeded(members: Sequence[RunPublic]) -> bool:
    """Every run of the study has ended and none succeeded: the pages say so instead of drawing empty charts."""
    return (
        bool(members)
        and all(run.status.terminal for run in members)
        and not any(run.status == RunStatus.succeeded for run in members)
    )


def study_public(session: Session, study: Study) -> StudyPublic:
    """One study's public shape, with its status counts."""
    assert study.id is not None
    return public(study, status_counts(session, [study.id])[study.id])


def study_detail(session: Session, study: Study, served: Served | None = None) -> StudyDetail:
    assert study.id is not None
    members = [runs.public(run, served) for run in study_runs(session, study.id)]
    summary = study_public(session, study)
    return StudyDetail(**summary.model_dump(), data=members, reported=study.reported, groups=study_groups(members))
