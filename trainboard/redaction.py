"""Keeping tokens out of logs and URLs.

A browser logs in with `/?token=...` (the link `trainboard serve` prints). The query is read the way the
server reads it — parsed and percent-decoded, so `?%74oken=` is a `token` too — and a token is never
written to a log and never carried into another URL (such as the login page's `next=`).
"""

from __future__ import annotations

from urllib.parse import parse_qsl, unquote_plus, urlencode, urlsplit, urlunsplit

TOKEN_PARAMETER = "token"


def _is_token(name: str) -> bool:
    return name.strip().lower() == TOKEN_PARAMETER


def drop_tokens(query: str) -> str:
    """The query string without any token parameter (however it was spelled or encoded); the other
    parameters are kept exactly as they were written."""
    kept = [part for part in query.split("&") if part and not _is_token(unquote_plus(part.split("=", 1)[0]))]
    return "&".join(kept)


def redact_url(url: str) -> str:
    """`url` (a path with its query, as an access log shows it) with every token's value replaced by ***."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    if not any(_is_token(k) for k, _ in pairs):
        return url
    query = urlencode([(k, "***" if _is_token(k) else v) for k, v in pairs], safe="*")
    return urlunsplit(parts._replace(query=query))
