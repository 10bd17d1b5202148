"""What the runs list asks for: filter, free-text search, sort and paging, done in the database.

Every filter is an indexed column or a bounded text match, and every page is one query for the rows
plus one count, so the list stays fast with thousands of runs (benchmarks/runs_list.py measures it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import String, cast, func
from sqlmodel import Session, col, select

from backend.tables import Run, Study
from trainboard.schemas import Archived, RunStatus

# A field name sorts ascending; with a leading "-", descending. The list's default: "-created".
SortKey = Literal[
    "created",
    "-created",
    "name",
    "-name",
    "status",
    "-status",
    "best_test_acc",
    "-best_test_acc",
    "total_seconds",
    "-total_seconds",
]
_SORT_COLUMNS: dict[str, Any] = {
    "created": Run.id,
    "name": Run.name,
    "status": Run.status,
    "best_test_acc": Run.best_test_acc,
    "total_seconds": Run.total_seconds,
}


def archived_clauses(table: type[Run] | type[Study], archived: Archived) -> list[Any]:
    """What `archived` keeps of the runs or studies: not archived ones (the default), all, or only archived ones."""
    if archived == "exclude":
        return [col(table.archived_at).is_(None)]
    if archived == "only":
        return [col(table.archived_at).is_not(None)]
    return []


@dataclass(frozen=True)
class RunFilter:
    status: RunStatus | None = None
    dataset: str | None = None
    arch: str | None = None
    tag: str | None = None
    q: str | None = None  # in the name or the notes, case-insensitive
    study: int | None = None
    archived: Archived = "exclude"

    def where(self) -> list[Any]:
        clauses: list[Any] = archived_clauses(Run, self.archived)
        if self.status is not None:
            clauses.append(col(Run.status) == self.status)
        if self.dataset:
            clauses.append(col(Run.dataset) == self.dataset)
        if self.arch:
            clauses.append(col(Run.arch) == self.arch)
        if self.study is not None:
            clauses.append(col(Run.study_id) == self.study)
        if self.tag:
            # Tags are a JSON list of [a-z0-9_.-] words: '"tag"' in its text is exactly that element.
            clauses.append(cast(Run.tags, String).contains(f'"{self.tag}"'))
        if self.q:
            needle = self.q.lower()
            clauses.append(func.lower(Run.name).contains(needle) | func.lower(Run.notes).contains(needle))
        return clauses


def list_runs(session: Session, where: RunFilter, sort: SortKey, offset: int, limit: int) -> tuple[list[Run], int]:
    """One page of runs and how many match in all."""
    clauses = where.where()
    count = session.exec(select(func.count()).select_from(Run).where(*clauses)).one()
    column = _SORT_COLUMNS[sort.removeprefix("-")]
    # Missing values (a run without an accuracy yet) sort last either way.
    order = column.desc().nulls_last() if sort.startswith("-") else column.asc().nulls_last()
    query = select(Run).where(*clauses).order_by(order, col(Run.id).desc()).offset(offset).limit(limit)
    return list(session.exec(query).all()), count


def newest_run_id(session: Session) -> int:
    """The highest run id (0 with no runs): a live page takes a run above it as new."""
    return session.exec(select(func.max(Run.id))).one() or 0
