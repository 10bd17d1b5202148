"""The REST API's public shapes: what `/api/...` takes and answers, as pydantic models.

They live here, beside the spec, so a Python client (trainboard/client.py, a notebook) can import and
validate them without the backend; the backend builds them from its tables (backend/services/). Pure
pydantic: no web stack, no database, no torch.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

from trainboard.placement import DEFAULT_QUEUE, QUEUE_PATTERN
from trainboard.presets.variants import (
    MAX_AXIS,
    MAX_REPEATS,
    MAX_SETS,
    MAX_VARIANTS,
    GridValue,
    Reported,
    SpecDocument,
    Variant,
    check_labels,
)
from trainboard.protocol import MAX_ID, EpochRecord, Progress, RunInfo, WorkerDevice
from trainboard.spec import DATASET_NAME_PATTERN, Int
from trainboard.text import UserText

# -- runs ------------------------------------------------------------------------------------------


class RunStatus(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (RunStatus.succeeded, RunStatus.failed, RunStatus.cancelled)


class Summary(BaseModel):
    best_test_acc: float | None
    best_epoch: int | None
    final_test_acc: float | None
    final_epoch: int | None = Field(
        None,
        description="The epoch whose weights the run ended with: the restored best epoch of an early-stopped run, "
        "else the last; null until the run has ended",
    )
    epochs_done: int
    total_seconds: float | None
    stop_reason: str | None = Field(None, description="Set when early stopping ended the run")


class ProgressBar(BaseModel):
    """Where a run is, as every page shows it (backend/services/runs.py progress_bar decides)."""

    percent: float = Field(description="0 to 100, one decimal")
    label: str = Field(description='e.g. "epoch 3/10 · batch 5/23"')


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
    progress_bar: ProgressBar
    summary: Summary
    cancel_requested: bool
    device: str | None
    error: str | None
    info: RunInfo | None
    tags: list[str]
    notes: str
    queue: str = Field("default", description="The queue it waits in; workers listening on it take it")
    priority: int = Field(0, description="Higher starts first within its queue; then round-robin across studies")
    waiting: str | None = Field(
        None, description="Why a queued run is not starting, e.g. no live worker listens on its queue"
    )
    resumed_from: int | None = Field(
        None, description="The checkpoint epoch the current attempt went on from (null: it started from epoch 1)"
    )
    archived_at: datetime | None = Field(None, description="When the run was archived (hidden from default lists)")


class ArtifactPublic(BaseModel):
    """A file a run keeps: a training checkpoint, or its final weights (safetensors)."""

    name: str
    kind: str = Field(description="checkpoint or weights")
    epoch: int = Field(description="The epoch whose end the file holds")
    attempt: int
    size: int = Field(description="Bytes")
    sha256: str
    created_at: datetime


class ArtifactsPublic(BaseModel):
    run_id: int
    data: list[ArtifactPublic]
    total_bytes: int


class RunsPublic(BaseModel):
    data: list[RunPublic]
    count: int


# Which runs or studies a list shows: not archived (the default), all of them, or only the archived ones.
Archived = Literal["exclude", "include", "only"]
# Where a retried run starts: from its latest checkpoint when it has one (else from the start), or over.
RetryFrom = Literal["checkpoint", "start"]
MAX_RUN_IDS = 500  # per bulk request: a page of the runs list holds at most 200


class RunIds(BaseModel):
    """The runs a bulk request acts on (delete, archive, restore)."""

    model_config = ConfigDict(extra="forbid")

    run_ids: list[Annotated[int, Field(ge=1, le=MAX_ID)]] = Field(min_length=1, max_length=MAX_RUN_IDS)


class RunsChanged(BaseModel):
    """What a bulk request did: the runs it changed (deleted, archived, restored or queued again), and the ids
    that name no run."""

    run_ids: list[int]
    not_found: list[int] = Field(default_factory=list)


class MetricsPublic(BaseModel):
    run_id: int
    data: list[EpochRecord]
    count: int


class ConfusionPublic(BaseModel):
    run_id: int
    classes: list[str]
    matrix: list[list[int]] | None


class DatasetCreate(BaseModel):
    """A decoded image-folder dataset to register (`trainboard dataset add` decodes it into DATA_DIR/datasets/<name>/
    first; the workers that train on it need that folder)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=DATASET_NAME_PATTERN, max_length=40, description="What runs name as dataset.name.")
    classes: list[Annotated[UserText, Field(min_length=1, max_length=200)]] = Field(
        min_length=2, max_length=10_000, description="Class names in label order."
    )
    image_size: int = Field(ge=8, le=512, description="Images are image_size x image_size.")
    channels: Literal[1, 3]
    train_count: int = Field(ge=1, le=100_000_000)
    test_count: int = Field(ge=1, le=100_000_000)
    fingerprint: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of the decoded arrays and the classes")

    @model_validator(mode="after")
    def _distinct_classes(self) -> DatasetCreate:
        repeated = sorted(name for name, count in Counter(self.classes).items() if count > 1)
        if repeated:
            raise ValueError(f"classes: each class once; repeated: {', '.join(repeated)}")
        return self


class DatasetPublic(DatasetCreate):
    created_at: datetime


class DatasetsPublic(BaseModel):
    data: list[DatasetPublic]
    count: int
    builtin: list[str] = Field(description="The built-in datasets, which are not registered")


TAG_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,39}$"
Tag = Annotated[str, Field(pattern=TAG_PATTERN)]


MIN_PRIORITY, MAX_PRIORITY = -100, 100


class Placement(BaseModel):
    """Where a run (or a study's or sweep's runs) waits and in what order it starts: a property of the run, not
    of its spec (it never shows in a config diff). A run whose spec asks for a GPU waits in its queue's GPU
    variant, which only workers with a GPU take from."""

    model_config = ConfigDict(extra="forbid")

    queue: str = Field(
        DEFAULT_QUEUE,
        pattern=QUEUE_PATTERN,
        description="The queue it waits in: workers started with `--queue NAME` take it",
    )
    priority: int = Field(
        0, ge=MIN_PRIORITY, le=MAX_PRIORITY, description="Higher starts first in its queue; then round-robin by study"
    )


class RunUpdate(BaseModel):
    tags: list[Tag] | None = Field(
        None, max_length=20, description="Replaces the run's tags: lowercase words of letters, digits, _ . -"
    )
    notes: UserText | None = Field(None, max_length=20_000)


# -- statistics --------------------------------------------------------------------------------------


class Spread(BaseModel):
    """Mean ± sample standard deviation (n - 1) of one number over the runs that count; `std` is null for n = 1."""

    mean: float
    std: float | None
    n: int


SummaryMode = Literal["best", "last", "stop"]


class Band(BaseModel):
    """A mean curve with its ± std band over a group's runs, at the epochs every one of them has."""

    x: list[float]
    mean: list[float]
    std: list[float | None]


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


class StudyCreate(Placement):
    """A study to queue: a base spec and its variants, or a built-in preset; either way an optional global
    override (`set`) applied to every variant after its own."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": _STUDY_EXAMPLES})

    name: UserText = Field("", max_length=120, description="Required without a preset; a preset's title by default.")
    description: UserText = Field("", max_length=5000)
    preset: str | None = Field(None, max_length=64, description="A built-in preset (`GET /api/presets`).")
    base: SpecDocument | None = Field(None, description="The spec each variant starts from.")
    variants: list[Variant] | None = Field(None, min_length=1, max_length=MAX_VARIANTS)
    set: SpecDocument = Field(
        default_factory=dict,
        max_length=MAX_SETS,
        description='Dotted spec paths applied to every variant after its own `set` (e.g. {"epochs": 1}).',
    )
    repeats: Int = Field(
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
    archived_at: datetime | None = Field(None, description="When the study was archived (with its runs)")


class StudiesPublic(BaseModel):
    data: list[StudyPublic]
    count: int


class StudyGroup(BaseModel):
    """One label of a study and its repeats (seeds), with mean ± std over the runs that count: the succeeded
    ones, or all of them while none has succeeded."""

    label: str
    run_ids: list[int]
    succeeded: int
    best_test_acc: Spread | None
    final_test_acc: Spread | None
    total_seconds: Spread | None


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
GridAxis = Annotated[list[GridValue], Field(min_length=1, max_length=MAX_AXIS)]


class SweepCreate(Placement):
    """A grid over dotted spec paths: one labelled run per point (times `repeats` seeds), as a study."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_SWEEP_EXAMPLE]})

    name: UserText = Field(min_length=1, max_length=120)
    description: UserText = Field("", max_length=5000)
    base: SpecDocument = Field(description="The spec every point starts from.")
    grid: dict[str, GridAxis] = Field(
        min_length=1,
        max_length=MAX_SETS,
        description=f"Dotted spec path -> its values (1 to {MAX_AXIS}); the points are their Cartesian product, "
        "in the order given.",
    )
    repeats: Int = Field(1, ge=1, le=MAX_REPEATS, description="Seeds per point: spec.seed + 0..N-1.")
    set: SpecDocument = Field(
        default_factory=dict, max_length=MAX_SETS, description="Dotted spec paths applied to every point after its own."
    )


class SweepPreview(StudyPreview):
    """What `POST /api/sweeps` would queue: every run (as a study's preview gives them), how many, and the
    label of each point."""

    count: int = Field(description="Runs in all: points x repeats.")
    points: int
    repeats: int
    labels: list[str] = Field(description="One per point of the grid, in order (a point's repeats share it).")


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


class ErrorMessage(BaseModel):
    """An error answer: what went wrong, in words."""

    detail: str


class FieldError(BaseModel):
    """One problem with a request, at its dotted `field` ("model.hidden.1"); for a study or sweep also the
    variant (its index and label) it is in."""

    field: str
    msg: str
    type: str
    loc: list[str | int] | None = None
    variant: int | None = None
    label: str | None = None


class FieldErrors(BaseModel):
    """A 422: every problem found (the request was not carried out)."""

    detail: list[FieldError]


class StudyError(BaseModel):
    variant: int | None = Field(description="The variant's index; null: the study as a whole (preset, set).")
    label: str | None
    field: str = Field(description="The dotted spec path (or override path) the error is about.")
    msg: str
    type: str


class StudyErrors(BaseModel):
    """A 422 for a study: every error of every variant; nothing was queued."""

    detail: list[StudyError]


class StudySummary(BaseModel):
    study_id: int
    summary_mode: str
    caption: str
    columns: list[dict[str, Any]]
    rows: list[dict[str, Any]] = Field(description="One per label; each spread number is {mean, std, n} or null.")


class LabelCurves(BaseModel):
    """One label of a study report: its runs' curves as a mean and band, and its per-class accuracy."""

    label: str
    run_ids: list[int]
    n: int = Field(description="How many runs the numbers are over: the succeeded ones, or all while none has.")
    curves: dict[str, Band] = Field(description="metric -> mean curve and ± std band (std null where n = 1)")
    per_class: list[float] = Field(description="Mean per-class test accuracy at each run's summary epoch.")


class RunFailure(BaseModel):
    """A failed run of a study and why, in one line (the first line of its error)."""

    run_id: int
    label: str
    reason: str


class StudyReport(BaseModel):
    """Everything the study report page draws, computed on the server: the table, the curves, per-class bars."""

    summary: StudySummary
    classes: list[str]
    labels: list[LabelCurves]
    none_succeeded: bool = Field(description="Every run has ended and none succeeded: there is nothing to report.")
    failures: list[RunFailure] = Field(description="The failed runs and their reasons, in the study's order.")


# -- comparison ------------------------------------------------------------------------------------


class SeriesPoint(BaseModel):
    run_id: int
    after: int = Field(0, description="The points are those of the epochs after this one; 0: the whole curve")
    x: list[float]
    y: list[float]


class PerClass(BaseModel):
    """One run's per-class test accuracy at its summary epoch (the mode's epoch; empty before the first epoch)."""

    run_id: int
    epoch: int | None
    classes: list[str]
    accuracy: list[float]


class SeedGroup(BaseModel):
    """Seed repeats of one study variant among the runs compared: mean ± std over the runs that count."""

    study_id: int
    label: str
    run_ids: list[int]
    n: int
    test_acc: Spread | None
    best_test_acc: Spread | None
    final_test_acc: Spread | None
    total_seconds: Spread | None
    series: dict[str, Band]


class Comparison(BaseModel):
    runs: list[RunPublic]
    summary: list[dict[str, Any]]
    columns: list[dict[str, Any]] = Field(
        [], description="The summary's columns in this mode (key, title, kind), less those that repeat another"
    )
    summary_mode: str
    caption: str
    best: dict[str, list[int]]
    diff: dict[str, list[Any]]
    series: dict[str, list[SeriesPoint]]
    per_class: list[PerClass]
    groups: list[SeedGroup] = []
    confusion: list[ConfusionPublic] = Field(
        [], description="Each run's confusion matrix (null until it has ended), in the order of `runs`"
    )


# -- workers ---------------------------------------------------------------------------------------


class WorkerPublic(BaseModel):
    name: str
    host: str
    pid: int
    version: str
    queues: list[str]
    device: WorkerDevice
    slots: int
    running: list[int] = Field(description="The runs its slots train now")
    models: list[str] = Field(default_factory=list, description="The custom models it offers (`model.name`)")
    status: Literal["live", "draining", "gone", "stopped"] = Field(
        description="live: heard from within the lost-after time; draining: finishing its runs after a SIGTERM, "
        "taking no new one; gone: not heard from since; stopped: it said goodbye"
    )
    started_at: datetime
    last_seen: datetime


class WorkersPublic(BaseModel):
    data: list[WorkerPublic]
    count: int


class Health(BaseModel):
    status: Literal["ok"]
    version: str
    leader: bool = Field(
        True,
        description="Whether this API process runs the recovery loop: one of several API processes does at a time, "
        "a single one always",
    )
