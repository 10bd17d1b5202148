"""The change feed shared by every API process of a deployment, through a Redis Stream.

`notify` appends the run id to the stream (XADD, trimmed to about `history` entries). Each process runs one
listener thread that reads the stream (XREAD BLOCK from the last id it has) and mirrors every entry into the
in-memory history of `ChangeFeed`, waking the waiting streams as a local change does: a change made on any
process wakes the streams of all of them. A token is a stream id, so a page rendered by one process resumes
on any other; at start the mirror loads the last `history` entries, so tokens from before this process
started still resolve, and one the history no longer reaches answers None (the page reloads), as before.

Redis down: the database is the source of truth, so `notify` never fails the request. It wakes this
process's streams (each looks again) and says once that the feed is down; streams elsewhere wake on their
timeout. When Redis answers again, the process that could not announce changes appends a gap entry, and
every mirror that finds its last id gone (a Redis restarted empty) forgets its history: every stream
then looks again and the runs lists reload, since changes may have gone unannounced.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import deque
from typing import Any, cast

import redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from backend.services.changes import ChangeFeed

log = logging.getLogger("trainboard.changes")

StreamId = tuple[int, int]
Entries = list[tuple[bytes, dict[bytes, bytes]]]  # what XRANGE and XREAD answer for a stream (RESP2)
GAP = "gap"  # an entry's run field when changes went unannounced
BLOCK_MS = 1000  # the listener's XREAD waits this long per call (and so notices close() within it)
RETRY_S = (0.2, 0.5, 1.0, 2.0)  # reconnect back-off, then every 2 s
SEND_TIMEOUT_S = 2.0  # notify waits at most this long for Redis (a frozen one must not hold requests)


def parse_id(text: str | bytes) -> StreamId | None:
    if isinstance(text, bytes):
        text = text.decode("ascii", "replace")
    ms, sep, seq = text.partition("-")
    if not (sep and ms.isdigit() and seq.isdigit() and len(text) <= 40):
        return None
    return int(ms), int(seq)


def format_id(stream_id: StreamId) -> str:
    return f"{stream_id[0]}-{stream_id[1]}"


def redis_client(url: str, **options: Any) -> redis.Redis:
    """A client for a kombu broker URL (redis://, rediss://, or redis+socket:///path for a Unix socket)."""
    if url.startswith("redis+socket://"):
        url = "unix://" + url.removeprefix("redis+socket://")
    return redis.Redis.from_url(url, **options)


class RedisChangeFeed(ChangeFeed):
    def __init__(self, url: str, key: str, history: int = 4096) -> None:
        super().__init__(history)
        self.key = key
        # One retry for a send (a pooled connection from before a Redis restart), none for the listener: a broken
        # connection must reach it, since entries may have been lost with the server (see _sync).
        timeouts = {"socket_connect_timeout": SEND_TIMEOUT_S}
        self._send = redis_client(url, socket_timeout=SEND_TIMEOUT_S, retry=Retry(NoBackoff(), 1), **timeouts)
        self._read = redis_client(url, socket_timeout=BLOCK_MS / 1000 + 5, retry=Retry(NoBackoff(), 0), **timeouts)
        self._ids: deque[tuple[StreamId, int]] = deque()  # (stream id, seq) of each change in _recent, oldest first
        self._last: StreamId = (0, 0)  # the newest stream id mirrored (or the stream's end when loaded)
        self._floor: StreamId = (0, 0)  # tokens at or after this resolve: every later change is mirrored
        self._loaded = False
        self._down_since: float | None = None
        self._unannounced = False  # a notify could not reach Redis: the others must look again
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the ChangeFeed interface ------------------------------------------------------------------

    def token(self) -> str:
        """The stream id of the newest change this process has mirrored: every API process understands it."""
        with self._lock:
            return format_id(self._last)

    def parse(self, token: str | None) -> int | None:
        if token is None:
            return self._seq
        stream_id = parse_id(token)
        if stream_id is None:
            return None  # garbled, or a token of the in-process feed (a page from before the switch)
        with self._lock:
            if stream_id >= self._last:  # now, or a change another process announced that is not mirrored yet
                return self._seq
            if stream_id < self._floor:
                return None  # the history no longer reaches back that far
            for mirrored, seq in reversed(self._ids):
                if mirrored <= stream_id:
                    return seq
            return self._ids[0][1] - 1 if self._ids else self._seq

    def notify(self, run_id: int) -> None:
        """Announce a change to every API process. Never raises: with Redis away the change is in the DB anyway."""
        if self._down_since is None:
            try:
                if self._unannounced:
                    self._add(GAP)
                    self._unannounced = False
                self._add(str(run_id))
                return
            except RedisError as exc:
                self._outage(exc)
        self._unannounced = True
        self._wake()  # this process's streams look again; the others wake on their timeout

    # -- the listener ------------------------------------------------------------------------------

    def start(self) -> None:
        try:
            self._sync()
        except RedisError as exc:  # the API starts without Redis; the listener keeps trying
            self._outage(exc)
        self._thread = threading.Thread(target=self._listen, name="trainboard-changes", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=BLOCK_MS / 1000 + 5)
        self._send.close()
        self._read.close()

    def _listen(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                if self._down_since is not None or not self._loaded:
                    self._sync()
                reply = self._read.xread({self.key: format_id(self._last)}, count=1000, block=BLOCK_MS)
                for _key, entries in cast(list[tuple[bytes, Entries]], reply or []):
                    self._mirror(entries)
                failures = 0
            except RedisError as exc:
                self._outage(exc)
                self._stop.wait(RETRY_S[min(failures, len(RETRY_S) - 1)])
                failures += 1
            except Exception:  # a bug: say where, and keep the feed alive
                log.exception("the change feed's listener failed")
                self._stop.wait(1.0)

    def _sync(self) -> None:
        """At start: load the last `history` entries. After an outage: forget the history if entries may have
        been lost meanwhile (the last one mirrored is gone: Redis restarted empty, or trimmed past it)."""
        if not self._loaded:
            # One more than the history: the changes after that one are all mirrored, so a token from it on resolves.
            newest = cast(Entries, self._read.xrevrange(self.key, "+", "-", count=self.history + 1))
            with self._lock:
                entries = list(reversed(newest))
                if len(entries) > self.history:
                    self._floor = self._last = parse_id(entries.pop(0)[0]) or (0, 0)
                for entry_id, fields in entries:
                    self._record(entry_id, fields)
                self._loaded = True
        elif self._last != (0, 0) and not self._read.xrange(self.key, format_id(self._last), format_id(self._last)):
            with self._lock:
                self._forget()
                self._ids.clear()
                self._floor = self._last
            self._wake()
        if self._unannounced:
            self._add(GAP)
            self._unannounced = False
        self._recovered()

    def _mirror(self, entries: Entries) -> None:
        with self._lock:
            for entry_id, fields in entries:
                self._record(entry_id, fields)
        self._wake()

    def _record(self, entry_id: bytes, fields: dict[bytes, bytes]) -> None:
        """One stream entry into the history (the lock held)."""
        stream_id = parse_id(entry_id)
        if stream_id is None or stream_id <= self._last:
            return
        self._last = stream_id
        run = fields.get(b"run", b"").decode("ascii", "replace")
        if run.isdigit():
            if len(self._ids) == self.history:
                self._floor = self._ids.popleft()[0]  # the oldest change falls out of the history too
            self._ids.append((stream_id, self._append(int(run))))
        elif run == GAP:
            self._forget()
            self._ids.clear()
            self._floor = stream_id

    def _add(self, run: str) -> None:
        self._send.xadd(self.key, {"run": run}, maxlen=self.history, approximate=True)

    # -- outages: said once when one starts and once when it ends ----------------------------------

    def _outage(self, error: BaseException) -> None:
        with self._lock:
            if self._down_since is not None:
                return
            self._down_since = time.monotonic()
        log.error(
            "Redis is unreachable for the change feed: %s (live updates between API processes pause; "
            "pages catch up within 15 s)",
            str(error).splitlines()[0][:300] if str(error) else type(error).__name__,
        )

    def _recovered(self) -> None:
        with self._lock:
            since, self._down_since = self._down_since, None
        if since is not None:
            log.warning("Redis is reachable again for the change feed, after %.0f s", time.monotonic() - since)


def new_key(prefix: str = "trainboard:test") -> str:
    """A stream key of its own (tests, benchmarks)."""
    return f"{prefix}:{secrets.token_hex(4)}:changes"
