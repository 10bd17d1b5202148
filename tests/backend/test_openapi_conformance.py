"""/openapi.json is the API as it behaves: schemathesis generates requests from it for every operation, on
SQLite and PostgreSQL, and no answer may be a 5xx or differ from what the schema documents (status code,
content type, body). A fixed seed and a fixed number of examples keep it repeatable and bounded; set
TRAINBOARD_SCHEMATHESIS_EXAMPLES for a longer hunt (the closing figures used 100). The event streams never
end, so they are left out here (tests/backend/api/test_events.py covers them)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import API, WORKER, LiveServer, live_settings, make_settings, reset_database

EXAMPLES = int(os.environ.get("TRAINBOARD_SCHEMATHESIS_EXAMPLES", "6"))
WORKER_ROUTES = ("/claim", "/epochs", "/progress", "/info", "/finish", "/killed", "/workers/heartbeat")
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def live(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data_dir = tmp_path_factory.mktemp(f"schemathesis-{request.param}")
    if request.param == "sqlite":
        url = f"sqlite:///{data_dir / 'trainboard.db'}"
    else:
        url = str(request.getfixturevalue("postgres_server_url"))
        reset_database(url)
    server = LiveServer(live_settings(Path(data_dir), database_url=url)).start()
    yield server
    server.stop()


def _openapi() -> dict[str, Any]:
    """The schema the app publishes (building it needs no running server)."""
    from backend.app import create_app

    return create_app(make_settings(Path(tempfile.mkdtemp(prefix="trainboard-openapi-")))).openapi()


schema = schemathesis.openapi.from_dict(_openapi()).exclude(path_regex=r"/events$")


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    derandomize=True,  # the same examples every run
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_as_documented(case: Any, live: LiveServer) -> None:
    headers = WORKER if case.path.endswith(WORKER_ROUTES) else API
    case.call_and_validate(base_url=live.url, headers=headers, checks=CHECKS)
