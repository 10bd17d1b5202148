"""The worker protocol: every message a worker and the API exchange about a run, as pydantic models.

Both sides import this module (pydantic only: no torch, no web stack). A worker

1. claims a run: `ClaimRequest` -> `Claim` (the attempt it now owns and the spec to train), or 409;
2. sends, naming that attempt, `InfoMessage` once (what it prepared: data, model), an `EpochMessage`
   per finished epoch, and a `ProgressMessage` heartbeat about once a second, whose `HeartbeatAnswer`
   says whether a cancel was asked for;
3. ends with a `FinishMessage`: the `RunResult`, or the error that stopped training.

Every message for an attempt that is no longer the run's current one gets 409 (the worker stops).
Epoch messages are idempotent on (run, attempt, epoch): a retried one changes nothing. Bounds keep a
misbehaving worker from storing unbounded data. The engine builds the records (`EpochRecord`,
`Progress`, `RunInfo`, `RunResult`) without knowing about HTTP; worker/api_client.py wraps them.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from trainboard.placement import MAX_QUEUES, QUEUE_PATTERN
from trainboard.spec import MODEL_NAME_PATTERN, NormalizeValues
from trainboard.text import WorkerText

MAX_CLASSES = 1000
# Run, study and epoch-row ids and attempt numbers are 32-bit columns (INTEGER on SQLite and PostgreSQL):
# a bigger one can name nothing, and PostgreSQL would refuse it in a query. One bound for all of them.
MAX_ID = 2**31 - 1
MAX_EPOCH = 100_000
MAX_OFFERED_MODELS = 64  # custom models a worker offers (trainboard/settings.py MAX_MODELS)


class SystemFigures(BaseModel):
    """What an epoch cost the machine: the training process's memory and CPU time on every device, and GPU
    memory peaks and utilisation on a GPU (null where there is none, or the driver does not say)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    rss_bytes: int = Field(ge=0, description="Resident memory of the training process at the end of the epoch")
    cpu_seconds: float = Field(ge=0, description="CPU time (user + system, all threads) the process spent in the epoch")
    gpu_allocated_bytes: int | None = Field(None, ge=0, description="Peak GPU memory allocated by tensors")
    gpu_reserved_bytes: int | None = Field(None, ge=0, description="Peak GPU memory reserved by the caching allocator")
    gpu_utilization: float | None = Field(None, ge=0, le=100, description="GPU utilisation in % (driver's figure)")


class EpochRecord(BaseModel):
    # NaN is not JSON and would reach the database as NULL: a diverged run fails instead (the engine says so).
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    epoch: int = Field(ge=1, le=MAX_EPOCH)
    train_loss: float
    train_acc: float = Field(ge=0, le=1)
    test_loss: float
    test_acc: float = Field(ge=0, le=1)
    per_class_acc: list[float] = Field(max_length=MAX_CLASSES, description="Test accuracy of each class, in order.")
    lr: list[float] = Field(max_length=64, description="Learning rate of each optimizer param group.")
    seconds: float = Field(ge=0, description="Wall time of the epoch: training plus evaluation.")
    images_per_s: float = Field(ge=0, description="Training images per second in this epoch.")
    system: SystemFigures | None = Field(None, description="Memory and CPU/GPU figures of the epoch")


# The fields of an EpochRecord that measure the machine (time, memory): all a seeded CPU run does not repeat.
MEASURED_FIELDS = frozenset({"seconds", "images_per_s", "system"})


class Progress(BaseModel):
    """A heartbeat: where the run is inside the current epoch. Epoch 0 (0 of 0 batches): still preparing
    (loading or downloading the dataset, building the model)."""

    model_config = ConfigDict(extra="forbid")

    epoch: int = Field(ge=0, le=100_000)
    batch: int = Field(ge=0, le=100_000_000)
    batches: int = Field(ge=0, le=100_000_000)


class Environment(BaseModel):
    """How a run was made: versions, the device and the host (null where unknown: no git, no CUDA)."""

    model_config = ConfigDict(extra="forbid")

    trainboard: WorkerText = Field(max_length=40)
    git_commit: WorkerText | None = Field(
        None, max_length=40, description="Of the trainboard install, if a git checkout"
    )
    python: WorkerText = Field(max_length=40)
    torch: WorkerText = Field(max_length=40)
    torchvision: WorkerText = Field(max_length=40)
    cuda: WorkerText | None = Field(None, max_length=40)
    cudnn: WorkerText | None = Field(None, max_length=40)
    device_name: WorkerText = Field(max_length=200, description="GPU model, or the CPU's")
    device_memory_bytes: int | None = Field(None, ge=0)
    host: WorkerText = Field(max_length=255)


class RunInfo(BaseModel):
    """What the engine prepared, sent once before the first epoch: the data and the model as trained."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    train_images: int = Field(ge=0)
    test_images: int = Field(ge=0)
    image_size: list[int] = Field(min_length=3, max_length=3, description="[channels, height, width] the model sees")
    mean: list[float] = Field(max_length=4, description="Normalisation mean per channel (of pixels in [0, 1])")
    std: list[float] = Field(max_length=4, description="Normalisation std per channel")
    normalize: Annotated[WorkerText, Field(max_length=20)] | NormalizeValues = Field(
        description="As the spec gave it: none, standard or computed (a record from before explicit values is one of "
        "these), or the explicit {mean, std}; `mean` and `std` are what was applied either way"
    )
    parameters: int = Field(ge=0, description="All parameters of the model")
    trainable_parameters: int = Field(ge=0, description="Those the optimizer updates (fine-tuning freezes the rest)")
    lr_groups: list[Annotated[WorkerText, Field(max_length=64)]] = Field(
        default_factory=list,
        max_length=64,
        description="The name of each optimizer param group, in the order of EpochRecord.lr: the trained groups "
        "(fc, layer4...), or ['all'] when every parameter trains at one rate",
    )
    device: WorkerText = Field("", max_length=64)
    environment: Environment | None = Field(None, description="The software and machine the run trained with")
    data_sha256: str | None = Field(
        None, pattern=r"^[0-9a-f]{64}$", description="sha256 of the train and test tensors as trained and tested on"
    )


class StopState(StrEnum):
    """How training ended: every epoch ran, a cancel stopped it, or early stopping did."""

    completed = "completed"
    cancelled = "cancelled"
    early_stopped = "early_stopped"


class RunResult(BaseModel):
    """The end of a run: how it stopped and the confusion matrix of its last evaluation."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    stopped: StopState = StopState.completed
    stop_reason: WorkerText = Field("", max_length=500, description="Why an early-stopped run stopped, in words.")
    epochs_run: int = Field(ge=0, le=100_000)
    final_epoch: int | None = Field(
        None,
        ge=1,
        le=100_000,
        description="The epoch whose weights the run ended with, when not the last (early stopping restored the best)",
    )
    confusion: list[Annotated[list[int], Field(max_length=MAX_CLASSES)]] = Field(
        default_factory=list,
        max_length=MAX_CLASSES,
        description="confusion[true][predicted] counts on the test set; empty if no epoch finished.",
    )
    total_seconds: float = Field(ge=0)
    device: WorkerText = Field("", max_length=64)


# -- the envelopes: what travels over HTTP ------------------------------------------------------------

WORKER_NAME_LENGTH = 200
ERROR_LENGTH = 20_000


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ClaimRequest(_Message):
    worker: WorkerText = Field(max_length=WORKER_NAME_LENGTH, description="host:pid of the worker process")


LEASE_LENGTH = 64


ARTIFACT_NAME = r"^(checkpoint-[1-9][0-9]{0,5}|weights)\.safetensors$"
SHA256 = r"^[0-9a-f]{64}$"


class ResumePoint(_Message):
    """The checkpoint a claimed attempt goes on from: the epochs up to `epoch` are kept, training resumes with
    the next. The worker fetches it (GET /api/runs/{id}/checkpoints/{name}) and checks its sha256."""

    epoch: int = Field(ge=1, le=MAX_EPOCH)
    name: str = Field(pattern=ARTIFACT_NAME)
    sha256: str = Field(pattern=SHA256)
    size: int = Field(ge=0)


class Claim(_Message):
    """The attempt the worker now owns, the secret that proves it (every later message carries it), the
    spec to train, and the checkpoint to resume from (None: from the first epoch)."""

    run_id: int
    attempt: int
    lease: str = Field(max_length=LEASE_LENGTH, description="This attempt's secret: only its claimer has it")
    spec: dict[str, Any]
    resume: ResumePoint | None = None


# An upload (PUT /api/runs/{id}/artifacts/{name}) is a raw body, not JSON: these headers carry its envelope.
ATTEMPT_HEADER = "X-Trainboard-Attempt"
LEASE_HEADER = "X-Trainboard-Lease"
EPOCH_HEADER = "X-Trainboard-Epoch"
SHA256_HEADER = "X-Trainboard-Sha256"


class ArtifactAnswer(_Message):
    name: str
    size: int
    sha256: str


class _AttemptMessage(_Message):
    attempt: int = Field(ge=1, le=MAX_ID, description="The attempt of the claim this message belongs to.")
    lease: str = Field(min_length=1, max_length=LEASE_LENGTH, description="The lease the claim answered with.")


class EpochMessage(_AttemptMessage):
    record: EpochRecord


class ProgressMessage(_AttemptMessage):
    progress: Progress


class InfoMessage(_AttemptMessage):
    info: RunInfo


class FinishMessage(_AttemptMessage):
    result: RunResult | None = None
    error: WorkerText | None = Field(
        None, max_length=ERROR_LENGTH, description="Why training failed, with a traceback."
    )


class KilledMessage(_AttemptMessage):
    """From the worker's long-lived process: the run's own process died without a word (killed by a signal,
    the kernel's out-of-memory killer's SIGKILL above all)."""

    signal: int = Field(ge=1, le=64, description="The signal that ended the run's process")


class EpochAnswer(_Message):
    created: bool = Field(description="False: this epoch was stored before (a retried message).")


class HeartbeatAnswer(_Message):
    cancel: bool = Field(description="True: a cancel was requested; stop at the next batch.")


class InfoAnswer(_Message):
    stored: bool


class FinishAnswer(_Message):
    status: str = Field(description="The run's status now: succeeded, failed or cancelled.")


# -- workers: the long-lived worker processes announce themselves ------------------------------------


class WorkerDevice(_Message):
    """What a worker trains on, as it saw it without starting CUDA (nvidia-smi, /proc)."""

    kind: str = Field(pattern=r"^(cpu|cuda)$")
    name: WorkerText = Field(max_length=200, description="GPU model (e.g. NVIDIA H100 80GB HBM3), or the CPU model")
    memory_bytes: int | None = Field(None, ge=0, description="GPU memory, or the machine's memory on a CPU")
    cores: int = Field(ge=1, le=65_536, description="CPU cores the worker may use")
    gpu: int | None = Field(None, ge=0, le=63, description="The GPU it is pinned to (CUDA_VISIBLE_DEVICES)")


# up; draining: finishing its runs after a SIGTERM, taking no new one; stopped: it said goodbye.
WorkerState = Annotated[str, Field(pattern=r"^(up|draining|stopped)$")]


class WorkerHeartbeat(_Message):
    """A worker's announcement, sent at start, every few seconds, and once more when it stops."""

    name: WorkerText = Field(min_length=1, max_length=WORKER_NAME_LENGTH, description="name@host, unique per worker")
    host: WorkerText = Field(max_length=255)
    pid: int = Field(ge=1, le=2**31 - 1)
    version: WorkerText = Field(max_length=40, description="trainboard's version on the worker")
    queues: list[Annotated[str, Field(pattern=QUEUE_PATTERN)]] = Field(
        min_length=1,
        max_length=MAX_QUEUES,
        description="The run queues it takes from (with a GPU, their GPU variants too)",
    )
    device: WorkerDevice
    slots: int = Field(ge=1, le=64, description="Runs it trains at once")
    running: list[Annotated[int, Field(ge=1, le=MAX_ID)]] = Field(
        max_length=64, description="The runs its slots train now"
    )
    state: WorkerState = "up"
    models: list[Annotated[str, Field(pattern=MODEL_NAME_PATTERN)]] = Field(
        default_factory=list,
        max_length=MAX_OFFERED_MODELS,
        description="The custom models it offers (its TRAINBOARD_MODELS, by class name): what a spec's "
        "`model.name` may name",
    )


class WorkerAnswer(_Message):
    every_seconds: float = Field(gt=0, description="When to send the next heartbeat")
