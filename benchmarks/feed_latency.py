"""How long an epoch takes from a worker's report to the live page, across API processes.

Starts real API processes (uvicorn, this checkout's code) on one PostgreSQL database of the benchmark's own:
two with a Redis broker, so the change feed goes through Redis — a worker reports each epoch to process B
while the page's event stream (`GET /api/runs/{id}/events`) is open on process A — and, as the baseline in
the same session, one process with the SQLite broker and so the in-process feed, where report and stream
meet in one process (all a single API process could do before). The latency is from just before the
report's POST to the epoch event's arrival on the stream: the report's own commit is in both.

    .venv/bin/python -m benchmarks.feed_latency                 # 200 epochs each; local PostgreSQL and Redis
    .venv/bin/python -m benchmarks.feed_latency --events 500 --database-url postgresql+psycopg://u:pw@host/postgres
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from backend import schema
from backend.db import make_engine

REPO = Path(__file__).resolve().parent.parent
API_TOKEN, WORKER_TOKEN = "bench-api-token-0123456789", "bench-worker-token-0123456789"
API, WORKER = {"Authorization": f"Bearer {API_TOKEN}"}, {"Authorization": f"Bearer {WORKER_TOKEN}"}
SPEC = {"dataset": {"name": "digits"}, "model": {"arch": "mlp"}, "epochs": 1000, "device": "cpu"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Api:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "backend.app:create_app", "--port", str(self.port)],
            cwd=REPO,
            env=os.environ | env | {"TRAINBOARD_API_URL": self.url},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_until_up(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/api/health", headers=API, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"the API on {self.port} did not start (see {self._log.name})")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=20)
        self._log.close()


def measure(report_to: str, stream_from: str, events: int) -> list[float]:
    """Seconds from each epoch report (POST to `report_to`) to its event on a stream of `stream_from`."""
    with httpx.Client(base_url=report_to, timeout=30) as worker:
        run_id = worker.post("/api/runs", json=SPEC, headers=API).json()["id"]
        claim = worker.post(f"/api/runs/{run_id}/claim", json={"worker": "bench"}, headers=WORKER).json()
        lease = {"attempt": claim["attempt"], "lease": claim["lease"]}
        arrived: queue.Queue[tuple[int, float]] = queue.Queue()
        opened = threading.Event()

        def listen() -> None:
            with httpx.Client(base_url=stream_from, headers=API, timeout=60) as page:
                with page.stream("GET", f"/api/runs/{run_id}/events") as response:
                    opened.set()
                    fields: dict[str, str] = {}
                    for line in response.iter_lines():
                        if line and not line.startswith(":"):
                            key, _, value = line.partition(":")
                            fields[key] = value.strip()
                            continue
                        if fields.get("event") == "epoch":  # an event ends with a blank line
                            arrived.put((int(fields["id"]), time.monotonic()))
                        elif fields.get("event") == "end":
                            return
                        fields = {}

        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        opened.wait(30)
        time.sleep(0.3)  # the stream has read the run and waits on the feed
        latencies = []
        for epoch in range(1, events + 1):
            record = {
                "epoch": epoch,
                "train_loss": 1.0,
                "train_acc": 0.5,
                "test_loss": 1.0,
                "test_acc": 0.5,
                "per_class_acc": [0.5] * 10,
                "lr": [0.01],
                "seconds": 0.1,
                "images_per_s": 1000.0,
            }
            sent = time.monotonic()
            answer = worker.post(f"/api/runs/{run_id}/epochs", json=lease | {"record": record}, headers=WORKER)
            answer.raise_for_status()
            got, at = arrived.get(timeout=30)
            if got != epoch:
                raise RuntimeError(f"epoch {epoch} expected, {got} arrived")
            latencies.append(at - sent)
            time.sleep(0.02)  # one report at a time, like a worker's epochs
        result = {"stopped": "completed", "epochs_run": events, "total_seconds": 1.0}
        worker.post(f"/api/runs/{run_id}/finish", json=lease | {"result": result}, headers=WORKER)
        listener.join(10)
        return latencies


def summary(latencies: list[float]) -> dict[str, float]:
    ms = sorted(x * 1000 for x in latencies)
    return {
        "median_ms": round(statistics.median(ms), 2),
        "p95_ms": round(ms[int(0.95 * (len(ms) - 1))], 2),
        "max_ms": round(ms[-1], 2),
        "events": len(ms),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument(
        "--database-url",
        default="postgresql+psycopg://postgres:postgres@127.0.0.1:5432/postgres",
        help="a PostgreSQL server where the benchmark may create (and then drop) a database of its own",
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "feed_latency.json")
    args = parser.parse_args()

    name = f"trainboard_bench_feed_{uuid.uuid4().hex[:8]}"
    admin = create_engine(args.database_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(args.database_url).set(database=name).render_as_string(hide_password=False)
    queue_name = f"bench-feed-{uuid.uuid4().hex[:8]}"
    started: list[Api] = []
    try:
        engine = make_engine(url)
        schema.upgrade(engine)
        engine.dispose()
        data_dir = Path(tempfile.mkdtemp(prefix="trainboard-feed-bench-"))
        env = {
            "TRAINBOARD_DATA_DIR": str(data_dir),
            "TRAINBOARD_DATABASE_URL": url,
            "TRAINBOARD_QUEUE": queue_name,
            "TRAINBOARD_API_TOKEN": API_TOKEN,
            "TRAINBOARD_WORKER_TOKEN": WORKER_TOKEN,
        }
        shared = env | {"TRAINBOARD_BROKER_URL": args.redis_url}
        a, b = Api(shared, data_dir / "a.log"), Api(shared, data_dir / "b.log")
        alone = Api(env | {"TRAINBOARD_BROKER_URL": f"sqla+sqlite:///{data_dir / 'broker.db'}"}, data_dir / "c.log")
        started += [a, b, alone]
        for api in started:
            api.wait_until_up()
        measure(b.url, a.url, 20)  # warm-up of both paths
        measure(alone.url, alone.url, 20)
        across = summary(measure(b.url, a.url, args.events))
        baseline = summary(measure(alone.url, alone.url, args.events))
    finally:
        for api in started:
            api.stop()
        client = redis.Redis.from_url(args.redis_url)
        client.delete(queue_name, f"trainboard:{queue_name}:changes", f"_kombu.binding.{queue_name}")
        client.close()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    result: dict[str, Any] = {
        "date": datetime.now(UTC).date().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "command": " ".join(["python -m benchmarks.feed_latency", *sys.argv[1:]]),
        "report_on_B_event_on_A_redis_feed": across,
        "baseline_one_process_in_process_feed": baseline,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
