"""The `trainboard` command: serve, worker, submit, token."""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from trainboard.settings import Settings, get_settings
from worker.process import Placement

app = typer.Typer(
    help="Launch, watch and compare PyTorch image-classification runs.", no_args_is_help=True, add_completion=False
)

DataDir = Annotated[
    Path | None, typer.Option("--data-dir", help="Data directory (default: TRAINBOARD_DATA_DIR or ~/.trainboard).")
]


def _settings(data_dir: Path | None, **overrides: Any) -> Settings:
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    return Settings(**overrides)


@app.command()
def serve(
    host: Annotated[
        str | None,
        typer.Option(
            help="Address to bind (default: TRAINBOARD_HOST or 127.0.0.1). "
            "0.0.0.0 exposes the dashboard to your network."
        ),
    ] = None,
    port: Annotated[int | None, typer.Option(min=1, max=65535, help="Port (default: TRAINBOARD_PORT or 8000).")] = None,
    data_dir: DataDir = None,
    workers: Annotated[
        int, typer.Option(min=0, max=64, help="Embedded worker processes (0: use external `trainboard worker`s).")
    ] = 1,
    slots: Annotated[int, typer.Option(min=1, max=64, help="Runs at once per embedded worker.")] = 1,
    gpus: Annotated[
        str | None,
        typer.Option(
            help="One embedded worker per GPU, pinned to it: e.g. 0,1 (instead of --workers).", metavar="LIST"
        ),
    ] = None,
) -> None:
    """API + pages + embedded Celery workers. Ctrl-C stops everything it started."""
    import uvicorn

    from backend.app import create_app

    defaults = _settings(data_dir)
    host, port = host or defaults.host, port or defaults.port
    local = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    settings = _settings(data_dir, host=host, port=port, api_url=f"http://{local}:{port}")
    settings.ensure_data_dir()
    api_token, worker_token = settings.resolved_tokens()
    placements = _placements(workers, slots, gpus)
    children = [_start_worker(settings, worker_token, index, p) for index, p in enumerate(placements)]
    workers = len(placements)
    typer.echo(
        f"trainboard: data in {settings.data_dir}; database {_redact(settings.database)}; "
        f"broker {_redact(settings.broker)}; {workers} embedded worker(s)"
    )
    typer.echo(f"trainboard: open http://{local}:{port}/?token={api_token}")
    try:
        uvicorn.run(create_app(settings), host=host, port=port, log_level="info", log_config=_log_config())
    finally:
        _stop_workers(children)


class RedactTokens(logging.Filter):
    """Keeps the API token out of the access log: `/?token=...` is how a browser logs in."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_TOKEN.sub(r"\1***", a) if isinstance(a, str) else a for a in record.args)
        return True


_TOKEN = re.compile(r"((?:\?|&)token=)[^&\s\"]*")


def _log_config() -> dict[str, Any]:
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["redact_tokens"] = {"()": RedactTokens}
    config["handlers"]["access"]["filters"] = ["redact_tokens"]
    return config


def _placements(workers: int, slots: int, gpus: str | None) -> list[Placement]:
    """The embedded workers: one per GPU of --gpus, else --workers of them; the cores split between them all."""
    cores = os.cpu_count() or 1
    if gpus:
        try:
            ids = [int(part) for part in gpus.split(",") if part.strip()]
        except ValueError as exc:
            raise typer.BadParameter(f"--gpus takes GPU numbers separated by commas, like 0,1 (not {gpus!r})") from exc
        share = max(1, cores // len(ids))
        return [Placement(slots=slots, gpu=gpu, cores=share) for gpu in ids]
    share = max(1, cores // max(workers, 1))
    return [Placement(slots=slots, cores=share) for _ in range(workers)]


def _start_worker(settings: Settings, worker_token: str, index: int, placement: Placement) -> subprocess.Popen[bytes]:
    # What a worker needs, and no more: no database URL, no API token.
    env = {k: v for k, v in os.environ.items() if k not in ("TRAINBOARD_DATABASE_URL", "TRAINBOARD_API_TOKEN")} | {
        "TRAINBOARD_DATA_DIR": str(settings.data_dir),
        "TRAINBOARD_BROKER_URL": settings.broker,
        "TRAINBOARD_QUEUE": settings.queue,
        "TRAINBOARD_API_URL": settings.api_url,
        "TRAINBOARD_WORKER_TOKEN": worker_token,
    }
    env |= placement.environment()  # what the worker itself would set (so it need not start itself again)
    command = [sys.executable, "-m", "trainboard", "worker", "--name", f"embedded{index}"]
    command += ["--slots", str(placement.slots), "--cores", str(placement.cores)]
    if placement.gpu is not None:
        command += ["--gpu", str(placement.gpu)]
    # A session of its own: Ctrl-C reaches only `serve`, which then stops the workers in order.
    return subprocess.Popen(command, env=env, start_new_session=True)


def _stop_workers(children: list[subprocess.Popen[bytes]], grace_seconds: float = 10.0) -> None:
    """SIGTERM (Celery's warm shutdown), then SIGKILL whatever is left; a run cut off here is requeued on restart."""
    for child in children:
        _signal_group(child, signal.SIGTERM)
    for child in children:
        try:
            child.wait(timeout=grace_seconds)
        except subprocess.TimeoutExpired:
            _signal_group(child, signal.SIGKILL)
            child.wait()


def _signal_group(child: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # already gone
        os.killpg(child.pid, signum)


def _redact(url: str) -> str:
    """Hide a password in a database or broker URL."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    credentials, host = rest.rsplit("@", 1)
    return f"{scheme}://{credentials.split(':', 1)[0]}:***@{host}"


@app.command()
def worker(
    name: Annotated[
        str, typer.Option(help="Worker name (shown on the Workers page and on the runs it trains).")
    ] = "worker",
    slots: Annotated[
        int, typer.Option(min=1, max=64, help="Runs at once (one process each); they share the CPU cores.")
    ] = 1,
    gpu: Annotated[
        int | None, typer.Option(min=0, max=63, help="Pin this worker and its runs to one GPU (CUDA_VISIBLE_DEVICES).")
    ] = None,
    cores: Annotated[
        int | None, typer.Option(min=1, max=65_536, help="CPU cores its runs share (default: all of them).")
    ] = None,
    preload: Annotated[
        bool, typer.Option(help="Import torch and the engine once, before forking each run's process (a warm start).")
    ] = True,
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
) -> None:
    """A Celery worker for the configured broker: up to SLOTS runs at once, a fresh process per run."""
    import socket

    from worker.process import Placement

    placement = Placement(slots=slots, gpu=gpu, cores=cores or os.cpu_count() or 1)
    wanted = placement.environment()
    if any(os.environ.get(key) != value for key, value in wanted.items()):
        # CUDA and OpenMP read these when they start, and every run process forked from here inherits them:
        # start again with them in the environment (as `serve` starts its embedded workers).
        os.execve(sys.executable, [sys.executable, "-m", "trainboard", *sys.argv[1:]], os.environ | wanted)
    if preload:
        from worker.process import preload as warm_up

        warm_up()
    from worker import announce
    from worker.devices import describe
    from worker.tasks import celery_app

    settings = get_settings()
    hostname = f"{name}@{socket.gethostname()}"
    try:
        token = settings.client_token("worker")
    except RuntimeError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    device = describe(gpu, placement.cores)
    announce.install(announce.Announcer(settings.api_url, token, hostname, [settings.queue], slots, device))
    celery_app.conf.worker_pool = "worker.pool:TaskPool"  # prefork, replacing a finished run's process at once
    celery_app.worker_main(
        [
            "worker",
            f"--loglevel={loglevel}",
            f"--concurrency={slots}",
            f"--queues={settings.queue}",
            f"--hostname={hostname}",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
    )


@app.command()
def submit(
    spec_file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="A run spec as JSON.")],
    server: Annotated[str | None, typer.Option(help="trainboard URL (default: TRAINBOARD_API_URL).")] = None,
    watch: Annotated[bool, typer.Option(help="Show progress until the run ends; exit 1 unless it succeeded.")] = False,
    data_dir: DataDir = None,
) -> None:
    """Queue a run through the REST API."""
    from trainboard.client import Client, ClientError, watch_run

    settings = _settings(data_dir)
    try:
        spec = json.loads(spec_file.read_text())
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"{spec_file} is not valid JSON: {exc}") from exc
    try:
        api_token = settings.client_token("api")
    except RuntimeError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    with Client(server or settings.api_url, api_token) as client:
        try:
            run = client.create_run(spec)
        except ClientError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(2) from exc
        typer.echo(f"run {run['id']} queued: {client.base_url}/runs/{run['id']}")
        if watch:
            try:
                status = watch_run(client, run)
            except ClientError as exc:
                typer.echo(str(exc), err=True)
                raise typer.Exit(2) from exc
            raise typer.Exit(0 if status == "succeeded" else 1)


db_app = typer.Typer(help="The database's schema: migrations.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade(data_dir: DataDir = None) -> None:
    """Bring the database (TRAINBOARD_DATABASE_URL, else DATA_DIR's SQLite) to this trainboard's schema.

    Back the database up first. The embedded `serve` does this by itself for its SQLite file."""
    from backend import schema
    from backend.db import make_engine

    settings = _settings(data_dir)
    settings.ensure_data_dir()
    engine = make_engine(settings.database)
    try:
        before, after = schema.upgrade(engine)
    except schema.SchemaOutdated as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    finally:
        engine.dispose()
    where = _redact(settings.database)
    if before == after:
        typer.echo(f"{where}: already at revision {after}")
    else:
        typer.echo(f"{where}: upgraded from revision {before or 'none (a new database)'} to {after}")


@app.command()
def token(data_dir: DataDir = None) -> None:
    """Print the API token (for the login page, or `Authorization: Bearer` in scripts)."""
    try:
        typer.echo(_settings(data_dir).client_token("api"))
    except RuntimeError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc


def main() -> None:
    app()
