"""The run form <-> the run spec. Form fields are named by dotted spec paths ('model.hidden'), so a
validation error's path names the field it belongs to, and the form needs no field list of its own.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from trainboard.spec import CNNSpec, DatasetSpec, MLPSpec, OptimizerSpec, RunSpec, error_field

MODEL_SPECS: dict[str, type[BaseModel]] = {"mlp": MLPSpec, "cnn": CNNSpec}
SECTIONS: dict[str, type[BaseModel]] = {"dataset": DatasetSpec, "optimizer": OptimizerSpec}
TOP_LEVEL = ("name", "epochs", "batch_size", "seed", "device")


def _kind(info: FieldInfo) -> str:
    """'list', 'bool' or 'scalar': how a field is typed into a text box."""
    annotation = info.annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        annotation = args[0] if len(args) == 1 else annotation
    if typing.get_origin(annotation) is list:
        return "list"
    return "bool" if annotation is bool else "scalar"


def _section(model: type[BaseModel], prefix: str, form: Mapping[str, str], skip: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        if name in skip:
            continue
        key = f"{prefix}.{name}"
        kind = _kind(info)
        if kind == "bool":
            out[name] = key in form and form[key] not in ("", "false", "off", "0")
            continue
        if key not in form:
            continue  # not posted (another arch's field, a script's partial form): the spec's default applies
        raw = form[key].strip()
        if kind == "list":
            # An emptied list box means no items (a CNN with no hidden layers), so a clone of such a spec
            # round-trips; a list that needs items says so in its error.
            out[name] = [part.strip() for part in raw.split(",") if part.strip()]
        elif raw != "":  # left empty: the spec's default applies
            out[name] = raw
    return out


def spec_from_form(form: Mapping[str, str]) -> dict[str, Any]:
    """A spec dict from the posted form; values stay strings and pydantic converts and checks them."""
    arch = form.get("model.arch", "").strip()
    model: dict[str, Any] = {"arch": arch}
    if arch in MODEL_SPECS:
        model |= _section(MODEL_SPECS[arch], "model", form, skip={"arch"})
    spec: dict[str, Any] = {key: form[key].strip() for key in TOP_LEVEL if form.get(key, "").strip()}
    for section, model_cls in SECTIONS.items():
        spec[section] = _section(model_cls, section, form, skip=set())
    spec["model"] = model
    return spec


def validate_form(form: Mapping[str, str]) -> tuple[RunSpec | None, dict[str, str]]:
    """(spec, {}) when valid, else (None, {field path: message}) with each message under its form field."""
    try:
        return RunSpec.model_validate(spec_from_form(form)), {}
    except ValidationError as exc:
        errors: dict[str, str] = {}
        for error in exc.errors():
            field, item = _form_field(error_field(error["loc"], error["msg"]))
            message = error["msg"].removeprefix("Value error, ").removeprefix(f"{field}: ")
            if item is not None:  # one entry of a comma-separated list: say which
                message = f"item {item + 1} ({error['input']}): {message}"
            errors[field] = f"{errors[field]}; {message}" if field in errors else message
        return None, errors


def _form_field(path: str) -> tuple[str, int | None]:
    """The form field an error path belongs to, and the list item it names: 'model.channels.1' ->
    ('model.channels', 1); 'model' for errors about the model as a whole (kernel sizes vs channels, a conv
    stack too deep for the images); 'spec' for errors no field owns."""
    parts = path.split(".")
    item = int(parts.pop()) if len(parts) > 1 and parts[-1].isdigit() else None
    field = ".".join(parts)
    return (field if field else "spec"), item


def form_defaults() -> dict[str, str]:
    """Every form field's default, as the text the form shows."""
    values: dict[str, str] = {}
    for arch, model_cls in MODEL_SPECS.items():
        values |= _defaults(model_cls, "model", skip={"arch"})
    for section, model_cls in SECTIONS.items():
        values |= _defaults(model_cls, section, skip={"name"} if section == "dataset" else set())
    values |= {key: _text(RunSpec.model_fields[key].get_default(call_default_factory=True)) for key in TOP_LEVEL}
    values["dataset.name"] = "digits"
    values["model.arch"] = "cnn"
    return values


def form_values(spec: dict[str, Any]) -> dict[str, str]:
    """A spec as form field values (for a re-shown form or a clone)."""
    values = form_defaults()
    for key in TOP_LEVEL:
        if key in spec:
            values[key] = _text(spec[key])
    for section in ("dataset", "optimizer", "model"):
        for name, value in (spec.get(section) or {}).items():
            values[f"{section}.{name}"] = _text(value)
    return values


def _defaults(model: type[BaseModel], prefix: str, skip: set[str]) -> dict[str, str]:
    return {
        f"{prefix}.{name}": _text(info.get_default(call_default_factory=True))
        for name, info in model.model_fields.items() if name not in skip
    }


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else ""
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)
