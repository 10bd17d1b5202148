"""How fast the runs list and the compare view answer with many runs in the database.

Seeds N runs of E epochs each (default 1,000 x 50 = 50,000 metric rows) into a fresh database,
then times, through the real app in-process (routing, auth, DB, JSON), the requests the pages
make: the first page of the runs list, a filtered and searched page, a sorted page, and a compare
of 50 runs with their curves. The baseline, in the same process, is the bare SQL a hand-written
endpoint would at least run (one SELECT of the same rows), so the ratio shows what the app adds.

    .venv/bin/python benchmarks/runs_list.py                       # SQLite in a temporary directory
    .venv/bin/python benchmarks/runs_list.py --database-url postgresql+psycopg://postgres@127.0.0.1/bench
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import insert, text
from sqlmodel import SQLModel

from backend import schema
from backend.app import create_app
from backend.db import make_engine, utcnow
from backend.tables import EpochMetric, Run
from trainboard.schemas import RunStatus
from trainboard.settings import Settings

TOKEN = "benchmark-token-0123456789"


def seed(url: str, runs: int, epochs: int) -> None:
    engine = make_engine(url)
    SQLModel.metadata.drop_all(engine)  # a fresh database each time
    with engine.begin() as db:
        db.execute(text("DROP TABLE IF EXISTS alembic_version"))
        if db.dialect.name == "postgresql":
            db.execute(text("DROP TYPE IF EXISTS runstatus"))
    schema.upgrade(engine)
    rng = random.Random(0)
    now = utcnow()
    statuses = [RunStatus.succeeded] * 8 + [RunStatus.failed, RunStatus.cancelled]
    run_rows, metric_rows = [], []
    for i in range(1, runs + 1):
        arch = "cnn" if i % 2 else "mlp"
        model = (
            {
                "arch": "cnn",
                "channels": [32, 64],
                "kernel_sizes": [3, 3],
                "pool": "max",
                "dilation": 1,
                "hidden": [128, 64],
            }
            if arch == "cnn"
            else {"arch": "mlp", "hidden": [128, 64], "batch_norm": False}
        )
        spec = {
            "name": f"run-{i}",
            "dataset": {"name": "mnist", "normalize": "standard"},
            "model": model,
            "optimizer": {"name": "sgd", "lr": rng.choice([0.1, 0.01, 0.001]), "momentum": 0.9},
            "epochs": epochs,
            "batch_size": rng.choice([32, 64, 128]),
            "seed": i,
            "device": "auto",
        }
        accs = [min(0.99, 0.5 + 0.45 * (1 - 0.8**e) + rng.gauss(0, 0.01)) for e in range(1, epochs + 1)]
        best = max(range(epochs), key=accs.__getitem__)
        run_rows.append(
            {
                "id": i,
                "name": f"run-{i}",
                "dataset": "mnist",
                "arch": arch,
                "spec": spec,
                "status": statuses[i % len(statuses)],
                "attempt": 1,
                "created_at": now,
                "started_at": now,
                "finished_at": now,
                "progress_epoch": epochs,
                "progress_batch": 0,
                "progress_batches": 0,
                "cancel_requested": False,
                "epochs_done": epochs,
                "best_test_acc": accs[best],
                "best_epoch": best + 1,
                "final_test_acc": accs[-1],
                "total_seconds": 2.5 * epochs,
                "tags": ["bench"] if i % 10 == 0 else [],
                "notes": "baseline sweep" if i % 7 == 0 else "",
            }
        )
        for e, acc in enumerate(accs, start=1):
            metric_rows.append(
                {
                    "run_id": i,
                    "attempt": 1,
                    "epoch": e,
                    "train_loss": 1 / e,
                    "train_acc": acc,
                    "test_loss": 1.1 / e,
                    "test_acc": acc,
                    "per_class_acc": [acc] * 10,
                    "lr": [0.01],
                    "seconds": 2.5,
                    "images_per_s": 24000.0,
                    "created_at": now,
                }
            )
    with engine.begin() as connection:
        connection.execute(insert(Run), run_rows)
        for start in range(0, len(metric_rows), 10_000):
            connection.execute(insert(EpochMetric), metric_rows[start : start + 10_000])
    engine.dispose()


def median_ms(fn: Callable[[], Any], repeats: int) -> float:
    fn()  # warm: caches, the first connection
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        started = time.perf_counter()
        seed(url, args.runs, args.epochs)
        print(
            f"seeded {args.runs} runs x {args.epochs} epochs into {url.split(':')[0]} "
            f"in {time.perf_counter() - started:.1f} s"
        )
        settings = Settings(
            data_dir=Path(tmp),
            database_url=url,
            api_token=TOKEN,
            worker_token=TOKEN + "w",
            broker_url=f"sqla+sqlite:///{Path(tmp) / 'broker.db'}",
            allowed_hosts=["testserver"],  # the host name of the in-process TestClient
        )
        engine = make_engine(url)
        ids50 = ",".join(str(i) for i in range(1, 51))
        with TestClient(create_app(settings), headers={"Authorization": f"Bearer {TOKEN}"}) as client:

            def get(path: str) -> Callable[[], Any]:
                def call() -> Any:
                    response = client.get(path)
                    assert response.status_code == 200, response.text
                    return response

                return call

            def sql(query: str) -> Callable[[], Any]:
                def call() -> Any:
                    with engine.connect() as connection:
                        return connection.execute(text(query)).fetchall()

                return call

            cases = [
                (
                    "runs list, first 100",
                    get("/api/runs?limit=100"),
                    sql("SELECT * FROM run ORDER BY id DESC LIMIT 100"),
                ),
                (
                    "filtered + search",
                    get("/api/runs?limit=100&arch=cnn&status=succeeded&q=baseline"),
                    sql(
                        "SELECT * FROM run WHERE arch='cnn' AND status='succeeded' AND lower(notes) LIKE '%baseline%' "
                        "ORDER BY id DESC LIMIT 100"
                    ),
                ),
                (
                    "sorted by best acc",
                    get("/api/runs?limit=100&sort=-best_test_acc"),
                    sql("SELECT * FROM run ORDER BY best_test_acc DESC LIMIT 100"),
                ),
                (
                    "compare 50 runs",
                    get(f"/api/compare?runs={ids50}"),
                    sql(f"SELECT * FROM epoch_metric WHERE run_id IN ({ids50}) ORDER BY run_id, epoch"),
                ),
            ]
            print(f"\n{'request':<24} {'app ms':>8} {'bare SQL ms':>12} {'app / SQL':>10}")
            for name, call, baseline in cases:
                app_ms, sql_ms = median_ms(call, args.repeats), median_ms(baseline, args.repeats)
                print(f"{name:<24} {app_ms:8.1f} {sql_ms:12.2f} {app_ms / sql_ms:10.1f}")
        engine.dispose()


if __name__ == "__main__":
    main()
