"""Which API process leads: runs the recovery loop and the broker re-send at start-up. One at a time.

On PostgreSQL the leader holds a session-level advisory lock on a connection of its own, kept open while it
leads; the others try for it again each round of their recovery loop. A leader that dies (kill -9 included)
loses the lock with its connection, and the next round of another process takes it. A leader whose
connection breaks stops leading and raises the database error, which its recovery loop treats as any other
database outage; it contends again in its next round. On SQLite the process is the only one
(several API processes need PostgreSQL: `Settings.api_processes_problem`), so it always leads.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import zlib

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

from backend.db import CONNECT_TIMEOUT_S

log = logging.getLogger("trainboard.leadership")

# The advisory lock's key: one per database (PostgreSQL scopes advisory locks to the database).
LOCK_KEY = zlib.crc32(b"trainboard.recovery")


class Leadership:
    """The only process there is: it always leads (SQLite, or a test)."""

    @property
    def leading(self) -> bool:
        """Whether this process led at its last check (for /api/health; checks nothing)."""
        return True

    def held(self) -> bool:
        """Whether this process leads now; contends for it when it does not."""
        return True

    def close(self) -> None:
        """Stop leading (the lock goes with its connection)."""


class AdvisoryLockLeadership(Leadership):
    def __init__(self, engine: Engine, key: int = LOCK_KEY) -> None:
        # A connection of its own, not one of the pool's: it stays open as long as this process leads.
        self._engine = create_engine(
            engine.url,
            poolclass=NullPool,
            isolation_level="AUTOCOMMIT",  # no transaction left open on the lock's connection
            connect_args={"connect_timeout": CONNECT_TIMEOUT_S},
        )
        self.key = key
        self._lock = threading.Lock()
        self._connection: Connection | None = None
        self._leading = False

    @property
    def leading(self) -> bool:
        return self._leading

    def held(self) -> bool:
        with self._lock:
            try:
                if self._connection is None:
                    self._connection = self._engine.connect()
                if self._leading:
                    self._connection.execute(text("SELECT 1"))  # the lock lives as long as this session does
                    return True
                if self._connection.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}):
                    self._leading = True
                    log.info("this API process leads: it runs the recovery loop")
                return self._leading
            except Exception:
                self._drop()
                raise

    def _drop(self) -> None:
        if self._leading:
            log.warning("this API process lost its lead (its lock's database connection broke)")
        self._leading = False
        if self._connection is not None:
            with contextlib.suppress(Exception):  # a broken connection may fail to close: it is gone either way
                self._connection.invalidate()  # never back to a pool: closed, and with it the lock
                self._connection.close()
            self._connection = None

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()  # the session ends: the lock is released
                self._connection = None
            self._leading = False
        self._engine.dispose()


def leadership_for(engine: Engine) -> Leadership:
    return AdvisoryLockLeadership(engine) if engine.dialect.name == "postgresql" else Leadership()
