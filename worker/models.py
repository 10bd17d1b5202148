"""Model builders: turn the spec's `model` into an nn.Module whose shapes match what spec.py computed.

spec.py sizes the models without torch (`CNNSpec.feature_size`, `parameter_count`) so the API can
refuse a spec that would not build; the builders here follow the same rules, and tests hold the
two to each other.

- `mlp`: flatten, then Linear -> [BatchNorm1d] -> ReLU per hidden width, then Linear to the classes.
- `cnn`: `features` (Conv2d -> ReLU per conv, 'same' padding = dilation * (k - 1) // 2, then a 2x2
  max/avg pool; with pool="stride" the last conv has stride 2 and there is no pool layer), then
  `classifier` (flatten, Linear -> ReLU per hidden width, Linear to the classes).
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from trainboard.spec import CNNSpec, MLPSpec, RunSpec


def build_model(spec: RunSpec) -> nn.Module:
    """A freshly initialised model for `spec` (seed torch before calling for reproducible weights)."""
    channels, height, width = spec.input_shape
    if isinstance(spec.model, MLPSpec):
        return build_mlp(spec.model, channels * height * width, spec.num_classes)
    return build_cnn(spec.model, (channels, height, width), spec.num_classes)


def build_mlp(mlp: MLPSpec, inputs: int, classes: int) -> nn.Sequential:
    return nn.Sequential(nn.Flatten(), *_linear_stack(inputs, mlp.hidden, classes, batch_norm=mlp.batch_norm))


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
    flat = in_channels * feature_height * feature_width
    classifier = [nn.Flatten(), *_linear_stack(flat, cnn.hidden, classes, batch_norm=False)]
    return nn.Sequential(OrderedDict(features=nn.Sequential(*features), classifier=nn.Sequential(*classifier)))


def _linear_stack(inputs: int, hidden: list[int], classes: int, *, batch_norm: bool) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for width in hidden:
        layers.append(nn.Linear(inputs, width))
        if batch_norm:
            layers.append(nn.BatchNorm1d(width))
        layers.append(nn.ReLU())
        inputs = width
    layers.append(nn.Linear(inputs, classes))
    return layers
