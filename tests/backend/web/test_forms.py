"""backend/forms.py: the run form <-> the run spec for every architecture, schedule, augmentation, fine-tuning
choice and early stopping; errors land on their own field."""

from __future__ import annotations

from typing import Any

import pytest

from backend.web import forms
from trainboard.spec import RunSpec

SPECS: dict[str, dict[str, Any]] = {
    "mlp": {
        "dataset": {"name": "mnist", "normalize": "none"},
        "model": {"arch": "mlp", "hidden": [512, 256], "batch_norm": True, "dropout": 0.1},
        "optimizer": {"name": "adamw", "lr": 0.001, "weight_decay": 0.01},
    },
    "cnn-no-hidden": {
        "dataset": {"name": "fashion_mnist"},
        "model": {"arch": "cnn", "channels": [8], "kernel_sizes": [9], "pool": "stride", "hidden": []},
        "scheduler": {"name": "multistep", "milestones": [2, 5, 7], "gamma": 0.5},
    },
    "custom_cnn": {
        "dataset": {"name": "cifar100", "normalize": "computed", "train_limit": 100, "test_limit": 50},
        "augment": {"rotation": {"degrees": 10}, "hflip": {"p": 0.25}},
        "model": {"arch": "custom_cnn", "blocks": [16, 32, 64], "dropout": 0.3, "hidden": []},
        "finetune": {"train": ["blocks"], "lr": {"blocks": 0.02}},
        "scheduler": {"name": "step", "step_size": 3, "gamma": 0.2},
    },
    "vgg16": {
        "dataset": {"name": "cifar10"},
        "model": {"arch": "vgg16", "pretrained": True},
        "finetune": {"train": ["classifier"], "frozen_bn_eval": True},
        "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True},
        "scheduler": {"name": "cosine", "t_max": 30, "eta_min": 0.0001},
        "early_stopping": {"metric": "test_loss", "patience": 2, "min_delta": 0.01, "restore_best": False},
        "cuda_graphs": True,
    },
    "alexnet-resized": {
        "dataset": {"name": "mnist", "resize": 64},
        "augment": {
            "random_crop": {"size": None, "padding": 2},
            "color_jitter": {"brightness": 0.5, "contrast": 0.0, "saturation": 0.0, "hue": 0.1},
        },
        "model": {"arch": "alexnet", "head": {"kind": "mlp", "hidden": 64, "dropout": 0.0}},
        "finetune": {"lr": {"classifier": 0.1}},
        "epochs": 3,
        "batch_size": 16,
        "seed": 9,
    },
    "explicit-normalisation": {
        "dataset": {"name": "cifar10", "normalize": {"mean": [0.4914, 0.4822, 0.4465], "std": [0.2023, 0.1994, 0.201]}},
        "model": {"arch": "mlp"},
    },
    "explicit-one-channel": {
        "dataset": {"name": "mnist", "normalize": {"mean": [0.1307], "std": [0.3081]}},
        "model": {"arch": "mlp"},
    },
    "resnet18": {
        "dataset": {"name": "cifar10", "resize": 224},
        "augment": {"random_crop": {"size": 224, "padding": 4}, "hflip": {"p": 0.5}},
        "model": {"arch": "resnet18", "pretrained": True, "head": {"kind": "mlp", "hidden": 256}},
        "finetune": {"train": ["fc", "layer4", "bn1"], "lr": {"fc": 0.01, "layer4": 1e-05}},
        "optimizer": {"name": "adam", "lr": 0.0001},
        "early_stopping": {},
    },
}


def browser_post(values: dict[str, str]) -> dict[str, str]:
    """What a browser posts for a form showing `values`: every field, but no unchecked checkbox."""
    checkboxes = forms.checkbox_keys()
    return {key: value for key, value in values.items() if not (key in checkboxes and not value)}


@pytest.mark.parametrize("name", list(SPECS))
def test_a_spec_round_trips_through_the_form(name: str) -> None:
    spec = RunSpec.model_validate(SPECS[name]).model_dump(mode="json")
    parsed, errors = forms.validate_form(browser_post(forms.form_values(spec)))
    assert errors == {}
    assert parsed is not None and parsed.model_dump(mode="json") == spec


def test_trained_groups_keep_the_order_they_were_checked_in() -> None:
    form = browser_post(forms.form_defaults()) | {
        "dataset.name": "cifar10",
        "model.arch": "resnet18",
        "finetune.train": "groups",
        "finetune.train.fc": "true",
        "finetune.train.layer2": "true",
        "finetune.train.conv1": "true",
        "finetune.train_order": "layer2, fc",
    }
    spec, errors = forms.validate_form(form)
    assert errors == {} and spec is not None
    assert spec.finetune.train == ["layer2", "fc", "conv1"]  # unordered ones last, in the model's order


def test_only_the_chosen_architectures_groups_and_lrs_are_read() -> None:
    form = browser_post(forms.form_defaults()) | {
        "dataset.name": "cifar10",
        "model.arch": "vgg16",
        "finetune.train": "all",
        "finetune.lr.fc": "0.5",
        "finetune.lr.classifier": "0.01",
        "finetune.train.fc": "true",
    }
    spec, errors = forms.validate_form(form)
    assert errors == {} and spec is not None
    assert spec.finetune.train == "all" and spec.finetune.lr == {"classifier": 0.01}


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"model.arch": "resnet18", "finetune.train": "groups"}, "finetune.train", "name at least one group"),
        ({"model.arch": "resnet18", "finetune.lr.fc": "-1"}, "finetune.lr.fc", "must be greater than 0"),
        (
            {"augment.random_crop": "true", "augment.random_crop.size": "16"},
            "augment.random_crop.size",
            "must be the image size, 32",
        ),
        ({"augment.hflip": "true", "augment.hflip.p": "2"}, "augment.hflip.p", "must be at most 1"),
        (
            {"scheduler.name": "multistep", "scheduler.milestones": "5, 2"},
            "scheduler.milestones",
            "strictly increasing",
        ),
        ({"scheduler.name": "multistep"}, "scheduler.milestones", "needs at least 1 item"),
        ({"optimizer.name": "adam", "optimizer.nesterov": "true"}, "optimizer.nesterov", "needs the sgd optimizer"),
        ({"early_stopping": "true", "early_stopping.patience": "0"}, "early_stopping.patience", "must be at least 1"),
        (
            {"model.arch": "vgg16", "model.head.kind": "mlp", "model.head.hidden": "0"},
            "model.head.hidden",
            "at least 1",
        ),
        ({"dataset.name": "digits", "model.arch": "alexnet"}, "model", "at least 32x32"),
        (
            {"dataset.normalize": "explicit", "dataset.normalize.mean": "0.5", "dataset.normalize.std": "1, 1, 1"},
            "dataset.normalize.mean",
            "cifar10 has 3 channels: give 3 values, one per channel, not 1",
        ),
        (
            {"dataset.normalize": "explicit", "dataset.normalize.mean": "0, 0, 0", "dataset.normalize.std": "1, 0, x"},
            "dataset.normalize.std",
            "item 2 (0): must be at least 0.001; item 3 (x): must be a number",
        ),
        (
            {
                "dataset.normalize": "explicit",
                "dataset.normalize.mean": "nan, 0, 0",
                "dataset.normalize.std": "1, 1, 1",
            },
            "dataset.normalize.mean",
            "item 1 (nan): must be a finite number",
        ),
        (
            {"dataset.normalize": "explicit", "dataset.normalize.mean": "0, 0, 0"},
            "dataset.normalize.std",
            "needs at least 1",
        ),
    ],
)
def test_errors_land_on_their_own_field(changes: dict[str, str], field: str, words: str) -> None:
    form = browser_post(forms.form_defaults()) | {"dataset.name": "cifar10"} | changes
    spec, errors = forms.validate_form(form)
    assert spec is None
    assert field in errors and words in errors[field], errors


def test_a_form_shown_again_keeps_an_unchecked_checkbox_unchecked() -> None:
    posted = {"dataset.name": "digits", "model.arch": "mlp", "early_stopping": "true", "early_stopping.patience": "x"}
    values = forms.posted_values(posted)
    assert values["early_stopping"] == "true"
    assert values["early_stopping.restore_best"] == ""  # its default is checked; the user unchecked it
    assert values["early_stopping.patience"] == "x" and values["optimizer.lr"] == "0.01"


def test_shared_model_fields_default_to_the_first_arch_that_has_them() -> None:
    defaults = forms.form_defaults()
    assert (defaults["model.arch"], defaults["model.hidden"], defaults["model.dropout"]) == ("cnn", "128, 64", "0.0")
    assert forms.arch_defaults() == {
        "model.hidden": {"mlp": "128, 64", "cnn": "128, 64", "custom_cnn": "128"},
        "model.dropout": {"mlp": "0.0", "custom_cnn": "0.25"},
    }
    groups = {tuple(s["groups"]): s["archs"] for s in forms.options()["group_sets"]}
    assert groups[("features", "classifier")] == ["cnn", "vgg16", "alexnet"]


def test_the_forms_default_run_is_the_minimal_spec() -> None:
    """The new-run form, posted untouched, queues exactly the spec's defaults for digits and the cnn: the run
    tests/worker/test_defaults.py trains to over 90 %."""
    spec, errors = forms.validate_form(browser_post(forms.form_defaults()))
    assert errors == {} and spec is not None
    minimal = RunSpec.model_validate({"dataset": {"name": "digits"}, "model": {"arch": "cnn"}})
    assert spec.model_dump(mode="json") == minimal.model_dump(mode="json")
    assert (spec.optimizer.name, spec.optimizer.lr, spec.optimizer.momentum) == ("sgd", 0.01, 0.9)


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"epochs": "ten"}, "epochs", "must be a whole number, like 10"),
        ({"batch_size": "6.5"}, "batch_size", "must be a whole number, like 10"),
        ({"optimizer.lr": "0,01"}, "optimizer.lr", "must be a number, like 0.01"),
        ({"optimizer.name": "rmsprop"}, "optimizer.name", "must be one of: sgd, adam, adamw"),
        ({"dataset.normalize": "zscore"}, "dataset.normalize", "must be one of: none, standard, computed"),
        ({"epochs": "0"}, "epochs", "must be at least 1"),
        ({"optimizer.momentum": "1"}, "optimizer.momentum", "must be less than 1"),
        ({"augment.hflip": "true", "augment.hflip.p": "1.5"}, "augment.hflip.p", "must be at most 1"),
        ({"optimizer.lr": "0"}, "optimizer.lr", "must be greater than 0"),
        ({"device": "gpu"}, "device", "must be auto, cpu, cuda or cuda:N (cuda:1 is the second GPU)"),
        ({"name": "x" * 121}, "name", "takes at most 120 characters"),
        (
            {"model.channels": "8, x", "model.kernel_sizes": "3, 3"},
            "model.channels",
            "item 2 (x): must be a whole number, like 10",
        ),
        ({"model.channels": "", "model.kernel_sizes": ""}, "model.channels", "needs at least 1 item"),
    ],
)
def test_errors_say_what_the_field_takes_in_the_users_words(changes: dict[str, str], field: str, message: str) -> None:
    spec, errors = forms.validate_form(browser_post(forms.form_defaults()) | changes)
    assert spec is None
    assert errors[field] == message
    assert not any("Input should" in text or "unable to parse" in text for text in errors.values()), errors


def test_an_empty_number_field_takes_its_default_which_the_form_shows_as_its_placeholder() -> None:
    form = browser_post(forms.form_defaults()) | {"epochs": "", "optimizer.lr": " ", "optimizer.momentum": ""}
    spec, errors = forms.validate_form(form)
    assert errors == {} and spec is not None
    assert (spec.epochs, spec.optimizer.lr, spec.optimizer.momentum) == (10, 0.01, 0.9)
    shown = forms.placeholders()
    assert (shown["epochs"], shown["optimizer.lr"], shown["optimizer.momentum"]) == ("10", "0.01", "0.9")
    # No placeholder where empty does not mean the default: a list (no items), an arch-dependent field, a choice.
    assert not {"model.hidden", "model.channels", "model.dropout", "optimizer.name", "dataset.resize"} & set(shown)
