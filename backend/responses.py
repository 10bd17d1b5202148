"""The error answers of the REST routes, for /openapi.json: what each route may answer besides success, with
its body, so the published schema is the API as it behaves (a schemathesis run in the tests holds them to it)."""

from __future__ import annotations

from typing import Any

from trainboard.schemas import ErrorMessage, FieldErrors

Responses = dict[int | str, dict[str, Any]]


def _error(description: str, model: type = ErrorMessage) -> dict[str, Any]:
    return {"model": model, "description": description}


COMMON: Responses = {
    400: _error("The Host header names another site (TRAINBOARD_ALLOWED_HOSTS)"),
    401: _error("No token, or the wrong one"),
    413: _error("The request body is over the limit"),
    422: _error("The request does not validate: each problem at its field", FieldErrors),
    503: _error("The database is unreachable, or did not answer in time: try again (Retry-After)"),
}
USER: Responses = COMMON | {403: _error("A browser session's write without its CSRF token")}
NOT_FOUND: Responses = {404: _error("No such run, study or preset")}
CONFLICT: Responses = {409: _error("The request does not fit the run's state (it has ended, or was requeued)")}
REUSED_KEY: Responses = {
    409: _error("The Idempotency-Key was used before for a different request, or what it made was deleted since")
}
RUNNING: Responses = {409: _error("A run is running: cancel it first (the 409 names every running run)")}
NOT_RETRYABLE: Responses = {409: _error("Only a failed or cancelled run can be retried")}
EVENT_STREAM: Responses = {
    200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}, "description": "Server-Sent Events"}
}


def errors_as_json(schema: dict[str, Any]) -> dict[str, Any]:
    """Error answers are JSON on every route, also on those whose success is a file (CSV, Markdown...):
    FastAPI documents a route's extra responses in the route's own media type, so move them to JSON."""
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            for code, response in operation.get("responses", {}).items():
                content = response.get("content")
                if not code.startswith(("4", "5")) or not content or "application/json" in content:
                    continue
                found = next((c["schema"] for c in content.values() if "schema" in c), None)
                if found is not None:
                    response["content"] = {"application/json": {"schema": found}}
    return schema
