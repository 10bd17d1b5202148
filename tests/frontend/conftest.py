"""Browser-test fixtures: headless Debian Chromium against the live server of tests/conftest.py (a fresh
data directory per test), and a stand-in worker that reports over HTTP, so a test decides exactly when
each epoch lands.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, sync_playwright

from backend.auth import SESSION_COOKIE, Tokens
from tests.conftest import API_TOKEN, WORKER, WORKER_TOKEN, LiveServer, skip_or_fail

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "screenshots"


@pytest.fixture
def app(live_server: LiveServer) -> FastAPI:
    """The served app, for what a test reaches in-process: app.state.engine, .feed, .dispatcher."""
    served = live_server.server.config.app
    assert isinstance(served, FastAPI)
    return served


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        skip_or_fail(f"browser tests drive Debian's Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@dataclass
class PageErrors:
    """Uncaught exceptions and console errors of a page; a test fails on any it did not expect."""

    messages: list[str] = field(default_factory=list)

    def console(self, message: ConsoleMessage) -> None:
        # A 4xx answer the test asks for (422 form, 401 login) is logged as "Failed to load resource".
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.messages.append(f"console: {message.text}")


@pytest.fixture
def context(browser: Browser, live_server: LiveServer) -> Iterator[BrowserContext]:
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)  # a loaded 2-core CI machine is slow to paint
    yield context
    context.close()


def _watched_page(context: BrowserContext) -> tuple[Page, PageErrors]:
    page = context.new_page()
    errors = PageErrors()
    page.on("pageerror", lambda exc: errors.messages.append(f"uncaught: {exc}"))
    page.on("console", errors.console)
    return page, errors


@pytest.fixture
def anonymous_page(context: BrowserContext) -> Iterator[Page]:
    page, errors = _watched_page(context)
    yield page
    assert errors.messages == []


@pytest.fixture
def page(context: BrowserContext, live_server: LiveServer) -> Iterator[Page]:
    """A logged-in page: the session (and its cookie) the login form would make."""
    from sqlmodel import Session

    from backend.services import sessions

    tokens = Tokens(api=API_TOKEN, worker=WORKER_TOKEN)
    cookie = tokens.new_session()
    sid = tokens.session_id(cookie)
    assert sid is not None
    app = live_server.server.config.app
    with Session(app.state.engine) as session:  # type: ignore[attr-defined]
        sessions.start(session, sid)
    context.add_cookies([{"name": SESSION_COOKIE, "value": cookie, "url": live_server.url}])
    page, errors = _watched_page(context)
    yield page
    assert errors.messages == []


@pytest.fixture
def api_token() -> str:
    return API_TOKEN


@pytest.fixture
def api(live_server: LiveServer) -> Iterator[httpx.Client]:
    with live_server.api() as client:
        yield client


def epoch_record(epoch: int, test_acc: float, classes: int = 10) -> dict[str, Any]:
    """A plausible epoch: losses fall with the epoch, class k is (k - 5) points off the mean accuracy."""
    return {
        "epoch": epoch,
        "train_loss": round(1.8 / epoch, 4),
        "train_acc": round(min(1.0, test_acc + 0.02), 4),
        "test_loss": round(2.0 / epoch, 4),
        "test_acc": test_acc,
        "per_class_acc": [round(min(1.0, max(0.0, test_acc + (k - 5) / 100)), 4) for k in range(classes)],
        "lr": [0.01],
        "seconds": 1.5,
        "images_per_s": 4000.0,
        # A CPU run's figures (no GPU ones): its memory grows a MB an epoch.
        "system": {"rss_bytes": 300_000_000 + epoch * 1_000_000, "cpu_seconds": 2.5},
    }


class Worker:
    """Reports one run over HTTP with the worker token, as worker/ does, one call at a time."""

    def __init__(self, server: LiveServer, run_id: int) -> None:
        self.run_id = run_id
        self.attempt = 0
        self.lease = ""
        self.client = httpx.Client(base_url=f"{server.url}/api/runs/{run_id}", headers=WORKER, timeout=10)

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.client.post(path, json=body)
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]

    def claim(self) -> int:
        claim = self._post("/claim", {"worker": "browser-test:1"})
        self.attempt, self.lease = claim["attempt"], claim["lease"]
        return self.attempt

    def epoch(self, epoch: int, test_acc: float) -> dict[str, Any]:
        record = epoch_record(epoch, test_acc)
        assert self._post("/epochs", {"attempt": self.attempt, "lease": self.lease, "record": record}) == {
            "created": True
        }
        return record

    def progress(self, epoch: int, batch: int, batches: int) -> bool:
        body = {
            "attempt": self.attempt,
            "lease": self.lease,
            "progress": {"epoch": epoch, "batch": batch, "batches": batches},
        }
        return bool(self._post("/progress", body)["cancel"])

    def finish(self, epochs_run: int, confusion: list[list[int]], stopped: str = "completed") -> str:
        result = {
            "stopped": stopped,
            "epochs_run": epochs_run,
            "confusion": confusion,
            "total_seconds": 4.31,
            "device": "cpu",
        }
        return str(self._post("/finish", {"attempt": self.attempt, "lease": self.lease, "result": result})["status"])

    def close(self) -> None:
        self.client.close()


@pytest.fixture
def worker(live_server: LiveServer) -> Iterator[Callable[[int], Worker]]:
    """worker(run_id) -> a Worker for that run; closed after the test."""
    made: list[Worker] = []

    def make(run_id: int) -> Worker:
        made.append(Worker(live_server, run_id))
        return made[-1]

    yield make
    for w in made:
        w.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(exist_ok=True)
    return SCREENSHOTS
