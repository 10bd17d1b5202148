"""The browser's session on the page side: logging in (a form, or the `?token=` link `trainboard serve`
prints), the session every page needs, and the CSRF check of posted forms."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import Depends, HTTPException, Request, status
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import URL
from starlette.types import ASGIApp, Receive, Scope, Send

from backend.auth import SESSION_COOKIE, Tokens, browser_session
from backend.deps import TokensDep
from backend.services import sessions
from trainboard.redaction import TOKEN_PARAMETER, drop_tokens

SESSION_DAYS = sessions.SESSION_DAYS


class LoginRequired(Exception):
    """A page asked for without a session: backend/errors.py sends the browser to the login page."""

    def __init__(self, next_url: str) -> None:
        self.next_url = next_url


def page_session(request: Request, tokens: TokensDep) -> str:
    """The browser's session id; no session: go to the login page and come back."""
    sid = browser_session(request, tokens)
    if sid is None:
        query = drop_tokens(request.url.query)  # a stale or worker token in the URL goes no further
        raise LoginRequired(str(request.url.path) + (f"?{query}" if query else ""))
    return sid


PageSession = Annotated[str, Depends(page_session)]


async def posted_form(request: Request) -> dict[str, str]:
    """The form's text fields (parsed on the event loop; the route itself runs in the thread pool)."""
    return {key: value for key, value in (await request.form()).items() if isinstance(value, str)}


PostedForm = Annotated[dict[str, str], Depends(posted_form)]


def check_form_csrf(sid: str, tokens: Tokens, form: dict[str, str]) -> None:
    if not tokens.check_csrf(sid, form.get("csrf")):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="missing or invalid CSRF token: reload the page")


def logged_in(request: Request, next_url: str, tokens: Tokens) -> RedirectResponse:
    """Go to `next_url` with a new session: kept by the server, its signed id in the cookie."""
    cookie = tokens.new_session()
    sid = tokens.session_id(cookie)
    assert sid is not None
    with Session(request.app.state.engine) as session:
        sessions.start(session, sid, SESSION_DAYS)
    response = RedirectResponse(next_url, status_code=status.HTTP_303_SEE_OTHER)
    response.set_cookie(SESSION_COOKIE, cookie, httponly=True, samesite="strict", max_age=SESSION_DAYS * 24 * 3600)
    return response


def log_out(request: Request, sid: str) -> RedirectResponse:
    """End the session on the server (every API process sees it at once), and drop the cookie."""
    with Session(request.app.state.engine) as session:
        sessions.end(session, sid)
    response = RedirectResponse("/login", status_code=status.HTTP_303_SEE_OTHER)
    response.delete_cookie(SESSION_COOKIE)
    return response


def safe_next(next_url: str) -> str:
    """Only same-site paths: '/runs/3' yes, '//evil.example' or 'https://...' no."""
    return next_url if next_url.startswith("/") and not next_url.startswith("//") else "/"


def to_login(next_url: str) -> RedirectResponse:
    return RedirectResponse("/login?" + urlencode({"next": next_url}), status_code=status.HTTP_303_SEE_OTHER)


class TokenLogin:
    """`/any/page?token=...` (the link `trainboard serve` prints) logs the browser in and drops the token
    from the URL. An ASGI middleware, registered in backend/app.py."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and not scope["path"].startswith("/api/"):
            request = Request(scope)
            token = request.query_params.get(TOKEN_PARAMETER)
            tokens: Tokens = request.app.state.tokens
            if token is not None and tokens.is_api_token(token):
                query = drop_tokens(request.url.query)
                response: Response = await run_in_threadpool(
                    logged_in, request, str(URL(path=request.url.path, query=query)), tokens
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
