"""worker/models.py: the built models have the shapes and parameter counts spec.py promises."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from trainboard.spec import DATASET_SHAPES, RunSpec
from worker.models import build_model

DATASETS = list(DATASET_SHAPES)

CNN_CONFIGS: list[dict[str, Any]] = [
    {"channels": [32, 64], "kernel_sizes": [3, 3], "pool": "max"},
    {"channels": [8], "kernel_sizes": [5], "pool": "avg", "hidden": []},
    {"channels": [4, 8, 16], "kernel_sizes": [3, 5, 1], "pool": "stride", "hidden": [32]},
    {"channels": [6, 6], "kernel_sizes": [2, 4], "pool": "max"},  # even kernels lose a pixel each
    {"channels": [4, 4], "kernel_sizes": [3, 3], "dilation": 2, "pool": "stride"},
    {"channels": [3], "kernel_sizes": [7], "dilation": 3, "pool": "avg", "hidden": [5, 5]},
    {"channels": [2, 2], "kernel_sizes": [2, 2], "dilation": 4, "pool": "stride"},
]


def config_id(config: dict[str, Any]) -> str:
    return f"{config['kernel_sizes']}-{config['pool']}-d{config.get('dilation', 1)}"


def spec_for(dataset: str, model: dict[str, Any]) -> RunSpec:
    return RunSpec(dataset={"name": dataset}, model=model)


def parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("arch", ["mlp", "cnn"])
@pytest.mark.parametrize("dataset", DATASETS)
def test_default_models_map_a_batch_to_class_scores(dataset: str, arch: str) -> None:
    spec = spec_for(dataset, {"arch": arch})

    scores = build_model(spec)(torch.zeros(3, *spec.input_shape))

    assert scores.shape == (3, spec.num_classes)


@pytest.mark.parametrize("config", CNN_CONFIGS, ids=config_id)
@pytest.mark.parametrize("dataset", DATASETS)
def test_cnn_feature_size_matches_spec(dataset: str, config: dict[str, Any]) -> None:
    spec = spec_for(dataset, {"arch": "cnn", **config})
    _, height, width = spec.input_shape
    model = build_model(spec)

    features = model.features(torch.zeros(2, *spec.input_shape))

    assert features.shape == (2, config["channels"][-1], *spec.model.feature_size(height, width))
    assert model(torch.zeros(2, *spec.input_shape)).shape == (2, spec.num_classes)


@pytest.mark.parametrize("config", CNN_CONFIGS, ids=config_id)
@pytest.mark.parametrize("dataset", DATASETS)
def test_cnn_parameter_count_matches_spec(dataset: str, config: dict[str, Any]) -> None:
    spec = spec_for(dataset, {"arch": "cnn", **config})

    assert parameters(build_model(spec)) == spec.model.parameter_count(DATASET_SHAPES[dataset])


@pytest.mark.parametrize("hidden", [[128, 64], [7], [300, 100, 30, 10]])
@pytest.mark.parametrize("dataset", DATASETS)
def test_mlp_parameter_count_matches_spec(dataset: str, hidden: list[int]) -> None:
    spec = spec_for(dataset, {"arch": "mlp", "hidden": hidden})

    assert parameters(build_model(spec)) == spec.model.parameter_count(DATASET_SHAPES[dataset])


def test_mlp_with_batch_norm_parameter_count_matches_spec() -> None:
    spec = spec_for("mnist", {"arch": "mlp", "hidden": [128, 64], "batch_norm": True})

    assert parameters(build_model(spec)) == spec.model.parameter_count(DATASET_SHAPES["mnist"])


def test_mlp_with_batch_norm_has_it_after_each_hidden_linear() -> None:
    model = build_model(spec_for("digits", {"arch": "mlp", "hidden": [16, 8], "batch_norm": True}))

    kinds = [type(layer) for layer in model]
    assert kinds == [nn.Flatten, nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear]
    assert [layer.num_features for layer in model if isinstance(layer, nn.BatchNorm1d)] == [16, 8]
    assert parameters(model) == (64 * 16 + 16) + 2 * 16 + (16 * 8 + 8) + 2 * 8 + (8 * 10 + 10)


def test_cnn_layers_padding_dilation_and_pooling() -> None:
    model = {"arch": "cnn", "channels": [4, 8], "kernel_sizes": [5, 3], "dilation": 2, "pool": "max"}
    spec = spec_for("cifar10", model)
    features = build_model(spec).features

    convs = [layer for layer in features if isinstance(layer, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.padding, c.dilation, c.stride) for c in convs] == [
        (3, 4, (5, 5), (4, 4), (2, 2), (1, 1)),
        (4, 8, (3, 3), (2, 2), (2, 2), (1, 1)),
    ]
    assert [type(layer) for layer in features] == [nn.Conv2d, nn.ReLU, nn.Conv2d, nn.ReLU, nn.MaxPool2d]


def test_cnn_stride_pooling_strides_only_the_last_conv() -> None:
    spec = spec_for("mnist", {"arch": "cnn", "channels": [4, 8, 8], "kernel_sizes": [3, 3, 3], "pool": "stride"})
    features = build_model(spec).features

    assert [layer.stride for layer in features if isinstance(layer, nn.Conv2d)] == [(1, 1), (1, 1), (2, 2)]
    assert not any(isinstance(layer, (nn.MaxPool2d, nn.AvgPool2d)) for layer in features)
    assert features(torch.zeros(1, 1, 28, 28)).shape == (1, 8, 14, 14)


def test_same_seed_builds_the_same_weights() -> None:
    spec = spec_for("digits", {"arch": "cnn", "channels": [4], "kernel_sizes": [3]})

    torch.manual_seed(3)
    first = build_model(spec).state_dict()
    torch.manual_seed(3)
    second = build_model(spec).state_dict()

    assert all(torch.equal(first[name], second[name]) for name in first)
