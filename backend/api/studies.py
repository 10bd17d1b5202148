"""REST routes for studies (named groups of runs queued together) and the built-in presets they can come from."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query, status
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field
from sqlmodel import Session

from backend import compare, exports
from backend.api.compare import load_runs
from backend.api.deps import DispatcherDep, FeedDep, SessionDep, StudyDep, require_user
from backend.dispatch import queue_runs
from backend.models import (
    PresetsPublic,
    PresetSummary,
    PresetVariant,
    RunPublic,
    StudiesPublic,
    Study,
    StudyCreate,
    StudyDetail,
    StudyErrors,
    StudyPreview,
    StudyPublic,
    SweepCreate,
    SweepPreview,
)
from backend.studies import (
    ResolvedStudy,
    list_studies,
    resolve,
    resolve_sweep,
    status_counts,
    study_groups,
    study_runs,
    sweep_points,
)
from backend.study_reports import caption, report_markdown, summary_columns, summary_table
from trainboard.presets import Preset, presets
from trainboard.presets.variants import StudyInvalid

router = APIRouter(prefix="/api", tags=["studies"], dependencies=[Depends(require_user)])

_INVALID: dict[int | str, dict[str, Any]] = {
    status.HTTP_422_UNPROCESSABLE_CONTENT: {
        "model": StudyErrors,
        "description": "A variant's spec is invalid: every error, naming the variant (index and label) and the "
        "field; nothing was queued. (A malformed body gets FastAPI's 422, with `field` and `loc`.)",
    }
}
_EXAMPLES = {
    "variants": {
        "summary": "A base spec and variants",
        "value": {
            "name": "MNIST kernels",
            "description": "Kernel sizes of the basic CNN.",
            "base": {
                "dataset": {"name": "mnist"},
                "model": {"arch": "cnn", "channels": [32, 64], "kernel_sizes": [3, 3]},
                "epochs": 10,
            },
            "variants": [
                {"label": "kernel=3"},
                {"label": "kernel=5", "set": {"model.kernel_sizes": [5, 5]}},
                {"label": "kernels 3+9", "set": {"model.kernel_sizes": [3, 9]}},
                {"label": "FC", "spec": {"dataset": {"name": "mnist"}, "model": {"arch": "mlp"}, "epochs": 10}},
            ],
        },
    },
    "preset": {
        "summary": "A preset, smoke-tested on a slice of the data",
        "value": {
            "preset": "mnist-ablations",
            "set": {"epochs": 1, "dataset.train_limit": 512, "dataset.test_limit": 256},
        },
    },
}
StudyBody = Annotated[StudyCreate, Body(openapi_examples=_EXAMPLES)]


def _resolved(body: StudyCreate | SweepCreate) -> ResolvedStudy:
    try:
        return resolve(body) if isinstance(body, StudyCreate) else resolve_sweep(body)
    except StudyInvalid as exc:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, detail=[error.as_dict() for error in exc.errors]
        ) from None


def study_detail(session: Session, study: Study) -> StudyDetail:
    assert study.id is not None
    runs = study_runs(session, study.id)
    summary = StudyPublic.of(study, status_counts(session, [study.id])[study.id])
    public = [RunPublic.of(run) for run in runs]
    return StudyDetail(**summary.model_dump(), data=public, reported=study.reported, groups=study_groups(public))


def _queue(resolved: ResolvedStudy, session: Session, feed: FeedDep, dispatcher: DispatcherDep) -> StudyDetail:
    study = Study(
        name=resolved.name,
        description=resolved.description,
        preset=resolved.preset,
        overrides=resolved.overrides,
        reported={label: r.model_dump() for label, r in resolved.reported.items()},
    )
    queue_runs(session, resolved.specs, dispatcher, feed, study=study, labels=resolved.labels, repeats=resolved.repeats)
    return study_detail(session, study)


@router.post("/studies", status_code=status.HTTP_201_CREATED, response_model=StudyDetail, responses=_INVALID)
def create_study(body: StudyBody, session: SessionDep, feed: FeedDep, dispatcher: DispatcherDep) -> StudyDetail:
    """Validate every variant's spec, then queue them all, in order (nothing is queued if any is invalid);
    a variant with `repeats: N` is N runs with seeds spec.seed + 0..N-1 under its label."""
    return _queue(_resolved(body), session, feed, dispatcher)


_SWEEP_INVALID: dict[int | str, dict[str, Any]] = {
    status.HTTP_422_UNPROCESSABLE_CONTENT: {
        "model": StudyErrors,
        "description": "A bad grid path, a sweep over the run limit (the message gives the count and the limit), "
        "or a point whose spec is invalid (named by its label, with the field); nothing was queued.",
    }
}


@router.post("/sweeps", status_code=status.HTTP_201_CREATED, response_model=StudyDetail, responses=_SWEEP_INVALID)
def create_sweep(body: SweepCreate, session: SessionDep, feed: FeedDep, dispatcher: DispatcherDep) -> StudyDetail:
    """A grid over spec fields as a study: one labelled run per point (Cartesian product, in the order
    given) times `repeats` seeds, at most 200 runs; every point validated before any is queued."""
    return _queue(_resolved(body), session, feed, dispatcher)


@router.post("/sweeps/preview", response_model=SweepPreview, responses=_SWEEP_INVALID)
def preview_sweep(body: SweepCreate) -> SweepPreview:
    """How many runs `POST /api/sweeps` would queue and each point's label; checks the paths and the size
    (not the specs, which `POST /api/sweeps` validates); queues nothing."""
    try:
        points = sweep_points(body)
    except StudyInvalid as exc:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, detail=[error.as_dict() for error in exc.errors]
        ) from None
    return SweepPreview(
        count=len(points) * body.repeats, points=len(points), repeats=body.repeats, labels=[p.label for p in points]
    )


@router.post("/studies/preview", response_model=StudyPreview, responses=_INVALID)
def preview_study(body: StudyBody) -> StudyPreview:
    """What `POST /api/studies` would queue for this body, with each run's key settings; queues nothing."""
    resolved = _resolved(body)
    planned = resolved.planned()
    return StudyPreview(
        name=resolved.name, description=resolved.description, preset=resolved.preset, data=planned, count=len(planned)
    )


@router.get("/studies", response_model=StudiesPublic)
def read_studies(
    session: SessionDep,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> StudiesPublic:
    """Studies, newest first, with how many of their runs are in each status."""
    studies, count = list_studies(session, offset, limit)
    counts = status_counts(session, [s.id for s in studies if s.id is not None])
    return StudiesPublic(data=[StudyPublic.of(s, counts[s.id]) for s in studies if s.id is not None], count=count)


@router.get("/studies/{study_id}", response_model=StudyDetail)
def read_study(study: StudyDep, session: SessionDep) -> StudyDetail:
    """The study and its runs (label, status, progress, summary), in the order of its variants."""
    return study_detail(session, study)


class StudySummary(BaseModel):
    study_id: int
    summary_mode: str
    caption: str
    columns: list[dict[str, Any]]
    rows: list[dict[str, Any]] = Field(description="One per label; each spread number is {mean, std, n} or null.")


SummaryMode = Annotated[compare.SummaryMode, Query(description="Which epoch a run's accuracy is taken from")]


def _loaded(session: Session, study: Study) -> tuple[list[RunPublic], dict[int, list[dict[str, Any]]]]:
    assert study.id is not None
    return load_runs(session, [run.id for run in study_runs(session, study.id) if run.id is not None])


@router.get(
    "/studies/{study_id}/summary",
    response_model=StudySummary,
    responses={200: {"content": {"application/json": {}} | {t: {} for t in exports.MEDIA_TYPES.values()}}},
)
def read_study_summary(
    study: StudyDep,
    session: SessionDep,
    summary: SummaryMode = "best",
    format: Annotated[Literal["json", "csv", "md", "tex"], Query(description="json, csv, md or tex")] = "json",
) -> Any:
    """The study's summary table: one row per label, test accuracy (and epochs, time, images/s) as mean ±
    std over its succeeded repeats, with the reported figures of a preset. CSV gives mean and std as two
    columns and n as its own."""
    runs, records = _loaded(session, study)
    rows = summary_table(study, runs, records, summary)
    columns = summary_columns(bool(study.reported))
    if format == "json":
        assert study.id is not None
        return StudySummary(
            study_id=study.id,
            summary_mode=summary,
            caption=caption(summary),
            columns=[asdict(c) for c in columns],
            rows=[{k: asdict(v) if isinstance(v, compare.Spread) else v for k, v in row.items()} for row in rows],
        )
    text = exports.render(rows, columns, format, caption=caption(summary))
    return PlainTextResponse(
        text,
        media_type=exports.MEDIA_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="study-{study.id}-summary.{format}"'},
    )


@router.get(
    "/studies/{study_id}/report.md",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/markdown": {}}}},
)
def read_study_report(study: StudyDep, session: SessionDep, summary: SummaryMode = "best") -> PlainTextResponse:
    """The study's report as Markdown, ready to paste: the summary table and per-class accuracy per label."""
    runs, records = _loaded(session, study)
    return PlainTextResponse(report_markdown(study, runs, records, summary), media_type="text/markdown")


@router.get("/presets", response_model=PresetsPublic)
def read_presets() -> PresetsPublic:
    """The built-in studies: one per table of the motivating study, each variant with its reported figures."""
    data = [
        PresetSummary(
            name=p.name,
            title=p.title,
            table=p.table,
            description=p.description,
            runs=len(p.variants),
            variants=[PresetVariant(label=v.label, reported=v.reported) for v in p.variants],
        )
        for p in presets().values()
    ]
    return PresetsPublic(data=data, count=len(data))


@router.get("/presets/{name}", response_model=Preset)
def read_preset(name: Annotated[str, Path(max_length=64)]) -> Preset:
    """A preset in full: its base spec and every variant, as `POST /api/studies` takes them."""
    preset = presets().get(name)
    if preset is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"preset {name!r} not found")
    return preset
