"""Alembic's entry point: runs the migrations on the connection backend/schema.py hands it."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

import backend.tables  # noqa: F401  (registers the tables on SQLModel.metadata, for autogenerate)
from backend.db import make_engine

config = context.config


def _run(connection: Connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # A batch migration rebuilds a table (copy, drop, rename); with foreign keys enforced the drop would
        # cascade to the rows that reference it. Off for the migration, back on in every later connection.
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
    context.configure(
        connection=connection,
        target_metadata=SQLModel.metadata,
        render_as_batch=sqlite,  # SQLite's ALTER TABLE cannot change columns: alembic copies the table instead
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as fresh:
        _run(fresh)
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("trainboard's migrations run online only: `trainboard db upgrade`")
run_migrations()
