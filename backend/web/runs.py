"""The run pages: the runs list (`/`), the new-run form (`/runs/new`) and a run's page (`/runs/{id}`)."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session

from backend.deps import DispatcherDep, FeedDep, RunDep, ServedDep, SessionDep, SettingsDep, TokensDep
from backend.services import artifacts, datasets, run_list, runs, studies
from backend.services.errors import Invalid
from backend.web import forms
from backend.web.runs_view import COLUMN_CHOICES, MAX_COLUMNS, PAGE_SIZES, STUDY_COLUMN, RunsView, spec_value
from backend.web.session import PageSession, PostedForm, check_form_csrf
from backend.web.templating import render
from trainboard.presets import presets
from trainboard.protocol import MAX_ID
from trainboard.schemas import RunStatus

router = APIRouter(include_in_schema=False)

OPTIONS = forms.options()


def form_options(session: Session) -> dict[str, Any]:
    """The form's choices: the spec's, with the registered datasets after the built-in ones."""
    registered = [d.name for d in datasets.list_datasets(session).data]
    return {**OPTIONS, "datasets": [*OPTIONS["datasets"], *registered]}


@router.get("/", response_class=HTMLResponse)
def runs_page(
    request: Request, sid: PageSession, tokens: TokensDep, session: SessionDep, feed: FeedDep, served: ServedDep
) -> HTMLResponse:
    """One page of the runs list, filtered and sorted as the URL says (bad values: the defaults)."""
    since = feed.token()  # read before the runs: a change in between is sent again, never missed
    newest = run_list.newest_run_id(session)  # likewise: a run above it is new to this page
    view = RunsView.from_query(request.query_params)
    shown, count = run_list.list_runs(session, view.filter, view.sort, view.offset, view.per_page)
    if not shown and view.page > 1 and count:  # past the last page (fewer runs than the link knew): show the last
        view = dataclasses.replace(view, page=(count - 1) // view.per_page + 1)
        shown, count = run_list.list_runs(session, view.filter, view.sort, view.offset, view.per_page)
    return render(
        request,
        "runs.html",
        sid,
        tokens,
        runs=[runs.public(r, served) for r in shown],
        sizes=artifacts.sizes(session, [r.id for r in shown if r.id is not None]),
        count=count,
        since=since,
        view=view,
        options=form_options(session),
        statuses=[s.value for s in RunStatus],
        page_sizes=PAGE_SIZES,
        newest=newest,
        presets=list(presets().values()),
        column_choices=COLUMN_CHOICES,
        max_columns=MAX_COLUMNS,
        study_column=STUDY_COLUMN,
        spec_value=spec_value,
    )


@router.get("/runs/new", response_class=HTMLResponse)
def new_run_page(
    request: Request,
    sid: PageSession,
    tokens: TokensDep,
    session: SessionDep,
    clone: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> HTMLResponse:
    values = forms.form_defaults()
    if clone is not None:
        values = forms.form_values(runs.get_run(session, clone).spec)
    return render(request, "run_form.html", sid, tokens, values=values, errors={}, options=form_options(session))


@router.post("/runs/new", response_class=HTMLResponse)
def create_run_from_form(
    request: Request,
    sid: PageSession,
    form: PostedForm,
    tokens: TokensDep,
    session: SessionDep,
    feed: FeedDep,
    dispatcher: DispatcherDep,
    settings: SettingsDep,
) -> Response:
    check_form_csrf(sid, tokens, form)
    spec, errors = forms.validate_form(form)
    if spec is None:
        return render(
            request,
            "run_form.html",
            sid,
            tokens,
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            values=forms.posted_values(form),
            errors=errors,
            options=form_options(session),
        )
    try:
        run = runs.queue_run(
            session,
            spec,
            dispatcher,
            feed,
            memory_budget_gb=settings.memory_budget_gb,
            lost_after_seconds=settings.lost_after_seconds,
        )
    except Invalid as exc:  # over the memory budget: say so beside the batch size
        return render(
            request,
            "run_form.html",
            sid,
            tokens,
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            values=forms.posted_values(form),
            errors={exc.field: str(exc)},
            options=form_options(session),
        )
    return RedirectResponse(f"/runs/{run.id}", status_code=status.HTTP_303_SEE_OTHER)


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run_page(
    request: Request,
    sid: PageSession,
    run: RunDep,
    tokens: TokensDep,
    session: SessionDep,
    feed: FeedDep,
    served: ServedDep,
) -> HTMLResponse:
    since = feed.token()  # a finished run's page follows /api/events from here for its tags and notes
    session.refresh(run)
    assert run.id is not None
    study = studies.get_study(session, run.study_id) if run.study_id is not None else None
    return render(
        request,
        "run.html",
        sid,
        tokens,
        run=runs.public(run, served),
        classes=datasets.class_names(session, run.dataset),
        study=study,
        since=since,
        disk_bytes=artifacts.sizes(session, [run.id]).get(run.id, 0),
        has_checkpoint=artifacts.latest_checkpoint(session, run.id) is not None,
        weights=artifacts.weights(session, run.id),
    )
