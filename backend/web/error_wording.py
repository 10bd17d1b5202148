"""A validation error of the run form in the words of the person filling it in ("must be a whole number,
like 10"), not pydantic's ("Input should be a valid integer, unable to parse string as an integer").

Only the HTML form pages use it. The REST API's 422s keep pydantic's own messages beside its `type`:
scripts match on them, and a script's author reads JSON, not a form.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from pydantic_core import ErrorDetails


def _number(value: Any) -> str:
    """A bound as typed: 1, not 1.0 (a float field's bounds are floats)."""
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _count(n: Any, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _choices(ctx: Mapping[str, Any]) -> str:
    """pydantic's "'sgd', 'adam' or 'adamw'" as "sgd, adam, adamw"."""
    return ", ".join(re.findall(r"'([^']*)'", str(ctx.get("expected", ""))))


# By pydantic's error type: what the field must hold.
_BY_TYPE: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "int_parsing": lambda ctx: "must be a whole number, like 10",
    "int_from_float": lambda ctx: "must be a whole number, like 10",
    "int_type": lambda ctx: "must be a whole number, like 10",
    "float_parsing": lambda ctx: "must be a number, like 0.01",
    "float_type": lambda ctx: "must be a number, like 0.01",
    "bool_parsing": lambda ctx: "must be true or false",
    "literal_error": lambda ctx: f"must be one of: {_choices(ctx)}",
    "greater_than": lambda ctx: f"must be greater than {_number(ctx['gt'])}",
    "greater_than_equal": lambda ctx: f"must be at least {_number(ctx['ge'])}",
    "less_than": lambda ctx: f"must be less than {_number(ctx['lt'])}",
    "less_than_equal": lambda ctx: f"must be at most {_number(ctx['le'])}",
    "too_short": lambda ctx: f"needs at least {_count(ctx['min_length'], 'item')}",
    "too_long": lambda ctx: f"takes at most {_count(ctx['max_length'], 'item')}",
    "string_too_long": lambda ctx: f"takes at most {_count(ctx['max_length'], 'character')}",
    "missing": lambda ctx: "needs a value",
}
# Fields whose own rule says it better than the type's (a pattern reads as a regular expression).
_BY_FIELD = {"device": "must be auto, cpu, cuda or cuda:N (cuda:1 is the second GPU)"}


def in_words(error: ErrorDetails, field: str) -> str:
    """The message for `field` (its dotted path, as the form names it) without the field's own name."""
    if error["type"] == "string_pattern_mismatch" and field in _BY_FIELD:
        return _BY_FIELD[field]
    words = _BY_TYPE.get(error["type"])
    if words is not None:
        return words(error.get("ctx", {}))
    # A rule of the spec's own (a value_error) already speaks the user's words, after its field's name.
    message = error["msg"].removeprefix("Value error, ").removeprefix(f"{field}: ")
    return re.sub(r"^Input should be ", "must be ", message)
