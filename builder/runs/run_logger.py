"""The trainer listener that records a run's events in the run store (:class:`RunLogger`)."""

from __future__ import annotations

import threading
import time

from builder.graph.project import Project
from builder.runs.store import RunStore
from builder.training.run_status import is_final


class RunLogger:
    """A trainer listener writing a run's events to the store (step points batched: written every
    ``flush_s`` seconds, 200 points or epoch, so a page reading the store sees a live curve). ``project``: the
    project the caller recorded with the run, handed to :meth:`RunStore.finish` for the model card."""

    def __init__(self, store: RunStore, run_id: str, flush_s: float = 0.5, *, project: Project | None = None):
        self.store, self.run_id, self.flush_s, self.project = store, run_id, flush_s, project
        self._last_flush = time.monotonic()
        self._steps: list[dict] = []
        self._test: dict | None = None
        self._last_epoch: dict = {}
        self._holder: int | None = None  # the thread that holds a store connection (RunStore.hold)

    def __call__(self, ev: dict) -> None:
        t = ev.get("type")
        if self._holder is None:  # the trainer's thread writes its events: one connection while it trains
            self.store.hold()
            self._holder = threading.get_ident()
        if t == "step":
            self._steps.append(ev)
            if len(self._steps) >= 200 or time.monotonic() - self._last_flush >= self.flush_s:
                self._flush()
        elif t == "epoch":  # with the steps not yet written, in one transaction
            self._last_epoch = {k: v for k, v in ev.items() if k not in ("type", "extras")}
            steps, self._steps = self._steps, []
            self._last_flush = time.monotonic()
            self.store.log_metrics(self.run_id, [*steps, ev])
        elif t == "done":
            self._test = ev.get("test")
        elif t == "status":
            self._flush()
            st = ev["status"]
            if is_final(st):
                self.store.finish(self.run_id, st, self._last_epoch, self._test, ev.get("message", ""),
                                  project=self.project)
                if self._holder == threading.get_ident():
                    self.store.release()
                    self._holder = None
            else:
                self.store.update_status(self.run_id, st, ev.get("message", ""))

    def _flush(self) -> None:
        self._last_flush = time.monotonic()
        if self._steps:
            self.store.log_metrics(self.run_id, self._steps)
            self._steps = []


__all__ = ["RunLogger"]
