"""The pages' buttons that clean up and try again: archive, restore, retry and delete a run or a study, and
archive or delete a selection of the runs list. Plain HTML forms (each with its CSRF field) that answer with
a redirect, so they work without JavaScript; a delete first shows a confirm page listing what will go.
The rules are backend/services/management.py's, as for the REST routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlmodel import Session, col, select

from backend.deps import DispatcherDep, FeedDep, RunDep, SessionDep, SettingsDep, StudyDep, TokensDep
from backend.services import artifacts, management, studies
from backend.tables import Run
from backend.web.session import PageSession, PostedForm, check_form_csrf, safe_next
from backend.web.templating import render
from trainboard.protocol import MAX_ID
from trainboard.schemas import MAX_RUN_IDS, RetryFrom, RunStatus

router = APIRouter(include_in_schema=False)


async def posted_run_ids(request: Request) -> list[int]:
    """The ticked runs of a posted form (`run_ids`, once per box), de-duplicated; anything else is ignored."""
    values = (await request.form()).getlist("run_ids")
    ids = [int(v) for v in values if isinstance(v, str) and v.isdecimal() and len(v) <= 10]
    return list(dict.fromkeys(i for i in ids if 1 <= i <= MAX_ID))[:MAX_RUN_IDS]


PostedRunIds = Annotated[list[int], Depends(posted_run_ids)]


def _back(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=status.HTTP_303_SEE_OTHER)


def _retry_from(form: dict[str, str]) -> RetryFrom:
    return "start" if form.get("from") == "start" else "checkpoint"


def _confirm_delete(
    request: Request,
    sid: str,
    tokens: TokensDep,
    session: Session,
    runs: list[Run],
    action: str,
    back: str,
    what: str,
    done: str = "/",
) -> HTMLResponse:
    """The page that asks before a delete: what goes (each run, its status, its files' size) and what refuses.
    `back`: where "keep them" goes; `done`: where the browser lands once they are deleted."""
    ids = [run.id for run in runs if run.id is not None]
    sizes = artifacts.sizes(session, ids)
    running = [run for run in runs if run.status == RunStatus.running]
    return render(
        request,
        "confirm_delete.html",
        sid,
        tokens,
        runs=runs,
        sizes=sizes,
        total_bytes=sum(sizes.values()),
        running=running,
        action=action,
        back=back,
        what=what,
        done=done,
    )


# -- one run --------------------------------------------------------------------------------------


@router.post("/runs/{run_id}/archive")
def archive_run(
    sid: PageSession, form: PostedForm, tokens: TokensDep, run: RunDep, session: SessionDep, feed: FeedDep
) -> RedirectResponse:
    check_form_csrf(sid, tokens, form)
    assert run.id is not None
    management.archive_runs(session, feed, [run.id], archived=True)
    return _back(f"/runs/{run.id}")


@router.post("/runs/{run_id}/restore")
def restore_run(
    sid: PageSession, form: PostedForm, tokens: TokensDep, run: RunDep, session: SessionDep, feed: FeedDep
) -> RedirectResponse:
    check_form_csrf(sid, tokens, form)
    assert run.id is not None
    management.archive_runs(session, feed, [run.id], archived=False)
    return _back(f"/runs/{run.id}")


@router.post("/runs/{run_id}/retry")
def retry_run(
    sid: PageSession,
    form: PostedForm,
    tokens: TokensDep,
    run: RunDep,
    session: SessionDep,
    feed: FeedDep,
    dispatcher: DispatcherDep,
    settings: SettingsDep,
) -> RedirectResponse:
    """Queue the failed or cancelled run again (from its checkpoint; the form's `from=start`: over)."""
    check_form_csrf(sid, tokens, form)
    management.retry_run(session, settings.artifacts_dir, dispatcher, feed, run, _retry_from(form))
    return _back(f"/runs/{run.id}")


@router.get("/runs/{run_id}/delete", response_class=HTMLResponse)
def confirm_delete_run(
    request: Request, sid: PageSession, tokens: TokensDep, run: RunDep, session: SessionDep
) -> HTMLResponse:
    return _confirm_delete(request, sid, tokens, session, [run], "/runs/delete", f"/runs/{run.id}", f"run {run.id}")


@router.post("/runs/delete")
def delete_runs(
    sid: PageSession,
    form: PostedForm,
    run_ids: PostedRunIds,
    tokens: TokensDep,
    session: SessionDep,
    feed: FeedDep,
    settings: SettingsDep,
) -> RedirectResponse:
    """The confirm page's Delete: the runs it listed go (all or nothing; 409 page if one is running)."""
    check_form_csrf(sid, tokens, form)
    management.delete_runs(session, settings.artifacts_dir, feed, run_ids)
    return _back(safe_next(form.get("next", "/")))


# -- the runs list's selection --------------------------------------------------------------------


@router.post("/runs/selected", response_model=None)
def selected_runs(
    request: Request,
    sid: PageSession,
    form: PostedForm,
    run_ids: PostedRunIds,
    tokens: TokensDep,
    session: SessionDep,
    feed: FeedDep,
) -> HTMLResponse | RedirectResponse:
    """The runs list's buttons for its ticked runs: archive or restore them at once, or confirm their delete."""
    check_form_csrf(sid, tokens, form)
    back = safe_next(form.get("next", "/"))
    action = form.get("action")
    if action == "delete" and run_ids:
        found = list(session.exec(select(Run).where(col(Run.id).in_(run_ids)).order_by(col(Run.id))).all())
        what = f"{len(found)} run{'' if len(found) == 1 else 's'}"
        return _confirm_delete(request, sid, tokens, session, found, "/runs/delete", back, what, done=back)
    if action in ("archive", "restore") and run_ids:
        management.archive_runs(session, feed, run_ids, archived=action == "archive")
    return _back(back)


# -- a study --------------------------------------------------------------------------------------


@router.post("/studies/{study_id}/archive")
def archive_study(
    sid: PageSession, form: PostedForm, tokens: TokensDep, study: StudyDep, session: SessionDep, feed: FeedDep
) -> RedirectResponse:
    check_form_csrf(sid, tokens, form)
    management.archive_study(session, feed, study, archived=True)
    return _back(f"/studies/{study.id}")


@router.post("/studies/{study_id}/restore")
def restore_study(
    sid: PageSession, form: PostedForm, tokens: TokensDep, study: StudyDep, session: SessionDep, feed: FeedDep
) -> RedirectResponse:
    check_form_csrf(sid, tokens, form)
    management.archive_study(session, feed, study, archived=False)
    return _back(f"/studies/{study.id}")


@router.post("/studies/{study_id}/retry")
def retry_study(
    sid: PageSession,
    form: PostedForm,
    tokens: TokensDep,
    study: StudyDep,
    session: SessionDep,
    feed: FeedDep,
    dispatcher: DispatcherDep,
    settings: SettingsDep,
) -> RedirectResponse:
    """Retry failed runs: every failed run of the study queued again."""
    check_form_csrf(sid, tokens, form)
    management.retry_failed(session, settings.artifacts_dir, dispatcher, feed, study, _retry_from(form))
    return _back(f"/studies/{study.id}")


@router.get("/studies/{study_id}/delete", response_class=HTMLResponse)
def confirm_delete_study(
    request: Request, sid: PageSession, tokens: TokensDep, study: StudyDep, session: SessionDep
) -> HTMLResponse:
    assert study.id is not None
    members = studies.study_runs(session, study.id)
    what = f"study {study.id} ({study.name}) and its {len(members)} run{'' if len(members) == 1 else 's'}"
    action = f"/studies/{study.id}/delete"
    return _confirm_delete(request, sid, tokens, session, members, action, f"/studies/{study.id}", what, "/studies")


@router.post("/studies/{study_id}/delete")
def delete_study(
    sid: PageSession,
    form: PostedForm,
    tokens: TokensDep,
    study: StudyDep,
    session: SessionDep,
    feed: FeedDep,
    settings: SettingsDep,
) -> RedirectResponse:
    check_form_csrf(sid, tokens, form)
    management.delete_study(session, settings.artifacts_dir, feed, study)
    return _back("/studies")
