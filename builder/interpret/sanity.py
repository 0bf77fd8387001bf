"""Trust checks for attributions.

* :func:`randomisation_check`: model-parameter randomisation (Adebayo et al., 2018). Layers are
  re-initialised one after another from the output down (cascading); after each step the attribution
  maps are compared with the trained model's by Spearman rank correlation. A method whose maps barely
  change explains the input, not the model, and is flagged.
* :func:`ig_completeness`: Integrated Gradients' attributions sum to ``f(x) - f(baseline)``; the
  difference is the convergence delta.

Example::

    >>> import builder, torch
    >>> model = builder.compile_graph(builder.load_template("mlp").graph)
    >>> r = randomisation_check(model, torch.rand(4, 2), "saliency")
    >>> r.layers, len(r.correlations)  # top layer first, one correlation per randomised layer
    (['head', 'fc2', 'fc1'], 3)
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy.stats import rankdata
from torch import Tensor, nn

from builder.errors import ExplainError
from builder.interpret.attributions import explain
from builder.interpret.methods import get_spec
from builder.interpret.model import (
    Flat,
    eval_mode,
    infer_modality,
    layer_nodes,
    resolve_layer,
    resolve_target,
)


@dataclass
class SanityResult:
    """Rank correlation with the trained model's maps after randomising ``layers[: i + 1]``."""

    method: str
    layers: list[str]  # randomised cumulatively, top (output) first
    correlations: list[float]  # mean over samples, one per step
    per_sample: np.ndarray  # (steps, B)
    threshold: float
    flagged: bool
    message: str


@dataclass
class CompletenessResult:
    """IG completeness per sample: ``delta = attribution_sum - output_diff``."""

    attribution_sum: np.ndarray  # (B,)
    output_diff: np.ndarray  # (B,) f(x) - f(baseline) for the target
    delta: np.ndarray  # (B,)
    target: np.ndarray | None
    tolerance: float

    @property
    def max_abs_delta(self) -> float:
        """Largest |delta| over the samples."""
        return float(np.abs(self.delta).max()) if self.delta.size else 0.0

    @property
    def relative_error(self) -> np.ndarray:
        """|delta| / max(|f(x) - f(baseline)|, 1e-8) per sample."""
        return np.abs(self.delta) / np.maximum(np.abs(self.output_diff), 1e-8)

    @property
    def ok(self) -> bool:
        """Whether every sample's |delta| is within ``tolerance`` (absolute or relative)."""
        return bool(np.all((np.abs(self.delta) <= self.tolerance) | (self.relative_error <= self.tolerance)))

    @property
    def verdict(self) -> str:
        """:attr:`ok` in words that match the numbers shown: which of the two tolerances (absolute |delta|, or
        |delta| relative to |f(x) − f(baseline)|) each sample met.

        >>> r = CompletenessResult(np.ones(2), np.array([5.0, 4.0]), np.array([0.0891, 0.01]), None, 0.05)
        >>> r.verdict
        'Complete: max |delta| 0.0891 is over 0.05, but it is 1.8% of |f(x) − f(baseline)| (at most 5% allowed)'
        """
        tol, n = self.tolerance, int(self.delta.size)
        if not n:
            return "No samples checked"
        absolute = np.abs(self.delta) <= tol
        if absolute.all():
            return f"Complete: max |delta| {self.max_abs_delta:.3g} is within the tolerance {tol:g}"
        rel = float(np.max(np.where(absolute, 0.0, self.relative_error)))
        if self.ok:
            return (f"Complete: max |delta| {self.max_abs_delta:.3g} is over {tol:g}, but it is {rel:.1%} of "
                    f"|f(x) − f(baseline)| (at most {tol:.0%} allowed)")
        bad = int(np.sum(~absolute & (self.relative_error > tol)))
        return (f"Incomplete: {bad} of {n} samples have |delta| over {tol:g} and over {tol:.0%} of "
                f"|f(x) − f(baseline)| (max |delta| {self.max_abs_delta:.3g}): raise the integration steps")


def spearman(a: Tensor | np.ndarray, b: Tensor | np.ndarray) -> float:
    """Spearman rank correlation of two flattened arrays (0.0 when one is constant)."""
    ra = rankdata(np.asarray(a, dtype=np.float64).ravel())
    rb = rankdata(np.asarray(b, dtype=np.float64).ravel())
    if ra.std() == 0 or rb.std() == 0:
        return 0.0
    return float(np.corrcoef(ra, rb)[0, 1])


def weighted_nodes(model: nn.Module) -> list[str]:
    """Nodes that own parameters (for a plain module, outermost such submodules), in module order."""
    nodes = [n for n in layer_nodes(model)
             if any(True for _ in resolve_layer(model, n)[1].parameters(recurse=True))]
    if getattr(model, "layerlab_names", None) is None:
        nodes = [n for n in nodes if not any(n.startswith(o + ".") for o in nodes if o != n)]
    return nodes


def forward_order(model: nn.Module, inputs: Tensor) -> list[str]:
    """:func:`weighted_nodes` in the order one forward pass runs them."""
    nodes = weighted_nodes(model)
    order: list[str] = []

    def hook_for(node: str):
        def hook(module: nn.Module, args: tuple, output: Any) -> None:
            if node not in order:
                order.append(node)
        return hook

    hooks = [resolve_layer(model, n)[1].register_forward_hook(hook_for(n)) for n in nodes]
    try:
        with torch.no_grad(), eval_mode(model):
            model(inputs[:1])
    finally:
        for h in hooks:
            h.remove()
    # nodes whose module is never called (a parameter read directly) keep their place in module order
    keys: dict[str, float] = {}
    last = -0.5
    for n in nodes:
        if n in order:
            last = float(order.index(n))
            keys[n] = last
        else:
            keys[n] = last + 0.25
    return sorted(nodes, key=lambda n: keys[n])


def _reinit(module: nn.Module) -> None:
    covered: set[int] = set()
    for m in module.modules():
        reset = getattr(m, "reset_parameters", None) or getattr(m, "_reset_parameters", None)
        if callable(reset):
            reset()
            covered.update(id(p) for p in m.parameters())
    with torch.no_grad():
        for p in module.parameters():
            if id(p) not in covered:
                p.normal_(0.0, 0.02)


def randomisation_check(model: nn.Module, inputs: Tensor, method: str, target: Any = None, *,
                        threshold: float = 0.5, seed: int = 0, absolute: bool = True,
                        max_layers: int | None = None, **options: Any) -> SanityResult:
    """Cascading model-parameter randomisation test for one method.

    Args:
        inputs: a few samples (B, ...); the target is fixed to the trained model's (default: predicted).
        threshold: a method is flagged when even the most randomised model's maps keep a rank
            correlation of at least this much with the trained model's.
        absolute: compare |attributions| (as Adebayo et al. do for most figures).
        max_layers: randomise at most this many layers (from the top).
        options: passed to :func:`builder.interpret.attributions.explain`.
    Returns:
        A :class:`SanityResult`; the model given is not modified.
    Raises:
        ExplainError: the method does not apply, or the model has no weights.
    """
    if not 0.0 < threshold <= 1.0:
        raise ExplainError(f"threshold must be in (0, 1]; received {threshold}")
    modality = options.pop("modality", None) or infer_modality(inputs)
    with eval_mode(model):
        fwd = Flat(model) if model(inputs[:1]).dim() > 2 else model
        tgt = resolve_target(fwd, inputs, target)
    ref = explain(model, inputs, method, tgt, modality=modality, **options).attributions
    order = forward_order(model, inputs)[::-1]
    if max_layers is not None:
        order = order[:max_layers]
    if not order:
        raise ExplainError("randomisation check: the model has no weights to randomise")
    work = copy.deepcopy(model)
    corr = np.zeros((len(order), len(inputs)))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for step, node in enumerate(order):
            _reinit(resolve_layer(work, node)[1])
            attr = explain(work, inputs, method, tgt, modality=modality, **options).attributions
            for i in range(len(inputs)):
                a, b = ref[i], attr[i]
                if absolute:
                    a, b = a.abs(), b.abs()
                corr[step, i] = spearman(a.cpu().numpy(), b.cpu().numpy())
    means = [float(c) for c in corr.mean(1)]
    flagged = min(means) >= threshold
    msg = (f"{method}: maps barely change when the weights are randomised (rank correlation stays at "
           f"{min(means):.2f} or above); they may reflect the input more than the model"
           if flagged else f"{method}: maps change when the weights are randomised (lowest rank "
           f"correlation {min(means):.2f})")
    return SanityResult(method, order, means, corr, threshold, flagged, msg)


def ig_completeness(model: nn.Module, inputs: Tensor, target: Any = None, *,
                    baselines: str | float | Tensor | None = None, n_steps: int = 50,
                    tolerance: float = 0.05, **options: Any) -> CompletenessResult:
    """Compare the sum of Integrated Gradients attributions with ``f(x) - f(baseline)``.

    Token inputs use ``layer_integrated_gradients`` on the Embedding node (baseline: pad tokens).

    Raises:
        ExplainError: as :func:`builder.interpret.attributions.explain`.
    """
    tokens = not inputs.is_floating_point()
    method = get_spec("integrated_gradients").token_method() if tokens else "integrated_gradients"
    exp = explain(model, inputs, method, target, baselines=baselines, n_steps=n_steps, **options)
    attr = exp.layer_attributions if tokens else exp.attributions
    sums = attr.flatten(1).sum(1)
    with torch.no_grad(), eval_mode(model):
        fx = model(inputs).flatten(1) if model(inputs[:1]).dim() > 1 else model(inputs)[:, None]
        fb = model(exp.baselines).flatten(1) if fx.dim() > 1 else model(exp.baselines)[:, None]
    if exp.target is None:
        diff = (fx - fb)[:, 0]
    else:
        idx = exp.target[:, None]
        diff = (fx.gather(1, idx) - fb.gather(1, idx))[:, 0]
    return CompletenessResult(sums.cpu().double().numpy(), diff.cpu().double().numpy(),
                              (sums - diff).cpu().double().numpy(),
                              None if exp.target is None else exp.target.cpu().numpy(), tolerance)


__all__ = ["SanityResult", "CompletenessResult", "randomisation_check", "ig_completeness", "spearman",
           "weighted_nodes", "forward_order"]
