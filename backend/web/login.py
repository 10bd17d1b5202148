"""The login page and logging out."""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import APIRouter, Form, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from backend.auth import LoginThrottle
from backend.deps import TokensDep
from backend.web.session import PageSession, PostedForm, check_form_csrf, log_out, logged_in, safe_next
from backend.web.templating import render_public

router = APIRouter(include_in_schema=False)


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/") -> HTMLResponse:
    return render_public(request, "login.html", next=safe_next(next), error=None)


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request,
    tokens: TokensDep,
    token: Annotated[str, Form(max_length=500)],
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    throttle: LoginThrottle = request.app.state.login_throttle
    address = request.client.host if request.client else "?"
    wait = throttle.wait_seconds(address)
    if wait > 0:
        error = f"Too many wrong tokens: try again in {math.ceil(wait)} s."
        response = render_public(
            request, "login.html", status.HTTP_429_TOO_MANY_REQUESTS, next=safe_next(next), error=error
        )
        response.headers["Retry-After"] = str(math.ceil(wait))
        return response
    if not tokens.is_api_token(token.strip()):
        throttle.failed(address)
        return render_public(
            request, "login.html", status.HTTP_401_UNAUTHORIZED, next=safe_next(next), error="Wrong token."
        )
    throttle.succeeded(address)
    return logged_in(request, safe_next(next), tokens)


@router.post("/logout")
def logout(request: Request, sid: PageSession, form: PostedForm, tokens: TokensDep) -> RedirectResponse:
    check_form_csrf(sid, tokens, form)
    return log_out(request, sid)
