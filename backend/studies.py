"""Studies beyond their routes: a posted study resolved into what gets queued (its name, the validated
spec and label of every run, from its own variants or a built-in preset, the global override and the
reported figures), each run's key settings in words for the preview, and the queries that read studies."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func
from sqlmodel import Session, col, select

from backend.models import PlannedRun, Run, RunStatus, Study, StudyCreate
from trainboard.presets import presets
from trainboard.presets.variants import Reported, StudyInvalid, VariantError, expand
from trainboard.spec import (
    DATASET_SHAPES, CNNSpec, CustomCNNSpec, MLPSpec, MultiStepSchedule, RunSpec, StepSchedule, TorchvisionSpec,
)


@dataclass
class ResolvedStudy:
    name: str
    description: str
    preset: str | None
    overrides: dict[str, object]
    labels: list[str]
    specs: list[RunSpec]
    reported: dict[str, Reported]

    def planned(self) -> list[PlannedRun]:
        return [
            PlannedRun(label=label, spec=spec.model_dump(mode="json"), settings=key_settings(spec),
                       parameters=parameters(spec), reported=self.reported.get(label))
            for label, spec in zip(self.labels, self.specs, strict=True)
        ]


def resolve(request: StudyCreate) -> ResolvedStudy:
    """Every run of the study, validated; StudyInvalid (every error, naming variant and field) otherwise."""
    if request.preset is not None:
        preset = presets().get(request.preset)
        if preset is None:
            known = ", ".join(presets())
            raise StudyInvalid([VariantError(None, None, "preset", f"unknown preset {request.preset!r}; "
                                             f"the presets are: {known}", "preset")])
        base, variants = preset.base, preset.variants
        name, description = request.name.strip() or preset.title, request.description or preset.description
    else:
        assert request.variants is not None  # StudyCreate checks: a preset, or variants
        base, variants = request.base, request.variants
        name, description = request.name.strip(), request.description
    specs = expand(base, variants, request.set)
    return ResolvedStudy(
        name=name, description=description, preset=request.preset, overrides=dict(request.set),
        labels=[v.label for v in variants], specs=specs,
        reported={v.label: v.reported for v in variants if v.reported is not None},
    )


def parameters(spec: RunSpec) -> int:
    channels, _, _, classes = DATASET_SHAPES[spec.dataset.name]
    return spec.model.parameter_count((channels, *spec.dataset.image_size, classes))


def _numbers(values: list[int]) -> str:
    return ", ".join(map(str, values)) if values else "none"


def key_settings(spec: RunSpec) -> dict[str, str]:
    """What tells one run of a study from another, in a few words per part."""
    data = spec.dataset
    height, width = data.image_size
    data_text = f"{data.name} {height}x{width}" + (" (resized)" if data.resize else "")
    data_text += f", normalize {data.normalize}"
    if data.train_limit or data.test_limit:
        data_text += f", first {data.train_limit or 'all'}/{data.test_limit or 'all'} train/test images"
    augment = [name for name, value in spec.augment if value is not None]
    if augment:
        data_text += ", augment " + " + ".join(augment)

    model = spec.model
    if isinstance(model, MLPSpec):
        model_text = f"mlp {_numbers(model.hidden)}" + (", batch norm" if model.batch_norm else "")
        model_text += f", dropout {model.dropout:g}" if model.dropout else ""
    elif isinstance(model, CNNSpec):
        model_text = (f"cnn channels {_numbers(model.channels)}, kernels {_numbers(model.kernel_sizes)}, "
                      f"{model.pool} pool" + (f", dilation {model.dilation}" if model.dilation > 1 else "")
                      + f", hidden {_numbers(model.hidden)}")
    elif isinstance(model, CustomCNNSpec):
        model_text = (f"custom_cnn blocks {_numbers(model.blocks)}, dropout {model.dropout:g}, "
                      f"hidden {_numbers(model.hidden)}")
    else:
        assert isinstance(model, TorchvisionSpec)
        head = model.head
        head_text = "linear head" if head.kind == "linear" else f"mlp head {head.hidden}, dropout {head.dropout:g}"
        model_text = f"{model.arch}{' pretrained' if model.pretrained else ''}, {head_text}"

    opt = spec.optimizer
    training = f"{opt.name} lr {opt.lr:g}"
    if opt.name == "sgd" and opt.momentum:
        training += f" momentum {opt.momentum:g}" + (" nesterov" if opt.nesterov else "")
    if opt.weight_decay:
        training += f" wd {opt.weight_decay:g}"
    if spec.finetune.train != "all":
        training += "; trains " + ", ".join(spec.finetune.train)
    if spec.finetune.lr:
        training += "; lr " + ", ".join(f"{group} {lr:g}" for group, lr in spec.finetune.lr.items())
    schedule = spec.scheduler
    if isinstance(schedule, MultiStepSchedule):
        training += f"; multistep {_numbers(schedule.milestones)} x{schedule.gamma:g}"
    elif isinstance(schedule, StepSchedule):
        training += f"; step every {schedule.step_size} x{schedule.gamma:g}"
    elif schedule.name == "cosine":
        training += "; cosine"

    epochs = f"{spec.epochs} epoch{'' if spec.epochs == 1 else 's'}, batch {spec.batch_size}"
    if spec.early_stopping is not None:
        stop = spec.early_stopping
        epochs += f", early stopping on {stop.metric} (patience {stop.patience})"
    return {"data": data_text, "model": model_text, "training": training, "epochs": epochs}


def list_studies(session: Session, offset: int, limit: int) -> tuple[list[Study], int]:
    """One page of studies, newest first, and how many there are."""
    count = session.exec(select(func.count()).select_from(Study)).one()
    studies = session.exec(select(Study).order_by(col(Study.id).desc()).offset(offset).limit(limit)).all()
    return list(studies), count


def study_runs(session: Session, study_id: int) -> list[Run]:
    """A study's runs in the order of its variants."""
    return list(session.exec(select(Run).where(Run.study_id == study_id).order_by(col(Run.id))).all())


def status_counts(session: Session, study_ids: Sequence[int]) -> dict[int, dict[RunStatus, int]]:
    """How many runs of each study are in each status (every status present, zeros included): one query."""
    counts = {study_id: dict.fromkeys(RunStatus, 0) for study_id in study_ids}
    if not study_ids:
        return counts
    rows = session.exec(
        select(Run.study_id, Run.status, func.count()).where(col(Run.study_id).in_(study_ids))
        .group_by(col(Run.study_id), col(Run.status))
    ).all()
    for study_id, run_status, count in rows:
        assert study_id is not None
        counts[study_id][RunStatus(run_status)] = count
    return counts
