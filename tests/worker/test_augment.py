"""worker/augment.py: batched, seeded training augmentation against torchvision's per-image transforms."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from torchvision.transforms import InterpolationMode

from trainboard.spec import AugmentSpec, RunSpec
from worker.augment import (
    Augment,
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    color_jitter,
    crop,
    random_crop,
    random_hflip,
    rotate,
)

CPU = torch.device("cpu")
EVERYTHING: dict[str, Any] = {
    "random_crop": {"padding": 4},
    "hflip": {"p": 0.5},
    "color_jitter": {"brightness": 0.4, "contrast": 0.4, "saturation": 0.4, "hue": 0.1},
    "rotation": {"degrees": 15},
}


def pixels(*shape: int, seed: int = 0) -> torch.Tensor:
    """Float images of pixels in [0, 255], as Preprocess hands them to the augmentation."""
    return torch.randint(0, 256, shape, generator=torch.Generator().manual_seed(seed)).float()


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("step", [*EVERYTHING, "all"])
def test_each_augmentation_keeps_the_shape_varies_by_epoch_and_repeats_by_seed(step: str, channels: int) -> None:
    spec = AugmentSpec.model_validate(EVERYTHING if step == "all" else {step: EVERYTHING[step]})
    batch = pixels(16, channels, 12, 12)

    first_run = Augment(spec, seed=7, device=CPU)
    epoch_1, epoch_2 = first_run(batch), first_run(batch)
    second_run = Augment(spec, seed=7, device=CPU)
    other_seed = Augment(spec, seed=8, device=CPU)

    assert epoch_1.shape == batch.shape and epoch_1.dtype == torch.float32
    assert not torch.equal(epoch_1, batch)
    assert not torch.equal(epoch_1, epoch_2)  # the generator moves on: each epoch draws afresh
    assert torch.equal(second_run(batch), epoch_1) and torch.equal(second_run(batch), epoch_2)
    assert not torch.equal(other_seed(batch), epoch_1)
    assert epoch_1.min() >= 0 and epoch_1.max() <= 255


def test_no_augmentation_is_falsy_and_changes_nothing() -> None:
    augment = Augment(AugmentSpec(), seed=0, device=CPU)
    batch = pixels(2, 3, 8, 8)

    assert not augment and torch.equal(augment(batch), batch)
    assert not Augment(AugmentSpec.model_validate({"hflip": {"p": 0}, "rotation": {"degrees": 0}}), 0, CPU)


# -- random crop -----------------------------------------------------------------------------------


def test_crop_is_a_window_of_the_zero_padded_image() -> None:
    batch = pixels(5, 3, 10, 10)
    top, left = torch.tensor([0, 8, 3, 5, 1]), torch.tensor([8, 0, 2, 7, 4])

    out = crop(batch, 10, 10, 4, top, left)

    padded = F.pad(batch, (4, 4, 4, 4))
    for i in range(5):
        assert torch.equal(out[i], padded[i, :, top[i] : top[i] + 10, left[i] : left[i] + 10])
    assert out[0, :, :4].abs().sum() == 0 and out[1, :, :, :4].abs().sum() == 0  # padding is black


def test_random_crop_without_padding_at_the_image_size_is_the_identity() -> None:
    batch = pixels(4, 3, 8, 8)

    assert torch.equal(random_crop(batch, 8, 0, generator()), batch)
    assert torch.equal(random_crop(batch, None, 0, generator()), batch)


def test_random_crop_offsets_vary_per_image_over_the_whole_range() -> None:
    batch = pixels(1, 1, 6, 6).expand(400, -1, -1, -1)

    out = random_crop(batch, None, 2, generator())

    padded = F.pad(batch[:1], (2, 2, 2, 2))
    windows = {(top, left): padded[0, :, top : top + 6, left : left + 6] for top in range(5) for left in range(5)}
    found = {next(key for key, window in windows.items() if torch.equal(window, image)) for image in out}
    assert found == set(windows)  # all 25 offsets, and every output is one of them


# -- horizontal flip -------------------------------------------------------------------------------


def test_hflip_with_p_1_is_torch_flip_and_p_0_the_identity() -> None:
    batch = pixels(6, 3, 5, 7)

    assert torch.equal(random_hflip(batch, 1.0, generator()), torch.flip(batch, dims=[3]))
    assert torch.equal(random_hflip(batch, 0.0, generator()), batch)


def test_hflip_decides_per_image() -> None:
    batch = pixels(200, 1, 4, 4)

    out = random_hflip(batch, 0.5, generator())

    flipped = torch.tensor([torch.equal(o, b.flip(2)) for o, b in zip(out, batch, strict=True)])
    kept = torch.tensor([torch.equal(o, b) for o, b in zip(out, batch, strict=True)])
    assert bool((flipped ^ kept).all()) and 70 < int(flipped.sum()) < 130


# -- colour jitter ---------------------------------------------------------------------------------

FACTORS = torch.tensor([0.0, 0.5, 1.0, 1.7])
HUES = torch.tensor([-0.5, -0.2, 0.0, 0.37])


@pytest.mark.parametrize(
    ("ours", "theirs", "factors"),
    [
        (adjust_brightness, TF.adjust_brightness, FACTORS),
        (adjust_contrast, TF.adjust_contrast, FACTORS),
        (adjust_saturation, TF.adjust_saturation, FACTORS),
        (adjust_hue, TF.adjust_hue, HUES),
    ],
    ids=["brightness", "contrast", "saturation", "hue"],
)
def test_each_jitter_equals_torchvisions_per_image(ours: Any, theirs: Any, factors: torch.Tensor) -> None:
    batch = pixels(4, 3, 9, 9)
    batch[0, :, :3] = 128.0  # grey pixels: no hue
    batch[1, 0] = batch[1, 1]  # red == green: the ties in the hue sector

    out = ours(batch, factors)

    for image, result, factor in zip(batch, out, factors.tolist(), strict=True):
        assert torch.allclose(result / 255, theirs(image / 255, factor), atol=2e-6)


def test_contrast_of_grayscale_images_is_torchvisions() -> None:
    batch = pixels(2, 1, 9, 9)

    out = adjust_contrast(batch, torch.tensor([0.3, 1.5]))

    for image, result, factor in zip(batch, out, (0.3, 1.5), strict=True):
        assert torch.allclose(result / 255, TF.adjust_contrast(image / 255, factor), atol=2e-6)


def test_grayscale_images_get_brightness_and_contrast_only() -> None:
    gray = pixels(8, 1, 6, 6)

    assert torch.equal(color_jitter(gray, 0, 0, 0.5, 0.4, generator=generator()), gray)
    assert not torch.equal(color_jitter(gray, 0.5, 0, 0, 0, generator=generator()), gray)
    assert not torch.equal(color_jitter(gray, 0, 0.5, 0, 0, generator=generator()), gray)


def test_jitter_factors_are_drawn_per_image_within_range() -> None:
    batch = torch.full((300, 3, 2, 2), 100.0)

    out = color_jitter(batch, 0.5, 0, 0, 0, generator=generator())

    factors = out[:, 0, 0, 0] / 100  # brightness only: each image is scaled by its factor
    assert 0.5 <= factors.min() < 0.55 and 1.45 < factors.max() <= 1.5
    assert len(factors.unique()) == 300


# -- rotation --------------------------------------------------------------------------------------


def test_rotation_by_0_is_the_identity_and_by_90_is_rot90() -> None:
    batch = pixels(2, 3, 9, 9)

    out = rotate(batch, torch.tensor([0.0, 90.0]))

    assert torch.allclose(out[0], batch[0], atol=1e-3)
    assert torch.allclose(out[1], torch.rot90(batch[1], 1, dims=(1, 2)), atol=1e-3)  # counter-clockwise


def test_rotation_equals_torchvisions_bilinear_rotate_per_image() -> None:
    batch = pixels(3, 3, 11, 11)
    angles = [-30.0, 12.5, 45.0]

    out = rotate(batch, torch.tensor(angles))

    for image, result, angle in zip(batch, out, angles, strict=True):
        expected = TF.rotate(image, angle, interpolation=InterpolationMode.BILINEAR)
        assert torch.allclose(result, expected, atol=1e-3)
    assert out[2, :, 0, 0].abs().sum() == 0  # corners rotated in from outside are black


def test_rotation_angles_are_drawn_per_image_within_range() -> None:
    spec = AugmentSpec.model_validate({"rotation": {"degrees": 10}})
    batch = pixels(1, 1, 15, 15).expand(50, -1, -1, -1)

    out = Augment(spec, seed=0, device=CPU)(batch)

    assert len({tuple(image.flatten().tolist()) for image in out}) == 50
    assert all(not torch.allclose(image, torch.rot90(batch[0], 1, dims=(1, 2)), atol=1) for image in out)


@pytest.mark.parametrize(
    ("dataset", "size", "ok"),
    [
        ({"name": "cifar10"}, 32, True),
        ({"name": "cifar10"}, None, True),
        ({"name": "cifar10", "resize": 224}, 224, True),
        ({"name": "cifar10"}, 28, False),
        ({"name": "cifar10", "resize": 224}, 32, False),
    ],
)
def test_the_spec_keeps_the_crop_at_the_image_size(dataset: dict[str, Any], size: int | None, ok: bool) -> None:
    """Test images are not cropped, so a crop of another size would give the model two input sizes."""
    fields = {"dataset": dataset, "model": {"arch": "resnet18"}, "augment": {"random_crop": {"size": size}}}
    if ok:
        RunSpec.model_validate(fields)
    else:
        with pytest.raises(ValueError, match=r"augment.random_crop.size: must be the image size"):
            RunSpec.model_validate(fields)
