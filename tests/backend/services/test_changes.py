"""The change feed wakes waiting streams from other threads and knows when its history ran out."""

from __future__ import annotations

import asyncio
import threading
import time

from backend.services.changes import ChangeFeed


def test_notify_from_a_thread_wakes_a_waiter() -> None:
    feed = ChangeFeed()

    async def scenario() -> float:
        start = time.monotonic()
        threading.Timer(0.05, feed.notify, args=(7,)).start()
        await feed.wait(0, timeout=5)
        return time.monotonic() - start

    assert asyncio.run(scenario()) < 2.0  # woken by the notify, not by the 5 s timeout
    assert feed.changed_since(0) == (1, {7})


def test_wait_returns_at_once_when_already_behind_and_times_out_otherwise() -> None:
    feed = ChangeFeed()
    feed.notify(1)

    async def scenario() -> tuple[float, float]:
        start = time.monotonic()
        await feed.wait(0, timeout=5)
        behind = time.monotonic() - start
        start = time.monotonic()
        await feed.wait(1, timeout=0.1)
        return behind, time.monotonic() - start

    behind, idle = asyncio.run(scenario())
    assert behind < 1.0  # not the 5 s timeout
    assert 0.09 <= idle < 1.0


def test_changed_since_reports_lost_history() -> None:
    feed = ChangeFeed(history=3)
    for run_id in (1, 2, 3, 4, 5):
        feed.notify(run_id)
    assert feed.changed_since(2) == (5, {3, 4, 5})
    assert feed.changed_since(1) == (5, None)  # change 2 fell out of the history
    assert feed.changed_since(5) == (5, set())


def test_a_sequence_from_before_a_restart_means_reload() -> None:
    feed = ChangeFeed()  # a restarted server counts from 0 again
    feed.notify(1)

    async def scenario() -> float:
        start = time.monotonic()
        await feed.wait(40, timeout=5)
        return time.monotonic() - start

    assert asyncio.run(scenario()) < 1.0  # no sleeping (5 s) until the count passes 40
    assert feed.changed_since(40) == (1, None)


def test_a_token_from_another_process_is_refused() -> None:
    feed, earlier = ChangeFeed(), ChangeFeed()
    feed.notify(3)
    assert feed.parse(feed.token()) == 1
    assert feed.parse(earlier.token()) is None  # same seq numbers, another boot: the page must reload
    assert feed.parse("garbage") is None
    assert feed.parse(None) == 1
