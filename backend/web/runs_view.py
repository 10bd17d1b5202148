"""The runs list page's view, as its URL says: filters, sort, page and page size, read from the query string
with the API's rules (a value the API would refuse falls back to its default: a page never answers 422 or
500 for a hand-edited link)."""

from __future__ import annotations

import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar
from urllib.parse import urlencode

from backend.services.run_list import RunFilter, SortKey
from trainboard.protocol import MAX_ID
from trainboard.schemas import TAG_PATTERN, Archived, RunStatus
from trainboard.spec import SPEC_FIELDS
from trainboard.text import NUL

T = TypeVar("T")

SORT_KEYS: tuple[str, ...] = typing.get_args(SortKey)
_FILTER_DEFAULTS: dict[str, object] = {"archived": "exclude"}  # a filter field whose default is not empty
PAGE_SIZES = (50, 100, 200)
_MAX_PAGE = 10**7
STUDY_COLUMN = "study"  # the study and label of a run, beside the spec fields a list can show as columns
COLUMN_CHOICES = (STUDY_COLUMN, *SPEC_FIELDS)
MAX_COLUMNS = 8


@dataclass(frozen=True)
class RunsView:
    """What the runs list page shows, as its URL says: filters, sort, page and page size.

    Read from the query string with the API's rules; a value the API would refuse falls back to its
    default here (a page never answers 422 or 500 for a hand-edited link).
    """

    filter: RunFilter = field(default_factory=RunFilter)
    sort: SortKey = "-created"
    page: int = 1
    per_page: int = PAGE_SIZES[0]
    columns: tuple[str, ...] = ()  # extra columns (`?cols=study,optimizer.lr`): COLUMN_CHOICES, at most MAX_COLUMNS
    ignored_columns: tuple[str, ...] = ()  # what `cols` asked for that is not shown (unknown, or past the limit)

    @classmethod
    def from_query(cls, params: Mapping[str, str]) -> RunsView:
        def text(name: str, max_length: int) -> str | None:
            value = params.get(name, "").strip()
            return value if value and len(value) <= max_length and NUL not in value else None

        status = params.get("status", "")
        tag = params.get("tag", "").strip().lower()
        sort = params.get("sort", "")
        getlist = getattr(params, "getlist", None)  # a form without JS sends cols=a&cols=b
        columns, ignored = _columns(",".join(getlist("cols")) if getlist else params.get("cols", ""))
        return cls(
            filter=RunFilter(
                status=RunStatus(status) if status in RunStatus._value2member_map_ else None,
                dataset=text("dataset", 40),
                arch=text("arch", 40),
                tag=tag if re.fullmatch(TAG_PATTERN, tag) else None,
                q=text("q", 200),
                study=_whole(params.get("study"), 1, MAX_ID, None),
                archived=_archived(params.get("archived")),
            ),
            sort=typing.cast(SortKey, sort) if sort in SORT_KEYS else "-created",
            page=_whole(params.get("page"), 1, _MAX_PAGE, 1),
            per_page=next((s for s in PAGE_SIZES if params.get("per_page") == str(s)), PAGE_SIZES[0]),
            columns=columns,
            ignored_columns=ignored,
        )

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page

    @property
    def filtered(self) -> bool:
        chosen = [f.name for f in fields(self.filter) if getattr(self.filter, f.name) != _FILTER_DEFAULTS.get(f.name)]
        return any(getattr(self.filter, name) for name in chosen)

    @property
    def is_default_listing(self) -> bool:
        """Newest first, page 1, nothing filtered: the only view a brand-new run belongs at the top of."""
        return self.sort == "-created" and self.page == 1 and not self.filtered

    def api_query(self) -> str:
        """The same rows from `GET /api/runs` (what the page re-reads after a `reload` event)."""
        pairs = {f.name: getattr(self.filter, f.name) for f in fields(self.filter)}
        pairs |= {"sort": self.sort, "offset": self.offset, "limit": self.per_page}
        return urlencode([(k, str(v)) for k, v in pairs.items() if v not in (None, "", _FILTER_DEFAULTS.get(k))])

    def query(self, **changes: Any) -> str:
        """The query string of this view with `changes` (defaults left out, so links stay short)."""
        values: dict[str, Any] = {f.name: getattr(self.filter, f.name) for f in fields(self.filter)}
        values |= {"sort": self.sort, "page": self.page, "per_page": self.per_page, "cols": ",".join(self.columns)}
        values |= changes
        defaults = {"sort": "-created", "page": 1, "per_page": PAGE_SIZES[0]} | _FILTER_DEFAULTS
        pairs = [
            (k, str(v.value if isinstance(v, RunStatus) else v))
            for k, v in values.items()
            if v not in (None, "") and defaults.get(k) != v
        ]
        return urlencode(pairs)


def _archived(value: str | None) -> Archived:
    return "include" if value == "include" else "only" if value == "only" else "exclude"


def _whole(value: str | None, low: int, high: int, default: T) -> int | T:
    return int(value) if value is not None and value.isdigit() and low <= int(value) <= high else default


def _columns(raw: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """`cols` as (the columns shown, in the order asked, each once; what is ignored): a name that is no spec field
    and everything past MAX_COLUMNS is ignored (the page says so), never refused."""
    shown: list[str] = []
    ignored: list[str] = []
    for name in (part.strip() for part in raw.split(",")):
        if not name or name in shown:
            continue
        if name in COLUMN_CHOICES and len(shown) < MAX_COLUMNS:
            shown.append(name)
        elif len(ignored) < MAX_COLUMNS:
            ignored.append(name[:60])
    return tuple(shown), tuple(ignored)


def spec_value(spec: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path of a spec (None where the spec has none: another architecture's field).
    runs.js specValue reads the same for a live row."""
    value: Any = spec
    for key in path.split("."):
        value = value.get(key) if isinstance(value, Mapping) else None
    return value
