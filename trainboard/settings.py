"""Configuration: one pydantic-settings class, read from TRAINBOARD_* environment variables once.

Nothing else in trainboard reads os.environ. Defaults give the embedded setup: everything (SQLite
database, SQLite Celery broker, datasets, secrets) lives under one data directory.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# module.path:ClassName; the class name is what a spec names (trainboard/spec.py MODEL_NAME_PATTERN).
MODEL_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]{0,63}$")
MAX_MODELS = 64  # as many as a heartbeat carries (trainboard/protocol.py MAX_OFFERED_MODELS)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TRAINBOARD_", extra="ignore")

    data_dir: Path = Field(
        Path("~/.trainboard"), description="Database, broker, datasets and secrets of the embedded setup."
    )
    database_url: str = Field(
        "", description="Empty: sqlite:///DATA_DIR/trainboard.db. Postgres: postgresql+psycopg://..."
    )
    broker_url: str = Field("", description="Empty: sqla+sqlite:///DATA_DIR/broker.db. Redis: redis://host:6379/0")
    queue: str = Field(
        "trainboard",
        pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description="The broker queue runs are sent to and workers take them from.",
    )
    api_url: str = Field("http://127.0.0.1:8000", description="Where workers send their reports.")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    api_token: str = Field("", description="Bearer token for the REST API. Empty: generated once into DATA_DIR.")
    worker_token: str = Field("", description="Token the workers report with. Empty: generated once into DATA_DIR.")
    heartbeat_seconds: float = Field(1.0, gt=0, le=60, description="How often a training worker sends progress.")
    lost_after_seconds: float = Field(
        120.0, gt=0, description="A running run with no heartbeat for this long is lost and requeued."
    )
    max_attempts: int = Field(3, ge=1, le=100, description="How many times a lost run is started at most.")
    artifact_max_bytes: int = Field(
        8 * 1024**3,
        ge=1024,
        description="The largest checkpoint or weights file the API accepts (VGG16 with Adam: ~1.6 GB a checkpoint).",
    )
    keep_checkpoints: int = Field(
        1, ge=1, le=1000, description="Checkpoints kept per run (the newest); the final weights are always kept."
    )
    message_retry_seconds: float = Field(
        3600.0,
        gt=0,
        # TRAINBOARD_REPORT_RETRY_SECONDS: its name before 0.2, still read.
        validation_alias=AliasChoices(
            "message_retry_seconds", "TRAINBOARD_MESSAGE_RETRY_SECONDS", "TRAINBOARD_REPORT_RETRY_SECONDS"
        ),
        description="How long a worker keeps retrying a message (an epoch, the end of a run) while the API is "
        "unreachable.",
    )

    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Host names the API answers to, comma-separated ('*': any). Always allowed: localhost, IP "
        "addresses, the bound host and the host of api_url. Guards against DNS rebinding.",
    )
    memory_budget_gb: float = Field(
        16.0, gt=0, le=100_000, description="Refuse a run whose estimated training memory is over this (GB)."
    )
    request_timeout_seconds: float = Field(
        30.0, gt=0, le=3600, description="A request not answering within this long gets 503 (a frozen database)."
    )
    worker_name: str | None = Field(
        None,
        max_length=200,
        description="Set by `trainboard worker` for its run processes: the name a run's claim gives (name@host).",
    )
    parent_pid: int | None = Field(
        None, description="Set by `serve` for its embedded workers: they die with that process."
    )
    models: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Model classes of your own this worker offers, comma-separated import paths "
        "(mypkg.nets:SmallNet): a spec names one by its class name (`arch: custom`, `name: SmallNet`).",
    )
    torch_threads: int = Field(
        0, ge=0, le=1024, description="torch threads per run (0: torch's default). Set by `trainboard worker --slots`."
    )

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _host_list(cls, value: object) -> object:
        if isinstance(value, str):  # TRAINBOARD_ALLOWED_HOSTS=api,lab.example.org (or a JSON list)
            text = value.strip()
            return json.loads(text) if text.startswith("[") else [h.strip() for h in text.split(",") if h.strip()]
        return value

    @field_validator("models", mode="before")
    @classmethod
    def _model_list(cls, value: object) -> object:
        if isinstance(value, str):  # TRAINBOARD_MODELS=mypkg.nets:SmallNet,mypkg.nets:WideNet
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("models")
    @classmethod
    def _model_paths(cls, value: list[str]) -> list[str]:
        names: dict[str, str] = {}
        for path in value:
            if not MODEL_PATH.match(path):
                raise ValueError(f"{path!r} is not an import path like mypkg.nets:SmallNet")
            name = path.rpartition(":")[2]
            if name in names and names[name] != path:
                raise ValueError(f"two models named {name}: {names[name]} and {path}")
            names[name] = path
        if len(names) > MAX_MODELS:
            raise ValueError(f"{len(names)} models, over the limit of {MAX_MODELS}")
        return list(names.values())

    @property
    def offered_models(self) -> dict[str, str]:
        """The models this worker offers: class name -> import path (module:ClassName)."""
        return {path.rpartition(":")[2]: path for path in self.models}

    @property
    def trusted_hosts(self) -> set[str]:
        """The host names requests may be addressed to (IP addresses are always fine: nothing rebinds them)."""
        return {"localhost", self.host, urlsplit(self.api_url).hostname or "localhost", *self.allowed_hosts}

    @field_validator("data_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @property
    def database(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'trainboard.db'}"

    @property
    def broker(self) -> str:
        return self.broker_url or f"sqla+sqlite:///{self.data_dir / 'broker.db'}"

    @property
    def redis_broker(self) -> bool:
        """Whether the broker is Redis, which then also carries the change feed between API processes."""
        return self.broker.startswith(("redis://", "rediss://", "redis+socket://"))

    def api_processes_problem(self) -> str | None:
        """Why several API processes cannot share this setup; None when they can. They need one database that
        all of them reach and lock (PostgreSQL: one recovery loop leads) and one change feed (Redis)."""
        if not self.database.startswith("postgresql"):
            return "several API processes need PostgreSQL (TRAINBOARD_DATABASE_URL): SQLite has one process"
        if not self.redis_broker:
            return "several API processes need a Redis broker (TRAINBOARD_BROKER_URL=redis://...) to share live updates"
        return None

    @property
    def datasets_dir(self) -> Path:
        return self.data_dir / "datasets"

    @property
    def artifacts_dir(self) -> Path:
        """Checkpoints and final weights, a folder per run (backend/services/artifacts.py): back it up."""
        return self.data_dir / "artifacts"

    def ensure_data_dir(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)

    def resolved_tokens(self) -> tuple[str, str]:
        """(api_token, worker_token): from the environment, else generated once and kept in DATA_DIR/secrets.json."""
        if self.api_token and self.worker_token:
            return self.api_token, self.worker_token
        stored = self._stored_tokens()
        if not stored.get("api_token") or not stored.get("worker_token"):
            self.ensure_data_dir()
            stored = {"api_token": secrets.token_urlsafe(24), "worker_token": secrets.token_urlsafe(24)} | {
                key: value for key, value in stored.items() if value
            }
            fd = os.open(self._secrets_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(stored, f)
        return self.api_token or stored["api_token"], self.worker_token or stored["worker_token"]

    def client_token(self, kind: str) -> str:
        """A token a client (worker or `trainboard submit`) sends: from the environment, else from DATA_DIR.

        Never generates one: a token the server does not know is worse than a clear error.
        """
        token = self.worker_token if kind == "worker" else self.api_token
        token = token or self._stored_tokens().get(f"{kind}_token", "")
        if not token:
            raise RuntimeError(
                f"no {kind} token: set TRAINBOARD_{kind.upper()}_TOKEN, or TRAINBOARD_DATA_DIR to the server's data "
                f"directory ({self._secrets_path} does not exist)"
            )
        return token

    @property
    def _secrets_path(self) -> Path:
        return self.data_dir / "secrets.json"

    def _stored_tokens(self) -> dict[str, str]:
        if not self._secrets_path.exists():
            return {}
        return dict(json.loads(self._secrets_path.read_text()))


@lru_cache
def get_settings() -> Settings:
    return Settings()
