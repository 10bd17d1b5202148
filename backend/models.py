"""Database tables and their public shapes: a study, a run (maybe in a study), one metrics record per epoch."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, JsonValue, model_validator
from sqlalchemy import JSON, Column, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from backend.db import UTCDateTime, utcnow
from trainboard.presets.variants import (
    MAX_AXIS,
    MAX_LABEL,
    MAX_REPEATS,
    MAX_SETS,
    MAX_VARIANTS,
    Reported,
    SpecDocument,
    Variant,
    check_labels,
)
from trainboard.reports import EpochRecord, Progress, RunInfo


class RunStatus(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (RunStatus.succeeded, RunStatus.failed, RunStatus.cancelled)


def _ts(**kwargs: Any) -> Any:
    return Field(sa_type=UTCDateTime, **kwargs)


class Study(SQLModel, table=True):
    """A named group of runs queued together; each of its runs has a label (the 'Version' of its table)."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=120)
    description: str = Field(default="", sa_column=Column(Text, nullable=False))
    preset: str | None = Field(default=None, max_length=64, description="The built-in preset it came from.")
    overrides: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    reported: dict[str, Any] = Field(
        default_factory=dict,
        sa_column=Column(JSON, nullable=False),
        description="label -> the figures a report gives for that variant",
    )
    created_at: datetime = _ts(default_factory=utcnow)


class Run(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    study_id: int | None = Field(default=None, foreign_key="study.id", index=True)
    label: str | None = Field(default=None, max_length=MAX_LABEL)
    repeat: int = Field(default=0, description="Which seed of its label (0-based): seed = the variant's seed + repeat.")
    name: str = Field(index=True, max_length=120)
    dataset: str = Field(index=True, max_length=40)
    arch: str = Field(index=True, max_length=40)
    spec: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    status: RunStatus = Field(default=RunStatus.queued, index=True, max_length=16)
    attempt: int = Field(default=0, description="How many times a worker has claimed the run.")
    worker: str | None = Field(default=None, max_length=200)
    device: str | None = Field(default=None, max_length=64)
    created_at: datetime = _ts(default_factory=utcnow)
    started_at: datetime | None = _ts(default=None)
    finished_at: datetime | None = _ts(default=None)
    heartbeat_at: datetime | None = _ts(default=None)
    progress_epoch: int = 0
    progress_batch: int = 0
    progress_batches: int = 0
    cancel_requested: bool = False
    epochs_done: int = 0
    best_test_acc: float | None = None
    best_epoch: int | None = None
    final_test_acc: float | None = None
    total_seconds: float | None = None
    confusion: list[list[int]] | None = Field(default=None, sa_column=Column(JSON))
    error: str | None = Field(default=None, sa_column=Column(Text))
    info: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    stop_reason: str | None = Field(default=None, max_length=500)
    tags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    notes: str = Field(default="", sa_column=Column(Text, nullable=False))


class EpochMetric(SQLModel, table=True):
    __tablename__ = "epoch_metric"
    __table_args__ = (UniqueConstraint("run_id", "epoch", name="uq_epoch_metric_run_epoch"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="run.id", index=True, ondelete="CASCADE")
    attempt: int
    epoch: int
    train_loss: float
    train_acc: float
    test_loss: float
    test_acc: float
    per_class_acc: list[float] = Field(sa_column=Column(JSON, nullable=False))
    lr: list[float] = Field(sa_column=Column(JSON, nullable=False))
    seconds: float
    images_per_s: float
    created_at: datetime = _ts(default_factory=utcnow)

    def record(self) -> EpochRecord:
        return EpochRecord.model_validate(self.model_dump(include=set(EpochRecord.model_fields)))


class Summary(BaseModel):
    best_test_acc: float | None
    best_epoch: int | None
    final_test_acc: float | None
    epochs_done: int
    total_seconds: float | None
    stop_reason: str | None = Field(None, description="Set when early stopping ended the run")


class RunPublic(BaseModel):
    id: int
    study_id: int | None
    label: str | None
    repeat: int
    name: str
    dataset: str
    arch: str
    status: RunStatus
    attempt: int
    spec: dict[str, Any]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    progress: Progress
    summary: Summary
    cancel_requested: bool
    device: str | None
    error: str | None
    info: RunInfo | None
    tags: list[str]
    notes: str

    @classmethod
    def of(cls, run: Run) -> RunPublic:
        assert run.id is not None
        return cls(
            id=run.id,
            study_id=run.study_id,
            label=run.label,
            repeat=run.repeat or 0,
            name=run.name,
            dataset=run.dataset,
            arch=run.arch,
            status=run.status,
            attempt=run.attempt,
            spec=run.spec,
            created_at=run.created_at,
            started_at=run.started_at,
            finished_at=run.finished_at,
            cancel_requested=run.cancel_requested,
            device=run.device,
            error=run.error,
            info=None if run.info is None else RunInfo.model_validate(run.info),
            tags=list(run.tags or []),
            notes=run.notes or "",
            progress=Progress(epoch=run.progress_epoch, batch=run.progress_batch, batches=run.progress_batches),
            summary=Summary(
                best_test_acc=run.best_test_acc,
                best_epoch=run.best_epoch,
                final_test_acc=run.final_test_acc,
                epochs_done=run.epochs_done,
                total_seconds=run.total_seconds,
                stop_reason=run.stop_reason,
            ),
        )


class RunsPublic(BaseModel):
    data: list[RunPublic]
    count: int


class MetricsPublic(BaseModel):
    run_id: int
    data: list[EpochRecord]
    count: int


class ConfusionPublic(BaseModel):
    run_id: int
    classes: list[str]
    matrix: list[list[int]] | None


# -- studies ---------------------------------------------------------------------------------------

_STUDY_EXAMPLES: list[JsonValue] = [
    {
        "name": "MNIST kernels",
        "description": "Kernel sizes of the basic CNN.",
        "base": {
            "dataset": {"name": "mnist"},
            "model": {"arch": "cnn", "channels": [32, 64], "kernel_sizes": [3, 3]},
            "epochs": 10,
        },
        "variants": [
            {"label": "kernel=3", "set": {}},
            {"label": "kernel=5", "set": {"model.kernel_sizes": [5, 5]}},
            {"label": "kernels 3+9", "set": {"model.kernel_sizes": [3, 9]}},
            {"label": "FC", "spec": {"dataset": {"name": "mnist"}, "model": {"arch": "mlp", "hidden": [128, 64]}}},
        ],
        "set": {"device": "auto"},
    },
    {"preset": "mnist-ablations", "set": {"epochs": 1, "dataset.train_limit": 512, "dataset.test_limit": 256}},
]


class StudyCreate(BaseModel):
    """A study to queue: a base spec and its variants, or a built-in preset; either way an optional global
    override (`set`) applied to every variant after its own."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": _STUDY_EXAMPLES})

    name: str = Field("", max_length=120, description="Required without a preset; a preset's title by default.")
    description: str = Field("", max_length=5000)
    preset: str | None = Field(None, max_length=64, description="A built-in preset (`GET /api/presets`).")
    base: SpecDocument | None = Field(None, description="The spec each variant starts from.")
    variants: list[Variant] | None = Field(None, min_length=1, max_length=MAX_VARIANTS)
    set: SpecDocument = Field(
        default_factory=dict,
        max_length=MAX_SETS,
        description='Dotted spec paths applied to every variant after its own `set` (e.g. {"epochs": 1}).',
    )
    repeats: int = Field(
        1, ge=1, le=MAX_REPEATS, description="Seeds per variant for variants that give no `repeats` of their own."
    )

    @model_validator(mode="after")
    def _preset_or_variants(self) -> StudyCreate:
        if self.preset is not None:
            if self.base is not None or self.variants is not None:
                raise ValueError("preset: give a preset, or a base and variants, not both")
            return self
        if self.variants is None:
            raise ValueError("variants: give the study's variants (and a base spec), or a preset")
        if not self.name.strip():
            raise ValueError("name: a study needs a name (only a preset's has a default)")
        check_labels(self.variants)
        return self


class StatusCounts(BaseModel):
    queued: int = 0
    running: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0


class StudyPublic(BaseModel):
    id: int
    name: str
    description: str
    preset: str | None
    overrides: dict[str, Any] = Field(description="The global override the study was queued with.")
    created_at: datetime
    runs: int = Field(description="How many runs the study has.")
    counts: StatusCounts

    @classmethod
    def of(cls, study: Study, counts: dict[RunStatus, int]) -> StudyPublic:
        assert study.id is not None
        return cls(
            id=study.id,
            name=study.name,
            description=study.description,
            preset=study.preset,
            overrides=study.overrides,
            created_at=study.created_at,
            runs=sum(counts.values()),
            counts=StatusCounts(**{s.value: n for s, n in counts.items()}),
        )


class StudiesPublic(BaseModel):
    data: list[StudyPublic]
    count: int


class SpreadPublic(BaseModel):
    """Mean ± sample std (ddof 1; 0 for one value) over the runs of a label that have the number."""

    mean: float
    std: float
    n: int


class StudyGroup(BaseModel):
    """One label of a study and its repeats (seeds); the spreads count only runs that succeeded."""

    label: str
    run_ids: list[int]
    succeeded: int
    best_test_acc: SpreadPublic | None
    final_test_acc: SpreadPublic | None
    total_seconds: SpreadPublic | None


class StudyDetail(StudyPublic):
    data: list[RunPublic] = Field(description="The study's runs, in the order of its variants.")
    reported: dict[str, Reported] = Field(description="label -> what the report gives for that variant")
    groups: list[StudyGroup] = Field(description="One per label, in order: its runs and their mean ± std.")


class PlannedRun(BaseModel):
    label: str
    repeat: int = 0
    spec: dict[str, Any]
    settings: dict[str, str] = Field(description="The resolved key settings, in words: data, model, training, epochs.")
    parameters: int
    reported: Reported | None


class StudyPreview(BaseModel):
    """What `POST /api/studies` would queue for the same body."""

    name: str
    description: str
    preset: str | None
    data: list[PlannedRun]
    count: int


_SWEEP_EXAMPLE: dict[str, JsonValue] = {
    "name": "lr x batch",
    "description": "Learning rate against batch size.",
    "base": {"dataset": {"name": "digits"}, "model": {"arch": "mlp", "hidden": [64]}, "epochs": 5},
    "grid": {"optimizer.lr": [0.1, 0.01], "batch_size": [32, 64]},
    "repeats": 1,
}
GridAxis = Annotated[list[Any], Field(min_length=1, max_length=MAX_AXIS)]


class SweepCreate(BaseModel):
    """A grid over dotted spec paths: one labelled run per point (times `repeats` seeds), as a study."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_SWEEP_EXAMPLE]})

    name: str = Field(min_length=1, max_length=120)
    description: str = Field("", max_length=5000)
    base: SpecDocument = Field(description="The spec every point starts from.")
    grid: dict[str, GridAxis] = Field(
        min_length=1,
        max_length=MAX_SETS,
        description=f"Dotted spec path -> its values (1 to {MAX_AXIS}); the points are their Cartesian product, "
        "in the order given.",
    )
    repeats: int = Field(1, ge=1, le=MAX_REPEATS, description="Seeds per point: spec.seed + 0..N-1.")
    set: SpecDocument = Field(
        default_factory=dict, max_length=MAX_SETS, description="Dotted spec paths applied to every point after its own."
    )


class SweepPreview(BaseModel):
    """What `POST /api/sweeps` would queue: how many runs, and the label of each point."""

    count: int = Field(description="Runs in all: points x repeats.")
    points: int
    repeats: int
    labels: list[str]


class PresetVariant(BaseModel):
    label: str
    reported: Reported | None


class PresetSummary(BaseModel):
    name: str
    title: str
    table: str
    description: str
    runs: int
    variants: list[PresetVariant]


class PresetsPublic(BaseModel):
    data: list[PresetSummary]
    count: int


class StudyError(BaseModel):
    variant: int | None = Field(description="The variant's index; null: the study as a whole (preset, set).")
    label: str | None
    field: str = Field(description="The dotted spec path (or override path) the error is about.")
    msg: str
    type: str


class StudyErrors(BaseModel):
    """A 422 for a study: every error of every variant; nothing was queued."""

    detail: list[StudyError]
