"""backend/services/dispatch.py on SQLite and PostgreSQL: a round fills exactly the free slots of the workers that
take runs (a draining worker's runs hold none of them), a failed send leaves the run unsent, rounds asked for
from requests run on the dispatcher's thread, and a killed run whose cancel was asked for ends cancelled."""

from __future__ import annotations

import signal

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from backend.services import lifecycle
from backend.services.dispatch import Dispatcher, worker_name
from backend.tables import Run, Worker
from tests.conftest import tiny_spec, wait_for
from trainboard.schemas import RunStatus
from trainboard.spec import RunSpec


class Broker(Dispatcher):
    """A real dispatcher whose broker only records what it is sent (or refuses everything)."""

    def __init__(self, engine: Engine, up: bool = True) -> None:
        super().__init__("memory://", "q", engine, lost_after=60)
        self.up, self.sent = up, []

    def send(self, run_id: int, queue: str | None = None) -> bool:
        if not self.up:
            return False
        self.sent.append((run_id, queue))
        return True


def worker(engine: Engine, name: str, slots: int, state: str = "up", gpu: bool = False) -> None:
    device = {"kind": "cuda", "name": "H100", "cores": 8, "gpu": 0} if gpu else {"kind": "cpu", "name": "c", "cores": 2}
    with Session(engine) as session:
        session.add(
            Worker(name=name, host="h", pid=1, version="0", queues=["default"], device=device, slots=slots, state=state)
        )
        session.commit()


def queued(engine: Engine, count: int, **spec: object) -> list[int]:
    with Session(engine) as session:
        runs = lifecycle.create_runs(session, [RunSpec.model_validate(tiny_spec(**spec))] * count)
        return [run.id for run in runs if run.id is not None]


def running_on(engine: Engine, run_ids: list[int], name: str) -> None:
    """Claimed by a run process of worker `name`, as worker/tasks.py names its claims."""
    with Session(engine) as session:
        for run_id in run_ids:
            run = session.get(Run, run_id)
            assert run is not None
            assert lifecycle.claim_run(session, run, f"{name}:4242") is not None


def test_a_round_fills_the_free_slots_and_no_more(engine: Engine) -> None:
    worker(engine, "a@h", slots=3)
    ids = queued(engine, 5)
    broker = Broker(engine)
    assert broker.dispatch() == ids[:3]
    assert [queue for _, queue in broker.sent] == ["q"] * 3  # the default queue's broker queue
    assert broker.dispatch() == []  # sent and not yet claimed: they hold the slots
    running_on(engine, ids[:3], "a@h")
    assert broker.dispatch() == []  # claimed: still the worker's
    with Session(engine) as session:
        for run_id in ids[:2]:
            run = session.get(Run, run_id)
            assert run is not None
            run.status = RunStatus.succeeded
            session.add(run)
        session.commit()
    assert broker.dispatch() == ids[3:]  # two slots free again


def test_a_draining_workers_runs_hold_none_of_the_taking_workers_slots(engine: Engine) -> None:
    worker(engine, "old@h", slots=2, state="draining")
    worker(engine, "new@h", slots=2)
    first = queued(engine, 2)
    running_on(engine, first, "old@h")  # hours of training left on the draining worker
    later = queued(engine, 2)
    assert Broker(engine).dispatch() == later


def test_a_gpu_run_goes_to_the_gpu_variant_only_when_a_gpu_worker_takes_runs(engine: Engine) -> None:
    worker(engine, "cpu@h", slots=2)
    (gpu_run,) = queued(engine, 1, device="cuda")
    broker = Broker(engine)
    assert broker.dispatch() == []
    worker(engine, "gpu@h", slots=1, gpu=True)
    assert broker.dispatch() == [gpu_run] and broker.sent == [(gpu_run, "q@cuda")]


def test_a_failed_send_leaves_the_run_unsent_for_the_next_round(engine: Engine) -> None:
    worker(engine, "a@h", slots=2)
    ids = queued(engine, 2)
    down = Broker(engine, up=False)
    assert down.dispatch() == []
    with Session(engine) as session:
        assert session.exec(select(Run.dispatched_at)).all() == [None, None]
    assert Broker(engine).dispatch() == ids


def test_rounds_asked_for_by_requests_run_on_the_dispatchers_thread(engine: Engine) -> None:
    worker(engine, "a@h", slots=1)
    broker = Broker(engine)
    broker.start()
    try:
        (run_id,) = queued(engine, 1)
        for _ in range(50):
            broker.request()  # returns at once, however many ask
        wait_for(lambda: broker.sent, 10, 0.01, "the round")
        assert broker.sent == [(run_id, "q")]
    finally:
        broker.close()


def test_a_killed_run_whose_cancel_was_asked_for_ends_cancelled(engine: Engine) -> None:
    worker(engine, "a@h", slots=1)
    (run_id,) = queued(engine, 1)
    with Session(engine) as session:
        run = session.get(Run, run_id)
        assert run is not None
        claimed = lifecycle.claim_run(session, run, "a@h:1")
        assert claimed is not None
        lifecycle.request_cancel(session, run)
        run = lifecycle.run_killed(session, run, claimed.run.attempt, claimed.lease, signal.SIGKILL, max_attempts=3)
        assert run.status == RunStatus.cancelled and run.finished_at is not None  # not queued for ever
        assert run.error is not None and "after its cancel was asked for" in run.error


def test_a_claim_names_its_worker() -> None:
    assert worker_name("gpu0@lab:4242") == "gpu0@lab" and worker_name(None) is None
