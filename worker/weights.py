"""Pretrained torchvision weights, from the torch hub cache, with a clear error where there is no network.

torchvision's `weights=` downloads the file into `torch.hub.get_dir()/checkpoints/` on first use and
reads it from there afterwards. On an air-gapped machine that download fails with a bare URLError
deep inside the model's constructor. Here the same file is resolved first, the same way:

1. `<hub dir>/checkpoints/<file name of the weights' URL>` (e.g. resnet18-f37072fd.pth): used as is;
2. missing: downloaded with `torch.hub.download_url_to_file`, checked against the sha256 prefix in
   the file name (as torch.hub's `check_hash` does), written to a temporary file then renamed, so
   two workers downloading at once never leave half a file;
3. the download fails: `WeightsUnavailable` at once, naming the missing file, the directory to put
   it in, and the URL to fetch it from on a machine that has network.

The file is then read with `torch.load(weights_only=True)` (tensors only: a weights file cannot run
code) and given to `load_state_dict` by worker/models.py.
"""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.error import URLError
from urllib.parse import urlparse

import torch
import torchvision

log = logging.getLogger(__name__)


class WeightsUnavailable(RuntimeError):
    """The pretrained weights are not in the torch hub cache and could not be downloaded."""


def weights_url(arch: str) -> str:
    """torchvision's default ImageNet weights for `arch` (IMAGENET1K_V1 for resnet18, vgg16 and alexnet)."""
    return str(torchvision.models.get_model_weights(arch).DEFAULT.url)


def weights_path(url: str) -> Path:
    """Where torch.hub (and so torchvision's `weights=`) keeps the file downloaded from `url`."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name


def ensure_downloaded(arch: str) -> Path:
    """The file of torchvision's ImageNet weights for `arch`, downloaded first if it must be."""
    url = weights_url(arch)
    path = weights_path(url)
    if not path.is_file():
        _download(arch, url, path)
    return path


def pretrained_state_dict(arch: str) -> dict[str, torch.Tensor]:
    """The ImageNet state_dict of torchvision's `arch`, on the CPU; downloaded first if it must be."""
    path = ensure_downloaded(arch)
    state: dict[str, torch.Tensor] = torch.load(path, map_location="cpu", weights_only=True)
    return state


def _download(arch: str, url: str, path: Path) -> None:
    directory = path.parent
    log.info("downloading %s's pretrained weights from %s to %s", arch, url, path)
    hash_match = torch.hub.HASH_REGEX.search(path.name)  # torchvision names its files <name>-<sha256 prefix>.pth
    try:
        directory.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(
            url, str(path), hash_prefix=hash_match.group(1) if hash_match else None, progress=False
        )
    # No network: URLError (an OSError) from the name lookup or connect; a download whose sha256 is
    # wrong (a proxy's error page) is a RuntimeError.
    except (URLError, OSError, RuntimeError) as err:
        raise WeightsUnavailable(
            f"The pretrained weights for {arch} are not on this machine and could not be downloaded. "
            f"Missing: {path}. Without network access, download {url} elsewhere and put the file "
            f"(named {path.name}) in {directory} (torch's hub cache: set TORCH_HOME to move it). "
            f"The download failed with: {err}"
        ) from err
