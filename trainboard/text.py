"""Text the database must be able to store: PostgreSQL text columns cannot hold a NUL character.

Text a user types (a run's name and notes, a study's name, description and labels...) is refused with a
422 naming its field, on SQLite too, so both stores behave alike. Text a worker sends (an error, a stop
reason, its name) is cleaned instead: refusing it would fail the worker's message and have the run
retried for nothing.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator

NUL = "\x00"
NUL_PATTERN = r"^[^\x00]*$"  # for query parameters, which take a pattern rather than a validator


def refuse_nul(value: str) -> str:
    if NUL in value:
        raise ValueError("must not contain NUL characters (\\x00)")
    return value


def clean_nul(value: str) -> str:
    return value.replace(NUL, "\ufffd")


UserText = Annotated[str, AfterValidator(refuse_nul)]
WorkerText = Annotated[str, AfterValidator(clean_nul)]
