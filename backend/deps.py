"""FastAPI dependencies, written once for the REST routes and the pages alike: the DB session, the app's
services, auth, "run or 404", "study or 404"."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Path, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.engine import Engine
from sqlmodel import Session

from backend.auth import CSRF_HEADER, SAFE_METHODS, Tokens, bearer_token, browser_session
from backend.services import runs, studies, workers
from backend.services.changes import ChangeFeed
from backend.services.dispatch import Dispatcher
from backend.services.idempotency import KEY_PATTERN
from backend.services.scheduling import Served
from backend.tables import Run, Study
from trainboard.settings import Settings


def get_session(request: Request) -> Iterator[Session]:
    engine: Engine = request.app.state.engine
    with Session(engine) as session:
        yield session


def get_feed(request: Request) -> ChangeFeed:
    return request.app.state.feed  # type: ignore[no-any-return]


def get_dispatcher(request: Request) -> Dispatcher:
    return request.app.state.dispatcher  # type: ignore[no-any-return]


def get_tokens(request: Request) -> Tokens:
    return request.app.state.tokens  # type: ignore[no-any-return]


def get_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


SessionDep = Annotated[Session, Depends(get_session)]
FeedDep = Annotated[ChangeFeed, Depends(get_feed)]
DispatcherDep = Annotated[Dispatcher, Depends(get_dispatcher)]
TokensDep = Annotated[Tokens, Depends(get_tokens)]
SettingsDep = Annotated[Settings, Depends(get_settings)]

_UNAUTHORIZED = HTTPException(
    status.HTTP_401_UNAUTHORIZED,
    detail="missing or invalid API token: send 'Authorization: Bearer <token>' (see `trainboard token`)",
    headers={"WWW-Authenticate": "Bearer"},
)


# Declared in /openapi.json (so /docs can "Authorize"); the checks below read the header themselves.
api_token_scheme = HTTPBearer(
    scheme_name="APIToken", description="The API token (`trainboard token`)", auto_error=False
)
worker_token_scheme = HTTPBearer(scheme_name="WorkerToken", description="The worker token", auto_error=False)
Credentials = HTTPAuthorizationCredentials | None


def require_user(
    request: Request, tokens: TokensDep, _credentials: Annotated[Credentials, Depends(api_token_scheme)]
) -> None:
    """A script with the API token, or a logged-in browser (with the CSRF header on anything that changes state)."""
    if tokens.is_api_token(bearer_token(request)):
        return
    sid = browser_session(request, tokens)
    if sid is None:
        raise _UNAUTHORIZED
    if request.method not in SAFE_METHODS and not tokens.check_csrf(sid, request.headers.get(CSRF_HEADER)):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="missing or invalid CSRF token")


def require_worker(
    request: Request, tokens: TokensDep, _credentials: Annotated[Credentials, Depends(worker_token_scheme)]
) -> None:
    if not tokens.is_worker_token(bearer_token(request)):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="missing or invalid worker token",
            headers={"WWW-Authenticate": "Bearer"},
        )


# Any whole number: one that names no run (0, or past the 32-bit ids) is a 404 like any other unknown id.
RunId = Annotated[int, Path(description="The run's id")]
StudyId = Annotated[int, Path(description="The study's id")]


def get_run(session: SessionDep, run_id: RunId) -> Run:
    return runs.get_run(session, run_id)


def get_study(session: SessionDep, study_id: StudyId) -> Study:
    return studies.get_study(session, study_id)


RunDep = Annotated[Run, Depends(get_run)]

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        pattern=KEY_PATTERN,
        description="Any unique string (a UUID): a retry with the same key gets what the first request made",
    ),
]


def get_served(session: SessionDep, settings: SettingsDep) -> Served:
    """Where live workers take runs from: a queued run waiting anywhere else says so."""
    return workers.served(session, settings.lost_after_seconds)


ServedDep = Annotated[Served, Depends(get_served)]
StudyDep = Annotated[Study, Depends(get_study)]
