"""The HTML pages: runs list, new-run form, run page, login. Server-rendered with Jinja2 (autoescaped);
live updates come from the SSE routes, driven by small JS modules in frontend/static.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

import plotly
from fastapi import APIRouter, Depends, FastAPI, Form, HTTPException, Query, Request, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.datastructures import URL
from starlette.exceptions import HTTPException as StarletteHTTPException

import frontend
from backend import forms, run_queries
from backend.api.deps import DispatcherDep, FeedDep, RunDep, SessionDep, TokensDep, get_run
from backend.auth import SESSION_COOKIE, Tokens, browser_session
from backend.dispatch import queue_run
from backend.models import RunPublic, RunStatus, Study
from trainboard.spec import CLASS_NAMES

FRONTEND = Path(frontend.__file__).parent
templates = Jinja2Templates(directory=FRONTEND / "templates")  # autoescape is on for .html
# The run page shows its spec as the JSON `POST /api/runs` takes (autoescaped, unlike `tojson`'s \u003c).
templates.env.filters["pretty_json"] = lambda value: json.dumps(value, indent=2, ensure_ascii=False)


class LoginRequired(Exception):
    def __init__(self, next_url: str) -> None:
        self.next_url = next_url


def page_session(request: Request, tokens: TokensDep) -> str:
    """The browser's session id; no session: go to the login page and come back."""
    sid = browser_session(request, tokens)
    if sid is None:
        raise LoginRequired(str(request.url.path) + (f"?{request.url.query}" if request.url.query else ""))
    return sid


PageSession = Annotated[str, Depends(page_session)]
router = APIRouter(include_in_schema=False)


OPTIONS = forms.options()


def _render(
    request: Request, template: str, sid: str, tokens: Tokens, status_code: int = 200, **context: Any
) -> HTMLResponse:
    return templates.TemplateResponse(
        request, template, {"csrf": tokens.csrf_token(sid), **context}, status_code=status_code
    )


@router.get("/", response_class=HTMLResponse)
def runs_page(
    request: Request, sid: PageSession, tokens: TokensDep, session: SessionDep, feed: FeedDep
) -> HTMLResponse:
    """One page of the runs list, filtered and sorted as the URL says (bad values: the defaults)."""
    since = feed.token()  # read before the runs: a change in between is sent again, never missed
    newest = run_queries.newest_run_id(session)  # likewise: a run above it is new to this page
    view = run_queries.RunsView.from_query(request.query_params)
    runs, count = run_queries.list_runs(session, view.filter, view.sort, view.offset, view.per_page)
    if not runs and view.page > 1 and count:  # past the last page (fewer runs than the link knew): show the last
        view = dataclasses.replace(view, page=(count - 1) // view.per_page + 1)
        runs, count = run_queries.list_runs(session, view.filter, view.sort, view.offset, view.per_page)
    return _render(
        request,
        "runs.html",
        sid,
        tokens,
        runs=[RunPublic.of(r) for r in runs],
        count=count,
        since=since,
        view=view,
        options=OPTIONS,
        statuses=[s.value for s in RunStatus],
        page_sizes=run_queries.PAGE_SIZES,
        newest=newest,
    )


@router.get("/runs/new", response_class=HTMLResponse)
def new_run_page(
    request: Request,
    sid: PageSession,
    tokens: TokensDep,
    session: SessionDep,
    clone: Annotated[int | None, Query(ge=1, le=2**62)] = None,
) -> HTMLResponse:
    values = forms.form_defaults()
    if clone is not None:
        values = forms.form_values(get_run(session, clone).spec)
    return _render(request, "run_form.html", sid, tokens, values=values, errors={}, options=OPTIONS)


async def posted_form(request: Request) -> dict[str, str]:
    """The form's text fields (parsed on the event loop; the route itself runs in the thread pool)."""
    return {key: value for key, value in (await request.form()).items() if isinstance(value, str)}


PostedForm = Annotated[dict[str, str], Depends(posted_form)]


def check_form_csrf(sid: str, tokens: Tokens, form: dict[str, str]) -> None:
    if not tokens.check_csrf(sid, form.get("csrf")):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="missing or invalid CSRF token: reload the page")


@router.post("/runs/new", response_class=HTMLResponse)
def create_run_from_form(
    request: Request,
    sid: PageSession,
    form: PostedForm,
    tokens: TokensDep,
    session: SessionDep,
    feed: FeedDep,
    dispatcher: DispatcherDep,
) -> Response:
    check_form_csrf(sid, tokens, form)
    spec, errors = forms.validate_form(form)
    if spec is None:
        values = forms.posted_values(form)
        return _render(
            request,
            "run_form.html",
            sid,
            tokens,
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            values=values,
            errors=errors,
            options=OPTIONS,
        )
    run = queue_run(session, spec, dispatcher, feed)
    return RedirectResponse(f"/runs/{run.id}", status_code=status.HTTP_303_SEE_OTHER)


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run_page(
    request: Request, sid: PageSession, run: RunDep, tokens: TokensDep, session: SessionDep, feed: FeedDep
) -> HTMLResponse:
    since = feed.token()  # a finished run's page follows /api/events from here for its tags and notes
    session.refresh(run)
    study = session.get(Study, run.study_id) if run.study_id is not None else None
    return _render(
        request,
        "run.html",
        sid,
        tokens,
        run=RunPublic.of(run),
        classes=CLASS_NAMES.get(run.dataset, []),
        study=study,
        since=since,
    )


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/") -> HTMLResponse:
    return templates.TemplateResponse(request, "login.html", {"next": _safe_next(next), "error": None})


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request,
    tokens: TokensDep,
    token: Annotated[str, Form(max_length=500)],
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    if not tokens.is_api_token(token.strip()):
        return templates.TemplateResponse(
            request,
            "login.html",
            {"next": _safe_next(next), "error": "Wrong token."},
            status_code=status.HTTP_401_UNAUTHORIZED,
        )
    return _logged_in(_safe_next(next), tokens)


@router.post("/logout")
def logout(sid: PageSession, form: PostedForm, tokens: TokensDep) -> RedirectResponse:
    check_form_csrf(sid, tokens, form)
    response = RedirectResponse("/login", status_code=status.HTTP_303_SEE_OTHER)
    response.delete_cookie(SESSION_COOKIE)
    return response


def _logged_in(next_url: str, tokens: Tokens) -> RedirectResponse:
    response = RedirectResponse(next_url, status_code=status.HTTP_303_SEE_OTHER)
    response.set_cookie(SESSION_COOKIE, tokens.new_session(), httponly=True, samesite="strict", max_age=30 * 24 * 3600)
    return response


def _safe_next(next_url: str) -> str:
    """Only same-site paths: '/runs/3' yes, '//evil.example' or 'https://...' no."""
    return next_url if next_url.startswith("/") and not next_url.startswith("//") else "/"


def plotly_js() -> FileResponse:
    """Plotly.js from the installed plotly package: no CDN, works air-gapped."""
    return FileResponse(
        Path(plotly.__file__).parent / "package_data" / "plotly.min.js",
        media_type="text/javascript",
        headers={"Cache-Control": "public, max-age=86400"},
    )


def mount(app: FastAPI) -> None:
    app.include_router(router)
    app.add_api_route("/static/vendor/plotly.min.js", plotly_js, include_in_schema=False)
    app.mount("/static", StaticFiles(directory=FRONTEND / "static"), name="static")

    @app.middleware("http")
    async def token_login(request: Request, call_next: Any) -> Response:
        """`/any/page?token=...` (the link `trainboard serve` prints) logs the browser in and drops the token from
        the URL."""
        token = request.query_params.get("token")
        if token is not None and request.method == "GET" and not request.url.path.startswith("/api/"):
            tokens: Tokens = request.app.state.tokens
            if tokens.is_api_token(token):
                query = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "token"])
                return _logged_in(str(URL(path=request.url.path, query=query)), tokens)
        return typing.cast(Response, await call_next(request))

    @app.exception_handler(StarletteHTTPException)
    async def html_errors(request: Request, exc: StarletteHTTPException) -> Response:
        """Pages get an HTML error page; the API and static files keep FastAPI's JSON."""
        if request.url.path.startswith(("/api/", "/static/", "/docs", "/openapi")):
            return await http_exception_handler(request, exc)
        titles = {status.HTTP_404_NOT_FOUND: "Not found", status.HTTP_403_FORBIDDEN: "Forbidden"}
        return templates.TemplateResponse(
            request,
            "error.html",
            {
                "status_code": exc.status_code,
                "title": titles.get(exc.status_code, f"Error {exc.status_code}"),
                "detail": exc.detail,
                "csrf": None,
            },
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(LoginRequired)
    async def to_login(_request: Request, exc: LoginRequired) -> RedirectResponse:
        return RedirectResponse("/login?" + urlencode({"next": exc.next_url}), status_code=status.HTTP_303_SEE_OTHER)
