"""The Celery task: claim a run through the API, train it with the engine, report the end.

It runs in the fresh child process each run gets (worker_max_tasks_per_child=1), so every run gives its
memory (GPU memory above all) back when its process exits. The engine is imported inside the task: in a
warm worker (worker/process.py) the parent has imported it already and the import is free; this module
itself imports no torch, so a parent that did not preload stays torch-free.
"""

from __future__ import annotations

import logging
import os
import socket
import traceback

from trainboard.protocol import RunResult
from trainboard.queue import TRAIN_TASK, make_celery
from trainboard.settings import Settings, get_settings
from trainboard.spec import RunSpec
from worker.channel import RunChannel

log = logging.getLogger(__name__)

celery_app = make_celery(get_settings().broker, get_settings().queue)

# The error text a failed run keeps: the exception and the end of its traceback.
TRACEBACK_CHARS = 4000


def train_run(run_id: int) -> str:
    return execute(run_id, get_settings())


# Registered without the decorator syntax: Celery has no type information, and a decorator would make
# `train_run` untyped for every caller.
celery_app.task(name=TRAIN_TASK, ignore_result=True)(train_run)


def execute(run_id: int, settings: Settings) -> str:
    """Train one run end to end. Returns what happened: succeeded, failed, cancelled, or not claimed."""
    channel = RunChannel(
        settings.api_url,
        settings.client_token("worker"),
        run_id,
        heartbeat_seconds=settings.heartbeat_seconds,
        retry_seconds=settings.message_retry_seconds,
    )
    try:
        claim = channel.claim(worker=f"{socket.gethostname()}:{os.getpid()}")
        if claim is None:
            log.info("run %s: not claimed (taken by another worker, or cancelled)", run_id)
            return "not claimed"
        log.info("run %s: attempt %s started", run_id, claim.attempt)
        result: RunResult | None = None
        error: str | None = None
        try:
            import torch

            from worker.engine import fit  # here, not at the top: see the module docstring

            if settings.torch_threads:
                torch.set_num_threads(settings.torch_threads)  # this run's share of the cores (the worker's slots)

            spec = RunSpec.model_validate(claim.spec)
            result = fit(
                spec,
                data_dir=settings.datasets_dir,
                on_epoch=channel.epoch,
                on_prepared=channel.info,
                progress=channel.progress,
                should_stop=channel.should_stop,
            )
        except Exception as exc:
            log.exception("run %s failed", run_id)
            error = f"{type(exc).__name__}: {exc}\n\n{traceback.format_exc()[-TRACEBACK_CHARS:]}"
        status = channel.finish(result=result, error=error)
        log.info("run %s: %s", run_id, status or f"stale ({channel.stop_reason})")
        return status or "stale"
    finally:
        channel.close()
