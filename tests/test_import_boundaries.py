"""DESIGN.md's boundaries, checked in fresh interpreters: the worker never imports the web stack or the
DB layer; the backend never imports torch; the shared contract imports neither."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO


def modules_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint(' '.join(sorted(m.split('.')[0] for m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    return set(out.stdout.split())


@pytest.mark.parametrize("module", ["worker.engine", "worker.data", "worker.models", "worker.tasks", "worker.channel"])
def test_worker_never_imports_the_web_stack_or_the_db_layer(module: str) -> None:
    loaded = modules_after(f"import {module}")
    assert not loaded & {"fastapi", "starlette", "sqlmodel", "backend", "uvicorn", "jinja2"}


def test_backend_never_imports_torch() -> None:
    loaded = modules_after(
        "from backend.app import create_app\n"
        "import backend.web.runs, backend.api.runs, backend.api.events, backend.api.worker\n"
        "create_app()"
    )
    assert "fastapi" in loaded  # the probe did import the backend
    assert not loaded & {"torch", "torchvision", "worker"}


def test_the_spec_imports_neither_side() -> None:
    loaded = modules_after("import trainboard.spec, trainboard.protocol, trainboard.settings, trainboard.queue")
    assert "pydantic" in loaded
    assert not loaded & {"torch", "fastapi", "sqlmodel", "worker", "backend"}


def test_the_task_module_imports_no_torch_by_itself() -> None:
    # The engine is imported inside the task, in the run's own process: a worker started with --no-preload
    # stays torch-free (a warm one imports it on purpose, worker/process.py, and runs none of it).
    assert "torch" not in modules_after("import worker.tasks")
