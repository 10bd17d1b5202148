"""The one Jinja2 environment of the pages, and how a page is rendered (with the session's CSRF token)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

import frontend
from backend.auth import Tokens
from backend.services import exports

FRONTEND = Path(frontend.__file__).parent
templates = Jinja2Templates(directory=FRONTEND / "templates")  # autoescape is on for .html
# The run page shows its spec as the JSON `POST /api/runs` takes (autoescaped, unlike `tojson`'s \u003c).
templates.env.filters["percent"] = lambda fraction: f"{exports.percent(fraction):.{exports.PERCENT_DECIMALS}f}"
templates.env.filters["pretty_json"] = lambda value: json.dumps(value, indent=2, ensure_ascii=False)


def render(
    request: Request, template: str, sid: str, tokens: Tokens, status_code: int = 200, **context: Any
) -> HTMLResponse:
    """A page for a logged-in browser: `csrf` (its session's token) is in every template's context."""
    return templates.TemplateResponse(
        request, template, {"csrf": tokens.csrf_token(sid), **context}, status_code=status_code
    )


def render_public(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A page for anyone (login, errors): no session, so no CSRF token and no navigation."""
    return templates.TemplateResponse(request, template, {"csrf": None, **context}, status_code=status_code)
