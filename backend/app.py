"""Assembles the FastAPI app: its services on app.state, the routers, app-wide middleware, error handlers
and static files. Nothing else registers any of those."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from backend import errors, schema
from backend.api import (
    artifacts,
    compare,
    datasets,
    events,
    health,
    manage,
    presets,
    runs,
    studies,
    worker,
    workers,
)
from backend.auth import LoginThrottle, Tokens
from backend.db import make_engine
from backend.middleware import BodyLimit, RequestDeadline, SecurityHeaders, TrustedHosts
from backend.responses import errors_as_json
from backend.services.changes import open_feed
from backend.services.dispatch import Dispatcher
from backend.services.health import DatabaseHealth
from backend.services.leadership import leadership_for
from backend.services.recovery import RecoveryLoop
from backend.web import assets, docs, login
from backend.web import compare as compare_pages
from backend.web import manage as manage_pages
from backend.web import runs as run_pages
from backend.web import studies as study_pages
from backend.web import workers as worker_pages
from backend.web.session import TokenLogin
from backend.web.templating import FRONTEND
from trainboard import __version__
from trainboard.presets import presets as load_presets
from trainboard.settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        load_presets()  # a broken preset file stops the start-up, naming the file
        settings.ensure_data_dir()
        engine = make_engine(settings.database)
        schema.prepare(engine, settings)
        api_token, worker_token = settings.resolved_tokens()
        dispatcher = Dispatcher(settings.broker, settings.queue, engine, settings.lost_after_seconds)
        feed, health = open_feed(settings), DatabaseHealth()  # shared by every API process when it can be
        leadership = leadership_for(engine)  # one process at a time recovers (several API processes: PostgreSQL)
        recovery = RecoveryLoop(
            engine, dispatcher, feed, settings.lost_after_seconds, settings.max_attempts, health, leadership
        )
        app.state.settings, app.state.engine, app.state.feed = settings, engine, feed
        app.state.dispatcher, app.state.tokens = dispatcher, Tokens(api=api_token, worker=worker_token)
        app.state.login_throttle, app.state.health = LoginThrottle(), health
        app.state.leadership = leadership
        feed.start()
        dispatcher.start()
        recovery.resend_queued()
        recovery.start()
        try:
            yield
        finally:
            recovery.stop()
            leadership.close()
            feed.close()
            dispatcher.close()
            engine.dispose()

    app = FastAPI(
        title="trainboard",
        version=__version__,
        lifespan=lifespan,
        description="Launch, watch and compare PyTorch image-classification runs. Scripts send the API token "
        "(`trainboard token`) as `Authorization: Bearer <token>`; workers send theirs to the worker routes.",
        docs_url=None,  # backend/web/docs.py serves /docs from an installed package, not a CDN
        redoc_url=None,
    )
    api_routers = (
        runs.router,
        studies.router,
        manage.router,
        presets.router,
        datasets.router,
        events.router,
        worker.router,
        artifacts.worker_router,
        artifacts.router,
        workers.router,
        health.router,
    )
    for router in (*api_routers, compare.router):
        app.include_router(router)
    pages = (
        run_pages.router,
        manage_pages.router,
        login.router,
        study_pages.router,
        compare_pages.router,
        worker_pages.router,
        docs.router,
    )
    for page_router in (*pages, assets.router):
        app.include_router(page_router)
    app.mount("/static", StaticFiles(directory=FRONTEND / "static"), name="static")
    app.mount("/docs/assets", docs.SWAGGER_UI, name="docs-assets")
    publish = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = errors_as_json(publish())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    for error, handler in errors.HANDLERS.items():
        app.add_exception_handler(error, handler)
    # Outermost last: security headers on every answer, then the Host check, then the body cap.
    app.add_middleware(TokenLogin)
    app.add_middleware(RequestDeadline, seconds=settings.request_timeout_seconds)
    app.add_middleware(BodyLimit)
    app.add_middleware(TrustedHosts, hosts=settings.trusted_hosts)
    app.add_middleware(SecurityHeaders)
    return app
