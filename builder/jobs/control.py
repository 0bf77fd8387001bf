"""A job's control thread: it reads the run's ``control`` column (pause, resume, stop, written by
:func:`builder.jobs.queue.request`) and forwards it to the trainer, and writes the run's heartbeat (``runs.beat_at``,
every :func:`~builder.training.run_status.beat_s`), by which servers sharing the store tell a live job of another
host from one whose node died (:meth:`builder.runs.store.RunStore.mark_interrupted`)."""

from __future__ import annotations

import threading
import time
from typing import Any

from builder.errors import RunStoreError
from builder.runs.db import is_sqlite
from builder.runs.store import RunStore
from builder.training.callbacks import Callback
from builder.training.run_status import beat_s

POLL_S = 0.2  # how often a job reads its control column and a queued job tries to claim a slot
SHARED_POLL_S = 1.0  # how often a job reads its control column in a shared PostgreSQL store (bench_cluster.py)


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

    def apply(self, action: str) -> None:
        """Forward one action to the trainer."""
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
                action = self.store.take_control(self.run_id) if self.trainer is not None else None
            except RunStoreError:
                continue
            if action:
                self.apply(action)

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


__all__ = ["StoreControl", "POLL_S", "SHARED_POLL_S"]
