"""Comparing runs: everything the compare page shows for up to MAX_COMPARED_RUNS runs, in one answer — the
summary table (backend/services/statistics.py decides its numbers), the config fields that differ, the
curves (downsampled), per-class accuracy and the seed groups — and the table as a file.

Tables always use exact values; only chart series are downsampled.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any, Literal

from sqlmodel import Session, col, select

from backend.services import datasets, epochs, exports, runs, statistics
from backend.services.errors import NotFound
from backend.services.statistics import Records, SummaryRow
from backend.tables import Run
from trainboard.protocol import EpochRecord
from trainboard.schemas import Comparison, PerClass, RunPublic, SeedGroup, SeriesPoint, SummaryMode
from trainboard.spec import dataset_classes

MAX_COMPARED_RUNS = 50

SUMMARY_COLUMNS = [
    exports.Column("label", "Run"),
    exports.Column("test_acc", "Test acc", "percent"),
    exports.Column("summary_epoch", "Epoch", "integer"),
    exports.Column("best_test_acc", "Best acc", "percent"),
    exports.Column("best_epoch", "Best epoch", "integer"),
    exports.Column("final_test_acc", "Final acc", "percent"),
    exports.Column("epochs_run", "Epochs", "integer"),
    exports.Column("early_stopped", "Early stop", "flag"),
    exports.Column("total_seconds", "Time", "seconds"),
    exports.Column("images_per_s", "Images/s", "rate"),
]


def summary_columns(mode: SummaryMode) -> list[exports.Column]:
    """The summary table's columns in `mode`, less those that only repeat another there (statistics.REPEATED)."""
    return [column for column in SUMMARY_COLUMNS if column.key not in statistics.REPEATED[mode]]


def _rows(session: Session, ids: Sequence[int]) -> dict[int | None, Run]:
    found = {r.id: r for r in session.exec(select(Run).where(col(Run.id).in_(list(ids)))).all()}
    missing = [i for i in ids if i not in found]
    if missing:
        raise NotFound(f"runs not found: {', '.join(map(str, missing))}")
    return found


def load(session: Session, ids: Sequence[int]) -> tuple[list[RunPublic], dict[int, list[EpochRecord]]]:
    """The runs in the order given (NotFound naming any missing) and each one's epochs."""
    found = _rows(session, ids)
    datasets.sync(session)  # registered datasets' class names for the per-class charts
    records: dict[int, list[EpochRecord]] = dict(epochs.for_runs(session, ids))
    return [runs.public(found[i]) for i in ids], records


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """A nested spec as {dotted path: leaf}; lists are leaves (compared whole, shown as written)."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out |= flatten(item, f"{prefix}.{key}" if prefix else str(key))
        return out
    return {prefix: value}


def as_made(run: RunPublic) -> dict[str, Any]:
    """A run's spec and the record of how it was made (`made.*`: the data it trained on, the software and the
    device), so two runs of one spec on other data or another torch are told apart in the diff."""
    made: dict[str, Any] = {}
    if run.info is not None:
        made["data_sha256"] = run.info.data_sha256
        if run.info.environment is not None:
            made |= run.info.environment.model_dump(exclude={"host"})
    return run.spec | ({"made": made} if made else {})


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
    records: Records, metric: str, x: Literal["epoch", "seconds"], max_points: int, after: int = 0
) -> dict[str, list[float]]:
    """One run's curve of `metric` (for `lr`, the first param group's), against epoch or elapsed seconds.
    `after`: only the points of the epochs after it (a page that has the others extends its curve); a
    curve past `max_points` is downsampled whole, so `after` is for curves that are not."""
    if x == "epoch":
        xs = [float(r.epoch) for r in records]
    else:
        elapsed, xs = 0.0, []
        for r in records:
            elapsed += r.seconds
            xs.append(round(elapsed, 3))
    # Epochs without the figure (a GPU figure of a CPU run) have no point.
    points = [
        (x, r.epoch, y)
        for x, r in zip(xs, records, strict=True)
        if (y := statistics.metric_value(r, metric)) is not None
    ]
    if after and len(records) <= max_points:
        kept = [(x, y) for x, epoch, y in points if epoch > after]
        return {"x": [x for x, _ in kept], "y": [y for _, y in kept]}
    xs, ys = [x for x, _, _ in points], [y for _, _, y in points]
    xs, ys = downsample(xs, ys, max_points)
    return {"x": xs, "y": ys}


def tail_start(records: Records, max_points: int, after: int | None) -> int:
    """Where a run's curve in the answer starts: after epoch `after` when it was asked for and the curve is
    short enough to be sent as it is; 0 (the whole curve) otherwise."""
    return after if after and len(records) <= max_points else 0


def per_class(run: RunPublic, records: Records, mode: SummaryMode) -> PerClass:
    record = statistics.summary_record(run, records, mode)
    return PerClass(
        run_id=run.id,
        epoch=None if record is None else record.epoch,
        classes=dataset_classes(run.dataset),  # registered ones: datasets.sync in compare()
        accuracy=[] if record is None else record.per_class_acc,
    )


def seed_groups(
    loaded: list[RunPublic], rows: list[SummaryRow], records: dict[int, list[EpochRecord]]
) -> list[SeedGroup]:
    """One group per (study, label) with two or more of the runs, in order of first appearance; its numbers
    and curve bands are over the runs that count (statistics.counted)."""
    members: dict[tuple[int, str], list[int]] = {}
    for i, run in enumerate(loaded):
        if run.study_id is not None and run.label:
            members.setdefault((run.study_id, run.label), []).append(i)
    groups = []
    for (study_id, label), indices in members.items():
        if len(indices) < 2:
            continue
        stats = statistics.group_rows([rows[i] for i in indices])[0]
        use = statistics.counted(indices, lambda i: rows[i].status)
        groups.append(
            SeedGroup(
                study_id=study_id,
                label=label,
                run_ids=stats["run_ids"],
                n=stats["n"],
                **{key: stats[key] for key in ("test_acc", "best_test_acc", "final_test_acc", "total_seconds")},
                series={
                    metric: statistics.band([records[loaded[i].id] for i in use], metric)
                    for metric in statistics.METRICS
                },
            )
        )
    return groups


def compare(
    session: Session,
    ids: Sequence[int],
    mode: SummaryMode,
    max_points: int,
    x: Literal["epoch", "seconds"],
    all_fields: bool,
    after: Mapping[int, int] | None = None,
) -> Comparison:
    """`after` ({run id: epoch}): the page has those runs' curves up to that epoch; their curves in the answer
    are the points after it (SeriesPoint.after says from where), unless a curve is downsampled: then whole.
    Everything else (tables, bands, confusion matrices) is always whole."""
    found = _rows(session, ids)
    loaded = [runs.public(found[i]) for i in ids]
    records: dict[int, list[EpochRecord]] = dict(epochs.for_runs(session, ids))
    rows = [statistics.summary_row(run, records[run.id], mode) for run in loaded]
    starts = {run.id: tail_start(records[run.id], max_points, (after or {}).get(run.id)) for run in loaded}
    curves = {
        metric: [
            SeriesPoint(
                run_id=run.id, after=starts[run.id], **series(records[run.id], metric, x, max_points, starts[run.id])
            )
            for run in loaded
        ]
        for metric in statistics.METRICS
    }
    return Comparison(
        runs=loaded,
        summary=[row.as_dict() for row in rows],
        columns=[asdict(column) for column in summary_columns(mode)],
        summary_mode=mode,
        caption=statistics.CAPTIONS[mode],
        best=statistics.best_per_column(rows),
        diff=config_diff([as_made(run) for run in loaded], only_differences=not all_fields),
        series=curves,
        per_class=[per_class(run, records[run.id], mode) for run in loaded],
        groups=seed_groups(loaded, rows, records),
        confusion=[runs.confusion(session, found[run.id]) for run in loaded],
    )


def summary_file(session: Session, ids: Sequence[int], mode: SummaryMode, fmt: exports.Format) -> str:
    """The summary table as CSV, Markdown or LaTeX."""
    loaded, records = load(session, ids)
    rows = [statistics.summary_row(run, records[run.id], mode).as_dict() for run in loaded]
    return exports.render(rows, summary_columns(mode), fmt, caption=statistics.CAPTIONS[mode])
