"""REST routes for studies (named groups of runs queued together) and sweeps (a grid of runs, as a study)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Query, status
from fastapi.responses import PlainTextResponse
from sqlmodel import Session

from backend.deps import (
    DispatcherDep,
    FeedDep,
    IdempotencyKey,
    ServedDep,
    SessionDep,
    SettingsDep,
    StudyDep,
    require_user,
)
from backend.responses import NOT_FOUND, REUSED_KEY, USER
from backend.services import exports, idempotency, studies, study_plans, study_reports, workers
from trainboard.schemas import (
    Archived,
    StudiesPublic,
    StudyCreate,
    StudyDetail,
    StudyPreview,
    StudyReport,
    StudySummary,
    SummaryMode,
    SweepCreate,
    SweepPreview,
)
from trainboard.settings import Settings

router = APIRouter(prefix="/api", tags=["studies"], dependencies=[Depends(require_user)], responses=USER)

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
Mode = Annotated[SummaryMode, Query(description="Which epoch a run's accuracy is taken from")]


@router.post("/studies", status_code=status.HTTP_201_CREATED, response_model=StudyDetail, responses=REUSED_KEY)
def create_study(
    body: StudyBody,
    session: SessionDep,
    feed: FeedDep,
    dispatcher: DispatcherDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKey = None,
) -> StudyDetail:
    """Validate every variant's spec, then queue them all, in order (nothing is queued if any is invalid);
    a variant with `repeats: N` is N runs with seeds spec.seed + 0..N-1 under its label."""
    resolved = study_plans.resolve(body, settings.memory_budget_gb, _offered(session, settings), session)
    asked = idempotency.request("studies", idempotency_key, body)
    return studies.study_detail(session, studies.queue_study(session, resolved, dispatcher, feed, asked))


@router.post("/sweeps", status_code=status.HTTP_201_CREATED, response_model=StudyDetail, responses=REUSED_KEY)
def create_sweep(
    body: SweepCreate,
    session: SessionDep,
    feed: FeedDep,
    dispatcher: DispatcherDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKey = None,
) -> StudyDetail:
    """A grid over spec fields as a study: one labelled run per point (Cartesian product, in the order
    given) times `repeats` seeds, at most 200 runs; every point validated before any is queued."""
    resolved = study_plans.resolve_sweep(body, settings.memory_budget_gb, _offered(session, settings), session)
    asked = idempotency.request("sweeps", idempotency_key, body)
    return studies.study_detail(session, studies.queue_study(session, resolved, dispatcher, feed, asked))


@router.post("/sweeps/preview", response_model=SweepPreview, responses=USER)
def preview_sweep(body: SweepCreate, session: SessionDep, settings: SettingsDep) -> SweepPreview:
    """What `POST /api/sweeps` would queue for this body: every run with its key settings (each point's
    spec validated, as `POST /api/sweeps` does), the count and each point's label; queues nothing."""
    return study_plans.sweep_preview(body, settings.memory_budget_gb, _offered(session, settings), session)


@router.post("/studies/preview", response_model=StudyPreview, responses=USER)
def preview_study(body: StudyBody, session: SessionDep, settings: SettingsDep) -> StudyPreview:
    """What `POST /api/studies` would queue for this body, with each run's key settings; queues nothing."""
    resolved = study_plans.resolve(body, settings.memory_budget_gb, _offered(session, settings), session)
    planned = resolved.planned()
    return StudyPreview(
        name=resolved.name, description=resolved.description, preset=resolved.preset, data=planned, count=len(planned)
    )


@router.get("/studies", response_model=StudiesPublic)
def read_studies(
    session: SessionDep,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    archived: Annotated[Archived, Query(description="Archived studies: left out, included, or only them")] = "exclude",
) -> StudiesPublic:
    """Studies, newest first, with how many of their runs are in each status."""
    shown, count = studies.list_studies(session, offset, limit, archived)
    return StudiesPublic(data=shown, count=count)


@router.get("/studies/{study_id}", response_model=StudyDetail, responses=NOT_FOUND)
def read_study(study: StudyDep, session: SessionDep, served: ServedDep) -> StudyDetail:
    """The study and its runs (label, status, progress, summary), in the order of its variants."""
    return studies.study_detail(session, study, served)


@router.get(
    "/studies/{study_id}/summary",
    response_model=StudySummary,
    responses=NOT_FOUND | {200: {"content": {"application/json": {}} | {t: {} for t in exports.MEDIA_TYPES.values()}}},
)
def read_study_summary(
    study: StudyDep,
    session: SessionDep,
    summary: Mode = "best",
    format: Annotated[Literal["json", "csv", "md", "tex"], Query(description="json, csv, md or tex")] = "json",
) -> Any:
    """The study's summary table: one row per label, test accuracy (and epochs, time, images/s) as mean ±
    std over its succeeded repeats, with the reported figures of a preset. CSV gives mean and std as two
    columns and n as its own."""
    members, records = study_reports.load(session, study)
    if format == "json":
        return study_reports.summary(study, members, records, summary)
    rows = study_reports.summary_table(study, members, records, summary)
    text = exports.render(
        rows, study_reports.summary_columns(bool(study.reported)), format, caption=study_reports.caption(summary)
    )
    return PlainTextResponse(
        text,
        media_type=exports.MEDIA_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="study-{study.id}-summary.{format}"'},
    )


@router.get("/studies/{study_id}/report", response_model=StudyReport, responses=NOT_FOUND)
def read_study_report_data(study: StudyDep, session: SessionDep, summary: Mode = "best") -> StudyReport:
    """What the report page draws, computed here: the summary table, each version's mean curves with a ± std
    band over its seeds, and its mean per-class accuracy (for studies of up to 200 runs)."""
    return study_reports.report(session, study, summary)


@router.get(
    "/studies/{study_id}/report.md",
    response_class=PlainTextResponse,
    responses=NOT_FOUND | {200: {"content": {"text/markdown": {}}}},
)
def read_study_report(study: StudyDep, session: SessionDep, summary: Mode = "best") -> PlainTextResponse:
    """The study's report as Markdown, ready to paste: the summary table and per-class accuracy per label."""
    return PlainTextResponse(study_reports.report_markdown(session, study, summary), media_type="text/markdown")


def _offered(session: Session, settings: Settings) -> set[str]:
    """The custom model names live workers offer: a variant naming another is refused (422, `model.name`)."""
    return workers.offered_models(session, settings.lost_after_seconds)
