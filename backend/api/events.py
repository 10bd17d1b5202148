"""Server-Sent Events: live updates for one run's page and for the runs list.

`GET /api/runs/{id}/events` sends `epoch` events (id = epoch number, so a reconnecting browser's
Last-Event-ID resumes with no duplicates and no gaps), `run` events (status, progress, summary; no
id) whenever the run changes, a `rewind` event (`{"epoch": k, "run": ...}`) when a new attempt resumes
from its checkpoint of epoch k (the epochs after k are replaced), a `reset` event when it starts over from
epoch 1, a final `end` event once the run is terminal and every epoch has been sent, and a final
`deleted` event (`{"id": ...}`) when the run is deleted meanwhile.
`GET /api/events` sends a `run` event for every run that changes (the runs list), and a `deleted` event
for a run that was deleted.
DB reads run in the thread pool: the event loop never blocks on the database.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, Header, Query, Request
from sqlalchemy.engine import Engine
from sqlmodel import Session
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool

from backend.deps import FeedDep, RunId, require_user
from backend.responses import EVENT_STREAM, NOT_FOUND, USER
from backend.services import epochs, runs, workers
from backend.services.changes import ChangeFeed
from backend.services.errors import NotFound
from backend.services.health import is_unavailable
from backend.services.scheduling import Served
from trainboard.protocol import MAX_EPOCH, MAX_ID, EpochRecord
from trainboard.schemas import RunPublic
from trainboard.settings import Settings

router = APIRouter(prefix="/api", tags=["events"], dependencies=[Depends(require_user)], responses=USER)

# Wake at least this often to notice a closed connection; sse-starlette sends keep-alive pings too.
IDLE_WAKE_S = 15.0


def _served(session: Session, settings: Settings) -> Served:
    return workers.served(session, settings.lost_after_seconds)


def _read_run(engine: Engine, settings: Settings, run_id: int, after_epoch: int) -> tuple[RunPublic, list[EpochRecord]]:
    """The run and its epochs after `after_epoch`."""
    with Session(engine) as session:
        run = runs.get_run(session, run_id)
        return runs.public(run, _served(session, settings)), epochs.for_run(session, run_id, after_epoch)


def _read_runs(engine: Engine, settings: Settings, run_ids: set[int]) -> list[RunPublic]:
    with Session(engine) as session:
        return runs.public_runs(session, sorted(run_ids), _served(session, settings))


def _deleted(run_id: int) -> ServerSentEvent:
    return ServerSentEvent(data=json.dumps({"id": run_id}), event="deleted")


T = TypeVar("T")
OUTAGE_RETRY_S = (0.5, 1.0, 2.0, 5.0)  # then every 5 s


async def _read(request: Request, read: Callable[..., T], *args: object) -> T | None:
    """`read(*args)` in the thread pool, waiting out a database outage inside the stream (a browser's
    EventSource would not reconnect after a 503); None once the client has gone."""
    failures = 0
    while True:
        try:
            value = await run_in_threadpool(read, *args)
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            request.app.state.health.failed(exc)
            await asyncio.sleep(OUTAGE_RETRY_S[min(failures, len(OUTAGE_RETRY_S) - 1)])
            failures += 1
            if await request.is_disconnected():
                return None
            continue
        if failures:
            request.app.state.health.ok()
        return value


async def _run_stream(
    request: Request, feed: ChangeFeed, run_id: int, last_epoch: int, attempt: int | None = None
) -> AsyncIterator[ServerSentEvent]:
    """`attempt`: the one the client's epochs are of (a reconnect says it), so a newer attempt that replaced
    some of them rewinds (or resets) the client first."""
    engine: Engine = request.app.state.engine
    settings: Settings = request.app.state.settings
    last_state = ""
    seq = feed.seq
    while True:
        try:
            read = await _read(request, _read_run, engine, settings, run_id, last_epoch)
        except NotFound:
            yield _deleted(run_id)
            return
        if read is None:
            return
        run, records = read
        if attempt and run.attempt != attempt:  # not the first claim (0 -> 1): nothing was replaced then
            # A new attempt: it starts over (`reset`: drop every epoch drawn) or resumes from a checkpoint
            # (`rewind`: drop the epochs after it, which the new attempt replaces); then the new epochs follow.
            keep = run.resumed_from or 0
            if keep:
                yield ServerSentEvent(
                    data=json.dumps({"epoch": keep, "run": run.model_dump(mode="json")}), event="rewind"
                )
            else:
                yield ServerSentEvent(data=run.model_dump_json(), event="reset")
            last_epoch = min(last_epoch, keep)
            try:
                read = await _read(request, _read_run, engine, settings, run_id, last_epoch)
            except NotFound:
                yield _deleted(run_id)
                return
            if read is None:
                return
            run, records = read
        attempt = run.attempt
        for record in records:
            yield ServerSentEvent(data=record.model_dump_json(), event="epoch", id=str(record.epoch))
            last_epoch = record.epoch
        state = run.model_dump_json()
        if state != last_state:
            yield ServerSentEvent(data=state, event="run")
            last_state = state
        if run.status.terminal:
            yield ServerSentEvent(data=state, event="end")
            return
        while True:  # sleep until this run changes (or the idle wake-up)
            await feed.wait(seq, IDLE_WAKE_S)
            if await request.is_disconnected():
                return
            new_seq, changed = feed.changed_since(seq)
            seq = new_seq
            # Re-read on a change to this run, on lost history, and on the idle wake-up (cheap, and
            # robust to a missed notification).
            if changed is None or run_id in changed or not changed:
                break


def _check_run(engine: Engine, run_id: int) -> None:
    with Session(engine) as session:
        runs.get_run(session, run_id)  # NotFound: 404 before the stream starts


@router.get("/runs/{run_id}/events", response_class=EventSourceResponse, responses=NOT_FOUND | EVENT_STREAM)
async def run_events(
    request: Request,
    run_id: RunId,
    feed: FeedDep,
    last_event_id: Annotated[int | None, Header(ge=0, le=MAX_EPOCH)] = None,
    after: Annotated[int | None, Query(ge=0, le=MAX_EPOCH, description="Same as the Last-Event-ID header")] = None,
    attempt: Annotated[
        int | None,
        Query(
            ge=0,
            le=MAX_ID,
            description="The attempt the client's epochs are of: when a later attempt replaced some, the stream "
            "starts with `rewind` (or `reset`)",
        ),
    ] = None,
) -> EventSourceResponse:
    """Live epochs and status of one run. Resume with the `Last-Event-ID` header (the last epoch received)."""
    # No session dependency here: it would stay open for the whole life of the stream.
    await run_in_threadpool(_check_run, request.app.state.engine, run_id)
    start = last_event_id if last_event_id is not None else (after or 0)
    return EventSourceResponse(_run_stream(request, feed, run_id, start, attempt), ping=IDLE_WAKE_S)


async def _runs_stream(request: Request, feed: ChangeFeed, since: str | None) -> AsyncIterator[ServerSentEvent]:
    engine: Engine = request.app.state.engine
    settings: Settings = request.app.state.settings
    seq = feed.parse(since)
    if seq is None:  # a page rendered by an earlier server process: its rows may be stale
        yield ServerSentEvent(data="{}", event="reload")
        seq = feed.seq
    while True:
        await feed.wait(seq, IDLE_WAKE_S)
        if await request.is_disconnected():
            return
        seq, changed = feed.changed_since(seq)
        if changed is None:
            yield ServerSentEvent(data="{}", event="reload")
            continue
        if changed:
            found = await _read(request, _read_runs, engine, settings, changed)
            if found is None:
                return
            for run in found:
                yield ServerSentEvent(data=run.model_dump_json(), event="run")
            for run_id in sorted(changed - {run.id for run in found}):  # announced only once committed: deleted
                yield _deleted(run_id)


@router.get("/events", response_class=EventSourceResponse, responses=EVENT_STREAM)
async def runs_events(
    request: Request,
    feed: FeedDep,
    since: Annotated[str | None, Query(max_length=40, description="The change token the page was rendered at")] = None,
) -> EventSourceResponse:
    """Every change to any run, as `run` events (a `reload` event if the client fell behind or the server restarted)."""
    return EventSourceResponse(_runs_stream(request, feed, since), ping=IDLE_WAKE_S)
