"""Attributions with Captum behind one verb: ``explain(model, inputs, method, target=...)``.

Method names are Captum's class names in snake_case (``saliency``, ``integrated_gradients``,
``deep_lift``, ...). ``available_methods`` says which apply to a model and a modality and, for the
others, why not. Example::

    >>> exp = explain(model, x, "integrated_gradients", n_steps=50)   # doctest: +SKIP
    >>> exp.attributions.shape == x.shape, exp.delta.shape             # doctest: +SKIP
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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from captum.attr import (
    DeepLift,
    FeatureAblation,
    GradientShap,
    InputXGradient,
    IntegratedGradients,
    LayerAttribution,
    LayerConductance,
    LayerGradCam,
    LayerIntegratedGradients,
    NoiseTunnel,
    Occlusion,
    Saliency,
)
from torch import Tensor, nn

from builder.errors import ExplainError

MODALITIES = ("image", "tabular", "points2d", "sequence", "tokens")
BASELINES = ("zeros", "mean", "blur", "pad")
CONV_TYPES = frozenset({"Conv1d", "Conv2d"})
# layers whose forward returns a tuple; Captum's layer methods need a single tensor
_TUPLE_OUTPUT_TYPES = frozenset({"MultiheadAttention", "LSTM", "GRU", "RNN"})
_CONTAINER_TYPES = frozenset({"Sequential", "ModuleList", "ModuleDict", "GraphModule"})


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


@dataclass(frozen=True)
class _Spec:
    name: str
    label: str
    modalities: frozenset[str]
    not_modality: str  # reason shown when the modality does not fit
    layer_types: frozenset[str] | None  # None: input-space method
    run: Callable[..., Explanation]
    captum_cls: type


# --------------------------------------------------------------------------------------------- helpers


def infer_modality(inputs: Tensor) -> str:
    """Guess the modality from a batch: int ids -> tokens, 4-D -> image, 3-D -> sequence, else tabular."""
    if not isinstance(inputs, Tensor):
        raise ExplainError(f"inputs must be a torch.Tensor; received {type(inputs).__name__}")
    if not inputs.is_floating_point():
        return "tokens"
    return {4: "image", 3: "sequence"}.get(inputs.dim(), "tabular")


def model_modality(model: nn.Module) -> str | None:
    """Modality of a compiled graph's single Input node; None for a plain module or several inputs."""
    inputs = getattr(model, "layerlab_inputs", None)
    if not inputs or len(inputs) != 1:
        return None
    nid = inputs[0]
    if getattr(model, "layerlab_input_dtypes", {}).get(nid) == torch.long:
        return "tokens"
    shape = getattr(model, "layerlab_input_shapes", {}).get(nid)
    if shape is None:
        return None
    return {3: "image", 2: "sequence"}.get(len(shape), "tabular")


def _norm_modality(modality: str | None, inputs: Tensor | None = None) -> str:
    if modality is None:
        if inputs is None:
            raise ExplainError("modality is required when no inputs are given")
        return infer_modality(inputs)
    if modality not in MODALITIES:
        raise ExplainError(f"unknown modality {modality!r}; expected one of {', '.join(MODALITIES)}")
    return "tabular" if modality == "points2d" else modality


def layer_nodes(model: nn.Module) -> dict[str, str]:
    """Map node id -> layer type for every node that owns a module.

    Uses ``model.layerlab_names``/``layerlab_types`` for compiled graphs; for a plain ``nn.Module``
    the node ids are submodule names and the types their class names.
    """
    names = getattr(model, "layerlab_names", None)
    if names is not None:
        types = getattr(model, "layerlab_types", {}) or {}
        return {nid: types.get(nid, type(model.get_submodule(m)).__name__) for nid, m in names.items()}
    return {n: type(m).__name__ for n, m in model.named_modules()
            if n and type(m).__name__ not in _CONTAINER_TYPES}


def resolve_layer(model: nn.Module, layer: str | nn.Module) -> tuple[str, nn.Module]:
    """Return ``(node_id, module)`` for a node id, a submodule name or a module of ``model``."""
    if isinstance(layer, nn.Module):
        for n, m in model.named_modules():
            if m is layer:
                return n, m
        raise ExplainError("layer: the module given is not part of this model")
    names = getattr(model, "layerlab_names", None) or {}
    if layer in names:
        return layer, model.get_submodule(names[layer])
    try:
        return layer, model.get_submodule(layer)
    except AttributeError:
        known = ", ".join(list(layer_nodes(model))[:20])
        raise ExplainError(f"layer: no node {layer!r} in this model; known nodes: {known}") from None


def _candidates(model: nn.Module, spec: _Spec, modality: str) -> list[str]:
    nodes = layer_nodes(model)
    if spec.layer_types is None:
        return []
    if spec.name == "layer_conductance":  # any node whose output is one tensor
        return [n for n, t in nodes.items() if t not in _TUPLE_OUTPUT_TYPES | {"Embedding", "Input"}]
    types = spec.layer_types
    if spec.name == "grad_cam" and modality == "image":
        types = frozenset({"Conv2d"})
    return [n for n, t in nodes.items() if t in types]


def _default_layer(model: nn.Module, method: str, layers: list[str]) -> str:
    """The last convolution for grad_cam, else the first candidate that has weights."""
    if method == "grad_cam":
        return layers[-1]
    for n in layers:
        if any(True for _ in model.get_submodule(_module_name(model, n)).parameters()):
            return n
    return layers[0]


def _module_name(model: nn.Module, node: str) -> str:
    return (getattr(model, "layerlab_names", None) or {}).get(node, node)


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put every submodule in eval mode and restore each one's previous ``training`` flag."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, flag in flags:
            m.training = flag


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed torch's CPU RNG and numpy's global RNG (Captum draws from both) and restore them after."""
    state = np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        try:
            yield
        finally:
            np.random.set_state(state)


class _Flat(nn.Module):
    """Wraps a model whose output has more than 2 dims so Captum sees (B, N) scores."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, *xs: Tensor) -> Tensor:
        out = self.model(*xs)
        return out.flatten(1) if out.dim() > 2 else out


@torch.no_grad()
def predict(model: nn.Module, inputs: Tensor, batch_size: int = 256) -> tuple[Tensor, Tensor]:
    """Predicted class and its probability for each sample: ``(pred (N,), confidence (N,))``.

    Several outputs: argmax of the softmax. One output (binary with BCE): class 1 when sigmoid(logit) > 0.5,
    the confidence being the probability of the predicted class.
    """
    preds, confs = [], []
    with eval_mode(model):
        for i in range(0, len(inputs), batch_size):
            out = model(inputs[i:i + batch_size])
            out = out.flatten(1) if out.dim() > 1 else out[:, None]
            if out.shape[1] > 1:
                c, p = out.softmax(1).max(1)
            else:  # one logit: binary with BCE, class 1 when sigmoid > 0.5
                p1 = torch.sigmoid(out[:, 0])
                p = (p1 > 0.5).long()
                c = torch.where(p.bool(), p1, 1 - p1)
            preds.append(p)
            confs.append(c)
    return torch.cat(preds), torch.cat(confs)


def resolve_target(model: nn.Module, inputs: Tensor, target: Any = None) -> Tensor | None:
    """Target class per sample: the predicted class when ``target`` is None, else ``target`` checked.

    Returns None for single-output models (regression), where Captum needs no target.

    Raises:
        ExplainError: a class out of range, or a count that is neither 1 nor one per sample.
    """
    with torch.no_grad(), eval_mode(model):
        out = model(inputs)
    return _target_from_output(out, target)


def _target_from_output(out: Tensor, target: Any) -> Tensor | None:
    n_out = out[0].numel() if out.dim() > 1 else 1
    if n_out == 1:
        return None
    if target is None:
        return out.flatten(1).argmax(1)
    t = torch.as_tensor(target).long().flatten().to(out.device)
    if t.numel() == 1:
        t = t.expand(len(out)).clone()
    if t.numel() != len(out):
        raise ExplainError(f"target: expected one class or {len(out)} (one per sample); received {t.numel()}")
    if int(t.min()) < 0 or int(t.max()) >= n_out:
        raise ExplainError(f"target: class must be in [0, {n_out - 1}]; received {t.tolist()}")
    return t


def make_baseline(inputs: Tensor, kind: str | float | Tensor = "zeros", *, data: Tensor | None = None,
                  pad_token: int = 0, sigma: float = 2.0) -> Tensor:
    """A reference input of the same shape as ``inputs``.

    Args:
        kind: ``zeros``, ``mean`` (per-feature training mean of ``data``), ``blur`` (Gaussian blur of each
            image, ``sigma`` pixels), ``pad`` (every token is ``pad_token``), a number or a tensor.
    Raises:
        ExplainError: unknown kind, or a kind that does not fit the inputs.
    """
    if isinstance(kind, Tensor):
        base = kind.to(inputs.device, inputs.dtype)
        if base.shape != inputs.shape:
            try:
                base = base.expand_as(inputs).clone()
            except RuntimeError:
                raise ExplainError(f"baselines: shape {tuple(kind.shape)} does not match the inputs "
                                   f"{tuple(inputs.shape)}") from None
        return base
    if isinstance(kind, (int, float)) and not isinstance(kind, bool):
        return torch.full_like(inputs, kind)
    tokens = not inputs.is_floating_point()
    if kind == "zeros":
        return torch.full_like(inputs, pad_token) if tokens else torch.zeros_like(inputs)
    if kind == "pad":
        if not tokens:
            raise ExplainError("baselines='pad' is for token inputs; use 'zeros', 'mean' or 'blur'")
        return torch.full_like(inputs, pad_token)
    if kind == "mean":
        if tokens:
            raise ExplainError("baselines='mean' is not defined for token ids; use 'pad'")
        if data is None:
            raise ExplainError("baselines='mean' needs the training inputs: pass baseline_data=X_train")
        if tuple(data.shape[1:]) != tuple(inputs.shape[1:]):
            raise ExplainError(f"baseline_data: sample shape {tuple(data.shape[1:])} does not match the "
                               f"inputs {tuple(inputs.shape[1:])}")
        return data.float().mean(0, keepdim=True).to(inputs).expand_as(inputs).clone()
    if kind == "blur":
        if inputs.dim() != 4:
            raise ExplainError("baselines='blur' is for images (B, C, H, W); use 'zeros' or 'mean'")
        return _gaussian_blur(inputs, sigma)
    raise ExplainError(f"baselines: unknown kind {kind!r}; expected one of {', '.join(BASELINES)}, "
                       "a number or a tensor")


def _gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    if sigma <= 0:
        return x.clone()
    radius = max(1, int(3 * sigma))
    r = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-(r ** 2) / (2 * sigma ** 2))
    k = k / k.sum()
    c = x.shape[1]
    pad_h, pad_w = min(radius, x.shape[2] - 1), min(radius, x.shape[3] - 1)
    y = F.pad(x, (pad_w, pad_w, pad_h, pad_h), mode="reflect") if min(pad_h, pad_w) > 0 else x
    kh = k[radius - pad_h: radius + pad_h + 1].view(1, 1, -1, 1).repeat(c, 1, 1, 1)
    kw = k[radius - pad_w: radius + pad_w + 1].view(1, 1, 1, -1).repeat(c, 1, 1, 1)
    y = F.conv2d(y, kh / kh.sum(2, keepdim=True), groups=c)
    return F.conv2d(y, kw / kw.sum(3, keepdim=True), groups=c)


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


# --------------------------------------------------------------------------------------------- runners


@dataclass
class _Ctx:
    model: nn.Module
    inputs: Tensor
    target: Tensor | None
    baselines: Tensor | None
    layer: str | None
    module: nn.Module | None
    options: dict[str, Any]
    seed: int | None


def _run_simple(cls: type) -> Callable[[_Ctx], tuple[Tensor, Tensor | None]]:
    def run(c: _Ctx) -> tuple[Tensor, Tensor | None]:
        return cls(c.model).attribute(c.inputs, target=c.target, **c.options), None
    return run


def _run_ig(c: _Ctx) -> tuple[Tensor, Tensor | None]:
    attr, delta = IntegratedGradients(c.model).attribute(
        c.inputs, baselines=c.baselines, target=c.target, return_convergence_delta=True, **c.options)
    return attr, delta


def _run_deep_lift(c: _Ctx) -> tuple[Tensor, Tensor | None]:
    attr, delta = DeepLift(c.model).attribute(
        c.inputs, baselines=c.baselines, target=c.target, return_convergence_delta=True, **c.options)
    return attr, delta


def _run_gradient_shap(c: _Ctx) -> tuple[Tensor, Tensor | None]:
    return GradientShap(c.model).attribute(c.inputs, baselines=c.baselines, target=c.target,
                                           **c.options), None


def _run_noise_tunnel(c: _Ctx) -> tuple[Tensor, Tensor | None]:
    opts = dict(c.options)
    base = opts.pop("base", "saliency")
    inner = {"saliency": Saliency, "input_x_gradient": InputXGradient,
             "integrated_gradients": IntegratedGradients}.get(base)
    if inner is None:
        raise ExplainError(f"noise_tunnel: base must be saliency, input_x_gradient or integrated_gradients; "
                           f"received {base!r}")
    opts.setdefault("nt_type", "smoothgrad")
    opts.setdefault("nt_samples", 10)
    opts.setdefault("stdevs", 0.15 * float(c.inputs.float().std()) if c.inputs.numel() > 1 else 0.1)
    if base == "integrated_gradients":
        opts.setdefault("baselines", c.baselines)
    return NoiseTunnel(inner(c.model)).attribute(c.inputs, target=c.target, **opts), None


def default_window(inputs: Tensor) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Default Occlusion ``(sliding_window_shapes, strides)`` for one batch of inputs."""
    shape = tuple(inputs.shape[1:])
    if inputs.dim() == 4:  # (B, C, H, W): square patches about 1/7 of the image, half-overlapping
        k = max(1, round(min(shape[1:]) / 7))
        s = max(1, k // 2)
        return (shape[0], k, k), (shape[0], s, s)
    if inputs.dim() == 3:  # (B, T, F): one time step at a time
        return (1, shape[1]), (1, shape[1])
    return (1,) * len(shape), (1,) * len(shape)


def _run_occlusion(c: _Ctx) -> tuple[Tensor, Tensor | None]:
    opts = dict(c.options)
    win, stride = default_window(c.inputs)
    opts.setdefault("sliding_window_shapes", win)
    opts.setdefault("strides", stride)
    opts.setdefault("perturbations_per_eval", 16)
    return Occlusion(c.model).attribute(c.inputs, baselines=c.baselines, target=c.target, **opts), None


def _run_feature_ablation(c: _Ctx) -> tuple[Tensor, Tensor | None]:
    opts = dict(c.options)
    opts.setdefault("perturbations_per_eval", 16)
    return FeatureAblation(c.model).attribute(c.inputs, baselines=c.baselines, target=c.target,
                                              **opts), None


def _run_grad_cam(c: _Ctx) -> tuple[Tensor, Tensor | None]:
    opts = dict(c.options)
    mode = opts.pop("interpolate_mode", None)
    layer_attr = LayerGradCam(c.model, c.module).attribute(c.inputs, target=c.target, **opts)
    if c.inputs.dim() == 4:
        size: tuple[int, ...] = tuple(c.inputs.shape[2:])
        mode = mode or "bilinear"
    elif c.inputs.dim() == 2 and not c.inputs.is_floating_point():
        size, mode = (c.inputs.shape[1],), mode or "linear"
    else:
        size, mode = (c.inputs.shape[1],), mode or "linear"
    if layer_attr.dim() - 2 != len(size):
        raise ExplainError(f"grad_cam: layer {c.layer} gives maps of shape {tuple(layer_attr.shape)}, "
                           f"which cannot be upsampled to the input size {size}")
    up = LayerAttribution.interpolate(layer_attr, size, interpolate_mode=mode)
    if c.inputs.dim() != 4:
        up = up[:, 0]  # (B, T)
    c.options["_layer_attr"] = layer_attr
    return up, None


def _run_lig(c: _Ctx) -> tuple[Tensor, Tensor | None]:
    attr, delta = LayerIntegratedGradients(c.model, c.module).attribute(
        c.inputs, baselines=c.baselines, target=c.target, return_convergence_delta=True, **c.options)
    c.options["_layer_attr"] = attr
    return (attr.sum(-1) if attr.dim() == 3 else attr), delta  # (B, T, D) -> (B, T)


def _run_conductance(c: _Ctx) -> tuple[Tensor, Tensor | None]:
    attr = LayerConductance(c.model, c.module).attribute(c.inputs, baselines=c.baselines, target=c.target,
                                                         **c.options)
    c.options["_layer_attr"] = attr
    return attr, None


_GRAD = frozenset({"image", "tabular", "sequence"})
_TOKEN_HINT = "inputs are token ids; use layer_integrated_gradients on an Embedding node"

_SPECS: dict[str, _Spec] = {s.name: s for s in [
    _Spec("saliency", "Saliency", _GRAD, _TOKEN_HINT, None, _run_simple(Saliency), Saliency),
    _Spec("input_x_gradient", "Input × Gradient", _GRAD, _TOKEN_HINT, None, _run_simple(InputXGradient),
          InputXGradient),
    _Spec("integrated_gradients", "Integrated Gradients", _GRAD, _TOKEN_HINT, None, _run_ig,
          IntegratedGradients),
    _Spec("deep_lift", "DeepLift", _GRAD, _TOKEN_HINT, None, _run_deep_lift, DeepLift),
    _Spec("gradient_shap", "GradientSHAP", _GRAD, _TOKEN_HINT, None, _run_gradient_shap, GradientShap),
    _Spec("noise_tunnel", "SmoothGrad (NoiseTunnel)", _GRAD, _TOKEN_HINT, None, _run_noise_tunnel,
          NoiseTunnel),
    _Spec("occlusion", "Occlusion", frozenset({"image", "sequence", "tokens"}),
          "occlusion is for images and sequences; use feature_ablation for tabular inputs", None,
          _run_occlusion, Occlusion),
    _Spec("feature_ablation", "Feature ablation", frozenset({"tabular"}),
          "feature_ablation is for tabular inputs; use occlusion for images and sequences", None,
          _run_feature_ablation, FeatureAblation),
    _Spec("grad_cam", "Grad-CAM", frozenset(MODALITIES), "", CONV_TYPES, _run_grad_cam, LayerGradCam),
    _Spec("layer_integrated_gradients", "Layer Integrated Gradients", frozenset({"tokens"}),
          "layer_integrated_gradients is for token inputs (through their Embedding node); "
          "use integrated_gradients", frozenset({"Embedding"}), _run_lig, LayerIntegratedGradients),
    _Spec("layer_conductance", "Layer conductance", _GRAD,
          "inputs are token ids, which conductance cannot interpolate; use layer_integrated_gradients",
          frozenset({"*"}), _run_conductance, LayerConductance),
]}
_ALIASES = {"layer_grad_cam": "grad_cam", "smoothgrad": "noise_tunnel", "deeplift": "deep_lift"}
METHODS: tuple[str, ...] = tuple(_SPECS)
_WITH_BASELINES = {"integrated_gradients", "deep_lift", "gradient_shap", "occlusion", "feature_ablation",
                   "layer_integrated_gradients", "layer_conductance"}
_STOCHASTIC = {"gradient_shap", "noise_tunnel"}


def _spec(method: str) -> _Spec:
    spec = _SPECS.get(_ALIASES.get(method, method))
    if spec is None:
        raise ExplainError(f"unknown method {method!r}; known methods: {', '.join(METHODS)}")
    return spec


def method_label(method: str) -> str:
    """Human-readable name of a method, e.g. ``Integrated Gradients``."""
    return _spec(method).label


def _why_not(model: nn.Module, spec: _Spec, modality: str) -> tuple[str, list[str]]:
    n_in = len(getattr(model, "layerlab_inputs", None) or [None])
    n_out = len(getattr(model, "layerlab_outputs", None) or [None])
    if n_in != 1 or n_out != 1:
        return (f"{spec.name}: this graph has {n_in} Input and {n_out} output nodes; explanations need "
                "exactly one of each"), []
    if modality not in spec.modalities:
        return f"{spec.name}: {spec.not_modality}", []
    if spec.name == "deep_lift":
        inplace = [n for n, m in model.named_modules() if getattr(m, "inplace", False)]
        if inplace:
            return f"deep_lift: in-place activations ({', '.join(inplace[:3])}) break its hooks; " \
                   "set inplace=False", []
    if spec.layer_types is None:
        return "", []
    layers = _candidates(model, spec, modality)
    if not layers:
        need = {"grad_cam": "a Conv2d node" if modality == "image" else "a Conv1d or Conv2d node",
                "layer_integrated_gradients": "an Embedding node",
                "layer_conductance": "a node whose output is a single tensor"}[spec.name]
        return f"{spec.name}: needs {need}; this graph has none", []
    return "", layers


def available_methods(model: nn.Module, modality: str) -> list[MethodInfo]:
    """Every method with whether it applies to ``model`` on ``modality`` inputs and, if not, why.

    Example::

        >>> [m.reason for m in available_methods(mlp, "tabular") if not m.available][0]  # doctest: +SKIP
        'occlusion: occlusion is for images and sequences; use feature_ablation for tabular inputs'
    """
    mod = _norm_modality(modality)
    out = []
    for spec in _SPECS.values():
        reason, layers = _why_not(model, spec, mod)
        out.append(MethodInfo(spec.name, not reason, reason, spec.label, tuple(layers)))
    return out


# --------------------------------------------------------------------------------------------- explain


def explain(model: nn.Module, inputs: Tensor, method: str, target: Any = None, *,
            baselines: str | float | Tensor | None = None, layer: str | nn.Module | None = None,
            modality: str | None = None, baseline_data: Tensor | None = None, pad_token: int = 0,
            blur_sigma: float = 2.0, seed: int | None = 0, **options: Any) -> Explanation:
    """Attribute the model's output for ``target`` to its inputs with one Captum method.

    Args:
        model: a compiled graph (or any ``nn.Module``) taking one tensor.
        inputs: a batch (B, ...); token ids as int64 (B, T).
        method: one of ``METHODS`` (Captum's names in snake_case).
        target: class per sample, one class for all, or None for the predicted class.
        baselines: ``zeros`` (default; pad tokens for ids), ``mean`` (needs ``baseline_data``), ``blur``,
            ``pad``, a number or a tensor.
        layer: node id for grad_cam, layer_integrated_gradients, layer_conductance (default: the last
            convolution, the first Embedding, the first node with weights); see ``MethodInfo.layers``.
        seed: seeds the noise of gradient_shap and noise_tunnel (None: global RNG).
        options: passed to Captum's ``attribute`` (``n_steps``, ``sliding_window_shapes``, ``nt_samples``...).
    Returns:
        An :class:`Explanation`; IG and layer IG include ``delta`` (the completeness error).
    Raises:
        ExplainError: unknown method or option, a method that does not apply, bad target or baselines.
    """
    spec = _spec(method)
    mod = _norm_modality(modality, inputs)
    if not isinstance(inputs, Tensor) or inputs.dim() < 2:
        raise ExplainError("inputs must be a batched tensor (B, ...); add a batch dimension")
    reason, layers = _why_not(model, spec, mod)
    if reason:
        raise ExplainError(reason)
    node, module = (None, None)
    if spec.layer_types is not None:
        if layer is None:
            layer = _default_layer(model, spec.name, layers)
        node, module = resolve_layer(model, layer)
    extra = ("base", "nt_type", "nt_samples", "nt_samples_batch_size", "stdevs",
             "draw_baseline_from_distrib", "abs", "n_steps", "method",
             "internal_batch_size") if spec.name == "noise_tunnel" else ()
    if spec.name == "grad_cam":
        extra = ("interpolate_mode",)
    _check_options(spec.name, spec.captum_cls.attribute, options, extra)
    base = None
    if spec.name in _WITH_BASELINES or options.get("base") == "integrated_gradients":
        base = make_baseline(inputs, "zeros" if baselines is None else baselines, data=baseline_data,
                             pad_token=pad_token, sigma=blur_sigma)
    with eval_mode(model):
        with torch.no_grad():
            out = model(inputs)  # (B, C) logits, or any shape for reconstruction
        fwd = _Flat(model) if out.dim() > 2 else model
        tgt = _target_from_output(out, target)
        ctx = _Ctx(fwd, inputs, tgt, base, node, module, dict(options), seed)
        rng = seeded(seed) if seed is not None and spec.name in _STOCHASTIC else contextlib.nullcontext()
        with rng:
            try:
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", message=".*(require gradients|non-linear).*")
                    attr, delta = spec.run(ctx)
            except ExplainError:
                raise
            except (RuntimeError, ValueError, AssertionError) as e:
                raise ExplainError(f"{spec.name} failed on this model: {e}") from e
    layer_attr = ctx.options.pop("_layer_attr", None)
    return Explanation(spec.name, attr.detach(), tgt, None if delta is None else delta.detach(), node,
                       None if layer_attr is None else layer_attr.detach(), base, dict(options))


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


# --------------------------------------------------------------------------------------------- samples

PICKS = ("index", "class", "correct", "incorrect", "confident_mistakes")


def pick_samples(model: nn.Module, inputs: Tensor, labels: Tensor | None = None, by: str = "index", *,
                 index: int | Sequence[int] = 0, label: int | None = None, k: int = 8,
                 batch_size: int = 256) -> list[int]:
    """Indices of samples to explain.

    Args:
        by: ``index`` (the given index or indices), ``class`` (true label == ``label``), ``correct``,
            ``incorrect``, ``confident_mistakes`` (wrong predictions, most confident first).
        k: at most this many indices (not for ``index``).
    Raises:
        ExplainError: unknown ``by``, index out of range, labels missing.
    """
    n = len(inputs)
    if by == "index":
        idx = [index] if isinstance(index, int) else list(index)
        bad = [i for i in idx if not -n <= int(i) < n]
        if bad:
            raise ExplainError(f"index: must be in [0, {n - 1}]; received {bad}")
        return [int(i) % n for i in idx]
    if by not in PICKS:
        raise ExplainError(f"by: unknown picker {by!r}; expected one of {', '.join(PICKS)}")
    if labels is None:
        raise ExplainError(f"by={by!r} needs the labels of the samples")
    y = torch.as_tensor(labels).reshape(-1)
    if by == "class":
        if label is None:
            raise ExplainError("by='class' needs label=<class index>")
        return torch.nonzero(y == label).flatten()[:k].tolist()
    pred, conf = predict(model, inputs, batch_size)
    ok = pred.cpu() == y.cpu().long()
    if by == "correct":
        return torch.nonzero(ok).flatten()[:k].tolist()
    wrong = torch.nonzero(~ok).flatten()
    if by == "incorrect":
        return wrong[:k].tolist()
    order = conf.cpu()[wrong].argsort(descending=True, stable=True)
    return wrong[order][:k].tolist()


__all__ = ["MethodInfo", "Explanation", "METHODS", "MODALITIES", "BASELINES", "PICKS", "explain",
           "explain_many", "explain_all", "available_methods", "make_baseline", "pick_samples", "predict",
           "resolve_target", "resolve_layer", "layer_nodes", "infer_modality", "model_modality", "method_label",
           "default_window", "eval_mode", "seeded"]


class _CallableModule(types.ModuleType):
    """Lets ``builder.interpret.attributions(model, inputs, method, ...)`` work although ``builder.interpret.attributions`` is this module."""

    def __call__(self, *args, **kwargs) -> Explanation:
        return explain(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
