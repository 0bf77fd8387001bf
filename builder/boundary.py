"""Live decision boundary for 2-D toy datasets (TensorFlow Playground style).

:class:`DecisionBoundary` is a trainer callback: at the end of every epoch it predicts the model on a small
grid over the training points and returns the grid as the epoch event's ``extras["boundary"]``. The run
store keeps it with the epoch's metrics, so a page (or a job in another process) reads the latest grid with
:func:`latest_boundary` and draws it with :func:`builder.figures.boundary_figure`. One grid is ``resolution``
squared numbers rounded to 3 decimals (40 x 40: ~8 KB of JSON per epoch).

Example::

    >>> from builder.data import load_dataset
    >>> ds = load_dataset("moons", n_samples=200, seed=0)
    >>> cb = DecisionBoundary(resolution=20)
    >>> cb.supports(ds.info)
    True
"""

from __future__ import annotations

from typing import Any

import torch

from .errors import TrainingError

try:
    from .train import Callback
except ImportError:  # pragma: no cover - builder.train always exists in this package
    Callback = object  # type: ignore[assignment,misc]

__all__ = ["TOY_DATASETS", "DecisionBoundary", "boundary_grid", "predict_grid", "latest_boundary",
           "sample_points", "supports"]

TOY_DATASETS = ("moons", "circles", "spirals", "xor", "blobs")
MAX_RESOLUTION = 200


def supports(info: Any) -> bool:
    """Whether a dataset (its :class:`~builder.data.DatasetInfo`) gets a boundary: 2-D float inputs and a
    classification task."""
    shape = tuple(getattr(info, "input_shape", ()) or ())
    return (shape == (2,) and getattr(info, "input_dtype", "float32") == "float32"
            and getattr(info, "task", "") in ("binary", "multiclass"))


def boundary_grid(X: torch.Tensor, resolution: int = 40, margin: float = 0.15) -> tuple[torch.Tensor, list, list]:
    """A ``resolution`` x ``resolution`` grid covering the points ``X`` (N, 2) plus a margin.

    Returns:
        ``(points, xs, ys)``: grid points (resolution², 2) row-major over ``ys`` then ``xs``, and the axes.

    Raises:
        TrainingError: ``X`` is not (N, 2) or the resolution is out of range.
    """
    if not isinstance(resolution, int) or not 2 <= resolution <= MAX_RESOLUTION:
        raise TrainingError(f"boundary resolution must be an integer in [2, {MAX_RESOLUTION}]; "
                            f"received: {resolution!r}. Fix: use e.g. 40")
    if X.dim() != 2 or X.shape[1] != 2 or X.shape[0] == 0:
        raise TrainingError(f"a decision boundary needs 2-D points (N, 2); received: shape {tuple(X.shape)}. "
                            "Fix: use a 2-D toy dataset (moons, circles, spirals, xor, blobs)")
    lo = X.min(0).values.float()
    hi = X.max(0).values.float()
    pad = (hi - lo).clamp_min(1e-3) * margin
    lo, hi = lo - pad, hi + pad
    xs = torch.linspace(float(lo[0]), float(hi[0]), resolution)
    ys = torch.linspace(float(lo[1]), float(hi[1]), resolution)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")  # (R, R) each
    pts = torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)  # (R², 2)
    return pts, [round(float(v), 4) for v in xs], [round(float(v), 4) for v in ys]


@torch.no_grad()
def predict_grid(model: torch.nn.Module, points: torch.Tensor, resolution: int) -> dict:
    """The model's prediction on grid ``points`` (R², 2) as a JSON-ready dict.

    Binary models (one logit, or two classes) give ``z`` = P(class 1) per cell; models with more classes
    give ``z`` = predicted class and ``conf`` = its probability. Rows follow the y axis.
    """
    was_training = model.training
    model.eval()
    try:
        out = model(points)
    finally:
        model.train(was_training)
    if isinstance(out, (tuple, list)):
        out = out[0]
    out = out.float().reshape(points.shape[0], -1)  # (R², C)
    r = resolution
    if out.shape[1] == 1:
        p = torch.sigmoid(out[:, 0])
        return {"kind": "prob", "z": _rows(p, r)}
    probs = torch.softmax(out, 1)
    if out.shape[1] == 2:
        return {"kind": "prob", "z": _rows(probs[:, 1], r)}
    conf, cls = probs.max(1)
    return {"kind": "class", "z": _rows(cls.float(), r, 0), "conf": _rows(conf, r), "classes": int(out.shape[1])}


def _rows(v: torch.Tensor, r: int, digits: int = 3) -> list[list[float]]:
    scale = 10.0 ** digits
    return (torch.round(v.detach().float().reshape(r, r).cpu() * scale) / scale).tolist()


def sample_points(X: torch.Tensor, y: torch.Tensor, n: int = 400, seed: int = 0) -> dict:
    """At most ``n`` training points (a fixed random subset) for the scatter on top of the boundary."""
    k = min(int(n), int(X.shape[0]))
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(int(X.shape[0]), generator=g)[:k].sort().values
    Xs, ys = X[idx].detach().float().cpu(), y[idx].detach().cpu().reshape(-1)
    return {"x": [round(float(v), 4) for v in Xs[:, 0]], "y": [round(float(v), 4) for v in Xs[:, 1]],
            "label": [int(v) for v in ys.round().long()]}


class DecisionBoundary(Callback):  # type: ignore[misc,valid-type]
    """Trainer callback: the decision boundary on a grid at the end of every ``every``-th epoch.

    Args:
        resolution: grid cells per axis (2-200).
        every: record when the (1-based) epoch number is a multiple of ``every``.
        n_points: training points included once, with the first grid (``extras["boundary"]["points"]``).
        budget: at most this share of the training time goes to grids: an epoch is skipped while the grids so
            far cost more (tiny datasets train an epoch in ~30 ms, so the grid then follows every few epochs;
            the first epoch always has one). ``None``: every ``every``-th epoch.

    Attributes:
        last: the latest grid dict (``epoch``, ``xs``, ``ys``, ``kind``, ``z``, ...), or None.
        seconds: wall time spent predicting grids (for the cost per epoch).
    """

    def __init__(self, resolution: int = 40, every: int = 1, n_points: int = 400, budget: float | None = 0.05):
        if not isinstance(every, int) or every < 1:
            raise TrainingError(f"boundary `every` must be a positive integer; received: {every!r}. Fix: use 1")
        self.resolution = resolution
        self.every = every
        self.n_points = n_points
        self.budget = budget
        self.skipped = 0
        self._t0 = 0.0
        self.last: dict | None = None
        self.seconds = 0.0
        self._grid: torch.Tensor | None = None
        self._axes: tuple[list, list] = ([], [])
        self._points: dict | None = None
        self._sent_points = False

    def on_train_begin(self, trainer: Any) -> None:
        """Place the grid over the training points (once; again after a resume)."""
        ds = trainer.dataset
        if not supports(ds.info):
            self._grid = None
            return
        X = ds.train.X
        grid, xs, ys = boundary_grid(X, self.resolution)
        self._grid = grid.to(device=X.device, dtype=X.dtype)
        self._axes = (xs, ys)
        self._points = sample_points(X, ds.train.y, self.n_points)
        self._sent_points = False
        import time

        self._t0 = time.perf_counter()

    def on_epoch_end(self, trainer: Any, epoch: int, logs: dict) -> dict | None:
        """Predict the grid; returned as the epoch event's ``extras["boundary"]``."""
        if self._grid is None or (epoch + 1) % self.every:
            return None
        import time

        t0 = time.perf_counter()
        if self.budget is not None and self.last is not None and self.seconds > self.budget * (t0 - self._t0):
            self.skipped += 1  # over budget: the last grid stays on screen a little longer
            return None
        pred = predict_grid(trainer.model, self._grid, self.resolution)
        self.seconds += time.perf_counter() - t0
        grid = {"epoch": epoch + 1, "xs": self._axes[0], "ys": self._axes[1], **pred}
        if not self._sent_points and self._points is not None:
            grid["points"] = self._points
            self._sent_points = True
        self.last = grid
        return {"boundary": grid}


def latest_boundary(epochs: list[dict]) -> tuple[dict | None, dict | None]:
    """The newest grid and the training points from a run's epoch records (as stored by the run store or
    kept by a page), each ``None`` when absent."""
    grid = points = None
    for ev in epochs:
        b = (ev.get("extras") or {}).get("boundary") if isinstance(ev, dict) else None
        if isinstance(b, dict):
            grid = b
            if isinstance(b.get("points"), dict):
                points = b["points"]
    return grid, points
