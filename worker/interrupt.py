"""Waiting on something slow (a download, a dataset to decode) while a cancel may arrive.

The engine checks `should_stop` once per batch; before the first batch a run may spend minutes fetching
pretrained weights or a dataset. `until_stopped` runs that step on a thread and checks `should_stop`
every POLL_SECONDS meanwhile: a cancel ends the run at once (the step is left to finish on its own; the
run's process exits right after)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
POLL_SECONDS = 0.1


class Stopped(Exception):
    """`should_stop` said so while a slow step was still running."""


def until_stopped(step: Callable[[], T], should_stop: Callable[[], bool] | None) -> T:
    if should_stop is None:
        return step()
    if should_stop():
        raise Stopped
    outcome: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            outcome.append(step())
        except BaseException as exc:  # handed to the caller's thread, which raises it
            failure.append(exc)

    thread = threading.Thread(target=run, name="trainboard-slow-step", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(POLL_SECONDS)
        if thread.is_alive() and should_stop():
            raise Stopped
    if failure:
        raise failure[0]
    return outcome[0]
