"""Whether the database answers: one place that knows, so an outage is logged once (when it starts and when
it ends) rather than as a traceback per request, and so the lost-run check grants workers the same grace
after an outage as after a restart (their heartbeats could not land while the database was away)."""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

log = logging.getLogger("trainboard.database")

# What "the database is unavailable" looks like from SQLAlchemy: a connection refused, reset or timed out,
# a server shutting down, a pool with no free connection in time, SQLite's file locked too long.
UNAVAILABLE: tuple[type[Exception], ...] = (OperationalError, InterfaceError, PoolTimeout)


def is_unavailable(error: BaseException) -> bool:
    if isinstance(error, UNAVAILABLE):
        return True
    return isinstance(error, DBAPIError) and bool(error.connection_invalidated)


def describe(error: BaseException) -> str:
    """The error's first line, without SQLAlchemy's statement and parameters."""
    text = str(getattr(error, "orig", None) or error).strip().splitlines()
    return text[0][:300] if text else type(error).__name__


class DatabaseHealth:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.down_since: float | None = None
        self.recovered_at: float | None = None

    def failed(self, error: BaseException) -> None:
        with self._lock:
            if self.down_since is None:
                self.down_since = time.monotonic()
                log.error("the database is unreachable: %s (answering 503 until it is back)", describe(error))

    def ok(self) -> None:
        with self._lock:
            if self.down_since is not None:
                log.warning("the database is reachable again, after %.0f s", time.monotonic() - self.down_since)
                self.down_since, self.recovered_at = None, time.monotonic()

    @property
    def down(self) -> bool:
        return self.down_since is not None
