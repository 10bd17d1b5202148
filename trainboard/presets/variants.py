"""A study as data: a base spec, its variants (dotted-path overrides, or whole specs), a global override,
and their expansion into run specs, every one validated before any is used.

Pure pydantic, like the spec: the API validates a posted study with it and the preset files are
checked with it at load.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import re
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from trainboard.spec import Float, Int, RunSpec, error_field
from trainboard.text import UserText, refuse_nul

MAX_VARIANTS = 200
MAX_LABEL = 80
MAX_SETS = 64  # overrides per variant (and in the global override)
MAX_REPEATS = 20  # seeds per variant
MAX_STUDY_RUNS = 200  # runs in one study: variants (or sweep points) x repeats
MAX_AXIS = 50  # values per sweep axis

MAX_DOCUMENT_BYTES = 64 * 1024  # a spec, a base or a set of overrides, as JSON: a real one is under 2 KB
MAX_VALUE_BYTES = 4 * 1024  # one value of a sweep's grid, as JSON: a number, a name, a list of widths
MAX_ERRORS = 100  # errors listed in one 422; past that the answer says how many more there were


def _bounded(document: dict[str, Any]) -> dict[str, Any]:
    size = len(json.dumps(document))
    if size > MAX_DOCUMENT_BYTES:
        raise ValueError(f"{size:,} bytes of JSON is over the limit of {MAX_DOCUMENT_BYTES:,} for a spec or overrides")
    return document


# A spec-shaped document of bounded size: each variant copies it, so an outsized one would cost that 200 times.
SpecDocument = Annotated[dict[str, Any], AfterValidator(_bounded)]


def _bounded_value(value: Any) -> Any:
    size = len(json.dumps(value))
    if size > MAX_VALUE_BYTES:
        raise ValueError(f"{size:,} bytes of JSON is over the limit of {MAX_VALUE_BYTES:,} for one grid value")
    return value


# One value of a sweep axis: every point's overrides hold one of each axis, so each is bounded on its own.
GridValue = Annotated[Any, AfterValidator(_bounded_value)]
Label = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_LABEL), AfterValidator(refuse_nul)
]
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Reported(_Strict):
    """What a report says a variant reached, shown beside what trainboard measures."""

    test_acc: Float | None = Field(None, ge=0, le=1, description="Test accuracy as a fraction (0.96 for 96%).")
    seconds: Float | None = Field(None, ge=0, description="Execution time in seconds.")
    note: UserText = Field("", max_length=300, description="Anything else the report says about this variant.")


class Variant(_Strict):
    label: Label = Field(description="The variant's short name: the 'Version' column of the study's table.")
    set: SpecDocument = Field(
        default_factory=dict,
        max_length=MAX_SETS,
        description="Dotted spec paths and their values, applied in order to the base (or to `spec`): "
        '{"model.kernel_sizes": [5, 5]}. Setting "model" replaces the whole model object.',
    )
    spec: SpecDocument | None = Field(None, description="A whole spec for this variant instead of the base.")
    repeats: Int | None = Field(
        None,
        ge=1,
        le=MAX_REPEATS,
        description="Runs of this variant with seeds spec.seed + 0..N-1, all under its label (default: the "
        "study's `repeats`, else 1).",
    )
    reported: Reported | None = None


class StudyDefinition(_Strict):
    """What a study is made of: the shape shared by `POST /api/studies` and the preset files."""

    base: SpecDocument | None = Field(None, description="The spec every variant starts from (unless it gives `spec`).")
    variants: list[Variant] = Field(min_length=1, max_length=MAX_VARIANTS)

    @model_validator(mode="after")
    def _unique_labels(self) -> StudyDefinition:
        check_labels(self.variants)
        return self


def check_labels(variants: list[Variant]) -> None:
    """ValueError naming the first label used twice (a label names its run in the study's table)."""
    seen: dict[str, int] = {}
    for index, variant in enumerate(variants):
        if variant.label in seen:
            raise ValueError(
                f"variants: label {variant.label!r} is used by variants {seen[variant.label]} and {index}; "
                "labels must be unique in a study"
            )
        seen[variant.label] = index


@dataclass(frozen=True)
class VariantError:
    """One problem with one variant's spec: `variant` is its index (None: the study as a whole)."""

    variant: int | None
    label: str | None
    field: str
    msg: str
    type: str

    def as_dict(self) -> dict[str, Any]:
        return {"variant": self.variant, "label": self.label, "field": self.field, "msg": self.msg, "type": self.type}


@dataclass
class StudyInvalid(Exception):
    errors: list[VariantError] = field(default_factory=list)

    def __str__(self) -> str:
        return "; ".join(
            f"{'study' if e.variant is None else f'variant {e.variant} ({e.label})'}: {e.field}: {e.msg}"
            for e in self.errors
        )


class PathError(ValueError):
    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path


def check_path(path: str) -> list[str]:
    """The keys of a dotted path ('model.kernel_sizes' -> ['model', 'kernel_sizes']), or PathError."""
    keys = path.split(".")
    if len(keys) > 8 or not all(_KEY.match(key) for key in keys):
        raise PathError(
            path,
            f"{path!r} is not a dotted spec path: names of letters, digits and _, "
            "joined by dots, like model.kernel_sizes",
        )
    return keys


def set_path(spec: dict[str, Any], path: str, value: Any) -> None:
    """Set `path` in `spec` in place. Missing or null objects on the way are created (so
    'early_stopping.patience' works while early_stopping is null); any other value on the way is an error."""
    keys = check_path(path)
    node = spec
    for depth, key in enumerate(keys[:-1]):
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        elif not isinstance(child, dict):
            where = ".".join(keys[: depth + 1])
            raise PathError(path, f"{where} is {_describe(child)}, not an object: cannot set {path}")
        node = child
    node[keys[-1]] = copy.deepcopy(value)


def _describe(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, (int, float)):
        return f"a number ({value})"
    return f"a string ({value!r})" if isinstance(value, str) else type(value).__name__


def variant_spec(base: dict[str, Any] | None, variant: Variant, overrides: dict[str, Any]) -> dict[str, Any]:
    """The variant's spec before validation: its own spec (or the base, named after its label), then its
    `set`, then the study's global `overrides`, each in order. Raises PathError."""
    if variant.spec is not None:
        spec = copy.deepcopy(variant.spec)
        spec["name"] = spec.get("name") or variant.label
    elif base is not None:
        spec = copy.deepcopy(base) | {"name": variant.label}
    else:
        raise PathError("base", "the study has no base spec and this variant gives no whole spec")
    for path, value in [*variant.set.items(), *overrides.items()]:
        set_path(spec, path, value)
    return spec


def expand(
    base: dict[str, Any] | None, variants: list[Variant], overrides: dict[str, Any] | None = None
) -> list[RunSpec]:
    """One validated spec per variant, in order; StudyInvalid naming every error of every variant."""
    overrides = overrides or {}
    errors: list[VariantError] = []
    for path in overrides:
        try:
            check_path(path)
        except PathError as exc:
            errors.append(VariantError(None, None, f"set.{path}" if path else "set", str(exc), "path"))
    if errors:
        raise StudyInvalid(errors)
    specs: list[RunSpec] = []
    for index, variant in enumerate(variants):
        try:
            specs.append(RunSpec.model_validate(variant_spec(base, variant, overrides)))
        except PathError as exc:
            errors.append(VariantError(index, variant.label, exc.path, str(exc), "path"))
        except ValidationError as exc:
            errors.extend(
                VariantError(index, variant.label, error_field(e["loc"], e["msg"]), e["msg"], e["type"])
                for e in exc.errors()
            )
        if len(errors) > MAX_ERRORS:  # enough to act on; checking the rest would only cost time
            left = len(variants) - index - 1
            errors = errors[:MAX_ERRORS]
            errors.append(
                VariantError(
                    None,
                    None,
                    "variants",
                    f"more than {MAX_ERRORS} errors; stopped checking with {left} variant(s) left",
                    "too_many_errors",
                )
            )
            break
    if errors:
        raise StudyInvalid(errors)
    return specs


def run_count_error(points: int, repeats: int, what: str = "points") -> VariantError | None:
    """The error for a study over MAX_STUDY_RUNS runs (points x repeats), naming the count and the limit."""
    total = points * repeats
    if total <= MAX_STUDY_RUNS:
        return None
    return VariantError(
        None,
        None,
        "grid" if what == "points" else "repeats",
        f"the study would queue {total} runs ({points} {what} x {repeats} repeats); the limit is {MAX_STUDY_RUNS}",
        "too_many_runs",
    )


def value_text(value: Any) -> str:
    """A grid value as a label shows it: numbers and strings as written, anything else as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:g}"
    return json.dumps(value, separators=(",", ":"))


def sweep_variants(grid: dict[str, list[Any]]) -> list[Variant]:
    """One variant per point of the grid: the Cartesian product of its axes in the order given (the last
    axis varies fastest), labelled "optimizer.lr=0.1, batch_size=32". A label over MAX_LABEL characters
    is cut short and numbered so it stays unique."""
    paths = list(grid)
    variants: list[Variant] = []
    for index, point in enumerate(itertools.product(*(grid[path] for path in paths))):
        label = ", ".join(f"{path}={value_text(value)}" for path, value in zip(paths, point, strict=True))
        if len(label) > MAX_LABEL:
            suffix = f" #{index + 1}"
            label = label[: MAX_LABEL - len(suffix) - 1] + "…" + suffix
        try:
            variants.append(Variant(label=label or "base", set=dict(zip(paths, point, strict=True))))
        except ValidationError as exc:  # a point whose overrides are over the size limit, say
            raise StudyInvalid(
                [
                    VariantError(index, label, f"grid.{error_field(e['loc'], e['msg'])}", e["msg"], e["type"])
                    for e in exc.errors()
                ]
            ) from None
    return variants
