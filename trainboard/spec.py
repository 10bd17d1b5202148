"""The run spec: the one contract between the form, the REST API, the database and the worker.

Pure pydantic and no torch, so the backend can validate a spec without importing the engine and
the worker can read one without importing the web stack. Every number is bounded so that no spec
can exhaust the machine; a spec that would not build (a conv stack that shrinks the image to
nothing, a model over the parameter budget, a fine-tuning group the model does not have) is
refused here with the field path, not in the worker.
"""

from __future__ import annotations

import itertools
import json
import re
import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, JsonValue, Tag, model_validator

from trainboard.text import UserText

# The datasets trainboard reads from their published files. Any other well-formed name may be a dataset
# registered with `trainboard dataset add` (an image folder decoded into the data directory): the spec cannot
# know those, so the backend checks the name against its `dataset` table when it queues a run
# (backend/services/datasets.py) and the worker finds the decoded arrays by it (worker/folders.py).
BUILTIN_DATASETS: tuple[str, ...] = ("digits", "mnist", "fashion_mnist", "cifar10", "cifar100")
DATASET_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,39}$"
DatasetName = Annotated[
    str,
    Field(
        pattern=DATASET_NAME_PATTERN,
        max_length=40,
        description="A built-in dataset (digits, mnist, fashion_mnist, cifar10, cifar100) or one registered with "
        "`trainboard dataset add` (GET /api/datasets lists them).",
        examples=["digits"],
    ),
]

# (channels, height, width, classes) of each dataset as stored (before any resize).
DATASET_SHAPES: dict[str, tuple[int, int, int, int]] = {
    "digits": (1, 8, 8, 10),
    "mnist": (1, 28, 28, 10),
    "fashion_mnist": (1, 28, 28, 10),
    "cifar10": (3, 32, 32, 10),
    "cifar100": (3, 32, 32, 100),
}

# CIFAR-100's fine labels, in label order (as in the dataset's `meta` file).
_CIFAR100_FINE_LABELS = (
    "apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly camel "
    "can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup dinosaur "
    "dolphin elephant flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower leopard lion "
    "lizard lobster man maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid otter palm_tree "
    "pear pickup_truck pine_tree plain plate poppy porcupine possum rabbit raccoon ray road rocket rose sea "
    "seal shark shrew skunk skyscraper snail snake spider squirrel streetcar sunflower sweet_pepper table "
    "tank telephone television tiger tractor train trout tulip turtle wardrobe whale willow_tree wolf woman "
    "worm"
)

CLASS_NAMES: dict[str, list[str]] = {
    "digits": [str(i) for i in range(10)],
    "mnist": [str(i) for i in range(10)],
    "fashion_mnist": [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ],
    "cifar10": [
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    ],
    "cifar100": _CIFAR100_FINE_LABELS.split(),
}


@dataclass(frozen=True)
class RegisteredDataset:
    """What the spec needs to know of a registered dataset: its stored shape, class names and size."""

    channels: int
    size: int  # images are size x size
    classes: tuple[str, ...]
    images: int  # train + test


# The registered datasets this process knows of. The backend fills it from its `dataset` table before it checks
# or plans runs; a worker adds the one it loads from its data directory. Replaced whole, never edited in place.
_REGISTERED: dict[str, RegisteredDataset] = {}


def set_registered(datasets: dict[str, RegisteredDataset]) -> None:
    """Replace the registered datasets this process knows of (built-in names are never replaced)."""
    global _REGISTERED
    _REGISTERED = {name: info for name, info in datasets.items() if name not in BUILTIN_DATASETS}


def add_registered(name: str, info: RegisteredDataset) -> None:
    set_registered({**_REGISTERED, name: info})


def registered(name: str) -> RegisteredDataset | None:
    return _REGISTERED.get(name)


def dataset_shape(name: str) -> tuple[int, int, int, int] | None:
    """(channels, height, width, classes) of a built-in or known registered dataset; None for any other name."""
    if name in DATASET_SHAPES:
        return DATASET_SHAPES[name]
    info = _REGISTERED.get(name)
    return None if info is None else (info.channels, info.size, info.size, len(info.classes))


def dataset_classes(name: str) -> list[str]:
    """The class names of a built-in or known registered dataset, in label order; [] for any other name."""
    if name in CLASS_NAMES:
        return CLASS_NAMES[name]
    info = _REGISTERED.get(name)
    return [] if info is None else list(info.classes)


def _shape(name: str) -> tuple[int, int, int, int]:
    shape = dataset_shape(name)
    if shape is None:
        raise LookupError(f"dataset {name!r} is neither built in nor a registered dataset this process knows of")
    return shape


# A model over this many parameters is refused. VGG16 (the largest architecture offered, ~134M with a
# 10-class head) must fit: ~540 MB of float32 weights, plus gradients and optimizer state.
MAX_PARAMETERS = 200_000_000

# The parameter groups fine-tuning can name, per architecture: the model's own top-level module names.
# (The engine's builders name theirs the same way; tests/worker checks each list against the real model.)
MODEL_GROUPS: dict[str, list[str]] = {
    "mlp": ["hidden", "classifier"],
    "cnn": ["features", "classifier"],
    "custom_cnn": ["blocks", "classifier"],
    "resnet18": ["conv1", "bn1", "layer1", "layer2", "layer3", "layer4", "fc"],
    "vgg16": ["features", "classifier"],
    "alexnet": ["features", "classifier"],
}

# torchvision models: parameters without the last linear layer, and that layer's input width.
_TORCHVISION_BODY: dict[str, tuple[int, int]] = {
    "resnet18": (11_176_512, 512),
    "vgg16": (134_260_544, 4096),
    "alexnet": (57_003_840, 4096),
}


# The architectures whose parameter groups are worth choosing between, which the new-run form offers
# fine-tuning for: the torchvision ones (ImageNet weights to keep frozen or to train gently). The small models
# train whole; the spec still accepts a `finetune` for any architecture.
FINETUNE_ARCHS: tuple[str, ...] = tuple(_TORCHVISION_BODY)


def refuse_bool(value: object) -> object:
    """JSON's true and false are not numbers (pydantic would take them as 1 and 0): a typo caught, not 1 epoch."""
    if isinstance(value, bool):
        raise ValueError("must be a number, not true or false")
    return value


Int = Annotated[int, BeforeValidator(refuse_bool)]
Float = Annotated[float, BeforeValidator(refuse_bool)]
Width = Annotated[Int, Field(ge=1, le=8192)]
Channels = Annotated[Int, Field(ge=1, le=1024)]
KernelSize = Annotated[Int, Field(ge=1, le=11)]
Rate = Annotated[Float, Field(ge=0, lt=1)]
LearningRate = Annotated[Float, Field(gt=0, le=10)]


class _Strict(BaseModel):
    """Unknown fields are an error: a typo in a spec must not silently fall back to a default."""

    model_config = ConfigDict(extra="forbid")


# -- data ------------------------------------------------------------------------------------------


NormalizeMode = Literal["none", "standard", "computed"]
# Bounds of an explicit normalisation, per channel, of pixels in [0, 1]: a mean far outside [0, 1] or a tiny std
# is a typo (255-scale values, a variance for a std), and a std under MIN_STD would blow inputs up past anything
# a model trains on (x 1000 already).
MAX_NORMALIZE_MEAN = 10.0
MIN_NORMALIZE_STD = 0.001
MAX_NORMALIZE_STD = 10.0
MAX_CHANNELS = 4  # the most channels any dataset has (RunInfo.mean/std hold as many)


class NormalizeValues(_Strict):
    """An explicit normalisation: (x / 255 - mean) / std per channel, one value per channel of the dataset."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    mean: list[Annotated[Float, Field(ge=-MAX_NORMALIZE_MEAN, le=MAX_NORMALIZE_MEAN)]] = Field(
        min_length=1,
        max_length=MAX_CHANNELS,
        description="Per channel, of pixels in [0, 1] (e.g. 0.4914, 0.4822, 0.4465).",
    )
    std: list[Annotated[Float, Field(ge=MIN_NORMALIZE_STD, le=MAX_NORMALIZE_STD)]] = Field(
        min_length=1, max_length=MAX_CHANNELS, description="Per channel, more than 0 (at least 0.001)."
    )

    def __str__(self) -> str:
        """As the run page and a study's key settings show it (run.js showInfo writes the same)."""
        return f"explicit: mean {', '.join(map(str, self.mean))}; std {', '.join(map(str, self.std))}"


def _normalize_kind(value: object) -> str:
    return "values" if isinstance(value, dict | NormalizeValues) else "mode"


Normalize = Annotated[
    Annotated[NormalizeMode, Tag("mode")] | Annotated[NormalizeValues, Tag("values")],
    Discriminator(_normalize_kind),
]


class DatasetSpec(_Strict):
    name: DatasetName
    normalize: Normalize = Field(
        "standard",
        description="`standard`: the dataset's usual published mean/std; `computed`: mean/std of the training "
        "set (computed once, cached in the data directory); `none`: pixels in [0, 1]; "
        '`{"mean": [...], "std": [...]}`: exactly these, one value per channel.',
    )
    resize: Int | None = Field(
        None, ge=8, le=512, description="Resize train and test images to resize x resize, batched on the device."
    )
    train_limit: Int | None = Field(
        None, ge=1, le=10_000_000, description="Use only the first N training images (deterministic subset)."
    )
    test_limit: Int | None = Field(
        None, ge=1, le=10_000_000, description="Use only the first N test images (deterministic subset)."
    )

    @model_validator(mode="after")
    def _normalize_per_channel(self) -> DatasetSpec:
        shape = dataset_shape(self.name)  # None: a registered dataset this process does not know (yet)
        if isinstance(self.normalize, NormalizeValues) and shape is not None:
            channels = shape[0]
            for field in ("mean", "std"):
                given = len(getattr(self.normalize, field))
                if given != channels:
                    raise ValueError(
                        f"normalize.{field}: {self.name} has {channels} channel{'s' if channels > 1 else ''}: "
                        f"give {channels} value{'s' if channels > 1 else ''}, one per channel, not {given}"
                    )
        return self

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) the model sees: after the resize, if any."""
        _, h, w, _ = _shape(self.name)
        return (self.resize, self.resize) if self.resize else (h, w)


class RandomCrop(_Strict):
    size: Int | None = Field(None, ge=4, le=512, description="Crop size; empty: the image size (after resize).")
    padding: Int = Field(4, ge=0, le=64, description="Zero padding on each side before cropping.")


class HorizontalFlip(_Strict):
    p: Float = Field(0.5, ge=0, le=1, description="Probability of flipping each image.")


class ColorJitter(_Strict):
    brightness: Float = Field(0.2, ge=0, le=1)
    contrast: Float = Field(0.2, ge=0, le=1)
    saturation: Float = Field(0.2, ge=0, le=1)
    hue: Float = Field(0.0, ge=0, le=0.5)


class Rotation(_Strict):
    degrees: Float = Field(15.0, ge=0, le=180, description="Rotate by a uniform angle in [-degrees, degrees].")


class AugmentSpec(_Strict):
    """Applied to training batches on the device, in this order, seeded by the run's seed. Test data gets
    only the resize and the normalisation."""

    random_crop: RandomCrop | None = None
    hflip: HorizontalFlip | None = None
    color_jitter: ColorJitter | None = None
    rotation: Rotation | None = None


# -- models ----------------------------------------------------------------------------------------


class MLPSpec(_Strict):
    arch: Literal["mlp"]
    hidden: list[Width] = Field(default_factory=lambda: [128, 64], min_length=1, max_length=16)
    batch_norm: bool = Field(False, description="BatchNorm1d after each hidden linear layer.")
    dropout: Float = Field(0.0, ge=0, lt=1, description="Dropout after each hidden layer's activation.")

    def feature_size(self, height: int, width: int) -> tuple[int, int]:
        return height, width

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
    dilation: Int = Field(1, ge=1, le=4)
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
        """Spatial size after the conv stack and the pooling step (convs are 'same'-padded)."""
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
        for out_ch, k in zip(self.channels, self.kernel_sizes, strict=True):
            total += in_ch * out_ch * k * k + out_ch
            in_ch = out_ch
        fh, fw = self.feature_size(h, w)
        return total + _linear_parameters([in_ch * max(fh, 0) * max(fw, 0), *self.hidden, classes])


class CustomCNNSpec(_Strict):
    """Blocks of (conv 3x3 + BN + ReLU, conv 3x3 + BN + ReLU, 2x2 max-pool, dropout), then linear layers."""

    arch: Literal["custom_cnn"]
    blocks: list[Channels] = Field(
        default_factory=lambda: [32, 64],
        min_length=1,
        max_length=6,
        description="Width (channels) of each block's two convs.",
    )
    dropout: Float = Field(0.25, ge=0, lt=1, description="Dropout at the end of each block.")
    hidden: list[Width] = Field(default_factory=lambda: [128], min_length=0, max_length=8)

    def feature_size(self, height: int, width: int) -> tuple[int, int]:
        for _ in self.blocks:
            height, width = height // 2, width // 2
        return height, width

    def parameter_count(self, shape: tuple[int, int, int, int]) -> int:
        c, h, w, classes = shape
        total, in_ch = 0, c
        for out_ch in self.blocks:
            total += (in_ch * out_ch * 9 + out_ch) + (out_ch * out_ch * 9 + out_ch) + 4 * out_ch  # 2 convs, 2 BNs
            in_ch = out_ch
        fh, fw = self.feature_size(h, w)
        return total + _linear_parameters([in_ch * max(fh, 0) * max(fw, 0), *self.hidden, classes])


class HeadSpec(_Strict):
    """What replaces a torchvision model's last linear layer."""

    kind: Literal["linear", "mlp"] = Field(
        "linear", description="`linear`: one layer of the right size; `mlp`: Linear -> LeakyReLU -> Dropout -> Linear."
    )
    hidden: Int = Field(256, ge=1, le=8192, description="mlp only: the hidden width.")
    dropout: Float = Field(0.5, ge=0, lt=1, description="mlp only.")

    def parameter_count(self, inputs: int, classes: int) -> int:
        if self.kind == "linear":
            return _linear_parameters([inputs, classes])
        return _linear_parameters([inputs, self.hidden, classes])


class TorchvisionSpec(_Strict):
    """torchvision's ResNet18, VGG16 or AlexNet, adapted to the dataset (see worker/models.py)."""

    arch: Literal["resnet18", "vgg16", "alexnet"]
    pretrained: bool = Field(False, description="Start from torchvision's ImageNet weights (`weights=`).")
    head: HeadSpec = Field(default_factory=HeadSpec)

    def feature_size(self, height: int, width: int) -> tuple[int, int]:
        return height, width  # adaptive pooling: any input of at least 32x32 works

    def parameter_count(self, shape: tuple[int, int, int, int]) -> int:
        body, inputs = _TORCHVISION_BODY[self.arch]
        return body + self.head.parameter_count(inputs, shape[3])


# A model of the worker's own (TRAINBOARD_MODELS): its class name, and the JSON values its constructor gets.
MODEL_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
GROUP_NAME_PATTERN = MODEL_NAME_PATTERN  # a top-level child's attribute name (named_children)
MAX_KWARGS = 32
MAX_KWARGS_DEPTH = 4  # {"a": [1, 2]} is depth 2
MAX_KWARGS_CHARS = 4096  # as compact JSON
# What the worker passes itself (when the constructor takes them): a spec may not set them through kwargs.
RESERVED_KWARGS = ("num_classes", "in_channels", "image_size")


def _json_depth(value: object, depth: int = 1) -> int:
    if isinstance(value, dict):
        return max((_json_depth(v, depth + 1) for v in value.values()), default=depth)
    if isinstance(value, list):
        return max((_json_depth(v, depth + 1) for v in value), default=depth)
    if value is None or isinstance(value, str | int | float | bool):
        return depth
    raise ValueError(f"must be JSON values (strings, numbers, true/false, null, lists, objects), not {type(value)}")


class CustomModelSpec(_Strict):
    """A model class of the worker's own, named in its TRAINBOARD_MODELS (module.path:ClassName) and built as
    `cls(num_classes=..., in_channels=..., image_size=(h, w), **kwargs)` (each of the three only if the
    constructor takes it). Its parameter groups are its top-level children (named_children); the worker measures
    its memory on one batch before training, as nothing here knows its size."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    arch: Literal["custom"]
    name: str = Field(pattern=MODEL_NAME_PATTERN, description="The class name, as a worker's TRAINBOARD_MODELS has it.")
    kwargs: dict[Annotated[str, Field(pattern=MODEL_NAME_PATTERN)], JsonValue] = Field(
        default_factory=dict,
        max_length=MAX_KWARGS,
        description="Keyword arguments for the constructor: JSON values, at most "
        f"{MAX_KWARGS} keys, {MAX_KWARGS_DEPTH} levels deep and {MAX_KWARGS_CHARS} characters as JSON.",
    )

    @model_validator(mode="after")
    def _bounded(self) -> CustomModelSpec:
        reserved = [key for key in self.kwargs if key in RESERVED_KWARGS]
        if reserved:
            raise ValueError(
                f"kwargs: {', '.join(map(repr, reserved))} is passed by the worker (from the dataset); leave it out"
            )
        if _json_depth(self.kwargs) > MAX_KWARGS_DEPTH:
            raise ValueError(f"kwargs: nested more than {MAX_KWARGS_DEPTH} levels deep")
        size = len(json.dumps(self.kwargs, separators=(",", ":"), allow_nan=False))
        if size > MAX_KWARGS_CHARS:
            raise ValueError(f"kwargs: {size} characters as JSON, over the limit of {MAX_KWARGS_CHARS}")
        return self

    def feature_size(self, height: int, width: int) -> tuple[int, int]:
        return height, width  # unknown here: the worker runs one batch through it before training

    def parameter_count(self, shape: tuple[int, int, int, int]) -> int:
        return 0  # unknown here: the worker measures it (and the memory) before training


ModelSpec = Annotated[
    MLPSpec | CNNSpec | CustomCNNSpec | TorchvisionSpec | CustomModelSpec, Field(discriminator="arch")
]
TORCHVISION_ARCHS = ("resnet18", "vgg16", "alexnet")
# torchvision's models downsample by 32; below this the engine refuses to build them.
MIN_TORCHVISION_SIZE = 32


# -- training --------------------------------------------------------------------------------------


class FinetuneSpec(_Strict):
    train: Literal["all"] | list[str] = Field(
        "all",
        description="`all`, or the parameter groups to train (the model's own names, e.g. fc, layer4); "
        "everything else is frozen.",
    )
    lr: dict[str, LearningRate] = Field(
        default_factory=dict,
        max_length=16,
        description='A learning rate per group (e.g. {"fc": 0.01, "layer4": 0.0001}); others use optimizer.lr.',
    )
    frozen_bn_eval: bool = Field(
        False, description="Keep the batch-norm layers of frozen groups in eval mode (their running statistics fixed)."
    )


class OptimizerSpec(_Strict):
    # The defaults are a recipe that trains: SGD, lr 0.01 with momentum 0.9 takes the minimal spec on the
    # 8x8 digits to 97 % (mlp) and 98 % (cnn) in the default 10 epochs (tests/worker/test_defaults.py).
    # Without momentum the same run reached 62 % and 30 %: a first run that looked broken.
    name: Literal["sgd", "adam", "adamw"] = "sgd"
    lr: Float = Field(0.01, gt=0, le=10)
    momentum: Float = Field(0.9, ge=0, lt=1, description="SGD only (Adam and AdamW ignore it); 0 is plain SGD.")
    nesterov: bool = Field(False, description="SGD only; needs momentum > 0.")
    weight_decay: Float = Field(0.0, ge=0, le=1)

    @model_validator(mode="after")
    def _nesterov_needs_momentum(self) -> OptimizerSpec:
        if self.nesterov and (self.name != "sgd" or self.momentum == 0):
            raise ValueError("nesterov: needs the sgd optimizer with momentum > 0")
        return self


class NoSchedule(_Strict):
    name: Literal["none"]


class MultiStepSchedule(_Strict):
    name: Literal["multistep"]
    milestones: list[Annotated[Int, Field(ge=1, le=1000)]] = Field(
        min_length=1, max_length=50, description="Epochs after which lr *= gamma."
    )
    gamma: Float = Field(0.1, gt=0, le=1)

    @model_validator(mode="after")
    def _increasing(self) -> MultiStepSchedule:
        if any(b <= a for a, b in itertools.pairwise(self.milestones)):
            raise ValueError("milestones: must be strictly increasing")
        return self


class CosineSchedule(_Strict):
    name: Literal["cosine"]
    t_max: Int | None = Field(None, ge=1, le=1000, description="Epochs to the minimum; empty: the run's epochs.")
    eta_min: Float = Field(0.0, ge=0, le=10)


class StepSchedule(_Strict):
    name: Literal["step"]
    step_size: Int = Field(10, ge=1, le=1000, description="lr *= gamma every step_size epochs.")
    gamma: Float = Field(0.1, gt=0, le=1)


SchedulerSpec = Annotated[NoSchedule | MultiStepSchedule | CosineSchedule | StepSchedule, Field(discriminator="name")]


class EarlyStoppingSpec(_Strict):
    metric: Literal["test_acc", "test_loss"] = "test_acc"
    patience: Int = Field(3, ge=1, le=1000, description="Epochs without improvement before stopping.")
    min_delta: Float = Field(0.0, ge=0, le=1000, description="The least change that counts as an improvement.")
    restore_best: bool = Field(True, description="End with the best epoch's weights (the last evaluation uses them).")


class CheckpointSpec(_Strict):
    """When the worker saves a training checkpoint (model, optimizer, schedule, early stopping, random
    states) for a lost run to resume from. At the end of an epoch both must hold: the epoch is a multiple
    of `every_epochs`, and `min_seconds` of training have passed since the last one (or the start)."""

    every_epochs: Int = Field(1, ge=1, le=1000, description="Checkpoint every this many epochs (at most).")
    min_seconds: Float = Field(
        300.0,
        ge=0,
        le=86_400,
        description="And at most once per this many seconds of training: a VGG16 checkpoint with Adam is ~1.6 GB, "
        "so short epochs are not slowed by saving and uploading; 0 checkpoints every `every_epochs`.",
    )
    enabled: bool = Field(True, description="False: no checkpoints (a lost run starts over); final weights are kept.")


# -- the run ---------------------------------------------------------------------------------------


class RunSpec(_Strict):
    """One training run. Every field but `dataset.name` and `model.arch` has a default."""

    name: UserText = Field("", max_length=120, description="Empty: derived from the model and dataset.")
    dataset: DatasetSpec
    augment: AugmentSpec = Field(default_factory=AugmentSpec)
    model: ModelSpec
    finetune: FinetuneSpec = Field(default_factory=FinetuneSpec)
    optimizer: OptimizerSpec = Field(default_factory=OptimizerSpec)
    scheduler: SchedulerSpec = Field(default_factory=lambda: NoSchedule(name="none"))
    early_stopping: EarlyStoppingSpec | None = None
    checkpoint: CheckpointSpec = Field(default_factory=CheckpointSpec)
    epochs: Int = Field(10, ge=1, le=1000)
    batch_size: Int = Field(64, ge=1, le=8192)
    seed: Int = Field(0, ge=0, le=2**31 - 1)
    device: str = Field(
        "auto", pattern=r"^(auto|cpu|cuda(:\d{1,2})?)$", description="auto: the first GPU if there is one, else CPU."
    )
    cuda_graphs: bool = Field(
        False,
        description="Capture each training step (forward, backward, optimizer step) as a CUDA graph and replay it "
        "per batch: one launch instead of hundreds where small batches are launch-bound. Off by default until checked "
        "on a GPU (benchmarks/graphs_check.py); on the CPU, or where a capture is not possible, the run trains eagerly "
        "and the worker's log says why.",
    )

    @property
    def wants_gpu(self) -> bool:
        """Whether the run must train on a GPU (device cuda or cuda:N): only a GPU worker may take it. `auto`
        takes a GPU where its worker has one, and any worker may take it."""
        return self.device.startswith("cuda")

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "basic-cnn",
                    "dataset": {"name": "digits", "normalize": "standard"},
                    "model": {
                        "arch": "cnn",
                        "channels": [32, 64],
                        "kernel_sizes": [3, 3],
                        "pool": "max",
                        "hidden": [128, 64],
                    },
                    "optimizer": {"name": "sgd", "lr": 0.01, "momentum": 0.9, "weight_decay": 0.0},
                    "epochs": 10,
                    "batch_size": 64,
                    "seed": 0,
                    "device": "auto",
                },
                {
                    "name": "resnet18-fc-layer4",
                    "dataset": {"name": "cifar10", "normalize": "computed"},
                    "augment": {"random_crop": {"size": 32, "padding": 4}, "hflip": {"p": 0.5}},
                    "model": {"arch": "resnet18", "pretrained": True, "head": {"kind": "mlp", "hidden": 256}},
                    "finetune": {"train": ["fc", "layer4"], "lr": {"fc": 0.01, "layer4": 0.0001}},
                    "optimizer": {"name": "adam", "lr": 0.0001},
                    "scheduler": {"name": "cosine"},
                    "early_stopping": {"metric": "test_acc", "patience": 3},
                    "epochs": 15,
                    "batch_size": 64,
                },
            ]
        },
    )

    @model_validator(mode="after")
    def _fits(self) -> RunSpec:
        if not self.name:
            self.name = f"{self.model.arch}-{self.dataset.name}"
        shape = dataset_shape(self.dataset.name)
        if shape is None:
            # A registered dataset this process has not been told of: checked where it is known (the backend's
            # queue_runs validates the spec again once its datasets are registered here).
            self._check_finetune()
            return self
        c, _, _, classes = shape
        height, width = self.dataset.image_size
        fh, fw = self.model.feature_size(height, width)
        if fh < 1 or fw < 1:
            raise ValueError(
                f"model: the conv stack reduces the {height}x{width} images of {self.dataset.name} "
                "to nothing; use fewer layers, smaller kernel_sizes or dilation, or dataset.resize"
            )
        if self.model.arch in TORCHVISION_ARCHS and min(height, width) < MIN_TORCHVISION_SIZE:
            raise ValueError(
                f"model: {self.model.arch} needs images of at least {MIN_TORCHVISION_SIZE}x{MIN_TORCHVISION_SIZE}; "
                f"{self.dataset.name} is {height}x{width}: set dataset.resize"
            )
        crop = self.augment.random_crop
        if crop is not None and crop.size is not None and (crop.size, crop.size) != (height, width):
            # Test images are not cropped: another size would give the model train and test images of
            # different sizes (RandomCrop(32, padding=4) on 32x32, RandomCrop(224, padding=4) after a resize).
            raise ValueError(
                f"augment.random_crop.size: must be the image size, {height} (or empty), not {crop.size}: "
                "test images are not cropped"
            )
        if _has_batch_norm(self.model) and min(self.batch_size, self.dataset.train_limit or 2) < 2:
            raise ValueError(
                "batch_size: batch norm needs at least 2 images per batch (batch_size and dataset.train_limit)"
            )
        params = self.model.parameter_count((c, height, width, classes))
        if params > MAX_PARAMETERS:
            raise ValueError(
                f"model: {params:,} parameters is over the limit of {MAX_PARAMETERS:,}; use fewer or narrower layers"
            )
        self._check_finetune()
        if not self.name:
            model = self.model.name if isinstance(self.model, CustomModelSpec) else self.model.arch
            self.name = f"{model}-{self.dataset.name}"
        return self

    def _check_finetune(self) -> None:
        if isinstance(self.model, CustomModelSpec):
            # Its groups are its own children, known on the worker only (worker/finetune.py checks the names).
            named = ([] if self.finetune.train == "all" else list(self.finetune.train)) + list(self.finetune.lr)
            bad = [g for g in named if not re.match(GROUP_NAME_PATTERN, g)]
            if bad:
                raise ValueError(f"finetune.train: {', '.join(map(repr, bad[:5]))} cannot name a module's child")
            if self.finetune.train == "all":
                return
        groups = self.finetune.train if isinstance(self.model, CustomModelSpec) else MODEL_GROUPS[self.model.arch]
        valid = ", ".join(groups)
        trained = groups if self.finetune.train == "all" else self.finetune.train
        unknown = [g for g in trained if g not in groups]
        if unknown:
            raise ValueError(
                f"finetune.train: {', '.join(map(repr, unknown))} not in {self.model.arch}'s groups: {valid}"
            )
        if not trained:
            raise ValueError("finetune.train: name at least one group to train (or `all`)")
        stray = [g for g in self.finetune.lr if g not in trained]
        if stray:
            raise ValueError(
                f"finetune.lr: {', '.join(map(repr, stray))} is not a trained group of {self.model.arch} "
                f"(trained: {', '.join(trained)})"
            )
        repeated = sorted({g for g in trained if list(trained).count(g) > 1})
        if repeated:
            raise ValueError(f"finetune.train: {', '.join(map(repr, repeated))} named more than once")

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) the model sees, after the resize."""
        height, width = self.dataset.image_size
        return _shape(self.dataset.name)[0], height, width

    @property
    def num_classes(self) -> int:
        return _shape(self.dataset.name)[3]

    @property
    def class_names(self) -> list[str]:
        return dataset_classes(self.dataset.name)

    @property
    def trained_groups(self) -> list[str]:
        """The groups that train. A custom model's `all` is its own children, which only the worker knows
        (worker/finetune.py trained_groups): here, the groups its finetune.lr names."""
        if self.finetune.train != "all":
            return list(self.finetune.train)
        if isinstance(self.model, CustomModelSpec):
            return list(self.finetune.lr)
        return MODEL_GROUPS[self.model.arch]


def _has_batch_norm(model: MLPSpec | CNNSpec | CustomCNNSpec | TorchvisionSpec | CustomModelSpec) -> bool:
    """Models with BatchNorm layers (VGG16 and AlexNet as torchvision builds them have none)."""
    return (isinstance(model, MLPSpec) and model.batch_norm) or model.arch in ("custom_cnn", "resnet18")


def _linear_parameters(sizes: list[int]) -> int:
    return sum(a * b + b for a, b in itertools.pairwise(sizes))


_UNION_TAGS: dict[tuple[str, ...], set[str]] = {
    ("model",): {"mlp", "cnn", "custom_cnn", "resnet18", "vgg16", "alexnet", "custom"},
    ("scheduler",): {"none", "multistep", "cosine", "step"},
    ("dataset", "normalize"): {"mode", "values"},
}
_NAMED_FIELD = re.compile(r"^(?:Value error, )?([a-z_]+(?:\.[a-z_]+)*): ")


def error_field(loc: tuple[int | str, ...] | list[int | str], message: str) -> str:
    """The dotted field a validation error is about. A check across fields (raised by a model validator,
    so pydantic locates it at the whole spec) names its field at the start of its message."""
    path = field_path(loc)
    named = _NAMED_FIELD.match(message)
    if named is None:
        return path
    field = named.group(1)
    if path == "" or field.startswith(path + "."):
        return field
    return f"{path}.{field}"  # a nested model's validator names its own field ('nesterov' in 'optimizer')


def field_path(loc: tuple[int | str, ...] | list[int | str]) -> str:
    """A validation error's location as the dotted spec path a user typed ('model.hidden.0').

    Drops the request part ('body') and the tag pydantic inserts for a discriminated union
    ('model.cnn.channels' -> 'model.channels').
    """
    parts: list[str] = []
    for item in loc:
        if not parts and item in ("body", "form", "query", "header", "path"):
            continue
        if tuple(parts) in _UNION_TAGS and item in _UNION_TAGS[tuple(parts)]:
            continue
        parts.append(str(item))
    return ".".join(parts)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The spec models an annotation holds (`X | None`, a discriminated union of models); none for a leaf."""
    if typing.get_origin(annotation) is Annotated:
        return _models_in(typing.get_args(annotation)[0])
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [model for arg in typing.get_args(annotation) for model in _models_in(arg)]
    return []


def _takes_a_word(annotation: Any) -> bool:
    """Whether an annotation that holds models also takes a plain value (`dataset.normalize`: a mode or values)."""
    if typing.get_origin(annotation) is Annotated:
        return _takes_a_word(typing.get_args(annotation)[0])
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(arg is not type(None) and not _models_in(arg) for arg in typing.get_args(annotation))
    return False


def _leaf_paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    paths: list[str] = []
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        nested = [] if _takes_a_word(info.annotation) else _models_in(info.annotation)  # one field, shown whole
        if not nested:
            paths.append(path)
        for sub in nested:
            paths += [p for p in _leaf_paths(sub, f"{path}.") if p not in paths]
    return paths


# Every dotted path of a run spec's values, of every architecture and schedule ("optimizer.lr", "model.hidden"):
# the fields a list can show as columns. A list is one field (shown whole).
SPEC_FIELDS: tuple[str, ...] = tuple(_leaf_paths(RunSpec))
