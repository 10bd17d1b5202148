"""The record of how a run was made (`environment`, `data_fingerprint`) and what each epoch cost the machine
(`EpochMeter`), for RunInfo and EpochRecord.system (trainboard/protocol.py)."""

from __future__ import annotations

import hashlib
import os
import platform
import resource
import socket
import subprocess
from functools import cache
from pathlib import Path

import torch
import torchvision

import trainboard
from trainboard.protocol import Environment, SystemFigures
from worker.data import Dataset
from worker.devices import cpu_name

PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


@cache
def git_commit() -> str | None:
    """The commit of the trainboard checkout this code runs from; None for an installed package."""
    root = Path(trainboard.__file__).resolve().parents[1]
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()[:40] or None


def environment(device: torch.device) -> Environment:
    cuda = device.type == "cuda"
    if cuda:
        properties = torch.cuda.get_device_properties(device)
        name, memory = str(properties.name), int(properties.total_memory)
    else:
        name, memory = cpu_name(), os.sysconf("SC_PHYS_PAGES") * PAGE_BYTES
    cudnn = torch.backends.cudnn.version() if cuda else None  # type: ignore[no-untyped-call]
    return Environment(
        trainboard=trainboard.__version__,
        git_commit=git_commit(),
        python=platform.python_version(),
        torch=torch.__version__,
        torchvision=torchvision.__version__,
        cuda=torch.version.cuda if cuda else None,
        cudnn=str(cudnn) if cudnn else None,
        device_name=name[:200],
        device_memory_bytes=memory,
        host=socket.gethostname()[:255],
    )


def data_fingerprint(data: Dataset) -> str:
    """sha256 of the four tensors (train images and labels, test images and labels) as trained on."""
    digest = hashlib.sha256()
    for tensor in (data.train_x, data.train_y, data.test_x, data.test_y):
        values = tensor.detach().to("cpu").contiguous()
        digest.update(str((values.dtype, tuple(values.shape))).encode())
        digest.update(values.view(torch.uint8).reshape(-1).numpy().tobytes())
    return digest.hexdigest()


def rss_bytes() -> int:
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * PAGE_BYTES
    except (OSError, IndexError, ValueError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # the peak, where /proc is missing


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class EpochMeter:
    """`start()` before an epoch, `figures()` after it."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._cpu = 0.0

    def start(self) -> None:
        self._cpu = cpu_seconds()
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)

    def figures(self) -> SystemFigures:
        allocated = reserved = None
        utilization: float | None = None
        if self.device.type == "cuda":
            allocated = int(torch.cuda.max_memory_allocated(self.device))
            reserved = int(torch.cuda.max_memory_reserved(self.device))
            try:
                utilization = float(torch.cuda.utilization(self.device))
            except Exception:  # no pynvml / NVML: the driver does not say
                utilization = None
        return SystemFigures(
            rss_bytes=rss_bytes(),
            cpu_seconds=max(cpu_seconds() - self._cpu, 0.0),
            gpu_allocated_bytes=allocated,
            gpu_reserved_bytes=reserved,
            gpu_utilization=utilization,
        )
