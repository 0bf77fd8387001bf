"""Layer specs of the palette group Objective: loss nodes, targets, noise, sampling and gradient plumbing.

A project whose graph holds a loss node is trained on the losses it draws (:mod:`builder.training.objectives`);
a project without one keeps its task's built-in loss. Every loss node takes a model output on port ``input``
and a target on port ``target`` and gives one loss value per sample (shape ``(B)``); the trainer averages it
over the batch, multiplies it by the node's ``weight`` and sums the terms. A loss node listed in one of the
project's ``networks`` trains that network; one listed in none trains every network.

Values the trainer feeds each batch are drawn as nodes fed from any node (their ``like`` port only carries the
batch size, so the graph stays connected to its Input): ``Target`` (the dataset's labels, the input itself, a
teacher's outputs, or constant ones/zeros shaped like ``like``) and ``Noise`` (Gaussian or uniform, drawn per
batch from a generator seeded by (seed, epoch, batch)). Compiled on their own (export, tests) they give a
deterministic stand-in: zeros for labels/input/teacher, the distribution's mean for Noise in eval mode.
``Reparameterize`` (μ, log σ² → z; its KL term is a ``GaussianKLLoss`` on the same μ, log σ²) and ``Detach``
(stop-gradient) complete the group.
"""

from __future__ import annotations

import operator as op

from builder.graph.layers._common import _float, _same_float, _torch
from builder.graph.layers.tensor import ANY
from builder.graph.spec import MAX_SIZE, TOKENS, Cost, LayerSpec, Param, ShapeError, TensorType, register

CATEGORY = "Objective"
#: Loss node types and the functions that compute their per-sample values.
LOSS_TYPES = ("CrossEntropyLoss", "BCEWithLogitsLoss", "MSELoss", "L1Loss", "HuberLoss", "KLDivLoss",
              "GaussianKLLoss", "DistillationLoss", "PenaltyLoss")
#: Nodes whose value the trainer feeds per batch (placeholders of the training graph).
FED_TYPES = ("Target", "Noise")
TARGET_SOURCES = ("labels", "input", "teacher", "ones", "zeros")
FED_SOURCES = ("labels", "input", "teacher")  # Target sources fed by the trainer (ones/zeros are computed)
SCALAR = TensorType(())


# ------------------------------------------------------------------------------------ the loss values
def _per_sample(v, reduction: str):
    """Reduce every dimension but the batch: ``mean`` or ``sum``."""
    v = v.reshape(v.shape[0], -1)
    return v.sum(1) if reduction == "sum" else v.mean(1)


def cross_entropy(x, target, reduction: str = "mean", label_smoothing: float = 0.0):
    """Per-sample cross-entropy of logits ``x`` (B, C) against class ids (B,)/(B, 1) or C probabilities per sample
    in any shape ((B, C), (B, C, 1): the shape rule's, C ≥ 2 so the two never share a size)."""
    torch = _torch()
    logp = torch.log_softmax(x, dim=-1)
    if target.numel() == x.numel():  # probabilities (soft targets); a (B, C, 1) target's C values were read as ids
        probs = target.reshape(x.shape).to(x.dtype)
    else:
        ids = target.reshape(-1).long()
        probs = torch.nn.functional.one_hot(ids, x.shape[-1]).to(x.dtype)
    if label_smoothing:
        probs = probs * (1 - label_smoothing) + label_smoothing / x.shape[-1]
    return -(probs * logp).sum(-1)


def bce_logits(x, target, reduction: str = "mean"):
    """Per-sample binary cross-entropy with logits (numerically stable)."""
    torch = _torch()
    t = target.reshape(x.shape).to(x.dtype)
    v = torch.clamp(x, min=0) - x * t + torch.log1p(torch.exp(-torch.abs(x)))
    return _per_sample(v, reduction)


def mse(x, target, reduction: str = "mean"):
    """Per-sample squared error."""
    return _per_sample((x - target.reshape(x.shape).to(x.dtype)) ** 2, reduction)


def l1(x, target, reduction: str = "mean"):
    """Per-sample absolute error."""
    return _per_sample((x - target.reshape(x.shape).to(x.dtype)).abs(), reduction)


def huber(x, target, reduction: str = "mean", delta: float = 1.0):
    """Per-sample Huber loss (quadratic within ``delta``, linear beyond)."""
    torch = _torch()
    d = (x - target.reshape(x.shape).to(x.dtype)).abs()
    return _per_sample(torch.where(d < delta, 0.5 * d * d, delta * (d - 0.5 * delta)), reduction)


def kl_div(x, target, temperature: float = 1.0):
    """Per-sample KL(softmax(target/T) ‖ softmax(x/T)) of two logit vectors."""
    torch = _torch()
    logq = torch.log_softmax(x / temperature, dim=-1)
    logp = torch.log_softmax(target.to(x.dtype) / temperature, dim=-1)
    return (logp.exp() * (logp - logq)).sum(-1)


MIN_DISTILL_TEMPERATURE = 1e-3  # the lowest: a softmax of logits over 1000
MAX_DISTILL_TEMPERATURE = 50.0
"""The highest distillation temperature: the loss's T² factor multiplies float32's rounding of two nearly uniform
softmaxes, 1e-4 of the loss at T = 50, 0.09 % at 100, 1.6 % at 524 and 6 % at 1000 (against float64), where
onnxruntime and torch then differ past any export tolerance (``make fuzz``, seed 3538394947). Distillation uses
1-20."""


def distillation(x, target, temperature: float = 4.0):
    """Hinton's distillation term: T² · KL(softmax(teacher/T) ‖ softmax(student/T)) per sample."""
    return kl_div(x, target, temperature) * (temperature * temperature)


def gaussian_kl(mu, logvar, reduction: str = "sum"):
    """Per-sample KL(N(μ, σ²) ‖ N(0, 1)) of a diagonal Gaussian, summed (or averaged) over the latent dims."""
    return _per_sample(-0.5 * (1 + logvar - mu * mu - logvar.exp()), reduction)


def penalty(x, reduction: str = "mean"):
    """Any per-sample value used as a loss term (e.g. Reparameterize's ``kl``)."""
    return _per_sample(x, reduction) if x.dim() > 1 else x


def reparameterize(mu, logvar, training: bool = True):
    """z = μ + σ·ε with ε ~ N(0, 1) while training; μ in eval mode."""
    torch = _torch()
    if not training:
        return mu
    return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)


def noise_stand_in(like, shape: list[int], distribution: str, training: bool = True):
    """A Noise node compiled on its own: random while training, the distribution's mean in eval mode
    (the trainer replaces the node by a fed value drawn from a seeded generator)."""
    torch = _torch()
    size = (like.shape[0], *shape)
    dtype = like.dtype if like.is_floating_point() else torch.float32  # token ids give the batch size only
    if not training:
        return torch.full(size, 0.5 if distribution == "uniform" else 0.0, dtype=dtype, device=like.device)
    if distribution == "uniform":
        return torch.rand(size, dtype=dtype, device=like.device)
    return torch.randn(size, dtype=dtype, device=like.device)


def target_stand_in(like, shape: list[int], source: str):
    """A Target compiled on its own: ones/zeros shaped like ``like``; zeros of ``shape`` for fed sources."""
    torch = _torch()
    if source == "ones":
        return torch.ones_like(like)
    if source == "zeros":
        return torch.zeros_like(like)
    return torch.zeros((like.shape[0], *shape), dtype=like.dtype, device=like.device)


# --------------------------------------------------------------------------------------- the specs
_WEIGHT = Param("weight", "float", 1.0, "Factor of this term in the total loss.", min=0.0, max=1e6)
_REDUCTION = Param("reduction", "choice", "mean", "How the values of one sample are combined: mean or sum.",
                   choices=("mean", "sum"))


# The compiled forward spells each function above in torch calls (the same operations in the same order), so
# the fx code, and with it the exported ``.py``, needs nothing but torch; choices that depend on the inputs'
# ranks and kinds are made from their types, the train/eval choice by indexing a pair with ``self.training``.
def _e_per_sample(e, v, reduction: str):
    flat = e.method("reshape", v, e.method("size", v, 0, as_="b"), -1, as_="flat")
    return e.method("sum" if reduction == "sum" else "mean", flat, 1)


def _e_dtype(e, x):
    return e.fn(getattr, x, "dtype", as_="dtype")


def _e_like(e, t, x):
    """``t.reshape(x.shape).to(x.dtype)``."""
    t = e.method("reshape", t, e.fn(getattr, x, "shape", as_="shape"), as_="target")
    return e.method("to", t, _e_dtype(e, x), as_="target")


def _e_cross_entropy(e, p, x, t, types):
    torch = _torch()
    classes = types[0].shape[-1]
    logp = e.fn(torch.log_softmax, x, dim=-1, as_="logp")
    if types[1].numel == types[0].numel:  # C probabilities (soft targets) in any shape (_ce_shape), as logits
        probs = _e_like(e, t, x)  # (a (C, 1) target's C values were read as class ids: B·C of them)
    else:
        ids = e.method("long", e.method("reshape", t, -1, as_="ids"), as_="ids")
        probs = e.method("to", e.fn(torch.nn.functional.one_hot, ids, classes, as_="onehot"), _e_dtype(e, x),
                         as_="probs")
    if p["label_smoothing"]:
        ls = p["label_smoothing"]
        probs = e.fn(op.add, e.fn(op.mul, probs, 1 - ls, as_="probs"), ls / classes, as_="probs")
    return e.fn(op.neg, e.method("sum", e.fn(op.mul, probs, logp, as_="nll"), -1, as_="nll"))


def _e_bce(e, p, x, t, types):
    torch = _torch()
    t = _e_like(e, t, x)
    soft = e.fn(torch.log1p, e.fn(torch.exp, e.fn(op.neg, e.fn(torch.abs, x, as_="abs"), as_="neg"), as_="exp"))
    v = e.fn(op.add, e.fn(op.sub, e.fn(torch.clamp, x, min=0, as_="relu"), e.fn(op.mul, x, t, as_="xt")), soft)
    return _e_per_sample(e, v, p["reduction"])


def _e_diff(e, x, t):
    return e.fn(op.sub, x, _e_like(e, t, x), as_="diff")


def _e_mse(e, p, x, t, types):
    return _e_per_sample(e, e.fn(op.pow, _e_diff(e, x, t), 2, as_="sq"), p["reduction"])


def _e_l1(e, p, x, t, types):
    return _e_per_sample(e, e.method("abs", _e_diff(e, x, t), as_="abs"), p["reduction"])


def _e_huber(e, p, x, t, types):
    delta = p["delta"]
    d = e.method("abs", _e_diff(e, x, t), as_="abs")
    quad = e.fn(op.mul, e.fn(op.mul, 0.5, d, as_="quad"), d, as_="quad")
    lin = e.fn(op.mul, delta, e.fn(op.sub, d, 0.5 * delta, as_="lin"), as_="lin")
    return _e_per_sample(e, e.fn(_torch().where, e.fn(op.lt, d, delta, as_="near"), quad, lin), p["reduction"])


def _e_kl(e, p, x, t, types):
    torch, temp = _torch(), p["temperature"]
    logq = e.fn(torch.log_softmax, e.fn(op.truediv, x, temp, as_="q"), dim=-1, as_="logq")
    logp = e.fn(torch.log_softmax, e.fn(op.truediv, e.method("to", t, _e_dtype(e, x), as_="p"), temp, as_="p"),
                dim=-1, as_="logp")
    kl = e.method("sum", e.fn(op.mul, e.method("exp", logp, as_="p"), e.fn(op.sub, logp, logq, as_="log_ratio")),
                  -1, as_="kl")
    return e.fn(op.mul, kl, temp * temp) if p["type"] == "DistillationLoss" else kl


def _e_gaussian_kl(e, p, mu, lv, types):
    v = e.fn(op.sub, e.fn(op.sub, e.fn(op.add, 1, lv, as_="kl"), e.fn(op.mul, mu, mu, as_="mu2"), as_="kl"),
             e.method("exp", lv, as_="var"), as_="kl")
    return _e_per_sample(e, e.fn(op.mul, -0.5, v, as_="kl"), p["reduction"])


def _e_penalty(e, p, x, types):
    return _e_per_sample(e, x, p["reduction"]) if types[0].shape else x


_EMIT = {"CrossEntropyLoss": _e_cross_entropy, "BCEWithLogitsLoss": _e_bce, "MSELoss": _e_mse, "L1Loss": _e_l1,
         "HuberLoss": _e_huber, "KLDivLoss": _e_kl, "DistillationLoss": _e_kl, "GaussianKLLoss": _e_gaussian_kl,
         "PenaltyLoss": _e_penalty}


def _loss_emit(type_: str):
    def emit(e, attr, p, ins, types):
        return _EMIT[type_](e, {**p, "type": type_}, *ins, types)
    return emit


def _two(ins, ports: tuple[str, str]):
    """The two inputs of a two-port rule (a ShapeError for another count: the graph fuzzer calls rules directly)."""
    if len(ins) != 2:
        raise ShapeError(f"expects two inputs, `{ports[0]}` and `{ports[1]}`; received: {len(ins)}. Fix: connect "
                         "both ports")
    return ins


def _float_target(t: TensorType, port: str) -> None:
    """Targets are float tensors (class ids too: a Target of the labels); the palette's port kind says so."""
    if t.kind == TOKENS:
        raise ShapeError(f"`{port}` takes float values; received: token ids {t}. Fix: feed a Target node (source "
                         "labels for class ids) or a float layer's output", port)


def _same_size(p, ins):
    x, t = _two(ins, ("input", "target"))
    _float(x, "input")
    _float_target(t, "target")
    if not x.shape:
        raise ShapeError("expects a per-sample value of at least one dimension; received: (B). Fix: feed the "
                         "model's output, not a loss", "input")
    if t.numel != x.numel:
        raise ShapeError(f"target must have as many values per sample as the input; received: input {x}, "
                         f"target {t}. Fix: feed a target of shape {x} (a Target node with shape "
                         f"{list(x.shape)}, or the Input itself for reconstruction)", "target")
    return SCALAR


def _ce_shape(p, ins):
    x, t = _two(ins, ("input", "target"))
    _float(x, "input")
    _float_target(t, "target")
    if len(x.shape) != 1 or x.shape[0] < 2:
        raise ShapeError(f"expects logits of 2 or more classes (B, C); received: {x}. Fix: feed a Linear with "
                         "out_features = the number of classes (Flatten first)", "input")
    if t.numel not in (1, x.numel):
        raise ShapeError(f"target must be one class id per sample or C probabilities; received: input {x}, "
                         f"target {t}. Fix: a Target with source 'labels' and shape [1]", "target")
    return SCALAR


def _logits_pair(p, ins):
    x, t = _two(ins, ("input", "target"))
    _float(x, "input")
    _float_target(t, "target")
    if len(x.shape) != 1 or t.shape != x.shape:
        raise ShapeError(f"expects two logit vectors of the same size (B, C); received: input {x}, target {t}. "
                         "Fix: feed the student's and the teacher's logits", "target")
    return SCALAR


def _gauss_shape(p, ins):
    mu, lv = _two(ins, ("mu", "logvar"))
    _float(mu, "mu")
    _float_target(lv, "logvar")
    if mu.shape != lv.shape or not mu.shape:
        raise ShapeError(f"mu and logvar must have the same shape; received: mu {mu}, logvar {lv}. Fix: feed two "
                         "Linear layers with the same out_features", "logvar")
    return SCALAR


def _penalty_shape(p, ins):
    _float(ins[0], "input")
    return SCALAR


#: Loss node type -> (the eager function its compiled code spells, the parameters passed to it).
LOSS_FUNCTIONS: dict[str, tuple] = {}


def _loss(type_: str, description: str, shape, fn, params: list[Param], names: tuple[str, ...],
          inputs: tuple[str, ...] = ("input", "target")) -> None:
    LOSS_FUNCTIONS[type_] = (fn, names)
    register(LayerSpec(type_, CATEGORY, description, params=[_WEIGHT, *params], shape=shape,
                       inputs=inputs, emit=_loss_emit(type_), strides="fresh",
                       cost=lambda p, ins, outs: Cost(work=sum(t.numel for t in ins))))


_loss("CrossEntropyLoss", "Cross-entropy of logits (B, C) against class ids (a Target of the labels) or "
      "probabilities, per sample.", _ce_shape, cross_entropy,
      [Param("label_smoothing", "float", 0.0, "Mix this share of the uniform distribution into the target.",
             min=0.0, max=0.99)], ("label_smoothing",))
_loss("BCEWithLogitsLoss", "Binary cross-entropy of logits against targets in [0, 1] (GAN real/fake, pixels).",
      _same_size, bce_logits, [_REDUCTION], ("reduction",))
_loss("MSELoss", "Squared error against the target (regression, reconstruction).", _same_size, mse,
      [_REDUCTION], ("reduction",))
_loss("L1Loss", "Absolute error against the target.", _same_size, l1, [_REDUCTION], ("reduction",))
_loss("HuberLoss", "Squared error within `delta`, absolute beyond (robust regression).", _same_size, huber,
      [_REDUCTION, Param("delta", "float", 1.0, "Where the loss turns linear.", min=1e-6, max=1e6)],
      ("reduction", "delta"))
_loss("KLDivLoss", "KL divergence KL(softmax(target) ‖ softmax(input)) of two logit vectors.", _logits_pair,
      kl_div, [Param("temperature", "float", 1.0, "Both logit vectors are divided by it.", min=1e-3, max=1e3)],
      ("temperature",))
_loss("DistillationLoss", "Knowledge distillation: T²·KL between the teacher's (target) and the student's "
      "(input) softened outputs.", _logits_pair, distillation,
      [Param("temperature", "float", 4.0, "Softening temperature T (at most 50: the T² factor multiplies float32 "
             "rounding, 1e-4 of the loss at 50, 6 % at 1000).", min=MIN_DISTILL_TEMPERATURE, max=MAX_DISTILL_TEMPERATURE)],
      ("temperature",))
_loss("GaussianKLLoss", "VAE term KL(N(μ, σ²) ‖ N(0, 1)) from μ and log σ², summed over the latent dims.",
      _gauss_shape, gaussian_kl, [Param("reduction", "choice", "sum", "Combine the latent dims: sum or mean.",
                                        choices=("mean", "sum"))], ("reduction",), inputs=("mu", "logvar"))
_loss("PenaltyLoss", "Any per-sample value as a loss term (e.g. Reparameterize's `kl` port).", _penalty_shape,
      penalty, [_REDUCTION], ("reduction",), inputs=("input",))


def _target_shape(p, ins):
    if p["source"] in ("ones", "zeros"):
        _float(ins[0], "like")
        return ins[0]
    return TensorType((p["size"],))


def _e_sized(e, fn, like, size: int, dtype=None, **kw):
    """``fn((like.size(0), size), dtype=like.dtype, device=like.device)`` (``dtype``: another dtype node)."""
    b = e.method("size", like, 0, as_="b")
    return e.fn(fn, (b, size), dtype=_e_dtype(e, like) if dtype is None else dtype,
                device=e.fn(getattr, like, "device", as_="device"), **kw)


def _e_float_dtype(e, x):
    """``(torch.float32, x.dtype)[x.is_floating_point()]``: a float dtype whatever ``x`` holds (token ids)."""
    is_float = e.method("is_floating_point", x, as_="is_float")
    return e.fn(op.getitem, (_torch().float32, _e_dtype(e, x)), is_float, as_="dtype")


def _target_emit(e, attr, p, ins, types):  # target_stand_in
    torch = _torch()
    if p["source"] in ("ones", "zeros"):
        return e.fn(torch.ones_like if p["source"] == "ones" else torch.zeros_like, ins[0])
    # float as its shape rule says, also when `like` holds token ids (int64 zeros reached a Softmax or a Linear)
    return _e_sized(e, torch.zeros, ins[0], p["size"], _e_float_dtype(e, ins[0]))


def _noise_emit(e, attr, p, ins, types):  # noise_stand_in: (the mean in eval mode, a draw in training)[training]
    torch, uniform = _torch(), p["distribution"] == "uniform"
    dtype = _e_float_dtype(e, ins[0])  # noise is float also when `like` holds token ids
    mean = _e_sized(e, torch.full, ins[0], p["size"], dtype, fill_value=0.5 if uniform else 0.0)
    draw = _e_sized(e, torch.rand if uniform else torch.randn, ins[0], p["size"], dtype)
    return e.fn(op.getitem, (mean, draw), e.attr("training", as_="mode"))


def _reparameterize_emit(e, attr, p, ins, types):  # reparameterize: (mu, z)[training]
    torch = _torch()
    mu, lv = ins
    std = e.fn(torch.exp, e.fn(op.mul, 0.5, lv, as_="std"), as_="std")
    z = e.fn(op.add, mu, e.fn(op.mul, std, e.fn(torch.randn_like, mu, as_="eps"), as_="z"), as_="z")
    return e.fn(op.getitem, (mu, z), e.attr("training", as_="mode"))


register(LayerSpec(
    "Target", CATEGORY, "What a loss compares with: the dataset's labels, the input, a teacher's outputs "
    "(fed per batch), or ones/zeros shaped like `like` (GAN real/fake labels). `like` only gives the batch size.",
    params=[Param("source", "choice", "labels", "labels, input, teacher (distillation), ones or zeros.",
                  choices=TARGET_SOURCES),
            Param("size", "int", 1, "Values per sample for labels/input/teacher: 1 for class ids, k for k regression "
                  "targets, the Input's flattened size for input, C for a teacher's logits.", min=1, max=MAX_SIZE)],
    shape=_target_shape, inputs=("like",), input_kind=ANY, emit=_target_emit, saves="none"))


def _noise_shape(p, ins):
    return TensorType((p["size"],))


register(LayerSpec(
    "Noise", CATEGORY, "Random input of a generator: Gaussian or uniform, drawn per batch (seeded, so resume is "
    "exact). `like` only gives the batch size.",
    params=[Param("size", "int", 16, "Noise values per sample (an Unflatten after it gives e.g. 16×1×1).", min=1,
                  max=MAX_SIZE),
            Param("distribution", "choice", "gaussian", "gaussian: N(0, 1); uniform: U(0, 1).",
                  choices=("gaussian", "uniform"))],
    shape=_noise_shape, inputs=("like",), input_kind=ANY, strides="fresh", saves="none", emit=_noise_emit))


register(LayerSpec(
    "Reparameterize", CATEGORY, "VAE sampling: z = μ + exp(½·log σ²)·ε while training, μ in eval mode (its KL term: "
    "a GaussianKLLoss on the same μ and log σ²).",
    inputs=("mu", "logvar"), shape=lambda p, ins: (_gauss_shape(p, ins), ins[0])[1],
    emit=_reparameterize_emit,
    cost=lambda p, ins, outs: Cost(work=ins[0].numel)))

register(LayerSpec(
    "Detach", CATEGORY, "Stop-gradient: passes values through, no gradient flows back.", shape=_same_float,
    emit=lambda e, attr, p, ins, types: e.method("detach", ins[0]), saves="none", grad=lambda p, ins: False))


__all__ = ["LOSS_TYPES", "MIN_DISTILL_TEMPERATURE", "MAX_DISTILL_TEMPERATURE", "LOSS_FUNCTIONS", "FED_TYPES", "TARGET_SOURCES", "FED_SOURCES", "cross_entropy", "bce_logits", "mse", "l1",
           "huber", "kl_div", "distillation", "gaussian_kl", "penalty", "reparameterize"]
