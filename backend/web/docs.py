"""The API's documentation pages, served from installed packages: `/docs` (Swagger UI 5, from the
swagger-ui-py package; swagger-ui-bundle's Swagger UI 4 cannot read FastAPI's OpenAPI 3.1 and showed
"Unable to render this definition") works air-gapped and under the content security policy (no CDN, no
inline script: frontend/static/docs.js starts it). Its "Authorize" takes the API token (the bearer scheme that
/openapi.json declares)."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from backend.web.templating import render_public

router = APIRouter(include_in_schema=False)
SWAGGER_UI = StaticFiles(directory=str(resources.files("swagger_ui") / "static"))


@router.get("/docs", response_class=HTMLResponse)
def swagger_ui(request: Request) -> HTMLResponse:
    return render_public(request, "docs.html")
