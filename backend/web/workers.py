"""The Workers page, `/workers`: every worker with its device, slots and what each slot trains, and every queue
with the runs waiting in it and the workers that take them."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from backend.deps import SessionDep, SettingsDep, TokensDep
from backend.services import workers
from backend.web.session import PageSession
from backend.web.templating import render

router = APIRouter(include_in_schema=False)


@router.get("/workers", response_class=HTMLResponse)
def workers_page(
    request: Request, sid: PageSession, tokens: TokensDep, session: SessionDep, settings: SettingsDep
) -> HTMLResponse:
    found = workers.list_workers(session, settings.lost_after_seconds)
    return render(
        request,
        "workers.html",
        sid,
        tokens,
        workers=found,
        queues=workers.queues(session, settings.lost_after_seconds),
        lost_after=settings.lost_after_seconds,
    )
