"""Compare runs: overlaid curves, the config fields that differ, and the summary table a report needs."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel
from sqlmodel import Session, col, select

from backend import compare, exports
from backend.api.deps import SessionDep, require_user
from backend.models import EpochMetric, Run, RunPublic
from trainboard.spec import CLASS_NAMES

router = APIRouter(prefix="/api/compare", tags=["compare"], dependencies=[Depends(require_user)])

MAX_RUNS = 50
CAPTIONS: dict[str, str] = {
    "best": "Test accuracy at each run's best epoch (the epoch with the highest test accuracy).",
    "last": "Test accuracy at each run's last epoch.",
    "stop": "Test accuracy at the epoch each run ended with: the restored best epoch of an early-stopped run, "
    "else the last epoch.",
}
SUMMARY_COLUMNS = [
    exports.Column("label", "Run"),
    exports.Column("test_acc", "Test acc (%)", "percent"),
    exports.Column("summary_epoch", "Epoch", "integer"),
    exports.Column("best_test_acc", "Best acc (%)", "percent"),
    exports.Column("best_epoch", "Best epoch", "integer"),
    exports.Column("final_test_acc", "Final acc (%)", "percent"),
    exports.Column("epochs_run", "Epochs", "integer"),
    exports.Column("early_stopped", "Early stop", "flag"),
    exports.Column("total_seconds", "Time (s)", "seconds"),
    exports.Column("images_per_s", "Images/s", "rate"),
]

RunIds = Annotated[
    str,
    Query(
        pattern=r"^\d{1,12}(,\d{1,12}){0,49}$",
        examples=["1,2,3"],
        description=f"Run ids, comma-separated, at most {MAX_RUNS}",
    ),
]
Mode = Annotated[compare.SummaryMode, Query(description="Which epoch a run's accuracy is taken from")]


class SeriesPoint(BaseModel):
    run_id: int
    x: list[float]
    y: list[float]


class PerClass(BaseModel):
    """One run's per-class test accuracy at its latest epoch (empty before the first epoch)."""

    run_id: int
    epoch: int | None
    classes: list[str]
    accuracy: list[float]


class Band(BaseModel):
    x: list[float]
    mean: list[float]
    std: list[float]


class SeedGroup(BaseModel):
    """Seed repeats of one study variant among the runs compared: mean ± std over those that succeeded."""

    study_id: int
    label: str
    run_ids: list[int]
    n: int
    test_acc: compare.Spread | None
    best_test_acc: compare.Spread | None
    final_test_acc: compare.Spread | None
    total_seconds: compare.Spread | None
    series: dict[str, Band]


class Comparison(BaseModel):
    runs: list[RunPublic]
    summary: list[dict[str, Any]]
    summary_mode: str
    caption: str
    best: dict[str, list[int]]
    diff: dict[str, list[Any]]
    series: dict[str, list[SeriesPoint]]
    per_class: list[PerClass]
    groups: list[SeedGroup] = []


def _load(session: Session, run_ids: str) -> tuple[list[RunPublic], dict[int, list[dict[str, Any]]]]:
    return load_runs(session, list(dict.fromkeys(int(i) for i in run_ids.split(","))))  # de-duplicated, in order


def load_runs(session: Session, ids: list[int]) -> tuple[list[RunPublic], dict[int, list[dict[str, Any]]]]:
    """The runs (404 naming any missing) and each one's metric records of its current attempt, by epoch."""
    runs = {r.id: r for r in session.exec(select(Run).where(col(Run.id).in_(ids))).all()}
    missing = [i for i in ids if i not in runs]
    if missing:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"runs not found: {', '.join(map(str, missing))}")
    records: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    rows = session.exec(
        select(EpochMetric)
        .where(col(EpochMetric.run_id).in_(ids))
        .order_by(col(EpochMetric.run_id), col(EpochMetric.epoch))
    )
    for row in rows:
        if row.attempt == runs[row.run_id].attempt:
            records[row.run_id].append(row.record().model_dump())
    return [RunPublic.of(runs[i]) for i in ids], records


def summary_rows(
    runs: list[RunPublic], records: dict[int, list[dict[str, Any]]], mode: compare.SummaryMode
) -> tuple[list[dict[str, Any]], dict[str, list[int]]]:
    """The rows, and per column the rows holding the best value. Only runs that succeeded compete: a
    running or cancelled run's time and final accuracy are partial, not comparable."""
    rows = [asdict(compare.summary_row(run.model_dump(mode="json"), records[run.id], mode)) for run in runs]
    best = {
        key: compare.best_indices([row[key] if row["status"] == "succeeded" else None for row in rows], goal)
        for key, goal in compare.GOALS.items()
        if rows and key in rows[0]
    }
    return rows, best


def _per_class(run: RunPublic, records: list[dict[str, Any]]) -> PerClass:
    last = records[-1] if records else None
    return PerClass(
        run_id=run.id,
        epoch=last["epoch"] if last else None,
        classes=CLASS_NAMES.get(run.dataset, []),
        accuracy=last["per_class_acc"] if last else [],
    )


def seed_groups(
    runs: list[RunPublic], rows: list[dict[str, Any]], records: dict[int, list[dict[str, Any]]]
) -> list[SeedGroup]:
    """One group per (study, label) with two or more of the runs, in order of first appearance. The curves'
    band is over the group's succeeded runs (all of them while none has succeeded)."""
    members: dict[tuple[int, str], list[int]] = {}
    for i, run in enumerate(runs):
        if run.study_id is not None and run.label:
            members.setdefault((run.study_id, run.label), []).append(i)
    groups = []
    for (study_id, label), indices in members.items():
        if len(indices) < 2:
            continue
        stats = compare.group_rows([rows[i] for i in indices])[0]
        done = [i for i in indices if rows[i]["status"] == "succeeded"] or indices
        groups.append(
            SeedGroup(
                study_id=study_id,
                label=label,
                run_ids=stats["run_ids"],
                n=stats["n"],
                **{key: stats[key] for key in ("test_acc", "best_test_acc", "final_test_acc", "total_seconds")},
                series={
                    metric: Band(**compare.band([records[runs[i].id] for i in done], metric))
                    for metric in compare.METRICS
                },
            )
        )
    return groups


@router.get("", response_model=Comparison)
def read_comparison(
    session: SessionDep,
    runs: RunIds,
    summary: Mode = "best",
    max_points: Annotated[int, Query(ge=10, le=10_000, description="Points per curve at most")] = 500,
    x: Annotated[Literal["epoch", "seconds"], Query(description="The curves' x axis")] = "epoch",
    all_fields: Annotated[
        bool, Query(description="`diff` lists every config field, not only those that differ")
    ] = False,
) -> Comparison:
    """Everything the compare page shows for up to 50 runs, in one request."""
    loaded, records = _load(session, runs)
    rows, best = summary_rows(loaded, records, summary)
    curves = {
        metric: [SeriesPoint(run_id=run.id, **compare.series(records[run.id], metric, x, max_points)) for run in loaded]
        for metric in compare.METRICS
    }
    return Comparison(
        runs=loaded,
        summary=rows,
        summary_mode=summary,
        caption=CAPTIONS[summary],
        best=best,
        diff=compare.config_diff([run.spec for run in loaded], only_differences=not all_fields),
        series=curves,
        per_class=[_per_class(run, records[run.id]) for run in loaded],
        groups=seed_groups(loaded, rows, records),
    )


@router.get(
    "/summary",
    response_class=PlainTextResponse,
    responses={200: {"content": {t: {} for t in exports.MEDIA_TYPES.values()}}},
)
def export_summary(
    session: SessionDep,
    runs: RunIds,
    summary: Mode = "best",
    format: Annotated[exports.Format, Query(description="csv, md (Markdown) or tex (LaTeX)")] = "csv",
) -> PlainTextResponse:
    """The summary table as a file to download or paste."""
    loaded, records = _load(session, runs)
    rows, _ = summary_rows(loaded, records, summary)
    text = exports.render(rows, SUMMARY_COLUMNS, format, caption=CAPTIONS[summary])
    return PlainTextResponse(
        text,
        media_type=exports.MEDIA_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="trainboard-summary.{format}"'},
    )
