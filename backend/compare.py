"""Comparing runs: the config fields that differ, a summary row per run, seed statistics, chart series.

Pure functions over plain data (spec dicts, metric records): no database, no web framework, so each
rule is tested on its own. Tables always use exact values; only chart series are downsampled.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

SummaryMode = Literal["best", "last", "stop"]
METRICS = ("train_loss", "test_loss", "train_acc", "test_acc", "lr")
# Which way is better, per summary column: the table highlights the best value of each.
GOALS: dict[str, Literal["max", "min"]] = {
    "test_acc": "max",
    "best_test_acc": "max",
    "final_test_acc": "max",
    "images_per_s": "max",
    "total_seconds": "min",
    "test_loss": "min",
    "train_loss": "min",
}


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """A nested spec as {dotted path: leaf}; lists are leaves (compared whole, shown as written)."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out |= flatten(item, f"{prefix}.{key}" if prefix else str(key))
        return out
    return {prefix: value}


def config_diff(specs: Sequence[dict[str, Any]], only_differences: bool = True) -> dict[str, list[Any]]:
    """{dotted field: [value per run]}, by default only the fields whose values are not all equal.

    A field one spec lacks (another architecture's option, a null section) counts as None there.
    """
    flat = [flatten(spec) for spec in specs]
    fields = sorted(set().union(*flat)) if flat else []
    table = {field: [f.get(field) for f in flat] for field in fields}
    if not only_differences:
        return table
    return {field: values for field, values in table.items() if any(v != values[0] for v in values[1:])}


@dataclass(frozen=True)
class SummaryRow:
    run_id: int
    label: str
    status: str
    test_acc: float | None  # the accuracy the row stands for: best, last, or at the early stop
    summary_epoch: int | None  # the epoch that accuracy comes from
    best_test_acc: float | None
    best_epoch: int | None
    final_test_acc: float | None
    epochs_run: int
    early_stopped: bool
    total_seconds: float | None
    images_per_s: float | None


def summary_row(run: dict[str, Any], records: Sequence[dict[str, Any]], mode: SummaryMode) -> SummaryRow:
    """One run's row of the report table. `stop`: the epoch whose weights the run ended with — the
    restored best epoch when early stopping restored it, else the last epoch."""
    summary = run["summary"]
    best_epoch, last_epoch = summary.get("best_epoch"), (records[-1]["epoch"] if records else None)
    if mode == "best":
        epoch = best_epoch
    elif mode == "last":
        epoch = last_epoch
    else:
        restored = bool(summary.get("stop_reason")) and (run["spec"].get("early_stopping") or {}).get("restore_best")
        epoch = best_epoch if restored else last_epoch
    by_epoch = {r["epoch"]: r for r in records}
    speeds = [r["images_per_s"] for r in records]
    return SummaryRow(
        run_id=run["id"],
        label=run.get("label") or run["name"],
        status=run["status"],
        test_acc=by_epoch[epoch]["test_acc"] if epoch in by_epoch else None,
        summary_epoch=epoch,
        best_test_acc=summary.get("best_test_acc"),
        best_epoch=best_epoch,
        final_test_acc=summary.get("final_test_acc"),
        epochs_run=len(records),
        early_stopped=bool(summary.get("stop_reason")),
        total_seconds=summary.get("total_seconds"),
        images_per_s=statistics.fmean(speeds) if speeds else None,
    )


def best_indices(values: Sequence[float | None], goal: Literal["max", "min"]) -> list[int]:
    """Indices of the best value (all of them on a tie); None never wins."""
    present = [v for v in values if v is not None and not math.isnan(v)]
    if not present:
        return []
    target = max(present) if goal == "max" else min(present)
    return [i for i, v in enumerate(values) if v == target]


@dataclass(frozen=True)
class Spread:
    mean: float
    std: float  # sample standard deviation (n - 1); 0.0 for a single value
    n: int


def spread(values: Iterable[float | None]) -> Spread | None:
    """Mean ± std over seeds; None when no value is there."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    std = statistics.stdev(present) if len(present) > 1 else 0.0
    return Spread(mean=statistics.fmean(present), std=std, n=len(present))


# The numbers of a summary row that a group of repeats reports as mean ± std.
SPREAD_FIELDS = ("test_acc", "best_test_acc", "final_test_acc", "epochs_run", "total_seconds", "images_per_s")


def group_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Summary rows (as dicts) grouped by label, in the order of first appearance: each of SPREAD_FIELDS a
    Spread over the group's succeeded runs (None when none has it), `n` how many succeeded, `early_stops`
    how many of them stopped early, `run_ids` every run of the label. A running or cancelled run's
    figures are partial, so it counts in no mean."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row["label"], []).append(row)
    out = []
    for label, members in groups.items():
        done = [row for row in members if row["status"] == "succeeded"]
        out.append(
            {
                "label": label,
                "n": len(done),
                "early_stops": sum(bool(row["early_stopped"]) for row in done),
                "run_ids": [row["run_id"] for row in members],
            }
            | {key: spread(row[key] for row in done) for key in SPREAD_FIELDS}
        )
    return out


def downsample(xs: Sequence[float], ys: Sequence[float], max_points: int) -> tuple[list[float], list[float]]:
    """At most `max_points` points that keep the curve's shape: the series is cut into windows, and each
    window keeps its first, last, lowest and highest point (in x order). The series' first and last
    points always stay."""
    n = len(xs)
    if n <= max_points:
        return list(xs), list(ys)
    if max_points < 4:
        ends = sorted({0, n - 1})[:max_points]
        return [xs[i] for i in ends], [ys[i] for i in ends]
    windows = max_points // 4
    keep: set[int] = set()
    for w in range(windows):
        start, end = w * n // windows, (w + 1) * n // windows
        indices = range(start, end)
        keep |= {start, end - 1, min(indices, key=ys.__getitem__), max(indices, key=ys.__getitem__)}
    ordered = sorted(keep)
    return [xs[i] for i in ordered], [ys[i] for i in ordered]


def series(
    records: Sequence[dict[str, Any]], metric: str, x: Literal["epoch", "seconds"], max_points: int
) -> dict[str, list[float]]:
    """One run's curve of `metric` (for `lr`, the first param group's), against epoch or elapsed seconds."""
    if x == "epoch":
        xs = [float(r["epoch"]) for r in records]
    else:
        elapsed, xs = 0.0, []
        for r in records:
            elapsed += r["seconds"]
            xs.append(round(elapsed, 3))
    ys = [float(r[metric][0] if metric == "lr" else r[metric]) for r in records]
    xs, ys = downsample(xs, ys, max_points)
    return {"x": xs, "y": ys}


def band(curves: Sequence[Sequence[dict[str, Any]]], metric: str) -> dict[str, list[float]]:
    """Seed repeats' curves of `metric` as mean and std (sample, n - 1) per epoch, over the epochs every run
    has: {x: epochs, mean, std}. Empty lists when the runs share no epoch."""
    if not curves:
        return {"x": [], "mean": [], "std": []}
    by_epoch = [
        {r["epoch"]: float(r[metric][0] if metric == "lr" else r[metric]) for r in records} for records in curves
    ]
    shared = sorted(set(by_epoch[0]).intersection(*by_epoch[1:]))
    spreads = [spread(values[epoch] for values in by_epoch) for epoch in shared]
    return {
        "x": [float(epoch) for epoch in shared],
        "mean": [s.mean for s in spreads if s],
        "std": [s.std for s in spreads if s],
    }
