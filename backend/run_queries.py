"""What the runs list asks for: filter, free-text search, sort and paging, done in the database.

Every filter is an indexed column or a bounded text match, and every page is one query for the rows
plus one count, so the list stays fast with thousands of runs (benchmarks/runs_list.py measures it).
"""

from __future__ import annotations

import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal, TypeVar
from urllib.parse import urlencode

from sqlalchemy import String, cast, func
from sqlmodel import Session, col, select

from backend.models import Run, RunStatus

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
TAG_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,39}$"


T = TypeVar("T")


@dataclass(frozen=True)
class RunFilter:
    status: RunStatus | None = None
    dataset: str | None = None
    arch: str | None = None
    tag: str | None = None
    q: str | None = None  # in the name or the notes, case-insensitive
    study: int | None = None

    def where(self) -> list[Any]:
        clauses: list[Any] = []
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


SORT_KEYS: tuple[str, ...] = typing.get_args(SortKey)
PAGE_SIZES = (50, 100, 200)
_MAX_PAGE = 10**7


@dataclass(frozen=True)
class RunsView:
    """What the runs list page shows, as its URL says: filters, sort, page and page size.

    Read from the query string with the API's rules; a value the API would refuse falls back to its
    default here (a page never answers 422 or 500 for a hand-edited link).
    """

    filter: RunFilter = RunFilter()
    sort: SortKey = "-created"
    page: int = 1
    per_page: int = PAGE_SIZES[0]

    @classmethod
    def from_query(cls, params: Mapping[str, str]) -> RunsView:
        def text(name: str, max_length: int) -> str | None:
            value = params.get(name, "").strip()
            return value if value and len(value) <= max_length else None

        status = params.get("status", "")
        tag = params.get("tag", "").strip().lower()
        sort = params.get("sort", "")
        return cls(
            filter=RunFilter(
                status=RunStatus(status) if status in RunStatus._value2member_map_ else None,
                dataset=text("dataset", 40),
                arch=text("arch", 40),
                tag=tag if re.fullmatch(TAG_PATTERN, tag) else None,
                q=text("q", 200),
                study=_whole(params.get("study"), 1, 2**62, None),
            ),
            sort=typing.cast(SortKey, sort) if sort in SORT_KEYS else "-created",
            page=_whole(params.get("page"), 1, _MAX_PAGE, 1),
            per_page=next((s for s in PAGE_SIZES if params.get("per_page") == str(s)), PAGE_SIZES[0]),
        )

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page

    @property
    def filtered(self) -> bool:
        return any(getattr(self.filter, f.name) for f in fields(self.filter))

    @property
    def is_default_listing(self) -> bool:
        """Newest first, page 1, nothing filtered: the only view a brand-new run belongs at the top of."""
        return self.sort == "-created" and self.page == 1 and not self.filtered

    def api_query(self) -> str:
        """The same rows from `GET /api/runs` (what the page re-reads after a `reload` event)."""
        pairs = {f.name: getattr(self.filter, f.name) for f in fields(self.filter)}
        pairs |= {"sort": self.sort, "offset": self.offset, "limit": self.per_page}
        return urlencode([(k, str(v)) for k, v in pairs.items() if v not in (None, "")])

    def query(self, **changes: Any) -> str:
        """The query string of this view with `changes` (defaults left out, so links stay short)."""
        values: dict[str, Any] = {f.name: getattr(self.filter, f.name) for f in fields(self.filter)}
        values |= {"sort": self.sort, "page": self.page, "per_page": self.per_page} | changes
        defaults = {"sort": "-created", "page": 1, "per_page": PAGE_SIZES[0]}
        pairs = [
            (k, str(v.value if isinstance(v, RunStatus) else v))
            for k, v in values.items()
            if v not in (None, "") and defaults.get(k) != v
        ]
        return urlencode(pairs)


def _whole(value: str | None, low: int, high: int, default: T) -> int | T:
    return int(value) if value is not None and value.isdigit() and low <= int(value) <= high else default
