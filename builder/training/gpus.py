"""GPU jobs that share: which GPU a waiting training job runs on, from its memory estimate and what each GPU has free.

A class of students pressing Start on a one-GPU server should not queue behind a GPU that is 99 % idle (issue 20:
16 digits jobs took 154 s one at a time, 29.8 s with 8 sharing). :func:`place` puts a job on the GPU with the
fewest jobs (then the most room) among those where it fits: the GPU's *room* is the free memory it reports less
what the jobs placed on it are still expected to allocate (estimate − what the driver says the process uses; a
job that just started has allocated nothing yet), at most its total less their estimates (or their use, when
larger), less :data:`RESERVE_BYTES`; at most ``per_gpu`` jobs share one GPU
(``$LAYERLAB_JOBS_PER_GPU``, default :data:`JOBS_PER_GPU`). A job that fits nowhere waits. The estimate of a job
is :func:`builder.graph.memory.training_memory` at its batch size plus :data:`CUDA_CONTEXT_BYTES`.

The GPU query is injectable: :func:`query_gpus` asks ``nvidia-smi`` (no CUDA context in the asking process) and
falls back to ``torch.cuda.mem_get_info``; tests pass their own list of :class:`Gpu`. Example::

    >>> gpus = [Gpu(0, free=70 * GiB, total=80 * GiB), Gpu(1, free=2 * GiB, total=80 * GiB)]
    >>> place(3 * GiB, gpus, running=[], per_gpu=8)
    0
    >>> pack([("a", 30 * GiB), ("b", 30 * GiB), ("c", 30 * GiB)], gpus, running=[], per_gpu=8)
    {'a': 0, 'b': 0, 'c': None}
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from builder.errors import TrainingError

GiB = 2**30
ENV_JOBS_PER_GPU = "LAYERLAB_JOBS_PER_GPU"
JOBS_PER_GPU = 8  # jobs sharing one GPU at most (issue 20: 8 sharing finished 16 digits jobs 5x sooner)
CUDA_CONTEXT_BYTES = 600 * 2**20  # a process's CUDA context, cuBLAS and cuDNN workspaces (added to each estimate)
RESERVE_BYTES = 512 * 2**20  # left free on every GPU (fragmentation, other users)


@dataclass(frozen=True)
class Gpu:
    """One GPU as the driver reports it: its index (as CUDA numbers it in this process), free and total bytes."""

    index: int
    free: int
    total: int


@dataclass(frozen=True)
class Placed:
    """A running job's placement: its run id, its GPU, the bytes it was estimated to need and the bytes its
    process uses now (0 when unknown: it is then expected to allocate all of its estimate still)."""

    run_id: str
    gpu: int
    need: int
    used: int = 0


def jobs_per_gpu() -> int:
    """``$LAYERLAB_JOBS_PER_GPU``, else :data:`JOBS_PER_GPU`.

    Raises:
        TrainingError: a value that is not a positive integer.
    """
    env = os.environ.get(ENV_JOBS_PER_GPU, "").strip()
    if not env:
        return JOBS_PER_GPU
    if not (env.isdigit() and int(env) > 0):
        raise TrainingError(f"{ENV_JOBS_PER_GPU} must be a positive integer; received: {env!r}. Fix: set it to 1 "
                            "or more, or unset it")
    return int(env)


def room(gpu: Gpu, running: Iterable[Placed]) -> int:
    """Bytes a new job may use on ``gpu``: min(free − Σ (need − used)⁺, total − Σ max(need, used)) − reserve."""
    mine = [p for p in running if p.gpu == gpu.index]
    coming = sum(max(0, p.need - p.used) for p in mine)
    return min(gpu.free - coming, gpu.total - sum(max(p.need, p.used) for p in mine)) - RESERVE_BYTES


def place(need: int, gpus: list[Gpu], running: list[Placed], per_gpu: int) -> int | None:
    """The GPU index for a job needing ``need`` bytes, or None when it fits on none (it waits).

    Among the GPUs with fewer than ``per_gpu`` jobs and room for ``need``: the one with the fewest jobs, then the
    most room, then the lowest index.
    """
    best: tuple[int, int, int] | None = None
    for g in gpus:
        n = sum(1 for p in running if p.gpu == g.index)
        r = room(g, running)
        if n < per_gpu and need <= r:
            key = (n, -r, g.index)
            best = key if best is None or key < best else best
    return None if best is None else best[2]


def pack(queue: list[tuple[str, int]], gpus: list[Gpu], running: list[Placed], per_gpu: int) -> dict[str, int | None]:
    """Place queued jobs ``(run id, bytes)`` in order, each seeing the ones placed before it: ``{run id: GPU or
    None}`` (None: waits). What the job processes decide one by one as they claim their slots."""
    placed, out = list(running), {}
    for rid, need in queue:
        gpu = place(need, gpus, placed, per_gpu)
        out[rid] = gpu
        if gpu is not None:
            placed.append(Placed(rid, gpu, need))
    return out


def _nvidia_smi() -> list[Gpu] | None:
    exe = shutil.which("nvidia-smi")
    if exe is None or os.environ.get("CUDA_VISIBLE_DEVICES") is not None:  # physical numbering would not match
        return None
    try:
        out = subprocess.run([exe, "--query-gpu=index,memory.free,memory.total", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=10, check=True).stdout
        rows = [[int(v) for v in line.split(",")] for line in out.strip().splitlines() if line.strip()]
        return [Gpu(i, free * 2**20, total * 2**20) for i, free, total in rows]
    except (OSError, subprocess.SubprocessError, ValueError):
        return None


def query_used() -> dict[int, int]:
    """GPU bytes used per process id (``nvidia-smi``); {} when it cannot tell (jobs then count at their estimate)."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return {}
    try:
        out = subprocess.run([exe, "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=10, check=True).stdout
        used: dict[int, int] = {}
        for line in out.strip().splitlines():
            pid, mib = (int(v) for v in line.split(","))
            used[pid] = used.get(pid, 0) + mib * 2**20
        return used
    except (OSError, subprocess.SubprocessError, ValueError):
        return {}


def query_gpus() -> list[Gpu]:
    """Every visible GPU's free and total memory (``nvidia-smi``, else ``torch.cuda.mem_get_info``); [] without
    CUDA."""
    import torch  # lazy: heavy (torch)

    if not torch.cuda.is_available():
        return []
    found = _nvidia_smi()
    if found is not None and len(found) == torch.cuda.device_count():
        return found
    return [Gpu(i, *torch.cuda.mem_get_info(i)) for i in range(torch.cuda.device_count())]


def start_runtime(index: int) -> None:
    """Make GPU ``index`` this process's current device and start the CUDA runtime there now: the context, cuBLAS
    (a matrix product, float32 and bf16 autocast) and cuDNN (a convolution and its backward pass), whose host
    memory is loaded on first use. A job calls it before its limits are set (what the runtime holds, ~1 GiB
    resident and ~1.7 GiB of writable mappings with torch 2.11 on an H100, is not the user's model and data)."""
    import torch  # lazy: heavy (torch)

    torch.cuda.set_device(index)
    x = torch.ones(8, 8, device="cuda")
    (x @ x).sum().item()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        (x @ x).float().sum().item()
    conv = torch.nn.Conv2d(1, 1, 3).cuda()
    conv(torch.ones(1, 1, 4, 4, device="cuda")).sum().backward()
    torch.cuda.synchronize()


GpuQuery = Callable[[], list[Gpu]]

__all__ = ["Gpu", "Placed", "place", "pack", "room", "query_gpus", "query_used", "jobs_per_gpu", "start_runtime",
           "GpuQuery", "ENV_JOBS_PER_GPU",
           "JOBS_PER_GPU", "CUDA_CONTEXT_BYTES", "RESERVE_BYTES", "GiB"]
