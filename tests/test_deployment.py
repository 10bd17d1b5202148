"""docker-compose.yml and Dockerfile.gpu can't be run here (no Docker engine): check that they agree
with the real command line and settings, and let docker-compose itself validate the file."""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any

import pytest
import typer
import yaml

from tests.conftest import REPO, skip_or_fail
from trainboard.cli import app
from trainboard.settings import Settings

ENV = {"POSTGRES_PASSWORD": "pw", "TRAINBOARD_API_TOKEN": "api", "TRAINBOARD_WORKER_TOKEN": "worker"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((REPO / "docker-compose.yml").read_text()))


def check_command(argv: list[str]) -> None:
    """argv must be a real `trainboard` invocation: known subcommand, known options, valid values."""
    assert argv[0] == "trainboard"
    group: Any = typer.main.get_command(app)
    command = group.commands[argv[1]]
    context = command.make_context(argv[1], list(argv[2:]), resilient_parsing=False)
    assert context.params is not None


def test_services_and_gpu(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"api", "worker", "redis", "postgres"}
    device = services["worker"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert device["capabilities"] == ["gpu"] and device["driver"] == "nvidia"
    # Its own GPU, and the worker pinned to it (the only one its container sees, as number 0).
    assert device["device_ids"] == ["0"]
    command = services["worker"]["command"]
    assert command[command.index("--gpu") + 1] == "0" and int(command[command.index("--slots") + 1]) >= 1
    assert services["worker"]["build"]["dockerfile"] == "Dockerfile.gpu"
    assert services["worker"]["depends_on"]["api"] == {"condition": "service_healthy"}
    assert services["api"]["ports"] == ["127.0.0.1:8000:8000"]


def test_commands_are_real_cli_commands(compose: dict[str, Any]) -> None:
    for name in ("api", "worker"):
        check_command(compose["services"][name]["command"])
        test = compose["services"][name]["healthcheck"]["test"]
        assert test[0] == "CMD"
        check_command(test[1:])  # the healthcheck is a real command too
    with pytest.raises(Exception, match="No such option: --no-such-option"):
        check_command(["trainboard", "serve", "--no-such-option"])  # the check itself can fail


def test_environment_names_are_settings(compose: dict[str, Any]) -> None:
    fields = {f"TRAINBOARD_{name.upper()}" for name in Settings.model_fields}
    for name in ("api", "worker"):
        env = compose["services"][name]["environment"]
        names = {key for key in env if key.startswith("TRAINBOARD_")}
        assert names <= fields, names - fields
        assert {"TRAINBOARD_BROKER_URL", "TRAINBOARD_WORKER_TOKEN"} <= names
    assert {"TRAINBOARD_DATABASE_URL", "TRAINBOARD_API_TOKEN"} <= set(compose["services"]["api"]["environment"])
    # The GPU worker runs user-chosen specs: it gets neither the database nor the API token.
    assert not {"TRAINBOARD_DATABASE_URL", "TRAINBOARD_API_TOKEN"} & set(compose["services"]["worker"]["environment"])
    assert compose["services"]["worker"]["environment"]["TRAINBOARD_API_URL"] == "http://api:8000"
    assert compose["services"]["api"]["environment"]["TRAINBOARD_DATABASE_URL"].startswith("postgresql+psycopg://")


def test_dockerfile_copies_the_packages_and_runs_the_worker() -> None:
    lines = (REPO / "Dockerfile.gpu").read_text().splitlines()
    copied = {line.split()[1] for line in lines if line.startswith("COPY")}
    assert {"trainboard", "backend", "worker", "frontend"} <= copied
    assert all((REPO / path).exists() for path in copied)
    assert lines[[line.startswith("CMD") for line in lines].index(True)] == 'CMD ["trainboard", "worker"]'


def test_the_api_image_is_slim_and_the_worker_keeps_weights_on_its_volume(compose: dict[str, Any]) -> None:
    api = (REPO / "Dockerfile.api").read_text()
    assert compose["services"]["api"]["build"]["dockerfile"] == "Dockerfile.api"
    assert api.startswith("# ") and "FROM python:3.11-slim" in api and "[train]" not in api
    assert '! python -c "import torch"' in api  # the build fails if torch came in anyway
    gpu = (REPO / "Dockerfile.gpu").read_text()
    assert "TORCH_HOME=/data/torch" in gpu and 'pip install ".[train]"' in gpu
    assert compose["services"]["worker"]["volumes"][0].startswith("datasets:/data")
    redis = compose["services"]["redis"]["command"]
    assert redis[redis.index("--appendonly") + 1] == "yes"
    assert redis[redis.index("--maxmemory-policy") + 1] == "noeviction"
    assert compose["services"]["api"]["environment"]["TRAINBOARD_ALLOWED_HOSTS"].split(",")[0] == "api"


def test_docker_compose_validates_the_file() -> None:
    binary = shutil.which("docker-compose")
    if binary is None:
        skip_or_fail("docker-compose is not installed (Debian package docker-compose)")
    result = subprocess.run(
        [binary, "-f", str(REPO / "docker-compose.yml"), "config", "-q"],
        cwd=REPO,
        env=os.environ | ENV,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    missing = subprocess.run(
        [binary, "-f", str(REPO / "docker-compose.yml"), "config", "-q"],
        cwd=REPO,
        env={k: v for k, v in os.environ.items() if k not in ENV},
        capture_output=True,
        text=True,
    )
    assert missing.returncode != 0 and "set POSTGRES_PASSWORD in .env" in missing.stderr
