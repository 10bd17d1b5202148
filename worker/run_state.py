"""What a worker's long-lived process knows of the runs its processes train, so it can speak for one that dies.

A run's process writes `<state dir>/run-<id>.json` (its attempt and lease, mode 600) right after its claim
and removes it when it ends. If the process is killed instead (the kernel's out-of-memory killer sends
SIGKILL; nothing runs after it), Celery tells the parent through its `task_failure` signal, and the parent
reads the file and reports the death to the API with the attempt's lease: the run is requeued at once, or
failed when it was killed at that epoch before, and its error says which signal ended it — not, minutes
later, "no heartbeat".

The state directory is made by the parent before it forks (a private temporary directory), so every run
process inherits its path.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
import threading
from pathlib import Path

import httpx

from trainboard.protocol import FinishAnswer, KilledMessage

log = logging.getLogger(__name__)

_state_dir: Path | None = None


def make_state_dir() -> Path:
    """In the parent, before any fork."""
    global _state_dir
    _state_dir = Path(tempfile.mkdtemp(prefix="trainboard-worker-"))
    return _state_dir


def remove_state_dir() -> None:
    if _state_dir is not None:
        shutil.rmtree(_state_dir, ignore_errors=True)


def _path(run_id: int) -> Path | None:
    return None if _state_dir is None else _state_dir / f"run-{run_id}.json"


def remember(run_id: int, attempt: int, lease: str) -> None:
    """In the run's process, after its claim."""
    path = _path(run_id)
    if path is None:
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"attempt": attempt, "lease": lease, "pid": os.getpid()}, f)


def forget(run_id: int) -> None:
    """In the run's process, when it ends (whatever its outcome: it reports that itself)."""
    path = _path(run_id)
    if path is not None:
        path.unlink(missing_ok=True)


def recall(run_id: int) -> tuple[int, str] | None:
    """In the parent: (attempt, lease) of a run whose process did not forget it, and forget it now."""
    path = _path(run_id)
    if path is None or not path.exists():
        return None
    try:
        state = json.loads(path.read_text())
        return int(state["attempt"]), str(state["lease"])
    except (OSError, ValueError, KeyError):
        return None
    finally:
        path.unlink(missing_ok=True)


_SIGNAL = re.compile(r"signal (\d+)")


def signal_of(error: BaseException) -> int | None:
    """The signal in billiard's WorkerLostError ("Worker exited prematurely: signal 9 (SIGKILL) Job: 0.")."""
    found = _SIGNAL.search(str(error))
    return int(found.group(1)) if found else None


def report_killed(api_url: str, worker_token: str, run_id: int, error: BaseException) -> str | None:
    """In the parent, when a run's process was lost: tell the API, if the process had claimed its run."""
    signal = signal_of(error)
    state = recall(run_id)
    if signal is None or state is None:
        return None
    attempt, lease = state
    message = KilledMessage(attempt=attempt, lease=lease, signal=signal)
    try:
        response = httpx.post(
            f"{api_url.rstrip('/')}/api/runs/{run_id}/killed",
            json=message.model_dump(mode="json"),
            headers={"Authorization": f"Bearer {worker_token}"},
            timeout=httpx.Timeout(10.0, connect=5.0),
        )
        response.raise_for_status()
    except httpx.HTTPError as exc:  # the lost-run check will find the run silent instead
        log.warning("run %s: could not report that its process was killed by signal %s (%s)", run_id, signal, exc)
        return None
    status = FinishAnswer.model_validate(response.json()).status
    log.warning("run %s: its process was killed by signal %s; the run is %s now", run_id, signal, status)
    return status


def scratch(data_dir: Path, run_id: int, attempt: int) -> Path:
    """Where a run's process keeps its files (checkpoints before upload, the one it resumes from)."""
    return data_dir / "scratch" / f"run-{run_id}-{attempt}"


def clear_scratch(data_dir: Path, run_id: int) -> None:
    """Remove every attempt's scratch folder of `run_id` (a killed process leaves its own behind)."""
    for folder in (data_dir / "scratch").glob(f"run-{int(run_id)}-*"):
        shutil.rmtree(folder, ignore_errors=True)


def install(api_url: str, worker_token: str, data_dir: Path | None = None) -> None:
    """In the parent: report every run whose process Celery lost (on a thread: the parent's loop goes on), and
    remove the files it left in `data_dir`'s scratch folder."""
    from billiard.exceptions import WorkerLostError
    from celery.signals import task_failure

    def on_failure(exception: BaseException | None = None, args: list[object] | None = None, **_: object) -> None:
        if isinstance(exception, WorkerLostError) and args and isinstance(args[0], int):
            if data_dir is not None:
                clear_scratch(data_dir, args[0])
            threading.Thread(
                target=report_killed, args=(api_url, worker_token, args[0], exception), daemon=True
            ).start()

    task_failure.connect(on_failure, weak=False)
