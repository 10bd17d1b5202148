"""backend/services/recovery.py: vanished broker messages are sent again without flooding the broker, and a
database outage grants workers the grace a restart does."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from backend import schema
from backend.db import make_engine, utcnow
from backend.services import lifecycle
from backend.services.changes import ChangeFeed
from backend.services.health import DatabaseHealth
from backend.services.recovery import RecoveryLoop
from backend.tables import Run
from tests.conftest import tiny_spec
from trainboard.spec import RunSpec


class FakeBroker:
    """A dispatcher whose queue holds `held` messages; records what is sent."""

    def __init__(self, held: int) -> None:
        self.held: int | None = held
        self.sent: list[int] = []

    def queue_size(self) -> int | None:
        return self.held

    def send(self, run_id: int) -> bool:
        self.sent.append(run_id)
        return True

    def not_sent_within(self, run_ids: list[int], seconds: float) -> list[int]:
        return [r for r in run_ids if r not in self.sent]

    def retry_undelivered(self) -> list[int]:
        return []


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    schema.upgrade(engine)
    yield engine
    engine.dispose()


def queue(engine: Engine, count: int) -> list[int]:
    with Session(engine) as session:
        runs = lifecycle.create_runs(session, [RunSpec.model_validate(tiny_spec())] * count)
        return [run.id for run in runs if run.id is not None]


def test_only_as_many_runs_as_the_broker_lost_are_sent_again_oldest_first(engine: Engine) -> None:
    ids = queue(engine, 5)
    broker = FakeBroker(held=5)
    loop = RecoveryLoop(engine, broker, ChangeFeed(), 60, 3)  # type: ignore[arg-type]
    assert loop.resend_missing() == []  # a legitimately queued study behind a busy worker: nothing sent
    broker.held = 3
    assert loop.resend_missing() == ids[:2]
    assert loop.resend_missing() == ids[2:4]  # each run at most once per lost-after time (the fake's memory)
    broker.held = None  # the broker cannot be asked: send nothing
    assert loop.resend_missing() == []


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
    loop = RecoveryLoop(engine, FakeBroker(0), ChangeFeed(), 60, 3, health)  # type: ignore[arg-type]
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
    broken = RecoveryLoop(engine, FakeBroker(0), ChangeFeed(), 60, 3, health)  # type: ignore[arg-type]

    def down() -> int | None:
        raise OperationalError("SELECT", {}, Exception("could not connect to server"))

    broken.dispatcher.queue_size = down  # type: ignore[method-assign]
    queue(engine, 1)
    for _ in range(3):
        broken.check()
    assert [r.getMessage() for r in caplog.records if r.name == "trainboard.database"] == [
        "the database is unreachable: could not connect to server (answering 503 until it is back)"
    ]
    assert not any(r.exc_info for r in caplog.records)
