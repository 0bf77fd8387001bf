"""A job's control thread: it reads the run's ``control`` column (pause, resume, stop, written by
:func:`builder.jobs.queue.request`) and forwards it to the trainer, and writes the run's heartbeat (``runs.beat_at``,
every :func:`~builder.training.run_status.beat_s`), by which servers sharing the store tell a live job of another
host from one whose node died (:meth:`builder.runs.store.RunStore.mark_interrupted`).

A stop always stops. The trainer acts on it between two steps; a job that has not ended :func:`stop_grace_s`
after the request (its main thread stuck in native code, waiting on a lock, still loading its data) is ended by
this thread: the Python stacks of its threads go to its log, the run is recorded ``stopped`` with the place it was
busy in, and the process exits. Before, such a job stayed ``running`` for ever, holding its slot and its owner's
quota, and Stop did nothing."""

from __future__ import annotations

import faulthandler
import os
import shutil
import sys
import threading
import time
from typing import Any

from builder.errors import LayerLabError, RunStoreError
from builder.process.sandbox import env_positive
from builder.runs.db import is_sqlite
from builder.runs.store import RunStore
from builder.training.callbacks import Callback
from builder.training.run_status import RunStatus, beat_s, is_live

POLL_S = 0.2  # how often a job reads its control column and a queued job tries to claim a slot
SHARED_POLL_S = 1.0  # how often a job reads its control column in a shared PostgreSQL store (bench_cluster.py)
STOP_GRACE_S = 60.0
"""How long a stopped job may take to end by itself (a checkpoint written, the last step finished) before its
control thread ends it; ``LAYERLAB_STOP_GRACE_S`` sets it."""


def stop_grace_s() -> float:
    """``LAYERLAB_STOP_GRACE_S`` seconds (a positive number), else :data:`STOP_GRACE_S`.

    >>> stop_grace_s() == STOP_GRACE_S or "LAYERLAB_STOP_GRACE_S" in os.environ
    True
    """
    return env_positive("LAYERLAB_STOP_GRACE_S", STOP_GRACE_S, float)


def busy_in(thread_id: int | None = None) -> str:
    """Where a thread (default: the main one) is, as ``module.function``: the innermost frame of this program or
    torch, never a file path (the run's message is shown to people).

    >>> busy_in(threading.get_ident())
    'builder.jobs.control.busy_in'
    """
    frame = sys._current_frames().get(thread_id or threading.main_thread().ident or 0)
    first = None
    while frame is not None:
        module = str(frame.f_globals.get("__name__", "?"))
        where = f"{module}.{frame.f_code.co_name}"
        first = first or where
        if module.split(".")[0] in ("builder", "torch"):
            return where
        frame = frame.f_back
    return first or "an unknown place"


class StoreControl(Callback):
    """Trainer callback polling the run's ``control`` column in a thread and pausing/resuming/stopping. The same
    thread writes the run's heartbeat every :func:`~builder.training.run_status.beat_s` (from :meth:`start`, so
    a job loading its data is alive too): a job on another host whose heartbeat stops is interrupted by the
    next reader (:meth:`builder.runs.store.RunStore.mark_interrupted`)."""

    def __init__(self, store: RunStore, run_id: str, poll_s: float | None = None):
        shared = not is_sqlite(getattr(store, "db_url", "sqlite:"))  # hundreds of jobs on one server: poll less
        self.store, self.run_id, self.poll_s = store, run_id, poll_s or (SHARED_POLL_S if shared else POLL_S)
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._beat = time.monotonic()  # the job's start (running, or claiming its slot) wrote the first beat
        self.beat_s = beat_s()
        self.trainer: Any = None
        self.grace_s = stop_grace_s()
        self._stop_at: float | None = None  # when a stop was first seen (the job ends itself or is ended)

    def apply(self, action: str) -> None:
        """Forward one action to the trainer."""
        if action == "stop" and self._stop_at is None:
            self._stop_at = time.monotonic()
        getattr(self.trainer, action)()

    def start(self) -> None:
        """Start the thread (heartbeat; control actions once training begins). Idempotent."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._poll, name="layerlab-control", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Stop the thread."""
        self._done.set()

    def _poll(self) -> None:
        while not self._done.wait(self.poll_s):
            try:
                if time.monotonic() - self._beat >= self.beat_s:
                    self._beat = time.monotonic()
                    self.store.beat([self.run_id])
                if self.trainer is not None:
                    action = self.store.take_control(self.run_id)
                else:  # still loading: a stop waits for on_train_begin, and is timed from now
                    action = None
                    if self._stop_at is None and self.store.take_control(self.run_id, peek=True) == "stop":
                        self._stop_at = time.monotonic()
            except RunStoreError:
                continue
            if action:
                self.apply(action)
            if self._stop_at is not None and time.monotonic() - self._stop_at > self.grace_s \
                    and not self._done.is_set():
                self._end_unanswered_stop()

    def _end_unanswered_stop(self) -> None:
        """End this job: its stop was requested :attr:`grace_s` ago and it has not ended (see the module)."""
        where = busy_in()
        print(f"job {self.run_id}: no end {self.grace_s:g} s after the stop request (busy in {where}); its threads:",
              file=sys.stderr, flush=True)
        faulthandler.dump_traceback(sys.stderr, all_threads=True)
        try:
            run = self.store.get(self.run_id)
            if is_live(run["status"]):
                self.store.update_status(self.run_id, RunStatus.STOPPED, (
                    f"stopped: the job did not end within {self.grace_s:g} s of the stop request (busy in {where}), "
                    "so its process was ended; resume it from its last checkpoint"))
            shutil.rmtree(self.store.folder(self.run_id, write=True).tmp, ignore_errors=True)  # its private folder
        except (LayerLabError, OSError) as e:
            print(f"job {self.run_id}: its end was not recorded: {e}", file=sys.stderr, flush=True)
        finally:
            sys.stderr.flush()
            os._exit(0)  # an exit, not a death: its starter leaves the recorded status as it is

    def on_train_begin(self, trainer: Any) -> None:
        """Apply a request made while the job was queued, then poll."""
        self.trainer = trainer
        action = self.store.take_control(self.run_id)
        if action in ("pause", "stop"):
            self.apply(action)
        self.start()

    def on_epoch_end(self, trainer: Any, epoch: int, logs: dict) -> None:
        """Nothing per epoch."""
        return None

    def on_train_end(self, trainer: Any, result: Any) -> None:
        """Stop polling."""
        self._done.set()


__all__ = ["StoreControl", "POLL_S", "SHARED_POLL_S", "STOP_GRACE_S", "stop_grace_s", "busy_in"]
