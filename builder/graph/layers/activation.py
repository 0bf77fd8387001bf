"""Layer specs of the palette group Activation: element-wise activations (PReLU learns its slope), Softmax and
LogSoftmax."""

from __future__ import annotations

from builder.graph.layers._common import (
    _check_dim,
    _float,
    _mod,
    _same_float,
)
from builder.graph.spec import LayerSpec, Param, ShapeError, register

# ----------------------------------------------------------------------------------------- Activations

_ACT = [("ReLU", [], "max(0, x)."),
        ("LeakyReLU", [Param("negative_slope", "float", 0.01, "Slope for x < 0.", min=0.0, max=10.0)],
         "x for x > 0, negative_slope·x otherwise."),
        ("ELU", [Param("alpha", "float", 1.0, "Saturation value for negative inputs.", min=0.0, max=100.0)],
         "Exponential linear unit."),
        ("GELU", [Param("approximate", "choice", "none", "Exact or tanh approximation.", choices=("none", "tanh"))],
         "Gaussian error linear unit."),
        ("SiLU", [], "x·sigmoid(x) (swish)."),
        ("Sigmoid", [], "1 / (1 + e^-x)."),
        ("Tanh", [], "Hyperbolic tangent."),
        ("ReLU6", [], "min(max(0, x), 6)."),
        ("Hardtanh", [Param("min_val", "float", -1.0, "Lower bound.", min=-1e6, max=1e6),
                      Param("max_val", "float", 1.0, "Upper bound (above min_val).", min=-1e6, max=1e6)],
         "x clipped to [min_val, max_val]."),
        ("Hardsigmoid", [], "Piecewise-linear sigmoid: clip(x/6 + 1/2, 0, 1)."),
        ("Hardswish", [], "x·hardsigmoid(x) (MobileNetV3)."),
        ("Mish", [], "x·tanh(softplus(x))."),
        ("SELU", [], "Scaled ELU with fixed constants (self-normalising networks)."),
        ("CELU", [Param("alpha", "float", 1.0, "Saturation value for negative inputs (> 0).", min=1e-3, max=100.0)],
         "Continuously differentiable ELU."),
        ("Softplus", [Param("beta", "float", 1.0, "Sharpness: log(1 + e^(beta·x)) / beta.", min=1e-3, max=100.0),
                      Param("threshold", "float", 20.0, "Above beta·x > threshold the output is x (at most 80: "
                            "below it e^(beta·x) is computed, which overflows float32 past 88 and gives inf).",
                            min=0.0, max=80.0)],
         "Smooth ReLU: log(1 + e^(beta·x)) / beta."),
        ("Softsign", [], "x / (1 + |x|)."),
        ("Tanhshrink", [], "x − tanh(x).")]


_FROM_RESULT = ("ReLU", "Sigmoid", "Tanh")  # their gradients are computed from the output, not the input
#: composed of several autograd ops whose backward keeps the input and one more tensor of its size: Softsign's
#: x / (1 + |x|) keeps x and 1 + |x| (measured with saved-tensor hooks: twice the input)
_KEEPS_TWO = ("Softsign",)


def _hardtanh_check(p: dict) -> list[str]:
    if p["min_val"] < p["max_val"]:  # nn.Hardtanh asserts max_val > min_val
        return []
    return [f"`min_val` must be below `max_val`; received: min_val={p['min_val']:g}, max_val={p['max_val']:g}. Fix: "
            + ("swap them" if p["min_val"] > p["max_val"] else "lower min_val or raise max_val")]


for _name, _params, _desc in _ACT:
    register(LayerSpec(_name, "Activation", _desc, params=_params, ctor=_mod(_name), shape=_same_float,
                       check=_hardtanh_check if _name == "Hardtanh" else None,
                       saves="output" if _name in _FROM_RESULT else "both" if _name in _KEEPS_TWO else "input"))


def _prelu_shape(p, ins):
    (t,) = ins
    _float(t)
    if p["per_channel"] and not t.shape:
        raise ShapeError(f"one slope per channel needs a channel dimension; received: {t}. Fix: turn per_channel off")
    return t


register(LayerSpec(
    "PReLU", "Activation", "Leaky ReLU with a learned slope: one shared, or one per channel (dim 1).",
    params=[Param("per_channel", "bool", False, "Learn one slope per channel (dim 1) instead of one in all."),
            Param("init", "float", 0.25, "Initial slope.", min=0.0, max=10.0)],
    shape=_prelu_shape, inferred=("num_parameters",),
    ctor=lambda p, ins: ("PReLU", {"num_parameters": ins[0].shape[0] if p["per_channel"] else 1, "init": p["init"]})))


def _dim_shape(p, ins):
    (t,) = ins
    _float(t)
    _check_dim(p["dim"], len(t.shape))
    return t


for _name, _desc in (("Softmax", "Normalises to probabilities along `dim`."),
                     ("LogSoftmax", "log(softmax(x)) along `dim`.")):
    register(LayerSpec(_name, "Activation", _desc,
                       params=[Param("dim", "int", -1, "Dimension to normalise over (torch numbering: 0 is the batch).",
                                     min=-8, max=8)],
                       shape=_dim_shape, ctor=_mod(_name), saves="output"))
