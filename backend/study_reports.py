"""A study's report: its summary table (one row per label, mean ± std over the label's repeats) and
per-class accuracy, as data and as Markdown, built on backend.compare and backend.exports."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from backend import compare, exports
from backend.models import RunPublic, RunStatus, Study
from trainboard.spec import CLASS_NAMES

Records = dict[int, list[dict[str, Any]]]

CAPTIONS: dict[str, str] = {
    "best": "Test accuracy at each run's best epoch",
    "last": "Test accuracy at each run's last epoch",
    "stop": "Test accuracy at the epoch each run ended with (the restored best epoch of an early-stopped run)",
}
_SPREAD_NOTE = "; mean ± sample std over the n succeeded runs (seeds) of each version."


def caption(mode: compare.SummaryMode) -> str:
    return CAPTIONS[mode] + _SPREAD_NOTE


def summary_columns(reported: bool) -> list[exports.Column]:
    columns = [
        exports.Column("label", "Version"),
        exports.Column("n", "n", "integer"),
        exports.Column("test_acc", "Test acc (%)", "percent", spread=True),
        exports.Column("epochs_run", "Epochs", "integer", spread=True),
        exports.Column("early_stops", "Early stops", "integer"),
        exports.Column("total_seconds", "Time (s)", "seconds", spread=True),
        exports.Column("images_per_s", "Images/s", "rate", spread=True),
    ]
    if reported:
        columns += [
            exports.Column("reported_test_acc", "Reported acc (%)", "percent"),
            exports.Column("reported_seconds", "Reported time (s)", "seconds"),
        ]
    return columns


def summary_table(
    study: Study, runs: Sequence[RunPublic], records: Records, mode: compare.SummaryMode
) -> list[dict[str, Any]]:
    """One row per label: compare.group_rows over the runs' summary rows, with the reported figures."""
    rows = [compare.summary_row(run.model_dump(mode="json"), records[run.id], mode) for run in runs]
    groups = compare.group_rows([vars(row) for row in rows])
    for group in groups:
        reported = study.reported.get(group["label"]) or {}
        group["reported_test_acc"] = reported.get("test_acc")
        group["reported_seconds"] = reported.get("seconds")
    return groups


def per_class(runs: Sequence[RunPublic], records: Records) -> tuple[list[str], dict[str, list[float]]]:
    """The class names and, per label, each class's test accuracy at the last epoch, averaged over the
    label's succeeded runs (over its runs with an epoch, while none has succeeded)."""
    by_label: dict[str, list[RunPublic]] = {}
    for run in runs:
        if records[run.id]:
            by_label.setdefault(run.label or run.name, []).append(run)
    classes = CLASS_NAMES.get(runs[0].dataset, []) if runs else []
    out: dict[str, list[float]] = {}
    for label, members in by_label.items():
        done = [run for run in members if run.status == RunStatus.succeeded] or members
        lasts = [records[run.id][-1]["per_class_acc"] for run in done]
        out[label] = [statistics.fmean(values) for values in zip(*lasts, strict=False)]
    width = max((len(values) for values in out.values()), default=0)
    classes = classes if len(classes) == width else [str(i) for i in range(width)]
    return classes, out


def report_markdown(study: Study, runs: Sequence[RunPublic], records: Records, mode: compare.SummaryMode) -> str:
    """The study's report, ready to paste: the summary table, then per-class accuracy per version."""
    rows = summary_table(study, runs, records, mode)
    table = exports.render(rows, summary_columns(bool(study.reported)), "md", caption=caption(mode))
    parts = [f"# {study.name}", ""]
    if study.description:
        parts += [study.description, ""]
    parts += ["## Summary", "", table]
    classes, accuracy = per_class(runs, records)
    if accuracy:
        labels = list(accuracy)
        columns = [exports.Column("class", "Class")] + [
            exports.Column(f"v{i}", label, "percent") for i, label in enumerate(labels)
        ]
        class_rows = [
            {"class": name}
            | {f"v{i}": accuracy[label][c] if c < len(accuracy[label]) else None for i, label in enumerate(labels)}
            for c, name in enumerate(classes)
        ]
        parts += [
            "## Per-class test accuracy",
            "",
            exports.render(
                class_rows, columns, "md", caption="Test accuracy (%) per class at the last epoch, mean over seeds."
            ),
        ]
    return "\n".join(parts)
