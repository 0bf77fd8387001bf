"""How many training jobs run at once on a host, and how many torch threads each uses: the settings
(``LAYERLAB_MAX_JOBS``, ``LAYERLAB_JOBS_PER_GPU``, ``LAYERLAB_TORCH_THREADS``, ``OMP_NUM_THREADS``) and the rule
from a model's multiply-adds. Read by the job queue (:mod:`builder.jobs.queue`) and the trainer.

>>> torch_threads(1, cap=4) >= 1
True
"""

from __future__ import annotations

import os

from builder.errors import TrainingError
from builder.training import gpus as _gpus

ENV_MAX_JOBS = "LAYERLAB_MAX_JOBS"
ENV_TORCH_THREADS = "LAYERLAB_TORCH_THREADS"


def max_jobs(gpus: int | None = None) -> int:
    """Concurrent jobs per workspace and host: ``$LAYERLAB_MAX_JOBS``, else ``$LAYERLAB_JOBS_PER_GPU`` (default 8)
    per GPU (which GPU, and whether one fits at all, is decided by memory: :mod:`builder.training.gpus`), else
    cores − 1 (≥ 1). ``gpus``: the number of GPUs (default: torch's count).

    Raises:
        TrainingError: ``LAYERLAB_MAX_JOBS`` or ``LAYERLAB_JOBS_PER_GPU`` is not a positive integer.
    """
    env = os.environ.get(ENV_MAX_JOBS, "").strip()
    if env:
        try:
            n = int(env)
        except ValueError:
            n = 0
        if n < 1:
            raise TrainingError(f"{ENV_MAX_JOBS} must be a positive integer; received: {env!r}. "
                                "Fix: set it to 1 or more, or unset it")
        return n
    if gpus is None:
        import torch  # lazy: heavy (torch)

        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus > 0:
        return gpus * _gpus.jobs_per_gpu()
    return max(1, (os.cpu_count() or 2) - 1)


THREADS_MACS_PER_CORE = 200_000_000
_THREAD_SETTINGS = (ENV_TORCH_THREADS, "OMP_NUM_THREADS")


def explicit_threads() -> int | None:
    """The thread count the user set: ``$LAYERLAB_TORCH_THREADS``, else ``$OMP_NUM_THREADS`` (torch's own
    setting; a value that is not a positive integer is ignored there, as torch does); None when unset.

    Raises:
        TrainingError: ``LAYERLAB_TORCH_THREADS`` set to something other than a positive integer.
    """
    for name in _THREAD_SETTINGS:
        env = os.environ.get(name, "").strip()
        if env.isdigit() and int(env) > 0:
            return int(env)
        if env and name == ENV_TORCH_THREADS:
            raise TrainingError(f"{name} must be a positive integer; received: {env!r}. Fix: set it to 1 or more, "
                                "or unset it")
    return None


def torch_threads(macs_per_batch: int | None = None, cap: int | None = None) -> int:
    """Intra-op torch threads for training: the user's setting (:func:`explicit_threads`), else one thread per
    :data:`THREADS_MACS_PER_CORE` forward multiply-adds of a batch (at least 1), at most ``cap``.

    ``cap`` defaults to a job's share of the cores: cores − 1 over the job limit (at least 1). Without
    ``macs_per_batch`` (the model is not known yet) the share itself. The trainer calls this with the model's
    measured multiply-adds and the threads the process was given as ``cap``, so a small model trains on one
    thread (faster on a 2-core CPU than two: bench/RESULTS.md, "Cost per node", times each template on 1 and
    2 threads) and a big conv on all.

    Raises:
        TrainingError: a thread setting or ``LAYERLAB_MAX_JOBS`` that is not a positive integer.
    """
    n = explicit_threads()
    if n is not None:
        return n
    if cap is None:
        cap = max(1, ((os.cpu_count() or 2) - 1) // max_jobs())
    if macs_per_batch is None:
        return max(1, cap)
    return max(1, min(cap, -(-int(macs_per_batch) // THREADS_MACS_PER_CORE)))


__all__ = ["ENV_MAX_JOBS", "ENV_TORCH_THREADS", "THREADS_MACS_PER_CORE", "max_jobs", "explicit_threads",
           "torch_threads"]
