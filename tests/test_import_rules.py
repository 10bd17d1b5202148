"""The backend's layers, read from the source (every import, function-level ones included): routes call
services, services know nothing of HTTP, no router imports another, pages never import the REST layer, and
app-wide middleware and error handlers are registered by backend/app.py alone."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

BACKEND = REPO / "backend"


def modules(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "migrations" not in p.parts)


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}  # `from backend.api import runs`
    return found


def name(path: Path) -> str:
    return ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")


def offending(path: Path, prefixes: tuple[str, ...]) -> list[str]:
    return sorted(i for i in imports(path) if i.startswith(prefixes) and i != name(path))


def test_the_rule_reader_sees_imports() -> None:
    assert "backend.services.runs" in imports(BACKEND / "api" / "runs.py")  # the checks below can fail


@pytest.mark.parametrize("path", modules(BACKEND / "services"), ids=name)
def test_services_know_nothing_of_http_or_of_the_routes(path: Path) -> None:
    assert (
        offending(path, ("fastapi", "starlette", "sse_starlette", "backend.api", "backend.web", "backend.deps")) == []
    )


@pytest.mark.parametrize("path", modules(BACKEND / "api"), ids=name)
def test_no_router_imports_another_router_or_a_page(path: Path) -> None:
    assert offending(path, ("backend.api.", "backend.web")) == []


@pytest.mark.parametrize("path", modules(BACKEND / "web"), ids=name)
def test_pages_never_import_the_rest_layer(path: Path) -> None:
    assert offending(path, ("backend.api",)) == []


@pytest.mark.parametrize("path", modules(BACKEND), ids=name)
def test_only_the_app_registers_middleware_and_error_handlers(path: Path) -> None:
    if path.name == "app.py" and path.parent == BACKEND:
        return
    calls = {
        node.func.attr
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
    }
    assert not calls & {"add_middleware", "add_exception_handler", "exception_handler", "middleware", "mount"}


@pytest.mark.parametrize("path", modules(REPO / "trainboard"), ids=name)
def test_the_shared_package_imports_neither_side(path: Path) -> None:
    # The CLI starts the server and workers (it imports them inside its commands); serve's embedded workers
    # are placed as worker/process.py places any worker (its Placement imports no torch).
    allowed = (
        ("backend", "worker") if path.name == "cli.py" else ("worker.process",) if path.name == "embedded.py" else ()
    )
    top = {i for i in imports(path) if i.split(".")[0] in ("backend", "worker", "torch", "fastapi", "sqlmodel")}
    assert {i for i in top if not i.startswith(allowed)} == set()
