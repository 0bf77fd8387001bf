"""Live decision boundary for 2-D toy datasets (TensorFlow Playground style).

:class:`DecisionBoundary` is a trainer callback: at the end of an epoch it predicts the model on a small grid
over the training points and returns the grid as the epoch event's ``extras["boundary"]``. The run store
keeps it with the epoch's metrics, so a page (or a job in another process) reads the latest grid with
:func:`latest_boundary` and draws it with :func:`builder.interpret.figures.boundary_figure`. One grid is ``resolution``
squared numbers rounded to 3 decimals (40 x 40: ~11 KB of JSON). The callback keeps its grids within a share
of the training time (3.5 % by default) by skipping epochs: see :class:`DecisionBoundary`.

Example::

    >>> from builder.data import load_dataset
    >>> ds = load_dataset("moons", n_samples=200, seed=0)
    >>> supports(ds.info)  # 2-D points, classification
    True
    >>> cb = DecisionBoundary(resolution=20)  # Trainer(model, ds, cfg, callbacks=[cb])
"""

from __future__ import annotations

import statistics
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import torch

from builder.data import records
from builder.data.predictions import predict
from builder.errors import TrainingError

try:
    from builder.training.callbacks import Callback
except ImportError:  # pragma: no cover - builder.training.trainer always exists in this package
    Callback = object  # type: ignore[assignment,misc]

__all__ = ["TOY_DATASETS", "DecisionBoundary", "boundary_grid", "predict_grid", "latest_boundary", "typed_grid",
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
    return pts, _rounded(xs, 4), _rounded(ys, 4)


@torch.no_grad()
def predict_grid(model: torch.nn.Module, points: torch.Tensor, resolution: int) -> dict:
    """The model's prediction on grid ``points`` (R², 2) as a JSON-ready dict.

    Binary models (one logit, or two classes) give ``z`` = P(class 1) per cell; models with more classes
    give ``z`` = predicted class and ``conf`` = its probability. Rows follow the y axis. Probabilities are
    rounded to 3 decimals in float64 (``0.522``, not the float32 ``0.5220000147819519``: up to a third of
    the JSON).
    """
    pred = predict(model, points, "multiclass", batch_size=None)  # one pass over the grid; outputs (R², C)
    r, classes = resolution, int(pred.outputs.shape[1])
    # softmax over two classes is slow on the CPU (~70 µs for 1,600 x 2, a third of a grid): P(class 1) comes
    # from the logits directly (Prediction.positive)
    if classes <= 2:
        return {"kind": "prob", "z": _rows(pred.positive(), r)}
    return {"kind": "class", "z": _rows(pred.labels, r, None), "conf": _rows(pred.confidence, r), "classes": classes}


def _rows(v: torch.Tensor, r: int, digits: int | None = 3) -> list[list[float]]:
    """``v`` (r², ) as r rows of Python floats rounded to ``digits`` (None: already whole numbers).

    The rounding is done in float64 so that each number is the double nearest to ``k / 10**digits`` and
    prints short in JSON."""
    m = v.detach().reshape(r, r).to(device="cpu", dtype=torch.float64)
    if digits is not None:
        scale = 10.0 ** digits
        m = m.mul_(scale).round_().div_(scale)
    return m.tolist()


def sample_points(X: torch.Tensor, y: torch.Tensor, n: int = 400, seed: int = 0) -> dict:
    """At most ``n`` training points (a fixed random subset) for the scatter on top of the boundary."""
    k = min(int(n), int(X.shape[0]))
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(int(X.shape[0]), generator=g)[:k].sort().values
    Xs, ys = X[idx].detach(), y[idx].detach().reshape(-1)
    return {"x": _rounded(Xs[:, 0], 4), "y": _rounded(Xs[:, 1], 4), "label": ys.round().long().cpu().tolist()}


def _rounded(v: torch.Tensor, digits: int) -> list[float]:
    """A 1-D tensor as a list of floats rounded to ``digits`` decimals (in float64: short in JSON; one
    vectorised call instead of a Python ``round(float(x))`` per element, ~1.5 µs each)."""
    scale = 10.0 ** digits
    return v.detach().to(device="cpu", dtype=torch.float64).reshape(-1).mul(scale).round_().div_(scale).tolist()


BUDGET = 0.035  # share of training time the grids may take (issue target: < 5 % of epoch time, all costs in)


class DecisionBoundary(Callback):  # type: ignore[misc,valid-type]
    """Trainer callback: the decision boundary on a grid at the end of an epoch, within a time budget.

    Args:
        resolution: grid cells per axis (2-200).
        every: consider a grid when the (1-based) epoch number is a multiple of ``every``.
        n_points: training points included once, with the first grid (``extras["boundary"]["points"]``).
        budget: the grids may cost at most this share of the training time without them (default
            :data:`BUDGET`, 3.5 %: a grid also slows the next epoch a little, up to 0.4 x its own cost in
            bench/bench_boundary.py, which no clock here sees; all in, the cost stays < 5 %). The first
            considered epoch always gets a grid (what the page shows first), and so does the last planned
            epoch (``trainer.config.epochs``, what it shows at the end; an early stop ends on an older grid).
            In between, a grid is drawn only when ``seconds + predicted + reserve <= budget x training
            seconds``: ``seconds`` is the grid time so far (setup included), the training seconds are the time
            since :meth:`on_train_begin` less that, ``predicted`` is the dearer of the last grid and the median
            of the last five, and ``reserve`` is ``predicted`` again, kept for the last epoch's grid (0 when
            the trainer plans no end). Only runs too short to pay back the first and last grid end over the
            budget. ``None``: every ``every``-th epoch and the last.
        clock: the time source in seconds (tests pass a fake one).

    Attributes:
        last: the latest grid dict (``epoch``, ``xs``, ``ys``, ``kind``, ``z``, ...), or None.
        seconds: wall time spent on grids since the training began, their setup in :meth:`on_train_begin`
            (the grid and the sampled points: ~0.2 ms warm, 1-2 ms in a fresh process) included.
        drawn: grids drawn since then; ``skipped``: epochs skipped to keep within the budget.
    """

    def __init__(self, resolution: int = 40, every: int = 1, n_points: int = 400, budget: float | None = BUDGET,
                 clock: Callable[[], float] | None = None):
        if not isinstance(every, int) or every < 1:
            raise TrainingError(f"boundary `every` must be a positive integer; received: {every!r}. Fix: use 1")
        if budget is not None and not budget >= 0:
            raise TrainingError(f"boundary `budget` must be a share >= 0 or None; received: {budget!r}. "
                                "Fix: use 0.05")
        self.resolution = resolution
        self.every = every
        self.n_points = n_points
        self.budget = budget
        self.clock = clock or time.perf_counter
        self.last: dict | None = None
        self._grid: torch.Tensor | None = None
        self._axes: tuple[list, list] = ([], [])
        self._points: dict | None = None
        self._reset(0.0)

    def _reset(self, t0: float) -> None:
        self._t0 = t0
        self.seconds = 0.0
        self.drawn = 0
        self.skipped = 0
        self._costs: deque[float] = deque(maxlen=5)
        self._sent_points = False

    def on_train_begin(self, trainer: Any) -> None:
        """Place the grid over the training points (once; again after a resume) and start the budget (the
        time spent here counts as grid time)."""
        ds = trainer.dataset
        if not supports(ds.info):
            self._grid = None
            return
        t0 = self.clock()
        X = ds.train.X
        grid, xs, ys = boundary_grid(X, self.resolution)
        self._grid = grid.to(device=X.device, dtype=X.dtype)
        self._axes = (xs, ys)
        self._points = sample_points(X, ds.train.y, self.n_points)
        self._reset(t0)  # the training time is measured from here, less the grid time (this setup included)
        self.seconds = self.clock() - t0

    def predicted(self) -> float:
        """The expected cost of the next grid in seconds: the dearer of the last grid and the median of the
        last five (0 before the first)."""
        if not self._costs:
            return 0.0
        return max(self._costs[-1], statistics.median(self._costs))

    def on_epoch_end(self, trainer: Any, epoch: int, logs: dict) -> dict | None:
        """Predict the grid when the budget allows; returned as the epoch event's ``extras["boundary"]``."""
        if self._grid is None:
            return None
        planned = getattr(getattr(trainer, "config", None), "epochs", None)
        last = isinstance(planned, int) and epoch + 1 >= planned
        if (epoch + 1) % self.every and not last:
            return None
        t0 = self.clock()
        if self.budget is not None and self.drawn and not last:
            training = t0 - self._t0 - self.seconds  # time since on_train_begin without the grids
            predicted = self.predicted()
            reserve = predicted if isinstance(planned, int) else 0.0  # for the last epoch's grid
            if self.seconds + predicted + reserve > self.budget * training:
                self.skipped += 1  # over budget: the last grid stays on screen a little longer
                return None
        model = getattr(trainer, "prediction_model", trainer.model)
        if model is None:  # an objective without a prediction (a GAN): no boundary
            return None
        pred = predict_grid(model, self._grid, self.resolution)
        grid = {"epoch": epoch + 1, "xs": self._axes[0], "ys": self._axes[1], **pred}
        if not self._sent_points and self._points is not None:
            grid["points"] = self._points
            self._sent_points = True
        cost = self.clock() - t0
        self.seconds += cost
        self._costs.append(cost)
        self.drawn += 1
        self.last = grid
        return {"boundary": grid}


def latest_boundary(epochs: list[dict]) -> tuple[dict | None, dict | None]:
    """The newest grid and the training points from a run's epoch records (as stored by the run store or
    kept by a page), each ``None`` when absent."""
    grid = points = None
    for ev in epochs:
        extras = ev.get("extras") if isinstance(ev, dict) else None
        b = typed_grid(extras.get("boundary")) if isinstance(extras, dict) else None
        if b is not None:
            grid = b
            points = b.get("points") or points
    return grid, points


MAX_CLASSES = 1_000  # classes a grid's colours are drawn for at most
MAX_POINTS = 10_000  # training points drawn on a grid at most


def typed_grid(b: Any) -> dict | None:
    """A stored grid (a job wrote it) as :class:`DecisionBoundary` writes it, or None: axes of 2 to
    :data:`MAX_RESOLUTION` finite numbers, ``z`` (and ``conf``) one row of numbers per ``ys`` value, a kind, a
    class count within :data:`MAX_CLASSES`, points as three lists of one length within :data:`MAX_POINTS`.

    >>> g = typed_grid({"epoch": 2, "xs": [0, 1], "ys": [0, 1], "kind": "prob", "z": [[0.1, 0.2], [0.3, 0.4]]})
    >>> g["z"], g["epoch"], typed_grid({**g, "z": [[0.1], [0.3]]}), typed_grid({**g, "kind": "class", "classes": 10**9})
    ([[0.1, 0.2], [0.3, 0.4]], 2, None, None)
    """
    if not isinstance(b, dict):
        return None
    xs, ys = records.number_list(b.get("xs"), MAX_RESOLUTION), records.number_list(b.get("ys"), MAX_RESOLUTION)
    kind, classes, epoch = b.get("kind"), records.number(b.get("classes")), records.number(b.get("epoch"))
    if xs is None or ys is None or len(xs) < 2 or len(ys) < 2 or kind not in ("prob", "class"):
        return None
    if kind == "class" and not (isinstance(classes, int) and 2 < classes <= MAX_CLASSES):
        return None
    z = _grid_rows(b.get("z"), len(ys), len(xs))
    if z is None:
        return None
    out = {"epoch": epoch if isinstance(epoch, int) else None, "xs": xs, "ys": ys, "kind": kind, "z": z}
    if kind == "class":
        out |= {"classes": classes, "conf": _grid_rows(b.get("conf"), len(ys), len(xs))}
    p = b.get("points")
    if isinstance(p, dict):
        cols = [records.number_list(p.get(k), MAX_POINTS) for k in ("x", "y", "label")]
        if all(c is not None for c in cols) and len({len(c) for c in cols}) == 1:
            out["points"] = {"x": cols[0], "y": cols[1], "label": [int(v) for v in cols[2]]}
    return out


def _grid_rows(v: Any, n: int, m: int) -> list | None:
    """``v`` as ``n`` rows of ``m`` finite numbers, or None."""
    if not isinstance(v, list) or len(v) != n:
        return None
    rows = [records.number_list(r, m) for r in v]
    return rows if all(r is not None and len(r) == m for r in rows) else None
