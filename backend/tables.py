"""The database tables: a study, a run (maybe in a study), one metrics row per epoch of a run.

Their public shapes are in trainboard/schemas.py; backend/services/ turns rows into those. Every change
to a table here comes with its migration in backend/migrations/versions/.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from backend.db import UTCDateTime, utcnow
from trainboard.presets.variants import MAX_LABEL
from trainboard.protocol import EpochRecord
from trainboard.schemas import RunStatus


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
    archived_at: datetime | None = _ts(default=None, description="Hidden from the default lists since then.")


class Run(SQLModel, table=True):
    # The dispatch round's round-robin turns: when a (queue, study) last had a run sent (services/dispatch.py).
    __table_args__ = (Index("ix_run_queue_study_dispatched", "queue", "study_id", "dispatched_at"),)

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
    final_epoch: int | None = Field(
        default=None, description="The epoch whose weights the run ended with (the restored one, for early stopping)."
    )
    total_seconds: float | None = None
    confusion: list[list[int]] | None = Field(default=None, sa_column=Column(JSON))
    error: str | None = Field(default=None, sa_column=Column(Text))
    info: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    stop_reason: str | None = Field(default=None, max_length=500)
    queue: str = Field(default="default", max_length=40, description="The queue it waits in (trainboard/queue.py).")
    gpu: bool = Field(default=False, description="Its spec asks for a GPU: only a GPU worker may take it.")
    priority: int = Field(default=0, description="Higher starts first within its queue (then round-robin by study).")
    dispatched_at: datetime | None = _ts(
        default=None, description="When its id was last sent to the broker (None: queued and not sent since)."
    )
    tags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    notes: str = Field(default="", sa_column=Column(Text, nullable=False))
    lease_hash: str | None = Field(
        default=None, max_length=64, description="sha256 of the current attempt's lease (the claim's secret)"
    )
    last_kill_epoch: int | None = Field(
        default=None, description="epochs_done when the run's process was last killed (twice there: it fails)"
    )
    attempt_base: int = Field(
        default=0, description="Attempts made before the latest retry: the lost-run budget counts from here."
    )
    resumed_from: int | None = Field(
        default=None, description="The checkpoint epoch the current attempt resumed from (None: from the start)."
    )
    archived_at: datetime | None = _ts(default=None, description="Hidden from the default lists since then.")


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
    system: dict[str, Any] | None = Field(
        default=None, sa_column=Column(JSON), description="trainboard/protocol.py SystemFigures of the epoch"
    )
    created_at: datetime = _ts(default_factory=utcnow)

    def record(self) -> EpochRecord:
        return EpochRecord.model_validate(self.model_dump(include=set(EpochRecord.model_fields)))


class Artifact(SQLModel, table=True):
    """A file a run's worker uploaded: a training checkpoint or the final weights (backend/services/artifacts.py).

    The file is DATA_DIR/artifacts/<run_id>/<name>; this row exists only once the file is complete and its
    sha256 checked. Deleting the run deletes its rows (cascade) and the service removes its folder.
    """

    __table_args__ = (UniqueConstraint("run_id", "name", name="uq_artifact_run_name"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="run.id", index=True, ondelete="CASCADE")
    kind: str = Field(max_length=16, description="checkpoint or weights")
    name: str = Field(max_length=100)
    attempt: int
    epoch: int = Field(description="The epoch whose end the file holds.")
    size: int = Field(sa_type=BigInteger)
    sha256: str = Field(max_length=64)
    created_at: datetime = _ts(default_factory=utcnow)


class Worker(SQLModel, table=True):
    """A long-lived worker process as it last announced itself (trainboard/protocol.py WorkerHeartbeat)."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200, unique=True, description="name@host")
    host: str = Field(max_length=255)
    pid: int
    version: str = Field(max_length=40)
    queues: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    device: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    slots: int
    running: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    models: list[str] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False), description="The custom models it offers"
    )
    state: str = Field(max_length=16, description="up, draining (finishing its runs, taking none), or stopped")
    started_at: datetime = _ts(default_factory=utcnow)
    last_seen: datetime = _ts(default_factory=utcnow)


class IdempotencyKey(SQLModel, table=True):
    """A create request a client may retry (`Idempotency-Key` header): the key, what it asked for, what it made."""

    __tablename__ = "idempotency_key"
    __table_args__ = (UniqueConstraint("scope", "key", name="uq_idempotency_key_scope_key"),)

    id: int | None = Field(default=None, primary_key=True)
    scope: str = Field(max_length=20, description="runs, studies or sweeps")
    key: str = Field(max_length=200)
    request_hash: str = Field(max_length=64, description="sha256 of the request body")
    run_ids: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    study_id: int | None = None
    created_at: datetime = _ts(default_factory=utcnow)


class BrowserSession(SQLModel, table=True):
    """A logged-in browser (backend/services/sessions.py): the sha256 of its session id, and until when."""

    __tablename__ = "browser_session"

    sid_hash: str = Field(primary_key=True, max_length=64)
    created_at: datetime = _ts(default_factory=utcnow)
    expires_at: datetime = _ts(index=True)


class Dataset(SQLModel, table=True):
    """A dataset registered with `trainboard dataset add`: an image folder decoded into DATA_DIR/datasets/<name>/
    (worker/folders.py). Runs name it as `dataset.name`; its classes label the per-class charts."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=40, sa_column_kwargs={"unique": True})
    classes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    image_size: int = Field(description="Images are image_size x image_size.")
    channels: int = Field(description="1 (grayscale) or 3 (RGB)")
    train_count: int
    test_count: int
    fingerprint: str = Field(max_length=64, description="sha256 of the decoded arrays and the class names")
    created_at: datetime = _ts(default_factory=utcnow)
