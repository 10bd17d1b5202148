"""worker/preprocess.py: uint8 batches to model inputs: normalisation, resize, augmentation hook, channel repeat."""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF

from worker.preprocess import Preprocess, resize

CPU = torch.device("cpu")


def images(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_normalize_maps_uint8_to_standard_scores() -> None:
    preprocess = Preprocess((0.5, 0.25), (0.5, 0.125), CPU)
    batch = torch.tensor([0, 255, 51, 102], dtype=torch.uint8).view(1, 2, 1, 2)

    out = preprocess(batch)

    expected = torch.tensor([[(0 - 0.5) / 0.5, (1 - 0.5) / 0.5], [(0.2 - 0.25) / 0.125, (0.4 - 0.25) / 0.125]])
    assert out.dtype == torch.float32
    assert torch.allclose(out.view(2, 2), expected, atol=1e-6)


def test_resize_is_torchvisions_bilinear_resize_antialiased_when_shrinking() -> None:
    batch = images(3, 3, 32, 32).float()

    assert torch.allclose(resize(batch, 12), TF.resize(batch, [12, 12], antialias=True), atol=1e-3)
    assert torch.allclose(resize(batch, 48), TF.resize(batch, [48, 48], antialias=True), atol=1e-3)
    # Antialiasing matters when shrinking: plain bilinear sampling skips most of the pixels.
    assert not torch.allclose(resize(batch, 12), F.interpolate(batch, size=(12, 12), mode="bilinear"), atol=1)


def test_resizing_then_normalising_equals_normalising_then_resizing() -> None:
    """Why the normalisation can stay one fused step after the resize: bilinear weights sum to 1."""
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    batch = images(2, 3, 8, 8)
    preprocess = Preprocess(mean, std, CPU, size=20)

    out = preprocess(batch)

    normalised = (batch / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    assert out.shape == (2, 3, 20, 20)
    assert torch.allclose(out, resize(normalised, 20), atol=1e-5)


def test_a_resize_to_the_stored_size_changes_nothing() -> None:
    batch = images(2, 1, 8, 8)

    assert torch.equal(Preprocess((0.3,), (0.2,), CPU, size=8)(batch), Preprocess((0.3,), (0.2,), CPU)(batch))


def test_one_channel_images_are_repeated_to_three_after_normalising() -> None:
    batch = images(4, 1, 8, 8)

    out = Preprocess((0.3,), (0.2,), CPU, size=32, channels=3)(batch)
    single = Preprocess((0.3,), (0.2,), CPU, size=32)(batch)

    assert out.shape == (4, 3, 32, 32) and out.is_contiguous()
    assert all(torch.equal(out[:, c], single[:, 0]) for c in range(3))


def test_augmentation_runs_on_resized_pixels_before_the_normalisation() -> None:
    batch = images(2, 3, 8, 8)
    seen: list[torch.Tensor] = []

    def invert(x: torch.Tensor) -> torch.Tensor:
        seen.append(x)
        return 255 - x

    out = Preprocess((0.5,) * 3, (0.5,) * 3, CPU, size=16)(batch, invert)

    assert seen[0].dtype == torch.float32 and seen[0].shape == (2, 3, 16, 16)
    assert seen[0].min() >= 0 and seen[0].max() <= 255  # pixels, not standard scores
    assert torch.allclose(out, (1 - resize(batch.float(), 16) / 255 - 0.5) / 0.5, atol=1e-5)


def test_channels_last_layout() -> None:
    out = Preprocess((0.5,) * 3, (0.5,) * 3, CPU, channels_last=True)(images(2, 3, 8, 8))

    assert out.is_contiguous(memory_format=torch.channels_last)


def test_explicit_values_are_applied_exactly_per_channel() -> None:
    """The resnet18-finetune preset's values (the report's): each channel is (x / 255 - mean) / std."""
    mean, std = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)
    batch = images(4, 3, 8, 8)

    out = Preprocess(mean, std, CPU)(batch)

    x = batch.double() / 255
    expected = (x - torch.tensor(mean, dtype=torch.float64).view(1, 3, 1, 1)) / torch.tensor(
        std, dtype=torch.float64
    ).view(1, 3, 1, 1)
    assert torch.allclose(out.double(), expected, atol=1e-5, rtol=0)
