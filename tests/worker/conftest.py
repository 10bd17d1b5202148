"""Fixtures for the engine's tests: a machine without network, and the digits dataset loaded once."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from trainboard.spec import DatasetSpec
from worker.data import Dataset, load_dataset


class NetworkBlocked(OSError):
    pass


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every name lookup and connection fails, as on a machine with no network; returns the hosts tried.

    Loopback stays open: the report path's tests talk to an API server on 127.0.0.1.
    """
    tried: list[str] = []
    real_lookup, real_connect = socket.getaddrinfo, socket.socket.connect
    loopback = ("127.0.0.1", "localhost", "::1")

    def refuse_lookup(host: object, *args: object, **kwargs: object) -> object:
        if host in loopback:
            return real_lookup(host, *args, **kwargs)  # type: ignore[arg-type]
        tried.append(str(host))
        raise socket.gaierror(socket.EAI_NONAME, f"network disabled in tests (looked up {host})")

    def refuse_connect(self: socket.socket, address: object) -> None:
        if isinstance(address, tuple) and address[0] in loopback:
            return real_connect(self, address)
        tried.append(str(address))
        raise NetworkBlocked(f"network disabled in tests (connect to {address})")

    monkeypatch.setattr(socket, "getaddrinfo", refuse_lookup)
    monkeypatch.setattr(socket.socket, "connect", refuse_connect)
    return tried


@pytest.fixture(scope="session")
def digits() -> Dataset:
    # digits never touches root; a path that does not exist proves it.
    return load_dataset(DatasetSpec(name="digits"), Path("/nonexistent/trainboard-data"))
