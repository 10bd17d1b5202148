"""REST routes for studies (named groups of runs queued together) and the built-in presets they can come from."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query, status
from sqlmodel import Session

from backend.api.deps import DispatcherDep, FeedDep, SessionDep, StudyDep, require_user
from backend.dispatch import queue_runs
from backend.models import (
    PresetsPublic, PresetSummary, PresetVariant, RunPublic, StudiesPublic, Study, StudyCreate, StudyDetail,
    StudyErrors, StudyPreview, StudyPublic,
)
from backend.studies import ResolvedStudy, list_studies, resolve, status_counts, study_runs
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
            "name": "MNIST kernels", "description": "Kernel sizes of the basic CNN.",
            "base": {"dataset": {"name": "mnist"}, "model": {"arch": "cnn", "channels": [32, 64],
                                                             "kernel_sizes": [3, 3]}, "epochs": 10},
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
        "value": {"preset": "mnist-ablations",
                  "set": {"epochs": 1, "dataset.train_limit": 512, "dataset.test_limit": 256}},
    },
}
StudyBody = Annotated[StudyCreate, Body(openapi_examples=_EXAMPLES)]


def _resolved(body: StudyCreate) -> ResolvedStudy:
    try:
        return resolve(body)
    except StudyInvalid as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            detail=[error.as_dict() for error in exc.errors]) from None


def study_detail(session: Session, study: Study) -> StudyDetail:
    assert study.id is not None
    runs = study_runs(session, study.id)
    summary = StudyPublic.of(study, status_counts(session, [study.id])[study.id])
    return StudyDetail(**summary.model_dump(), data=[RunPublic.of(run) for run in runs], reported=study.reported)


@router.post("/studies", status_code=status.HTTP_201_CREATED, response_model=StudyDetail, responses=_INVALID)
def create_study(body: StudyBody, session: SessionDep, feed: FeedDep, dispatcher: DispatcherDep) -> StudyDetail:
    """Validate every variant's spec, then queue them all, in order (nothing is queued if any is invalid)."""
    resolved = _resolved(body)
    study = Study(name=resolved.name, description=resolved.description, preset=resolved.preset,
                  overrides=resolved.overrides,
                  reported={label: r.model_dump() for label, r in resolved.reported.items()})
    queue_runs(session, resolved.specs, dispatcher, feed, study=study, labels=resolved.labels)
    return study_detail(session, study)


@router.post("/studies/preview", response_model=StudyPreview, responses=_INVALID)
def preview_study(body: StudyBody) -> StudyPreview:
    """What `POST /api/studies` would queue for this body, with each run's key settings; queues nothing."""
    resolved = _resolved(body)
    planned = resolved.planned()
    return StudyPreview(name=resolved.name, description=resolved.description, preset=resolved.preset,
                        data=planned, count=len(planned))


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


@router.get("/presets", response_model=PresetsPublic)
def read_presets() -> PresetsPublic:
    """The built-in studies: one per table of the motivating study, each variant with its reported figures."""
    data = [
        PresetSummary(name=p.name, title=p.title, table=p.table, description=p.description, runs=len(p.variants),
                      variants=[PresetVariant(label=v.label, reported=v.reported) for v in p.variants])
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
