"""Wakes the live-event streams when a run changes.

The database stays the source of truth: the feed only says "run X changed, look again", so a
stream that misses a wake-up loses nothing — it re-reads the DB on its next wake or timeout.
Writers are sync route handlers in the thread pool; waiters are SSE generators on the event loop.

`ChangeFeed` is the in-process feed: one API process, its own count (the embedded setup, SQLite broker).
Several API processes share one feed through Redis (`backend/services/redis_changes.py`), which mirrors
the shared stream into the same in-memory history, so streams read it exactly as they read this one.
`open_feed` chooses between them, in this one place.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections import deque

from trainboard.settings import Settings


class ChangeFeed:
    def __init__(self, history: int = 4096) -> None:
        self.boot = secrets.token_hex(4)  # tells a position in this process's feed from one in an earlier one
        self.history = history
        self._lock = threading.Lock()
        self._seq = 0
        self._known_from = 0  # the changes after a seq >= this are all in _recent
        self._recent: deque[tuple[int, int]] = deque(maxlen=history)  # (seq, run_id)
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

    @property
    def seq(self) -> int:
        return self._seq

    def token(self) -> str:
        """This feed's position, for a page to resume from: 'boot.seq'."""
        return f"{self.boot}.{self._seq}"

    def parse(self, token: str | None) -> int | None:
        """The sequence number in a token from `token()`; None if it comes from another process (or is garbled).
        No token: from now on."""
        if token is None:
            return self._seq
        boot, _, seq = token.partition(".")
        return int(seq) if boot == self.boot and seq.isdigit() else None

    def notify(self, run_id: int) -> None:
        with self._lock:
            self._append(run_id)
        self._wake()

    def _append(self, run_id: int) -> int:
        """One change into the history (the lock held); its seq."""
        if len(self._recent) == self._recent.maxlen:
            self._known_from = self._recent[0][0]  # the oldest change falls out
        self._seq += 1
        self._recent.append((self._seq, run_id))
        return self._seq

    def _forget(self) -> None:
        """Changes may have happened that the history does not hold (the lock held): every position up to now
        answers None, so each stream looks again (the runs list reloads)."""
        self._seq += 1
        self._known_from = self._seq
        self._recent.clear()

    def _wake(self) -> None:
        with self._lock:
            waiters = list(self._waiters)
        for loop, event in waiters:
            loop.call_soon_threadsafe(event.set)

    def changed_since(self, seq: int) -> tuple[int, set[int] | None]:
        """(current seq, run ids changed after `seq`); None when the history no longer reaches back that far,
        or when `seq` is from before a server restart (ahead of this feed's count)."""
        with self._lock:
            if seq > self._seq or seq < self._known_from:
                return self._seq, None
            return self._seq, {run_id for s, run_id in self._recent if s > seq}

    async def wait(self, seq: int, timeout: float) -> None:
        """Return as soon as anything changed after `seq`, or after `timeout` seconds."""
        event = asyncio.Event()
        entry = (asyncio.get_running_loop(), event)
        with self._lock:
            if self._seq != seq:  # behind, or ahead (a client from before a restart): look now
                return
            self._waiters.add(entry)
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            pass
        finally:
            with self._lock:
                self._waiters.discard(entry)

    def start(self) -> None:
        """Nothing to start in one process (the shared feed starts its listener here)."""

    def close(self) -> None:
        """Nothing to release in one process."""


def open_feed(settings: Settings) -> ChangeFeed:
    """The feed for this deployment: shared through Redis when the broker is Redis (any number of API processes
    then follow each other's changes), else this process's own."""
    if settings.redis_broker:
        from backend.services.redis_changes import RedisChangeFeed

        return RedisChangeFeed(settings.broker, key=f"trainboard:{settings.queue}:changes")
    return ChangeFeed()
