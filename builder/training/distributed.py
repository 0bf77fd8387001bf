"""Scale-out with ``torchrun``: process-group setup and the context the trainer uses to shard batches.

Under ``torchrun --nproc_per_node N -m builder train FILE ...`` every process reads ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK`` from the environment, joins a process group (``nccl`` on GPUs, ``gloo``
on CPU), wraps the model in DistributedDataParallel and takes every N-th sample of each global batch
(so N processes with batch size B follow the same trajectory as one process with batch size B, up to
floating-point reduction order). Rank 0 alone writes the run. See ``docs/scale-out.md``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from builder.errors import TrainingError


@dataclass
class DistContext:
    """Where this process sits in a distributed job."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str

    @property
    def is_main(self) -> bool:
        """True on rank 0 (the process that writes runs, checkpoints and output)."""
        return self.rank == 0


def env_world_size() -> int:
    """``WORLD_SIZE`` from the environment (1 when not launched by torchrun)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def init_distributed(device: str = "auto") -> DistContext | None:
    """Join the process group torchrun prepared; returns None when not running distributed.

    ``device`` ``auto`` uses ``cuda:LOCAL_RANK`` with nccl when this host has a GPU for each of its processes,
    else the CPU with gloo; ``cuda`` with fewer GPUs than processes is refused (NCCL's "invalid usage").

    Raises:
        TrainingError: the environment is incomplete or the process group cannot be formed.
    """
    world = env_world_size()
    if world <= 1:
        return None
    import torch.distributed as dist  # lazy: heavy (torch)

    try:
        rank = int(os.environ["RANK"])
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    except (KeyError, ValueError):
        raise TrainingError("WORLD_SIZE is set but RANK is missing; launch with torchrun") from None
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    # NCCL needs a GPU of its own per process: `auto` with fewer GPUs than processes on this host trains on CPUs
    use_cuda = device.startswith("cuda") or (device == "auto" and 0 < local_world <= gpus)
    if use_cuda:
        if not gpus:
            raise TrainingError(f"device {device!r} requested but CUDA is not available")
        if local_world > gpus:
            raise TrainingError(f"{local_world} processes on this host share {gpus} GPU(s); received: device "
                                f"{device!r}. Fix: start at most {gpus} process(es) per host (--nproc_per_node), "
                                "or use device cpu")
        dev = torch.device("cuda", local_rank % gpus)
        torch.cuda.set_device(dev)
        backend = "nccl"
    else:
        dev = torch.device("cpu")
        backend = "gloo"
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(local_world, 1)))
    if not dist.is_initialized():
        try:
            dist.init_process_group(backend=backend)
        except (RuntimeError, ValueError) as e:
            raise TrainingError(f"cannot join the {backend} process group: {e}") from None
    return DistContext(rank=rank, world_size=world, local_rank=local_rank, device=dev, backend=backend)


def cleanup(ctx: DistContext | None) -> None:
    """Leave the process group (no-op when not distributed)."""
    if ctx is None:
        return
    import torch.distributed as dist  # lazy: heavy (torch)

    if dist.is_initialized():
        try:
            dist.barrier()
        finally:
            dist.destroy_process_group()


__all__ = ["DistContext", "init_distributed", "cleanup", "env_world_size"]
