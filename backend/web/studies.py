"""The study pages: the list (`/studies`), a study's table (`/studies/{id}`, kept live by
frontend/static/study.js from `/api/events`), the new-study editor (`/studies/new`, driven by
frontend/static/study_form.js through `POST /api/studies/preview` and `POST /api/studies`, or the sweep
routes) and a study's report (`/studies/{id}/report`, drawn from `GET /api/studies/{id}/report`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from jinja2.utils import htmlsafe_json_dumps

from backend.deps import FeedDep, ServedDep, SessionDep, StudyDep, TokensDep
from backend.services import studies
from backend.services.comparison import MAX_COMPARED_RUNS
from backend.web.session import PageSession
from backend.web.templating import render
from trainboard.presets import presets
from trainboard.schemas import Archived
from trainboard.spec import SPEC_FIELDS

router = APIRouter(include_in_schema=False)


@router.get("/studies", response_class=HTMLResponse)
def studies_page(
    request: Request,
    sid: PageSession,
    tokens: TokensDep,
    session: SessionDep,
    archived: Annotated[str, Query(max_length=10)] = "",
) -> HTMLResponse:
    """The studies, newest first; archived ones only with `?archived=include` or `only`."""
    shown_archived: Archived = "include" if archived == "include" else "only" if archived == "only" else "exclude"
    shown, count = studies.list_studies(session, 0, 200, shown_archived)
    return render(
        request,
        "studies.html",
        sid,
        tokens,
        studies=shown,
        count=count,
        archived=shown_archived,
        presets=list(presets().values()),
    )


@router.get("/studies/new", response_class=HTMLResponse)
def new_study_page(
    request: Request, sid: PageSession, tokens: TokensDep, preset: Annotated[str | None, Query(max_length=64)] = None
) -> HTMLResponse:
    available = [p.model_dump(mode="json") for p in presets().values()]
    chosen = preset if preset in presets() else None
    # Not `tojson`: it sorts keys, and the order of a variant's overrides is the order they apply in.
    return render(
        request,
        "study_form.html",
        sid,
        tokens,
        presets=available,
        chosen=chosen,
        presets_json=htmlsafe_json_dumps(available),
        spec_fields=SPEC_FIELDS,
    )


@router.get("/studies/{study_id}", response_class=HTMLResponse)
def study_page(
    request: Request,
    sid: PageSession,
    tokens: TokensDep,
    study: StudyDep,
    session: SessionDep,
    feed: FeedDep,
    served: ServedDep,
) -> HTMLResponse:
    since = feed.token()  # before the runs are read: a change in between is sent again, never missed
    detail = studies.study_detail(session, study, served)
    run_ids = [run.id for run in detail.data]
    compare_url = f"/compare?runs={','.join(map(str, run_ids))}" if 2 <= len(run_ids) <= MAX_COMPARED_RUNS else None
    by_id = {run.id: run for run in detail.data}
    failed = [(by_id[failure.run_id], failure.reason) for failure in studies.failures(detail.data)]
    return render(
        request,
        "study.html",
        sid,
        tokens,
        study=detail,
        since=since,
        compare_url=compare_url,
        failed=failed,
        none_succeeded=studies.none_succeeded(detail.data),
    )


@router.get("/studies/{study_id}/report", response_class=HTMLResponse)
def study_report_page(request: Request, sid: PageSession, tokens: TokensDep, study: StudyDep) -> HTMLResponse:
    """The study's summary table, curve overlays and per-class bars (drawn by frontend/static/study_report.js)."""
    return render(request, "study_report.html", sid, tokens, study=study)
