"""Training health: a callback that samples per-node gradient, update and activation statistics while a model trains.

Every ``every`` optimisation steps (and at least once per epoch) :class:`HealthMonitor` records, per node (node ids
map to module names through ``model.layerlab_names``, :func:`builder.graph.compile.module_names`):

- ``grad_norm``: the L2 norm of the gradients of the node's parameters (as the optimizer sees them: after clipping);
- ``weight_norm`` and ``update_ratio``: ``|Δw| / |w|`` of that very step (the rule of thumb is ~1e-3 per step);
- ``act_mean`` / ``act_std`` of the node's output (float outputs of nodes with a module);
- ``dead``: after ReLU/ReLU6, the fraction of units (output elements per sample) that are 0 for every sample of
  the batch;
- ``saturated``: after Sigmoid/Tanh, the fraction of outputs within :data:`SATURATION_EPS` of an asymptote.

Cost: nothing runs on the steps in between. On a sample step forward hooks are registered for that one step and
removed after it; optimizer step hooks (registered once) compute the norms with ``torch._foreach_norm``. Every
statistic stays a device tensor until the epoch ends, where all samples of the epoch are read with one host
transfer (no per-step synchronisation on a GPU). The log is kept with the run as ``health.json``
(:attr:`builder.training.run_folder.RunFolder.health`), written atomically at the first epoch end, then at an epoch end at
most every :data:`WRITE_EVERY_S` seconds (a live page sees it within seconds; rewriting the whole log after every
short epoch cost ~4% of a small model's run) and always when the run ends;
:func:`read_health` reads it back. :mod:`builder.interpret.doctor` turns it into findings. Example::

    >>> from builder.data import load_dataset
    >>> from builder.training.trainer import Trainer
    >>> ds = load_dataset("moons", n_samples=200)
    >>> model = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    >>> monitor = HealthMonitor(every=2)
    >>> _ = Trainer(model, ds, {"epochs": 1, "health_every": 0}, [monitor]).fit()
    >>> sorted(monitor.log.samples[0]["nodes"]["1"])
    ['act_mean', 'act_std', 'dead']
    >>> sorted(monitor.log.samples[0]["nodes"]["0"])
    ['act_mean', 'act_std', 'grad_norm', 'update_ratio', 'weight_norm']
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from builder.data import records
from builder.data.disk import write_atomic
from builder.training.callbacks import Callback
from builder.training.config import HEALTH_EVERY as DEFAULT_EVERY
from builder.training.run_folder import RunFolder, read_json_file

if TYPE_CHECKING:
    from builder.training.trainer import Trainer, TrainResult

HEALTH_VERSION = 1
SATURATION_EPS = 0.01  # a Sigmoid output within 0.01 of 0 or 1 (|x| > 4.6), a Tanh output with |y| > 0.99
MAX_SAMPLES = 1000  # older samples are thinned (every second one dropped) beyond this many
WRITE_EVERY_S = 2.0  # health.json is rewritten at an epoch end at most this often (always at the first and the last)
RELU_LIKE = frozenset({"ReLU", "ReLU6"})  # activations whose units die (exactly 0 for negative inputs)
SATURATING = {"Sigmoid": (0.0, 1.0), "Tanh": (-1.0, 1.0)}  # activation -> its asymptotes


def node_kind(layer_type: str) -> str:
    """``relu``, ``saturating`` or ``other``: which activation statistic a node's output gets.

    >>> node_kind("ReLU"), node_kind("Tanh"), node_kind("Linear")
    ('relu', 'saturating', 'other')
    """
    if layer_type in RELU_LIKE:
        return "relu"
    return "saturating" if layer_type in SATURATING else "other"


# ------------------------------------------------------------------------------------------------- the log
@dataclass
class HealthLog:
    """What a run's health recording holds (``health.json``).

    ``nodes``: one dict per recorded node in graph order (``id``, ``type``, ``kind``, ``params``: whether it has
    trainable parameters, ``output``: an output node of the graph, ``ndim``: its output's rank with the batch, once seen). ``samples``: one dict per sample
    (``step``: optimisation steps done before it, ``epoch``: 1-based, ``nodes``: ``{node id: {statistic: value}}``;
    a value that is not finite is kept as the string ``"nan"``, ``"inf"`` or ``"-inf"``).
    """

    every: int = DEFAULT_EVERY
    nodes: list[dict[str, Any]] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return {"version": HEALTH_VERSION, "every": self.every, "nodes": self.nodes, "samples": self.samples}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HealthLog:
        """Inverse of :meth:`to_dict`; raises ValueError for something that is not a health log."""
        if not isinstance(data, dict) or not isinstance(data.get("nodes"), list) \
                or not isinstance(data.get("samples"), list):
            raise ValueError("not a health log: expected a dict with 'nodes' and 'samples' lists")
        nodes = [_node(n) for n in data["nodes"] if isinstance(n, dict) and isinstance(n.get("id"), str)]
        samples = [_sample(s) for s in data["samples"] if isinstance(s, dict) and isinstance(s.get("nodes"), dict)]
        every = records.number(data.get("every"))
        return cls(every if isinstance(every, int) and every > 0 else DEFAULT_EVERY, nodes, samples)

    def node_types(self) -> dict[str, str]:
        """Node id -> layer type."""
        return {n["id"]: str(n.get("type", "")) for n in self.nodes}

    def series(self, node: str, stat: str) -> list[float]:
        """The values of one statistic of one node over the samples (non-finite values as float nan/inf)."""
        out = []
        for s in self.samples:
            v = s["nodes"].get(node, {}).get(stat)
            if v is not None:
                out.append(float(v))
        return out


def _json_value(v: float) -> float | str:
    return v if math.isfinite(v) else str(v)


def write_health(log: HealthLog, path: str | os.PathLike) -> None:
    """Write ``log`` as JSON atomically (a reader never sees half a file)."""
    write_atomic(path, json.dumps(log.to_dict(), separators=(",", ":")), "the training health log")


def _node(n: dict) -> dict[str, Any]:
    """A recorded node as :class:`HealthCheck` writes it, each field its type (a job wrote the file)."""
    ndim = records.number(n.get("ndim"))
    return {"id": n["id"], "type": records.text(n.get("type"), ""), "kind": records.text(n.get("kind"), ""),
            "params": n.get("params") is True, "output": n.get("output") is True,
            **({"ndim": ndim} if isinstance(ndim, int) else {})}


def _sample(s: dict) -> dict[str, Any]:
    """A recorded sample as :class:`HealthCheck` writes it: whole step and epoch, ``{node: {statistic: value}}``
    with each value a number or a non-finite one's name (anything else left out).

    >>> _sample({"step": "3", "epoch": 1, "nodes": {"a": {"mean": 0.5, "std": "inf", "x": [1], "y": True}, "b": 7}})
    {'step': 0, 'epoch': 1, 'nodes': {'a': {'mean': 0.5, 'std': 'inf'}}}
    """
    def value(v: Any) -> float | str | None:
        if isinstance(v, str):
            return v if v in ("nan", "inf", "-inf") else None
        return records.number(v, finite=False)

    nodes = {str(k): {str(st): x for st, v in stats.items() if (x := value(v)) is not None}
             for k, stats in s["nodes"].items() if isinstance(stats, dict)}
    step, epoch = records.number(s.get("step")), records.number(s.get("epoch"))
    return {"step": step if isinstance(step, int) else 0, "epoch": epoch if isinstance(epoch, int) else 0,
            "nodes": nodes}


def read_health(run_folder: str | os.PathLike | RunFolder) -> HealthLog | None:
    """The health log of a run folder (or of a ``health.json`` path), or None when there is none or it cannot be
    read."""
    p = Path(run_folder)
    path = p if p.suffix == ".json" else RunFolder(p).health
    data = read_json_file(path)  # bounded: the job's process wrote it
    try:
        return HealthLog.from_dict(data) if isinstance(data, dict) else None
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


# -------------------------------------------------------------------------------------------- the callback
@dataclass
class _Node:
    id: str
    type: str
    kind: str
    module: torch.nn.Module
    params: list[torch.nn.Parameter]


class HealthMonitor(Callback):
    """Samples per-node health statistics every ``every`` steps (and at the first step of every epoch when an
    epoch is shorter); see the module docstring. ``log`` holds what was read so far.

    The trainer adds one when ``TrainConfig.health_every`` > 0 (:class:`builder.training.trainer.Trainer`);
    with a run folder the log is written to ``health.json``. A resumed run keeps the samples taken before its
    checkpoint.
    """

    def __init__(self, every: int = DEFAULT_EVERY):
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"health sampling interval must be a positive integer; received: {every!r}")
        self.every = every
        self.log = HealthLog(every)
        self._nodes: list[_Node] = []
        self._hooks: list[Any] = []
        self._armed = False  # this step is sampled (forward hooks registered unless the forward is compiled)
        self._opt_hooks: list[Any] = []
        self._pending: list[tuple[int, int, list[tuple[str, str]], torch.Tensor]] = []
        self._fwd: dict[str, list[tuple[str, torch.Tensor]]] = {}
        self._ndim: dict[str, int] = {}
        self._prev: list[torch.Tensor] | None = None
        self._grad: list[tuple[str, str, torch.Tensor]] = []
        self._step = 0
        self._interval = every
        self._trainer: Trainer | None = None
        self._written: float | None = None  # when health.json was last written (time.monotonic)

    # ---- setup
    def on_train_begin(self, trainer: Trainer) -> None:
        """Map nodes to modules, hook the optimizer, keep the samples a resumed run took before its checkpoint."""
        self._trainer = trainer
        model = trainer.model
        names = dict(getattr(model, "layerlab_names", {}) or {}) or {n: n for n, _ in model.named_children()}
        types = dict(getattr(model, "layerlab_types", {}) or {})
        self._nodes = []
        for nid, attr in names.items():
            mod = model.get_submodule(attr)
            typ = types.get(nid) or type(mod).__name__
            params = [p for p in mod.parameters() if p.requires_grad]
            self._nodes.append(_Node(nid, typ, node_kind(typ), mod, params))
        outputs = set(getattr(model, "layerlab_outputs", ()) or ())
        self.log = HealthLog(self.every, [{"id": n.id, "type": n.type, "kind": n.kind, "params": bool(n.params),
                                           "output": n.id in outputs} for n in self._nodes])
        self._step = trainer.global_step
        if trainer.resume_from is not None and trainer.run_dir is not None:
            old = read_health(trainer.run_dir)
            if old is not None:
                self.log.samples = [s for s in old.samples if isinstance(s.get("step"), int)
                                    and s["step"] < trainer.global_step]
        self._interval = max(1, min(self.every, int(getattr(trainer, "steps_per_epoch", self.every) or self.every)))
        opt = trainer.optimizer
        self._opt_hooks = [opt.register_step_pre_hook(self._before_step),
                           opt.register_step_post_hook(self._after_step)]
        if self._due():
            self._arm()

    def _due(self) -> bool:
        return self._step % self._interval == 0

    # ---- forward hooks, only on sample steps
    def _arm(self) -> None:
        self._fwd = {}
        self._armed = True
        if getattr(self._trainer, "compiled", False):  # torch.compile: a hook added or removed recompiles
            return
        for n in self._nodes:
            self._hooks.append(n.module.register_forward_hook(self._forward_hook(n)))

    def _disarm(self) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks = []
        self._armed = False

    def _forward_hook(self, node: _Node):
        def hook(module: torch.nn.Module, args: Any, out: Any) -> None:
            if not module.training:  # an evaluation pass between the arming and the sample step
                return
            y = out[0] if isinstance(out, (tuple, list)) and out else out
            if not isinstance(y, torch.Tensor) or not y.is_floating_point() or y.dim() == 0 or y.numel() < 2:
                return
            self._ndim[node.id] = y.dim()
            with torch.no_grad():
                flat = y.detach().float().reshape(y.shape[0], -1)  # (B, units)
                std, mean = torch.std_mean(flat, correction=0)
                stats = [("act_mean", mean), ("act_std", std)]
                if node.kind == "relu":
                    stats.append(("dead", 1.0 - (flat > 0).any(0).float().mean()))
                elif node.kind == "saturating":
                    lo, hi = SATURATING[node.type]
                    sat = (flat < lo + SATURATION_EPS) | (flat > hi - SATURATION_EPS)
                    stats.append(("saturated", sat.float().mean()))
            self._fwd[node.id] = stats
        return hook

    # ---- optimizer hooks: gradients before the step, the update after it
    def _before_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        if not self._armed:
            return
        self._disarm()  # the forward of this step has run
        with torch.no_grad():
            self._grad = []
            flat = [(n.id, p) for n in self._nodes for p in n.params]
            grads = [(nid, p.grad) for nid, p in flat if p.grad is not None]
            if grads:
                norms = torch._foreach_norm([g.float() for _, g in grads])
                self._grad = _per_node([nid for nid, _ in grads], norms, "grad_norm")
            self._prev = [p.detach().clone() for _, p in flat]

    def _after_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        if self._prev is not None:
            self._record()
        self._step += 1
        if self._due():
            self._arm()

    def _record(self) -> None:
        with torch.no_grad():
            flat = [(n.id, p) for n in self._nodes for p in n.params]
            stats = list(self._grad)
            if flat:
                ids = [nid for nid, _ in flat]
                params = [p.detach().float() for _, p in flat]
                dn = torch._foreach_norm(torch._foreach_sub(params, [q.float() for q in self._prev]))
                wn = torch._foreach_norm(params)
                upd, w = _per_node(ids, dn, "u"), _per_node(ids, wn, "weight_norm")
                for (nid, _, d), (_, _, wv) in zip(upd, w, strict=True):
                    stats += [(nid, "weight_norm", wv), (nid, "update_ratio", d / wv.clamp_min(1e-12))]
            for nid, pairs in self._fwd.items():
                stats += [(nid, k, v) for k, v in pairs]
        self._prev, self._grad, self._fwd = None, [], {}
        if stats:
            keys = [(nid, k) for nid, k, _ in stats]
            values = torch.stack([v.reshape(()).float() for _, _, v in stats])
            epoch = (self._trainer.epoch + 1) if self._trainer is not None else 0
            self._pending.append((self._step, epoch, keys, values))

    # ---- reading at epoch end, writing with the run
    def flush(self) -> None:
        """Read the pending samples from the device (one transfer) into :attr:`log`."""
        if not self._pending:
            return
        values = torch.cat([v for *_, v in self._pending]).cpu().tolist()
        i = 0
        for step, epoch, keys, _ in self._pending:
            nodes: dict[str, dict[str, float | str]] = {}
            for (nid, k), x in zip(keys, values[i:i + len(keys)], strict=True):
                nodes.setdefault(nid, {})[k] = _json_value(x)
            i += len(keys)
            self.log.samples.append({"step": step, "epoch": epoch, "nodes": nodes})
        self._pending = []
        if len(self.log.samples) > MAX_SAMPLES:
            half = len(self.log.samples) // 2
            self.log.samples = self.log.samples[:half:2] + self.log.samples[half:]
        for n in self.log.nodes:
            if n["id"] in self._ndim:
                n["ndim"] = self._ndim[n["id"]]

    def _write(self, trainer: Trainer) -> None:
        self.flush()
        if trainer.run_dir is not None and getattr(trainer, "rank", 0) == 0 and trainer.run_dir.is_dir():
            write_health(self.log, RunFolder(trainer.run_dir).health)
            self._written = time.monotonic()

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict) -> None:
        """Read this epoch's samples; write ``health.json`` at the first epoch end and then every
        :data:`WRITE_EVERY_S` seconds at most."""
        if self._written is None or time.monotonic() - self._written >= WRITE_EVERY_S:
            self._write(trainer)
        else:
            self.flush()

    def on_train_end(self, trainer: Trainer, result: TrainResult) -> None:
        """Remove the hooks; write what a failed or stopped run sampled in its last epoch."""
        self._disarm()
        for h in self._opt_hooks:
            h.remove()
        self._opt_hooks = []
        if self.log.nodes:
            self._write(trainer)


def _per_node(ids: list[str], norms: list[torch.Tensor] | tuple[torch.Tensor, ...],
              name: str) -> list[tuple[str, str, torch.Tensor]]:
    """Combine per-parameter L2 norms into one norm per node id (``ids`` grouped by node, in order)."""
    out: list[tuple[str, str, torch.Tensor]] = []
    start = 0
    for i in range(1, len(ids) + 1):
        if i == len(ids) or ids[i] != ids[start]:
            group = norms[start:i]
            sq = torch.stack(list(group)).square().sum() if len(group) > 1 else group[0].square()
            out.append((ids[start], name, sq.sqrt()))
            start = i
    return out


__all__ = ["HealthMonitor", "HealthLog", "read_health", "write_health", "node_kind", "DEFAULT_EVERY", "WRITE_EVERY_S",
           "SATURATION_EPS", "RELU_LIKE", "SATURATING"]
