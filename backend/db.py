"""The database: engine creation, sessions, and a timezone-safe datetime column."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import DateTime, event, inspect
from sqlalchemy.engine import Engine
from sqlalchemy.types import TypeDecorator
from sqlmodel import SQLModel, create_engine


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC (SQLite has no time zones) and always gives back an aware UTC datetime."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: use backend.db.utcnow()")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        # Route handlers run in a thread pool; the WAL journal lets pages read while a report writes.
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(url, pool_pre_ping=True)
    return engine


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class SchemaOutdated(RuntimeError):
    """The database has tables from an older trainboard, without columns this one needs."""


def create_tables(engine: Engine) -> None:
    """Create missing tables. There are no migrations yet: an existing table that lacks a column of this
    version (a database from before studies, say) stops the start-up with the columns to add."""
    from backend import models  # noqa: F401  (registers the tables on SQLModel.metadata)

    SQLModel.metadata.create_all(engine)
    inspector = inspect(engine)
    missing = [
        f"{table.name}.{column.name}"
        for table in SQLModel.metadata.sorted_tables
        for column in table.columns
        if column.name not in {c["name"] for c in inspector.get_columns(table.name)}
    ]
    if missing:
        raise SchemaOutdated(
            f"the database {engine.url.render_as_string(hide_password=True)} was made by an older trainboard: "
            f"it lacks the columns {', '.join(missing)}. There are no migrations yet: add them by hand "
            "(ALTER TABLE ... ADD COLUMN), or start from a new database."
        )
