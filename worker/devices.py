"""What a worker trains on, found without starting CUDA in the worker's long-lived process (a CUDA context
there would be inherited, broken, by every run it forks): nvidia-smi for GPUs, /proc for the CPU."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

from trainboard.protocol import WorkerDevice


def gpus() -> list[tuple[int, str, int]]:
    """(index, model, memory bytes) of each GPU nvidia-smi lists; [] without a driver."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=index,name,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    found = []
    for line in out.splitlines():
        parts = [part.strip() for part in line.split(",")]
        if len(parts) == 3 and parts[0].isdigit():
            memory = int(parts[2]) * 2**20 if parts[2].isdigit() else 0
            found.append((int(parts[0]), parts[1], memory))
    return found


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "CPU"


def memory_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def describe(gpu: int | None, cores: int) -> WorkerDevice:
    """The pinned GPU, else every GPU the machine has, else its CPU."""
    found = gpus()
    if gpu is not None:
        match = next(((name, memory) for index, name, memory in found if index == gpu), None)
        name, memory = match if match else (f"GPU {gpu} (nvidia-smi does not list it)", None)
        return WorkerDevice(kind="cuda", name=name, memory_bytes=memory, cores=cores, gpu=gpu)
    if found and os.environ.get("CUDA_VISIBLE_DEVICES") != "":
        names = sorted({name for _, name, _ in found})
        name = f"{len(found)} x {names[0]}" if len(names) == 1 else ", ".join(names)
        return WorkerDevice(kind="cuda", name=name, memory_bytes=sum(m for _, _, m in found), cores=cores)
    return WorkerDevice(kind="cpu", name=cpu_name(), memory_bytes=memory_bytes(), cores=cores)
