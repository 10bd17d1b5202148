"""backend/services/recovery.py: vanished broker messages are sent again without flooding the broker, and a
database outage grants workers the grace a restart does."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from backend.db import utcnow
from backend.services import lifecycle
from backend.services.changes import ChangeFeed
from backend.services.dispatch import Dispatcher
from backend.services.health import DatabaseHealth
from backend.services.recovery import RecoveryLoop
from backend.tables import Run, Worker
from tests.conftest import tiny_spec
from trainboard.spec import RunSpec


class FakeBroker(Dispatcher):
    """A real dispatcher (its rounds read the database) whose broker queue holds `held` messages; records what
    is sent."""

    def __init__(self, engine: Engine, held: int) -> None:
        super().__init__("memory://", "q", engine, lost_after=60)
        self.held: int | None = held
        self.sent: list[int] = []

    def queue_size(self, queue: str | None = None) -> int | None:
        return self.held

    def send(self, run_id: int, queue: str | None = None) -> bool:
        self.sent.append(run_id)
        return True


def a_live_worker(engine: Engine, slots: int) -> None:
    with Session(engine) as session:
        device = {"kind": "cpu", "name": "cpu", "cores": 2}
        session.add(
            Worker(name="w@h", host="h", pid=1, version="0", queues=["default"], device=device, slots=slots, state="up")
        )
        session.commit()


def sent_long_ago(engine: Engine) -> None:
    with Session(engine) as session:
        session.execute(update(Run).values(dispatched_at=utcnow() - timedelta(seconds=120)))
        session.commit()


def queue(engine: Engine, count: int) -> list[int]:
    with Session(engine) as session:
        runs = lifecycle.create_runs(session, [RunSpec.model_validate(tiny_spec())] * count)
        return [run.id for run in runs if run.id is not None]


def test_only_as_many_runs_as_the_broker_lost_are_sent_again_oldest_first(engine: Engine) -> None:
    ids = queue(engine, 5)
    a_live_worker(engine, slots=5)
    broker = FakeBroker(engine, held=5)
    assert broker.dispatch() == ids  # the round sends what the worker has room for
    loop = RecoveryLoop(engine, broker, ChangeFeed(), 60, 3)
    sent_long_ago(engine)
    assert loop.resend_missing() == []  # the broker holds every message: nothing sent
    broker.held = 3
    assert loop.resend_missing() == ids[:2]
    assert loop.resend_missing() == ids[2:4]  # each run at most once per lost-after time
    broker.held = None  # the broker cannot be asked: send nothing
    assert loop.resend_missing() == []
    assert broker.sent == ids + ids[:4]


def test_at_start_up_every_queued_run_counts_as_not_sent(engine: Engine) -> None:
    ids = queue(engine, 3)
    a_live_worker(engine, slots=2)
    broker = FakeBroker(engine, held=0)
    assert broker.dispatch() == ids[:2]  # two slots: two runs sent, the third waits
    assert broker.dispatch() == []
    assert RecoveryLoop(engine, broker, ChangeFeed(), 60, 3).resend_queued() == ids[:2]  # a restarted API


def test_no_run_is_called_lost_until_the_lost_after_time_has_passed_since_an_outage(engine: Engine) -> None:
    (run_id,) = queue(engine, 1)
    with Session(engine) as session:
        run = session.get(Run, run_id)
        assert run is not None
        lifecycle.claim_run(session, run, "w:1")
        run.heartbeat_at = utcnow() - timedelta(seconds=600)  # silent (its heartbeats could not land)
        session.add(run)
        session.commit()
    health = DatabaseHealth()
    loop = RecoveryLoop(engine, FakeBroker(engine, 0), ChangeFeed(), 60, 3, health)
    loop._booted -= 3600  # long after the API's start
    health.failed(OperationalError("SELECT 1", {}, Exception("connection refused")))
    assert loop.check_lost().changed == []  # during the outage
    health.ok()
    assert loop.check_lost().changed == []  # just after it: the grace of a restart
    assert health.recovered_at is not None
    health.recovered_at -= 120
    assert loop.check_lost().changed == [run_id]


def test_an_outage_is_logged_once_without_a_traceback(engine: Engine, caplog: Any) -> None:
    health = DatabaseHealth()
    broken = RecoveryLoop(engine, FakeBroker(engine, 0), ChangeFeed(), 60, 3, health)

    def down(queue: str | None = None) -> int | None:
        raise OperationalError("SELECT", {}, Exception("could not connect to server"))

    broken.dispatcher.queue_size = down  # type: ignore[method-assign]
    queue(engine, 1)
    a_live_worker(engine, slots=1)
    broken.dispatcher.dispatch()
    sent_long_ago(engine)
    for _ in range(3):
        broken.check()
    assert [r.getMessage() for r in caplog.records if r.name == "trainboard.database"] == [
        "the database is unreachable: could not connect to server (answering 503 until it is back)"
    ]
    assert not any(r.exc_info for r in caplog.records)
