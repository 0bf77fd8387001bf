"""Layer specs of the palette group Activation: element-wise activations, Softmax and LogSoftmax."""

from __future__ import annotations

from builder.graph.layers._common import (
    _check_dim,
    _float,
    _mod,
    _same_float,
)
from builder.graph.spec import LayerSpec, Param, register

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
        ("Tanh", [], "Hyperbolic tangent.")]
for _name, _params, _desc in _ACT:
    register(LayerSpec(_name, "Activation", _desc, params=_params, shape=_same_float, ctor=_mod(_name)))


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
                       shape=_dim_shape, ctor=_mod(_name)))
