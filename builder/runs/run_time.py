"""The time a run ran and the GPU time it used: one home for both rules, the running clock that a run's duration
reads (:func:`running_clock`, :func:`builder.runs.summary.duration_s`) and what the GPU-seconds quota counts
(:mod:`builder.jobs.quotas`).

A run uses a GPU from when its job starts (a resumed run: from when it was queued again) until it ends, paused time
included (a paused job keeps its GPU), times its processes (``environment.world_size``). A run stopped and resumed
has several such segments: :meth:`~builder.runs.store.RunStore.requeue` closes the last one into the run's ledger
(``environment.gpu_used``, :func:`closed`) before it queues the run again, so a resume never forgets what the run
used before (it did: stop and resume reset a run's GPU time to nothing).

What decides the quota, and what the schedulers read, is LayerLab's to write: a person's job (whose model may be
turned against it) reads and writes its own run, so :func:`guarded` keeps :data:`SYSTEM_KEYS` (the ledger, a job's
GPU slot, a cluster's record) and a CUDA device once recorded from being changed by anyone but the system
(:meth:`~builder.runs.store.RunStore.set_environment`), and the run's times are system columns.

>>> run = {"status": "finished", "environment": {"device": "cuda:0", "gpu_used": [[0.0, 100.0, 1]]},
...        "started_at": "1970-01-01T00:00:00+00:00", "queued_at": 200.0, "finished_at": "1970-01-01T00:05:00+00:00"}
>>> run_gpu_seconds(run, now=1000.0)  # 100 s before the resume, 100 s after it
200.0
>>> closed(run, now=1000.0)
{'gpu_used': [[0.0, 100.0, 1], [200.0, 300.0, 1]]}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from builder.data.records import number as _number
from builder.training.run_status import RunStatus, is_live

WINDOW_S = 24 * 3600.0  # the GPU-time quota counts the last day (a rolling window, no midnight rush)
LEDGER = "gpu_used"  # environment key: the run's closed GPU segments, [start, end, processes] (epoch seconds)
MAX_SEGMENTS = 256  # a ledger longer than this folds its oldest segments together (never counting less)
PLACEMENT = ("device", "gpu", "gpu_need")  # environment keys of where a job runs: on_gpu reads the first two
SPEC_DIGEST = "job_spec_sha256"  # the job spec's digest as the server wrote it (RunFolder.write_job_spec)
SYSTEM_KEYS = (LEDGER, "gpu", "gpu_need", "executor", "ray_address", "resources", "storage_room", "gpu_quota",
               SPEC_DIGEST)
"""Environment keys only the system writes: the ledger, what the schedulers read of a live job (its GPU slot
and estimate, :func:`builder.jobs.queue.claim_gpu`; its cluster executor and resources,
:func:`builder.jobs.executors.place_jobs`): a job that set them could hold every GPU slot or a cluster's room; and
the storage its owner had left when it was admitted (:func:`builder.jobs.quotas.room_of`) and its owner's GPU-time
limit then (:func:`builder.jobs.quotas.gpu_limit`), which its broker holds it to."""


def running_clock(env: dict, status: str, now: datetime | None = None) -> dict | None:
    """The environment fields that keep a run's running time as its status changes: ``running_since`` (set when it
    starts running) and ``run_s`` (seconds it ran before, added to when it stops running); None when nothing changes.

    >>> t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    >>> on = running_clock({}, "running", t0)
    >>> running_clock(on, "paused", t0.replace(second=30))
    {'run_s': 30.0, 'running_since': None}
    """
    now = now or datetime.now(timezone.utc)
    since = env.get("running_since")
    if status == RunStatus.RUNNING:
        return None if since else {"running_since": now.isoformat()}
    if not since:
        return None
    start = stamp(since)
    ran = 0.0 if start is None else max(0.0, now.timestamp() - start)
    return {"run_s": float(env.get("run_s") or 0.0) + ran, "running_since": None}


def stamp(value: object) -> float | None:
    """An ISO time as epoch seconds (UTC when it names no zone); None when it is not one: the one reading of a
    stored time (a run's times, a display of them, an age, a duration).

    >>> stamp("1970-01-01T00:01:00+00:00"), stamp("1970-01-01T00:01:00"), stamp("soon"), stamp(None)
    (60.0, 60.0, None, None)
    """
    try:
        d = datetime.fromisoformat(str(value))
    except (TypeError, ValueError):
        return None
    return (d if d.tzinfo else d.replace(tzinfo=timezone.utc)).timestamp()


def on_gpu(run: Mapping) -> bool:
    """Whether a run's record says it trained on a CUDA device (``environment.device`` ``cuda...``, or the GPU
    the job packing placed it on).

    >>> on_gpu({"environment": {"device": "cuda:0"}}), on_gpu({"environment": {"device": "cpu", "gpu": None}})
    (True, False)
    """
    env = run.get("environment") or {}
    return _cuda(env) or (isinstance(env.get("gpu"), int) and not isinstance(env.get("gpu"), bool))


def _processes(run: Mapping) -> int:
    procs = (run.get("environment") or {}).get("world_size")
    return int(procs) if isinstance(procs, int) and not isinstance(procs, bool) and procs > 0 else 1


def segment(run: Mapping, now: float) -> tuple[float, float, int] | None:
    """The run's current (or last) GPU segment as ``(start, end, processes)``: from its start, or from when it was
    queued again, to its end or to ``now`` while it runs or is paused; None when it is not on a GPU, is queued or
    never started."""
    if not on_gpu(run) or run.get("status") == RunStatus.QUEUED:
        return None
    start = stamp(run.get("started_at"))
    if start is None:
        return None
    queued = _number(run.get("queued_at"))
    if queued is not None and queued > start:  # resumed: this segment began when re-queued
        start = queued
    end = now if is_live(str(run.get("status"))) else stamp(run.get("finished_at") or run.get("updated_at"))
    return None if end is None else (start, max(start, end), _processes(run))


def ledger(env: Mapping) -> list[list[float]]:
    """The closed segments a run's environment records, coerced (anything malformed is left out)."""
    out = []
    for item in env.get(LEDGER) or []:
        if isinstance(item, (list, tuple)) and len(item) == 3 and all(_number(v) is not None for v in item):
            start, end, procs = (float(v) for v in item)
            if end >= start and procs >= 1:
                out.append([start, end, int(procs)])
    return out


def run_gpu_seconds(run: Mapping, now: float, window_s: float = WINDOW_S) -> float:
    """GPU-seconds ``run`` used within the last ``window_s`` seconds: its ledger's segments and its current one."""
    parts = ledger(run.get("environment") or {})
    if (seg := segment(run, now)) is not None:
        parts.append(list(seg))
    lo = now - window_s
    return sum(max(0.0, min(end, now) - max(start, lo)) * procs for start, end, procs in parts)


def gpu_seconds(runs: Iterable[Mapping], now: float | None = None, window_s: float = WINDOW_S) -> float:
    """GPU-seconds that ``runs`` (full store records: ``environment``, ``status``, timestamps) used within the
    last ``window_s`` seconds (:func:`run_gpu_seconds`); queued runs hold no GPU and count nothing now."""
    now = datetime.now(timezone.utc).timestamp() if now is None else float(now)
    return sum(run_gpu_seconds(r, now, window_s) for r in runs)


def closed(run: Mapping, now: float) -> dict[str, Any]:
    """The environment of ``run`` with its current GPU segment moved into its ledger (segments that ended before
    the window are dropped; past :data:`MAX_SEGMENTS` the oldest two fold into one of their processes together
    that ends where the later ended, so the fold never counts less within the window) and its placement cleared
    (the next job records its own: a resume on the CPU holds no GPU): what :meth:`RunStore.requeue` writes."""
    env = {k: v for k, v in (run.get("environment") or {}).items() if k not in PLACEMENT}
    parts = [p for p in ledger(env) if p[1] >= now - WINDOW_S]
    if (seg := segment(run, now)) is not None and seg[1] > seg[0]:
        parts.append(list(seg))
    while len(parts) > MAX_SEGMENTS:  # both as one segment of p1 + p2 processes that ends where the later ended
        (s1, e1, p1), (s2, e2, p2) = parts[0], parts[1]
        procs = int(p1 + p2)
        parts[:2] = [[e2 - ((e1 - s1) * p1 + (e2 - s2) * p2) / procs, e2, procs]]
    if parts:
        env[LEDGER] = parts
    return env


def guarded(old: Mapping, new: Mapping) -> dict[str, Any]:
    """``new``, an environment a person's process (not the system) writes over ``old``, with what the GPU quota
    and the schedulers read kept: :data:`SYSTEM_KEYS` as they were, and a run on a GPU still on it.

    >>> guarded({"device": "cuda:0", "gpu": 0, "gpu_used": [[0, 9, 1]]},
    ...         {"device": "cpu", "gpu": None, "gpu_need": 2**60, "gpu_used": [], "precision": "fp32"})
    {'device': 'cuda:0', 'precision': 'fp32', 'gpu_used': [[0, 9, 1]], 'gpu': 0}
    """
    out = {k: v for k, v in new.items() if k not in SYSTEM_KEYS}
    out.update({k: old[k] for k in SYSTEM_KEYS if k in old})
    if _cuda(old) and not _cuda(out):  # a GPU's time is charged once its device is recorded
        out["device"] = old["device"]
    return out


def _cuda(env: Mapping) -> bool:
    return str(env.get("device") or "").startswith("cuda")
