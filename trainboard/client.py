"""A small REST client for scripts and `trainboard submit`: queue a run, follow its live events."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx

from trainboard.placement import DEFAULT_QUEUE


class ClientError(Exception):
    """The API refused a request; the message carries its explanation (with field paths for a 422)."""


@dataclass
class Event:
    event: str
    data: dict[str, Any]
    id: str | None = None


class Client:
    def __init__(self, base_url: str, token: str, transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(30.0, read=None),
            transport=transport,
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self._http.close()

    def create_run(
        self,
        spec: dict[str, Any],
        idempotency_key: str | None = None,
        queue: str = DEFAULT_QUEUE,
        priority: int = 0,
    ) -> dict[str, Any]:
        """Queue a run in `queue` (workers started with `--queue NAME` take it; higher `priority` starts first).
        Retried while the server is unreachable or answers 503, with one Idempotency-Key, so a retry never
        queues it twice (a first try that timed out may still have been committed)."""
        return self._create(f"/api/runs?{urlencode({'queue': queue, 'priority': priority})}", spec, idempotency_key)

    def create_study(self, study: dict[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        return self._create("/api/studies", study, idempotency_key)

    def create_sweep(self, sweep: dict[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        return self._create("/api/sweeps", sweep, idempotency_key)

    def _create(self, path: str, body: dict[str, Any], key: str | None, attempts: int = 6) -> dict[str, Any]:
        headers = {"Idempotency-Key": key or uuid.uuid4().hex}
        delay = 0.5
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                response = self._http.request("POST", path, json=body, headers=headers)
            except httpx.TransportError as exc:
                if last:
                    raise ClientError(f"cannot reach trainboard at {self.base_url}: {exc}") from exc
            else:
                if response.status_code != 503 or last:
                    return self._check(response)
            time.sleep(delay)
            delay = min(delay * 2, 10.0)
        raise AssertionError("unreachable")

    def get_run(self, run_id: int) -> dict[str, Any]:
        return self._request("GET", f"/api/runs/{run_id}")

    def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ClientError(f"cannot reach trainboard at {self.base_url}: {exc}") from exc
        return self._check(response)

    def events(self, run_id: int, after: int = 0, retry_seconds: float = 300.0) -> Iterator[Event]:
        """The run's Server-Sent Events until its `end` event, reconnecting (with Last-Event-ID) when the
        connection drops; gives up after `retry_seconds` without a connection."""
        delay, down_since, attempt = 0.5, None, None
        while True:
            try:
                for event in self._stream(run_id, after, attempt):
                    down_since, delay = None, 0.5
                    if event.event in ("run", "reset", "end"):
                        attempt = int(event.data["attempt"])
                    elif event.event == "rewind":
                        attempt = int(event.data["run"]["attempt"])
                    if event.event == "epoch" and event.id is not None:
                        after = int(event.id)
                    elif event.event == "reset":
                        after = 0  # a new attempt starts over
                    elif event.event == "rewind":
                        after = min(after, int(event.data["epoch"]))  # it resumes from its checkpoint
                    yield event
                    if event.event == "end":
                        return
            except httpx.TransportError as exc:
                down_since = down_since or time.monotonic()
                if time.monotonic() - down_since > retry_seconds:
                    raise ClientError(f"lost the connection to {self.base_url} ({exc})") from exc
            time.sleep(delay)
            delay = min(delay * 2, 10.0)

    def _stream(self, run_id: int, after: int, attempt: int | None) -> Iterator[Event]:
        params = {} if attempt is None else {"attempt": attempt}  # so a newer attempt rewinds what we have
        headers = {"Last-Event-ID": str(after)}
        with self._http.stream("GET", f"/api/runs/{run_id}/events", headers=headers, params=params) as resp:
            if resp.status_code >= 400:
                resp.read()
                self._check(resp)
            fields: dict[str, str] = {}
            for line in resp.iter_lines():
                if line.startswith(":"):
                    continue  # keep-alive comment
                if line:
                    key, _, value = line.partition(":")
                    fields[key] = fields.get(key, "") + value.removeprefix(" ")
                    continue
                if "data" in fields:
                    yield Event(fields.get("event", "message"), json.loads(fields["data"]), fields.get("id"))
                fields = {}

    @staticmethod
    def _check(response: httpx.Response) -> dict[str, Any]:
        if response.status_code < 400:
            return dict(response.json())
        try:
            body = response.json()
            detail = body.get("detail", body) if isinstance(body, dict) else body
        except ValueError:
            detail = response.text
        if isinstance(detail, list):  # 422: one line per field
            detail = "\n".join(
                f"  {e.get('field') or '.'.join(map(str, e.get('loc', [])))}: {e.get('msg')}" for e in detail
            )
            raise ClientError(f"invalid spec (HTTP {response.status_code}):\n{detail}")
        raise ClientError(f"HTTP {response.status_code}: {detail}")


def watch_run(client: Client, run: dict[str, Any]) -> str:
    """Show a progress bar per epoch and a line of metrics after each; return the final status."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    epochs = int(run["spec"]["epochs"])
    status = str(run["status"])
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bars:
        bar = bars.add_task(f"run {run['id']} {status}", total=None)
        for event in client.events(int(run["id"])):
            if event.event == "epoch":
                r = event.data
                bars.console.print(
                    f"epoch {r['epoch']:>3}/{epochs}  train loss {r['train_loss']:.4f}  test loss {r['test_loss']:.4f}"
                    f"  test acc {100 * r['test_acc']:.2f}%  {r['seconds']:.1f} s  {r['images_per_s']:.0f} img/s"
                )
            elif event.event == "reset":
                bars.console.print(f"run {run['id']}: attempt {event.data['attempt']} starts over from epoch 1")
            elif event.event == "rewind":
                again = event.data["run"]
                bars.console.print(
                    f"run {run['id']}: attempt {again['attempt']} resumes from its checkpoint of epoch "
                    f"{event.data['epoch']}"
                )
            elif event.event in ("run", "end"):
                status = str(event.data["status"])
                p = event.data["progress"]
                if p["batches"]:
                    bars.update(
                        bar,
                        description=f"run {run['id']} {status} epoch {p['epoch']}/{epochs}",
                        total=p["batches"],
                        completed=p["batch"],
                    )
                else:
                    bars.update(bar, description=f"run {run['id']} {status}")
    final = client.get_run(int(run["id"]))
    summary = final["summary"]
    best = summary.get("best_test_acc")
    console.print(
        f"run {run['id']} {final['status']}: best test acc "
        f"{'-' if best is None else f'{100 * best:.2f}%'} at epoch {summary.get('best_epoch')}, "
        f"{summary.get('epochs_done')} epoch(s), {summary.get('total_seconds') or 0:.1f} s"
    )
    if final.get("error"):
        console.print(final["error"].splitlines()[0])
    return str(final["status"])
