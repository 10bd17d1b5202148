"""The workers: their heartbeats (worker token) and the list the Workers page shows (API token or session)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from backend.deps import DispatcherDep, SessionDep, SettingsDep, require_user, require_worker
from backend.responses import COMMON, USER
from backend.services import workers
from trainboard.protocol import WorkerAnswer, WorkerHeartbeat
from trainboard.schemas import WorkersPublic

router = APIRouter(prefix="/api/workers", tags=["workers"], responses=COMMON)


@router.post("/heartbeat", response_model=WorkerAnswer, dependencies=[Depends(require_worker)])
def worker_heartbeat(
    body: WorkerHeartbeat, session: SessionDep, settings: SettingsDep, dispatcher: DispatcherDep
) -> WorkerAnswer:
    """A worker announces itself: its device, queues, slots and the runs they train (`draining`: it finishes
    them and takes no new one); the answer says when to report again. A dispatch round follows: a new worker's
    slots fill at once."""
    workers.record_heartbeat(session, body, settings.queue)
    dispatcher.request()
    return WorkerAnswer(every_seconds=workers.heartbeat_interval(settings.lost_after_seconds))


@router.get("", response_model=WorkersPublic, dependencies=[Depends(require_user)], responses=USER)
def read_workers(session: SessionDep, settings: SettingsDep) -> WorkersPublic:
    """Every worker seen: `live` and `draining` ones (heard from within the lost-after time) first, then `gone`
    and `stopped`."""
    found = workers.list_workers(session, settings.lost_after_seconds)
    return WorkersPublic(data=found, count=len(found))
