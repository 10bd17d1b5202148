"""The database: engine creation and a timezone-safe datetime column. (Its schema: backend/schema.py.)"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import DateTime, event
from sqlalchemy.engine import Engine
from sqlalchemy.types import TypeDecorator
from sqlmodel import create_engine


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


# Bounds on waiting for the database, so that an outage answers 503 in seconds instead of hanging requests:
CONNECT_TIMEOUT_S = 5  # to open a connection (a server that is down, or frozen, or unreachable)
POOL_TIMEOUT_S = 5  # for a free connection of the pool
STATEMENT_TIMEOUT_MS = 30_000  # PostgreSQL cancels a statement running longer (a lock that never frees)
SQLITE_BUSY_TIMEOUT_S = 10  # SQLite waits this long for another writer's lock


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        # Route handlers run in a thread pool; the WAL journal lets pages read while a report writes.
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_S})
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(
            url,
            pool_pre_ping=True,
            pool_timeout=POOL_TIMEOUT_S,
            connect_args={
                "connect_timeout": CONNECT_TIMEOUT_S,
                "options": f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
            },
        )
    return engine


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
