"""Database tables and their public shapes: a run, and one metrics record per epoch of it."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel
from sqlalchemy import JSON, Column, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from backend.db import UTCDateTime, utcnow
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


class Run(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
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

    @classmethod
    def of(cls, run: Run) -> RunPublic:
        assert run.id is not None
        return cls(
            id=run.id, name=run.name, dataset=run.dataset, arch=run.arch, status=run.status,
            attempt=run.attempt, spec=run.spec, created_at=run.created_at, started_at=run.started_at,
            finished_at=run.finished_at, cancel_requested=run.cancel_requested, device=run.device,
            error=run.error, info=None if run.info is None else RunInfo.model_validate(run.info),
            progress=Progress(epoch=run.progress_epoch, batch=run.progress_batch, batches=run.progress_batches),
            summary=Summary(
                best_test_acc=run.best_test_acc, best_epoch=run.best_epoch, final_test_acc=run.final_test_acc,
                epochs_done=run.epochs_done, total_seconds=run.total_seconds, stop_reason=run.stop_reason,
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
