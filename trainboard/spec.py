"""The run spec: the one contract between the form, the REST API, the database and the worker.

Pure pydantic and no torch, so the backend can validate a spec without importing the engine and
the worker can read one without importing the web stack. Every number is bounded so that no spec
can exhaust the machine; a spec that would not build (a conv stack that shrinks the image to
nothing, a model over the parameter budget) is refused here with the field path, not in the worker.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

DatasetName = Literal["digits", "mnist", "fashion_mnist", "cifar10"]

# (channels, height, width, classes) of each dataset as the engine sees it.
DATASET_SHAPES: dict[str, tuple[int, int, int, int]] = {
    "digits": (1, 8, 8, 10),
    "mnist": (1, 28, 28, 10),
    "fashion_mnist": (1, 28, 28, 10),
    "cifar10": (3, 32, 32, 10),
}

CLASS_NAMES: dict[str, list[str]] = {
    "digits": [str(i) for i in range(10)],
    "mnist": [str(i) for i in range(10)],
    "fashion_mnist": [
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ],
    "cifar10": [
        "airplane", "automobile", "bird", "cat", "deer",
        "dog", "frog", "horse", "ship", "truck",
    ],
}

# A model over this many parameters is refused: ~400 MB of float32 weights plus optimizer state.
MAX_PARAMETERS = 100_000_000

Width = Annotated[int, Field(ge=1, le=8192)]
Channels = Annotated[int, Field(ge=1, le=1024)]
KernelSize = Annotated[int, Field(ge=1, le=11)]


class _Strict(BaseModel):
    """Unknown fields are an error: a typo in a spec must not silently fall back to a default."""

    model_config = ConfigDict(extra="forbid")


class DatasetSpec(_Strict):
    name: DatasetName
    normalize: Literal["none", "standard"] = Field(
        "standard", description="`standard`: the dataset's usual published mean/std; `none`: pixels in [0, 1]."
    )
    train_limit: int | None = Field(
        None, ge=1, le=10_000_000, description="Use only the first N training images (deterministic subset)."
    )
    test_limit: int | None = Field(
        None, ge=1, le=10_000_000, description="Use only the first N test images (deterministic subset)."
    )


class MLPSpec(_Strict):
    arch: Literal["mlp"]
    hidden: list[Width] = Field(default_factory=lambda: [128, 64], min_length=1, max_length=16)
    batch_norm: bool = Field(False, description="BatchNorm1d after each hidden linear layer.")

    def parameter_count(self, shape: tuple[int, int, int, int]) -> int:
        c, h, w, classes = shape
        batch_norm = 2 * sum(self.hidden) if self.batch_norm else 0  # a weight and a bias per hidden unit
        return _linear_parameters([c * h * w, *self.hidden, classes]) + batch_norm


class CNNSpec(_Strict):
    arch: Literal["cnn"]
    channels: list[Channels] = Field(default_factory=lambda: [32, 64], min_length=1, max_length=8)
    kernel_sizes: list[KernelSize] = Field(default_factory=lambda: [3, 3], min_length=1, max_length=8)
    pool: Literal["max", "avg", "stride"] = Field(
        "max", description="Between the conv and linear parts: 2x2 max/avg pooling, or stride 2 in the last conv."
    )
    dilation: int = Field(1, ge=1, le=4)
    hidden: list[Width] = Field(default_factory=lambda: [128, 64], min_length=0, max_length=16)

    @model_validator(mode="after")
    def _one_kernel_per_conv(self) -> CNNSpec:
        if len(self.kernel_sizes) != len(self.channels):
            raise ValueError(
                f"kernel_sizes has {len(self.kernel_sizes)} entries but channels has {len(self.channels)}: "
                "give one kernel size per conv layer"
            )
        return self

    def feature_size(self, height: int, width: int) -> tuple[int, int]:
        """Spatial size after the conv stack and the pooling step (convs are 'same'-padded, no bias on size)."""
        for i, k in enumerate(self.kernel_sizes):
            stride = 2 if (self.pool == "stride" and i == len(self.kernel_sizes) - 1) else 1
            padding = self.dilation * (k - 1) // 2
            span = self.dilation * (k - 1) + 1
            height = (height + 2 * padding - span) // stride + 1
            width = (width + 2 * padding - span) // stride + 1
        if self.pool in ("max", "avg"):
            height, width = height // 2, width // 2
        return height, width

    def parameter_count(self, shape: tuple[int, int, int, int]) -> int:
        c, h, w, classes = shape
        total, in_ch = 0, c
        for out_ch, k in zip(self.channels, self.kernel_sizes):
            total += in_ch * out_ch * k * k + out_ch
            in_ch = out_ch
        fh, fw = self.feature_size(h, w)
        return total + _linear_parameters([in_ch * max(fh, 0) * max(fw, 0), *self.hidden, classes])


ModelSpec = Annotated[Union[MLPSpec, CNNSpec], Field(discriminator="arch")]


class OptimizerSpec(_Strict):
    name: Literal["sgd", "adam"] = "sgd"
    lr: float = Field(0.01, gt=0, le=10)
    momentum: float = Field(0.0, ge=0, lt=1, description="SGD only.")
    weight_decay: float = Field(0.0, ge=0, le=1)


class RunSpec(_Strict):
    """One training run. Every field but `dataset.name` and `model.arch` has a default."""

    name: str = Field("", max_length=120, description="Empty: derived from the model and dataset.")
    dataset: DatasetSpec
    model: ModelSpec
    optimizer: OptimizerSpec = Field(default_factory=OptimizerSpec)
    epochs: int = Field(10, ge=1, le=1000)
    batch_size: int = Field(64, ge=1, le=8192)
    seed: int = Field(0, ge=0, le=2**31 - 1)
    device: str = Field(
        "auto", pattern=r"^(auto|cpu|cuda(:\d{1,2})?)$", description="auto: the first GPU if there is one, else CPU."
    )

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "basic-cnn",
                    "dataset": {"name": "digits", "normalize": "standard"},
                    "model": {"arch": "cnn", "channels": [32, 64], "kernel_sizes": [3, 3], "pool": "max",
                              "hidden": [128, 64]},
                    "optimizer": {"name": "sgd", "lr": 0.01, "momentum": 0.0, "weight_decay": 0.0},
                    "epochs": 10, "batch_size": 64, "seed": 0, "device": "auto",
                }
            ]
        },
    )

    @model_validator(mode="after")
    def _fits(self) -> RunSpec:
        shape = DATASET_SHAPES[self.dataset.name]
        if isinstance(self.model, CNNSpec):
            fh, fw = self.model.feature_size(shape[1], shape[2])
            if fh < 1 or fw < 1:
                raise ValueError(
                    f"model: the conv stack reduces the {shape[1]}x{shape[2]} images of {self.dataset.name} "
                    "to nothing; use smaller kernel_sizes or dilation"
                )
        if isinstance(self.model, MLPSpec) and self.model.batch_norm and self.batch_size < 2:
            raise ValueError("batch_size: batch norm needs at least 2 images per batch")
        params = self.model.parameter_count(shape)
        if params > MAX_PARAMETERS:
            raise ValueError(
                f"model: {params:,} parameters is over the limit of {MAX_PARAMETERS:,}; use fewer or narrower layers"
            )
        if not self.name:
            self.name = f"{self.model.arch}-{self.dataset.name}"
        return self

    @property
    def input_shape(self) -> tuple[int, int, int]:
        c, h, w, _ = DATASET_SHAPES[self.dataset.name]
        return c, h, w

    @property
    def num_classes(self) -> int:
        return DATASET_SHAPES[self.dataset.name][3]

    @property
    def class_names(self) -> list[str]:
        return CLASS_NAMES[self.dataset.name]


def _linear_parameters(sizes: list[int]) -> int:
    return sum(a * b + b for a, b in zip(sizes, sizes[1:]))


_UNION_TAGS = {("model",): {"mlp", "cnn"}}
_NAMED_FIELD = re.compile(r"^(?:Value error, )?([a-z_]+(?:\.[a-z_]+)*): ")


def error_field(loc: tuple[int | str, ...] | list[int | str], message: str) -> str:
    """The dotted field a validation error is about. A check across fields (raised by a model validator,
    so pydantic locates it at the whole spec) names its field at the start of its message."""
    path = field_path(loc)
    if path == "" and (named := _NAMED_FIELD.match(message)):
        return named.group(1)
    return path


def field_path(loc: tuple[int | str, ...] | list[int | str]) -> str:
    """A validation error's location as the dotted spec path a user typed ('model.hidden.0').

    Drops the request part ('body') and the tag pydantic inserts for a discriminated union
    ('model.cnn.channels' -> 'model.channels').
    """
    parts: list[str] = []
    for item in loc:
        if not parts and item in ("body", "form"):
            continue
        if tuple(parts) in _UNION_TAGS and item in _UNION_TAGS[tuple(parts)]:
            continue
        parts.append(str(item))
    return ".".join(parts)
