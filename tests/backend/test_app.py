"""The assembled app: no route is public by accident, and the OpenAPI document changes only on purpose."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import iter_route_contexts

from tests.conftest import API, WORKER, make_settings

SNAPSHOT = Path(__file__).resolve().parent.parent / "snapshots" / "openapi.json"

# What anyone may reach: the login form, static files, and the API's own documentation.
# The routes a worker calls, with the worker token (and only those).
WORKER_ROUTES = ("claim", "epochs", "progress", "info", "finish", "killed", "heartbeat")
PUBLIC = {"/login", "/docs", "/openapi.json", "/static/vendor/plotly.min.js"}


@pytest.fixture
def app(tmp_path: Path) -> Any:
    from backend.app import create_app

    return create_app(make_settings(tmp_path))


def _concrete(path: str) -> str:
    """A route path with every parameter filled in: ids with 1, names with 'x'."""
    return re.sub(r"\{(\w+)\}", lambda m: "1" if m.group(1).endswith("id") else "x", path)


def _routes(app: Any) -> list[tuple[str, str]]:
    """(method, path) of every route the app serves, through included routers too; mounts (static) aside."""
    found = []
    for route in iter_route_contexts(app.routes):
        for method in sorted(route.methods or ()):
            if method != "HEAD" and route.path is not None and route.path not in PUBLIC:
                found.append((method, route.path))
    return found


def test_every_route_but_login_static_and_docs_needs_credentials(app: Any) -> None:
    from fastapi.testclient import TestClient

    walked = 0
    with TestClient(app) as client:
        for method, path in _routes(app):
            url = _concrete(path)
            response = client.request(method, url, follow_redirects=False)
            walked += 1
            if path.startswith("/api/"):
                assert response.status_code == 401, f"{method} {path} answered {response.status_code} without a token"
                assert response.headers["www-authenticate"] == "Bearer"
            else:
                assert response.status_code == 303, f"{method} {path} answered {response.status_code} without a session"
                assert response.headers["location"].startswith("/login?next=")
            # The other side's token does not open it either: workers reach the worker routes only, scripts the rest.
            if path.startswith("/api/"):
                worker_route = (method == "POST" and path.rsplit("/", 1)[-1] in WORKER_ROUTES) or (method, path) in (
                    ("PUT", "/api/runs/{run_id}/artifacts/{name}"),
                    ("GET", "/api/runs/{run_id}/checkpoints/{name}"),
                )
                other = API if worker_route else WORKER
                denied = client.request(method, url, headers=other, follow_redirects=False)
                assert denied.status_code == 401, f"{method} {path} let the wrong token in ({denied.status_code})"
    assert walked >= 30  # the walk found the routes (REST and pages), not an empty list


def test_static_files_and_docs_stay_public(app: Any) -> None:
    from fastapi.testclient import TestClient

    with TestClient(app) as client:
        assert client.get("/login").status_code == 200
        assert client.get("/openapi.json").status_code == 200
        assert client.get("/static/app.css").status_code == 200


def test_openapi_matches_the_snapshot(app: Any) -> None:
    """The API's published shape, committed: a change to a route or a schema shows in the diff of the snapshot.
    Regenerate it on purpose with UPDATE_SNAPSHOTS=1."""
    current = json.dumps(app.openapi(), indent=1, sort_keys=True) + "\n"
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.write_text(current)
    assert current == SNAPSHOT.read_text(), "the OpenAPI document changed: run with UPDATE_SNAPSHOTS=1 and review"


def test_the_schema_documents_errors_streams_and_the_token(app: Any) -> None:
    schema = app.openapi()
    run = schema["paths"]["/api/runs/{run_id}"]["get"]
    assert {"401", "404", "422", "503"} <= set(run["responses"])
    assert run["security"] == [{"APIToken": []}]
    assert schema["paths"]["/api/runs/{run_id}/claim"]["post"]["security"] == [{"WorkerToken": []}]
    stream = schema["paths"]["/api/runs/{run_id}/events"]["get"]["responses"]["200"]["content"]
    assert list(stream) == ["text/event-stream"]
    markdown = schema["paths"]["/api/studies/{study_id}/report.md"]["get"]["responses"]
    assert list(markdown["404"]["content"]) == ["application/json"]  # errors are JSON on file routes too
