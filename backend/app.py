"""Assembles the FastAPI app: its services on app.state, the routers, app-wide middleware, error handlers
and static files. Nothing else registers any of those."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from backend import errors, schema
from backend.api import compare, events, presets, runs, studies, worker, workers
from backend.auth import Tokens
from backend.db import make_engine
from backend.middleware import BodyLimit
from backend.services.changes import ChangeFeed
from backend.services.dispatch import Dispatcher
from backend.services.recovery import RecoveryLoop
from backend.web import assets, login
from backend.web import compare as compare_pages
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
        dispatcher = Dispatcher(settings.broker, settings.queue)
        feed = ChangeFeed()
        recovery = RecoveryLoop(engine, dispatcher, feed, settings.lost_after_seconds, settings.max_attempts)
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
    api_routers = (runs.router, studies.router, presets.router, events.router, worker.router, workers.router)
    for router in (*api_routers, compare.router):
        app.include_router(router)
    pages = (run_pages.router, login.router, study_pages.router, compare_pages.router, worker_pages.router)
    for page_router in (*pages, assets.router):
        app.include_router(page_router)
    app.mount("/static", StaticFiles(directory=FRONTEND / "static"), name="static")
    for error, handler in errors.HANDLERS.items():
        app.add_exception_handler(error, handler)
    app.add_middleware(TokenLogin)
    app.add_middleware(BodyLimit)
    return app
