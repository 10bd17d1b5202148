"""The API's documentation pages, served from installed packages: `/docs` (Swagger UI, from the
swagger-ui-bundle package) works air-gapped and under the content security policy (no CDN, no inline
script: frontend/static/docs.js starts it). Its "Authorize" takes the API token (the bearer scheme that
/openapi.json declares)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

from backend.web.templating import render_public

router = APIRouter(include_in_schema=False)
SWAGGER_UI = StaticFiles(directory=str(swagger_ui_path))


@router.get("/docs", response_class=HTMLResponse)
def swagger_ui(request: Request) -> HTMLResponse:
    return render_public(request, "docs.html")
