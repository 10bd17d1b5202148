"""Runs: queueing them (the one way, for the form, the REST API and studies alike), reading one as its public
shape, editing its tags and notes, cancelling it, its metrics and confusion matrix."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from backend.services import datasets, epochs, idempotency, lifecycle, scheduling, workers
from backend.services.changes import ChangeFeed
from backend.services.dispatch import Dispatcher
from backend.services.errors import Conflict, Invalid, NotFound
from backend.services.scheduling import Served
from backend.services.study_plans import unknown_model
from backend.tables import Run, Study
from trainboard.memory import over_budget
from trainboard.protocol import MAX_ID, Progress, RunInfo
from trainboard.schemas import (
    ConfusionPublic,
    MetricsPublic,
    Placement,
    ProgressBar,
    RunPublic,
    RunStatus,
    RunUpdate,
    Summary,
)
from trainboard.spec import CustomModelSpec, RunSpec


def progress_bar(status: RunStatus, planned_epochs: int, epochs_done: int, heartbeat: Progress) -> ProgressBar:
    """The one rule for a run's progress bar, which the runs list, the run page, the study page and their scripts
    show. While it trains, inside an epoch (a heartbeat past the last recorded epoch) the batches count too. An
    ended run says how it ended: a succeeded run is full ("finished", or "finished early" when it stopped before
    its planned epochs); a failed or cancelled one keeps the epochs it recorded and says where it stopped (its
    last heartbeat, an epoch it never finished, no longer counts)."""
    total = max(1, planned_epochs)
    in_epoch = status == RunStatus.running and heartbeat.batches > 0 and heartbeat.epoch > epochs_done
    if status == RunStatus.succeeded:
        early = epochs_done < planned_epochs
        label = f"finished early: epoch {epochs_done}/{planned_epochs}" if early else f"finished: {epochs_done} epochs"
        return ProgressBar(percent=100.0, label=label)
    if status in (RunStatus.failed, RunStatus.cancelled):
        where = f"after epoch {epochs_done}/{planned_epochs}" if epochs_done else "before epoch 1"
        return ProgressBar(percent=round(min(epochs_done / total, 1.0) * 100, 1), label=f"{status.value} {where}")
    fraction = (epochs_done + heartbeat.batch / heartbeat.batches) / total if in_epoch else epochs_done / total
    label = f"epoch {heartbeat.epoch if in_epoch else epochs_done}/{planned_epochs}"
    if in_epoch:
        label += f" · batch {heartbeat.batch}/{heartbeat.batches}"
    return ProgressBar(percent=round(min(fraction, 1.0) * 100, 1), label=label)


def public(run: Run, served: Served | None = None) -> RunPublic:
    """A run as the API and the pages show it. `served`: where live workers take runs from
    (services/workers.py served); a queued run waiting elsewhere names that as the reason it waits."""
    assert run.id is not None
    heartbeat = Progress(epoch=run.progress_epoch, batch=run.progress_batch, batches=run.progress_batches)
    waiting = (
        scheduling.waiting_reason(run.queue, run.gpu, served)
        if served is not None and run.status == RunStatus.queued
        else None
    )
    return RunPublic(
        waiting=waiting,
        resumed_from=run.resumed_from,
        queue=run.queue,
        priority=run.priority,
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
        archived_at=run.archived_at,
        progress=heartbeat,
        progress_bar=progress_bar(RunStatus(run.status), int(run.spec.get("epochs", 1)), run.epochs_done, heartbeat),
        summary=Summary(
            best_test_acc=run.best_test_acc,
            best_epoch=run.best_epoch,
            final_test_acc=run.final_test_acc,
            final_epoch=run.final_epoch,
            epochs_done=run.epochs_done,
            total_seconds=run.total_seconds,
            stop_reason=run.stop_reason,
        ),
    )


def get_run(session: Session, run_id: int) -> Run:
    run = session.get(Run, run_id) if 1 <= run_id <= MAX_ID else None  # no bigger id exists (32-bit column)
    if run is None:
        raise NotFound(f"run {run_id} not found")
    return run


def public_runs(session: Session, run_ids: Sequence[int], served: Served | None = None) -> list[RunPublic]:
    """The runs of `run_ids` that exist, in id order, as their public shape (one query)."""
    found = session.exec(select(Run).where(col(Run.id).in_(list(run_ids))).order_by(col(Run.id))).all()
    return [public(run, served) for run in found]


def queue_runs(
    session: Session,
    specs: Sequence[RunSpec],
    dispatcher: Dispatcher,
    feed: ChangeFeed,
    study: Study | None = None,
    labels: Sequence[str] | None = None,
    repeats: Sequence[int] | None = None,
    idempotent: idempotency.Request | None = None,
    memory_budget_gb: float | None = None,
    placement: Placement | None = None,
    lost_after_seconds: float | None = None,
) -> list[Run]:
    """The one way runs are queued (a run, or a study's runs with their labels, in `placement`'s queue and
    priority): commit the rows first, all in one transaction (with the request's idempotency key), then a
    dispatch round sends as many as the live workers have room for.
    A retried request (the same key) gets the runs the first one made. `memory_budget_gb`: refuse (Invalid)
    a run whose estimated training memory is over it. A dataset name must be built in or registered (Invalid).
    `lost_after_seconds`: refuse (Invalid, `model.name`) a custom model that no live worker (heard from
    within that time) offers."""
    specs = datasets.check_specs(session, specs)
    if lost_after_seconds is not None and any(isinstance(spec.model, CustomModelSpec) for spec in specs):
        offered = workers.offered_models(session, lost_after_seconds)
        for spec in specs:
            problem = unknown_model(spec, offered)
            if problem is not None:
                raise Invalid("model.name", problem, "model")
    if memory_budget_gb is not None:
        for spec in specs:
            problem = over_budget(spec, memory_budget_gb)
            if problem is not None:
                raise Invalid("batch_size", problem.removeprefix("batch_size: "), "memory_budget")
    made = idempotency.earlier(session, idempotent)
    if made is not None:
        return _runs_by_id(session, made.run_ids)

    def keep_key(created: list[Run]) -> None:
        ids = [run.id for run in created if run.id is not None]
        idempotency.record(session, idempotent, ids, None if study is None else study.id)

    try:
        runs = lifecycle.create_runs(
            session, specs, study, labels, repeats, keep_key if idempotent else None, placement
        )
    except IntegrityError:  # the same key, committed by a concurrent retry in between: that one wins
        session.rollback()
        made = idempotency.earlier(session, idempotent)
        if made is None:
            raise
        return _runs_by_id(session, made.run_ids)
    run_ids = [run.id for run in runs if run.id is not None]
    dispatcher.request()
    for run_id in run_ids:
        feed.notify(run_id)
    return runs


def queue_run(
    session: Session,
    spec: RunSpec,
    dispatcher: Dispatcher,
    feed: ChangeFeed,
    idempotent: idempotency.Request | None = None,
    memory_budget_gb: float | None = None,
    placement: Placement | None = None,
    lost_after_seconds: float | None = None,
) -> Run:
    """Queue one run (REST and form); see queue_runs."""
    return queue_runs(
        session,
        [spec],
        dispatcher,
        feed,
        idempotent=idempotent,
        memory_budget_gb=memory_budget_gb,
        placement=placement,
        lost_after_seconds=lost_after_seconds,
    )[0]


def _runs_by_id(session: Session, run_ids: Sequence[int]) -> list[Run]:
    """The runs an earlier request with the same idempotency key made (Conflict if they were deleted since)."""
    found = {run.id: run for run in session.exec(select(Run).where(col(Run.id).in_(list(run_ids)))).all()}
    if len(found) != len(run_ids):
        raise Conflict("what the first request with this Idempotency-Key made was deleted since: use a new key")
    return [found[run_id] for run_id in run_ids]


def update_run(session: Session, run: Run, change: RunUpdate, feed: ChangeFeed) -> Run:
    """Edit the run's tags (kept sorted, without repeats) and notes."""
    if change.tags is not None:
        run.tags = sorted(set(change.tags))
    if change.notes is not None:
        run.notes = change.notes
    session.add(run)
    session.commit()
    session.refresh(run)
    assert run.id is not None
    feed.notify(run.id)
    return run


def cancel_run(session: Session, run: Run, feed: ChangeFeed) -> Run:
    run = lifecycle.request_cancel(session, run)
    assert run.id is not None
    feed.notify(run.id)
    return run


def metrics(session: Session, run: Run) -> MetricsPublic:
    assert run.id is not None
    records = epochs.for_run(session, run.id)
    return MetricsPublic(run_id=run.id, data=records, count=len(records))


def confusion(session: Session, run: Run) -> ConfusionPublic:
    assert run.id is not None
    return ConfusionPublic(run_id=run.id, classes=datasets.class_names(session, run.dataset), matrix=run.confusion)
