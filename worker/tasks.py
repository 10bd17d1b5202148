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

from trainboard.protocol import RunResult, StopState
from trainboard.queue import TRAIN_TASK, make_celery
from trainboard.settings import Settings, get_settings
from trainboard.spec import RunSpec
from worker import run_state
from worker.channel import RunChannel
from worker.uploads import Uploads

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
        claim = channel.claim(worker=f"{settings.worker_name or socket.gethostname()}:{os.getpid()}")
        if claim is None:
            log.info("run %s: not claimed (taken by another worker, cancelled or deleted)", run_id)
            return "not claimed"
        log.info("run %s: attempt %s started", run_id, claim.attempt)
        run_state.remember(run_id, claim.attempt, claim.lease)  # the parent speaks for this run if we are killed
        result: RunResult | None = None
        error: str | None = None
        run_state.clear_scratch(settings.data_dir, run_id)  # what an earlier attempt here left behind
        scratch = run_state.scratch(settings.data_dir, run_id, claim.attempt)
        uploads: Uploads | None = None
        try:
            import torch

            from worker.engine import fit  # here, not at the top: see the module docstring

            if settings.torch_threads:
                torch.set_num_threads(settings.torch_threads)  # this run's share of the cores (the worker's slots)
            if channel.should_stop():  # cancelled while the engine was imported (a cold worker: seconds)
                status = channel.finish(result=RunResult(stopped=StopState.cancelled, epochs_run=0, total_seconds=0))
                log.info("run %s: cancelled before it started", run_id)
                return status or "stale"

            spec = RunSpec.model_validate(claim.spec)
            resume_from = None
            if claim.resume is not None:
                log.info("run %s: resuming from %s", run_id, claim.resume.name)
                resume_from = channel.download(claim.resume, scratch / "resume")
            uploads = Uploads(channel, scratch)
            result = fit(
                spec,
                data_dir=settings.datasets_dir,
                on_epoch=channel.epoch,
                on_prepared=channel.info,
                progress=channel.progress,
                should_stop=channel.should_stop,
                files=uploads,
                resume_from=resume_from,
                models=settings.offered_models,
                memory_budget_gb=settings.memory_budget_gb,
            )
        except Exception as exc:
            log.exception("run %s failed", run_id)
            error = failure_text(exc, traceback.format_exc())
        if uploads is not None:
            uploads.close()  # the final weights are the run's before it is declared finished
        status = channel.finish(result=result, error=error)
        log.info("run %s: %s", run_id, status or f"stale ({channel.stop_reason})")
        return status or "stale"
    finally:
        if channel.attempt:  # claimed here: its files are this process's to remove (not another's)
            run_state.clear_scratch(settings.data_dir, run_id)
        run_state.forget(run_id)
        channel.close()


def failure_text(exc: BaseException, trace: str) -> str:
    """What a failed run's page says: the error in words first, then the end of its traceback."""
    if type(exc).__name__ == "OutOfMemoryError":  # torch.cuda.OutOfMemoryError, without importing torch here
        headline = (
            "CUDA out of memory: this run needs more GPU memory than was free. Lower batch_size (or "
            f"dataset.resize), or give the run a GPU of its own. {exc}"
        )
    else:
        headline = f"{type(exc).__name__}: {exc}"
    return f"{headline}\n\n{trace[-TRACEBACK_CHARS:]}"
