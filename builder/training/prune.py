"""Pruning a trained run: remove channels from the drawn network (structured) or zero its smallest weights
(unstructured), fine-tune the result as a new run, and measure what it cost and saved.

* Structured: the channel groups of :func:`builder.graph.shrink.channel_plan` (producers, their followers and
  consumers, residual Adds pruned identically); each chosen free group keeps the ``1 - amount`` share of its
  output channels with the largest importance: ``l1`` (the L1 norm of each output filter, summed over the
  group's producers) or ``taylor`` (``|weight * grad|`` summed per output filter over a few training batches).
  The project graph changes (smaller ``out_channels`` / ``out_features``) and the surviving weights are copied
  (:func:`slice_state`), so the model before fine-tuning computes exactly what the old one computes when the
  removed channels are cut off at their consumers.
* Unstructured: global magnitude pruning over the weights of the chosen Conv/Linear nodes (the ``amount``
  smallest ``|w|`` become 0), the mask kept fixed while fine-tuning (the pruned weights get no gradient, and
  are re-zeroed before the test), sparsity per layer reported. An interrupted fine-tune resumes with
  :func:`~builder.runs.prune_run.resume_pruned`, which re-installs the mask (:class:`KeepMasks`).

:func:`~builder.runs.prune_run.prune_run` fine-tunes through :func:`builder.runs.pipeline.run_training` as a new run whose
``parent_id`` is the pruned run, and writes ``prune.json`` (:attr:`RunFolder.prune`): parameters, weights-file
size, CPU latency (both models' forward passes timed interleaved, median and p10-p90 on one thread, called a
difference only when the spreads separate: :func:`builder.graph.latency.compare_latency`) and the test metrics
before/after; the new run's model card shows it. Example (L1 importance of a hand-made layer)::

    >>> import torch
    >>> w = torch.tensor([[1.0, -1.0], [0.1, 0.2], [3.0, 0.0]])
    >>> keep_channels(w.abs().sum(1), 0.5).tolist()  # 3 channels, keep round(1.5) = 2: the largest
    [0, 2]
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from builder._moved import moved_name
from builder.data import records
from builder.data.predictions import first_output
from builder.errors import LayerLabError
from builder.graph.compile import module_names
from builder.graph.latency import Conditions
from builder.graph.project import Project
from builder.graph.shrink import CONSUMER_DIM, PRODUCERS, ChannelPlan, Layout, channel_plan, shrink_graph
from builder.training.callbacks import Callback
from builder.training.config import TrainConfig
from builder.training.metrics import compute_loss, evaluate

__all__ = ["PruneReport", "prune_table", "FINETUNE", "FINETUNE_LR_FACTOR", "keep_channels", "channel_importance", "layout_index", "slice_state", "structured_prune", "prunable_groups",
           "magnitude_masks", "latency_text", "latency_cell", "finetune_config", "KeepMasks", "StartFrom", "CRITERIA"]

CRITERIA = ("l1", "taylor")
# The fine-tune's settings unless the caller overrides them: the parent's, with a cosine schedule from 3x the
# parent's learning rate and no early stopping (5 epochs are short). Over 12 seeds of the CNN on digits (50 %
# of both convolutions, L1) the median test-accuracy change was -0.37 points (the parent's settings: -0.74);
# see bench/RESULTS.md.
FINETUNE = {"scheduler": "cosine", "early_stopping": None}
FINETUNE_LR_FACTOR = 3.0
_BN_KEYS = ("weight", "bias", "running_mean", "running_var")


@dataclass
class PruneReport:
    """What :func:`~builder.runs.prune_run.prune_run` did and measured (stored as the new run's ``prune.json``)."""

    parent_id: str
    run_id: str | None
    method: str  # structured | unstructured
    criterion: str
    amount: float
    finetune_epochs: int
    metric: str
    groups: list[dict] = field(default_factory=list)  # structured: members, before, after
    left_alone: list[dict] = field(default_factory=list)  # structured: members, reasons
    sparsity: dict[str, float] = field(default_factory=dict)  # unstructured: node -> share of zero weights
    before: dict = field(default_factory=dict)  # params, nonzero, weights_bytes, latency_ms (+ p10/p90), test
    after: dict = field(default_factory=dict)
    latency: dict = field(default_factory=dict)  # builder.graph.latency.Comparison: verdict, spreads, conditions

    def to_dict(self) -> dict:
        """JSON-serialisable form."""
        return asdict(self)

    def lines(self) -> list[str]:
        """The report as terminal lines."""
        b, a = self.before, self.after
        out = [f"{self.method} pruning ({self.criterion if self.method == 'structured' else 'magnitude'}, amount "
               f"{self.amount:g}) of run {self.parent_id} -> run {self.run_id} ({self.finetune_epochs} fine-tune "
               "epochs)"]
        for g in self.groups:
            out.append(f"  {'+'.join(g['members'])}: {g['before']} -> {g['after']} channels")
        for g in self.left_alone:
            out.append(f"  left alone {'+'.join(g['members'])}: {'; '.join(g['reasons'])}")
        for node, s in self.sparsity.items():
            out.append(f"  {node}: {s:.1%} zero")
        ratio = a["params"] / b["params"] if b.get("params") else float("nan")
        out += [f"parameters       {b['params']:,} -> {a['params']:,} ({ratio:.3f}x; nonzero {b['nonzero']:,} -> "
                f"{a['nonzero']:,})",
                f"weights file     {b['weights_bytes']:,} -> {a['weights_bytes']:,} bytes",
                f"CPU latency      {latency_text(self.to_dict())}",
                f"test {self.metric:<11} {_num(b['test'].get(self.metric))} -> {_num(a['test'].get(self.metric))}"]
        return out


def prune_table(report: PruneReport | dict) -> list[dict]:
    """The before/after rows of a pruning report (parameters, nonzero, weights bytes, latency, test metric)."""
    r = report.to_dict() if isinstance(report, PruneReport) else dict(report)
    b, a, m = r.get("before") or {}, r.get("after") or {}, r.get("metric", "accuracy")

    def ratio(k: str) -> str:
        return f"{a[k] / b[k]:.3f}×" if b.get(k) and a.get(k) is not None else "—"
    lat = r.get("latency") or {}
    rows = [("parameters", f"{b.get('params', 0):,}", f"{a.get('params', 0):,}", ratio("params")),
            ("nonzero weights", f"{b.get('nonzero', 0):,}", f"{a.get('nonzero', 0):,}", ratio("nonzero")),
            ("weights file (bytes)", f"{b.get('weights_bytes', 0):,}", f"{a.get('weights_bytes', 0):,}",
             ratio("weights_bytes")),
            (f"CPU latency (ms, batch {b.get('latency_batch', '-')}; median, p10-p90)", latency_cell(b), latency_cell(a),
             str(lat.get("verdict") or "not measured side by side"))]
    tb, ta = (b.get("test") or {}).get(m), (a.get("test") or {}).get(m)
    delta = f"{(ta - tb) * 100:+.2f} points" if isinstance(tb, (int, float)) and isinstance(ta, (int, float)) else "—"
    rows.append((f"test {m}", _num(tb), _num(ta), delta))
    return [{"": n, "before": x, "after": y, "change": c} for n, x, y, c in rows]


def _num(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, (int, float)) else "-"


def latency_cell(side: dict) -> str:
    """``"1.234 (1.100-1.400)"``: one side's latency median and p10-p90 in ms (``-`` when not measured)."""
    m, lo, hi = side.get("latency_ms"), side.get("latency_p10_ms"), side.get("latency_p90_ms")
    if not isinstance(m, (int, float)):
        return "-"
    return f"{m:.3f} ({lo:.3f}-{hi:.3f})" if isinstance(lo, (int, float)) and isinstance(hi, (int, float)) else f"{m:.3f}"


def latency_text(report: dict) -> str:
    """The before/after latency of a pruning report, one line: medians with p10-p90, the verdict (a difference
    only when the spreads separate) and the conditions (threads, warm-up, load)."""
    b, a, lat = report.get("before") or {}, report.get("after") or {}, report.get("latency") or {}
    if not isinstance(b.get("latency_ms"), (int, float)) or not isinstance(a.get("latency_ms"), (int, float)):
        return "not measured"
    try:
        where = f"{Conditions(**lat['conditions']).text()}, {int(lat['before']['repeats'])} interleaved repeats"
    except (KeyError, TypeError, ValueError):
        where = "not timed side by side"
    return (f"{latency_cell(b)} -> {latency_cell(a)} ms per batch of {b.get('latency_batch', '-')}, median "
            f"(p10-p90): {lat.get('verdict', 'not measured side by side')} ({where})")


# ------------------------------------------------------------------------------------------ structured
def keep_channels(importance: torch.Tensor, amount: float) -> torch.Tensor:
    """Sorted indices of the ``round(n * (1 - amount))`` (at least 1) most important channels."""
    n = len(importance)
    k = max(1, int(round(n * (1 - float(amount)))))
    return torch.topk(importance.detach().float(), k).indices.sort().values


def _filter_scores(w: torch.Tensor) -> torch.Tensor:
    return w.abs().reshape(len(w), -1).sum(1)  # per output filter / unit


def channel_importance(model: torch.nn.Module, plan: ChannelPlan, groups: Iterable[str], criterion: str = "l1",
                       batches: Iterable[tuple[torch.Tensor, torch.Tensor]] = (), task: str = "multiclass",
                       ) -> dict[str, torch.Tensor]:
    """Per group, the importance of each output channel summed over its producers.

    ``l1``: the L1 norm of each output filter. ``taylor``: ``|w * dL/dw|`` (weights and bias) summed per output
    filter over ``batches`` of ``(x, y)`` (eval mode, so dropout is off and BatchNorm uses its statistics).

    Raises:
        LayerLabError: an unknown criterion, or ``taylor`` without batches.
    """
    if criterion not in CRITERIA:
        raise LayerLabError(f"the criterion is one of {', '.join(CRITERIA)}; received: {criterion!r}. Fix: use l1")
    groups = list(groups)
    mods = dict(model.named_children())
    names = module_names_of(model)
    members = {g: plan.groups[g].members for g in groups}
    if criterion == "l1":
        return {g: sum(_filter_scores(mods[names[m]].weight.detach()) for m in ms) for g, ms in members.items()}
    scores = {m: torch.zeros(plan.groups[g].size) for g, ms in members.items() for m in ms}
    was = model.training
    model.eval()
    seen = 0
    try:
        for x, y in batches:
            model.zero_grad(set_to_none=True)
            with torch.enable_grad():
                compute_loss(first_output(model(x)), x, y, task).backward()
            for m in scores:
                mod = mods[names[m]]
                s = _filter_scores(mod.weight.detach() * mod.weight.grad)
                if getattr(mod, "bias", None) is not None:
                    s = s + (mod.bias.detach() * mod.bias.grad).abs()
                scores[m] += s.cpu()
            seen += 1
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was)
    if not seen:
        raise LayerLabError("the taylor criterion needs training batches; received none. Fix: pass batches or "
                            "use criterion='l1'")
    return {g: sum(scores[m] for m in ms) for g, ms in members.items()}


def module_names_of(model: torch.nn.Module) -> dict[str, str]:
    """Node id -> module attribute of a compiled model (``layerlab_names``)."""
    return dict(getattr(model, "layerlab_names", {}) or {})


def layout_index(layout: Layout, keep: dict[str, torch.Tensor]) -> torch.Tensor | None:
    """The positions along ``layout``'s dimension that survive (None when nothing in it is pruned)."""
    if not any(g in keep for g in layout.groups):
        return None
    parts, offset = [], 0
    for g, n in layout.segs:
        idx = keep[g] if g in keep else torch.arange(n)
        parts.append(idx + offset)
        offset += n
    ch = torch.cat(parts)
    if layout.mult == 1:
        return ch
    return (ch[:, None] * layout.mult + torch.arange(layout.mult)[None, :]).reshape(-1)


def slice_state(state: dict[str, torch.Tensor], names: dict[str, str], plan: ChannelPlan, types: dict[str, str],
                keep: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The state dict of the shrunk model: producers keep their ``keep[group]`` output channels, consumers the
    matching input channels (column blocks after a Flatten), BatchNorm the matching statistics."""
    out = dict(state)

    def take(key: str, dim: int, idx: torch.Tensor) -> None:
        if key in out:
            out[key] = out[key].index_select(dim, idx.to(out[key].device)).contiguous()

    for node, gid in plan.producers.items():
        if gid in keep:
            for k in ("weight", "bias"):
                take(f"{names[node]}.{k}", 0, keep[gid])
    for node, lay in plan.consumers.items():
        idx = layout_index(lay, keep)
        if idx is not None:
            take(f"{names[node]}.weight", CONSUMER_DIM[types[node]], idx)
    for node, lay in plan.followers.items():
        idx = layout_index(lay, keep)
        if idx is not None:
            for k in _BN_KEYS:
                take(f"{names[node]}.{k}", 0, idx)
    return out


def prunable_groups(plan: ChannelPlan, nodes: Iterable[str] | None = None) -> tuple[list[str], list[dict]]:
    """The channel groups structured pruning of ``nodes`` (default: every producer) removes channels from, and
    those left alone (``{"members", "reasons"}``); from the graph alone, so a prune job is checked before it is
    recorded.

    Raises:
        LayerLabError: a node that is not a producer, or nothing left to prune.
    """
    chosen = set(plan.producers) if nodes is None else set(nodes)
    for n in chosen:
        plan.group_of(n)  # raises for a node that is not a producer
    pruned, alone = [], []
    for gid, g in plan.groups.items():
        if not chosen & set(g.members):
            continue
        reasons = list(g.blocked)
        if not reasons and not set(g.members) <= chosen:
            reasons.append(f"shares its channels (Add/Multiply) with {', '.join(sorted(set(g.members) - chosen))}, "
                           "not chosen")
        if reasons:
            alone.append({"members": g.members, "reasons": reasons})
        else:
            pruned.append(gid)
    if not pruned:
        why = "; ".join(r for a in alone for r in a["reasons"]) or "no Conv/Linear node chosen"
        raise LayerLabError(f"structured pruning needs a Conv/Linear node whose channels can be removed; received "
                            f"none ({why}). Fix: choose other nodes, or prune --unstructured")
    return pruned, alone


def structured_prune(project: Project, model: torch.nn.Module, amount: float, *, criterion: str = "l1",
                     nodes: Iterable[str] | None = None, batches: Iterable = (), task: str = "multiclass",
                     ) -> tuple[Project, dict[str, torch.Tensor], list[dict], list[dict]]:
    """Remove the least important ``amount`` of output channels of the chosen producers' groups.

    Args:
        project: the trained project; ``model`` its compiled, trained model.
        nodes: producer node ids (default: every Conv/Linear whose channels can go). A group sharing channels
            through an Add is pruned when all its producers are chosen, else left alone (and reported).

    Returns:
        ``(new project, its state dict, pruned groups, groups left alone)``.

    Raises:
        LayerLabError: an amount outside [0, 1), a node that is not a producer, nothing left to prune.
        GraphError: the graph has problems.
    """
    if not 0 <= float(amount) < 1:
        raise LayerLabError(f"the amount is the share of channels removed, in [0, 1); received: {amount!r}. "
                            "Fix: e.g. 0.5")
    plan = channel_plan(project.graph)
    pruned, alone = prunable_groups(plan, nodes)
    imp = channel_importance(model, plan, pruned, criterion, batches, task)
    keep = {g: keep_channels(imp[g], amount) for g in pruned}
    graph = shrink_graph(project.graph, plan, {g: len(k) for g, k in keep.items()})
    types = {n.id: n.type for n in project.graph.nodes}
    state = slice_state(model.state_dict(), module_names_of(model) or module_names(project.graph), plan, types, keep)
    new = project.model_copy(deep=True)
    new.graph = graph
    groups = [{"members": plan.groups[g].members, "before": plan.groups[g].size, "after": len(keep[g]),
               "kept": keep[g].tolist()} for g in pruned]
    return new, state, groups, alone


# ------------------------------------------------------------------------------------------ unstructured
def magnitude_masks(model: torch.nn.Module, amount: float, nodes: Iterable[str] | None = None
                    ) -> dict[str, torch.Tensor]:
    """Global magnitude pruning: masks (1 keep, 0 pruned) for the weights of the chosen Conv/Linear nodes, the
    ``amount`` share with the smallest ``|w|`` over all of them set to 0 (keyed by state-dict name).

    Raises:
        LayerLabError: an amount outside [0, 1], or no Conv/Linear weights.
    """
    if not 0 <= float(amount) <= 1:
        raise LayerLabError(f"the amount is the share of weights zeroed, in [0, 1]; received: {amount!r}. Fix: e.g. 0.5")
    names = module_names_of(model)
    mods = dict(model.named_children())
    wanted = list(nodes) if nodes is not None else list(names)
    weights = {}
    for n in wanted:
        mod = mods.get(names.get(n, ""))
        if mod is None or type(mod).__name__ not in (*PRODUCERS, "ConvTranspose2d"):
            if nodes is not None:
                raise LayerLabError(f"unstructured pruning zeroes Conv/Linear weights; received: {n!r}. Fix: name "
                                    "Conv/Linear nodes")
            continue
        weights[f"{names[n]}.weight"] = mod.weight.detach()
    if not weights:
        raise LayerLabError("unstructured pruning needs Conv/Linear weights; received a model without any. "
                            "Fix: prune another run")
    flat = torch.cat([w.abs().reshape(-1).float().cpu() for w in weights.values()])
    k = int(round(float(amount) * len(flat)))
    if k == 0:
        return {key: torch.ones_like(w) for key, w in weights.items()}
    order = torch.argsort(flat, stable=True)  # exactly k zeros, ties broken by position
    keep = torch.ones(len(flat))
    keep[order[:k]] = 0
    out, offset = {}, 0
    for key, w in weights.items():
        out[key] = keep[offset:offset + w.numel()].reshape(w.shape).to(w.dtype)
        offset += w.numel()
    return out


class KeepMasks(Callback):
    """Keep ``masks`` (state-dict key -> 0/1 tensor) fixed while training: masked weights get zero gradients (so
    no optimizer moves them) and are zeroed at the start (after a checkpoint is restored) and before the test."""

    def __init__(self, masks: dict[str, torch.Tensor] | None = None):
        self.masks = dict(masks or {})
        self._handles: list = []

    def setup(self, trainer: Any) -> None:
        """Hook the masks into the gradients."""
        params = dict(trainer.model.named_parameters())
        for key, m in self.masks.items():
            mask = m.to(params[key].device)
            self._handles.append(params[key].register_hook(lambda g, mask=mask: g * mask))
        self._apply(trainer.model)

    def _apply(self, model: torch.nn.Module) -> None:
        params = dict(model.named_parameters())
        with torch.no_grad():
            for key, m in self.masks.items():
                params[key].mul_(m.to(params[key].device))

    def on_train_begin(self, trainer: Any) -> None:
        """Zero the masked weights after a resumed run's checkpoint was loaded."""
        self._apply(trainer.model)

    def on_before_test(self, trainer: Any) -> None:
        """Zero the masked weights again (exactly) before the test and the saved weights."""
        self._apply(trainer.model)

    def on_train_end(self, trainer: Any, result: Any) -> None:
        """Remove the gradient hooks."""
        for h in self._handles:
            h.remove()
        self._handles.clear()


class StartFrom(KeepMasks):
    """Start training from ``state`` (loaded before the optimizer is built) and keep ``masks`` fixed."""

    def __init__(self, state: dict[str, torch.Tensor], masks: dict[str, torch.Tensor] | None = None):
        super().__init__(masks)
        self.state = state

    def setup(self, trainer: Any) -> None:
        """Load the state, then hook the masks."""
        trainer.model.load_state_dict(self.state)
        super().setup(trainer)


# ------------------------------------------------------------------------------------------ measures
def measure_model(model: torch.nn.Module, graph: Any, ds: Any, weights_path: Any, latency_repeats: int,
             latency_batch: int) -> dict:
    """Size and test figures of one model; its latency is timed later, interleaved with the other's
    (:func:`_complete`)."""
    info = ds.info
    test = evaluate(model, ds.test.X, ds.test.y, info.task, class_names=info.class_names or None,
                    num_classes=info.num_classes) if len(ds.test) else {}
    params = [p for p in model.parameters()]
    return {"params": int(sum(p.numel() for p in params)), "nonzero": int(sum(int((p != 0).sum()) for p in params)),
            "weights_bytes": int(weights_path.stat().st_size) if weights_path.is_file() else 0,
            "latency_batch": latency_batch,
            "test": {k: n for k, v in test.items() if (n := records.number(v, finite=False)) is not None}}


def eval_batches(ds: Any, n: int, size: int = 64) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    perm = torch.randperm(len(ds.train), generator=g)[: n * size]
    return [(ds.train.X[perm[i:i + size]], ds.train.y[perm[i:i + size]]) for i in range(0, len(perm), size)]


def finetune_config(parent_config: dict, finetune_epochs: int, config: dict | None = None) -> dict:
    """The fine-tune's settings: the parent's with :data:`FINETUNE`, :data:`FINETUNE_LR_FACTOR` times its learning
    rate, ``config`` over any and ``epochs = finetune_epochs``."""
    cfg = TrainConfig.from_dict(parent_config or {})
    return {**cfg.model_dump(), "init_from": None, "init_nodes": None, **FINETUNE,
            "lr": min(cfg.lr * FINETUNE_LR_FACTOR, 10.0), **(config or {}), "epochs": int(finetune_epochs)}


def check_prune_args(amount: float, structured: bool, criterion: str, finetune_epochs: int) -> None:
    if int(finetune_epochs) < 0:
        raise LayerLabError(f"fine-tune epochs are 0 or more; received: {finetune_epochs}. Fix: e.g. 5")
    if not (0 <= float(amount) < 1 or (not structured and float(amount) == 1)):
        raise LayerLabError(f"the amount is the share removed, in [0, 1); received: {amount!r}. Fix: e.g. 0.5")
    if structured and criterion not in CRITERIA:
        raise LayerLabError(f"the criterion is one of {', '.join(CRITERIA)}; received: {criterion!r}. Fix: use l1")


def after_test(model: torch.nn.Module, ds: Any) -> dict:
    """The test metrics of ``model`` on ``ds`` (as a run records them)."""
    info = ds.info
    return evaluate(model, ds.test.X, ds.test.y, info.task, class_names=info.class_names or None,
                    num_classes=info.num_classes)


def layer_sparsity(model: torch.nn.Module, masks: dict[str, torch.Tensor]) -> dict[str, float]:
    by_attr = {v: k for k, v in module_names_of(model).items()}
    sd = model.state_dict()
    return {by_attr.get(key.rsplit(".", 1)[0], key): float((sd[key] == 0).float().mean()) for key in masks}


def __getattr__(name: str):  # the run drivers moved up to builder.runs.prune_run (builder/_moved.py)
    return moved_name(__name__, name)
