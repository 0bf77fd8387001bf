"""Attributions with Captum behind one verb: ``explain(model, inputs, method, target=...)``.

Method names are Captum's class names in snake_case (``saliency``, ``integrated_gradients``,
``deep_lift``, ...). ``available_methods`` says which apply to a model and a modality and, for the
others, why not. Example::

    >>> import builder, torch
    >>> model, x = builder.compile_graph(builder.load_template("cnn").graph), torch.rand(1, 1, 8, 8)
    >>> exp = explain(model, x, "integrated_gradients", target=0, n_steps=16)
    >>> exp.attributions.shape == x.shape, exp.delta.shape
    (True, torch.Size([1]))

Modalities: ``image`` (B, C, H, W), ``tabular`` (B, F) (``points2d`` is tabular), ``sequence``
(B, T, F) floats and ``tokens`` (B, T) int64 ids. Token ids are not differentiable, so gradient
methods on tokens go through an Embedding node (``layer_integrated_gradients``).
"""

from __future__ import annotations

import contextlib
import inspect
import sys
import types
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from builder.data.predictions import model_device
from builder.errors import ExplainError
from builder.graph.report import DEFAULT_BUDGET
from builder.interpret.baselines import BASELINES, make_baseline
from builder.interpret.methods import (
    MethodInput,
    MethodSpec,
    default_window,
    get_spec,
    method_label,
    method_names,
    method_specs,
)
from builder.interpret.model import (
    CONV_TYPES,
    MODALITIES,
    Flat,
    eval_mode,
    infer_modality,
    layer_nodes,
    model_modality,
    n_inputs_outputs,
    norm_modality,
    predict,
    resolve_layer,
    resolve_target,
    seeded,
    target_from_output,
)
from builder.interpret.samples import PICKS, pick_samples

METHODS: tuple[str, ...]  # every registered method name, read from the table on each access (see _CallableModule)
#: Bytes of activations one internal batch of a path method (samples × steps, forward and backward) may hold
PATH_BATCH_BYTES = 256 * 2**20

@dataclass(frozen=True)
class MethodInfo:
    """Whether a method applies to a model; ``reason`` says why not, ``layers`` lists candidate nodes."""

    name: str
    available: bool
    reason: str = ""
    label: str = ""
    layers: tuple[str, ...] = ()


@dataclass
class Explanation:
    """The result of :func:`explain`.

    ``attributions`` has the input's shape for input-space methods, (B, 1, H, W) for Grad-CAM on
    images, (B, T) for token methods and the layer's output shape for ``layer_conductance``.
    ``layer_attributions`` keeps the raw layer-space tensor for layer methods.
    """

    method: str
    attributions: Tensor
    target: Tensor | None
    delta: Tensor | None = None
    layer: str | None = None
    layer_attributions: Tensor | None = None
    baselines: Tensor | None = None
    options: dict[str, Any] = field(default_factory=dict)


def _check_options(name: str, fn: Callable, options: dict[str, Any], extra: Sequence[str] = ()) -> None:
    sig = inspect.signature(fn).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.values()) and not extra:
        return
    params = {n for n, p in sig.items() if p.kind is not inspect.Parameter.VAR_KEYWORD} | set(extra)
    params -= {"self", "inputs", "target", "additional_forward_args", "return_convergence_delta"}
    bad = sorted(set(options) - params)
    if bad:
        raise ExplainError(f"{name}: unknown option(s) {', '.join(bad)}; valid options: "
                           f"{', '.join(sorted(params))}")


def _why_not(model: nn.Module, spec: MethodSpec, modality: str) -> tuple[str, list[str]]:
    n_in, n_out = n_inputs_outputs(model)
    if n_in != 1 or n_out != 1:
        return (f"{spec.name}: this graph has {n_in} Input and {n_out} output nodes; explanations need "
                "exactly one of each"), []
    if not spec.supports(modality):
        return f"{spec.name}: {spec.not_modality}", []
    problem = spec.model_problem(model)
    if problem:
        return f"{spec.name}: {problem}", []
    if not spec.is_layer_method:
        return "", []
    layers = spec.layer_candidates(model, modality)
    if not layers:
        return f"{spec.name}: needs {spec.layer_requirement(modality)}; this graph has none", []
    return "", layers


def available_methods(model: nn.Module, modality: str) -> list[MethodInfo]:
    """Every method with whether it applies to ``model`` on ``modality`` inputs and, if not, why.

    Example::

        >>> import builder
        >>> mlp = builder.compile_graph(builder.load_template("mlp").graph)
        >>> [m.reason for m in available_methods(mlp, "tabular") if not m.available][0]
        'occlusion: occlusion is for images and sequences; use feature_ablation for tabular inputs'
    """
    mod = norm_modality(modality)
    out = []
    for spec in method_specs():
        reason, layers = _why_not(model, spec, mod)
        out.append(MethodInfo(spec.name, not reason, reason, spec.label, tuple(layers)))
    return out


# --------------------------------------------------------------------------------------------- explain


def path_rows(model: nn.Module, samples: int, steps: int) -> int | None:
    """Captum's ``internal_batch_size`` for ``samples`` inputs integrated over ``steps``: the rows whose activations
    fit :data:`PATH_BATCH_BYTES` by the model's per-sample estimate (``layerlab_sample_bytes`` of a compiled
    graph; else the graph budget's batch), at least two steps' worth; None when every row fits at once.

    >>> path_rows(nn.Linear(2, 2), 8, 50), path_rows(nn.Linear(2, 2), 8, 4)  # no estimate: the budget's batch
    (64, None)
    """
    per = (getattr(model, "layerlab_sample_bytes", None) or {}).get(model_device(model).type)
    rows = max(PATH_BATCH_BYTES // per if per else DEFAULT_BUDGET.batch_size, 2 * samples)
    return None if rows >= samples * steps else rows


def _path_options(spec: MethodSpec, model: nn.Module, samples: int, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` with Captum's ``internal_batch_size`` set by :func:`path_rows` for a path method (exact: the
    steps are split, their sums added) unless given."""
    sig = inspect.signature(spec.options_signature()).parameters
    if not spec.uses_steps or "internal_batch_size" not in sig or options.get("internal_batch_size") is not None:
        return options
    rows = path_rows(model, samples, int(options.get("n_steps", sig["n_steps"].default)))
    return options if rows is None else {**options, "internal_batch_size": rows}


def explain(model: nn.Module, inputs: Tensor, method: str, target: Any = None, *,
            baselines: str | float | Tensor | None = None, layer: str | nn.Module | None = None,
            modality: str | None = None, baseline_data: Tensor | None = None, pad_token: int = 0,
            blur_sigma: float = 2.0, seed: int | None = 0, **options: Any) -> Explanation:
    """Attribute the model's output for ``target`` to its inputs with one Captum method.

    Args:
        model: a compiled graph (or any ``nn.Module``) taking one tensor.
        inputs: a batch (B, ...); token ids as int64 (B, T).
        method: one of ``METHODS`` (Captum's names in snake_case; see :mod:`builder.interpret.methods`).
        target: class per sample, one class for all, or None for the predicted class.
        baselines: ``zeros`` (default; pad tokens for ids), ``mean`` (needs ``baseline_data``), ``blur``,
            ``pad``, a number or a tensor.
        layer: node id for layer methods (grad_cam, layer_integrated_gradients, layer_conductance; default:
            the last convolution, the first Embedding, the first node with weights); see ``MethodInfo.layers``.
        seed: seeds the noise of stochastic methods (gradient_shap, noise_tunnel; None: global RNG).
        options: passed to Captum's ``attribute`` (``n_steps``, ``sliding_window_shapes``, ``nt_samples``...);
            path methods get ``internal_batch_size`` from :func:`path_rows` unless given.
    Returns:
        An :class:`Explanation`; methods with a convergence delta (IG, layer IG, DeepLift) include ``delta``.
    Raises:
        ExplainError: unknown method or option, a method that does not apply, bad target or baselines.
    """
    spec = get_spec(method)
    mod = norm_modality(modality, inputs)
    if not isinstance(inputs, Tensor) or inputs.dim() < 2:
        raise ExplainError("inputs must be a batched tensor (B, ...); add a batch dimension")
    reason, layers = _why_not(model, spec, mod)
    if reason:
        raise ExplainError(reason)
    node, module = (None, None)
    if spec.is_layer_method:
        node, module = resolve_layer(model, spec.default_layer(model, layers) if layer is None else layer)
    _check_options(spec.name, spec.options_signature(), options, spec.extra_options)
    base = None
    if spec.wants_baselines(options):
        base = make_baseline(inputs, "zeros" if baselines is None else baselines, data=baseline_data,
                             pad_token=pad_token, sigma=blur_sigma)
    with eval_mode(model):
        with torch.no_grad():
            out = model(inputs)  # (B, C) logits, or any shape for reconstruction
        fwd = Flat(model) if out.dim() > 2 else model
        tgt = target_from_output(out, target)
        run_in = MethodInput(fwd, inputs, tgt, base, node, module, _path_options(spec, model, len(inputs), options))
        rng = seeded(seed) if seed is not None and spec.stochastic else contextlib.nullcontext()
        with rng:
            try:
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", message=".*(require gradients|non-linear).*")
                    res = spec.run(run_in)
            except ExplainError:
                raise
            except (RuntimeError, ValueError, AssertionError) as e:
                raise ExplainError(_failure(spec, e)) from e
    return Explanation(spec.name, res.attributions.detach(), tgt, _detached(res.delta), node,
                       _detached(res.layer_attributions), base, dict(options))


_NO_GRADIENT = ("appears to not have been used in the graph", "does not require grad", "does not have a grad_fn")
"""What torch says when the output has no gradient with respect to what a method differentiates."""


def _failure(spec: MethodSpec, e: BaseException) -> str:
    """The line for a method that failed on a model: torch's words for an output cut off from the input's
    gradient become the rule and a fix; anything else keeps torch's words.

    >>> _failure(get_spec("saliency"), RuntimeError("The differentiated Tensor at index 0 appears to not have "
    ...          "been used in the graph."))[:62]
    "saliency follows the output's gradient back to the input, and "
    """
    if any(p in str(e) for p in _NO_GRADIENT):
        what = "the chosen layer" if spec.is_layer_method else "the input"
        return (f"{spec.name} follows the output's gradient back to {what}, and this model's output has none "
                f"there: a layer cuts it off (detach, argmax, a comparison, an integer cast); received: no gradient "
                f"path from the output to {what}. Fix: use feature_ablation (or occlusion for images and "
                f"sequences), which only runs the model, or remove the layer that cuts the gradient")
    return f"{spec.name} failed on this model: {e}"


def all_zero(e: Explanation, sample: int = 0) -> str | None:
    """Why a sample's map says nothing when every attribution in it is 0, or None: a gradient that is 0
    everywhere (a layer that rounds, compares or takes an argmax), a sample equal to the baseline, or an output
    that none of the perturbations moves; shown beside the blank map instead of leaving it unexplained.

    >>> all_zero(Explanation("saliency", torch.zeros(1, 4), None))[:40]
    'every attribution is 0 for this sample: '
    >>> all_zero(Explanation("saliency", torch.ones(1, 4), None)) is None
    True
    """
    a = e.attributions[sample] if e.attributions.dim() > 0 and len(e.attributions) > sample else e.attributions
    if bool(torch.any(a != 0)):
        return None
    spec = get_spec(e.method)
    if spec.perturbs:
        return ("every attribution is 0 for this sample: none of the method's changes to the input moves the "
                "explained output. Fix: try another sample, or a wider window or baseline")
    baseline = ", or the sample equals the baseline" if spec.needs_baselines else ""
    return ("every attribution is 0 for this sample: the output's gradient is 0 there (a layer that rounds, "
            f"compares or takes an argmax passes none back){baseline}. Fix: compare with feature_ablation or "
            "occlusion, which change the input and watch the output")



def _detached(t: Tensor | None) -> Tensor | None:
    return None if t is None else t.detach()


def explain_many(model: nn.Module, inputs: Tensor, methods: Sequence[str], target: Any = None,
                 **options: Any) -> dict[str, Explanation | ExplainError]:
    """Run several methods on the same inputs (for side-by-side views); failures come back as errors."""
    out: dict[str, Explanation | ExplainError] = {}
    for m in methods:
        try:
            out[m] = explain(model, inputs, m, target, **options)
        except ExplainError as e:
            out[m] = e
    return out


def explain_all(model: nn.Module, inputs: Tensor, method: str, target: Any = None, *, batch_size: int = 128,
                **options: Any) -> Explanation:
    """:func:`explain` over many samples in batches (e.g. the test split for a global ranking).

    Per-sample ``target`` values are split with the batches; ``baselines`` given as a tensor must be
    one row or one per sample. Returns one :class:`Explanation` with everything concatenated.
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ExplainError(f"batch_size must be a positive integer; received {batch_size!r}")
    n = len(inputs)
    per_sample_t = target is not None and torch.as_tensor(target).numel() == n > 1
    base = options.pop("baselines", None)
    per_sample_b = isinstance(base, Tensor) and len(base) == n > 1
    parts = []
    for i in range(0, n, batch_size):
        sl = slice(i, i + batch_size)
        t = torch.as_tensor(target).reshape(-1)[sl] if per_sample_t else target
        b = base[sl] if per_sample_b else base
        parts.append(explain(model, inputs[sl], method, t, baselines=b, **options))

    def cat(name: str) -> Tensor | None:
        vals = [getattr(p, name) for p in parts]
        return None if any(v is None for v in vals) else torch.cat(vals)

    first = parts[0]
    return Explanation(first.method, cat("attributions"), cat("target"), cat("delta"), first.layer,
                       cat("layer_attributions"), cat("baselines"), first.options)


__all__ = ["MethodInfo", "Explanation", "all_zero", "METHODS", "MODALITIES", "BASELINES", "PICKS", "CONV_TYPES", "explain",
           "explain_many", "explain_all", "available_methods", "make_baseline", "pick_samples", "predict",
           "resolve_target", "resolve_layer", "layer_nodes", "infer_modality", "model_modality", "method_label",
           "default_window", "eval_mode", "seeded"]


class _CallableModule(types.ModuleType):
    """Lets ``builder.explain(model, inputs, method, ...)`` work although ``builder.explain`` is this module."""

    def __call__(self, *args: Any, **kwargs: Any) -> Explanation:
        return explain(*args, **kwargs)

    @property
    def METHODS(self) -> tuple[str, ...]:  # noqa: N802 - the public constant's name
        """Every registered method name (:func:`builder.interpret.methods.method_names`), registrations included."""
        return method_names()


sys.modules[__name__].__class__ = _CallableModule
