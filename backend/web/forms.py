"""The run form <-> the run spec. Form fields are named by dotted spec paths ('model.hidden',
'augment.random_crop.padding', 'finetune.lr.fc'), so a validation error's path names the field it belongs
to, and the form needs no field list of its own.

A few spec shapes take a form control of their own:
- an optional section (`augment.hflip`, `early_stopping`) is a checkbox of that name: unchecked, it is null;
- `model` and `scheduler` are unions: `model.arch` / `scheduler.name` chooses which fields are read;
- `finetune.train` is `all` or `groups`, with one checkbox per group (`finetune.train.fc`) and the order
  they were checked in (`finetune.train_order`), and `finetune.lr` one input per group (`finetune.lr.fc`),
  for the groups of the chosen architecture;
- `dataset.normalize` is a mode or `explicit`, which reads per-channel values from `dataset.normalize.mean`
  and `dataset.normalize.std` (comma-separated, like a list).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from backend.web.error_wording import in_words
from trainboard.spec import (
    BUILTIN_DATASETS,
    FINETUNE_ARCHS,
    MODEL_GROUPS,
    AugmentSpec,
    CNNSpec,
    CosineSchedule,
    CustomCNNSpec,
    DatasetSpec,
    EarlyStoppingSpec,
    HeadSpec,
    MLPSpec,
    MultiStepSchedule,
    NormalizeMode,
    NoSchedule,
    OptimizerSpec,
    RunSpec,
    StepSchedule,
    TorchvisionSpec,
    error_field,
)

MODEL_SPECS: dict[str, type[BaseModel]] = {
    "mlp": MLPSpec,
    "cnn": CNNSpec,
    "custom_cnn": CustomCNNSpec,
    "resnet18": TorchvisionSpec,
    "vgg16": TorchvisionSpec,
    "alexnet": TorchvisionSpec,
}
SCHEDULER_SPECS: dict[str, type[BaseModel]] = {
    "none": NoSchedule,
    "multistep": MultiStepSchedule,
    "cosine": CosineSchedule,
    "step": StepSchedule,
}
SECTIONS: dict[str, type[BaseModel]] = {"dataset": DatasetSpec, "optimizer": OptimizerSpec}
TOP_LEVEL = ("name", "epochs", "batch_size", "seed", "device")
TOP_LEVEL_CHECKBOXES = ("cuda_graphs",)
DEFAULT_ARCH = "cnn"
# The form's choice for `dataset.normalize` given as values ({"mean": [...], "std": [...]}), and their inputs.
EXPLICIT = "explicit"
NORMALIZE_VALUES = ("dataset.normalize.mean", "dataset.normalize.std")
# Errors shown at the top of their part of the form (they are about the part, not one field of it).
SECTION_ERRORS = (
    "dataset",
    "augment",
    "model",
    "finetune",
    "finetune.train",
    "finetune.lr",
    "optimizer",
    "scheduler",
    "early_stopping",
)


def _literal_options(model: type[BaseModel], field: str) -> list[str]:
    return list(typing.get_args(model.model_fields[field].annotation))


def options() -> dict[str, Any]:
    """The choices the form offers, from the spec itself."""
    group_sets: dict[tuple[str, ...], list[str]] = {}
    for arch, groups in MODEL_GROUPS.items():
        group_sets.setdefault(tuple(groups), []).append(arch)
    return {
        "datasets": list(BUILTIN_DATASETS),  # and the registered ones, per request (web/runs.py form_options)
        "normalizes": [*typing.get_args(NormalizeMode), EXPLICIT],
        "archs": list(MODEL_SPECS),
        "pools": _literal_options(CNNSpec, "pool"),
        "heads": _literal_options(HeadSpec, "kind"),
        "optimizers": _literal_options(OptimizerSpec, "name"),
        "schedulers": list(SCHEDULER_SPECS),
        "metrics": _literal_options(EarlyStoppingSpec, "metric"),
        # Architectures with the same parameter groups share one block of fine-tuning fields.
        "group_sets": [{"groups": list(groups), "archs": archs} for groups, archs in group_sets.items()],
        "finetune_archs": list(FINETUNE_ARCHS),
        "arch_defaults": arch_defaults(),
        "placeholders": placeholders(),
    }


def _unwrap(annotation: Any) -> Any:
    """`X | None` -> X."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else annotation
    return annotation


AUGMENTS: dict[str, type[BaseModel]] = {
    name: _unwrap(info.annotation) for name, info in AugmentSpec.model_fields.items()
}
OPTIONAL_SECTIONS = {*(f"augment.{name}" for name in AUGMENTS), "early_stopping"}


def _kind(info: FieldInfo) -> str:
    """'list', 'bool', 'model' (a nested section) or 'scalar': how a field is typed into the form."""
    annotation = _unwrap(info.annotation)
    if typing.get_origin(annotation) is list:
        return "list"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "model"
    return "bool" if annotation is bool else "scalar"


def _checked(form: Mapping[str, str], key: str) -> bool:
    return key in form and form[key] not in ("", "false", "off", "0")


def _section(model: type[BaseModel], prefix: str, form: Mapping[str, str], skip: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        if name in skip:
            continue
        key = f"{prefix}.{name}"
        kind = _kind(info)
        if kind == "bool":
            out[name] = _checked(form, key)
            continue
        if kind == "model":
            nested = _section(_unwrap(info.annotation), key, form, skip=set())
            if nested:
                out[name] = nested
            continue
        if key not in form:
            continue  # not posted (another arch's field, a script's partial form): the spec's default applies
        raw = form[key].strip()
        if kind == "list":
            # An emptied list box means no items (a CNN with no hidden layers), so a clone of such a spec
            # round-trips; a list that needs items says so in its error.
            out[name] = _items(raw)
        elif raw != "":  # left empty: the spec's default applies
            out[name] = raw
    return out


def _items(raw: str) -> list[str]:
    return [part.strip() for part in raw.split(",") if part.strip()]


def _normalize(form: Mapping[str, str], dataset: dict[str, Any]) -> None:
    """`explicit` as the spec's {"mean": [...], "std": [...]}, from their two inputs."""
    if dataset.get("normalize") == EXPLICIT:
        dataset["normalize"] = {key.rsplit(".", 1)[1]: _items(form.get(key, "")) for key in NORMALIZE_VALUES}


def _finetune(form: Mapping[str, str], arch: str) -> dict[str, Any]:
    groups = MODEL_GROUPS.get(arch, [])
    finetune: dict[str, Any] = {"frozen_bn_eval": _checked(form, "finetune.frozen_bn_eval")}
    if form.get("finetune.train", "all") == "groups":
        # In the order they were checked (form.js keeps it in finetune.train_order; a clone starts from the
        # spec's): it is the order of the optimizer's param groups, and of each epoch's recorded lrs.
        order = [group.strip() for group in form.get("finetune.train_order", "").split(",")]
        checked = [group for group in groups if _checked(form, f"finetune.train.{group}")]
        finetune["train"] = sorted(
            checked, key=lambda g: order.index(g) if g in order else len(order) + groups.index(g)
        )
    lrs = {
        group: form[f"finetune.lr.{group}"].strip() for group in groups if form.get(f"finetune.lr.{group}", "").strip()
    }
    if lrs:
        finetune["lr"] = lrs
    return finetune


def spec_from_form(form: Mapping[str, str]) -> dict[str, Any]:
    """A spec dict from the posted form; values stay strings and pydantic converts and checks them."""
    spec: dict[str, Any] = {key: form[key].strip() for key in TOP_LEVEL if form.get(key, "").strip()}
    spec |= {key: _checked(form, key) for key in TOP_LEVEL_CHECKBOXES}
    for section, model_cls in SECTIONS.items():
        spec[section] = _section(model_cls, section, form, skip=set())
    _normalize(form, spec["dataset"])
    spec["augment"] = {
        name: _section(model_cls, f"augment.{name}", form, skip=set()) if _checked(form, f"augment.{name}") else None
        for name, model_cls in AUGMENTS.items()
    }
    arch = form.get("model.arch", "").strip()
    spec["model"] = {"arch": arch}
    if arch in MODEL_SPECS:
        spec["model"] |= _section(MODEL_SPECS[arch], "model", form, skip={"arch"})
    spec["finetune"] = _finetune(form, arch)
    schedule = form.get("scheduler.name", "none").strip()
    spec["scheduler"] = {"name": schedule}
    if schedule in SCHEDULER_SPECS:
        spec["scheduler"] |= _section(SCHEDULER_SPECS[schedule], "scheduler", form, skip={"name"})
    spec["early_stopping"] = (
        _section(EarlyStoppingSpec, "early_stopping", form, skip=set()) if _checked(form, "early_stopping") else None
    )
    return spec


def validate_form(form: Mapping[str, str]) -> tuple[RunSpec | None, dict[str, str]]:
    """(spec, {}) when valid, else (None, {field path: message}) with each message under its form field."""
    try:
        return RunSpec.model_validate(spec_from_form(form)), {}
    except ValidationError as exc:
        errors: dict[str, str] = {}
        for error in exc.errors():
            field, item = _form_field(error_field(error["loc"], error["msg"]))
            message = in_words(error, field)
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


def _defaults(model: type[BaseModel], prefix: str, skip: set[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for name, info in model.model_fields.items():
        if name in skip:
            continue
        if _kind(info) == "model":
            values |= _defaults(_unwrap(info.annotation), f"{prefix}.{name}", skip=set())
        elif info.is_required():
            values[f"{prefix}.{name}"] = ""
        else:
            values[f"{prefix}.{name}"] = _text(info.get_default(call_default_factory=True))
    return values


def form_defaults() -> dict[str, str]:
    """Every form field's default, as the text the form shows."""
    values: dict[str, str] = {}
    # A field several archs share ('model.dropout') shows the default arch's default, else the first arch's
    # in MODEL_SPECS (form.js swaps in the chosen arch's own default while the field holds another's).
    for arch in [DEFAULT_ARCH, *MODEL_SPECS]:
        values = _defaults(MODEL_SPECS[arch], "model", skip={"arch"}) | values
    for section, model_cls in SECTIONS.items():
        values |= _defaults(model_cls, section, skip={"name"} if section == "dataset" else set())
    values |= dict.fromkeys(NORMALIZE_VALUES, "")
    for name, model_cls in AUGMENTS.items():
        values[f"augment.{name}"] = ""
        values |= _defaults(model_cls, f"augment.{name}", skip=set())
    for model_cls in SCHEDULER_SPECS.values():
        values |= _defaults(model_cls, "scheduler", skip={"name"})
    values["early_stopping"] = ""
    values |= _defaults(EarlyStoppingSpec, "early_stopping", skip=set())
    values["finetune.train"] = "all"
    values["finetune.train_order"] = ""
    values["finetune.frozen_bn_eval"] = ""
    for group in {group for groups in MODEL_GROUPS.values() for group in groups}:
        values[f"finetune.train.{group}"] = ""
        values[f"finetune.lr.{group}"] = ""
    top_level = (*TOP_LEVEL, *TOP_LEVEL_CHECKBOXES)
    values |= {key: _text(RunSpec.model_fields[key].get_default(call_default_factory=True)) for key in top_level}
    values["dataset.name"] = "digits"
    values["model.arch"] = DEFAULT_ARCH
    values["scheduler.name"] = "none"
    return values


def arch_defaults() -> dict[str, dict[str, str]]:
    """For each model field several archs share, each arch's default: {'model.dropout': {'mlp': '0.0', ...}}."""
    shared: dict[str, dict[str, str]] = {}
    for arch, model_cls in MODEL_SPECS.items():
        for key, value in _defaults(model_cls, "model", skip={"arch"}).items():
            shared.setdefault(key, {})[arch] = value
    return {key: by_arch for key, by_arch in shared.items() if len(set(by_arch.values())) > 1}


def _scalar_keys(model: type[BaseModel], prefix: str) -> set[str]:
    keys: set[str] = set()
    for name, info in model.model_fields.items():
        if _kind(info) == "model":
            keys |= _scalar_keys(_unwrap(info.annotation), f"{prefix}.{name}")
        elif (
            _kind(info) == "scalar"
            and typing.get_origin(_unwrap(info.annotation)) is not typing.Literal
            and f"{prefix}.{name}" != "dataset.normalize"  # a select too: a mode, or explicit
        ):
            keys.add(f"{prefix}.{name}")  # a choice is a select, never empty
    return keys


def placeholders() -> dict[str, str]:
    """The default a text field left empty takes, which the form shows greyed in the empty box. Not for a
    list (emptied, it means no items), nor for a field whose default depends on the architecture."""
    keys = {key for key in TOP_LEVEL if _kind(RunSpec.model_fields[key]) == "scalar"}
    sections = [("model", m) for m in MODEL_SPECS.values()] + [(f"augment.{n}", m) for n, m in AUGMENTS.items()]
    sections += list(SECTIONS.items()) + [("scheduler", m) for m in SCHEDULER_SPECS.values()]
    sections += [("early_stopping", EarlyStoppingSpec)]
    for prefix, model_cls in sections:
        keys |= _scalar_keys(model_cls, prefix)
    defaults, shared = form_defaults(), arch_defaults()
    return {key: defaults[key] for key in sorted(keys) if defaults.get(key) and key not in shared}


def checkbox_keys() -> set[str]:
    """The form's checkboxes: a browser posts nothing for one that is unchecked."""
    keys = set(OPTIONAL_SECTIONS) | {"finetune.frozen_bn_eval", *TOP_LEVEL_CHECKBOXES}
    keys |= {f"finetune.train.{group}" for groups in MODEL_GROUPS.values() for group in groups}
    for prefix, model_cls in (
        [("model", m) for m in MODEL_SPECS.values()]
        + [(f"augment.{name}", m) for name, m in AUGMENTS.items()]
        + [("optimizer", OptimizerSpec), ("early_stopping", EarlyStoppingSpec)]
    ):
        keys |= {f"{prefix}.{name}" for name, info in model_cls.model_fields.items() if _kind(info) == "bool"}
    return keys


def posted_values(form: Mapping[str, str]) -> dict[str, str]:
    """A posted form as the values to show it again with: an unchecked checkbox stays unchecked."""
    return form_defaults() | dict.fromkeys(checkbox_keys(), "") | dict(form)


def form_values(spec: dict[str, Any]) -> dict[str, str]:
    """A spec as form field values (for a re-shown form or a clone)."""
    values = form_defaults()

    def walk(prefix: str, mapping: Mapping[str, Any]) -> None:
        for key, value in mapping.items():
            path = f"{prefix}.{key}" if prefix else key
            if isinstance(value, Mapping):
                if path in OPTIONAL_SECTIONS:
                    values[path] = "true"
                if path == "dataset.normalize":  # values: the explicit choice, with its two inputs
                    values[path] = EXPLICIT
                walk(path, value)
            elif path != "finetune.train":
                values[path] = _text(value)

    walk("", spec)
    train = (spec.get("finetune") or {}).get("train", "all")
    if isinstance(train, list):
        values["finetune.train"] = "groups"
        values["finetune.train_order"] = ", ".join(train)
        for group in train:
            values[f"finetune.train.{group}"] = "true"
    return values


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else ""
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)
