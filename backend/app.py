"""Assembles the FastAPI app: services on app.state, routers, error handlers, static files."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from backend.api import compare, events, reports, runs, studies
from backend.auth import Tokens
from backend.changes import ChangeFeed
from backend.db import create_tables, make_engine
from backend.dispatch import Dispatcher
from backend.lifecycle import Conflict
from backend.limits import BodyLimit
from backend.recovery import Recovery
from trainboard import __version__
from trainboard.presets import presets
from trainboard.settings import Settings, get_settings
from trainboard.spec import error_field


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        presets()  # a broken preset file stops the start-up, naming the file
        settings.ensure_data_dir()
        engine = make_engine(settings.database)
        create_tables(engine)
        api_token, worker_token = settings.resolved_tokens()
        dispatcher = Dispatcher(settings.broker, settings.queue)
        feed = ChangeFeed()
        recovery = Recovery(engine, dispatcher, feed, settings.lost_after_seconds, settings.max_attempts)
        app.state.settings, app.state.engine, app.state.feed = settings, engine, feed
        app.state.dispatcher, app.state.tokens = dispatcher, Tokens(api=api_token, worker=worker_token)
        recovery.resend_queued()
        recovery.start()
        try:
            yield
        finally:
            recovery.stop()
            dispatcher.close()
            engine.dispose()

    app = FastAPI(
        title="trainboard",
        version=__version__,
        lifespan=lifespan,
        description="Launch, watch and compare PyTorch image-classification runs.",
    )
    app.include_router(runs.router)
    app.include_router(studies.router)
    app.include_router(events.router)
    app.include_router(reports.router)
    app.include_router(compare.router)
    app.add_exception_handler(Conflict, _conflict)
    app.add_exception_handler(RequestValidationError, _invalid)
    from backend import (
        compare_pages,
        pages,
        study_pages,
    )  # the HTML side; imported here so the API alone stays importable

    pages.mount(app)
    app.include_router(study_pages.router)
    app.include_router(compare_pages.router)
    app.add_middleware(BodyLimit)
    return app


async def _conflict(_request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=status.HTTP_409_CONFLICT)


async def _invalid(_request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422 plus `field`: the dotted spec path of each error ('model.hidden.0')."""
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"field": error_field(e["loc"], e["msg"]), "msg": e["msg"], "type": e["type"], "loc": list(e["loc"])}
        for e in exc.errors()
    ]
    return JSONResponse({"detail": errors}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)
