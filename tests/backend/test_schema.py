"""backend/schema.py and the migrations, on SQLite and PostgreSQL: a database of an older revision, filled,
upgrades with every row intact; the migrations build exactly the schema of backend/tables.py; the start-up
upgrades the embedded SQLite file (keeping a copy) and refuses to change a shared database by itself."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData, Table, insert, inspect, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import SQLModel

import backend.tables  # noqa: F401  (the tables on SQLModel.metadata)
from backend import schema
from backend.db import make_engine
from tests.conftest import make_settings

CREATED = datetime(2026, 11, 30, 12, 0, 0)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def fill_baseline(engine: Engine) -> None:
    """Rows as trainboard 0.1 wrote them: a study with two runs (one early-stopped with restored weights), a
    lone failed run, epochs, tags and notes."""
    meta = MetaData()
    study, run, epoch = (Table(name, meta, autoload_with=engine) for name in ("study", "run", "epoch_metric"))
    common = {
        "created_at": CREATED,
        "progress_epoch": 0,
        "progress_batch": 0,
        "progress_batches": 0,
        "cancel_requested": False,
        "spec": {"epochs": 3},
        "dataset": "digits",
        "arch": "mlp",
        "attempt": 1,
    }
    with engine.begin() as db:
        db.execute(
            insert(study).values(
                id=1,
                name="kernels",
                description="k",
                preset=None,
                overrides={"epochs": 3},
                reported={"a": {"test_acc": 0.9}},
                created_at=CREATED,
            )
        )
        db.execute(
            insert(run).values(
                id=1,
                study_id=1,
                label="a",
                repeat=0,
                name="a",
                status="succeeded",
                epochs_done=3,
                best_test_acc=0.9,
                best_epoch=3,
                final_test_acc=0.9,
                total_seconds=3.0,
                tags=["baseline"],
                notes="fine",
                confusion=[[1, 0], [0, 1]],
                **common,
            )
        )
        db.execute(
            insert(run).values(
                id=2,
                study_id=1,
                label="b",
                repeat=1,
                name="b",
                status="succeeded",
                epochs_done=3,
                best_test_acc=0.8,
                best_epoch=1,
                final_test_acc=0.8,
                total_seconds=3.0,
                tags=[],
                notes="",
                stop_reason="test_acc did not improve by more than 0 for 2 epochs; best 0.8000 "
                "at epoch 1, weights restored",
                **common,
            )
        )
        db.execute(
            insert(run).values(
                id=3,
                study_id=None,
                label=None,
                repeat=0,
                name="lone",
                status="failed",
                epochs_done=0,
                tags=["x", "y"],
                notes="a note",
                error="boom",
                **common,
            )
        )
        for run_id, accs in ((1, [0.5, 0.7, 0.9]), (2, [0.8, 0.6, 0.7])):
            for i, acc in enumerate(accs, start=1):
                db.execute(
                    insert(epoch).values(
                        run_id=run_id,
                        attempt=1,
                        epoch=i,
                        train_loss=1.0 / i,
                        train_acc=acc,
                        test_loss=1.5 / i,
                        test_acc=acc,
                        per_class_acc=[acc, acc],
                        lr=[0.01],
                        seconds=1.0,
                        images_per_s=100.0,
                        created_at=CREATED,
                    )
                )


def rows(engine: Engine, table: str) -> list[dict[str, Any]]:
    meta = MetaData()
    found = Table(table, meta, autoload_with=engine)
    with engine.connect() as db:
        out = [dict(r._mapping) for r in db.execute(select(found).order_by(found.c.id))]
    for row in out:  # JSON columns come back as text on some drivers
        for key, value in row.items():
            if isinstance(value, str) and value[:1] in ("[", "{"):
                row[key] = json.loads(value)
    return out


def assert_rows_intact(before: dict[str, list[dict[str, Any]]], after: dict[str, list[dict[str, Any]]]) -> None:
    """Every row is still there with every column it had, unchanged (new columns may have been added)."""
    for table, old_rows in before.items():
        assert len(after[table]) == len(old_rows), table
        for old, new in zip(old_rows, after[table], strict=True):
            assert {k: v for k, v in new.items() if k in old} == old, table


def test_a_filled_0004_database_upgrades_to_head_with_every_row_intact(engine: Engine) -> None:
    """The revision before issue 11's (artifacts, archive, retry): leases, kills, workers and idempotency keys."""
    schema.upgrade(engine, schema.BASELINE)
    fill_baseline(engine)
    schema.upgrade(engine, "0004")
    meta = MetaData()
    run, worker, key = (Table(name, meta, autoload_with=engine) for name in ("run", "worker", "idempotency_key"))
    with engine.begin() as db:
        db.execute(run.update().where(run.c.id == 3).values(lease_hash="ab" * 32, last_kill_epoch=2))
        db.execute(
            insert(worker).values(
                id=1, name="w@h", host="h", pid=7, version="0.1", queues=["q"], device={"kind": "cpu"}, slots=2,
                running=[1], state="up", started_at=CREATED, last_seen=CREATED,
            )
        )  # fmt: skip
        db.execute(
            insert(key).values(
                id=1, scope="runs", key="k", request_hash="cd" * 32, run_ids=[1, 2], study_id=None, created_at=CREATED
            )
        )
    tables = ("study", "run", "epoch_metric", "worker", "idempotency_key")
    before = {table: rows(engine, table) for table in tables}
    assert schema.upgrade(engine) == ("0004", schema.head())
    after = {table: rows(engine, table) for table in tables}
    assert_rows_intact(before, after)
    assert [(r["attempt_base"], r["resumed_from"], r["archived_at"]) for r in after["run"]] == [(0, None, None)] * 3
    assert all(study["archived_at"] is None for study in after["study"])
    assert rows(engine, "artifact") == []


def test_a_filled_0007_database_upgrades_to_0008_with_a_dataset_table_whose_names_are_unique(engine: Engine) -> None:
    """Issue 14's registered datasets: a new table; every earlier row stays as it was, and 0008 downgrades."""
    schema.upgrade(engine, schema.BASELINE)
    fill_baseline(engine)
    schema.upgrade(engine, "0007")
    tables = ("study", "run", "epoch_metric")
    before = {table: rows(engine, table) for table in tables}
    assert schema.upgrade(engine) == ("0007", schema.head())
    assert_rows_intact(before, {table: rows(engine, table) for table in tables})
    dataset = Table("dataset", MetaData(), autoload_with=engine)
    row = {
        "name": "pets", "classes": ["cat", "dog"], "image_size": 32, "channels": 3, "train_count": 10,
        "test_count": 2, "fingerprint": "f" * 64, "created_at": CREATED,
    }  # fmt: skip
    with engine.begin() as db:
        db.execute(insert(dataset).values(**row))
    assert [(r["name"], r["classes"]) for r in rows(engine, "dataset")] == [("pets", ["cat", "dog"])]
    with pytest.raises(IntegrityError), engine.begin() as db:
        db.execute(insert(dataset).values(**row))
    cfg = schema.config(engine)
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, "0007")
    assert "dataset" not in inspect(engine).get_table_names()
    assert schema.current(engine) == "0007"


def test_a_filled_baseline_database_upgrades_to_head_with_every_row_intact(engine: Engine) -> None:
    schema.upgrade(engine, schema.BASELINE)
    fill_baseline(engine)
    before = {table: rows(engine, table) for table in ("study", "run", "epoch_metric")}
    assert schema.upgrade(engine) == (schema.BASELINE, schema.head())
    after = {table: rows(engine, table) for table in ("study", "run", "epoch_metric")}
    assert_rows_intact(before, after)
    # 0002 filled in the epoch each ended run ended with: the last, or the restored one.
    assert [run["final_epoch"] for run in after["run"]] == [3, 1, None]


def test_a_database_from_before_migrations_is_stamped_then_upgraded(engine: Engine) -> None:
    schema.upgrade(engine, schema.BASELINE)
    fill_baseline(engine)
    with engine.begin() as db:
        db.execute(text("DROP TABLE alembic_version"))  # as trainboard 0.1 left it: the tables, no revision
    assert schema.current(engine) is None
    assert schema.upgrade(engine) == (schema.BASELINE, schema.head())
    assert [r["name"] for r in rows(engine, "run")] == ["a", "b", "lone"]


def test_the_migrations_build_exactly_the_tables_of_backend_tables(engine: Engine) -> None:
    schema.upgrade(engine)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, SQLModel.metadata) == []


@pytest.mark.postgres
def test_an_older_shared_database_is_refused_at_start_up_with_the_command_that_upgrades_it(
    postgres_server_url: str,
) -> None:
    from tests.conftest import reset_database

    reset_database(postgres_server_url)
    engine = make_engine(postgres_server_url)
    try:
        schema.upgrade(engine, schema.BASELINE)
        with pytest.raises(schema.SchemaOutdated, match=r"at revision 0001; .* run `trainboard db upgrade`"):
            schema.prepare(engine, make_settings(Path("/nonexistent")))
        assert schema.current(engine) == schema.BASELINE  # untouched
    finally:
        engine.dispose()
        reset_database(postgres_server_url)


def test_the_embedded_sqlite_database_is_upgraded_at_start_up_and_the_old_file_kept(tmp_path: Path) -> None:
    path = tmp_path / "trainboard.db"
    engine = make_engine(f"sqlite:///{path}")
    schema.upgrade(engine, schema.BASELINE)
    fill_baseline(engine)
    schema.prepare(engine, make_settings(tmp_path))
    assert schema.current(engine) == schema.head()
    engine.dispose()
    kept = tmp_path / f"trainboard.db.before-{schema.BASELINE}"
    with sqlite3.connect(kept) as old:
        assert old.execute("SELECT version_num FROM alembic_version").fetchall() == [(schema.BASELINE,)]
        assert old.execute("SELECT count(*) FROM epoch_metric").fetchone() == (6,)


def test_a_database_older_than_the_baseline_or_from_a_newer_trainboard_is_refused(tmp_path: Path) -> None:
    old = tmp_path / "old.db"
    with sqlite3.connect(old) as db:
        db.execute("CREATE TABLE run (id INTEGER PRIMARY KEY, name VARCHAR(120))")
    engine = make_engine(f"sqlite:///{old}")
    with pytest.raises(schema.SchemaOutdated, match=r"older than its first migration: it lacks .*run\.study_id"):
        schema.prepare(engine, make_settings(tmp_path))
    engine.dispose()
    newer = make_engine(f"sqlite:///{tmp_path / 'newer.db'}")
    schema.upgrade(newer)
    with newer.begin() as db:
        db.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(schema.SchemaOutdated, match="revision 9999, which this trainboard does not know"):
        schema.prepare(newer, make_settings(tmp_path))
    newer.dispose()


def test_a_new_database_is_created_by_the_migrations(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    schema.prepare(engine, make_settings(tmp_path))
    assert schema.current(engine) == schema.head()
    assert not list(tmp_path.glob("*.before-*"))  # nothing to keep a copy of
    engine.dispose()
