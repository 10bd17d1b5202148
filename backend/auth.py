"""Who may do what: API tokens for scripts, a session cookie with CSRF for the browser, a worker token.

- Scripts send `Authorization: Bearer <api token>`.
- The browser logs in once with the token (a login form, or `/?token=...` as `trainboard serve`
  prints), and gets an HttpOnly, SameSite=Strict session cookie, valid while the server keeps its
  session (backend/services/sessions.py: 30 days, or until logout). Requests that change something with
  that cookie must also carry the session's CSRF token (a hidden form field or an X-CSRF-Token header).
- Workers report with `Authorization: Bearer <worker token>`; it grants the report routes only.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request
from sqlmodel import Session

from backend.services import sessions

SESSION_COOKIE = "trainboard_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


@dataclass(frozen=True)
class Tokens:
    api: str
    worker: str

    @property
    def _key(self) -> bytes:
        return hashlib.sha256(b"trainboard-session:" + self.api.encode()).digest()

    def _sign(self, message: str) -> str:
        return hmac.new(self._key, message.encode(), hashlib.sha256).hexdigest()

    def new_session(self) -> str:
        sid = secrets.token_urlsafe(18)
        return f"{sid}.{self._sign('session:' + sid)}"

    def session_id(self, cookie: str | None) -> str | None:
        """The session id of a valid cookie, else None."""
        if not cookie or "." not in cookie:
            return None
        sid, signature = cookie.rsplit(".", 1)
        return sid if _same(signature, self._sign("session:" + sid)) else None

    def csrf_token(self, sid: str) -> str:
        return self._sign("csrf:" + sid)

    def check_csrf(self, sid: str, token: str | None) -> bool:
        return token is not None and _same(token, self.csrf_token(sid))

    def is_api_token(self, token: str | None) -> bool:
        return token is not None and _same(token, self.api)

    def is_worker_token(self, token: str | None) -> bool:
        return token is not None and _same(token, self.worker)


def _same(given: str, expected: str) -> bool:
    """Constant-time comparison; bytes, since compare_digest refuses non-ASCII str (any header may hold it)."""
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode())


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def browser_session(request: Request, tokens: Tokens) -> str | None:
    """The session id of the request's cookie: signed by this server, and open in the database (not expired,
    not logged out); else None."""
    sid = tokens.session_id(request.cookies.get(SESSION_COOKIE))
    if sid is None:
        return None
    with Session(request.app.state.engine) as session:
        return sid if sessions.is_open(session, sid) else None


class LoginThrottle:
    """Slows down guessing at the login form: after FREE_FAILURES wrong tokens from one address, each next
    try must wait, twice as long after every further failure (at most MAX_WAIT_SECONDS); a success resets
    it. In memory, per API process: the tokens are 192 random bits, so this only keeps a typo loop or a
    scanner from hammering the form."""

    FREE_FAILURES = 5
    MAX_WAIT_SECONDS = 300.0
    FORGET_SECONDS = 3600.0

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._failures: dict[str, tuple[int, float]] = {}  # address -> (failures, time of the last)
        self._lock = threading.Lock()

    def wait_seconds(self, address: str) -> float:
        """How long `address` must still wait before its next try (0: it may try now)."""
        with self._lock:
            count, last = self._failures.get(address, (0, 0.0))
            now = self._clock()
            if count and now - last > self.FORGET_SECONDS:
                del self._failures[address]
                return 0.0
            if count < self.FREE_FAILURES:
                return 0.0
            wait = min(2.0 ** (count - self.FREE_FAILURES), self.MAX_WAIT_SECONDS)
            return max(0.0, last + wait - now)

    def failed(self, address: str) -> None:
        with self._lock:
            count, _ = self._failures.get(address, (0, 0.0))
            self._failures[address] = (count + 1, self._clock())
            if len(self._failures) > 10_000:  # bounded memory: forget the oldest
                oldest = min(self._failures, key=lambda a: self._failures[a][1])
                del self._failures[oldest]

    def succeeded(self, address: str) -> None:
        with self._lock:
            self._failures.pop(address, None)
