"""Fault tests: real processes killed, real services restarted — private ones (a redis-server on a free port
with its own directory; the shared PostgreSQL only behind a proxy of the test's own), seconds-scale timings."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import API_TOKEN, REPO, WORKER_TOKEN, free_port, wait_for

pytestmark = pytest.mark.faults

# Fast enough for a test, slow enough not to call a loaded 2-core machine's runs lost by mistake.
FAST = {"TRAINBOARD_LOST_AFTER_SECONDS": "4", "TRAINBOARD_HEARTBEAT_SECONDS": "0.2"}


def proc_env(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return {}
    return dict(item.decode(errors="replace").split("=", 1) for item in raw if b"=" in item)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def parent_of(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def using(data_dir: Path) -> list[int]:
    """Live processes whose environment names `data_dir`: a serve, its workers, their run processes."""
    found = []
    for entry in Path("/proc").iterdir():
        pid = int(entry.name) if entry.name.isdigit() else 0
        if pid and proc_env(pid).get("TRAINBOARD_DATA_DIR") == str(data_dir) and alive(pid):
            found.append(pid)
    return found


def children(pid: int, processes: list[int]) -> list[int]:
    return [p for p in processes if parent_of(p) == pid]


class Serve:
    """`python -m trainboard serve` as a user starts it, in a data directory of its own."""

    def __init__(self, data_dir: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.data_dir, self.port = data_dir, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = data_dir / "serve.log"
        environment = {k: v for k, v in os.environ.items() if not k.startswith("TRAINBOARD_")} | FAST | (env or {})
        environment |= {
            "TRAINBOARD_API_TOKEN": API_TOKEN,
            "TRAINBOARD_WORKER_TOKEN": WORKER_TOKEN,
            "TRAINBOARD_DATA_DIR": str(data_dir),
            "PYTHONUNBUFFERED": "1",
        }
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "trainboard", "serve", "--port", str(self.port), *args],
            cwd=REPO,
            env=environment,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.http = httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {API_TOKEN}"}, timeout=30)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def get(self, path: str) -> Any:
        return self.http.get(path).json()

    def wait_until_up(self) -> None:
        def up() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"serve exited with {self.process.returncode}:\n{self.log()[-3000:]}")
            try:
                return self.http.get("/api/health").status_code == 200
            except httpx.TransportError:
                return False

        wait_for(up, 60, 0.1, "serve to answer")

    def live_workers(self) -> list[dict[str, Any]]:
        return [w for w in self.get("/api/workers")["data"] if w["status"] == "live"]

    def close(self) -> None:
        self.http.close()
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        for pid in using(self.data_dir):
            os.kill(pid, signal.SIGKILL)
        self._log.close()


@pytest.fixture
def serve_factory(tmp_path: Path) -> Iterator[Any]:
    started: list[Serve] = []

    def start(*args: str, env: dict[str, str] | None = None) -> Serve:
        data_dir = tmp_path / f"data{len(started)}"
        data_dir.mkdir()
        serve = Serve(data_dir, *args, env=env)
        started.append(serve)
        serve.wait_until_up()
        return serve

    yield start
    for serve in started:
        serve.close()


class PrivateRedis:
    """A redis-server of the test's own, on a free port with its own directory, that it may stop and flush."""

    def __init__(self, directory: Path) -> None:
        self.directory, self.port = directory, free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.directory),
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: self.command("PING") == "PONG", 10, 0.05, "the private redis to answer")

    def command(self, *words: str) -> str:
        out = subprocess.run(["redis-cli", "-p", str(self.port), *words], capture_output=True, text=True, timeout=5)
        return out.stdout.strip()

    def restart(self) -> None:
        """Stopped and started again without persistence: every message it held is gone."""
        assert self.process is not None
        self.process.terminate()
        self.process.wait(timeout=10)
        time.sleep(0.2)
        self.start()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    yield server
    server.stop()
