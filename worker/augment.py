"""Training augmentation, batched on the device: random crop, horizontal flip, colour jitter, rotation.

torchvision's transforms work on one PIL image at a time in DataLoader workers; the engine keeps the
dataset on the device (worker/engine.py), so these do the same to a whole batch in a few kernels,
with a random draw per image. They take float batches [B, C, H, W] of pixels in [0, 255] (after the
resize, before the normalisation: worker/preprocess.py), so padding and fill are black, as in
torchvision where they run before ToTensor/Normalize.

Each draws its random numbers from one `torch.Generator` on the training device, seeded from the
run's seed (`Augment`): the same seed gives the same augmented batches, and each epoch draws afresh
because the generator moves on. It is not the shuffle's generator, so turning augmentation on does
not change the order the images come in.

Where they differ from torchvision:
- color_jitter applies brightness, contrast, saturation, hue in that fixed order; torchvision draws
  a random order per image, which batched would need a host sync or 24 code paths. The factors
  are drawn per image from the same ranges.
- rotation interpolates bilinearly (torchvision's RandomRotation defaults to nearest), fill 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from trainboard.spec import AugmentSpec

PIXEL_MAX = 255.0
# ITU-R 601-2 luma, the weights torchvision's rgb_to_grayscale uses for contrast and saturation.
LUMA = (0.2989, 0.587, 0.114)
# Added to the run's seed for the augmentation generator: another stream than the shuffle's (seed itself).
AUGMENT_SEED_OFFSET = 0x5EED

Step = Callable[[torch.Tensor], torch.Tensor]


class Augment:
    """The spec's augmentations, in the spec's order (crop, flip, jitter, rotation), for training batches."""

    def __init__(self, spec: AugmentSpec, seed: int, device: torch.device):
        self.generator = torch.Generator(device=device).manual_seed(seed + AUGMENT_SEED_OFFSET)
        g = self.generator
        self.steps: list[Step] = []
        if (crop := spec.random_crop) is not None:
            self.steps.append(lambda x: random_crop(x, crop.size, crop.padding, g))
        if (flip := spec.hflip) is not None and flip.p > 0:
            self.steps.append(lambda x: random_hflip(x, flip.p, g))
        if (jitter := spec.color_jitter) is not None:
            ranges = (jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue)
            if any(r > 0 for r in ranges):
                self.steps.append(lambda x: color_jitter(x, *ranges, generator=g))
        if (rotation := spec.rotation) is not None and rotation.degrees > 0:
            self.steps.append(lambda x: random_rotation(x, rotation.degrees, g))

    def __bool__(self) -> bool:
        return bool(self.steps)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        for step in self.steps:
            images = step(images)
        return images


# --- random crop ----------------------------------------------------------------------------------


def random_crop(x: torch.Tensor, size: int | None, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Zero-pad each side by `padding`, then cut a size x size window (default: the image size) at a
    uniformly random offset per image, like torchvision's RandomCrop(size, padding)."""
    batch, _, height, width = x.shape
    out_h, out_w = (size, size) if size is not None else (height, width)
    top = torch.randint(0, height + 2 * padding - out_h + 1, (batch,), generator=generator, device=x.device)
    left = torch.randint(0, width + 2 * padding - out_w + 1, (batch,), generator=generator, device=x.device)
    return crop(x, out_h, out_w, padding, top, left)


def crop(x: torch.Tensor, height: int, width: int, padding: int, top: torch.Tensor, left: torch.Tensor) -> torch.Tensor:
    """The window [top, top + height) x [left, left + width) of each zero-padded image, as one gather."""
    padded = F.pad(x, (padding, padding, padding, padding)) if padding else x
    rows = top.view(-1, 1, 1) + torch.arange(height, device=x.device).view(1, -1, 1)  # [B, h, 1]
    cols = left.view(-1, 1, 1) + torch.arange(width, device=x.device).view(1, 1, -1)  # [B, 1, w]
    batch = torch.arange(len(x), device=x.device).view(-1, 1, 1)
    # Advanced indices around a slice put their broadcast shape [B, h, w] first: the result is [B, h, w, C].
    return padded[batch, :, rows, cols].permute(0, 3, 1, 2)


# --- horizontal flip ------------------------------------------------------------------------------


def random_hflip(x: torch.Tensor, p: float, generator: torch.Generator) -> torch.Tensor:
    """Mirror each image left-right with probability p."""
    flip = torch.rand(len(x), generator=generator, device=x.device) < p
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)


# --- colour jitter --------------------------------------------------------------------------------


def color_jitter(
    x: torch.Tensor, brightness: float, contrast: float, saturation: float, hue: float, *, generator: torch.Generator
) -> torch.Tensor:
    """torchvision's ColorJitter with a factor per image: brightness, contrast and saturation factors
    uniform in [max(0, 1 - v), 1 + v], the hue shift uniform in [-hue, hue] (of a full turn).
    Grayscale (1-channel) images get brightness and contrast only, as in torchvision."""
    rgb = x.shape[1] == 3
    if brightness > 0:
        x = adjust_brightness(x, _factors(x, brightness, generator))
    if contrast > 0:
        x = adjust_contrast(x, _factors(x, contrast, generator))
    if saturation > 0 and rgb:
        x = adjust_saturation(x, _factors(x, saturation, generator))
    if hue > 0 and rgb:
        shift = (torch.rand(len(x), generator=generator, device=x.device) * 2 - 1) * hue
        x = adjust_hue(x, shift)
    return x


def _factors(x: torch.Tensor, spread: float, generator: torch.Generator) -> torch.Tensor:
    low, high = max(0.0, 1 - spread), 1 + spread
    return low + (high - low) * torch.rand(len(x), generator=generator, device=x.device)


def adjust_brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """x * factor (one factor per image), clipped to the pixel range."""
    return (x * factor.view(-1, 1, 1, 1)).clamp(0, PIXEL_MAX)


def adjust_contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend each image with its mean grey level: factor 0 is flat grey, 1 the image itself."""
    mean = grayscale(x).mean(dim=(1, 2, 3), keepdim=True)
    return _blend(x, mean, factor)


def adjust_saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend each RGB image with its own grayscale version: factor 0 is grey, 1 the image itself."""
    return _blend(x, grayscale(x), factor)


def adjust_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate each RGB image's hue by `shift` (a fraction of a turn, per image) in HSV space."""
    hue, saturation, value = rgb_to_hsv(x)
    return hsv_to_rgb((hue + shift.view(-1, 1, 1, 1)) % 1.0, saturation, value)


def grayscale(x: torch.Tensor) -> torch.Tensor:
    """[B, 1, H, W] luma of RGB images; 1-channel images are their own grayscale."""
    if x.shape[1] == 1:
        return x
    r, g, b = x.unbind(dim=1)
    return (LUMA[0] * r + LUMA[1] * g + LUMA[2] * b).unsqueeze(1)


def _blend(x: torch.Tensor, other: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    f = factor.view(-1, 1, 1, 1)
    return (f * x + (1 - f) * other).clamp(0, PIXEL_MAX)


def rgb_to_hsv(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Hue in [0, 1), saturation in [0, 1], value (the max channel, in x's units), each [B, 1, H, W]."""
    r, g, b = x.unbind(dim=1)
    value, _ = x.max(dim=1)
    low, _ = x.min(dim=1)
    chroma = value - low
    grey = chroma == 0  # no hue; the divisions below use 1 instead of 0 there
    saturation = chroma / torch.where(grey, torch.ones_like(value), value)
    chroma = torch.where(grey, torch.ones_like(chroma), chroma)
    rc, gc, bc = (value - r) / chroma, (value - g) / chroma, (value - b) / chroma
    # Which 60-degree sector: the max channel decides (red first on ties, then green), as colorsys does.
    hue = torch.where(value == r, bc - gc, torch.where(value == g, 2.0 + rc - bc, 4.0 + gc - rc))
    hue = torch.where(grey, torch.zeros_like(hue), hue)
    hue = torch.remainder(hue / 6.0, 1.0)
    return hue.unsqueeze(1), saturation.unsqueeze(1), value.unsqueeze(1)


def hsv_to_rgb(hue: torch.Tensor, saturation: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """The inverse of rgb_to_hsv, all three channels at once: c = v - v s clamp(min(k, 4 - k), 0, 1)
    with k = (n + 6 hue) mod 6 and n = 5, 3, 1 for red, green, blue."""
    n = torch.tensor([5.0, 3.0, 1.0], device=hue.device, dtype=hue.dtype).view(1, 3, 1, 1)
    k = torch.remainder(n + 6.0 * hue, 6.0)
    return value - value * saturation * torch.minimum(k, 4.0 - k).clamp(0, 1)


# --- rotation -------------------------------------------------------------------------------------


def random_rotation(x: torch.Tensor, degrees: float, generator: torch.Generator) -> torch.Tensor:
    """Rotate each image about its centre by its own angle, uniform in [-degrees, degrees]."""
    angles = (torch.rand(len(x), generator=generator, device=x.device) * 2 - 1) * degrees
    return rotate(x, angles)


def rotate(x: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
    """Rotate image i counter-clockwise by degrees[i] (torchvision's sense), bilinear, black outside.

    affine_grid's theta maps each output pixel's normalised (x, y) to where it samples the input:
    the inverse rotation. Normalised coordinates are the same for x and y only on square images,
    which all of the engine's are (the crop keeps the image size).
    """
    radians = degrees.to(x.dtype) * (math.pi / 180)
    cos, sin = torch.cos(radians), torch.sin(radians)
    zero = torch.zeros_like(cos)
    # y points down in image coordinates, so a counter-clockwise turn on screen samples at (cos, -sin; sin, cos).
    theta = torch.stack([torch.stack([cos, -sin, zero], dim=1), torch.stack([sin, cos, zero], dim=1)], dim=1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
