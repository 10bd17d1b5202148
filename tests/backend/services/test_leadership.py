"""backend/services/leadership.py on a real PostgreSQL: of two contenders one leads; when the leader's
connection goes (it stops, or the server ends its session) the other takes over at its next try."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from backend.db import make_engine
from backend.services.health import is_unavailable
from backend.services.leadership import AdvisoryLockLeadership, Leadership, leadership_for
from tests.conftest import wait_for

pytestmark = pytest.mark.postgres


@pytest.fixture
def engine(postgres_server_url: str) -> Iterator[Engine]:
    engine = make_engine(postgres_server_url)
    yield engine
    engine.dispose()


def test_one_of_two_contenders_leads_and_the_other_takes_over_when_it_stops(engine: Engine) -> None:
    first, second = AdvisoryLockLeadership(engine), AdvisoryLockLeadership(engine)
    try:
        assert first.held() and first.leading
        assert not second.held() and not second.leading
        assert first.held()  # still leading next round
        assert not second.held()  # and the other retries, in vain, each round
        first.close()  # the server releases the lock once it has ended that session: a moment later
        wait_for(second.held, 5, 0.05, "the second contender to take the lead")
        assert second.leading and not first.leading
    finally:
        first.close()
        second.close()


def test_a_leader_whose_session_is_ended_loses_the_lead_as_in_an_outage(engine: Engine) -> None:
    first, second = AdvisoryLockLeadership(engine), AdvisoryLockLeadership(engine)
    try:
        assert first.held()
        with engine.begin() as connection:  # the server ends the leader's session (a crash, a failover)
            ended = connection.scalar(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_locks "
                    "WHERE locktype = 'advisory' AND objid = :key AND granted"
                ),
                {"key": first.key},
            )
        assert ended == 1
        with pytest.raises(DBAPIError) as raised:
            first.held()
        assert is_unavailable(raised.value)  # the recovery loop logs it once, as any database outage
        assert not first.leading
        wait_for(second.held, 5, 0.05, "the second contender to take the lead")
        assert not first.held()  # it contends again on a new connection, and waits its turn
    finally:
        first.close()
        second.close()


def test_sqlite_has_one_process_which_always_leads(tmp_path: object) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/trainboard.db")
    leadership = leadership_for(engine)
    assert type(leadership) is Leadership
    assert leadership.held() and leadership.leading
