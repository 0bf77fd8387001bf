"""The training doctor: findings from a run's health samples, anomalies of its curves, and the fixes to apply.

:func:`diagnose` reads a :class:`~builder.training.health.HealthLog` (the run's ``health.json``) and returns one
:class:`Finding` per rule broken at a node: vanishing or exploding gradients, dead ReLU units, saturated
Sigmoid/Tanh outputs, an activation spread that drifted, a weight-update ratio far from ~1e-3. Each finding is
worded like the validation messages ("rule; received: value. Fix: ...") and may carry a machine-readable fix
action that :func:`apply_fix` applies to a project (a new project is returned, so the Build page's undo covers it).
:func:`curve_anomalies` finds a loss plateau, a divergence or an overfitting gap in the epoch metrics and points
at the findings' nodes; :func:`health_annotations` is what the canvas tints nodes with; :func:`run_findings`
answers all of it for one run of a store. Statistics are medians over the last :data:`RECENT` samples, so one
noisy batch flags nothing. Example::

    >>> from builder.training.health import HealthLog
    >>> log = HealthLog(10, [{"id": "act", "type": "ReLU", "kind": "relu"}],
    ...                 [{"step": 0, "epoch": 1, "nodes": {"act": {"dead": 0.8}}}])
    >>> [f.message for f in diagnose(log)]
    ['dead ReLU: over 50% of its units output 0 for every sample of a batch; received: 80% dead. Fix: replace it with LeakyReLU, lower the learning rate, or check the bias of the layer before it (a large negative bias kills units)']
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from builder.data import records
from builder.errors import LayerLabError
from builder.graph.edit import insert_after, set_param, set_type
from builder.graph.project import Project, load_project
from builder.graph.report import human_number
from builder.runs.summary import current_run
from builder.training.health import HealthLog, read_health
from builder.training.objectives import is_adversarial

if TYPE_CHECKING:
    from builder.runs.store import RunStore

RECENT = 4  # samples whose median a rule reads (the first sample, at the initial weights, only while alone)
VANISHING_RATIO = 1e-3  # first / last parameterised node's gradient norm below this: vanishing
TINY_GRAD = 1e-8  # a gradient norm below this is no gradient at all
EXPLODING_NORM = 1e3  # a node's gradient norm above this: exploding
GRAD_GROWTH = 100.0  # a node's gradient norm grown this many times since the first samples: exploding
DEAD_FRACTION = 0.5  # dead ReLU units above this fraction: warn (BAD_DEAD: bad)
BAD_DEAD = 0.9
SATURATED_FRACTION = 0.5  # saturated Sigmoid/Tanh outputs above this fraction: warn (BAD_SATURATED: bad)
BAD_SATURATED = 0.9
STD_DRIFT = 50.0  # activation std grown or shrunk this many times since the first samples: drifting (not at the
# graph's outputs: logits grow as a classifier grows confident; healthy hidden layers grew up to ~20x in the templates)
UPDATE_HIGH = 0.1  # |Δw|/|w| per step above this: the weights are rewritten in a few steps (target ~1e-3)
UPDATE_LOW = 1e-6  # |Δw|/|w| per step below this while gradients flow: the node barely learns
UPDATE_EXTREME = 0.5  # |Δw|/|w| in one step above this in any sample: the weights were rewritten at once (the
# templates' largest first step is ~0.08; the CNN at lr 2 read ~1.0 and then stopped learning, every ReLU dead)
PLATEAU_EPOCHS = 3  # epochs of a flat training loss that count as a plateau
PLATEAU_CHANGE = 0.01  # relative change of the training loss over PLATEAU_EPOCHS below this: flat
PLATEAU_LEARNED = 0.1  # ... when the loss fell by less than this fraction since the first epoch (still untrained)
DIVERGE_FACTOR = 1.5  # training loss this many times its best: diverging, when also ...
DIVERGE_SCALE = 0.1  # ... it rose above its best by this fraction of the first epoch's loss (the loss's scale: a
# converged loss moving from 0.0004 to 0.002 is noise, not a divergence)
DIVERGE_MIN_STEPS = 10  # ... and the run took at least this many optimiser steps: an epoch of one step is one batch's
# loss, and 0.654 -> 1.28 over 3 one-step epochs is one batch against another, too few steps to call a divergence
OVERFIT_GAP = 0.2  # validation loss this fraction above its best while the training loss still falls
OVERFIT_EPOCHS = 3  # ... for at least this many epochs after the best

LEVELS = ("ok", "warn", "bad")
LR_SIGNS = ("nonfinite", "update_high")  # rules that point at the learning rate itself: its fix ranks first


@dataclass
class Finding:
    """One rule broken at one node: ``rule`` (a key of :data:`RULES`), ``level`` (warn or bad), ``value`` (the
    statistic received), ``message`` ("rule; received: value. Fix: ...") and ``action`` (a fix
    :func:`apply_fix` can apply, or None)."""

    node: str
    rule: str
    level: str
    value: float | str
    message: str
    action: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return asdict(self)


@dataclass
class Anomaly:
    """A pattern in the epoch curves: ``kind`` (plateau, divergence, overfitting), the 1-based ``epoch`` it shows at,
    a ``message`` and the ``nodes`` of the findings that likely cause it."""

    kind: str
    epoch: int
    message: str
    nodes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return asdict(self)


RULES = {
    "nonfinite": "non-finite values: a gradient or activation became NaN/Inf",
    "exploding": "exploding gradients",
    "vanishing": "vanishing gradients",
    "dead_relu": f"dead ReLU: over {DEAD_FRACTION:.0%} of its units output 0 for every sample of a batch",
    "saturated": f"saturated activation: over {SATURATED_FRACTION:.0%} of its outputs sit at an asymptote",
    "std_drift": f"activation spread drifting: its std changed over {STD_DRIFT:g}x since the start",
    "update_high": f"weight updates too large: |Δw|/|w| per step above {UPDATE_HIGH:g} (aim for ~1e-3)",
    "update_low": f"weight updates too small: |Δw|/|w| per step below {UPDATE_LOW:g} (aim for ~1e-3)",
}


# ------------------------------------------------------------------------------------------------ helpers
def _num(v: Any) -> float | None:
    """A health log's number: non-finite values are kept, as numbers or as the log's ``"nan"`` / ``"inf"``."""
    n = records.number(v, finite=False, parse=True)
    return None if n is None else float(n)


def _series(log: HealthLog, node: str, stat: str) -> list[float]:
    return [x for x in (_num(s["nodes"].get(node, {}).get(stat)) for s in log.samples) if x is not None]


def _recent(values: list[float]) -> float | None:
    """The median of the last RECENT values, leaving out the first (the initial weights) once there are more."""
    finite = [v for v in values[1:][-RECENT:] or values if math.isfinite(v)]
    return statistics.median(finite) if finite else None


def _first(values: list[float]) -> float | None:
    """The first value (at the initial weights), the baseline of growth and drift."""
    return values[0] if values and math.isfinite(values[0]) else None


def _lr_to(lr: float, factor: float = 0.1) -> float:
    """The learning rate a fix proposes (``lr`` times ``factor``, 3 significant digits): the one value its words
    name and its action sets (the words wrote 4 digits of the unrounded value, 0.0006431, beside an Apply that set
    0.000643)."""
    return float(f"{lr * factor:.3g}")


def _lr_action(lr: float | None, factor: float = 0.1) -> dict[str, Any] | None:
    return {"action": "set_training", "key": "lr", "value": _lr_to(lr, factor)} if lr else None


def _finding(node: str, rule: str, level: str, value: float | str, received: str, fix: str,
             action: dict[str, Any] | None = None) -> Finding:
    return Finding(node, rule, level, value, f"{RULES[rule]}; received: {received}. Fix: {fix}", action)


def _norm_layer(ndim: int | None) -> str | None:
    return {2: "BatchNorm1d", 3: "BatchNorm1d", 4: "BatchNorm2d"}.get(ndim or 0)


# -------------------------------------------------------------------------------------------------- rules
def diagnose(log: HealthLog | dict, config: dict | None = None) -> list[Finding]:
    """The findings of a health log, most severe first (in graph order within a level).

    Args:
        log: a :class:`HealthLog` or its dict (``health.json``).
        config: the run's training settings (``lr``, ``grad_clip``), so fix actions can name values.

    Returns:
        :class:`Finding` objects; an empty list for a healthy run or a log without samples.
    """
    log = log if isinstance(log, HealthLog) else HealthLog.from_dict(log)
    if not log.samples:
        return []
    cfg = dict(config or {})
    lr = _num(cfg.get("lr"))
    found: list[Finding] = []
    found += _nonfinite(log, lr, cfg)
    bad_nodes = {f.node for f in found}
    found += _gradients(log, lr, cfg, bad_nodes)
    vanishing = {f.node for f in found if f.rule == "vanishing"}
    for n in log.nodes:
        nid = n["id"]
        if nid in bad_nodes:
            continue
        found += _activations(log, n, lr)
        found += _updates(log, nid, lr, vanishing)
    if any(f.rule == "dead_relu" and f.level == "bad" for f in found):  # no gradient passes dead units: that
        # is why none reaches the first layer, not depth (the advice was Sigmoid/Tanh, which the net may not have)
        found = [f for f in found if not (f.rule == "vanishing" and f.value < TINY_GRAD)]
    order = {n["id"]: i for i, n in enumerate(log.nodes)}
    lr_cause = any(f.rule in LR_SIGNS for f in found)
    found.sort(key=lambda f: (not (lr_cause and _lowers_lr(f.action, lr)), -LEVELS.index(f.level),
                              order.get(f.node, 0)))
    return found


def _lowers_lr(action: dict[str, Any] | None, lr: float | None) -> bool:
    """Whether a fix action lowers the learning rate (the likely root cause when updates are too large or values
    became non-finite: dead units and saturation downstream are its symptoms)."""
    return (isinstance(action, dict) and action.get("action") == "set_training" and action.get("key") == "lr"
            and lr is not None and (_num(action.get("value")) or math.inf) < lr)


def _nonfinite(log: HealthLog, lr: float | None, cfg: dict) -> list[Finding]:
    for s in log.samples:
        for n in log.nodes:
            bad = [k for k, v in s["nodes"].get(n["id"], {}).items() if (x := _num(v)) is not None
                   and not math.isfinite(x)]
            if bad:
                fix = ("lower the learning rate" + (f" to {human_number(_lr_to(lr))}" if lr else "")
                       + ("" if cfg.get("grad_clip") else ", and set grad_clip (e.g. 1.0)"))
                return [_finding(n["id"], "nonfinite", "bad", "nan", f"{bad[0]} = {s['nodes'][n['id']][bad[0]]} "
                                 f"at step {s['step']}", fix, _lr_action(lr))]
    return []


def _gradients(log: HealthLog, lr: float | None, cfg: dict, skip: set[str]) -> list[Finding]:
    out: list[Finding] = []
    with_params = [n["id"] for n in log.nodes if _series(log, n["id"], "grad_norm")]
    clip = {"action": "set_training", "key": "grad_clip", "value": 1.0}
    for nid in with_params:
        g = _series(log, nid, "grad_norm")
        now, start = _recent(g), _first(g)
        if now is None or nid in skip:
            continue
        if now > EXPLODING_NORM or (start and len(g) > RECENT and now > GRAD_GROWTH * start > 0):
            received = f"gradient norm {now:.3g}" + (f" (was {start:.3g})" if start else "")
            fix = ("set grad_clip (e.g. 1.0)" if not cfg.get("grad_clip") else "lower the learning rate") \
                + (f"; or lower the learning rate to {human_number(_lr_to(lr))}" if lr and not cfg.get("grad_clip") else "")
            out.append(_finding(nid, "exploding", "bad", now, received, fix,
                                clip if not cfg.get("grad_clip") else _lr_action(lr)))
    if len(with_params) >= 2:
        first, last = with_params[0], with_params[-1]
        gf, gl = _recent(_series(log, first, "grad_norm")), _recent(_series(log, last, "grad_norm"))
        if gf is not None and gl and gl > TINY_GRAD and gf / gl < VANISHING_RATIO and first not in skip:
            out.append(_finding(
                first, "vanishing", "bad", gf / gl,
                f"gradient norm {gf:.2g} at {first!r} vs {gl:.2g} at {last!r} (ratio {gf / gl:.1e})",
                _vanishing_fix(set(log.node_types().values()))))
    return out


def _vanishing_fix(types: set[str]) -> str:
    """What to change against vanishing gradients, as the network is: only the advice it has not taken already
    (a ReLU network was told to use ReLU instead of Sigmoid/Tanh).

    >>> _vanishing_fix({"Linear", "ReLU"})
    'add normalisation (BatchNorm/LayerNorm) between layers, or add residual connections'
    >>> _vanishing_fix({"Linear", "Sigmoid", "BatchNorm1d"})
    'use ReLU-like activations instead of Sigmoid in deep stacks, or add residual connections'
    """
    squashing = sorted(types & {"Sigmoid", "Tanh"})
    steps = [f"use ReLU-like activations instead of {'/'.join(squashing)} in deep stacks"] if squashing else []
    if not any(t.startswith(("BatchNorm", "LayerNorm", "GroupNorm", "RMSNorm")) for t in types):
        steps.append("add normalisation (BatchNorm/LayerNorm) between layers")
    steps.append("add residual connections")
    return ", ".join(steps[:-1]) + (", or " if len(steps) > 1 else "") + steps[-1]


def _activations(log: HealthLog, n: dict[str, Any], lr: float | None) -> list[Finding]:
    nid, out = n["id"], []
    dead = _recent(_series(log, nid, "dead"))
    if dead is not None and dead > DEAD_FRACTION:
        out.append(_finding(nid, "dead_relu", "bad" if dead >= BAD_DEAD else "warn", dead, f"{dead:.0%} dead",
                            "replace it with LeakyReLU, lower the learning rate, or check the bias of the layer "
                            "before it (a large negative bias kills units)",
                            {"action": "set_type", "node": nid, "type": "LeakyReLU"}))
    sat = _recent(_series(log, nid, "saturated"))
    if sat is not None and sat > SATURATED_FRACTION:
        out.append(_finding(nid, "saturated", "bad" if sat >= BAD_SATURATED else "warn", sat,
                            f"{sat:.0%} of {n.get('type', 'its')} outputs saturated",
                            "lower the learning rate" + (f" to {human_number(_lr_to(lr))}" if lr else "")
                            + ", add normalisation before it, or replace it with ReLU",
                            _lr_action(lr) or {"action": "set_type", "node": nid, "type": "ReLU"}))
    std = _series(log, nid, "act_std")
    now, start = _recent(std), _first(std)
    if now is not None and start and start > TINY_GRAD and len(std) > 1 and not dead and not sat \
            and not n.get("output"):
        ratio = now / start
        if ratio > STD_DRIFT or ratio < 1 / STD_DRIFT:
            norm = _norm_layer(n.get("ndim"))
            out.append(_finding(nid, "std_drift", "warn", ratio, f"std {start:.3g} -> {now:.3g}",
                                f"add normalisation after it ({norm or 'BatchNorm/LayerNorm'}) or lower the "
                                "learning rate",
                                {"action": "insert_after", "node": nid, "type": norm} if norm else _lr_action(lr)))
    return out


def _updates(log: HealthLog, nid: str, lr: float | None, vanishing: set[str]) -> list[Finding]:
    ratio = _recent(_series(log, nid, "update_ratio"))
    if ratio is None:
        return []
    peak = max(((r, s["step"]) for s in log.samples
                if (r := _num(s["nodes"].get(nid, {}).get("update_ratio"))) is not None and math.isfinite(r)),
               default=None)
    if ratio <= UPDATE_HIGH and peak and peak[0] > UPDATE_EXTREME:  # then stopped: the units it killed stop it
        return [_finding(nid, "update_high", "warn", peak[0], f"{peak[0]:.2g} at step {peak[1]}",
                         "lower the learning rate" + (f" to {human_number(_lr_to(lr))}" if lr else ""), _lr_action(lr))]
    if ratio > UPDATE_HIGH:
        return [_finding(nid, "update_high", "warn", ratio, f"{ratio:.2g}",
                         "lower the learning rate" + (f" to {human_number(_lr_to(lr))}" if lr else ""), _lr_action(lr))]
    grad = _recent(_series(log, nid, "grad_norm")) or 0.0
    if ratio < UPDATE_LOW and grad > TINY_GRAD and nid not in vanishing:
        return [_finding(nid, "update_low", "warn", ratio, f"{ratio:.2g}",
                         "raise the learning rate" + (f" to {human_number(_lr_to(lr, 10.0))}" if lr else ""), _lr_action(lr, 10.0))]
    return []


# ------------------------------------------------------------------------------------------------- curves
def curve_anomalies(epoch_metrics: Iterable[dict], findings: Iterable[Finding] = (), *,
                    adversarial: bool = False) -> list[Anomaly]:
    """A loss plateau, a divergence or an overfitting gap in a run's epoch metrics (``train_loss``,
    ``val_loss`` per epoch, oldest first), each pointing at the nodes of the findings that likely cause it.

    ``adversarial``: networks trained against each other (a GAN, :func:`is_adversarial`), whose summed loss does not
    fall as they learn: only a non-finite loss is an anomaly. A GAN drawing good digits was told "loss plateau: ...
    the model is not learning".

    >>> curve_anomalies([{"train_loss": 0.69}, {"train_loss": 0.69}, {"train_loss": 0.692}, {"train_loss": 0.69}])[0].kind
    'plateau'
    >>> curve_anomalies([{"train_loss": 0.654, "step": 1}, {"train_loss": 0.9, "step": 2},
    ...                  {"train_loss": 1.28, "step": 3}])  # 3 steps: too few to judge a rise
    []
    """
    epochs = [e for e in epoch_metrics if isinstance(e, dict)]
    found = list(findings)
    by_rule = lambda *rules: list(dict.fromkeys(f.node for f in found if f.rule in rules))  # noqa: E731
    train = [_num(e.get("train_loss")) for e in epochs]
    val = [_num(e.get("val_loss")) for e in epochs]
    out: list[Anomaly] = []
    finite = [t for t in train if t is not None and math.isfinite(t)]
    last = train[-1] if train else None
    if adversarial:
        return [Anomaly("divergence", len(epochs), f"the training loss is {last}; lower the learning rates or clip "
                        "gradients", by_rule("nonfinite", "exploding", "update_high", "saturated"))
                ] if last is not None and not math.isfinite(last) else []
    steps = _num(epochs[-1].get("step")) if epochs else None  # the optimiser steps taken (None: not recorded)
    judged = steps is None or steps >= DIVERGE_MIN_STEPS
    if last is not None and (not math.isfinite(last) or (judged and _diverged(finite))):
        out.append(Anomaly("divergence", len(epochs), f"divergence: the training loss rose to {last:.3g} (best "
                           f"{min(finite) if finite else float('nan'):.3g}); lower the learning rate or clip gradients",
                           by_rule("nonfinite", "exploding", "update_high", "saturated")))
    elif len(finite) > PLATEAU_EPOCHS and finite[0] > 0:
        window = finite[-PLATEAU_EPOCHS - 1:]
        flat = (max(window) - min(window)) / max(abs(window[-1]), 1e-12) < PLATEAU_CHANGE
        if flat and (finite[0] - finite[-1]) / finite[0] < PLATEAU_LEARNED:
            out.append(Anomaly("plateau", len(epochs), f"loss plateau: the training loss stayed at {finite[-1]:.3g} "
                               f"for {PLATEAU_EPOCHS} epochs and fell {max(0.0, 1 - finite[-1] / finite[0]):.0%} since "
                               "the first; the model is not learning",
                               by_rule("vanishing", "dead_relu", "saturated", "update_low")))
    vf = [(i, v) for i, v in enumerate(val) if v is not None and math.isfinite(v)]
    if len(vf) > OVERFIT_EPOCHS:
        best_i, best = min(vf, key=lambda p: p[1])
        i_last, v_last = vf[-1]
        t_best, t_last = train[best_i], train[i_last]
        if (i_last - best_i >= OVERFIT_EPOCHS and best > 0 and v_last > (1 + OVERFIT_GAP) * best
                and t_best is not None and t_last is not None and t_last < t_best):
            out.append(Anomaly("overfitting", i_last + 1, f"overfitting gap: validation loss {v_last:.3g} is "
                               f"{v_last / best - 1:.0%} above its best ({best:.3g}, epoch {best_i + 1}) while the "
                               "training loss still falls; add Dropout or weight decay, or use more data",
                               by_rule("std_drift")))
    return out


def _diverged(finite: list[float]) -> bool:
    """Whether the last of the finite training losses rose away from their best: relatively (over
    :data:`DIVERGE_FACTOR` times the best) and absolutely (by over :data:`DIVERGE_SCALE` of the first epoch's loss),
    and still rising.

    >>> _diverged([0.7, 0.01, 0.0004, 0.002]), _diverged([0.7, 0.3, 0.2, 0.9])
    (False, True)
    """
    if len(finite) < 2 or finite[-1] <= finite[-2]:
        return False
    best, last = min(finite), finite[-1]
    return last > DIVERGE_FACTOR * best and last - best > DIVERGE_SCALE * abs(finite[0])


# ----------------------------------------------------------------------------------------------- the canvas
def health_annotations(log: HealthLog | dict | None, findings: Iterable[Finding]) -> dict[str, dict[str, str]]:
    """Per node ``{"level": "ok" | "warn" | "bad", "message"}`` for the canvas: the worst finding's level and every
    finding's message; recorded nodes without findings are ``ok`` with their latest statistics.

    >>> health_annotations(None, [Finding("fc", "vanishing", "bad", 1e-5, "vanishing gradients; ...")])
    {'fc': {'level': 'bad', 'message': 'vanishing gradients; ...'}}
    """
    out: dict[str, dict[str, str]] = {}
    if log is not None:
        log = log if isinstance(log, HealthLog) else HealthLog.from_dict(log)
        for n in log.nodes:
            stats = {k: _recent(_series(log, n["id"], k)) for k in ("grad_norm", "update_ratio", "dead", "saturated")}
            text = [f"{k.replace('_', ' ')} {v:.2g}" for k, v in stats.items() if v is not None]
            if text:
                out[n["id"]] = {"level": "ok", "message": "healthy: " + ", ".join(text)}
    for f in findings:
        cur = out.get(f.node)
        if cur is None or cur["level"] == "ok":
            out[f.node] = {"level": f.level, "message": f.message}
        else:
            level = max(cur["level"], f.level, key=LEVELS.index)
            out[f.node] = {"level": level, "message": cur["message"] + "\n" + f.message}
    return out


def merge_repeats(findings: Iterable[Finding]) -> list[dict[str, Any]]:
    """The findings as the page lists them: one rule whose fix is the same training setting (the learning rate) is
    one row for all its nodes, not one row and one Apply per layer. Each dict is :meth:`Finding.to_dict` plus
    ``nodes`` (every node it was found at, first the one whose message it keeps: the most severe, in graph order).

    >>> lr = {"action": "set_training", "key": "lr", "value": 0.05}
    >>> rows = merge_repeats([Finding(n, "saturated", "warn", 0.9, "saturated ...", lr) for n in ("a6", "a7", "a8")])
    >>> [(r["node"], r["nodes"]) for r in rows]
    [('a6', ['a6', 'a7', 'a8'])]
    """
    rows: list[dict[str, Any]] = []
    by_fix: dict[tuple[str, str], dict[str, Any]] = {}
    for f in findings:
        a = f.action
        key = (f.rule, json.dumps(a, sort_keys=True)) if isinstance(a, dict) and a.get("action") == "set_training" \
            else None
        if key is not None and key in by_fix:
            by_fix[key]["nodes"].append(f.node)
            continue
        row = {**f.to_dict(), "nodes": [f.node]}
        rows.append(row)
        if key is not None:
            by_fix[key] = row
    return rows


def chance_loss(run: dict) -> float | None:
    """A uniform guess's cross-entropy for a classification run (ln of its class count), else None.

    >>> round(chance_loss({"dataset_info": {"task": "multiclass", "num_classes": 10}}), 3)
    2.303
    >>> chance_loss({"dataset_info": {"task": "multiclass"}}), chance_loss({"dataset_info": {"task": "regression"}})
    (None, None)
    """
    info = run.get("dataset_info") or {}
    n = 2 if info.get("task") == "binary" else _num(info.get("num_classes"))
    if info.get("task") not in ("binary", "multiclass") or n is None or not 2 <= n < 1e6:
        return None
    return math.log(int(n))


def broken_line(epoch_metrics: list[dict], chance: float | None = None, *, adversarial: bool = False) -> str | None:
    """Why a run's model is not worth explaining or trying, or None: its training loss diverged (a
    :func:`curve_anomalies` divergence), its validation loss ended far above where it started (over 10 times, and
    by more than 1), or (``chance``: :func:`chance_loss`) over 3 times a uniform guess's: confidently wrong.
    Explain and Try it say so beside a broken model's "100% confident" answers. ``adversarial``: a GAN's
    (:func:`is_adversarial`), whose summed loss need not fall: only a non-finite loss counts.

    >>> broken_line([{"train_loss": 0.7, "val_loss": 0.69}, {"train_loss": 90.0, "val_loss": 556.0}])
    'divergence: the training loss rose to 90 (best 0.7); lower the learning rate or clip gradients'
    >>> broken_line([{"train_loss": 0.7, "val_loss": 0.69}, {"train_loss": 0.6, "val_loss": 556.0}])
    'its validation loss ended at 556, 806 times where it started (0.69); lower the learning rate and train it again'
    >>> broken_line([{"train_loss": 0.7, "val_loss": 0.69}, {"train_loss": 0.3, "val_loss": 0.35}]) is None
    True
    >>> broken_line([{"train_loss": 0.7, "val_loss": 0.69}, {"train_loss": 90.0, "val_loss": 556.0}],
    ...             adversarial=True) is None  # a GAN's networks play against each other
    True
    """
    epochs = [e for e in epoch_metrics if isinstance(e, dict)]
    div = next((a for a in curve_anomalies(epochs, adversarial=adversarial) if a.kind == "divergence"), None)
    if div is not None or adversarial:
        return div.message if div is not None else None
    val = [v for e in epochs if (v := _num(e.get("val_loss"))) is not None and math.isfinite(v)]
    if len(val) >= 2 and val[0] > 0 and val[-1] > 10 * val[0] and val[-1] - val[0] > 1:
        return (f"its validation loss ended at {val[-1]:.3g}, {val[-1] / val[0]:.0f} times where it started "
                f"({val[0]:.3g}); lower the learning rate and train it again")
    if val and chance and val[-1] > 3 * chance:
        return (f"its validation loss ended at {val[-1]:.3g}, over 3 times a uniform guess's ({chance:.3g}): it is "
                "confidently wrong; lower the learning rate and train it again")
    return None


def run_broken_line(run: dict, epoch_metrics: list[dict]) -> str | None:
    """:func:`broken_line` for a run (its full record: its class count and whether it is a GAN) and its epochs."""
    return broken_line(epoch_metrics, chance_loss(run), adversarial=is_adversarial(run.get("project") or {}))


def run_findings(store: RunStore, run_id: str) -> dict[str, Any]:
    """What the doctor says about one run (live or finished): ``findings`` (:func:`merge_repeats`) and
    ``anomalies`` (dicts),
    ``health`` (:func:`health_annotations`), ``samples`` (how many were taken) and ``recorded`` (False when the
    run has no health log: recording off, or nothing sampled yet). Raises RunStoreError for an unknown run."""
    run = store.get(run_id)
    log = read_health(store.folder(run["id"]).path)
    findings = diagnose(log, run.get("config")) if log is not None else []
    anomalies = curve_anomalies(store.metrics(run["id"], "epoch"), findings,
                                adversarial=is_adversarial(run.get("project") or {}))
    return {"recorded": log is not None, "samples": len(log.samples) if log else 0,
            "findings": merge_repeats(findings), "anomalies": [a.to_dict() for a in anomalies],
            "health": health_annotations(log, findings)}


def graph_health(store: RunStore, graph: Any, owner: str | None) -> dict[str, dict[str, str]]:
    """The canvas health of a graph: :func:`health_annotations` of the run the Train page shows for it (the owner's
    live run of this graph, else the newest; :func:`builder.runs.summary.current_run`); ``{}`` without one.
    Pass it to :func:`builder.graph.cost.canvas_annotations` as ``health``."""
    run = current_run(store, graph, owner)
    return run_findings(store, run["id"])["health"] if run else {}


# ---------------------------------------------------------------------------------------------- the fixes
def fix_label(action: dict[str, Any] | None) -> str:
    """What a fix action does, in a few words for its button's help (empty for None or an unknown action).

    >>> fix_label({"action": "insert_after", "node": "fc1", "type": "BatchNorm1d"})
    'add a BatchNorm1d after fc1'
    """
    if not isinstance(action, dict):
        return ""
    kind = action.get("action")
    if kind == "set_training":
        return f"set the training setting {action.get('key')} to {action.get('value')}"
    if kind == "set_param":
        return f"set {action.get('param')} of {action.get('node')} to {action.get('value')}"
    if kind == "set_type":
        return f"replace {action.get('node')} with a {action.get('type')}"
    if kind == "insert_after":
        return f"add a {action.get('type')} after {action.get('node')}"
    return ""


def fix_change(before: Any, after: Any, action: dict[str, Any]) -> str:
    """What applying ``action`` changed between two projects, with the old value (for the page's notice).

    >>> from builder import load_template
    >>> p = load_template("mlp")
    >>> fix_change(p, apply_fix(p, {"action": "set_training", "key": "lr", "value": 0.0001}),
    ...            {"action": "set_training", "key": "lr", "value": 0.0001})
    'training setting lr: 0.01 → 0.0001'
    """
    before, after = load_project(before), load_project(after)
    kind = action.get("action") if isinstance(action, dict) else None
    if kind == "set_training":
        key = str(action.get("key"))
        old = (before.training or {}).get(key)
        return f"training setting {key}: {'default' if old is None else old} → {(after.training or {}).get(key)}"
    node = str(action.get("node")) if isinstance(action, dict) else ""
    was, now = (next((n for n in p.graph.nodes if n.id == node), None) for p in (before, after))
    if kind == "set_type" and was is not None and now is not None:
        return f"{node}: {was.type} → {now.type}"
    if kind == "set_param" and was is not None and now is not None:
        param = str(action.get("param"))
        return f"{node}.{param}: {was.params.get(param)} → {now.params.get(param)}"
    added = sorted({n.id for n in after.graph.nodes} - {n.id for n in before.graph.nodes})
    if kind == "insert_after" and added:
        return f"added {', '.join(added)} ({action.get('type')}) after {node}"
    return fix_label(action)


def apply_fix(project: Any, action: dict[str, Any]) -> Project:
    """A new project with a finding's fix ``action`` applied (the argument is not changed, so an undo history
    keeps the old one). Actions: ``set_training`` (``key``, ``value``), ``set_param`` (``node``, ``param``,
    ``value``), ``set_type`` (``node``, ``type``) and ``insert_after`` (``node``, ``type``).

    >>> from builder import load_template
    >>> p = apply_fix(load_template("mlp"), {"action": "set_training", "key": "lr", "value": 0.001})
    >>> p.training["lr"]
    0.001

    Raises:
        LayerLabError: an unknown action or one without its fields.
    """
    project = load_project(project).model_copy(deep=True)
    kind = action.get("action") if isinstance(action, dict) else None
    try:
        if kind == "set_training":
            project.training = {**(project.training or {}), str(action["key"]): action["value"]}
        elif kind == "set_param":
            project.graph = set_param(project.graph, action["node"], action["param"], action["value"])
        elif kind == "set_type":
            project.graph = set_type(project.graph, action["node"], action["type"])
        elif kind == "insert_after":
            project.graph = insert_after(project.graph, action["node"], action["type"])
        else:
            raise LayerLabError(f"unknown fix action; received: {kind!r}. Fix: use set_training, set_param, "
                                "set_type or insert_after")
    except KeyError as e:
        raise LayerLabError(f"fix action {kind!r} needs the field {e.args[0]!r}; received: {action!r}. "
                            "Fix: pass the action of a Finding unchanged") from None
    return project


__all__ = ["Finding", "Anomaly", "RULES", "diagnose", "curve_anomalies", "is_adversarial", "health_annotations", "run_findings", "broken_line", "chance_loss", "run_broken_line",
           "graph_health", "merge_repeats", "fix_label", "fix_change", "apply_fix", "RECENT", "VANISHING_RATIO", "EXPLODING_NORM", "GRAD_GROWTH",
           "DEAD_FRACTION", "SATURATED_FRACTION", "STD_DRIFT", "UPDATE_HIGH", "UPDATE_LOW"]
