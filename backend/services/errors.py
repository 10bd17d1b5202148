"""The domain's errors; backend/errors.py turns each into its HTTP answer (JSON for /api, a page otherwise)."""

from __future__ import annotations


class NotFound(LookupError):
    """A run, study or preset that does not exist (404)."""


class Conflict(Exception):
    """The request does not fit the run's current state: a stale attempt, a run that has ended... (409)."""
