"""How every error becomes an answer, in one place (HANDLERS, registered by backend/app.py): the REST API
answers JSON, pages answer an HTML error page (or the login page)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from backend.services.errors import Conflict, Invalid, NotFound, TooLarge
from backend.services.health import describe, is_unavailable
from backend.web.session import LoginRequired, to_login
from backend.web.templating import render_public
from trainboard.presets.variants import StudyInvalid
from trainboard.spec import error_field

# Paths whose errors stay JSON: the REST API, static files and the API docs.
JSON_PATHS = ("/api/", "/static/", "/docs/assets/", "/openapi")

_TITLES = {
    status.HTTP_404_NOT_FOUND: "Not found",
    status.HTTP_403_FORBIDDEN: "Forbidden",
    status.HTTP_409_CONFLICT: "Conflict",
    status.HTTP_503_SERVICE_UNAVAILABLE: "The database is unreachable",
}


def _answer(request: Request, status_code: int, detail: object, headers: dict[str, str] | None = None) -> Response:
    if request.url.path.startswith(JSON_PATHS):
        return JSONResponse({"detail": detail}, status_code=status_code, headers=headers)
    title = _TITLES.get(status_code, f"Error {status_code}")
    response = render_public(request, "error.html", status_code, error_code=status_code, title=title, detail=detail)
    if headers:
        response.headers.update(headers)
    return response


async def _not_found(request: Request, exc: Exception) -> Response:
    return _answer(request, status.HTTP_404_NOT_FOUND, str(exc))


async def _conflict(request: Request, exc: Exception) -> Response:
    return _answer(request, status.HTTP_409_CONFLICT, str(exc))


async def _too_large(request: Request, exc: Exception) -> Response:
    return _answer(request, status.HTTP_413_CONTENT_TOO_LARGE, str(exc))


RETRY_AFTER_S = 5


async def _database_unavailable(request: Request, exc: Exception) -> Response:
    """503 while the database does not answer: one log line per outage (backend/services/health.py)."""
    if not is_unavailable(exc):
        raise exc
    request.app.state.health.failed(exc)
    detail = f"the database is unreachable ({describe(exc)}); try again in a few seconds"
    return _answer(request, status.HTTP_503_SERVICE_UNAVAILABLE, detail, {"Retry-After": str(RETRY_AFTER_S)})


async def _invalid_request(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Invalid)
    errors = [{"field": exc.field, "msg": str(exc), "type": exc.kind, "loc": ["body", *exc.field.split(".")]}]
    return JSONResponse({"detail": errors}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


async def _study_invalid(_request: Request, exc: Exception) -> Response:
    """Every error of every variant of a study or sweep (StudyErrors); nothing was queued."""
    assert isinstance(exc, StudyInvalid)
    return JSONResponse(
        {"detail": [error.as_dict() for error in exc.errors]}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT
    )


async def _invalid(_request: Request, exc: Exception) -> Response:
    """FastAPI's 422 plus `field`: the dotted spec path of each error ('model.hidden.0')."""
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"field": error_field(e["loc"], e["msg"]), "msg": e["msg"], "type": e["type"], "loc": list(e["loc"])}
        for e in exc.errors()
    ]
    return JSONResponse({"detail": errors}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if request.url.path.startswith(JSON_PATHS):
        return await http_exception_handler(request, exc)
    return _answer(request, exc.status_code, exc.detail, getattr(exc, "headers", None))


async def _login_required(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoginRequired)
    return to_login(exc.next_url)


Handler = Callable[[Request, Exception], Awaitable[Response]]
HANDLERS: dict[type[Exception], Handler] = {
    NotFound: _not_found,
    Invalid: _invalid_request,
    DBAPIError: _database_unavailable,
    PoolTimeout: _database_unavailable,
    Conflict: _conflict,
    TooLarge: _too_large,
    StudyInvalid: _study_invalid,
    RequestValidationError: _invalid,
    StarletteHTTPException: _http_error,
    LoginRequired: _login_required,
}
