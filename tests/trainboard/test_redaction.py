"""trainboard/redaction.py: a token never reaches a log or another URL, however it is spelled or encoded."""

from __future__ import annotations

import logging

import pytest

from trainboard.cli import RedactTokens
from trainboard.redaction import drop_tokens, redact_url


@pytest.mark.parametrize(
    "url,shown",
    [
        ("/?token=s3cret", "/?token=***"),
        ("/runs/1?%74oken=s3cret&x=1", "/runs/1?token=***&x=1"),
        ("/?TOKEN=s3cret", "/?TOKEN=***"),
        ("/?a=1&token=s%20c&token=two", "/?a=1&token=***&token=***"),
        ("/runs?q=token", "/runs?q=token"),
        ("/plain", "/plain"),
    ],
)
def test_token_values_are_redacted_from_urls(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    assert "s3cret" not in redact_url(url)


def test_tokens_are_dropped_from_a_query() -> None:
    assert drop_tokens("%74oken=abc&next=%2Fruns&Token=x") == "next=%2Fruns"


def test_the_access_log_filter_redacts_the_request_line() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        "",
        0,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/?%74oken=s3cret", "1.1", 303),
        None,
    )
    assert RedactTokens().filter(record)
    assert "s3cret" not in record.getMessage() and "token=***" in record.getMessage()
