"""Wakes the live-event streams when a run changes.

The database stays the source of truth: the feed only says "run X changed, look again", so a
stream that misses a wake-up loses nothing — it re-reads the DB on its next wake or timeout.
Writers are sync route handlers in the thread pool; waiters are SSE generators on the event loop.
One API process holds one feed (workers are separate processes and report over HTTP).
"""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections import deque


class ChangeFeed:
    def __init__(self, history: int = 4096) -> None:
        self.boot = secrets.token_hex(4)  # tells a position in this process's feed from one in an earlier one
        self._lock = threading.Lock()
        self._seq = 0
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
            self._seq += 1
            self._recent.append((self._seq, run_id))
            waiters = list(self._waiters)
        for loop, event in waiters:
            loop.call_soon_threadsafe(event.set)

    def changed_since(self, seq: int) -> tuple[int, set[int] | None]:
        """(current seq, run ids changed after `seq`); None when the history no longer reaches back that far,
        or when `seq` is from before a server restart (ahead of this feed's count)."""
        with self._lock:
            if seq > self._seq or (self._recent and self._recent[0][0] > seq + 1):
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
