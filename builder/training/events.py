"""Training events: the bounded :class:`History` a trainer keeps and the thread-safe :class:`Channel` a UI drains.

A trainer emits plain dicts: ``{"type": "step", "step", "epoch", "loss"}``, ``{"type": "epoch", ...logs}``
(with ``"extras"`` from callbacks), ``{"type": "status", "status", "message"}`` and ``{"type": "done", "test"}``.
Example::

    >>> h = History(max_points=10)
    >>> h.add({"type": "step", "step": 1, "epoch": 0, "loss": 0.5})
    >>> h.snapshot()["steps"]
    [(1, 0.5)]
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Mapping
from typing import Any

from builder.data import records

#: the numbers of a step or an epoch event: read back from the run store (a job's word), each is a number or None
EVENT_NUMBERS = ("epoch", "step", "loss", "train_loss", "val_loss", "train_metric", "val_metric", "lr", "grad_norm",
                 "samples_per_s", "eta_s", "peak_memory")


def typed_event(ev: object) -> dict[str, Any]:
    """An event as a trainer writes it: each of :data:`EVENT_NUMBERS` a number (NaN and infinities kept: a
    diverged loss is one) or None, ``metric_name`` a short text; other keys as they are ({} for no mapping).

    >>> typed_event({"epoch": "1`# x", "val_loss": float("nan"), "metric_name": ["x"], "extras": {}})
    {'epoch': None, 'val_loss': nan, 'metric_name': 'metric', 'extras': {}}
    """
    out = dict(ev) if isinstance(ev, Mapping) else {}
    for k in EVENT_NUMBERS:
        if k in out:
            out[k] = records.number(out[k], finite=False)
    if "metric_name" in out:
        out["metric_name"] = records.text(out["metric_name"], "metric")
    if "extras" in out and not isinstance(out["extras"], Mapping):  # (each extra's reader types its own)
        out["extras"] = {}
    return out


class History:
    """Bounded record of events: step losses are downsampled (pairs averaged) beyond ``max_points``."""

    def __init__(self, max_points: int = 2000):
        self.max_points = max(10, int(max_points))
        self.steps: list[tuple[int, float]] = []
        self.epochs: list[dict] = []
        self.status: str = "queued"
        self.message: str = ""
        self.test: dict | None = None
        self._stride = 1
        self._pending: list[tuple[int, float]] = []

    def add(self, ev: dict) -> None:
        """Record one event."""
        t = ev.get("type")
        if t == "step":
            self._pending.append((int(ev["step"]), float(ev["loss"])))
            if len(self._pending) >= self._stride:
                s = self._pending[-1][0]
                v = sum(p[1] for p in self._pending) / len(self._pending)
                self._pending.clear()
                self.steps.append((s, v))
                if len(self.steps) > self.max_points:
                    self.steps = [(b[0], (a[1] + b[1]) / 2) for a, b in zip(self.steps[::2], self.steps[1::2])]
                    self._stride *= 2
        elif t == "epoch":
            self.epochs.append({k: v for k, v in ev.items() if k != "extras"})
        elif t == "status":
            self.status, self.message = ev["status"], ev.get("message", "")
        elif t == "done":
            self.test = ev.get("test")

    def snapshot(self) -> dict:
        """A copy: ``{"steps": [(step, loss)], "epochs": [...], "status", "message", "test"}``."""
        return {"steps": list(self.steps), "epochs": [dict(e) for e in self.epochs], "status": self.status,
                "message": self.message, "test": self.test}

    def to_state(self) -> dict:
        """JSON state for checkpoints."""
        return {"steps": self.steps, "epochs": self.epochs, "stride": self._stride, "pending": self._pending}

    def load_state(self, st: dict) -> None:
        """Inverse of :meth:`to_state`."""
        self.steps = [tuple(s) for s in st.get("steps", [])]
        self.epochs = list(st.get("epochs", []))
        self._stride = int(st.get("stride", 1))
        self._pending = [tuple(p) for p in st.get("pending", [])]


class Channel:
    """Thread-safe event queue the UI drains, plus a bounded :class:`History` snapshot."""

    def __init__(self, max_points: int = 2000, max_pending: int = 10_000):
        self._lock = threading.Lock()
        self._q: deque[dict] = deque(maxlen=max_pending)
        self._history = History(max_points)

    def put(self, event: dict) -> None:
        """Add an event (also the signature of a trainer listener)."""
        with self._lock:
            self._q.append(event)
            self._history.add(event)

    __call__ = put

    def drain(self) -> list[dict]:
        """All events since the last drain, oldest first."""
        with self._lock:
            out = list(self._q)
            self._q.clear()
        return out

    @property
    def history(self) -> dict:
        """A snapshot of the bounded history."""
        with self._lock:
            return self._history.snapshot()


__all__ = ["History", "Channel", "EVENT_NUMBERS", "typed_event"]
