"""The compare page, `/compare?runs=1,2,3`: the page shell; frontend/static/compare.js fills it from
`GET /api/compare` and keeps it current from `/api/events` while a selected run is queued or running.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from backend.deps import FeedDep, TokensDep
from backend.services.comparison import MAX_COMPARED_RUNS
from backend.web.session import PageSession
from backend.web.templating import render

router = APIRouter(include_in_schema=False)


def parse_run_ids(text: str) -> tuple[list[int], str | None]:
    """The ids of `runs=1,2,3` (de-duplicated, in the order given), or a problem to show instead."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not all(part.isdecimal() and len(part) <= 12 for part in parts):
        return [], "Run ids are numbers separated by commas, as in /compare?runs=1,2,3."
    ids = list(dict.fromkeys(int(part) for part in parts))
    if len(ids) > MAX_COMPARED_RUNS:
        return [], f"At most {MAX_COMPARED_RUNS} runs can be compared at once; {len(ids)} were given."
    return ids, None


@router.get("/compare", response_class=HTMLResponse)
def compare_page(
    request: Request,
    sid: PageSession,
    tokens: TokensDep,
    feed: FeedDep,
    runs: Annotated[str, Query(max_length=1000)] = "",
) -> HTMLResponse:
    ids, problem = parse_run_ids(runs)
    return render(request, "compare.html", sid, tokens, run_ids=ids, problem=problem, since=feed.token())
