"""Statistics: the one home of every rule that turns runs and their epochs into the numbers a table or a
chart shows. The compare API, the study API, the study report (page and Markdown) and the exports all
call these; nothing recomputes them elsewhere (the pages draw what the server computed).

- Which epoch summarises a run (`summary_epoch`), for every number taken from it, per-class accuracy
  included: `best` — the epoch with the highest test accuracy; `last` — the last epoch; `stop` — the epoch
  whose weights the run ended with: the restored best epoch of an early-stopped run, else the last.
- Which runs count (`counted`): the succeeded ones; all of them while none has succeeded (a live study,
  or one whose runs all failed). A running or cancelled run's figures are partial.
- Mean ± sample standard deviation (`spread`, n - 1 as numpy's ddof=1), with no std for a single value.
- Groups of repeats: a label's seeds (`group_rows`, `band`), best-value indices (`best_per_column`).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, TypeVar

from trainboard.protocol import EpochRecord
from trainboard.schemas import Band, RunPublic, RunStatus, Spread, SummaryMode

T = TypeVar("T")
Records = Sequence[EpochRecord]

CAPTIONS: dict[str, str] = {
    "best": "Test accuracy at each run's best epoch (the epoch with the highest test accuracy).",
    "last": "Test accuracy at each run's last epoch.",
    "stop": "Test accuracy at the epoch each run ended with: the restored best epoch of an early-stopped run, "
    "else the last epoch.",
}
# The curves a comparison or a report draws, and which way is better per summary column (the table
# highlights the best value of each).
# The curves of a comparison: what training computed, then what each epoch cost the machine (EpochRecord.system;
# the GPU figures only where runs trained on one).
METRICS = (
    "train_loss",
    "test_loss",
    "train_acc",
    "test_acc",
    "lr",
    "images_per_s",
    "rss_bytes",
    "cpu_seconds",
    "gpu_allocated_bytes",
)
SYSTEM_METRICS = frozenset({"rss_bytes", "cpu_seconds", "gpu_allocated_bytes", "gpu_reserved_bytes"})
GOALS: dict[str, Literal["max", "min"]] = {
    "test_acc": "max",
    "best_test_acc": "max",
    "final_test_acc": "max",
    "images_per_s": "max",
    "total_seconds": "min",
}
# Per summary mode, the columns that only repeat another there (a table shows each number once): at the best
# epoch the test accuracy is the best accuracy and its epoch the best epoch; at the epoch a run ended with it
# is the final accuracy.
REPEATED: dict[SummaryMode, frozenset[str]] = {
    "best": frozenset({"best_test_acc", "best_epoch"}),
    "last": frozenset(),
    "stop": frozenset({"final_test_acc"}),
}
# The numbers of a summary row that a group of repeats reports as mean ± std.
SPREAD_FIELDS = ("test_acc", "best_test_acc", "final_test_acc", "epochs_run", "total_seconds", "images_per_s")


# -- one run ---------------------------------------------------------------------------------------


def summary_epoch(run: RunPublic, records: Records, mode: SummaryMode) -> int | None:
    """The epoch that stands for `run` in a table (see the module docstring); None before its first epoch."""
    last = records[-1].epoch if records else None
    if mode == "best":
        return run.summary.best_epoch
    if mode == "last":
        return last
    return run.summary.final_epoch if run.summary.final_epoch is not None else last


def summary_record(run: RunPublic, records: Records, mode: SummaryMode) -> EpochRecord | None:
    """The record of the summary epoch: its test accuracy, losses and per-class accuracy."""
    epoch = summary_epoch(run, records, mode)
    return next((record for record in records if record.epoch == epoch), None)


@dataclass(frozen=True)
class SummaryRow:
    """One run's row of a report table."""

    run_id: int
    label: str
    status: str
    test_acc: float | None  # at the summary epoch: best, last, or the epoch the run ended with
    summary_epoch: int | None
    best_test_acc: float | None
    best_epoch: int | None
    final_test_acc: float | None
    epochs_run: int
    early_stopped: bool
    total_seconds: float | None
    images_per_s: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def summary_row(run: RunPublic, records: Records, mode: SummaryMode) -> SummaryRow:
    record = summary_record(run, records, mode)
    speeds = [r.images_per_s for r in records]
    return SummaryRow(
        run_id=run.id,
        label=run.label or run.name,
        status=run.status.value,
        test_acc=None if record is None else record.test_acc,
        summary_epoch=summary_epoch(run, records, mode),
        best_test_acc=run.summary.best_test_acc,
        best_epoch=run.summary.best_epoch,
        final_test_acc=run.summary.final_test_acc,
        epochs_run=len(records),
        early_stopped=bool(run.summary.stop_reason),
        total_seconds=run.summary.total_seconds,
        images_per_s=statistics.fmean(speeds) if speeds else None,
    )


def metric_value(record: EpochRecord, metric: str) -> float | None:
    """A record's value of a curve's metric; `lr` is the first param group's. None where the record has no such
    figure (a system figure of a run recorded before they were, a GPU figure of a CPU run)."""
    if metric == "lr":
        return float(record.lr[0]) if record.lr else None
    if metric in SYSTEM_METRICS:
        value = getattr(record.system, metric) if record.system is not None else None
        return None if value is None else float(value)
    return float(getattr(record, metric))


# -- many runs -------------------------------------------------------------------------------------


def counted(items: Sequence[T], status: Callable[[T], str]) -> list[T]:
    """The items whose run succeeded; all of them while none has."""
    done = [item for item in items if status(item) == RunStatus.succeeded]
    return done or list(items)


def spread(values: Iterable[float | None]) -> Spread | None:
    """Mean ± sample std (n - 1) of the values present; None when none is; std None for a single value."""
    present = [v for v in values if v is not None and not math.isnan(v)]
    if not present:
        return None
    std = statistics.stdev(present) if len(present) > 1 else None
    return Spread(mean=statistics.fmean(present), std=std, n=len(present))


def best_indices(values: Sequence[float | None], goal: Literal["max", "min"]) -> list[int]:
    """Indices of the best value (all of them on a tie); None never wins."""
    present = [v for v in values if v is not None and not math.isnan(v)]
    if not present:
        return []
    target = max(present) if goal == "max" else min(present)
    return [i for i, v in enumerate(values) if v == target]


def best_per_column(rows: Sequence[SummaryRow]) -> dict[str, list[int]]:
    """Per column, the rows holding the best value. Only runs that succeeded compete: a running or cancelled
    run's time and final accuracy are partial, not comparable."""
    if not rows:
        return {}
    return {
        key: best_indices([getattr(row, key) if row.status == RunStatus.succeeded else None for row in rows], goal)
        for key, goal in GOALS.items()
    }


def group_by_label(rows: Sequence[T], label: Callable[[T], str]) -> dict[str, list[T]]:
    """Items grouped by their label, in the order of first appearance."""
    groups: dict[str, list[T]] = {}
    for row in rows:
        groups.setdefault(label(row), []).append(row)
    return groups


def group_rows(rows: Sequence[SummaryRow]) -> list[dict[str, Any]]:
    """Summary rows grouped by label, in the order of first appearance: each of SPREAD_FIELDS a Spread over
    the group's counted runs that have an epoch, `n` how many those are, `succeeded` how many succeeded,
    `early_stops` how many of the counted runs stopped early, `run_ids` every run of the label."""
    out = []
    for label, members in group_by_label(rows, lambda row: row.label).items():
        # A run that has not finished an epoch yet has no figure to count (its 0 epochs are not a result).
        use = [row for row in counted(members, lambda row: row.status) if row.epochs_run > 0]
        out.append(
            {
                "label": label,
                "n": len(use),
                "succeeded": sum(row.status == RunStatus.succeeded for row in members),
                "early_stops": sum(row.early_stopped for row in use),
                "run_ids": [row.run_id for row in members],
            }
            | {key: spread(getattr(row, key) for row in use) for key in SPREAD_FIELDS}
        )
    return out


def band(curves: Sequence[Records], metric: str) -> Band:
    """Curves of `metric` (one per run) as their mean and sample std at each epoch every run has (std None
    where only one run is there). Empty when the runs share no epoch."""
    if not curves:
        return Band(x=[], mean=[], std=[])
    by_epoch = [
        {r.epoch: value for r in records if (value := metric_value(r, metric)) is not None} for records in curves
    ]
    shared = sorted(set(by_epoch[0]).intersection(*by_epoch[1:]))
    spreads = [spread(values[epoch] for values in by_epoch) for epoch in shared]
    kept = [(epoch, s) for epoch, s in zip(shared, spreads, strict=True) if s is not None]
    return Band(x=[float(e) for e, _ in kept], mean=[s.mean for _, s in kept], std=[s.std for _, s in kept])


def mean_per_class(accuracies: Sequence[Sequence[float]]) -> list[float]:
    """Per class, the mean accuracy over runs (over the runs that have the class, if their counts differ)."""
    width = max((len(a) for a in accuracies), default=0)
    columns = [[a[c] for a in accuracies if c < len(a)] for c in range(width)]
    return [statistics.fmean(values) for values in columns]
