"""Measured latency, the one home for timing: pinned threads, warm-up, interleaved repeats, a median with its
spread, and the conditions it was measured under.

Every latency LayerLab reports (``layerlab summary --latency``, the Build page's Cost overlay from a run's
``latency.json``, pruning's before/after, int8 quantization's fp32/int8) comes from here:

- :func:`time_calls` runs each workload ``warmup`` times untimed, then ``repeats`` rounds in which every
  workload runs once, the order rotating each round (two models compared are interleaved, so a change of load
  hits both), on a fixed number of torch threads (``threads``, restored afterwards); it records the threads and
  the 1-minute load average (``os.getloadavg``) before and after (:class:`Conditions`).
- :class:`Timing` is a median with its p10-p90 spread (:func:`quantile`, linear interpolation as numpy's
  default); :func:`difference` calls a before/after change a difference only when the two spreads do not
  overlap, otherwise "no measurable difference".
- :func:`node_latency` / :func:`module_latency` time each node of a model by hooks (on CUDA with a
  synchronisation on both sides, so the time is the kernels' and not the launch's); :func:`compare_latency`
  times two models' whole forward passes interleaved. Nodes whose module is not called (merges such as Add or
  Concat, reshapes written inline, a position table that is only read) have no time of their own: their work is
  in the whole pass.

The clock (``clock``) and the load reader (``loadavg``) can be injected, so the harness is tested with a fake
clock of known spread; real timings are never asserted. Example::

    >>> from builder.graph.templates import load_template
    >>> t = node_latency(load_template("mlp").graph, batch_size=8, repeats=3, warmup=1)
    >>> sorted(t.per_node) == ["act1", "act2", "fc1", "fc2", "head"] and t.total_s > 0 and t.threads == 1
    True
    >>> difference(Timing(2e-3, 1.9e-3, 2.1e-3, 9), Timing(1e-3, 0.9e-3, 1.1e-3, 9))
    'faster (2.00x less time; spreads separate)'
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from builder.errors import LayerLabError
from builder.graph.compile import compile_graph, example_inputs, module_names

Clock = Callable[[], float]
NO_DIFFERENCE = "no measurable difference"


def quantile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values`` by linear interpolation between order statistics (numpy's default).

    >>> quantile([1.0, 2.0, 3.0, 4.0, 5.0], 0.1), quantile([4.0, 1.0, 2.0], 0.5)
    (1.4, 2.0)
    """
    xs = sorted(values)
    if not xs:
        raise LayerLabError("a quantile needs at least one value; received: none. Fix: time at least one repeat")
    pos = (len(xs) - 1) * float(q)
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


@dataclass
class Timing:
    """Seconds of one timed workload: median and the p10-p90 spread over ``repeats`` timed runs."""

    median_s: float
    p10_s: float
    p90_s: float
    repeats: int

    @classmethod
    def of(cls, samples: list[float]) -> Timing:
        """The median and spread of ``samples`` (seconds)."""
        return cls(quantile(samples, 0.5), quantile(samples, 0.1), quantile(samples, 0.9), len(samples))

    def text(self) -> str:
        """``"1.234 ms (p10-p90 1.100-1.400)"``."""
        return f"{self.median_s * 1e3:.3f} ms (p10-p90 {self.p10_s * 1e3:.3f}-{self.p90_s * 1e3:.3f})"


@dataclass
class Conditions:
    """What a timing was measured under: torch threads, warm-up runs and the 1-minute load average before and
    after (``None`` where the platform has no load average)."""

    threads: int
    warmup: int
    load: list[float] | None = None

    def text(self) -> str:
        """``"1 thread, 3 warm-up runs, load 0.52 -> 0.61"``."""
        load = f", load {self.load[0]:.2f} -> {self.load[1]:.2f}" if self.load else ""
        return f"{self.threads} thread{'s' if self.threads != 1 else ''}, {self.warmup} warm-up runs{load}"


def _loadavg() -> float | None:
    try:
        return float(os.getloadavg()[0])
    except (OSError, AttributeError):  # no load average on this platform
        return None


@contextmanager
def pinned_threads(threads: int) -> Iterator[None]:
    """torch's intra-op thread count set to ``threads`` inside the block, restored after it."""
    old = torch.get_num_threads()
    if threads != old:
        torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        if torch.get_num_threads() != old:
            torch.set_num_threads(old)


def _check_counts(repeats: int, warmup: int, threads: int, batch_size: int = 1) -> None:
    if repeats < 1 or warmup < 0 or batch_size < 1 or threads < 1:
        raise LayerLabError("repeats, threads and batch_size must be at least 1 and warmup at least 0; received: "
                            f"repeats={repeats}, threads={threads}, warmup={warmup}, batch_size={batch_size}. Fix: "
                            "use positive counts")


def time_calls(calls: dict[str, Callable[[], Any]], *, repeats: int = 20, warmup: int = 3, threads: int = 1,
               clock: Clock = time.perf_counter, loadavg: Callable[[], float | None] = _loadavg,
               sync: Callable[[], None] | None = None) -> tuple[dict[str, list[float]], Conditions]:
    """Time each workload of ``calls``: ``warmup`` untimed runs of each, then ``repeats`` rounds in which each runs
    once, the starting workload rotating per round (interleaved), on ``threads`` torch threads. ``sync`` runs
    before each clock reading (a CUDA synchronisation). Returns the seconds per workload and the conditions.

    Raises:
        LayerLabError: counts below their minimum.
    """
    _check_counts(repeats, warmup, threads)
    names = list(calls)
    before = loadavg()
    samples: dict[str, list[float]] = {n: [] for n in names}
    with pinned_threads(threads):
        for _ in range(warmup):
            for n in names:
                calls[n]()
        for r in range(repeats):
            for n in names[r % len(names):] + names[:r % len(names)]:
                if sync is not None:
                    sync()
                t0 = clock()
                calls[n]()
                if sync is not None:
                    sync()
                samples[n].append(clock() - t0)
    after = loadavg()
    load = [before, after] if before is not None and after is not None else None
    return samples, Conditions(int(threads), int(warmup), load)


def difference(before: Timing, after: Timing) -> str:
    """``faster``/``slower`` with the ratio of the medians when the p10-p90 spreads separate, else
    :data:`NO_DIFFERENCE`.

    >>> difference(Timing(1e-3, 0.8e-3, 1.5e-3, 9), Timing(1.1e-3, 0.9e-3, 1.6e-3, 9))
    'no measurable difference'
    """
    if after.p90_s < before.p10_s:
        return f"faster ({before.median_s / after.median_s:.2f}x less time; spreads separate)"
    if after.p10_s > before.p90_s:
        return f"slower ({after.median_s / before.median_s:.2f}x more time; spreads separate)"
    return NO_DIFFERENCE


@dataclass
class Latency:
    """Median seconds per forward pass, per node with a module (``per_node``; its p10-p90 in ``spread``) and in
    total (``total_s``, ``total_p10_s``-``total_p90_s``), at ``batch_size`` on ``device``, with the torch
    ``threads``, warm-up runs and load average (before, after) it was measured under."""

    device: str
    batch_size: int
    repeats: int
    per_node: dict[str, float] = field(default_factory=dict)
    total_s: float = 0.0
    total_p10_s: float = 0.0
    total_p90_s: float = 0.0
    spread: dict[str, list[float]] = field(default_factory=dict)
    threads: int = 1
    warmup: int = 0
    load: list[float] | None = None

    @property
    def total(self) -> Timing:
        """The whole forward pass as a :class:`Timing`."""
        return Timing(self.total_s, self.total_p10_s, self.total_p90_s, self.repeats)

    @property
    def conditions(self) -> Conditions:
        """The threads, warm-up and load it was measured under."""
        return Conditions(self.threads, self.warmup, self.load)

    def rows(self) -> list[dict[str, Any]]:
        """One row per timed node, slowest first, with its p10-p90 and its share of the whole pass."""
        return [{"node": n, "ms": s * 1e3, "p10_ms": self.spread.get(n, [s, s])[0] * 1e3,
                 "p90_ms": self.spread.get(n, [s, s])[1] * 1e3, "share": s / self.total_s if self.total_s else 0.0}
                for n, s in sorted(self.per_node.items(), key=lambda kv: -kv[1])]

    def text(self) -> str:
        """The whole pass with its spread and conditions, one line."""
        return (f"{self.total.text()} per forward pass at batch {self.batch_size} on {self.device}; median of "
                f"{self.repeats}; {self.conditions.text()}")

    def to_dict(self) -> dict:
        """JSON-serialisable form (a run folder's ``latency.json``)."""
        return asdict(self)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def node_latency(graph: Any, *, batch_size: int = 32, device: str = "cpu", repeats: int = 20,
                 warmup: int = 3, threads: int = 1, clock: Clock = time.perf_counter) -> Latency:
    """Time every node of ``graph`` (compiled here, random weights, eval mode, no gradients) on ``device``.

    Raises:
        GraphError: the graph has problems (as :func:`~builder.graph.compile.compile_graph`).
        LayerLabError: counts below their minimum.
    """
    _check_counts(repeats, warmup, threads, batch_size)
    dev = torch.device(device)
    model = compile_graph(graph).eval().to(dev)
    xs = [x.to(dev) for x in example_inputs(model, batch_size=batch_size)]
    return module_latency(model, xs, module_names(graph), repeats=repeats, warmup=warmup, threads=threads,
                          clock=clock)


def module_latency(model: torch.nn.Module, inputs: list[torch.Tensor], names: dict[str, str], *,
                   repeats: int = 20, warmup: int = 3, threads: int = 1, clock: Clock = time.perf_counter,
                   loadavg: Callable[[], float | None] = _loadavg) -> Latency:
    """Time the children of a compiled ``model`` named by ``names`` (node id -> attribute) over forward passes
    on ``inputs`` (already on the model's device; eval mode and no gradients while timing, the mode restored),
    through :func:`time_calls`.

    Raises:
        LayerLabError: counts below their minimum.
    """
    _check_counts(repeats, warmup, threads)
    dev = inputs[0].device if inputs else torch.device("cpu")
    batch_size = int(inputs[0].shape[0]) if inputs and inputs[0].dim() else 1
    by_attr = {attr: nid for nid, attr in names.items()}
    samples: dict[str, list[float]] = {}
    started: dict[str, float] = {}
    timing = [False]  # node samples are kept only in timed passes, not in the warm-up

    def before(name: str):
        def hook(_module, _args):
            _sync(dev)
            started[name] = clock()
        return hook

    def after(name: str):
        def hook(_module, _args, _out):
            _sync(dev)
            took = clock() - started.pop(name)
            if timing[0]:
                samples.setdefault(name, []).append(took)
        return hook

    handles = []
    for attr, module in model.named_children():
        nid = by_attr.get(attr)
        if nid is not None:
            handles += [module.register_forward_pre_hook(before(nid)), module.register_forward_hook(after(nid))]
    was_training = model.training
    model.eval()

    def forward() -> None:
        timing[0] = True
        model(*inputs)

    try:
        with torch.no_grad():
            with pinned_threads(threads):
                for _ in range(warmup):
                    model(*inputs)
            totals, cond = time_calls({"total": forward}, repeats=repeats, warmup=0, threads=threads, clock=clock,
                                      loadavg=loadavg, sync=lambda: _sync(dev))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    per = {nid: Timing.of(v) for nid, v in samples.items()}
    total = Timing.of(totals["total"])
    return Latency(str(dev), batch_size, repeats, {n: t.median_s for n, t in per.items()}, total.median_s,
                   total.p10_s, total.p90_s, {n: [t.p10_s, t.p90_s] for n, t in per.items()}, cond.threads,
                   int(warmup), cond.load)


@dataclass
class Comparison:
    """Two models' forward passes timed interleaved: each :class:`Timing`, the verdict of :func:`difference` and
    the conditions."""

    before: Timing
    after: Timing
    verdict: str
    conditions: Conditions
    batch_size: int
    device: str = "cpu"

    def to_dict(self) -> dict:
        """JSON-serialisable form."""
        return asdict(self)

    def text(self) -> str:
        """``before -> after: verdict (conditions)``."""
        return (f"{self.before.text()} -> {self.after.text()} per batch of {self.batch_size}: {self.verdict} "
                f"({self.conditions.text()})")


def compare_latency(before: Callable[[], Any], after: Callable[[], Any], *, batch_size: int, repeats: int = 20,
                    warmup: int = 3, threads: int = 1, clock: Clock = time.perf_counter,
                    loadavg: Callable[[], float | None] = _loadavg, device: str = "cpu") -> Comparison:
    """Time two workloads (e.g. a model's forward pass before and after pruning) interleaved (:func:`time_calls`)
    and say whether they differ (:func:`difference`). Gradients are off while timing.

    Raises:
        LayerLabError: counts below their minimum.
    """
    with torch.no_grad():
        s, cond = time_calls({"before": before, "after": after}, repeats=repeats, warmup=warmup, threads=threads,
                             clock=clock, loadavg=loadavg)
    b, a = Timing.of(s["before"]), Timing.of(s["after"])
    return Comparison(b, a, difference(b, a), cond, int(batch_size), device)


def comparison_text(record: dict) -> str:
    """One line from a stored :meth:`Comparison.to_dict` record (a pruning or quantization report); records
    that lack a field say "not measured".

    >>> comparison_text({"before": {"median_s": 2e-3, "p10_s": 1.9e-3, "p90_s": 2.2e-3, "repeats": 9},
    ...                  "after": {"median_s": 1e-3, "p10_s": 0.9e-3, "p90_s": 1.2e-3, "repeats": 9},
    ...                  "verdict": "faster", "conditions": {"threads": 1, "warmup": 3, "load": None},
    ...                  "batch_size": 32})
    '2.000 ms (p10-p90 1.900-2.200) -> 1.000 ms (p10-p90 0.900-1.200) per batch of 32: faster (1 thread, 3 warm-up runs)'
    """
    try:
        cmp = Comparison(Timing(**record["before"]), Timing(**record["after"]), str(record["verdict"]),
                         Conditions(**record["conditions"]), int(record["batch_size"]))
        return cmp.text()
    except (KeyError, TypeError, ValueError):
        return "not measured"


def model_forward(model: torch.nn.Module, inputs: list[torch.Tensor]) -> Callable[[], Any]:
    """A workload for :func:`time_calls`: one forward pass of ``model`` (put in eval mode) on ``inputs``."""
    model.eval()
    return lambda: model(*inputs)


__all__ = ["Latency", "Timing", "Conditions", "Comparison", "NO_DIFFERENCE", "quantile", "time_calls", "difference",
           "pinned_threads", "node_latency", "module_latency", "compare_latency", "comparison_text",
           "model_forward"]
