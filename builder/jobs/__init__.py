"""The jobs edge: the processes that train and interpret for the server, above the stages they launch.

:mod:`.queue` runs each training as its own OS process (submit, control, the warm launcher; :mod:`.control` is a
job's control and heartbeat thread); :mod:`.job_sandbox`
puts a job under limits; :mod:`.quotas` checks an owner's quotas where jobs are submitted; :mod:`.specs` builds the
job specs of a prune and of a cross-validation; :mod:`.probe` (with :mod:`.probe_child` and :mod:`.probe_wire`)
answers the Explain, Runs and class pages from a sandboxed child process, so a run's model never runs in the server.
The names of :mod:`.queue` stay importable from this package (LayerLab 0.1's ``builder.jobs``).
"""

from __future__ import annotations

import importlib

#: the job API of :mod:`.queue`, importable from the package as LayerLab 0.1's ``builder.jobs`` was
_QUEUE_NAMES = frozenset({"JobSpec", "JOB_KINDS", "submit", "submit_group", "request", "queue_position", "max_jobs",
                          "wait", "run_job", "StoreControl", "ENV_MAX_JOBS", "torch_threads", "explicit_threads",
                          "THREADS_MACS_PER_CORE", "claim_gpu", "job_need", "GPU_QUERY", "main"})


def __getattr__(name: str):
    if name in _QUEUE_NAMES:  # the job API (torch, the store) is imported on first use, not by this package
        return getattr(importlib.import_module("builder.jobs.queue"), name)
    raise AttributeError(f"module 'builder.jobs' has no attribute {name!r}")
