"""A run's epochs: the one way they are read, and the one way a new attempt replaces them.

The rule: a run's `epoch_metric` rows are always exactly its current attempt's epochs. A claim of a later
attempt removes the rows it supersedes: those after the checkpoint it resumes from (every row when it has
none), so a reader never filters by attempt: every route,
page, export and stream reads a run's rows through `for_runs` / `for_run`.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, func
from sqlmodel import Session, col, select

from backend.tables import EpochMetric, Run
from trainboard.protocol import EpochRecord


def for_runs(session: Session, run_ids: Sequence[int], after: int = 0) -> dict[int, list[EpochRecord]]:
    """Each run's epochs after epoch `after`, in order: one query for all of them ({} entries for none)."""
    found: dict[int, list[EpochRecord]] = {run_id: [] for run_id in run_ids}
    if not run_ids:
        return found
    rows = session.exec(
        select(EpochMetric)
        .where(col(EpochMetric.run_id).in_(list(run_ids)), EpochMetric.epoch > after)
        .order_by(col(EpochMetric.run_id), col(EpochMetric.epoch))
    )
    for row in rows:
        found[row.run_id].append(row.record())
    return found


def for_run(session: Session, run_id: int, after: int = 0) -> list[EpochRecord]:
    return for_runs(session, [run_id], after)[run_id]


def record_at(session: Session, run: Run, epoch: int) -> EpochRecord | None:
    row = session.exec(select(EpochMetric).where(EpochMetric.run_id == run.id, EpochMetric.epoch == epoch)).first()
    return None if row is None else row.record()


def exists(session: Session, run: Run, epoch: int) -> bool:
    query = select(EpochMetric.id).where(EpochMetric.run_id == run.id, EpochMetric.epoch == epoch)
    return session.exec(query).first() is not None


def last_epoch(session: Session, run: Run) -> int | None:
    found: int | None = session.exec(select(func.max(EpochMetric.epoch)).where(EpochMetric.run_id == run.id)).one()
    return found


def contiguous_through(session: Session, run: Run) -> int:
    """The last epoch k such that epochs 1..k are all stored (0: not even the first)."""
    stored = session.exec(
        select(EpochMetric.epoch).where(EpochMetric.run_id == run.id).order_by(col(EpochMetric.epoch))
    )
    through = 0
    for epoch in stored:
        if epoch != through + 1:
            break
        through = epoch
    return through


def supersede(session: Session, run: Run, keep_through: int) -> None:
    """A new attempt takes over `run`: drop its epochs after `keep_through` (0: all of them). Not committed."""
    session.execute(delete(EpochMetric).where(col(EpochMetric.run_id) == run.id, col(EpochMetric.epoch) > keep_through))
