"""The change feed shared through Redis: a change on one feed wakes the streams of another, tokens resolve in
every process within the history's reach, and Redis away never fails a notify (said once, not per change)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from backend.services.changes import ChangeFeed, open_feed
from backend.services.redis_changes import RedisChangeFeed, new_key
from tests.conftest import free_port, make_settings, wait_for
from tests.faults.conftest import PrivateRedis


@pytest.fixture
def feeds(redis_url: str) -> Iterator[Callable[..., RedisChangeFeed]]:
    """Started feeds on one stream key of this test's own (deleted at the end)."""
    key, started = new_key(), []

    def start(history: int = 4096, url: str = redis_url) -> RedisChangeFeed:
        feed = RedisChangeFeed(url, key, history=history)
        feed.start()
        started.append(feed)
        return feed

    yield start
    for feed in started:
        feed.close()
    redis.Redis.from_url(redis_url).delete(key)


def woken_within(feed: ChangeFeed, action: Callable[[], object], timeout: float = 5.0) -> float:
    """Seconds from `action` until `feed` wakes a waiter at its current position (timeout: not woken)."""

    async def scenario() -> float:
        seq = feed.seq
        loop = asyncio.get_running_loop()
        start = time.monotonic()
        loop.call_later(0.05, action)
        await feed.wait(seq, timeout)
        return time.monotonic() - start

    return asyncio.run(scenario())


def test_a_change_on_one_feed_wakes_the_other_and_its_token_resolves_there(
    feeds: Callable[..., RedisChangeFeed],
) -> None:
    a, b = feeds(), feeds()
    before_on_b = b.token()
    seq = a.seq
    assert woken_within(a, lambda: b.notify(7)) < 2.0  # the wake-up, not the 5 s timeout
    assert a.changed_since(seq) == (seq + 1, {7})
    wait_for(lambda: b.token() == a.token(), 5, 0.01, "b to mirror its own change")
    assert a.parse(before_on_b) == seq  # a page rendered by b before the change resumes on a...
    assert a.changed_since(seq)[1] == {7}  # ...and is sent the change
    assert a.parse(b.token()) == a.seq  # rendered after it: nothing to send
    assert a.parse("deadbeef.3") is None  # the in-process feed's token (a page from before the switch)
    assert a.parse("garbage") is None


def test_history_reach_a_later_process_loads_it_and_refuses_what_fell_out(
    feeds: Callable[..., RedisChangeFeed],
) -> None:
    a = feeds(history=3)
    tokens = [a.token()]
    for run_id in (1, 2, 3, 4, 5):
        a.notify(run_id)
        wait_for(lambda: a.changed_since(0)[0] >= run_id, 5, 0.01, f"change {run_id} mirrored")  # noqa: B023
        tokens.append(a.token())
    late = feeds(history=3)  # a process started after the changes: it loads the stream's last 3 entries
    seq = late.parse(tokens[2])  # after change 2: changes 3, 4, 5 follow, all in the history
    assert seq is not None
    assert late.changed_since(seq)[1] == {3, 4, 5}
    assert late.parse(tokens[1]) is None  # change 2 is no longer in reach: the page reloads
    assert late.parse(tokens[5]) == late.seq
    assert a.parse(tokens[1]) is None  # the first process's own history fell short of it as well
    assert a.changed_since(a.parse(tokens[3]) or 0)[1] == {4, 5}


def test_redis_away_notify_does_not_raise_says_so_once_and_wakes_this_process(
    caplog: pytest.LogCaptureFixture,
) -> None:
    feed = RedisChangeFeed(f"redis://127.0.0.1:{free_port()}/0", new_key())  # nothing listens there
    with caplog.at_level(logging.WARNING, logger="trainboard.changes"):
        feed.start()  # the API starts without Redis
        try:
            for run_id in range(5):
                feed.notify(run_id)
            assert woken_within(feed, lambda: feed.notify(9)) < 2.0  # this process's own streams still wake
            time.sleep(0.5)  # the listener retries meanwhile
        finally:
            feed.close()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert "Redis is unreachable" in errors[0].getMessage()
    assert errors[0].exc_info is None  # a line, not a traceback


def test_the_listener_reconnects_and_a_redis_restarted_empty_makes_pages_look_again(tmp_path: Path) -> None:
    server = PrivateRedis(tmp_path)
    key = new_key()
    a, b = RedisChangeFeed(server.url, key), RedisChangeFeed(server.url, key)
    try:
        a.start()
        b.start()
        b.notify(1)
        wait_for(lambda: a.changed_since(0)[1] == {1}, 5, 0.01, "a to mirror change 1")
        seq = a.seq
        server.restart()  # without persistence: the stream is gone, and with it anything added meanwhile
        b.notify(2)  # may fail (Redis down) or land: either way nobody may miss it
        wait_for(lambda: a.changed_since(seq)[1] is None, 10, 0.05, "a to forget what it cannot vouch for")
        seq = a.seq
        assert woken_within(a, lambda: b.notify(3)) < 2.0  # live again across processes
        assert 3 in (a.changed_since(seq)[1] or set())
    finally:
        a.close()
        b.close()
        server.stop()


def test_open_feed_chooses_redis_for_a_redis_broker_and_the_process_feed_otherwise(
    tmp_path: Path, redis_url: str
) -> None:
    assert type(open_feed(make_settings(tmp_path))) is ChangeFeed  # the embedded setup: SQLite broker
    shared = open_feed(make_settings(tmp_path, broker_url=redis_url, queue="q-feed"))
    assert isinstance(shared, RedisChangeFeed)
    assert shared.key == "trainboard:q-feed:changes"
    shared.close()
