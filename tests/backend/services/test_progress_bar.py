"""The one rule for a run's progress bar (services/runs.progress_bar), which the pages' macro and scripts show."""

from __future__ import annotations

import pytest

from backend.services.runs import progress_bar
from trainboard.protocol import Progress
from trainboard.schemas import ProgressBar, RunStatus


@pytest.mark.parametrize(
    ("status", "done", "heartbeat", "expected"),
    [
        (RunStatus.queued, 0, (0, 0, 0), ProgressBar(percent=0.0, label="epoch 0/10")),
        (RunStatus.running, 0, (0, 0, 0), ProgressBar(percent=0.0, label="epoch 0/10")),  # still preparing
        (RunStatus.running, 2, (3, 5, 23), ProgressBar(percent=22.2, label="epoch 3/10 · batch 5/23")),
        (RunStatus.running, 3, (3, 23, 23), ProgressBar(percent=30.0, label="epoch 3/10")),  # epoch 3 recorded
        # An ended run says how it ended; its last heartbeat (epoch 5, batch 17/23) no longer counts.
        (RunStatus.succeeded, 10, (5, 17, 23), ProgressBar(percent=100.0, label="finished: 10 epochs")),
        (RunStatus.succeeded, 6, (6, 23, 23), ProgressBar(percent=100.0, label="finished early: epoch 6/10")),
        (RunStatus.cancelled, 4, (5, 2, 23), ProgressBar(percent=40.0, label="cancelled after epoch 4/10")),
        (RunStatus.cancelled, 0, (1, 2, 23), ProgressBar(percent=0.0, label="cancelled before epoch 1")),
        (RunStatus.failed, 2, (3, 9, 23), ProgressBar(percent=20.0, label="failed after epoch 2/10")),
        (RunStatus.failed, 0, (0, 0, 0), ProgressBar(percent=0.0, label="failed before epoch 1")),
        (RunStatus.running, 12, (0, 0, 0), ProgressBar(percent=100.0, label="epoch 12/10")),  # never past full
    ],
)
def test_progress_bar(status: RunStatus, done: int, heartbeat: tuple[int, int, int], expected: ProgressBar) -> None:
    epoch, batch, batches = heartbeat
    assert progress_bar(status, 10, done, Progress(epoch=epoch, batch=batch, batches=batches)) == expected
