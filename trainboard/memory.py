"""A run's training memory, estimated from its spec without torch: what the API checks a spec against
before queueing it (TRAINBOARD_MEMORY_BUDGET_GB), so a run that could never fit is refused with the figures
instead of being killed by the kernel, three times, as "lost".

The estimate is the sum of
- the weights (float32), their gradients (the trained parameters only) and the optimizer's state (one
  buffer per trained parameter for SGD with momentum, two for Adam and AdamW);
- the activations of one training batch: every layer's output, kept for the backward pass, with as much
  again for the gradients flowing back through them (ACTIVATION_FACTOR), in float32 (the CPU's precision;
  bf16 on a GPU halves them, which makes this an upper bound there);
- the dataset, held on the device as uint8, the batch's float copies (resize, augmentation) and the
  epoch's logits, kept on the device until the epoch ends;
- a fixed allowance for the framework itself (CUDA context, cuDNN workspaces).

It counts layer outputs from the same shapes spec.py validates (and, for the torchvision models, their
published layouts); it is meant to tell 40 GB from 4 GB, not to predict a peak to the megabyte.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from trainboard.spec import (
    CNNSpec,
    CustomCNNSpec,
    CustomModelSpec,
    MLPSpec,
    RunSpec,
    TorchvisionSpec,
    dataset_shape,
    registered,
)

FLOAT = 4
ACTIVATION_FACTOR = 2.5  # outputs kept for backward + the gradients through them + autograd's own buffers
FRAMEWORK_BYTES = 512 * 2**20
GB = 2**30
# Images each dataset has (train + test), for the device-resident copy.
DATASET_IMAGES = {"digits": 1797, "mnist": 70_000, "fashion_mnist": 70_000, "cifar10": 60_000, "cifar100": 60_000}


@dataclass(frozen=True)
class MemoryEstimate:
    weights: int
    gradients: int
    optimizer: int
    activations: int
    data: int
    framework: int = FRAMEWORK_BYTES

    @property
    def total(self) -> int:
        return self.weights + self.gradients + self.optimizer + self.activations + self.data + self.framework

    def describe(self) -> str:
        parts = (
            ("activations", self.activations),
            ("weights, gradients and optimizer state", self.weights + self.gradients + self.optimizer),
            ("data", self.data),
        )
        return f"about {self.total / GB:.1f} GB (" + ", ".join(f"{name} {b / GB:.1f} GB" for name, b in parts) + ")"


def _conv_out(size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def _pool_out(size: int, kernel: int = 2, stride: int | None = None, padding: int = 0) -> int:
    return _conv_out(size, kernel, stride or kernel, padding)


def activation_elements(spec: RunSpec) -> int:
    """Elements of every layer's output for one image of the training batch (input included)."""
    channels, height, width = spec.input_shape
    model = spec.model
    total = channels * height * width
    if isinstance(model, MLPSpec):
        per_layer = 2 + int(model.batch_norm) + int(model.dropout > 0)  # linear, relu, [bn], [dropout]
        return total + sum(per_layer * w for w in model.hidden) + spec.num_classes
    if isinstance(model, CNNSpec):
        h, w, c = height, width, channels
        for i, (c, k) in enumerate(zip(model.channels, model.kernel_sizes, strict=True)):
            stride = 2 if model.pool == "stride" and i == len(model.channels) - 1 else 1
            pad = model.dilation * (k - 1) // 2
            h, w = _conv_out(h, k, stride, pad, model.dilation), _conv_out(w, k, stride, pad, model.dilation)
            total += 2 * c * h * w  # conv, relu
        fh, fw = model.feature_size(height, width)
        return total + c * fh * fw + sum(2 * w for w in model.hidden) + spec.num_classes
    if isinstance(model, CustomCNNSpec):
        h, w = height, width
        for c in model.blocks:
            total += 6 * c * h * w  # 2 x (conv, bn, relu)
            h, w = h // 2, w // 2
            total += c * h * w * (1 + int(model.dropout > 0))  # pool, [dropout]
        return total + sum(2 * w for w in model.hidden) + spec.num_classes
    if isinstance(model, CustomModelSpec):
        # Unknown without its code: only the input counts here, and its weights count as none. The worker
        # measures the real figure on one batch before training and refuses the run there (worker/custom_models.py).
        return total
    assert isinstance(model, TorchvisionSpec)
    channels = 3  # torchvision's models take RGB (1-channel images are repeated)
    total = channels * height * width
    return total + _torchvision_elements(model, height, width, spec.num_classes)


def _torchvision_elements(model: TorchvisionSpec, height: int, width: int, classes: int) -> int:
    size = min(height, width)
    if model.arch == "resnet18":
        s = _conv_out(size, 7, 2, 3)
        total = 3 * 64 * s * s  # conv1, bn1, relu (in place: counted as one more copy for its backward)
        s = _pool_out(s, 3, 2, 1)
        total += 64 * s * s
        for stage, width_c in enumerate((64, 128, 256, 512)):
            if stage:
                s = _conv_out(s, 3, 2, 1)
                total += 2 * width_c * s * s  # the downsampling shortcut: conv, bn
            total += 2 * 6 * width_c * s * s  # 2 blocks x (conv, bn, relu, conv, bn, add + relu)
        return total + 512 + 2 * model.head.hidden + classes
    if model.arch == "vgg16":
        total, s = 0, size
        for width_c, convs in ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3)):
            total += convs * width_c * s * s  # conv, relu in place
            s = _pool_out(s)
            total += width_c * s * s
        return total + 512 * 7 * 7 + 3 * 4096 + 2 * model.head.hidden + classes
    # alexnet: the first max-pool is dropped below 64 px (worker/models.py)
    s = _conv_out(size, 11, 4, 2)
    total = 64 * s * s
    if size >= 64:
        s = _pool_out(s, 3, 2)
        total += 64 * s * s
    s = _conv_out(s, 5, 1, 2)
    total += 192 * s * s
    s = _pool_out(s, 3, 2)
    total += 192 * s * s
    total += (384 + 256 + 256) * s * s
    s = max(_pool_out(s, 3, 2), 1)
    return total + 256 * s * s + 256 * 6 * 6 + 3 * 4096 + 2 * model.head.hidden + classes


def _shape(name: str) -> tuple[int, int, int, int]:
    shape = dataset_shape(name)
    if shape is None:
        raise LookupError(f"dataset {name!r} is neither built in nor a registered dataset this process knows of")
    return shape


def _images(name: str) -> int:
    """Train + test images of a built-in or a known registered dataset."""
    if name in DATASET_IMAGES:
        return DATASET_IMAGES[name]
    info = registered(name)
    if info is None:
        raise LookupError(f"dataset {name!r} is neither built in nor a registered dataset this process knows of")
    return info.images


def estimate(spec: RunSpec) -> MemoryEstimate:
    channels, height, width, classes = _shape(spec.dataset.name)
    parameters = spec.model.parameter_count((channels, *spec.dataset.image_size, classes))
    trainable = parameters if spec.finetune.train == "all" else math.ceil(parameters * 0.5)
    # A fine-tuning run trains only some groups; without torch the split is unknown: half is a fair middle.
    optimizer = spec.optimizer
    states = 2 if optimizer.name in ("adam", "adamw") else (1 if optimizer.momentum else 0)
    batch = min(spec.batch_size, spec.dataset.train_limit or spec.batch_size)
    activations = int(activation_elements(spec) * batch * FLOAT * ACTIVATION_FACTOR)
    images = _images(spec.dataset.name)
    if spec.dataset.train_limit or spec.dataset.test_limit:
        images = min(images, (spec.dataset.train_limit or images) + (spec.dataset.test_limit or images))
    _, model_h, model_w = spec.input_shape
    data = images * channels * height * width  # uint8 on the device
    data += 3 * batch * 3 * model_h * model_w * FLOAT  # the batch as floats: resized, augmented, normalised
    data += images * classes * FLOAT  # an epoch's logits, kept until the epoch ends
    return MemoryEstimate(
        weights=parameters * FLOAT,
        gradients=trainable * FLOAT,
        optimizer=states * trainable * FLOAT,
        activations=activations,
        data=data,
    )


def over_budget(spec: RunSpec, budget_gb: float) -> str | None:
    """Why `spec` does not fit `budget_gb` of memory, in words with the figures; None when it fits."""
    found = estimate(spec)
    if found.total <= budget_gb * GB:
        return None
    return (
        f"batch_size: this run needs {found.describe()}, over the memory budget of {budget_gb:g} GB "
        "(TRAINBOARD_MEMORY_BUDGET_GB): lower batch_size or dataset.resize, or raise the budget"
    )
