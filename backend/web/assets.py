"""Plotly.js, served from the installed plotly package: no CDN, so the charts work air-gapped. (The other
static files are mounted from frontend/static in backend/app.py.)"""

from __future__ import annotations

from pathlib import Path

import plotly
from fastapi import APIRouter
from fastapi.responses import FileResponse

router = APIRouter(include_in_schema=False)


@router.get("/static/vendor/plotly.min.js")
def plotly_js() -> FileResponse:
    return FileResponse(
        Path(plotly.__file__).parent / "package_data" / "plotly.min.js",
        media_type="text/javascript",
        headers={"Cache-Control": "public, max-age=86400"},
    )
