"""The control protocol every trainer shares: pause, resume, stop, stop after the epoch, events and status.

:class:`~builder.training.trainer.Trainer` (one model, one loss) and
:class:`~builder.training.multi.ObjectiveTrainer` (drawn objectives, several networks) both inherit it, so a
job process, the Train page and the callbacks drive either the same way. The flags are read by the trainers'
loops at the next step; the methods are safe to call from another thread.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from builder.training.events import History
from builder.training.run_folder import RunFolder


class StopRequested(Exception):
    """Raised inside a trainer's loop once a requested stop has been checkpointed; the trainer's ``fit`` ends
    the run as ``stopped``."""


class RunControl:
    """Thread-safe run control and event emission; the subclass sets the attributes named below."""

    history: History
    listeners: list[Callable[[dict], None]]
    run_dir: Path | None
    status: str

    def _init_control(self) -> None:
        """Set the control flags (called by the subclass's ``__init__``)."""
        self._stop_message: str | None = None  # set by stop_after_epoch (early stopping)
        self._flag = False  # any request pending: the loop checks one bool per step
        self._stop_req = False
        self._pause_req = False
        self._resume_evt = threading.Event()
        self._stop_at_step: int | None = None  # test hook: behave as if stop() was called at this step

    def pause(self) -> None:
        """Pause at the next step (a checkpoint is written while paused)."""
        self._pause_req, self._flag = True, True
        self._resume_evt.clear()

    def resume(self) -> None:
        """Continue after :meth:`pause`."""
        self._pause_req = False
        self._resume_evt.set()

    def stop(self) -> None:
        """Stop at the next step; a checkpoint is written so the run can be resumed."""
        self._stop_req, self._flag = True, True
        self._resume_evt.set()

    request_stop = stop

    def stop_after_epoch(self, message: str = "") -> None:
        """End the run as ``finished`` after the current epoch (called by callbacks, e.g. early stopping)."""
        self._stop_message = message

    @property
    def checkpoint_path(self) -> Path | None:
        """The run folder's checkpoint (``checkpoints/last.safetensors``) or None."""
        return RunFolder(self.run_dir).checkpoint if self.run_dir else None

    def _save(self, epoch: int, batch: int, perm: Any, acc: dict) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _interval_checkpoint_due(self) -> bool:
        """Whether a time-interval checkpoint is due inside the epoch (the Trainer's; others: never)."""
        return False

    def _handle_flag(self, epoch: int, b: int, perm: Any, acc: dict) -> None:
        """Serve a pending request at a step boundary: pause (checkpoint, then wait), stop (checkpoint, then
        :class:`StopRequested`), or a due interval checkpoint."""
        if self._pause_req and not self._stop_req:
            self._save(epoch, b, perm, acc)
            self._set_status("paused", "")
            while self._pause_req and not self._stop_req:
                self._resume_evt.wait(0.2)
            if not self._stop_req:
                self._set_status("running", "resumed")
        if self._stop_req:
            self._save(epoch, b, perm, acc)
            raise StopRequested
        if self._interval_checkpoint_due():
            self._save(epoch, b, perm, acc)
        self._flag = False

    def _emit(self, ev: dict) -> None:
        self.history.add(ev)
        for listener in self.listeners:
            listener(ev)

    def _set_status(self, status: str, message: str = "") -> None:
        self.status = status
        self._emit({"type": "status", "status": status, "message": message})


__all__ = ["RunControl", "StopRequested"]
