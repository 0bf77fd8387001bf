"""Per-owner quotas, checked where jobs are submitted (:func:`builder.runs.jobs.submit`): live jobs (running or
paused), queued jobs and the bytes of the owner's run folders.

Limits come from, lowest precedence first: the defaults (:data:`DEFAULTS`: no limit), the server config's
``"quotas"`` (:func:`builder.runs.owners.server_config`), the environment (``LAYERLAB_QUOTA_RUNNING``,
``LAYERLAB_QUOTA_QUEUED``, ``LAYERLAB_QUOTA_STORAGE_MB``) and the class the owner belongs to
(:func:`builder.runs.classes.class_quotas`). A limit of 0 or less (or none) means no limit. Teachers, and the CLI's
``local`` owner, are never limited. Example::

    >>> check_usage({"running": 1, "queued": 0, "storage_mb": 0.0}, {"running": 1, "queued": 2})
    >>> try:
    ...     check_usage({"running": 1, "queued": 2, "storage_mb": 0.0}, {"running": 1, "queued": 2})
    ... except QuotaError as e:
    ...     print(str(e).split(";")[0])
    one person may have at most 2 job(s) waiting
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from builder.errors import RunStoreError
from builder.runs.classes import class_quotas
from builder.runs.owners import LOCAL_OWNER, is_teacher, server_config
from builder.runs.status import STARTED, RunStatus
from builder.runs.store import RunStore

KEYS = ("running", "queued", "storage_mb")
DEFAULTS: dict[str, float | None] = {"running": None, "queued": None, "storage_mb": None}
ENV = {"running": "LAYERLAB_QUOTA_RUNNING", "queued": "LAYERLAB_QUOTA_QUEUED", "storage_mb": "LAYERLAB_QUOTA_STORAGE_MB"}


class QuotaError(RunStoreError):
    """An owner is over a quota; nothing was recorded."""


def _number(value: object, where: str) -> float | None:
    if value is None or value == "":
        return None
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise QuotaError(f"a quota is a number (0 or less: no limit); received: {str(value)[:30]!r} in {where}. "
                         "Fix: write a whole number") from None
    return v if v > 0 else None


def limits(workspace: str | Path, owner: str) -> dict[str, float | None]:
    """The limits that apply to ``owner`` (None: no limit), from defaults < config file < environment < class."""
    out = dict(DEFAULTS)
    if owner == LOCAL_OWNER or is_teacher(workspace, owner):
        return out
    layers: list[tuple[Mapping, str]] = [(server_config(workspace).get("quotas") or {}, "the server config"),
                                         ({k: os.environ.get(v) for k, v in ENV.items()}, "the environment"),
                                         (class_quotas(workspace, owner), "the class")]
    for values, where in layers:
        if not isinstance(values, Mapping):
            raise QuotaError(f"quotas are an object of {', '.join(KEYS)}; received: {type(values).__name__} in "
                             f"{where}. Fix: write {{\"running\": 1, \"queued\": 2, \"storage_mb\": 500}}")
        for key in KEYS:
            if values.get(key) not in (None, ""):
                out[key] = _number(values[key], where)
    return out


def folder_bytes(path: Path) -> int:
    """Bytes of the regular files under ``path`` (links are not followed)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            total += st.st_size
    return total


def usage(store: RunStore, owner: str) -> dict[str, float]:
    """What ``owner`` uses now: ``running`` (running or paused jobs), ``queued`` jobs and ``storage_mb`` (MiB
    of its run folders)."""
    store.mark_interrupted()
    runs = store.list_runs(owner=owner, limit=100_000)
    running = sum(r["status"] in STARTED for r in runs)
    queued = sum(r["status"] == RunStatus.QUEUED for r in runs)
    size = 0
    for r in runs:
        try:
            size += folder_bytes(store.run_dir(r["id"]))
        except RunStoreError:
            continue
    return {"running": running, "queued": queued, "storage_mb": size / 2**20}


def check_usage(used: Mapping[str, float], limit: Mapping[str, float | None]) -> None:
    """Raise :class:`QuotaError` when one more job would go over a limit: the owner's storage is full, its
    queued jobs are at the ``queued`` limit, or its live jobs (running, paused and queued) are at ``running``
    plus ``queued``."""
    run_cap, queue_cap, mb_cap = limit.get("running"), limit.get("queued"), limit.get("storage_mb")
    if mb_cap is not None and used["storage_mb"] >= mb_cap:
        raise QuotaError(f"one person's runs may take at most {mb_cap:g} MiB; received: {used['storage_mb']:.1f} "
                         "MiB in use. Fix: delete runs you no longer need on the Runs page, or ask your teacher")
    if queue_cap is not None and used["queued"] >= queue_cap:
        raise QuotaError(f"one person may have at most {queue_cap:g} job(s) waiting; received: {used['queued']:g} "
                         "queued. Fix: wait for one to start, or stop one on the Runs page")
    if run_cap is not None and used["running"] + used["queued"] >= run_cap + (queue_cap or 0):
        raise QuotaError(f"one person may have at most {run_cap:g} job(s) running and {queue_cap or 0:g} waiting; "
                         f"received: {used['running']:g} running, {used['queued']:g} queued. Fix: wait for one to "
                         "finish, or stop one on the Runs page")


def check_quota(store: RunStore, owner: str) -> None:
    """Refuse a new job of ``owner`` over its quotas (:class:`QuotaError`, worded rule; received; Fix).
    Called by :func:`builder.runs.jobs.submit` before anything is recorded."""
    limit = limits(store.workspace, owner)
    if all(v is None for v in limit.values()):
        return
    check_usage(usage(store, owner), limit)


__all__ = ["KEYS", "ENV", "QuotaError", "limits", "usage", "check_usage", "check_quota", "folder_bytes"]
