"""A posted study (or sweep) resolved into what gets queued: its name, the validated spec and label of every
run (from its own variants, a sweep's grid or a built-in preset, with the global override and the seeds),
the reported figures, and each run's key settings in words for the preview. No database here."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session

from backend.services import datasets
from trainboard.memory import over_budget
from trainboard.presets import presets
from trainboard.presets.variants import (
    MAX_ERRORS,
    MAX_STUDY_RUNS,
    Reported,
    StudyInvalid,
    Variant,
    VariantError,
    check_labels,
    check_path,
    expand,
    run_count_error,
    sweep_variants,
)
from trainboard.schemas import Placement, PlannedRun, StudyCreate, SweepCreate, SweepPreview
from trainboard.spec import (
    CNNSpec,
    CustomCNNSpec,
    CustomModelSpec,
    MLPSpec,
    MultiStepSchedule,
    RunSpec,
    StepSchedule,
    TorchvisionSpec,
    dataset_shape,
)


@dataclass
class ResolvedStudy:
    name: str
    description: str
    preset: str | None
    overrides: dict[str, object]
    labels: list[str]  # one per run: a label's repeats share it
    specs: list[RunSpec]
    reported: dict[str, Reported]
    repeats: list[int]  # one per run: which seed of its label (0-based)
    placement: Placement  # the queue and priority of every run

    def planned(self) -> list[PlannedRun]:
        return [
            PlannedRun(
                label=label,
                repeat=repeat,
                spec=spec.model_dump(mode="json"),
                settings=key_settings(spec),
                parameters=parameters(spec),
                reported=self.reported.get(label),
            )
            for label, repeat, spec in zip(self.labels, self.repeats, self.specs, strict=True)
        ]


def with_repeats(
    variants: list[Variant], specs: list[RunSpec], default: int, what: str = "variants"
) -> tuple[list[str], list[RunSpec], list[int]]:
    """Each variant's spec `repeats` times with seeds spec.seed + 0..N-1 (labels, specs, repeat indices),
    or StudyInvalid when that is more than a study may queue."""
    counts = [variant.repeats or default for variant in variants]
    if sum(counts) > MAX_STUDY_RUNS:
        raise StudyInvalid(
            [
                VariantError(
                    None,
                    None,
                    "repeats",
                    f"the study would queue {sum(counts)} runs ({len(variants)} {what} with their "
                    f"repeats); the limit is {MAX_STUDY_RUNS}",
                    "too_many_runs",
                )
            ]
        )
    labels: list[str] = []
    out: list[RunSpec] = []
    repeats: list[int] = []
    for variant, spec, count in zip(variants, specs, counts, strict=True):
        for repeat in range(count):
            labels.append(variant.label)
            out.append(spec if repeat == 0 else spec.model_copy(update={"seed": spec.seed + repeat}))
            repeats.append(repeat)
    return labels, out, repeats


def check_memory(variants: list[Variant], specs: list[RunSpec], budget_gb: float | None) -> None:
    """StudyInvalid naming every variant whose run would not fit the memory budget (trainboard/memory.py)."""
    if budget_gb is None:
        return
    errors = [
        VariantError(index, variant.label, "batch_size", problem.removeprefix("batch_size: "), "memory_budget")
        for index, (variant, spec) in enumerate(zip(variants, specs, strict=True))
        if (problem := over_budget(spec, budget_gb)) is not None
    ]
    if errors:
        raise StudyInvalid(errors[:MAX_ERRORS])


def unknown_model(spec: RunSpec, offered: set[str]) -> str | None:
    """Why `spec`'s custom model cannot be queued (no live worker offers its name); None when it can, or when
    the spec names no custom model."""
    if not isinstance(spec.model, CustomModelSpec) or spec.model.name in offered:
        return None
    listed = ", ".join(sorted(offered)) if offered else "none (set TRAINBOARD_MODELS on a worker)"
    return f"no live worker offers a model named {spec.model.name!r}; live workers offer: {listed}"


def check_models(variants: list[Variant], specs: list[RunSpec], offered: set[str] | None) -> None:
    """StudyInvalid naming every variant whose custom model no live worker offers (`offered`: the names they do;
    None: not checked)."""
    if offered is None:
        return
    errors = [
        VariantError(index, variant.label, "model.name", problem, "model")
        for index, (variant, spec) in enumerate(zip(variants, specs, strict=True))
        if (problem := unknown_model(spec, offered)) is not None
    ]
    if errors:
        raise StudyInvalid(errors[:MAX_ERRORS])


def check_datasets(variants: list[Variant], specs: list[RunSpec]) -> None:
    """StudyInvalid naming every variant whose dataset is neither built in nor registered (datasets.sync first)."""
    errors = [
        VariantError(
            index,
            variant.label,
            "dataset.name",
            f"no dataset named {spec.dataset.name!r}: see GET /api/datasets",
            "unknown_dataset",
        )
        for index, (variant, spec) in enumerate(zip(variants, specs, strict=True))
        if dataset_shape(spec.dataset.name) is None
    ]
    if errors:
        raise StudyInvalid(errors[:MAX_ERRORS])


def resolve(
    request: StudyCreate,
    memory_budget_gb: float | None = None,
    offered_models: set[str] | None = None,
    session: Session | None = None,
) -> ResolvedStudy:
    """Every run of the study, validated; StudyInvalid (every error, naming variant and field) otherwise.
    `offered_models`: the custom model names live workers offer (None: not checked). `session`: where the
    registered datasets are (without one, only the built-in datasets are known)."""
    if session is not None:
        datasets.sync(session)  # before the specs are validated: a registered dataset's shape is then known
    if request.preset is not None:
        preset = presets().get(request.preset)
        if preset is None:
            known = ", ".join(presets())
            raise StudyInvalid(
                [
                    VariantError(
                        None, None, "preset", f"unknown preset {request.preset!r}; the presets are: {known}", "preset"
                    )
                ]
            )
        base, variants = preset.base, preset.variants
        name, description = request.name.strip() or preset.title, request.description or preset.description
    else:
        assert request.variants is not None  # StudyCreate checks: a preset, or variants
        base, variants = request.base, request.variants
        name, description = request.name.strip(), request.description
    specs = expand(base, variants, request.set)
    check_datasets(variants, specs)
    check_models(variants, specs, offered_models)
    check_memory(variants, specs, memory_budget_gb)
    labels, specs, repeats = with_repeats(variants, specs, request.repeats)
    return ResolvedStudy(
        name=name,
        description=description,
        preset=request.preset,
        overrides=dict(request.set),
        labels=labels,
        specs=specs,
        repeats=repeats,
        reported={v.label: v.reported for v in variants if v.reported is not None},
        placement=Placement(queue=request.queue, priority=request.priority),
    )


def sweep_points(request: SweepCreate) -> list[Variant]:
    """The sweep's points as variants, after checking its paths and its size (StudyInvalid otherwise)."""
    errors: list[VariantError] = []
    for path in request.grid:
        try:
            check_path(path)
        except ValueError as exc:
            errors.append(VariantError(None, None, f"grid.{path}", str(exc), "path"))
    points = 1
    for values in request.grid.values():
        points *= len(values)
    too_many = run_count_error(points, request.repeats)
    if too_many is not None:
        errors.append(too_many)
    if errors:
        raise StudyInvalid(errors)
    variants = sweep_variants(request.grid)
    try:
        check_labels(variants)
    except ValueError as exc:
        raise StudyInvalid([VariantError(None, None, "grid", str(exc), "labels")]) from None
    return variants


def resolve_sweep(
    request: SweepCreate,
    memory_budget_gb: float | None = None,
    offered_models: set[str] | None = None,
    session: Session | None = None,
) -> ResolvedStudy:
    """Every run of the sweep (each point's spec validated, the errors naming the point and field)."""
    if session is not None:
        datasets.sync(session)
    variants = sweep_points(request)
    specs = expand(request.base, variants, request.set)
    check_datasets(variants, specs)
    check_models(variants, specs, offered_models)
    check_memory(variants, specs, memory_budget_gb)
    labels, specs, repeats = with_repeats(variants, specs, request.repeats, "points")
    return ResolvedStudy(
        name=request.name.strip(),
        description=request.description,
        preset=None,
        overrides=dict(request.set),
        labels=labels,
        specs=specs,
        repeats=repeats,
        reported={},
        placement=Placement(queue=request.queue, priority=request.priority),
    )


def sweep_preview(
    request: SweepCreate,
    memory_budget_gb: float | None = None,
    offered_models: set[str] | None = None,
    session: Session | None = None,
) -> SweepPreview:
    """What `POST /api/sweeps` would queue: every run, validated and in words, and the grid's points."""
    labels = [point.label for point in sweep_points(request)]
    planned = resolve_sweep(request, memory_budget_gb, offered_models, session).planned()
    return SweepPreview(
        name=request.name.strip(),
        description=request.description,
        preset=None,
        data=planned,
        count=len(planned),
        points=len(labels),
        repeats=request.repeats,
        labels=labels,
    )


def parameters(spec: RunSpec) -> int:
    return spec.model.parameter_count((*spec.input_shape, spec.num_classes))


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
        model_text = (
            f"cnn channels {_numbers(model.channels)}, kernels {_numbers(model.kernel_sizes)}, "
            f"{model.pool} pool"
            + (f", dilation {model.dilation}" if model.dilation > 1 else "")
            + f", hidden {_numbers(model.hidden)}"
        )
    elif isinstance(model, CustomCNNSpec):
        model_text = (
            f"custom_cnn blocks {_numbers(model.blocks)}, dropout {model.dropout:g}, hidden {_numbers(model.hidden)}"
        )
    elif isinstance(model, CustomModelSpec):
        model_text = f"custom {model.name}" + "".join(f", {key} {value}" for key, value in model.kwargs.items())
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
