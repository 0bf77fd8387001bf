"""Run statuses: the one type, its sets (live, final, resumable) and the predicates every caller uses.

The strings are what ``layerlab.db`` stores (``runs.status``); they never change, so old workspaces keep
working. A run is *live* while a process owns it (queued, running, paused) and *final* once it ended; a final
run is *resumable* from its checkpoint when it stopped, failed or was interrupted (MLflow's
``RunStatus.is_terminated`` is the model). Example::

    >>> is_live("paused"), is_final(RunStatus.FINISHED)
    (True, True)
    >>> can_resume({"status": "stopped", "epochs_done": 3}, has_checkpoint=True)
    True
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import Enum
from typing import Any


class RunStatus(str, Enum):
    """The status of a run, equal to (and stored as) its string: ``RunStatus.RUNNING == "running"``."""

    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    FINISHED = "finished"
    STOPPED = "stopped"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    IMPORTED = "imported"  # a model imported from ONNX / .pt2: weights, no training (builder.interchange.importer)

    def __str__(self) -> str:  # f"{status}" and str(status) give the stored string on every Python version
        return self.value

    __format__ = str.__format__

    @property
    def is_live(self) -> bool:
        """Whether a process owns the run (queued, running, paused)."""
        return self in LIVE

    @property
    def is_final(self) -> bool:
        """Whether the run has ended (nothing will change it unless it is resumed)."""
        return self in FINAL


LIVE: frozenset[RunStatus] = frozenset({RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.PAUSED})
"""A process owns the run: it cannot be started twice, deleted, or resumed."""
STARTED: frozenset[RunStatus] = LIVE - {RunStatus.QUEUED}
"""Live and started by its process (running or paused): it holds a job slot, a queued run waits for one."""
FINAL: frozenset[RunStatus] = frozenset(set(RunStatus) - LIVE)
"""The run has ended: waiting on it is over, its summary no longer changes."""
RESUMABLE: frozenset[RunStatus] = frozenset({RunStatus.STOPPED, RunStatus.FAILED, RunStatus.INTERRUPTED})
"""Ended before its last epoch: it continues from its last checkpoint (or starts again when it has none)."""
TRAINER_END: frozenset[RunStatus] = frozenset({RunStatus.FINISHED, RunStatus.STOPPED, RunStatus.FAILED})
"""The statuses a trainer ends a run with (``interrupted`` is set by the store for a dead process)."""
ENDED_BY_ERROR: frozenset[RunStatus] = frozenset({RunStatus.FAILED, RunStatus.INTERRUPTED})
"""An error or a dead process ended the run: its message says what went wrong."""
ENDED_CLEANLY: frozenset[RunStatus] = frozenset({RunStatus.FINISHED, RunStatus.STOPPED})
"""The trainer ended the run without an error: its message is a note (early stopping, a stop request)."""
HALTED: frozenset[RunStatus] = frozenset({RunStatus.PAUSED, RunStatus.STOPPED, RunStatus.FAILED})
"""The trainer halted before its last epoch (a pause or stop request, an error): its message says why."""
CUT_SHORT: frozenset[RunStatus] = frozenset({RunStatus.STOPPED, RunStatus.INTERRUPTED})
"""Ended before its last epoch by a stop request or a dead process (not by an error of its own)."""


def _status(value: Any) -> Any:
    """``value`` itself, or the status of a run dict."""
    return value.get("status") if isinstance(value, Mapping) else value


def is_live(status: str | Mapping | None) -> bool:
    """Whether a status (or a run dict) is queued, running or paused."""
    return _status(status) in LIVE


def is_final(status: str | Mapping | None) -> bool:
    """Whether a status (or a run dict) means the run has ended."""
    return _status(status) in FINAL


def can_resume(run: Mapping, *, has_checkpoint: bool) -> bool:
    """Whether a run may be resumed as it is: it stopped, failed or was interrupted, and it has a checkpoint
    to continue from or never finished an epoch (it then starts again). A finished run is only continued with
    more epochs (:func:`resume_refusal`).

    Args:
        run: a run as the store returns it (``status``, ``epochs_done``).
        has_checkpoint: whether the run folder holds a checkpoint (:attr:`RunFolder.has_checkpoint`).
    """
    return run.get("status") in RESUMABLE and (has_checkpoint or not run.get("epochs_done"))


def resume_refusal(run: Mapping, *, more_epochs: bool = False, own_process: bool = False) -> str | None:
    """Why a run cannot be queued or continued again, or None when it can.

    Args:
        run: a run as the store returns it (``id``, ``status``, ``pid``).
        more_epochs: the resume raises ``epochs`` (continuing a finished run needs it).
        own_process: the caller is the run's own job process (its live status is its own).
    """
    status, rid = run.get("status"), run.get("id")
    if is_live(status) and not own_process:
        return f"run {rid} is {status} in process {run.get('pid')}; it cannot run twice. Fix: resume or stop it there"
    if status == RunStatus.FINISHED and not more_epochs:
        return f"run {rid} already finished; pass a larger epochs to train further"
    if status == RunStatus.IMPORTED:
        return f"run {rid} is an imported model, not a training run. Fix: train with --init-from {rid}"
    return None


def live_label(statuses: Iterable[str | Mapping]) -> str:
    """How many live training jobs there are, by what they are doing (a paused or queued job is not "running").

    >>> live_label(["running"]), live_label(["paused", "queued", "running", "running"])
    ('1 training job running', '4 training jobs: 2 running, 1 paused, 1 queued')
    >>> live_label(["paused"])
    '1 training job paused'
    """
    counts = {s: 0 for s in (RunStatus.RUNNING, RunStatus.PAUSED, RunStatus.QUEUED)}
    for st in statuses:
        s = _status(st)
        if s in counts:
            counts[s] += 1
    n = sum(counts.values())
    parts = [f"{k} {s.value}" for s, k in counts.items() if k]
    jobs = f"{n} training job{'s' if n != 1 else ''}"
    return f"{jobs} {parts[0].split(' ', 1)[1]}" if len(parts) == 1 else f"{jobs}: {', '.join(parts)}"


__all__ = ["RunStatus", "LIVE", "STARTED", "FINAL", "RESUMABLE", "TRAINER_END", "ENDED_BY_ERROR", "ENDED_CLEANLY", "HALTED", "CUT_SHORT",
           "is_live", "is_final", "can_resume",
           "resume_refusal", "live_label"]
