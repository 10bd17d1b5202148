"""A study's report: its summary table (one row per label, mean ± std over the label's repeats), its curves
(a mean and ± std band per label) and per-class accuracy, as data for the report page and as Markdown.
Every number comes from backend/services/statistics.py."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from sqlmodel import Session

from backend.services import comparison, datasets, exports, statistics, studies
from backend.tables import Study
from trainboard.protocol import EpochRecord
from trainboard.schemas import LabelCurves, RunPublic, Spread, StudyReport, StudySummary, SummaryMode
from trainboard.spec import CLASS_NAMES, dataset_classes

Records = dict[int, list[EpochRecord]]

CAPTIONS: dict[str, str] = {
    "best": "Test accuracy at each run's best epoch",
    "last": "Test accuracy at each run's last epoch",
    "stop": "Test accuracy at the epoch each run ended with (the restored best epoch of an early-stopped run)",
}
_SPREAD_NOTE = (
    "; mean ± sample std over the n succeeded runs (seeds) of each version (over all of them while none has)."
)
# The curves the report draws.
REPORT_METRICS = ("test_acc", "train_loss", "test_loss")


def caption(mode: SummaryMode) -> str:
    return CAPTIONS[mode] + _SPREAD_NOTE


def summary_columns(reported: bool) -> list[exports.Column]:
    columns = [
        exports.Column("label", "Version"),
        exports.Column("n", "n", "integer"),
        exports.Column("test_acc", "Test acc", "percent", spread=True),
        exports.Column("epochs_run", "Epochs", "integer", spread=True),
        exports.Column("early_stops", "Early stops", "integer"),
        exports.Column("total_seconds", "Time", "seconds", spread=True),
        exports.Column("images_per_s", "Images/s", "rate", spread=True),
    ]
    if reported:
        columns += [
            exports.Column("reported_test_acc", "Reported acc", "percent"),
            exports.Column("reported_seconds", "Reported time", "seconds"),
        ]
    return columns


def load(session: Session, study: Study) -> tuple[list[RunPublic], Records]:
    assert study.id is not None
    datasets.sync(session)  # registered datasets' class names
    return comparison.load(session, [run.id for run in studies.study_runs(session, study.id) if run.id is not None])


def summary_table(
    study: Study, members: Sequence[RunPublic], records: Records, mode: SummaryMode
) -> list[dict[str, Any]]:
    """One row per label: statistics.group_rows over the runs' summary rows, with the reported figures."""
    rows = [statistics.summary_row(run, records[run.id], mode) for run in members]
    groups = statistics.group_rows(rows)
    for group in groups:
        reported = study.reported.get(group["label"]) or {}
        group["reported_test_acc"] = reported.get("test_acc")
        group["reported_seconds"] = reported.get("seconds")
    return groups


def summary(study: Study, members: Sequence[RunPublic], records: Records, mode: SummaryMode) -> StudySummary:
    assert study.id is not None
    rows = summary_table(study, members, records, mode)
    return StudySummary(
        study_id=study.id,
        summary_mode=mode,
        caption=caption(mode),
        columns=[asdict(c) for c in summary_columns(bool(study.reported))],
        rows=[{k: v.model_dump() if isinstance(v, Spread) else v for k, v in row.items()} for row in rows],
    )


def class_names(members: Sequence[RunPublic], width: int) -> list[str]:
    """The dataset's class names when they fit the per-class lists, else the class indices."""
    names = (CLASS_NAMES.get(members[0].dataset) or dataset_classes(members[0].dataset)) if members else []
    return names if len(names) == width else [str(i) for i in range(width)]


def label_curves(members: Sequence[RunPublic], records: Records, mode: SummaryMode) -> list[LabelCurves]:
    """Per label, over its counted runs that have an epoch: the mean curves with their bands and the mean
    per-class accuracy at each run's summary epoch."""
    out = []
    for label, runs_of_label in statistics.group_by_label(members, lambda run: run.label or run.name).items():
        started = [run for run in runs_of_label if records[run.id]]
        if not started:
            continue
        use = statistics.counted(started, lambda run: run.status)
        summaries = [statistics.summary_record(run, records[run.id], mode) for run in use]
        out.append(
            LabelCurves(
                label=label,
                run_ids=[run.id for run in runs_of_label],
                n=len(use),
                curves={metric: statistics.band([records[run.id] for run in use], metric) for metric in REPORT_METRICS},
                per_class=statistics.mean_per_class([r.per_class_acc for r in summaries if r is not None]),
            )
        )
    return out


def report(session: Session, study: Study, mode: SummaryMode) -> StudyReport:
    """Everything the report page draws (studies of up to MAX_STUDY_RUNS runs: one query for their epochs)."""
    members, records = load(session, study)
    labels = label_curves(members, records, mode)
    width = max((len(label.per_class) for label in labels), default=0)
    return StudyReport(
        summary=summary(study, members, records, mode),
        classes=class_names(members, width),
        labels=labels,
        none_succeeded=studies.none_succeeded(members),
        failures=studies.failures(members),
    )


def report_markdown(session: Session, study: Study, mode: SummaryMode) -> str:
    """The study's report, ready to paste: the summary table, then per-class accuracy per version."""
    members, records = load(session, study)
    rows = summary_table(study, members, records, mode)
    table = exports.render(rows, summary_columns(bool(study.reported)), "md", caption=caption(mode))
    parts = [f"# {study.name}", ""]
    if study.description:
        parts += [study.description, ""]
    parts += ["## Summary", "", table]
    if studies.none_succeeded(members):
        parts += ["", "## No run succeeded", ""]
        parts += [f"- {f.label} (run {f.run_id}): {f.reason}" for f in studies.failures(members)]
    labels = label_curves(members, records, mode)
    if labels:
        width = max(len(label.per_class) for label in labels)
        classes = class_names(members, width)
        columns = [exports.Column("class", "Class")] + [
            exports.Column(f"v{i}", label.label, "percent") for i, label in enumerate(labels)
        ]
        class_rows = [
            {"class": name}
            | {f"v{i}": label.per_class[c] if c < len(label.per_class) else None for i, label in enumerate(labels)}
            for c, name in enumerate(classes)
        ]
        epoch_words = {"best": "its best epoch", "last": "its last epoch", "stop": "the epoch it ended with"}
        parts += [
            "## Per-class test accuracy",
            "",
            exports.render(
                class_rows,
                columns,
                "md",
                caption=f"Test accuracy (%) per class, each run at {epoch_words[mode]}; mean over seeds.",
            ),
        ]
    return "\n".join(parts)
