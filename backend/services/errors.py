"""The domain's errors; backend/errors.py turns each into its HTTP answer (JSON for /api, a page otherwise)."""

from __future__ import annotations


class NotFound(LookupError):
    """A run, study or preset that does not exist (404)."""


class Invalid(ValueError):
    """A request that parses but cannot be served as it is: 422, naming the field (a run over the memory budget)."""

    def __init__(self, field: str, message: str, kind: str) -> None:
        super().__init__(message)
        self.field, self.kind = field, kind


class Conflict(Exception):
    """The request does not fit the run's current state: a stale attempt, a run that has ended... (409)."""


class TooLarge(ValueError):
    """An upload over its size limit (413)."""
