"""Model classes for the custom-model tests, offered as tests.worker.custom_models:<Class>."""

from __future__ import annotations

import torch
from torch import nn


class SmallNet(nn.Module):
    """A small conv net: `features` then `head`; `width` comes from the spec's kwargs."""

    def __init__(self, num_classes: int, in_channels: int, image_size: tuple[int, int], width: int = 8) -> None:
        super().__init__()
        self.width = width
        self.features = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU())
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(width * image_size[0] * image_size[1], num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class ClassesOnly(nn.Module):
    """Takes only num_classes (no in_channels or image_size): a lazy linear layer."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.LazyLinear(32), nn.ReLU())
        self.out = nn.Linear(32, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(x))


class BuildFails(nn.Module):
    def __init__(self, num_classes: int) -> None:
        super().__init__()
        raise RuntimeError("no weights for you")


class ForwardFails(nn.Module):
    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(3, num_classes)  # digits' 8x8 images flatten to 64, not 3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


class WrongOutput(nn.Module):
    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.fc = nn.Linear(in_channels * 64, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


NOT_A_MODULE = 3
