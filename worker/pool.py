"""Celery's prefork pool, replacing a finished run's process at once.

A worker forks a fresh process per run (`worker_max_tasks_per_child=1`). With a broker Celery reads in a
blocking loop (the embedded SQLite one), the pool's supervisor thread notices an exited process only when
it wakes, every 0.8 s: on average 0.4 s of idle worker between two runs, most of a short run's overhead.
This pool's supervisor looks every 20 ms (a check of each process's exit status; nothing else). With
Redis, Celery's event loop sees the exit at once anyway.
"""

from __future__ import annotations

import time
from typing import Any

from billiard import pool as billiard_pool
from celery.concurrency import prefork

CHECK_SECONDS = 0.02


class PromptSupervisor(billiard_pool.Supervisor):  # type: ignore[misc]
    def body(self) -> None:
        pool: Any = self.pool
        # billiard's own start-up burst: maintain the pool ten times, allowing more restarts meanwhile.
        previous = pool.restart_state
        pool.restart_state = billiard_pool.restart_state(10 * pool._processes, 1)
        for _ in range(10):
            if self._state == billiard_pool.RUN and pool._state == billiard_pool.RUN:
                pool._maintain_pool()
                time.sleep(0.1)
        pool.restart_state = previous
        while self._state == billiard_pool.RUN and pool._state == billiard_pool.RUN:
            pool._maintain_pool()
            time.sleep(CHECK_SECONDS)


class PromptBlockingPool(billiard_pool.Pool):  # type: ignore[misc]
    Supervisor = PromptSupervisor


class TaskPool(prefork.TaskPool):  # type: ignore[misc]
    BlockingPool = PromptBlockingPool
