"""The statistics rules (backend/services/statistics.py), checked against numpy and by hand."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from backend.services import statistics
from trainboard.protocol import EpochRecord, Progress
from trainboard.schemas import ProgressBar, RunPublic, Spread, Summary


def records(accs: list[float], per_class: list[list[float]] | None = None) -> list[EpochRecord]:
    return [
        EpochRecord(
            epoch=i + 1,
            train_loss=1.0 / (i + 1),
            train_acc=a,
            test_loss=2.0 / (i + 1),
            test_acc=a,
            per_class_acc=per_class[i] if per_class else [a, a],
            lr=[0.1 / (i + 1)],
            seconds=2.0,
            images_per_s=1000.0 * (i + 1),
        )
        for i, a in enumerate(accs)
    ]


def run(
    run_id: int = 7,
    status: str = "succeeded",
    label: str | None = "kernel=5",
    best_epoch: int | None = 2,
    final_epoch: int | None = 4,
    stop_reason: str | None = None,
    **summary: Any,
) -> RunPublic:
    now = datetime.now(UTC)
    return RunPublic(
        id=run_id,
        study_id=1,
        label=label,
        repeat=0,
        name=f"run-{run_id}",
        dataset="digits",
        arch="mlp",
        status=status,
        attempt=1,
        spec={},
        created_at=now,
        started_at=now,
        finished_at=now,
        progress=Progress(epoch=0, batch=0, batches=0),
        progress_bar=ProgressBar(percent=100.0, label="epoch 4/4"),
        cancel_requested=False,
        device="cpu",
        error=None,
        info=None,
        tags=[],
        notes="",
        summary=Summary(
            best_test_acc=summary.get("best_test_acc", 0.9),
            best_epoch=best_epoch,
            final_test_acc=summary.get("final_test_acc", 0.8),
            final_epoch=final_epoch,
            epochs_done=4,
            total_seconds=summary.get("total_seconds", 9.5),
            stop_reason=stop_reason,
        ),
    )


def test_the_summary_epoch_by_mode_and_the_restored_epoch_of_an_early_stop() -> None:
    data = records([0.7, 0.9, 0.85, 0.8])
    assert statistics.summary_epoch(run(), data, "best") == 2
    assert statistics.summary_epoch(run(), data, "last") == 4
    assert statistics.summary_epoch(run(), data, "stop") == 4
    restored = run(final_epoch=2, stop_reason="... weights restored")
    assert statistics.summary_epoch(restored, data, "stop") == 2
    # Every number of the row comes from that epoch, per-class accuracy included.
    record = statistics.summary_record(restored, data, "stop")
    assert record is not None and (record.test_acc, record.per_class_acc) == (0.9, [0.9, 0.9])
    assert statistics.summary_epoch(run(final_epoch=None, status="running"), data, "stop") == 4  # still going
    assert statistics.summary_record(run(), [], "last") is None


def test_summary_row_by_mode() -> None:
    data = records([0.7, 0.9, 0.85, 0.8])
    best, last = statistics.summary_row(run(), data, "best"), statistics.summary_row(run(), data, "last")
    assert (best.test_acc, best.summary_epoch, last.test_acc, last.summary_epoch) == (0.9, 2, 0.8, 4)
    assert best.label == "kernel=5" and best.epochs_run == 4 and best.images_per_s == 2500.0
    stopped = statistics.summary_row(run(final_epoch=2, stop_reason="stopped; weights restored"), data, "stop")
    assert (stopped.test_acc, stopped.summary_epoch, stopped.early_stopped) == (0.9, 2, True)
    assert statistics.summary_row(run(label=None), data, "best").label == "run-7"


def test_spread_equals_numpy_and_has_no_std_for_one_value() -> None:
    values = [0.9712, 0.9688, 0.9731, 0.9705]
    result = statistics.spread(values)
    assert result is not None
    assert result.mean == pytest.approx(np.mean(values), abs=1e-12)
    assert result.std == pytest.approx(np.std(values, ddof=1), abs=1e-12)
    assert result.n == 4
    assert statistics.spread([0.5, None]) == Spread(mean=0.5, std=None, n=1)
    assert statistics.spread([None, None]) is None


def test_the_runs_that_count_are_the_succeeded_ones_or_all_while_none_has() -> None:
    status = dict.__getitem__
    mixed = [{"s": "succeeded"}, {"s": "failed"}, {"s": "running"}]
    assert statistics.counted(mixed, lambda r: status(r, "s")) == [{"s": "succeeded"}]
    live = [{"s": "running"}, {"s": "failed"}]
    assert statistics.counted(live, lambda r: status(r, "s")) == live


def test_best_picks_max_for_accuracy_min_for_time_and_only_succeeded_runs_compete() -> None:
    assert statistics.best_indices([0.91, 0.97, None, 0.95], "max") == [1]
    assert statistics.best_indices([120.5, 98.2, 130.0], "min") == [1]
    assert statistics.best_indices([0.2, 0.2], "min") == [0, 1]  # a tie: both
    assert statistics.best_indices([None, None], "max") == []
    data = records([0.7, 0.9])
    rows = [
        statistics.summary_row(run(1, best_test_acc=0.9, total_seconds=9.0), data, "best"),
        statistics.summary_row(run(2, status="cancelled", best_test_acc=0.99, total_seconds=1.0), data, "best"),
    ]
    best = statistics.best_per_column(rows)
    assert best["best_test_acc"] == [0] and best["total_seconds"] == [0]  # the cancelled run's numbers are partial


def test_group_rows_per_label_in_order_over_the_runs_that_count() -> None:
    data = records([0.8])

    def row(run_id: int, label: str, acc: float, status: str = "succeeded", early: bool = False) -> Any:
        reason = "stopped early" if early else None
        return statistics.summary_row(
            run(
                run_id,
                status,
                label,
                best_epoch=1,
                final_epoch=1,
                stop_reason=reason,
                best_test_acc=acc,
                final_test_acc=acc,
                total_seconds=10.0 * run_id,
            ),
            records([acc]) if status != "queued" else [],
            "best",
        )

    groups = statistics.group_rows(
        [
            row(1, "b", 0.8),
            row(2, "a", 0.5, "running"),
            row(3, "b", 0.9, early=True),
            row(4, "b", 0.1, "running"),
            row(5, "b", 0.7),
            row(6, "a", 0.3, "failed"),
        ]
    )
    assert [(g["label"], g["n"], g["succeeded"], g["early_stops"], g["run_ids"]) for g in groups] == [
        ("b", 3, 3, 1, [1, 3, 4, 5]),
        ("a", 2, 0, 0, [2, 6]),  # none succeeded yet: every run counts
    ]
    b = groups[0]["test_acc"]
    assert (b.mean, b.std, b.n) == (
        pytest.approx(np.mean([0.8, 0.9, 0.7])),
        pytest.approx(np.std([0.8, 0.9, 0.7], ddof=1)),
        3,
    )
    assert groups[1]["test_acc"].mean == pytest.approx(0.4) and data


def test_band_is_mean_and_sample_std_over_the_epochs_every_run_has() -> None:
    a, b = records([0.5, 0.7, 0.9]), records([0.6, 0.8])
    band = statistics.band([a, b], "test_acc")
    assert band.x == [1.0, 2.0]
    assert band.mean == pytest.approx([0.55, 0.75])
    assert band.std == pytest.approx([np.std([0.5, 0.6], ddof=1), np.std([0.7, 0.8], ddof=1)])
    single = statistics.band([a], "lr")
    assert single.mean == pytest.approx([0.1, 0.05, 0.1 / 3]) and single.std == [None, None, None]
    assert statistics.band([], "test_acc").x == []


def test_mean_per_class_over_runs() -> None:
    assert statistics.mean_per_class([[0.5, 1.0], [0.7, 0.0]]) == pytest.approx([0.6, 0.5])
    assert statistics.mean_per_class([]) == []
