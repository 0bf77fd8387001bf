"""Per-owner quotas, checked where jobs are submitted (:func:`builder.jobs.queue.submit`) and where a study's runner
is started (:func:`check_study`): live jobs (running or paused), queued jobs, the bytes of the owner's run folders
and the GPU-seconds its jobs used in the last day; live study runners up to the ``running`` limit; an import's run
within the storage limit (:func:`check_storage`).

Limits come from, lowest precedence first: the defaults (:data:`DEFAULTS`: no limit), the server config's
``"quotas"`` (:func:`builder.runs.owners.server_config`), the environment (``LAYERLAB_QUOTA_RUNNING``,
``LAYERLAB_QUOTA_QUEUED``, ``LAYERLAB_QUOTA_STORAGE_MB``, ``LAYERLAB_QUOTA_GPU_SECONDS``) and every class the owner
belongs to (a class's ``"quotas"``). A limit of 0 or less (or none) means no limit. A class's quotas only tighten:
each limit is the lowest of the server's and every class's, so joining another class never lifts one (a teacher
is not an admin), and a class's 0 leaves the limit as it was. Teachers, and the CLI's ``local`` owner, are never limited.

The check and the recording of the new run happen under one lock file in the workspace (:func:`admit`), so two
submits at once cannot both pass a limit of one. Example::

    >>> check_usage({"running": 1, "queued": 0, "storage_mb": 0.0}, {"running": 1, "queued": 2})
    >>> try:
    ...     check_usage({"running": 1, "queued": 2, "storage_mb": 0.0}, {"running": 1, "queued": 2})
    ... except QuotaError as e:
    ...     print(str(e).split(";")[0])
    one person may have at most 2 job(s) waiting
    >>> gpu_seconds([{"status": "finished", "environment": {"device": "cuda:0"},
    ...               "started_at": "2026-11-23T10:00:00+00:00", "finished_at": "2026-11-23T10:05:00+00:00"}],
    ...             now=datetime(2026, 11, 23, 12, tzinfo=timezone.utc).timestamp())
    300.0
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from builder.data import records
from builder.data.access import SYSTEM
from builder.errors import RunStoreError
from builder.runs import db as _db
from builder.runs.classes import list_classes
from builder.runs.owners import LOCAL_OWNER, check_sees, is_teacher, owner_folders, server_config
from builder.runs.run_time import WINDOW_S, gpu_seconds, on_gpu, stamp
from builder.runs.store import RunStore
from builder.training.run_folder import folder_bytes
from builder.training.run_status import STARTED, RunStatus, is_live

KEYS = ("running", "queued", "storage_mb", "gpu_seconds")
DEFAULTS: dict[str, float | None] = {k: None for k in KEYS}
ENV = {"running": "LAYERLAB_QUOTA_RUNNING", "queued": "LAYERLAB_QUOTA_QUEUED", "storage_mb": "LAYERLAB_QUOTA_STORAGE_MB",
       "gpu_seconds": "LAYERLAB_QUOTA_GPU_SECONDS"}
GPU_WINDOW_S = WINDOW_S  # the GPU-time quota counts the last day (a rolling window, no midnight rush)
QUOTA_LOCK = "quota.lock"  # in the workspace: a quota check and the run it admits are recorded as one step
CPU_DEVICES = ("cpu", "mps")  # a job set to one of these never uses GPU time


STORED = "one person's runs, uploads and studies"  # what the storage quota counts (usage)
FREE_UP = ("delete runs you no longer need on the Runs page, or your data on the Server page, or ask your "
           "teacher")


class QuotaError(RunStoreError):
    """An owner is over a quota; nothing was recorded."""


def _number(value: object, where: str) -> float | None:
    if value is None or value == "":
        return None
    v = records.number(value, finite=False, parse=True)
    if v is None:
        raise QuotaError(f"a quota is a number (0 or less: no limit); received: {str(value)[:30]!r} in {where}. "
                         "Fix: write a whole number")
    return v if v > 0 else None


def limits(workspace: str | Path, owner: str) -> dict[str, float | None]:
    """The limits that apply to ``owner`` (None: no limit), from defaults < config file < environment, then the
    class's where they are lower."""
    return limit_sources(workspace, owner)[0]


def limit_sources(workspace: str | Path, owner: str) -> tuple[dict[str, float | None], dict[str, str]]:
    """:func:`limits` and, for each limit that is set, where it comes from (``the server config``,
    ``LAYERLAB_QUOTA_...``, ``the class ML 101``), which a refusal names."""
    out, where_of = dict(DEFAULTS), {}
    if owner == LOCAL_OWNER or is_teacher(workspace, owner):
        return out, where_of
    classes = [c for c in list_classes(workspace, member=owner) if c.get("quotas")]  # each lowers; none lifts
    layers: list[tuple[Mapping, str]] = [(server_config(workspace).get("quotas") or {}, "the server config"),
                                         ({k: os.environ.get(v) for k, v in ENV.items()}, "the environment"),
                                         *[(c["quotas"], f"the class {c['name']}") for c in classes]]
    for values, where in layers:
        if not isinstance(values, Mapping):
            raise QuotaError(f"quotas are an object of {', '.join(KEYS)}; received: {type(values).__name__} in "
                             f"{where}. Fix: write {{\"running\": 1, \"queued\": 2, \"storage_mb\": 500, "
                             "\"gpu_seconds\": 3600}")
        for key in KEYS:
            if values.get(key) not in (None, ""):
                value = _number(values[key], where)
                if where.startswith("the class ") and (value is None or (out[key] is not None and value >= out[key])):
                    continue  # a teacher's class lowers the admin's limits (and another class's), never lifts them
                out[key] = value
                where_of[key] = ENV[key] if where == "the environment" else where
    return out, where_of


def _gpu_records(store: RunStore, runs: list[dict], now: float) -> list[dict]:
    """The full records of the runs that may have used a GPU in the window (ended in it, or still live: a queued
    run too, whose earlier jobs' GPU time its ledger keeps, :mod:`builder.runs.run_time`)."""
    out = []
    for r in runs:
        end = stamp(r.get("finished_at") or r.get("updated_at"))
        if is_live(r["status"]) or end is None or end >= now - GPU_WINDOW_S:
            try:
                out.append(store.get(r["id"], actor=SYSTEM))
            except RunStoreError:
                continue
    return out


def usage(store: RunStore, owner: str, *, gpu: bool = True) -> dict[str, float]:
    """What ``owner`` uses now: ``running`` (running or paused jobs), ``queued`` jobs, ``storage_mb``
    (:func:`storage_bytes` in MiB) and ``gpu_seconds`` (:func:`gpu_seconds` over the last day; 0 with
    ``gpu=False``); for those :func:`check_sees` lets see it."""
    check_sees(store, owner)
    store.mark_interrupted()
    runs = store.list_runs(owner=owner, limit=100_000, actor=SYSTEM)  # counted whoever asks (a number)
    running = sum(r["status"] in STARTED for r in runs)
    queued = sum(r["status"] == RunStatus.QUEUED for r in runs)
    return {"running": running, "queued": queued, "storage_mb": storage_bytes(store, owner, runs) / 2**20,
            "gpu_seconds": _gpu_used(store, owner, runs) if gpu else 0.0}


def _gpu_used(store: RunStore, owner: str, runs: list[dict] | None = None) -> float:
    """GPU-seconds ``owner``'s runs used in the last day (:func:`gpu_seconds`); ``runs``: its runs, when listed."""
    if runs is None:
        runs = store.list_runs(owner=owner, limit=100_000, actor=SYSTEM)
    now = datetime.now(timezone.utc).timestamp()
    return gpu_seconds(_gpu_records(store, runs, now), now)


def storage_bytes(store: RunStore, owner: str, runs: list[dict] | None = None) -> int:
    """The bytes ``owner`` stores now, as the storage quota counts them: its run folders, its runs' records in the
    run database (:meth:`~builder.runs.store.RunStore.record_bytes`) and its other stored files
    (:func:`builder.runs.owners.owner_folders`: uploads, projects, studies). ``runs``: its runs, when the caller
    has listed them. A job's broker calls it while the job runs (:func:`builder.jobs.job_sandbox.job_room`), so
    jobs of one owner running at once are held to what the owner may store between them. For those
    :func:`check_sees` lets see it."""
    check_sees(store, owner)
    if runs is None:
        runs = store.list_runs(owner=owner, limit=100_000, actor=SYSTEM)
    size = sum(folder_bytes(f) for f in owner_folders(store.workspace, owner) if f.is_dir() and not f.is_symlink())
    size += store.record_bytes(owner)  # its runs' rows and curves in the run database (a job writes them)
    for r in runs:
        try:
            size += folder_bytes(store.run_dir(r["id"], actor=SYSTEM))
        except RunStoreError:
            continue
    return size


def storage_rule(cap: float, received: str) -> str:
    """The storage quota's rule and what it ``received``: one wording for every door that refuses by it (a job's
    admission, an upload, a running job: :func:`room_refusal`).

    >>> storage_rule(3, "2.5 MiB in use")
    "one person's runs, uploads and studies may take at most 3 MiB; received: 2.5 MiB in use"
    """
    return f"{STORED} may take at most {cap:g} MiB; received: {received}"


def check_usage(used: Mapping[str, float], limit: Mapping[str, float | None], *, gpu: bool = True,
                where: Mapping[str, str] | None = None, jobs: int = 1) -> None:
    """Raise :class:`QuotaError` when ``jobs`` more jobs (default one) would go over a limit: the owner's storage
    is full, its queued jobs would pass the ``queued`` limit, its live jobs (running, paused and queued) would
    pass ``running`` plus ``queued``, or (for a job that may use a GPU, ``gpu``) its GPU-seconds of the last day
    are spent. ``where`` (:func:`limit_sources`) names where the limit was set, at the end of the message.

    >>> check_usage({"running": 0, "queued": 0, "storage_mb": 0.0}, {"running": 1, "queued": 2}, jobs=2)
    >>> try:
    ...     check_usage({"running": 0, "queued": 0, "storage_mb": 0.0}, {"running": 1, "queued": 2}, jobs=3)
    ... except QuotaError as e:
    ...     print(str(e).split(";")[0])
    one person may have at most 2 job(s) waiting
    """
    run_cap, queue_cap, mb_cap = limit.get("running"), limit.get("queued"), limit.get("storage_mb")
    gpu_cap = limit.get("gpu_seconds")

    def refuse(key: str, text: str) -> QuotaError:
        src = (where or {}).get(key)
        return QuotaError(text + (f" (limit set by {src})" if src else ""))

    if mb_cap is not None and used["storage_mb"] >= mb_cap:
        in_use = f"{used['storage_mb']:.1f} MiB in use"
        raise refuse("storage_mb", f"{storage_rule(mb_cap, in_use)}. Fix: {FREE_UP}")
    more = max(1, int(jobs)) - 1  # the jobs asked for beyond the first
    asked = f", {more + 1:g} more asked for" if more else ""
    if queue_cap is not None and used["queued"] + more >= queue_cap:
        raise refuse("queued", f"one person may have at most {queue_cap:g} job(s) waiting; received: "
                     f"{used['queued']:g} queued{asked}. Fix: wait for one to start, or stop one on the Runs page")
    if run_cap is not None and used["running"] + used["queued"] + more >= run_cap + (queue_cap or 0):
        raise refuse("running", f"one person may have at most {run_cap:g} job(s) running and {queue_cap or 0:g} "
                     f"waiting; received: {used['running']:g} running, {used['queued']:g} queued{asked}. Fix: "
                     "wait for one to finish, or stop one on the Runs page")
    if gpu and gpu_cap is not None and used.get("gpu_seconds", 0.0) >= gpu_cap:
        raise refuse("gpu_seconds", f"{gpu_rule(gpu_cap, used.get('gpu_seconds', 0.0))}. Fix: set the device to CPU "
                     "on the Train page, wait until earlier runs are a day old, or ask your teacher")


def gpu_rule(cap: float, used: float) -> str:
    """The GPU-time quota's rule and the GPU-seconds it received: one wording for a job's admission and a running
    job stopped by it (:func:`gpu_spent`).

    >>> gpu_rule(3600, 3612.4)
    'one person may use at most 3600 GPU-seconds in 24 hours; received: 3612 GPU-seconds used in the last 24 hours'
    """
    return (f"one person may use at most {cap:g} GPU-seconds in 24 hours; received: {used:.0f} GPU-seconds used in "
            "the last 24 hours")


def gpu_limit(store: RunStore, owner: str) -> dict | None:
    """The GPU-time limit that applies to ``owner`` (its ``cap`` in GPU-seconds and ``where`` it was set; None: no
    limit), as its job's admission records it for the job's broker (:func:`gpu_spent`): read here, in the server,
    which knows the teachers and the environment's limits; a job's clean environment knows neither."""
    check_sees(store, owner)
    limit, where = limit_sources(store.workspace, owner)
    cap = limit.get("gpu_seconds")
    return None if cap is None else {"cap": cap, "where": where.get("gpu_seconds")}


def gpu_spent(store: RunStore, owner: str, limit: Mapping[str, Any] | None) -> Callable[[str], str | None] | None:
    """The GPU-time quota while a job of ``owner`` runs, under the ``limit`` its admission recorded
    (:func:`gpu_limit`; None: no such limit). Admission checks it before a job starts (:func:`check_quota`); a job
    admitted with a minute left could then train on a GPU for hours. The returned check, called by the job's
    broker every few seconds (:class:`builder.process.broker.Room`), answers for the job's run: None while it is not
    on a GPU or its owner's GPU-seconds of the last day are under the limit, else who stopped it, as the Runs and
    Train pages show it (its broker asks it to stop, so it keeps its checkpoint and can be resumed on the CPU, or
    once earlier runs are a day old).

    >>> gpu_spent(None, "anon:x", None) is None
    True
    """
    cap = limit.get("cap") if isinstance(limit, Mapping) else None
    if not isinstance(cap, int | float) or isinstance(cap, bool):
        return None
    check_sees(store, owner)
    src = limit.get("where")

    def spent(run_id: str) -> str | None:
        if not on_gpu(store.get(run_id, actor=SYSTEM)):
            return None
        used = _gpu_used(store, owner)
        if used < cap:
            return None
        return f"the GPU-time quota ({gpu_rule(cap, used)}" + (f"; limit set by {src}" if src else "") + ")"

    return spent


def wants_gpu(device: object) -> bool:
    """Whether a job with this device setting may train on a GPU (``auto``, ``cuda``, ``cuda:N``)."""
    return str(device or "auto").split(":", 1)[0] not in CPU_DEVICES


def check_quota(store: RunStore, owner: str, *, device: str = "auto", jobs: int = 1) -> dict | None:
    """Refuse ``jobs`` new jobs (default one) of ``owner`` over its quotas (:class:`QuotaError`, worded rule;
    received; Fix); the GPU-time quota only for a job whose ``device`` may be a GPU (:func:`wants_gpu`). Called
    by :func:`builder.jobs.queue.submit` (and for a whole group by :func:`~builder.jobs.queue.submit_group`) under
    :func:`admit` before anything is recorded. Returns the job's room (:func:`room_of`: what its owner may still
    store, which its broker holds it to while it runs; None: no storage limit)."""
    check_sees(store, owner)
    limit, where = limit_sources(store.workspace, owner)
    if all(v is None for v in limit.values()):
        return None
    gpu = wants_gpu(device) and limit.get("gpu_seconds") is not None
    used = usage(store, owner, gpu=gpu)
    check_usage(used, limit, gpu=gpu, where=where, jobs=jobs)
    return room_of(used, limit, where)


def check_storage(store: RunStore, owner: str) -> None:
    """Refuse new stored work of ``owner`` whose runs already take its ``storage_mb`` limit (:class:`QuotaError`):
    an import, whose weights become a run of the importer's (a job checks this with the rest in :func:`check_quota`).
    Called by the import doors (the Build page's Import and model library) before the worker starts."""
    check_sees(store, owner)
    limit, where = limit_sources(store.workspace, owner)
    if limit.get("storage_mb") is None:
        return
    used = {"running": 0, "queued": 0, "storage_mb": usage(store, owner, gpu=False)["storage_mb"]}
    check_usage(used, {"storage_mb": limit["storage_mb"]}, gpu=False, where=where)


def check_upload(store: RunStore, owner: str, nbytes: int) -> None:
    """Refuse an upload of ``nbytes`` new bytes that would take ``owner``'s stored files past its ``storage_mb``
    limit (:class:`QuotaError`), before it is written; uploads, like runs, count (:func:`usage`). Called by the
    one door that keeps an upload (``app_pages.ui.save_upload``; the CLI's local user has no quota).

    Raises:
        QuotaError: over the limit, naming the limit, the bytes in use and asked for, and where it was set.
    """
    check_sees(store, owner)
    limit, where = limit_sources(store.workspace, owner)
    cap = limit.get("storage_mb")
    if cap is None or nbytes <= 0:
        return
    used = usage(store, owner, gpu=False)["storage_mb"]
    if used + nbytes / 2**20 > cap:
        src = where.get("storage_mb")
        received = f"{used:.1f} MiB in use and {nbytes / 2**20:.1f} MiB more uploaded"
        raise QuotaError(f"{storage_rule(cap, received)}. Fix: {FREE_UP}" + (f" (limit set by {src})" if src else ""))


def room_of(used: Mapping[str, float], limit: Mapping[str, float | None],
            where: Mapping[str, str] | None = None) -> dict | None:
    """What an owner who uses ``used`` may still store under its ``storage_mb`` limit (None: no limit), as the
    record a job's room is made of (:func:`room_refusal`): ``left`` bytes, the cap, the MiB in use, where the limit
    was set.

    >>> room_of({"storage_mb": 2.5}, {"storage_mb": 3})["left"]
    524288
    """
    cap = limit.get("storage_mb")
    if cap is None:
        return None
    return {"left": max(0, int((cap - used["storage_mb"]) * 2**20)), "cap_mb": cap,
            "used_mb": round(float(used["storage_mb"]), 3), "where": (where or {}).get("storage_mb")}


def room_refusal(room: Mapping[str, Any]) -> Callable[..., str]:
    """The line for a job which took more than its ``room`` (:func:`room_of`), given the bytes it took, whether
    it had recorded its end by then (it is then not stopped: its results are kept, and new jobs wait for room) and,
    for a job stopped because its owner's storage as a whole filled up while it wrote (its owner's other jobs
    running at once took their part), ``total``: the bytes its owner stored then (:func:`storage_bytes`).

    >>> line = room_refusal({"left": 0, "cap_mb": 3, "used_mb": 2.5, "where": None})
    >>> line(2**20, False).split("(")[1].split(")")[0]
    "one person's runs, uploads and studies may take at most 3 MiB; received: 2.5 MiB in use when it started and 1.0 MiB more written by it"
    >>> line(2**20, True)[:44]
    "the run ended past its owner's storage (one "
    >>> line(2**19, False, total=int(3.2 * 2**20)).split(": ", 1)[1].split(" (")[0]
    "its owner's storage filled up while it wrote"
    """
    cap, used, src = room.get("cap_mb"), float(room.get("used_mb") or 0), room.get("where")

    def refusal(taken: int, ended: bool, total: int | None = None) -> str:
        received = (f"{used:.1f} MiB in use when it started and {taken / 2**20:.1f} MiB more written by it"
                    if total is None else f"{total / 2**20:.1f} MiB in use, {taken / 2**20:.1f} MiB of it written "
                    "by this job and the rest by its owner's other work")
        why = f"({storage_rule(cap, received)}" + (f"; limit set by {src}" if src else "") + ")"
        if ended:
            return (f"the run ended past its owner's storage {why}: its results are kept, and new jobs wait until "
                    f"there is room. Fix: {FREE_UP}")
        what = "it outgrew its owner's storage" if total is None else "its owner's storage filled up while it wrote"
        return (f"the training job stopped: {what} {why}. The run failed; resume it once there is room; the app "
                f"is unaffected. Fix: {FREE_UP}")

    return refusal


def check_study(store: RunStore, owner: str, *, studies: int, device: str = "auto") -> None:
    """Refuse a new study runner of ``owner`` (:class:`QuotaError`): its live study runners (``studies``, counted
    by the caller: :func:`builder.search.runner.live_runners`) already as many as its ``running`` limit, or no
    room for one more job (:func:`check_quota`: storage full, live and queued jobs at their limits). A runner is a
    process its owner started (torch imported, held for the study's hours) whose trials are its jobs. Called by
    :func:`builder.search.runner.launch_study` under :func:`admit`, before anything is claimed or started."""
    check_sees(store, owner)
    limit, where = limit_sources(store.workspace, owner)
    run_cap = limit.get("running")
    if run_cap is not None and studies >= run_cap:
        src = where.get("running")
        raise QuotaError(f"one person may have at most {run_cap:g} search(es) running at once; received: {studies} "
                         "running. Fix: stop one on the Search page, or wait for it to finish"
                         + (f" (limit set by {src})" if src else ""))
    check_quota(store, owner, device=device)


@contextmanager
def admit(store: RunStore) -> Iterator[None]:
    """Hold the workspace's quota lock (``<workspace>/quota.lock``, an exclusive ``flock``; an advisory lock in a
    shared PostgreSQL store: :func:`builder.runs.db.workspace_lock`) for a quota check and the recording of the
    run it admits, so concurrent submits (threads, processes or servers) are checked one after the other: each
    sees the runs the ones before it recorded."""
    with _db.workspace_lock(store.workspace, QUOTA_LOCK):
        yield


__all__ = ["KEYS", "ENV", "GPU_WINDOW_S", "QUOTA_LOCK", "QuotaError", "limits", "limit_sources", "usage", "check_usage", "check_quota",
           "check_study", "check_storage", "storage_bytes", "storage_rule", "gpu_rule", "gpu_limit", "gpu_spent", "room_of", "room_refusal", "check_upload", "admit", "folder_bytes", "gpu_seconds", "on_gpu", "wants_gpu"]
