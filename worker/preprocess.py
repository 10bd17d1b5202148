"""From a uint8 batch of the dataset to the float32 batch the model sees, on the device.

In order: resize (bilinear; antialiased when shrinking, like torchvision's Resize on tensors),
training augmentation (worker/augment.py; training batches only), normalisation, the channel
repeat (1-channel images to the 3 channels torchvision's models take), and the memory layout.

Resizing per batch instead of once for the whole dataset keeps the dataset uint8 at its stored
size on the device: CIFAR-10 at 224x224 would be 7.5 GB as uint8 (150 MB at 32x32). A 64-image
batch resized to 224 costs one interpolate kernel.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


class Preprocess:
    """uint8 [B, C, H, W] -> float32 (resize(x) / 255 - mean) / std, repeated to `channels`.

    Normalisation is x * (1 / (255 * std)) + (-mean / std): one fused multiply-add (addcmul), which
    with no resize and no augmentation also does the uint8 to float conversion in that one kernel.
    Resizing before normalising gives the same result as after: bilinear weights sum to 1, so the
    per-channel affine map commutes with the interpolation.
    """

    def __init__(
        self,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        device: torch.device,
        *,
        channels_last: bool = False,
        size: int | None = None,
        channels: int | None = None,
    ):
        mean_t = torch.tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        std_t = torch.tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self.scale = 1 / (255 * std_t)
        self.shift = -mean_t / std_t
        self.size = size
        self.channels = channels
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def __call__(
        self, images: torch.Tensor, augment: Callable[[torch.Tensor], torch.Tensor] | None = None
    ) -> torch.Tensor:
        x = images
        if self.size is not None and tuple(images.shape[-2:]) != (self.size, self.size):
            x = resize(x.float(), self.size)
        if augment:
            x = augment(x.float())
        x = torch.addcmul(self.shift, x, self.scale)
        if self.channels is not None and x.shape[1] != self.channels:
            x = x.expand(-1, self.channels, -1, -1)  # a view; the line below makes the one copy
        return x.contiguous(memory_format=self.memory_format)


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize of float images to size x size; antialiased when shrinking (as torchvision's
    Resize does on tensors), which upsampling does not need."""
    shrinking = size < x.shape[-2] or size < x.shape[-1]
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=shrinking)
