"""Model builders: turn the spec's `model` into an nn.Module whose shapes match what spec.py computed.

spec.py sizes the models without torch (`feature_size`, `parameter_count`) so the API can refuse a
spec that would not build; the builders here follow the same rules, and tests hold the two to each
other. Every model's top-level children that hold parameters are exactly spec.MODEL_GROUPS[arch],
in order: those are the names fine-tuning trains or freezes (worker/finetune.py).

- `mlp`: `hidden` (flatten, then Linear -> [BatchNorm1d] -> ReLU -> [Dropout] per hidden width),
  `classifier` (the Linear to the classes).
- `cnn`: `features` (Conv2d -> ReLU per conv, 'same' padding = dilation * (k - 1) // 2, then a 2x2
  max/avg pool; with pool="stride" the last conv has stride 2 and there is no pool layer), then
  `classifier` (flatten, Linear -> ReLU per hidden width, Linear to the classes).
- `custom_cnn`: `blocks` (per block: conv3x3 -> BN -> ReLU, conv3x3 -> BN -> ReLU, 2x2 max-pool,
  dropout), then `classifier` like the cnn's. Convs keep their bias, as spec.py counts it.
- `custom`: a class of the worker's own (TRAINBOARD_MODELS), built by worker/custom_models.py; its groups
  are its own top-level children.
- `resnet18`, `vgg16`, `alexnet`: torchvision's models, adapted to the dataset:
  - the last linear layer (`fc` for ResNet, `classifier[6]` for VGG and AlexNet) is replaced by the
    spec's head: one Linear to the classes, or Linear -> LeakyReLU -> Dropout -> Linear;
  - `pretrained`: torchvision's ImageNet weights are loaded before the head is replaced (see
    worker/weights.py for where the file comes from when there is no network);
  - AlexNet's first max-pool (`features[2]`) becomes an Identity for inputs under 64 px, as the study
    did: its stride-4 11x11 conv and three 3x3/2 max-pools shrink 32x32 to 7, 3, 1 and then to
    nothing (an error); without the first pool the maps go 7, 7, 3, 1. The pool has no weights, so
    pretrained weights load unchanged;
  - they take 3 channels: 1-channel datasets are repeated to 3 on the device before the model
    (worker/preprocess.py), so the pretrained first conv keeps its RGB filters. Parameter counts
    are therefore the same for every dataset.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping

import torchvision
from torch import nn

from trainboard.spec import CNNSpec, CustomCNNSpec, CustomModelSpec, HeadSpec, MLPSpec, RunSpec, TorchvisionSpec
from worker.custom_models import build_custom
from worker.weights import pretrained_state_dict

# AlexNet keeps its first max-pool only for inputs at least this large (see the module docstring).
ALEXNET_FIRST_POOL_MIN_SIZE = 64
# The channels torchvision's models (and their ImageNet weights) expect.
TORCHVISION_CHANNELS = 3


def build_model(spec: RunSpec, offered: Mapping[str, str] | None = None) -> nn.Module:
    """A model for `spec`: freshly initialised (seed torch first for reproducible weights), or with
    torchvision's pretrained weights in the body when the spec asks (its head is always fresh).
    `offered`: the custom models this worker offers (TRAINBOARD_MODELS: name -> module:Class;
    worker/custom_models.py)."""
    channels, height, width = spec.input_shape
    model = spec.model
    if isinstance(model, CustomModelSpec):
        return build_custom(model, (channels, height, width), spec.num_classes, offered or {})
    if isinstance(model, MLPSpec):
        return build_mlp(model, channels * height * width, spec.num_classes)
    if isinstance(model, CNNSpec):
        return build_cnn(model, (channels, height, width), spec.num_classes)
    if isinstance(model, CustomCNNSpec):
        return build_custom_cnn(model, (channels, height, width), spec.num_classes)
    return build_torchvision(model, (height, width), spec.num_classes)


def model_channels(spec: RunSpec) -> int:
    """The channels the model takes: torchvision's models want RGB whatever the dataset has."""
    if isinstance(spec.model, TorchvisionSpec):
        return TORCHVISION_CHANNELS
    return spec.input_shape[0]


def build_mlp(mlp: MLPSpec, inputs: int, classes: int) -> nn.Sequential:
    hidden: list[nn.Module] = [nn.Flatten()]
    for width in mlp.hidden:
        hidden.append(nn.Linear(inputs, width))
        if mlp.batch_norm:
            hidden.append(nn.BatchNorm1d(width))
        hidden.append(nn.ReLU())
        if mlp.dropout > 0:
            hidden.append(nn.Dropout(mlp.dropout))
        inputs = width
    return nn.Sequential(OrderedDict(hidden=nn.Sequential(*hidden), classifier=nn.Linear(inputs, classes)))


def build_cnn(cnn: CNNSpec, input_shape: tuple[int, int, int], classes: int) -> nn.Sequential:
    channels, height, width = input_shape
    features: list[nn.Module] = []
    in_channels = channels
    last = len(cnn.channels) - 1
    for i, (out_channels, kernel) in enumerate(zip(cnn.channels, cnn.kernel_sizes, strict=True)):
        stride = 2 if cnn.pool == "stride" and i == last else 1
        padding = cnn.dilation * (kernel - 1) // 2  # keeps the size for odd kernels; even ones lose 1
        features += [
            nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=padding, dilation=cnn.dilation),
            nn.ReLU(),
        ]
        in_channels = out_channels
    if cnn.pool == "max":
        features.append(nn.MaxPool2d(2))
    elif cnn.pool == "avg":
        features.append(nn.AvgPool2d(2))
    feature_height, feature_width = cnn.feature_size(height, width)
    classifier = _classifier(in_channels * feature_height * feature_width, cnn.hidden, classes)
    return nn.Sequential(OrderedDict(features=nn.Sequential(*features), classifier=classifier))


def build_custom_cnn(cnn: CustomCNNSpec, input_shape: tuple[int, int, int], classes: int) -> nn.Sequential:
    channels, height, width = input_shape
    blocks: list[nn.Module] = []
    in_channels = channels
    for out_channels in cnn.blocks:
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, out_channels, 3, padding=1),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
            nn.Conv2d(out_channels, out_channels, 3, padding=1),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
            nn.MaxPool2d(2),
        ]
        if cnn.dropout > 0:
            layers.append(nn.Dropout(cnn.dropout))
        blocks.append(nn.Sequential(*layers))
        in_channels = out_channels
    feature_height, feature_width = cnn.feature_size(height, width)
    classifier = _classifier(in_channels * feature_height * feature_width, cnn.hidden, classes)
    return nn.Sequential(OrderedDict(blocks=nn.Sequential(*blocks), classifier=classifier))


def build_torchvision(spec: TorchvisionSpec, image_size: tuple[int, int], classes: int) -> nn.Module:
    # The weights file is resolved first: a missing one fails the run before VGG16's 138M parameters
    # are even initialised.
    state = pretrained_state_dict(spec.arch) if spec.pretrained else None
    model: nn.Module = getattr(torchvision.models, spec.arch)(weights=None)  # ImageNet's 1000 classes
    if state is not None:
        # What `weights=` does, minus its download (worker/weights.py does that, with an offline error).
        model.load_state_dict(state)
    if spec.arch == "resnet18":
        last = model.get_submodule("fc")
        assert isinstance(last, nn.Linear)
        model.fc = build_head(spec.head, last.in_features, classes)
    else:  # vgg16, alexnet: classifier = 3 Linear layers with ReLU and Dropout between; [6] is Linear(4096, 1000)
        classifier = model.get_submodule("classifier")
        assert isinstance(classifier, nn.Sequential) and isinstance(classifier[6], nn.Linear)
        classifier[6] = build_head(spec.head, classifier[6].in_features, classes)
    if spec.arch == "alexnet" and min(image_size) < ALEXNET_FIRST_POOL_MIN_SIZE:
        features = model.get_submodule("features")
        assert isinstance(features, nn.Sequential)
        features[2] = nn.Identity()
    return model


def build_head(head: HeadSpec, inputs: int, classes: int) -> nn.Module:
    if head.kind == "linear":
        return nn.Linear(inputs, classes)
    return nn.Sequential(
        nn.Linear(inputs, head.hidden), nn.LeakyReLU(), nn.Dropout(head.dropout), nn.Linear(head.hidden, classes)
    )


def _classifier(inputs: int, hidden: list[int], classes: int) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Flatten()]
    for width in hidden:
        layers += [nn.Linear(inputs, width), nn.ReLU()]
        inputs = width
    layers.append(nn.Linear(inputs, classes))
    return nn.Sequential(*layers)
