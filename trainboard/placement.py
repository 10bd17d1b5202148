"""Placement: which broker queue a run's id goes to, and which ones a worker takes from.

A run names a queue (a property of the run, not of its spec: it never shows in a config diff);
a worker listens on one or more. A worker with a GPU also listens on each queue's CUDA variant, and a run
whose spec asks for a GPU (device cuda, cuda:N) goes only there: it never lands on a CPU-only worker.
"""

from __future__ import annotations

DEFAULT_QUEUE = "default"
QUEUE_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,39}$"
MAX_QUEUES = 8  # a worker listens on at most this many queues (and their CUDA variants)


def broker_queue(deployment: str, queue: str, gpu: bool) -> str:
    """The broker's name for a run queue: the deployment's queue (TRAINBOARD_QUEUE) for the default one,
    `deployment:queue` for a named one, with `@cuda` appended for the variant only GPU workers take. Neither
    `:` nor `@` can appear in a deployment's or a run queue's name, so no two of these names meet."""
    name = deployment if queue == DEFAULT_QUEUE else f"{deployment}:{queue}"
    return f"{name}@cuda" if gpu else name


def listened_queues(deployment: str, queues: list[str], gpu: bool) -> list[str]:
    """The broker queues a worker with these run queues takes from: each one, and its CUDA variant on a GPU."""
    return [broker_queue(deployment, queue, cuda) for queue in queues for cuda in ((False, True) if gpu else (False,))]
