"""Explanation methods: one :class:`MethodSpec` per method carries every fact about it, in one table.

A spec says which modalities the method fits (and why not otherwise), whether it takes baselines, draws noise
(seeded), integrates (``n_steps``) or has a convergence delta, whether it attributes at a layer (which node
types, which default node, the help text for the node picker), where its maps live (input or layer space),
its extra options, and where the Explain page offers it (default selection, global ranking, sanity check).
:func:`builder.interpret.attributions.explain`, :mod:`~builder.interpret.live`, :mod:`~builder.interpret.sanity`,
:mod:`~builder.interpret.figures` and the Explain page read these facts; adding a method is one
:func:`register` call (Captum's per-class ``has_convergence_delta()`` is the model). Example::

    >>> get_spec("integrated_gradients").needs_baselines, get_spec("smoothgrad").name
    (True, 'noise_tunnel')
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

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
from builder.interpret.model import CONV_TYPES, MODALITIES, TUPLE_OUTPUT_TYPES, has_weights, layer_nodes


@dataclass
class MethodInput:
    """What a method's runner gets: the (flattened-output) model, the batch, the resolved target and baselines."""

    model: nn.Module
    inputs: Tensor  # (B, ...)
    target: Tensor | None  # (B,) or None for one output
    baselines: Tensor | None  # like inputs, or None for methods without baselines
    layer: str | None  # node id for layer methods
    module: nn.Module | None
    options: dict[str, Any]  # Captum's attribute() options, already checked


class Attribution(NamedTuple):
    """What a runner returns: the map (input space, or layer space for ``space == 'layer'``), the convergence
    delta (or None) and the raw layer-space tensor of layer methods (or None)."""

    attributions: Tensor
    delta: Tensor | None = None
    layer_attributions: Tensor | None = None


@dataclass(frozen=True)
class MethodSpec:
    """Every fact about one explanation method.

    Args:
        name: the method's name in ``explain(..., method=name)`` (Captum's class name in snake_case).
        label: shown to people (``Integrated Gradients``).
        captum_cls: the Captum class; its ``attribute`` signature checks the options (None: ``run``'s own
            keyword arguments do, with ``extra_options``).
        run: ``run(MethodInput) -> Attribution``.
        modalities: the input modalities it fits (``image``, ``tabular``, ``sequence``, ``tokens``).
        not_modality: why not, for the other modalities (with the method to use instead).
        needs_baselines: takes a baseline input (zeros, mean, blur, pad...).
        stochastic: draws noise; ``explain(seed=...)`` seeds it.
        perturbs: changes the input and watches the output (no gradient: it sees a model that detaches or rounds).
        uses_steps: integrates along a path (``n_steps``); the page's steps field and cheaper checks set it.
        has_convergence_delta: returns the completeness error (Captum's ``has_convergence_delta()``).
        layer_types: node types it attributes at (``{"*"}``: any node with one tensor output); None: input space.
        layer_need: what the model lacks when no node fits (``a Conv2d node``).
        layer_help: help text of the page's node picker.
        default_layer_last: the default node is the last candidate (Grad-CAM: the last convolution), else the
            first candidate with weights.
        space: ``input`` (maps have the input's layout) or ``layer`` (the layer's output: drawn as activations).
        layer_measure: what a layer-space map shows, in figure titles (``conductance of node fc``).
        caption: shown under the method's layer-space figure; ``{layer}`` is replaced by the node.
        title_shows_layer: figure titles name the node (``Grad-CAM · conv2``).
        extra_options: options it accepts besides those of ``captum_cls.attribute``.
        default_for: modality -> position among the page's default methods for that modality.
        global_rank: position in the page's global feature ranking choices (None: not offered).
        sanity_check: offered in the randomisation check; ``sanity_default``: chosen there by default.
        for_tokens: the method to use on token ids when this one cannot take them (live attributions).
    """

    name: str
    label: str
    captum_cls: type | None
    run: Callable[[MethodInput], Attribution]
    modalities: frozenset[str]
    not_modality: str = ""
    needs_baselines: bool = False
    stochastic: bool = False
    perturbs: bool = False
    uses_steps: bool = False
    has_convergence_delta: bool = False
    layer_types: frozenset[str] | None = None
    layer_need: str = ""
    layer_help: str = ""
    default_layer_last: bool = False
    space: str = "input"
    layer_measure: str = "attribution"
    caption: str = ""
    title_shows_layer: bool = False
    extra_options: tuple[str, ...] = ()
    default_for: Mapping[str, int] = field(default_factory=dict)
    global_rank: int | None = None
    sanity_check: bool = True
    sanity_default: bool = False
    for_tokens: str = "layer_integrated_gradients"

    @property
    def is_layer_method(self) -> bool:
        """Whether it attributes at a node (Captum's ``LayerAttribution``) rather than at the input."""
        return self.layer_types is not None

    def supports(self, modality: str) -> bool:
        """Whether it fits inputs of ``modality`` (``points2d`` is tabular)."""
        return ("tabular" if modality == "points2d" else modality) in self.modalities

    def token_method(self) -> str:
        """The method to run on token ids: this one when it takes them, else :attr:`for_tokens`."""
        return self.name if "tokens" in self.modalities else self.for_tokens

    def options_signature(self) -> Callable[..., Any]:
        """The function whose parameters are the method's options (Captum's ``attribute``, else ``run``)."""
        return self.captum_cls.attribute if self.captum_cls is not None else self.run

    def wants_baselines(self, options: Mapping[str, Any]) -> bool:
        """Whether a call with these options needs a baseline tensor."""
        return self.needs_baselines

    def model_problem(self, model: nn.Module) -> str:
        """Why this model cannot be explained by the method ("" when it can), beyond modality and layers."""
        return ""

    def layer_candidates(self, model: nn.Module, modality: str) -> list[str]:
        """Nodes it can attribute at, in graph order (empty for input-space methods)."""
        if self.layer_types is None:
            return []
        nodes = layer_nodes(model)
        if "*" in self.layer_types:  # any node whose output is one tensor
            return [n for n, t in nodes.items() if t not in TUPLE_OUTPUT_TYPES | {"Embedding", "Input"}]
        return [n for n, t in nodes.items() if t in self.layer_types]

    def layer_requirement(self, modality: str) -> str:
        """What the model needs for this method, for the message when no node fits."""
        return self.layer_need

    def default_layer(self, model: nn.Module, layers: list[str] | tuple[str, ...]) -> str:
        """The node used when none is given: the last candidate, or the first one with weights."""
        if self.default_layer_last:
            return layers[-1]
        return next((n for n in layers if has_weights(model, n)), layers[0])


# --------------------------------------------------------------------------------------------- runners


def _simple(cls: type) -> Callable[[MethodInput], Attribution]:
    def run(c: MethodInput) -> Attribution:
        return Attribution(cls(c.model).attribute(c.inputs, target=c.target, **c.options))
    return run


def _with_delta(cls: type) -> Callable[[MethodInput], Attribution]:
    def run(c: MethodInput) -> Attribution:
        attr, delta = cls(c.model).attribute(c.inputs, baselines=c.baselines, target=c.target,
                                             return_convergence_delta=True, **c.options)
        return Attribution(attr, delta)
    return run


def _run_gradient_shap(c: MethodInput) -> Attribution:
    return Attribution(GradientShap(c.model).attribute(c.inputs, baselines=c.baselines, target=c.target,
                                                       **c.options))


_NT_BASES = {"saliency": Saliency, "input_x_gradient": InputXGradient, "integrated_gradients": IntegratedGradients}


def _run_noise_tunnel(c: MethodInput) -> Attribution:
    opts = dict(c.options)
    base = opts.pop("base", "saliency")
    inner = _NT_BASES.get(base)
    if inner is None:
        raise ExplainError(f"noise_tunnel: base must be saliency, input_x_gradient or integrated_gradients; "
                           f"received {base!r}")
    opts.setdefault("nt_type", "smoothgrad")
    opts.setdefault("nt_samples", 10)
    opts.setdefault("stdevs", 0.15 * float(c.inputs.float().std()) if c.inputs.numel() > 1 else 0.1)
    if base == "integrated_gradients":
        opts.setdefault("baselines", c.baselines)
    return Attribution(NoiseTunnel(inner(c.model)).attribute(c.inputs, target=c.target, **opts))


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


def _run_occlusion(c: MethodInput) -> Attribution:
    opts = dict(c.options)
    win, stride = default_window(c.inputs)
    opts.setdefault("sliding_window_shapes", win)
    opts.setdefault("strides", stride)
    opts.setdefault("perturbations_per_eval", 16)
    return Attribution(Occlusion(c.model).attribute(c.inputs, baselines=c.baselines, target=c.target, **opts))


def _run_feature_ablation(c: MethodInput) -> Attribution:
    opts = dict(c.options)
    opts.setdefault("perturbations_per_eval", 16)
    return Attribution(FeatureAblation(c.model).attribute(c.inputs, baselines=c.baselines, target=c.target,
                                                          **opts))


def _run_grad_cam(c: MethodInput) -> Attribution:
    opts = dict(c.options)
    mode = opts.pop("interpolate_mode", None)
    layer_attr = LayerGradCam(c.model, c.module).attribute(c.inputs, target=c.target, **opts)
    if c.inputs.dim() == 4:
        size: tuple[int, ...] = tuple(c.inputs.shape[2:])
        mode = mode or "bilinear"
    else:  # (B, T) token ids or (B, T, F) / (B, F) floats: along the first axis after the batch
        size, mode = (c.inputs.shape[1],), mode or "linear"
    if layer_attr.dim() - 2 != len(size):
        raise ExplainError(f"grad_cam: layer {c.layer} gives maps of shape {tuple(layer_attr.shape)}, "
                           f"which cannot be upsampled to the input size {size}")
    up = LayerAttribution.interpolate(layer_attr, size, interpolate_mode=mode)
    if c.inputs.dim() != 4:
        up = up[:, 0]  # (B, T)
    return Attribution(up, None, layer_attr)


def _run_lig(c: MethodInput) -> Attribution:
    attr, delta = LayerIntegratedGradients(c.model, c.module).attribute(
        c.inputs, baselines=c.baselines, target=c.target, return_convergence_delta=True, **c.options)
    return Attribution(attr.sum(-1) if attr.dim() == 3 else attr, delta, attr)  # (B, T, D) -> (B, T)


def _run_conductance(c: MethodInput) -> Attribution:
    attr = LayerConductance(c.model, c.module).attribute(c.inputs, baselines=c.baselines, target=c.target,
                                                         **c.options)
    return Attribution(attr, None, attr)


# ------------------------------------------------------------------------------------- specs with rules


@dataclass(frozen=True)
class _DeepLiftSpec(MethodSpec):
    def model_problem(self, model: nn.Module) -> str:
        inplace = [n for n, m in model.named_modules() if getattr(m, "inplace", False)]
        if inplace:
            return f"in-place activations ({', '.join(inplace[:3])}) break its hooks; set inplace=False"
        return ""


@dataclass(frozen=True)
class _NoiseTunnelSpec(MethodSpec):
    def wants_baselines(self, options: Mapping[str, Any]) -> bool:
        return options.get("base") == "integrated_gradients"


@dataclass(frozen=True)
class _GradCamSpec(MethodSpec):
    """On images only 2-D convolutions give maps that upsample to the image."""

    def layer_candidates(self, model: nn.Module, modality: str) -> list[str]:
        want = frozenset({"Conv2d"}) if modality == "image" else self.layer_types or frozenset()
        return [n for n, t in layer_nodes(model).items() if t in want]

    def layer_requirement(self, modality: str) -> str:
        return "a Conv2d node" if modality == "image" else "a Conv1d or Conv2d node"


# ------------------------------------------------------------------------------------------- the table

_GRAD = frozenset({"image", "tabular", "sequence"})
_TOKEN_HINT = "inputs are token ids; use layer_integrated_gradients on an Embedding node"
_NT_OPTIONS = ("base", "nt_type", "nt_samples", "nt_samples_batch_size", "stdevs", "draw_baseline_from_distrib",
               "abs", "n_steps", "method", "internal_batch_size")

_SPECS: dict[str, MethodSpec] = {}
_ALIASES: dict[str, str] = {}


def register(spec: MethodSpec, aliases: tuple[str, ...] = ()) -> MethodSpec:
    """Add a method to the table (and to ``METHODS``); ``aliases`` are other names that find it.

    Raises:
        ExplainError: the name or an alias is taken.
    """
    for n in (spec.name, *aliases):
        if n in _SPECS or n in _ALIASES:
            raise ExplainError(f"method {n!r} is already registered; choose another name")
    _SPECS[spec.name] = spec
    _ALIASES.update({a: spec.name for a in aliases})
    return spec


def unregister(name: str) -> None:
    """Remove a method and its aliases from the table (for tests and plug-ins)."""
    _SPECS.pop(name, None)
    for a in [a for a, n in _ALIASES.items() if n == name]:
        del _ALIASES[a]


@contextlib.contextmanager
def registered(spec: MethodSpec) -> Iterator[MethodSpec]:
    """Register ``spec`` for the duration of a ``with`` block."""
    register(spec)
    try:
        yield spec
    finally:
        unregister(spec.name)


def get_spec(method: str) -> MethodSpec:
    """The spec of a method name or alias.

    Raises:
        ExplainError: unknown name (the message lists the known ones).
    """
    spec = _SPECS.get(_ALIASES.get(method, method))
    if spec is None:
        raise ExplainError(f"unknown method {method!r}; known methods: {', '.join(_SPECS)}")
    return spec


def method_specs() -> list[MethodSpec]:
    """Every registered spec, in table order."""
    return list(_SPECS.values())


def method_names() -> tuple[str, ...]:
    """Every registered method name, in table order."""
    return tuple(_SPECS)


def method_label(method: str) -> str:
    """Human-readable name of a method, e.g. ``Integrated Gradients``."""
    return get_spec(method).label


register(MethodSpec("saliency", "Saliency", Saliency, _simple(Saliency), _GRAD, _TOKEN_HINT,
                    default_for={"image": 0}, global_rank=2, sanity_default=True))
register(MethodSpec("input_x_gradient", "Input × Gradient", InputXGradient, _simple(InputXGradient), _GRAD,
                    _TOKEN_HINT, global_rank=3))
register(MethodSpec("integrated_gradients", "Integrated Gradients", IntegratedGradients,
                    _with_delta(IntegratedGradients), _GRAD, _TOKEN_HINT, needs_baselines=True, uses_steps=True,
                    has_convergence_delta=True, default_for={"image": 1, "tabular": 0, "sequence": 0},
                    global_rank=0, sanity_default=True))
register(_DeepLiftSpec("deep_lift", "DeepLift", DeepLift, _with_delta(DeepLift), _GRAD, _TOKEN_HINT,
                       needs_baselines=True, has_convergence_delta=True, global_rank=4), aliases=("deeplift",))
register(MethodSpec("gradient_shap", "GradientSHAP", GradientShap, _run_gradient_shap, _GRAD, _TOKEN_HINT,
                    needs_baselines=True, stochastic=True, global_rank=5))
register(_NoiseTunnelSpec("noise_tunnel", "SmoothGrad (NoiseTunnel)", NoiseTunnel, _run_noise_tunnel, _GRAD,
                          _TOKEN_HINT, stochastic=True, extra_options=_NT_OPTIONS), aliases=("smoothgrad",))
register(MethodSpec("occlusion", "Occlusion", Occlusion, _run_occlusion, frozenset({"image", "sequence", "tokens"}),
                    "occlusion is for images and sequences; use feature_ablation for tabular inputs",
                    needs_baselines=True, perturbs=True, default_for={"sequence": 1, "tokens": 1}))
register(MethodSpec("feature_ablation", "Feature ablation", FeatureAblation, _run_feature_ablation,
                    frozenset({"tabular"}),
                    "feature_ablation is for tabular inputs; use occlusion for images and sequences",
                    needs_baselines=True, perturbs=True, default_for={"tabular": 1}, global_rank=1))
register(_GradCamSpec("grad_cam", "Grad-CAM", LayerGradCam, _run_grad_cam, frozenset(MODALITIES) - {"points2d"},
                      layer_types=CONV_TYPES, default_layer_last=True, title_shows_layer=True,
                      layer_help="The convolution whose feature maps Grad-CAM weighs; the map is upsampled to "
                                 "the input",
                      extra_options=("interpolate_mode",), default_for={"image": 2}, sanity_default=True),
         aliases=("layer_grad_cam",))
register(MethodSpec("layer_integrated_gradients", "Layer Integrated Gradients", LayerIntegratedGradients, _run_lig,
                    frozenset({"tokens"}), "layer_integrated_gradients is for token inputs (through their Embedding "
                    "node); use integrated_gradients", needs_baselines=True, uses_steps=True,
                    has_convergence_delta=True, layer_types=frozenset({"Embedding"}), layer_need="an Embedding node",
                    layer_help="The Embedding node the token ids go through", default_for={"tokens": 0},
                    sanity_default=True))
register(MethodSpec("layer_conductance", "Layer conductance", LayerConductance, _run_conductance, _GRAD,
                    "inputs are token ids, which conductance cannot interpolate; use layer_integrated_gradients",
                    needs_baselines=True, uses_steps=True, layer_types=frozenset({"*"}),
                    layer_need="a node whose output is a single tensor",
                    layer_help="Any node: conductance shows how much each of its units carries", space="layer",
                    layer_measure="conductance",
                    caption="Conductance: how much each unit of node `{layer}` carries of the class score.",
                    sanity_check=False))


__all__ = ["MethodSpec", "MethodInput", "Attribution", "register", "unregister", "registered", "get_spec",
           "method_specs", "method_names", "method_label", "default_window"]
