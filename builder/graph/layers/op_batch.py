"""An ``Op`` call's arguments against the batch: what would tie the model to the batch sizes its analysis tried.

The shape rule of :mod:`builder.graph.layers.op` runs the call on meta tensors at batches of 2, 3 and 1. An argument
that depends on the batch passes there and fails, or computes something else, at another batch (training's last
short batch, a batch of 64, ONNX with a dynamic batch), so it is refused before the call runs:

* the batch size (``{"b": k}``) anywhere but first in a shape (``size``/``shape`` of ``aten.view``,
  ``aten.reshape``, ``aten.expand``, ``aten.zeros`` ...), where it is the batch's own size: ``aten.group_norm``
  with ``num_groups`` = the batch divides 6 channels at 1, 2 and 3 and fails at 4; ``aten.roll`` by the batch
  moves values by another amount at every batch size;
* slicing, selecting, splitting, rolling, flipping or mixing (softmax, cumsum) along the batch dimension (dim 0):
  ``aten.slice`` to 3 keeps all of a batch up to 3 and drops samples from 4 on (the layers refuse dim 0 alike);
* the batch read as a matrix's rows or a sequence's steps, where the output keeps the batch's size (so the shape
  rule passes): ``aten.tril`` or ``aten.triu`` of a (B, F) input, attention over (B, F) queries, an einsum that
  sums over the batch's subscript (``bi,ci->bi``): each sample's result depends on the others in its batch.

>>> from builder.graph.layers.op_call import resolve_call
>>> p = {"op": "aten.group_norm", "args": '[{"t": 0}, {"b": 1}]', "kwargs": "{}", "weights": "{}", "buffers": "{}"}
>>> fn, _, _, bound = resolve_call(p, 1)
>>> batch_problem(p, fn, bound, 2)  # doctest: +ELLIPSIS
'aten.group_norm: `num_groups` is the batch size ({"b": 1}), which ties the model to the batch sizes...'
"""

from __future__ import annotations

import json
from typing import Any

from builder.graph.layers.op_call import walk_call

#: Arguments that are a shape: their first size may be the batch's (``{"b": 1}``), the only place it means that.
SHAPE_ARGS = frozenset({"size", "shape", "sizes", "repeats"})
#: Operators that keep, drop, split, move or mix values along ``dim`` (or ``dims``) and keep the batch's size:
#: along the batch, a sample's result depends on the batch it is in (the layers refuse dim 0 alike).
ALONG_DIM = {"slice": "dim", "narrow": "dim", "select": "dim", "split": "dim", "split_with_sizes": "dim",
             "chunk": "dim", "unbind": "dim", "roll": "dims", "flip": "dims", "cumsum": "dim", "softmax": "dim",
             "_softmax": "dim", "log_softmax": "dim", "_log_softmax": "dim"}
#: Operators that read a tensor of fewer dimensions than this (the batch included) as one matrix or one sequence,
#: by the arguments that decide it, each on its own: the batch is then the matrix's rows (``aten.tril`` of a (B, F)
#: input keeps a sample's values up to its place in the batch) or the sequence's steps (attention over (B, F)
#: queries: each sample attends to the others in its batch; (B, F) keys and values beside (B, L, F) queries: each
#: sample's queries attend to every sample's key, broadcast over the batch). Recurrent calls need none: their last
#: state, (layers, batch, hidden), never keeps the batch first, so the shape rule refuses them.
BATCH_RANK = {"tril": (("self",), 3), "triu": (("self",), 3),
              "scaled_dot_product_attention": (("query", "key", "value"), 3)}
#: Arguments that must be the batch's own size (the kernel checks it against its input): the batch size there,
#: ``{"b": 1}``, is what the call needs at every batch.
BATCH_SIZED = {"native_group_norm": "N"}
_NO_END = 1 << 31  # a slice end at or beyond it keeps every sample of any batch LayerLab can hold
_BATCH = {"b": 1}


def _batch_leaves(v: Any) -> list:
    """The batch-size leaves (``{"b": k}``) anywhere in an argument."""
    found: list = []
    walk_call(v, lambda d: found.append(d) if set(d) == {"b"} else None)
    return found


def _default(fn, name: str) -> Any:
    arg = next((a for a in fn._schema.arguments if a.name == name), None)
    return arg.default_value if arg is not None and arg.has_default_value() else None


def _is_identity(name: str, bound: dict) -> bool:
    """Whether the call keeps every sample of any batch whole and in place: ``aten.slice`` with no bounds (which
    exports with a dynamic batch; ``aten.chunk`` of the batch into 1 does not: its ONNX file is fixed to one batch
    size, deep fuzzer), ``aten.narrow`` of dim 0 from 0 for the batch's size."""
    if name == "narrow":
        return bound.get("dim") == 0 and bound.get("start") == 0 and bound.get("length") == _BATCH
    return name == "slice" and bound.get("start") in (None, 0) and bound.get("step", 1) == 1 and \
        (bound.get("end") is None or (isinstance(bound["end"], int) and bound["end"] >= _NO_END))


def _mixing(p: dict, name: str, bound: dict, ranks: dict) -> str | None:
    """Why the call computes each sample with the others of its batch (rule; received; fix), None when it does not:
    an input read as one matrix or sequence (:data:`BATCH_RANK`), an einsum that sums over the batch or moves it.
    ``ranks``: the dimensions (batch included) of each argument that is a graph input."""
    fix = "Fix: give the input a dimension of its own for the rows or steps (a Reshape to (1, ...) per sample), or " \
          "use the layer that does this per sample"
    why = ("{op}: {what}, so a sample's result would depend on the others in its batch and on its place there (the "
           "last short batch in training, batch 1 in Try it give other results); received: {got}. {fix}")
    args, least = BATCH_RANK.get(name, ((), 0))
    if (arg := next((a for a in args if a in ranks and ranks[a] < least), None)) is not None:
        return why.format(op=p["op"], what=f"an input `{arg}` of fewer than {least} dimensions is read as one "
                          "matrix or one sequence whose rows or steps are the batch",
                          got=f"{arg} of {ranks[arg]} dimensions (the batch first)", fix=fix)
    if name == "einsum" and isinstance(bound.get("equation"), str) and isinstance(bound.get("tensors"), list):
        return _einsum_mixing(p, bound["equation"], bound["tensors"], why, fix)
    return None


def _einsum_mixing(p: dict, equation: str, tensors: list, why: str, fix: str) -> str | None:
    """An einsum keeps samples apart when every operand from the graph starts with one subscript (the batch's),
    which no constant operand has, appears nowhere else, and starts the output."""
    eq = equation.replace(" ", "")
    lhs, arrow, out = eq.partition("->")
    subs = [_subscripts(s) for s in lhs.split(",")]
    if len(subs) != len(tensors):
        return None  # torch refuses the call itself
    if not arrow:  # implicit output: the ellipsis, then the subscripts used once, in order
        letters = [x for s in subs for x in s if x != "..."]
        out_subs = ["..."] * any("..." in s for s in subs) + sorted(x for x in set(letters) if letters.count(x) == 1)
    else:
        out_subs = _subscripts(out)
    from_graph = [isinstance(t, dict) and set(t) == {"t"} for t in tensors]
    graph = [s for s, g in zip(subs, from_graph, strict=True) if g]
    if not graph:
        return None
    b = graph[0][0] if graph[0] else None
    # every other subscript (a constant's ellipsis broadcasts over the batch's: a fixed size there fails the shapes)
    others = [x for s, g in zip(subs, from_graph, strict=True) for x in (s[1:] if g else s)
              if not (x == "..." == b and not g)]
    if b is not None and all(s[:1] == [b] for s in graph) and out_subs[:1] == [b] and b not in others \
            and b not in out_subs[1:]:
        return None
    return why.format(op=p["op"], what="the equation sums over the batch's subscript, or moves it from first place",
                      got=f"equation={json.dumps(equation)[:60]} (each input from the graph starts with the batch)",
                      fix="Fix: start every input from the graph and the output with one subscript used nowhere "
                          "else (e.g. 'bi,bj->bij')")


def _subscripts(s: str) -> list[str]:
    """An einsum operand's subscripts: letters, and ``...`` as one."""
    out, i = [], 0
    while i < len(s):
        out.append("..." if s.startswith("...", i) else s[i])
        i += 3 if s.startswith("...", i) else 1
    return out


def batch_problem(p: dict, fn, bound: dict, rank: int | None, ranks: dict | None = None) -> str | None:
    """Why the call's arguments tie the model to one batch size, or make a sample's result depend on the others in
    its batch (rule; received; fix), None when they do not.

    ``bound``: the call's arguments by name; ``rank``: the dimensions of its ``self``/``input`` tensor input,
    batch included (None when that is no tensor input, whose dim 0 is no batch); ``ranks``: the same for every
    argument that is a graph input, by name.
    """
    name = fn._schema.name.split("::")[-1]
    if (why := _mixing(p, name, bound, ranks or {})) is not None:
        return why
    if rank is not None and _is_identity(name, bound):
        return None
    for arg, v in bound.items():
        leaves = _batch_leaves(v)
        if not leaves or (rank is not None and BATCH_SIZED.get(name) == arg and v == _BATCH):
            continue
        first_of_shape = arg in SHAPE_ARGS and isinstance(v, list) and v and isinstance(v[0], dict) and \
            set(v[0]) == {"b"} and len(leaves) == 1
        if not first_of_shape:
            return (f"{p['op']}: `{arg}` is the batch size ({json.dumps(leaves[0])}), which ties the model to the "
                    f"batch sizes its analysis tried: at another (the last short batch in training, a dynamic batch "
                    f"in ONNX) it fails or computes something else; received: {arg}={json.dumps(v)[:60]}. Fix: use "
                    "a fixed number (the batch size belongs only first in a shape: size/shape of aten.view, "
                    "aten.reshape, aten.expand, aten.zeros ...)")
    key = ALONG_DIM.get(name)
    if key is None or rank is None:
        return None
    dim = bound.get(key, _default(fn, key))
    dims = dim if isinstance(dim, list) else [dim]
    if name == "roll" and not dims:
        dims = [0]  # no dims: roll the flattened tensor, batch included
    if any(isinstance(d, int) and d in (0, -rank) for d in dims):
        return (f"{p['op']} works along the batch dimension, whose size changes from batch to batch (the last "
                f"short batch in training, batch 1 in Try it, a dynamic batch in ONNX), so a sample's result would "
                f"depend on the batch it is in and its place there; received: "
                f"{key}={json.dumps(dim)} on an input of {rank} dimensions (the batch first). Fix: apply it to "
                "another dimension (each sample is computed on its own)")
    return None


__all__ = ["ALONG_DIM", "BATCH_RANK", "SHAPE_ARGS", "BATCH_SIZED", "batch_problem"]
