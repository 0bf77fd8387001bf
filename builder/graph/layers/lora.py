"""The LoRA layer spec: a Linear layer with a low-rank adapter, y = base(x) + (alpha / rank) · B(A(dropout(x))).

The node replaces the Linear it wraps (same id, same ``out_features`` and ``bias``), see
:func:`builder.graph.lora.add_lora`. Its module is an ``nn.ModuleDict`` named as PEFT names a LoRA layer's parts
(``base_layer``, ``lora_A``, ``lora_B``, ``lora_dropout``), so adapter weights convert to PEFT's files by name
alone; the base is frozen when built unless ``train_base`` (LoRA trains the adapter only), ``lora_B`` starts at
zero (the adapted layer starts equal to the base, as PEFT's does) and ``lora_A`` as PEFT's default (Kaiming
uniform with a = √5).
"""

from __future__ import annotations

import math
import operator

from builder.graph.layers._common import _float, _int, _torch
from builder.graph.spec import Cost, LayerSpec, Param, ShapeError, TensorType, register

PARTS = ("base_layer", "lora_A", "lora_B", "lora_dropout")


def _shape(p: dict, ins: list[TensorType]) -> TensorType:
    (t,) = ins
    _float(t)
    if not t.shape:
        raise ShapeError("expects at least one feature dimension")
    return TensorType((*t.shape[:-1], p["out_features"]))


def scaling(p: dict) -> float:
    """The adapter's scale alpha / rank.

    >>> scaling({"alpha": 16.0, "rank": 8})
    2.0
    """
    return float(p["alpha"]) / int(p["rank"])


def counts(p: dict, ins: list[TensorType] | None = None) -> tuple[int, int]:
    """(parameter values, buffer values): the base Linear's plus rank × (in + out) of the adapter.

    >>> counts({"out_features": 3, "bias": True, "rank": 2}, [TensorType((4,))])
    (29, 0)
    """
    n_in = ins[0].shape[-1] if ins else 0
    base = n_in * p["out_features"] + (p["out_features"] if p["bias"] else 0)
    return base + p["rank"] * (n_in + p["out_features"]), 0


def adapter_params(p: dict, in_features: int) -> int:
    """Values the adapter trains (the base's not counted)."""
    return int(p["rank"]) * (in_features + int(p["out_features"]))


def make_module(p: dict, ins: list[TensorType]):
    """``nn.ModuleDict(base_layer, lora_A, lora_B, lora_dropout)``; the base frozen unless ``train_base``."""
    torch = _torch()
    nn = torch.nn
    n_in = ins[0].shape[-1]
    m = nn.ModuleDict({"base_layer": nn.Linear(n_in, p["out_features"], bias=p["bias"]),
                       "lora_A": nn.Linear(n_in, p["rank"], bias=False),
                       "lora_B": nn.Linear(p["rank"], p["out_features"], bias=False),
                       "lora_dropout": nn.Dropout(p["dropout"]) if p["dropout"] > 0 else nn.Identity()})
    if m["lora_A"].weight.device.type != "meta":
        nn.init.kaiming_uniform_(m["lora_A"].weight, a=math.sqrt(5))
        nn.init.zeros_(m["lora_B"].weight)
    if not p["train_base"]:
        m["base_layer"].requires_grad_(False)
    return m


def _emit(e, attr, p, ins, types):
    x = ins[0]
    base = e.module(f"{attr}.base_layer", x, as_="base")
    low = e.module(f"{attr}.lora_B", e.module(f"{attr}.lora_A", e.module(f"{attr}.lora_dropout", x, as_="drop"),
                                              as_="down"), as_="up")  # (..., rank) -> (..., out)
    return e.fn(operator.add, base, e.fn(operator.mul, low, scaling(p), as_="scaled"))


def _export_init(name: str, p: dict, ins: list[TensorType]) -> list[str]:
    n_in, n_out = ins[0].shape[-1], p["out_features"]
    drop = f"nn.Dropout({p['dropout']!r})" if p["dropout"] > 0 else "nn.Identity()"
    lines = [f"self.{name} = nn.ModuleDict({{  # LoRA: base + {scaling(p)!r} * B(A(x)), rank {p['rank']}",
             f"    'base_layer': nn.Linear({n_in}, {n_out}{'' if p['bias'] else ', bias=False'}),",
             f"    'lora_A': nn.Linear({n_in}, {p['rank']}, bias=False),",
             f"    'lora_B': nn.Linear({p['rank']}, {n_out}, bias=False),",
             f"    'lora_dropout': {drop},",
             "})"]
    if not p["train_base"]:
        lines.append(f"self.{name}['base_layer'].requires_grad_(False)")
    return lines


def _cost(p: dict, ins: list[TensorType], outs: dict) -> Cost:
    """Kept for backward beside the input: A's output (rows × rank, for B) and, with dropout, the dropped input and
    its mask (a float tensor on CPU), each the input's size (measured with saved-tensor hooks: three inputs per
    sample with dropout and a trained base, where the estimate counted one)."""
    rows = math.prod(ins[0].shape[:-1])
    return Cost(work=rows * p["rank"] + (2 * ins[0].numel if p["dropout"] > 0 else 0))


def _macs(p: dict, ins: list[TensorType], outs: dict) -> int:
    rows = math.prod(ins[0].shape[:-1])
    return rows * (ins[0].shape[-1] * p["out_features"] + p["rank"] * (ins[0].shape[-1] + p["out_features"]))


LORA = register(LayerSpec(
    "LoRA", "Dense", "A Linear layer with a low-rank adapter (LoRA): the base weights stay fixed, only the rank-r "
    "matrices A and B train; output = base(x) + alpha/rank · B(A(x)).",
    params=[_int("out_features", 10, "Number of output features (the wrapped Linear's)."),
            Param("bias", "bool", True, "The wrapped Linear learns an additive bias."),
            _int("rank", 8, "Rank r of the adapter (A: in → r, B: r → out).", hi=4096),
            Param("alpha", "float", 16.0, "Scale numerator: the adapter's output is multiplied by alpha / rank.",
                  min=0.0, max=1e6),
            Param("dropout", "float", 0.0, "Dropout on the adapter's input while training.", min=0.0, max=0.99),
            Param("train_base", "bool", False, "Also train the wrapped Linear's weights (off: LoRA).")],
    shape=_shape, emit=_emit, export_init=_export_init, macs=_macs, make_module=make_module, counts=counts, cost=_cost,
    doc_url="https://arxiv.org/abs/2106.09685"))

__all__ = ["LORA", "PARTS", "scaling", "counts", "adapter_params", "make_module"]
