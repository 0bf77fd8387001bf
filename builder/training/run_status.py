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

import os
import socket
from collections.abc import Iterable, Mapping
from enum import Enum
from pathlib import Path
from typing import Any

from builder.errors import RunStoreError


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
CREATED: frozenset[RunStatus] = frozenset({RunStatus.QUEUED, RunStatus.IMPORTED})
"""What a new run is recorded as: queued for its job, or imported once its files are whole."""


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
        done = run.get("epochs_done")
        return (f"run {rid} already finished{f' after {done} epoch' + ('s' if done != 1 else '') if done else ''}; received: a resume with no more "
                f"epochs. Fix: give it more epochs to train further (`layerlab runs resume {rid} --epochs N`)")
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


__all__ = ["pid_alive", "reaping", "is_orphaned", "BEAT_S", "STALE_S", "ENV_BEAT_S", "ENV_STALE_S", "ENV_HOST", "beat_s",
           "stale_s", "host_name", "RunStatus", "LIVE", "STARTED", "FINAL", "RESUMABLE", "TRAINER_END", "ENDED_BY_ERROR", "ENDED_CLEANLY", "HALTED", "CUT_SHORT", "CREATED",
           "is_live", "is_final", "can_resume",
           "resume_refusal", "live_label"]

BEAT_S = 15.0
"""How often a job process, and the server holding a job in its queue, writes the run's heartbeat
(``runs.beat_at``; the job's control polling writes it: :class:`builder.jobs.control.StoreControl`). The default
of :func:`beat_s`."""
STALE_S = 120.0
"""A live run of another host whose heartbeat is older than this (eight beats missed) has lost its process:
its node or server died. The next reader on any host marks it ``interrupted`` (resumable). The default of
:func:`stale_s`."""
ENV_BEAT_S = "LAYERLAB_BEAT_S"
ENV_STALE_S = "LAYERLAB_STALE_S"
ENV_HOST = "LAYERLAB_HOST"
"""The name this machine records its runs under (default: its host name). Machines sharing a store need
distinct names; set it where they share one (containers on the host's network, tests of several hosts on one)."""


def _seconds(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise RunStoreError(f"{name} is a number of seconds above 0; received: {raw!r}. Fix: unset it (default "
                            f"{default:.0f}) or write a number such as {default:.0f}, the same on every server and node")
    return value


def beat_s() -> float:
    """How often heartbeats are written: ``LAYERLAB_BEAT_S`` seconds, default :data:`BEAT_S` (every server and
    node of a store must agree; a job gets its server's value). Raises RunStoreError for a bad value."""
    return _seconds(ENV_BEAT_S, BEAT_S)


def stale_s() -> float:
    """How old a heartbeat may be before the run is orphaned: ``LAYERLAB_STALE_S`` seconds, default
    :data:`STALE_S`. Raises RunStoreError for a bad value."""
    return _seconds(ENV_STALE_S, STALE_S)


def host_name() -> str:
    """The name this machine records its runs under: ``LAYERLAB_HOST``, else its host name."""
    return os.environ.get(ENV_HOST, "").strip() or socket.gethostname()


def is_orphaned(run: Mapping, host: str, now: float) -> bool:
    """Whether a live run (``status``, ``host``, ``pid``, ``beat_at``) has lost the process that owns it, as seen
    from ``host`` at time ``now`` (seconds since the epoch): on this host its process is gone (:func:`pid_alive`);
    on another (a cluster node, another server sharing the store) its heartbeat is older than :func:`stale_s`.
    A run of another host that never wrote a heartbeat (recorded before heartbeats) is left to its host.

    >>> is_orphaned({"status": "running", "host": "gpu2", "beat_at": 1000.0}, "head", 1000.0 + STALE_S + 1)
    True
    >>> is_orphaned({"status": "running", "host": "gpu2", "beat_at": 1000.0}, "head", 1000.0 + BEAT_S)
    False
    >>> is_orphaned({"status": "finished", "host": "gpu2", "beat_at": 0.0}, "head", 1e9)
    False
    """
    if not is_live(run):
        return False
    if run.get("host") == host:
        return not pid_alive(run.get("pid")) and not reaping(run.get("pid"))
    beat = run.get("beat_at")
    return isinstance(beat, (int, float)) and now - float(beat) > stale_s()


def _is_pid(pid: Any) -> bool:
    return isinstance(pid, int) and not isinstance(pid, bool) and pid > 0


def _proc_state(pid: int) -> tuple[str, int] | None:
    """(state letter, parent pid) of a process from ``/proc/<pid>/stat``; None when it cannot be read."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return fields[0], int(fields[1])
    except (OSError, IndexError, ValueError):
        return None


def reaping(pid: int | None) -> bool:
    """Whether ``pid`` is a zombie whose parent lives: an ended job its starter (the warm launcher, the server's
    reaper thread) is about to record, with how it died, before it reaps it. A reader leaves such a run to its
    starter instead of marking it interrupted first (a crash then read as 'interrupted', never 'failed').

    >>> reaping(os.getpid()), reaping(None)
    (False, False)
    """
    state = _proc_state(pid) if _is_pid(pid) else None
    return state is not None and state[0] == "Z" and state[1] > 1 and pid_alive(state[1])


def pid_alive(pid: int | None) -> bool:
    """Whether ``pid`` names a live process of this host (a zombie, a killed child not reaped yet, is dead).

    This process is alive; a process of another user is alive (we may not signal it, but it exists); anything
    that is not a positive int is not.
    """
    if not _is_pid(pid):
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    state = _proc_state(pid)  # a killed child that was not reaped yet is a zombie: dead for our purpose
    return state is None or state[0] != "Z"

