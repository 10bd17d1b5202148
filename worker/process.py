"""The worker's process model: a long-lived parent that is warm, and a fresh process per run.

`trainboard worker` is a Celery worker with a prefork pool: the parent takes run ids from the broker and
forks one child per run (`worker_max_tasks_per_child=1`), which claims and trains that run and exits, so
every run gives its memory (GPU memory above all) back. What changed is what the parent holds when it
forks: `preload()` imports torch, torchvision and the engine once, so a child starts with them imported
and goes from its claim to its first batch in a fraction of a second instead of the ~4 s that importing
them costs. The parent never runs a torch operation and never touches CUDA — no thread pool started, no
CUDA context to inherit — so the fork is as safe as before and a seeded CPU run gives the same numbers
warm as cold.

`Placement` is where a worker's runs go: its slots (runs at once) and, on a GPU machine, the one GPU it
is pinned to. Its environment is what the worker and every run it forks see: `CUDA_VISIBLE_DEVICES`
for the GPU, and the CPU cores split between the slots (torch's threads per run) so two slots don't
oversubscribe the machine.
"""

from __future__ import annotations

import ctypes
import gc
import os
import signal
import sys
from dataclasses import dataclass

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(parent_pid: int | None = None) -> None:
    """Have the kernel SIGKILL this process the moment its parent dies, however the parent died (Linux's
    parent-death signal; elsewhere nothing happens). `parent_pid`: exit now if that parent is already gone."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(1)  # it died before we asked


def kill_runs_with_worker() -> None:
    """Every run process this worker forks dies with the worker (no training goes on unwatched)."""
    from celery.signals import worker_process_init

    worker_process_init.connect(lambda **_: die_with_parent(), weak=False)


def preload() -> None:
    """Import what every run needs, without running it: the engine, the models, the dataset readers, the
    HTTP client's TLS settings; then freeze the heap, so that a fork neither copies it nor scans it."""
    import torch  # noqa: F401

    import worker.engine  # noqa: F401  (builds on torch, torchvision's models and the dataset readers)
    from worker.channel import tls_context

    tls_context()  # reading the CA bundle costs ~0.15 s: once here, not in every run
    # Celery collects garbage before each fork (0.2 s with torch's objects loaded); frozen objects are
    # skipped, and pages a child does not write stay shared with the parent.
    gc.collect()
    gc.freeze()


@dataclass(frozen=True)
class Placement:
    slots: int = 1
    gpu: int | None = None  # pinned to this GPU (CUDA_VISIBLE_DEVICES), or every visible device
    cores: int = os.cpu_count() or 1

    @property
    def threads(self) -> int:
        """torch threads per run: the cores shared between the slots, at least one each."""
        return max(1, self.cores // self.slots)

    def environment(self) -> dict[str, str]:
        """The variables the worker runs with (and so every run process it forks)."""
        env = {
            "TRAINBOARD_TORCH_THREADS": str(self.threads),
            "OMP_NUM_THREADS": str(self.threads),
            "MKL_NUM_THREADS": str(self.threads),
        }
        if self.gpu is not None:
            # PCI order, as nvidia-smi numbers them (CUDA's default is fastest-first).
            env |= {"CUDA_VISIBLE_DEVICES": str(self.gpu), "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
        return env
