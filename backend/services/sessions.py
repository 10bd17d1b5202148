"""Browser sessions, kept in the database: a cookie is a signed session id (backend/auth.py), and it opens
the pages only while its row exists and has not expired. So the server, not the browser, enforces the
30-day lifetime, a logout ends the session for every API process at once, and a stolen cookie dies with
the session. Only the sha256 of the id is stored."""

from __future__ import annotations

import hashlib
from datetime import timedelta

from sqlmodel import Session, col, delete, select

from backend.db import utcnow
from backend.tables import BrowserSession

SESSION_DAYS = 30


def _hash(sid: str) -> str:
    return hashlib.sha256(sid.encode("utf-8", "surrogateescape")).hexdigest()


def start(session: Session, sid: str, days: int = SESSION_DAYS) -> None:
    """Keep a new session for `days`; sessions that have expired meanwhile are dropped."""
    now = utcnow()
    session.exec(delete(BrowserSession).where(col(BrowserSession.expires_at) < now))
    session.add(BrowserSession(sid_hash=_hash(sid), created_at=now, expires_at=now + timedelta(days=days)))
    session.commit()


def is_open(session: Session, sid: str) -> bool:
    query = select(BrowserSession.expires_at).where(BrowserSession.sid_hash == _hash(sid))
    expires = session.exec(query).first()
    return expires is not None and expires > utcnow()


def end(session: Session, sid: str) -> None:
    session.exec(delete(BrowserSession).where(col(BrowserSession.sid_hash) == _hash(sid)))
    session.commit()
