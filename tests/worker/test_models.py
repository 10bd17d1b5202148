"""worker/models.py: the built models have the shapes, parameter counts and groups spec.py promises.

Every architecture x dataset shape builds, runs forward and backward on a batch of 2 (uint8 images
through the engine's Preprocess, so 1-channel datasets are repeated to 3 for torchvision's models)
and gives one score per class. torchvision's models are built without pretrained weights here
(tests/worker/test_weights.py covers those).
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from trainboard.spec import DATASET_SHAPES, MODEL_GROUPS, TORCHVISION_ARCHS, RunSpec
from worker.finetune import model_groups
from worker.models import build_model, model_channels
from worker.preprocess import Preprocess

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


def spec_for(dataset: str, model: dict[str, Any], resize: int | None = None) -> RunSpec:
    return RunSpec(dataset={"name": dataset, "resize": resize}, model=model)


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

    kinds = [type(layer) for layer in model.hidden]
    assert kinds == [nn.Flatten, nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear, nn.BatchNorm1d, nn.ReLU]
    assert isinstance(model.classifier, nn.Linear) and model.classifier.in_features == 8
    assert [layer.num_features for layer in model.hidden if isinstance(layer, nn.BatchNorm1d)] == [16, 8]
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


def test_mlp_dropout_follows_each_hidden_activation() -> None:
    model = build_model(spec_for("digits", {"arch": "mlp", "hidden": [16, 8], "dropout": 0.3}))

    kinds = [type(layer) for layer in model.hidden]
    assert kinds == [nn.Flatten, nn.Linear, nn.ReLU, nn.Dropout, nn.Linear, nn.ReLU, nn.Dropout]
    assert [layer.p for layer in model.hidden if isinstance(layer, nn.Dropout)] == [0.3, 0.3]
    x = torch.ones(4, 1, 8, 8)
    assert torch.equal(model.eval()(x), model(x))  # no dropout in eval mode
    assert not torch.equal(model.train().hidden(x), model.hidden(x))  # fresh masks in training mode


# -- custom CNN -------------------------------------------------------------------------------------

CUSTOM_CNN_CONFIGS: list[dict[str, Any]] = [
    {},  # the defaults: blocks [32, 64], dropout 0.25, hidden [128]
    {"blocks": [4], "dropout": 0.0, "hidden": []},
    {"blocks": [4, 8, 8], "dropout": 0.5, "hidden": [16, 8]},
]


@pytest.mark.parametrize("config", CUSTOM_CNN_CONFIGS, ids=lambda c: str(c.get("blocks", "default")))
@pytest.mark.parametrize("dataset", ["mnist", "cifar100"])
def test_custom_cnn_shapes_and_parameter_count_match_spec(dataset: str, config: dict[str, Any]) -> None:
    spec = spec_for(dataset, {"arch": "custom_cnn", **config})
    _, height, width = spec.input_shape
    model = build_model(spec)

    features = model.blocks(torch.zeros(2, *spec.input_shape))

    assert features.shape == (2, spec.model.blocks[-1], *spec.model.feature_size(height, width))
    assert parameters(model) == spec.model.parameter_count(DATASET_SHAPES[dataset])


def test_custom_cnn_block_is_two_conv_bn_relu_then_pool_and_dropout() -> None:
    model = build_model(spec_for("cifar10", {"arch": "custom_cnn", "blocks": [8, 16], "dropout": 0.25}))

    assert [name for name, _ in model.named_children()] == ["blocks", "classifier"]
    first, second = model.blocks
    kinds = [nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d, nn.Dropout]
    assert [type(layer) for layer in first] == kinds and [type(layer) for layer in second] == kinds
    convs = [layer for layer in model.blocks.modules() if isinstance(layer, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.padding) for c in convs] == [
        (3, 8, (3, 3), (1, 1)),
        (8, 8, (3, 3), (1, 1)),
        (8, 16, (3, 3), (1, 1)),
        (16, 16, (3, 3), (1, 1)),
    ]
    assert first[7].p == 0.25


# -- every architecture x dataset shape ------------------------------------------------------------

SMALL_MODELS: dict[str, dict[str, Any]] = {
    "mlp": {"arch": "mlp", "hidden": [16], "batch_norm": True, "dropout": 0.1},
    "cnn": {"arch": "cnn", "channels": [4, 8], "kernel_sizes": [3, 5], "hidden": [16]},
    "custom_cnn": {"arch": "custom_cnn", "blocks": [4, 8], "hidden": [16]},
    "resnet18": {"arch": "resnet18"},
    "vgg16": {"arch": "vgg16"},
    "alexnet": {"arch": "alexnet"},
}
# (dataset, resize): every stored shape; torchvision's models need at least 32x32, so the 1-channel
# datasets are resized for them (digits to 32, MNIST to 40), and CIFAR-100 brings the 100-class head.
# VGG16 (1-2 s to build on a loaded CPU) skips MNIST at 40: digits at 32 already covers 1-channel input.
SHAPES: list[tuple[str, int | None]] = [("digits", None), ("mnist", None), ("cifar10", None), ("cifar100", None)]
TORCHVISION_SHAPES: list[tuple[str, int | None]] = [
    ("digits", 32),
    ("mnist", 40),
    ("cifar10", None),
    ("cifar100", None),
]
CASES = [
    (arch, dataset, resize)
    for arch in SMALL_MODELS
    for dataset, resize in (TORCHVISION_SHAPES if arch in TORCHVISION_ARCHS else SHAPES)
    if not (arch == "vgg16" and dataset == "mnist")
]
# Where each torchvision model's head goes.
HEADS = {
    "resnet18": lambda model: model.fc,
    "vgg16": lambda model: model.classifier[6],
    "alexnet": lambda model: model.classifier[6],
}


@pytest.mark.parametrize(("arch", "dataset", "resize"), CASES, ids=[f"{a}-{d}-{r or 'stored'}" for a, d, r in CASES])
def test_every_architecture_trains_on_every_dataset_shape(arch: str, dataset: str, resize: int | None) -> None:
    mlp_head = {"head": {"kind": "mlp", "hidden": 32}} if arch in TORCHVISION_ARCHS and dataset == "cifar100" else {}
    model_spec = SMALL_MODELS[arch] | mlp_head
    spec = spec_for(dataset, model_spec, resize)
    channels, height, width, classes = DATASET_SHAPES[dataset]
    torch.manual_seed(0)
    model = build_model(spec)
    # Two stored uint8 images, through the engine's resize, normalisation and channel repeat.
    preprocess = Preprocess(
        (0.5,) * channels, (0.25,) * channels, torch.device("cpu"), size=resize, channels=model_channels(spec)
    )
    images = torch.randint(0, 256, (2, channels, height, width), dtype=torch.uint8)
    x = preprocess(images)

    scores = model.train()(x)
    scores.logsumexp(dim=1).sum().backward()

    assert x.shape == (2, model_channels(spec), *spec.dataset.image_size)
    assert scores.shape == (2, classes)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    assert parameters(model) == spec.model.parameter_count((channels, *spec.dataset.image_size, classes))
    assert list(model_groups(model)) == MODEL_GROUPS[arch]
    assert sum(parameters(group) for group in model_groups(model).values()) == parameters(model)
    if arch in TORCHVISION_ARCHS:  # the head replaced torchvision's last Linear(.., 1000)
        head = HEADS[arch](model)
        kinds = [nn.Linear, nn.LeakyReLU, nn.Dropout, nn.Linear] if "head" in model_spec else [nn.Linear]
        assert [type(layer) for layer in (head if isinstance(head, nn.Sequential) else [head])] == kinds


def test_torchvision_heads_replace_the_last_linear_layer() -> None:
    resnet = build_model(spec_for("cifar10", {"arch": "resnet18"}))
    mlp_head = build_model(
        spec_for("cifar100", {"arch": "resnet18", "head": {"kind": "mlp", "hidden": 64, "dropout": 0.3}})
    )

    assert isinstance(resnet.fc, nn.Linear) and (resnet.fc.in_features, resnet.fc.out_features) == (512, 10)
    assert [type(layer) for layer in mlp_head.fc] == [nn.Linear, nn.LeakyReLU, nn.Dropout, nn.Linear]
    assert (mlp_head.fc[0].in_features, mlp_head.fc[0].out_features, mlp_head.fc[2].p) == (512, 64, 0.3)
    assert (mlp_head.fc[3].in_features, mlp_head.fc[3].out_features) == (64, 100)


def test_the_rest_of_alexnets_classifier_is_torchvisions() -> None:
    model = build_model(spec_for("cifar10", {"arch": "alexnet", "head": {"kind": "mlp", "hidden": 32}}))

    head = model.classifier[6]
    assert (head[0].in_features, head[3].out_features) == (4096, 10)
    # The rest is torchvision's: two more Linear(.., 4096) layers with ReLU and Dropout between them.
    assert [layer.out_features for layer in model.classifier[:6] if isinstance(layer, nn.Linear)] == [4096, 4096]


# The feature map before AlexNet's adaptive pool: at 32 px without the first pool 7 -> 7 -> 3 -> 1;
# at 48 px 11 -> 11 -> 5 -> 2; at 64 px with it 15 -> 7 -> 3 -> 1.
@pytest.mark.parametrize(
    ("resize", "first_pool", "final_size"), [(None, nn.Identity, 1), (48, nn.Identity, 2), (64, nn.MaxPool2d, 1)]
)
def test_alexnet_drops_its_first_max_pool_under_64_pixels(
    resize: int | None, first_pool: type, final_size: int
) -> None:
    spec = spec_for("cifar10", {"arch": "alexnet"}, resize)
    model = build_model(spec).eval()

    assert type(model.features[2]) is first_pool
    size = spec.dataset.image_size[0]
    assert model.features(torch.zeros(1, 3, size, size)).shape[-2:] == (final_size, final_size)


def test_unadapted_alexnet_shrinks_32_pixels_to_nothing() -> None:
    """Why the adaptation exists: torchvision's AlexNet as it is cannot take CIFAR's 32x32 images."""
    import torchvision

    with pytest.raises(RuntimeError, match="Output size is too small"):
        torchvision.models.alexnet().features(torch.zeros(1, 3, 32, 32))
