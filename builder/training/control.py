"""The control protocol every trainer shares: a run's life (:meth:`RunControl.fit`), pause, resume, stop, stop
after the epoch, events and status.

:class:`~builder.training.trainer.Trainer` (one model, one loss) and
:class:`~builder.training.multi.ObjectiveTrainer` (drawn objectives, several networks) both inherit it, so a
job process, the Train page and the callbacks drive either the same way. The flags are read by the trainers'
loops at the next step; the methods are safe to call from another thread.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from builder.errors import TrainingError
from builder.training.events import History
from builder.training.run_folder import RunFolder

STOPPED_BY_REQUEST = "stopped by request"  # how a run stopped by Stop says so (Run.shown_message names who asked)


class StopRequested(Exception):
    """Raised inside a trainer's loop once a requested stop has been checkpointed; the trainer's ``fit`` ends
    the run as ``stopped``."""


def call_hook(callbacks: Iterable[Any], name: str, *args: Any) -> list[Any]:
    """Call hook ``name`` on every callback that has it; returns their return values (the dispatch lives with
    the trainers that drive the callbacks, so a callback defined anywhere is called from here)."""
    return [getattr(cb, name)(*args) for cb in callbacks if callable(getattr(cb, name, None))]


class RunControl:
    """Thread-safe run control and event emission; the subclass sets the attributes named below."""

    history: History
    listeners: list[Callable[[dict], None]]
    run_dir: Path | None
    status: str
    callbacks: list[Any]
    config: Any  # its TrainConfig
    resume_from: Path | None

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

    def fit(self) -> Any:
        """Train synchronously: set up, restore a checkpoint (or write a first one: a good checkpoint exists even
        if the first epoch fails), run the loop, and finish as finished, stopped or failed; returns the trainer's
        :class:`~builder.training.trainer.TrainResult`.

        Raises:
            TrainingError: bad settings, a model that does not fit the data, NaN/Inf loss, a torch error mid-run
                (e.g. BatchNorm on one sample), each after the ``failed`` status event (the last good checkpoint
                is kept).
        """
        t0 = time.perf_counter()
        self._before_fit()
        try:
            self._setup()
            self._after_setup()
            start_epoch, start_batch, perm, acc = 0, 0, None, {}
            if self.resume_from is not None:
                start_epoch, start_batch, perm, acc = self._restore()
            elif self.config.checkpoint_every != 0:
                self._save(0, 0, None, {})
            call_hook(self.callbacks, "on_train_begin", self)
            self._set_status("running", self._resumed_message() if self.resume_from else "")
            status, message = self._loop(start_epoch, start_batch, perm, acc)
        except StopRequested:
            status, message = "stopped", f"{STOPPED_BY_REQUEST}; resume to continue from the checkpoint"
        except TrainingError as e:
            self._finish("failed", str(e), t0)
            raise
        except Exception as e:  # a torch error mid-run: reported cleanly
            msg = f"training failed: {type(e).__name__}: {str(e).splitlines()[0][:500] if str(e) else ''}"
            self._finish("failed", msg, t0)
            raise TrainingError(msg) from e
        return self._finish(status, message, t0)

    def _before_fit(self) -> None:
        """Reset what one call of :meth:`fit` keeps (the trainer's; others: nothing)."""

    def _after_setup(self) -> None:
        """Once the model and the device are set up, before the first step (the trainer's; others: nothing)."""

    def _resumed_message(self) -> str:
        """The running status's message of a resumed run."""
        return "resumed"

    def _setup(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _restore(self) -> tuple[int, int, Any, dict]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _loop(self, start_epoch: int, start_batch: int, perm: Any, acc: dict) -> tuple[str, str]:  # pragma: no cover
        raise NotImplementedError

    def _finish(self, status: str, message: str, t0: float) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

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


__all__ = ["RunControl", "StopRequested", "STOPPED_BY_REQUEST", "call_hook"]
