"""App-wide ASGI middleware, registered in backend/app.py (like backend/web/session.py's TokenLogin): a cap on
request bodies, enforced before anything parses them (FastAPI reads a body before auth runs); trusted
Host headers; security headers on every answer."""

from __future__ import annotations

import asyncio
import ipaddress
import re

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# A run spec is a few hundred bytes; an epoch record of 1000 classes ~30 KB; a 1000-class confusion
# matrix a few MB. 8 MB leaves room for all of them and nothing more.
MAX_BODY_BYTES = 8 * 1024 * 1024


# Artifact uploads (PUT /api/runs/{id}/artifacts/{name}) stream gigabytes: the upload route has its own size
# limit (TRAINBOARD_ARTIFACT_MAX_BYTES), and may take longer than a request's deadline to arrive.
UPLOAD_PATH = re.compile(r"^/api/runs/\d+/artifacts/[^/]+$")


def is_upload(scope: Scope) -> bool:
    return scope.get("method") == "PUT" and UPLOAD_PATH.match(scope["path"]) is not None


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_upload(scope):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(scope, receive, send)
            return
        # Read the body here, counting as it arrives (a chunked body declares no length), then replay it:
        # an error raised inside the app's own body reading would come out as a 400, not a 413.
        buffered: list[Message] = []
        received = 0
        while True:
            message = await receive()
            buffered.append(message)
            if message["type"] != "http.request":
                break
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return buffered.pop(0) if buffered else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        detail = f"request body over the limit of {self.max_bytes} bytes"
        await JSONResponse({"detail": detail}, status_code=413)(scope, receive, send)


class TrustedHosts:
    """Answer only requests addressed to this server: a Host header naming another site is a DNS-rebinding
    attempt (a page on evil.example whose name now points at 127.0.0.1), refused with 400. IP addresses
    are always fine (nothing rebinds them), so workers and users reaching a `--host 0.0.0.0` server by
    its address keep working; names come from TRAINBOARD_ALLOWED_HOSTS and the server's own settings."""

    def __init__(self, app: ASGIApp, hosts: set[str]) -> None:
        self.app = app
        self.hosts = {h.lower() for h in hosts}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or "*" in self.hosts:
            await self.app(scope, receive, send)
            return
        host = host_name(dict(scope["headers"]).get(b"host", b"").decode("latin-1"))
        if host in self.hosts or _is_ip(host):
            await self.app(scope, receive, send)
            return
        detail = f"this server does not answer to the host {host or '(none)'!r}: add it to TRAINBOARD_ALLOWED_HOSTS"
        await JSONResponse({"detail": detail}, status_code=400)(scope, receive, send)


def host_name(header: str) -> str:
    """The name of a Host header, without its port: 'lab:8000' -> 'lab', '[::1]:8000' -> '::1'."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


# Only this server: no inline script (the pages' data travels in <script type="application/json">, never
# run), styles inline as Plotly needs them, images from data:/blob: URLs for chart downloads; no framing.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "font-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
]


class SecurityHeaders:
    """The usual security headers on every answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    (name, value) for name, value in SECURITY_HEADERS if name not in names
                ]
            await send(message)

        await self.app(scope, receive, with_headers)


class RequestDeadline:
    """A request that has not begun to answer within `seconds` gets 503 (a frozen database is the usual
    cause: the connection is open, the server never replies, and no socket timeout fires). The handler's
    thread is left to finish on its own; whatever it sends later is dropped. Event streams are exempt:
    they wait out an outage themselves (backend/api/events.py)."""

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app, self.seconds = app, seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].endswith("/events") or is_upload(scope):
            await self.app(scope, receive, send)
            return
        started, expired = False, False

        async def guarded(message: Message) -> None:
            nonlocal started
            if expired:
                return
            started = True
            await send(message)

        task = asyncio.ensure_future(self.app(scope, receive, guarded))
        done, _ = await asyncio.wait({task}, timeout=self.seconds)
        if done:
            task.result()  # its exception, if any, as if there were no deadline
            return
        if started:  # already answering (a long download, say): let it finish
            await task
            return
        expired = True
        task.add_done_callback(_quietly)
        detail = f"no answer within {self.seconds:g} s: the database may be unreachable; try again shortly"
        await JSONResponse({"detail": detail}, status_code=503, headers={"Retry-After": "5"})(scope, receive, send)


def _quietly(task: asyncio.Future[None]) -> None:
    """Collect an abandoned handler's outcome, so asyncio does not warn that nobody read its exception."""
    if not task.cancelled():
        task.exception()
