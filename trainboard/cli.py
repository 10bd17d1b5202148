"""The `trainboard` command: serve, worker, submit, health, token, db."""

from __future__ import annotations

import copy
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from trainboard import embedded
from trainboard.redaction import redact_url
from trainboard.settings import Settings, get_settings

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
    api_processes: Annotated[
        int,
        typer.Option(
            min=1,
            max=64,
            help="API processes on the one address (more than 1 needs PostgreSQL and a Redis broker).",
        ),
    ] = 1,
) -> None:
    """API + pages + embedded Celery workers. Ctrl-C stops everything it started."""
    import uvicorn

    from backend.app import create_app

    defaults = _settings(data_dir)
    host, port = host or defaults.host, port or defaults.port
    local = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    settings = _settings(data_dir, host=host, port=port, api_url=f"http://{local}:{port}")
    problem = settings.api_processes_problem() if api_processes > 1 else None
    if problem:
        typer.echo(f"--api-processes {api_processes}: {problem}", err=True)
        raise typer.Exit(2)
    settings.ensure_data_dir()
    api_token, worker_token = settings.resolved_tokens()
    try:
        where = embedded.placements(workers, slots, gpus)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    children = embedded.EmbeddedWorkers.placed(settings, worker_token, where)
    children.start()
    workers = len(where)
    typer.echo(
        f"trainboard: data in {settings.data_dir}; database {_redact(settings.database)}; "
        f"broker {_redact(settings.broker)}; {api_processes} API process(es); {workers} embedded worker(s)"
    )
    typer.echo(f"trainboard: open http://{local}:{port}/?token={api_token}")
    # uvicorn shuts down on SIGTERM (what systemd and Docker send) as on Ctrl-C, then raises the signal again:
    # exit through the `finally` then, so the workers stop with serve instead of living on.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        if api_processes == 1:
            uvicorn.run(create_app(settings), host=host, port=port, log_level="info", log_config=_log_config())
        else:
            # uvicorn's own process manager: it binds the address once, starts the processes (each builds the
            # app from the environment, so what serve settled goes there) and starts again one that dies.
            os.environ.update(
                TRAINBOARD_DATA_DIR=str(settings.data_dir),
                TRAINBOARD_HOST=host,
                TRAINBOARD_PORT=str(port),
                TRAINBOARD_API_URL=settings.api_url,
            )
            uvicorn.run(
                "backend.app:create_app",
                factory=True,
                workers=api_processes,
                host=host,
                port=port,
                log_level="info",
                log_config=_log_config(),
            )
    finally:
        children.stop()


def _exit_on_sigterm(_signum: int, _frame: object) -> None:
    raise SystemExit(128 + signal.SIGTERM)


class RedactTokens(logging.Filter):
    """Keeps tokens out of the access log: `/?token=...` is how a browser logs in (trainboard/redaction.py)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact_url(a) if isinstance(a, str) and "?" in a else a for a in record.args)
        return True


def _log_config() -> dict[str, Any]:
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["redact_tokens"] = {"()": RedactTokens}
    config["handlers"]["access"]["filters"] = ["redact_tokens"]
    return config


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
    queue: Annotated[
        list[str] | None,
        typer.Option(
            help="A run queue to take runs from (repeat for several; default: `default`). With a GPU the worker also "
            "takes the runs of these queues that ask for one."
        ),
    ] = None,
) -> None:
    """A Celery worker for the configured broker: up to SLOTS runs at once, a fresh process per run.

    SIGTERM (or Ctrl-C once) drains it: it finishes the runs it has, takes no new one (the Workers page shows
    it as draining), then exits. A second Ctrl-C stops at once."""
    import re
    import socket

    from trainboard.placement import DEFAULT_QUEUE, MAX_QUEUES, QUEUE_PATTERN, listened_queues

    queues = list(dict.fromkeys(queue or [DEFAULT_QUEUE]))
    wrong = [name for name in queues if not re.fullmatch(QUEUE_PATTERN, name)]
    if wrong or len(queues) > MAX_QUEUES:
        problem = f"{wrong[0]!r} is not a queue name" if wrong else f"at most {MAX_QUEUES} queues"
        raise typer.BadParameter(f"{problem} (lowercase letters, digits, _ and -, at most 40)", param_hint="--queue")

    from worker.process import Placement, die_with_parent, kill_runs_with_worker

    placement = Placement(slots=slots, gpu=gpu, cores=cores or os.cpu_count() or 1)
    wanted = placement.environment()
    if any(os.environ.get(key) != value for key, value in wanted.items()):
        # CUDA and OpenMP read these when they start, and every run process forked from here inherits them:
        # start again with them in the environment (as `serve` starts its embedded workers).
        os.execve(sys.executable, [sys.executable, "-m", "trainboard", *sys.argv[1:]], os.environ | wanted)
    parent = get_settings().parent_pid
    if parent is not None:  # started by `serve`: never outlive it
        die_with_parent(parent)
    kill_runs_with_worker()
    if preload:
        from worker.process import preload as warm_up

        warm_up()
    from worker import announce, run_state
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
    broker_queues = listened_queues(settings.queue, queues, gpu=device.kind == "cuda")
    os.environ["TRAINBOARD_WORKER_NAME"] = hostname  # its run processes claim runs under this name
    get_settings.cache_clear()  # the settings its run processes inherit: with that name
    announce.install(
        announce.Announcer(
            settings.api_url, token, hostname, queues, slots, device, models=sorted(settings.offered_models)
        )
    )
    run_state.make_state_dir()
    run_state.install(settings.api_url, token, settings.data_dir)
    celery_app.conf.worker_pool = "worker.pool:TaskPool"  # prefork, replacing a finished run's process at once
    try:
        celery_app.worker_main(
            [
                "worker",
                f"--loglevel={loglevel}",
                f"--concurrency={slots}",
                f"--queues={','.join(broker_queues)}",
                f"--hostname={hostname}",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ]
        )
    finally:
        run_state.remove_state_dir()


@app.command()
def submit(
    spec_file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="A run spec as JSON.")],
    server: Annotated[str | None, typer.Option(help="trainboard URL (default: TRAINBOARD_API_URL).")] = None,
    watch: Annotated[bool, typer.Option(help="Show progress until the run ends; exit 1 unless it succeeded.")] = False,
    data_dir: DataDir = None,
    queue: Annotated[str, typer.Option(help="The queue it waits in (workers take it with --queue NAME).")] = "default",
    priority: Annotated[int, typer.Option(min=-100, max=100, help="Higher starts first in its queue.")] = 0,
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
            run = client.create_run(spec, queue=queue, priority=priority)
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


dataset_app = typer.Typer(help="Your own image datasets: folders of class folders.", no_args_is_help=True)
app.add_typer(dataset_app, name="dataset")


@dataset_app.command("add")
def dataset_add(
    name: Annotated[str, typer.Argument(help="What runs call it (dataset.name): lowercase letters, digits, _.")],
    path: Annotated[
        Path, typer.Argument(help="PATH/train/<class>/*.png|jpg and PATH/test/<class>/, or PATH/<class>/.")
    ],
    size: Annotated[int, typer.Option(help="Every image is resized to size x size.")] = 64,
    test_fraction: Annotated[
        float, typer.Option(help="Without train/ and test/: this seeded fraction of each class is the test set.")
    ] = 0.2,
    replace: Annotated[bool, typer.Option(help="Replace a dataset of this name registered with other files.")] = False,
    data_dir: DataDir = None,
) -> None:
    """Decode an image folder once into DATA_DIR/datasets/NAME/ (uint8 arrays, as workers load them) and register it.

    Run it where the workers' data directory and the database are (it writes both); a worker elsewhere needs a
    copy of DATA_DIR/datasets/NAME/."""
    import re

    from backend.services import datasets
    from backend.services.errors import Conflict, Invalid
    from trainboard.schemas import DatasetCreate
    from trainboard.spec import BUILTIN_DATASETS, DATASET_NAME_PATTERN
    from worker import folders

    def fail(message: str) -> typer.Exit:
        typer.echo(message, err=True)
        return typer.Exit(2)

    if not re.match(DATASET_NAME_PATTERN, name):
        raise fail(f"{name!r}: a dataset name is 1 to 40 lowercase letters, digits and _, starting with a letter")
    if name in BUILTIN_DATASETS:
        raise fail(f"{name} is a built-in dataset: choose another name")
    settings = _settings(data_dir)
    try:
        decoded = folders.decode(
            path, size=size, test_fraction=test_fraction, memory_budget_gb=settings.memory_budget_gb
        )
    except folders.FolderError as exc:
        raise fail(str(exc)) from exc
    for skipped in decoded.unreadable:
        typer.echo(f"skipped (unreadable): {skipped}", err=True)
    body = DatasetCreate(
        name=name,
        classes=decoded.classes,
        image_size=decoded.size,
        channels=decoded.channels,  # 1 or 3
        train_count=len(decoded.train_x),
        test_count=len(decoded.test_x),
        fingerprint=decoded.fingerprint,
    )
    settings.ensure_data_dir()
    try:
        _, changed = datasets.register_at(
            settings.database, body, replace, lambda: folders.store(settings.datasets_dir, name, decoded)
        )
    except datasets.SchemaMismatch:
        raise fail(
            f"{_redact(settings.database)} is not at this trainboard's schema: `trainboard db upgrade`"
        ) from None
    except (Conflict, Invalid) as exc:
        raise fail(str(exc)) from exc
    typer.echo(
        f"dataset {name} {'registered' if changed else 'unchanged'}: {len(decoded.classes)} classes, "
        f"{body.train_count} train + {body.test_count} test images, "
        f"{decoded.channels}x{size}x{size}, in {folders.folder(settings.datasets_dir, name)}"
    )


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
def gc(data_dir: DataDir = None) -> None:
    """Remove artifact files no run owns any more: folders of deleted runs, superseded checkpoints, uploads
    cut short. Safe beside a running API with the same settings (files are removed only once their rows are)."""
    from backend.services import artifacts

    settings = _settings(data_dir)
    try:
        freed = artifacts.collect_garbage_at(settings.database, settings.artifacts_dir)
    except artifacts.SchemaMismatch:  # its rows are what says which files are kept: no guessing
        typer.echo(
            f"{_redact(settings.database)} is not at this trainboard's schema: `trainboard db upgrade`", err=True
        )
        raise typer.Exit(2) from None
    typer.echo(f"{settings.artifacts_dir}: {freed:,} bytes freed")


@app.command()
def health(
    worker: Annotated[bool, typer.Option("--worker", help="Check this machine's worker instead of the API.")] = False,
    server: Annotated[str | None, typer.Option(help="trainboard URL (default: TRAINBOARD_API_URL).")] = None,
) -> None:
    """Exit 0 when the API answers and its database does (or, with --worker, when this machine's worker has
    reported to the API lately); for docker-compose healthchecks and load balancers."""
    import time

    import httpx

    if worker:
        from worker.announce import ALIVE_FILE

        try:
            age = time.time() - ALIVE_FILE.stat().st_mtime
            interval = float(ALIVE_FILE.read_text().split()[1])
        except (OSError, IndexError, ValueError):
            typer.echo(f"no heartbeat of this worker has reached the API yet ({ALIVE_FILE} is missing)", err=True)
            raise typer.Exit(1) from None
        if age > max(3 * interval, 15.0):
            typer.echo(f"this worker's last heartbeat reached the API {age:.0f} s ago", err=True)
            raise typer.Exit(1)
        typer.echo(f"worker ok: its last heartbeat reached the API {age:.0f} s ago")
        return
    settings = get_settings()
    url = (server or settings.api_url).rstrip("/")
    try:
        response = httpx.get(
            f"{url}/api/health", headers={"Authorization": f"Bearer {settings.client_token('api')}"}, timeout=10
        )
    except (httpx.HTTPError, RuntimeError) as exc:
        typer.echo(f"{url}: {exc}", err=True)
        raise typer.Exit(1) from exc
    if response.status_code != 200:
        typer.echo(f"{url}: HTTP {response.status_code} {response.text[:300]}", err=True)
        raise typer.Exit(1)
    typer.echo(f"{url}: ok (trainboard {response.json()['version']})")


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
