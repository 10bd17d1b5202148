"""The comparison rules, checked against numpy and by hand."""

from __future__ import annotations

import random

import numpy as np
import pytest

from backend import compare


def test_diff_hides_equal_fields_and_compares_nested_fields_and_lists() -> None:
    a = {"epochs": 10, "model": {"arch": "cnn", "kernel_sizes": [3, 3], "pool": "max"}, "optimizer": {"lr": 0.01}}
    b = {"epochs": 10, "model": {"arch": "cnn", "kernel_sizes": [3, 9], "pool": "max"}, "optimizer": {"lr": 0.01}}
    c = {"epochs": 10, "model": {"arch": "mlp", "hidden": [64]}, "optimizer": {"lr": 0.01}}
    assert compare.config_diff([a, b]) == {"model.kernel_sizes": [[3, 3], [3, 9]]}
    diff = compare.config_diff([a, b, c])
    assert diff == {
        "model.arch": ["cnn", "cnn", "mlp"],
        "model.hidden": [None, None, [64]],
        "model.kernel_sizes": [[3, 3], [3, 9], None],
        "model.pool": ["max", "max", None],
    }
    everything = compare.config_diff([a, b], only_differences=False)
    assert everything["epochs"] == [10, 10] and everything["optimizer.lr"] == [0.01, 0.01]


def test_spread_equals_numpy_on_the_same_numbers() -> None:
    values = [0.9712, 0.9688, 0.9731, 0.9705]
    result = compare.spread(values)
    assert result is not None
    assert result.mean == pytest.approx(np.mean(values), abs=1e-12)
    assert result.std == pytest.approx(np.std(values, ddof=1), abs=1e-12)
    assert result.n == 4
    assert compare.spread([0.5]) == compare.Spread(0.5, 0.0, 1)
    assert compare.spread([None, None]) is None


def test_best_picks_max_for_accuracy_min_for_time_and_loss() -> None:
    assert compare.best_indices([0.91, 0.97, None, 0.95], compare.GOALS["test_acc"]) == [1]
    assert compare.best_indices([120.5, 98.2, 130.0], compare.GOALS["total_seconds"]) == [1]
    assert compare.best_indices([0.3, 0.2, 0.2], compare.GOALS["test_loss"]) == [1, 2]  # a tie: both
    assert compare.best_indices([None, None], "max") == []


@pytest.mark.parametrize("n,limit", [(10, 500), (1000, 100), (1001, 37), (5000, 4), (7, 3)])
def test_downsampling_keeps_first_last_min_max_and_the_limit(n: int, limit: int) -> None:
    rng = random.Random(n)
    xs = [float(i) for i in range(n)]
    ys = [rng.gauss(0, 1) for _ in range(n)]
    out_x, out_y = compare.downsample(xs, ys, limit)
    assert len(out_x) == len(out_y) <= limit
    assert out_x == sorted(out_x)
    assert out_x[0] == xs[0] and out_x[-1] == xs[-1]
    if n > limit >= 4:
        windows = limit // 4
        for w in range(windows):  # every window keeps its own extremes
            window = ys[w * n // windows : (w + 1) * n // windows]
            assert min(window) in out_y and max(window) in out_y
    if n <= limit:
        assert (out_x, out_y) == (xs, ys)
    assert max(ys) in out_y or limit < 4
    assert all(y == ys[int(x)] for x, y in zip(out_x, out_y, strict=True))


def records(accs: list[float]) -> list[dict[str, float]]:
    return [
        {
            "epoch": i + 1,
            "test_acc": a,
            "images_per_s": 1000.0 * (i + 1),
            "seconds": 2.0,
            "lr": [0.1],
            "train_loss": 1.0,
            "test_loss": 1.0,
            "train_acc": a,
        }
        for i, a in enumerate(accs)
    ]


def run(early: bool = False, restore: bool = True) -> dict[str, object]:
    return {
        "id": 7,
        "name": "r",
        "label": "kernel=5",
        "status": "succeeded",
        "spec": {"early_stopping": {"restore_best": restore} if early else None},
        "summary": {
            "best_epoch": 2,
            "best_test_acc": 0.9,
            "final_test_acc": 0.8,
            "total_seconds": 9.5,
            "stop_reason": "no improvement" if early else None,
        },
    }


def test_summary_row_by_mode() -> None:
    data = records([0.7, 0.9, 0.85, 0.8])
    best, last = compare.summary_row(run(), data, "best"), compare.summary_row(run(), data, "last")
    assert (best.test_acc, best.summary_epoch, last.test_acc, last.summary_epoch) == (0.9, 2, 0.8, 4)
    assert best.label == "kernel=5" and best.epochs_run == 4 and best.images_per_s == 2500.0
    assert compare.summary_row(run(early=True), data, "stop").test_acc == 0.9  # restored best weights
    assert compare.summary_row(run(early=True, restore=False), data, "stop").test_acc == 0.8
    assert compare.summary_row(run(), data, "stop").test_acc == 0.8


def test_series_against_epoch_or_elapsed_seconds() -> None:
    data = records([0.7, 0.9, 0.85])
    assert compare.series(data, "test_acc", "epoch", 500) == {"x": [1.0, 2.0, 3.0], "y": [0.7, 0.9, 0.85]}
    assert compare.series(data, "lr", "seconds", 500) == {"x": [2.0, 4.0, 6.0], "y": [0.1, 0.1, 0.1]}


def test_group_rows_spread_only_succeeded_runs_per_label_in_order() -> None:
    def row(run_id: int, label: str, acc: float, status: str = "succeeded", early: bool = False) -> dict:
        return {
            "run_id": run_id,
            "label": label,
            "status": status,
            "early_stopped": early,
            "test_acc": acc,
            "best_test_acc": acc,
            "final_test_acc": acc,
            "epochs_run": 3,
            "total_seconds": 10.0 * run_id,
            "images_per_s": 100.0,
        }

    groups = compare.group_rows(
        [
            row(1, "b", 0.8),
            row(2, "a", 0.5),
            row(3, "b", 0.9, early=True),
            row(4, "b", 0.1, status="running"),
            row(5, "b", 0.7),
        ]
    )
    assert [(g["label"], g["n"], g["early_stops"], g["run_ids"]) for g in groups] == [
        ("b", 3, 1, [1, 3, 4, 5]),
        ("a", 1, 0, [2]),
    ]
    b = groups[0]["test_acc"]
    assert (b.mean, b.std, b.n) == (
        pytest.approx(np.mean([0.8, 0.9, 0.7])),
        pytest.approx(np.std([0.8, 0.9, 0.7], ddof=1)),
        3,
    )
    assert groups[1]["total_seconds"] == compare.Spread(20.0, 0.0, 1)
