"""Create requests a client may retry: `POST /api/runs`, `/api/studies` and `/api/sweeps` take an
`Idempotency-Key` header. The first request with a key creates its runs (or study) and records the key in the
same transaction; a retry with the key (its first answer lost to a timeout, say) gets what the first one
made instead of a second copy. The same key with a different body is a 409; keys are kept for a day."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta

from pydantic import BaseModel
from sqlalchemy import delete
from sqlmodel import Session, col, select

from backend.db import utcnow
from backend.services.errors import Conflict
from backend.tables import IdempotencyKey

KEEP = timedelta(days=1)
KEY_PATTERN = r"^[A-Za-z0-9_.:-]{1,200}$"


@dataclass(frozen=True)
class Request:
    scope: str  # runs, studies or sweeps
    key: str
    body_hash: str


def request(scope: str, key: str | None, body: BaseModel) -> Request | None:
    if key is None:
        return None
    return Request(scope, key, hashlib.sha256(body.model_dump_json().encode()).hexdigest())


def earlier(session: Session, asked: Request | None) -> IdempotencyKey | None:
    """What an earlier request with this key made, or None (no key, or a new one)."""
    if asked is None:
        return None
    found = session.exec(
        select(IdempotencyKey).where(IdempotencyKey.scope == asked.scope, IdempotencyKey.key == asked.key)
    ).first()
    if found is not None and found.request_hash != asked.body_hash:
        raise Conflict(f"Idempotency-Key {asked.key!r} was used before for a different request: use a new key")
    return found


def record(session: Session, asked: Request | None, run_ids: list[int], study_id: int | None) -> None:
    """Add the key to the session (committed with what it made); forget keys older than KEEP."""
    if asked is None:
        return
    session.execute(delete(IdempotencyKey).where(col(IdempotencyKey.created_at) < utcnow() - KEEP))
    session.add(
        IdempotencyKey(
            scope=asked.scope, key=asked.key, request_hash=asked.body_hash, run_ids=run_ids, study_id=study_id
        )
    )
