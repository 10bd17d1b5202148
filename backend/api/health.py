"""Whether this API can serve: for a load balancer or docker-compose's healthcheck (`trainboard health`)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from sqlalchemy import text

from backend.deps import SessionDep, require_user
from backend.responses import USER
from trainboard import __version__
from trainboard.schemas import Health

router = APIRouter(prefix="/api/health", tags=["health"], dependencies=[Depends(require_user)], responses=USER)


@router.get("", response_model=Health)
def read_health(request: Request, session: SessionDep) -> Health:
    """200 when the database answers (a 503 says why when it does not); `leader`: whether this process leads."""
    session.exec(text("SELECT 1"))  # type: ignore[call-overload]
    return Health(status="ok", version=__version__, leader=request.app.state.leadership.leading)
