"""Tensor plumbing recognised as LayerLab layers (ONNX import): Clip → ReLU6/Clamp, HardSigmoid, PRelu → PReLU, single-axis
Squeeze/Unsqueeze, ``torch.chunk``-sized Split/SplitToSequence + SequenceAt → Chunk nodes (one per piece used),
and a constant concatenated on a tensor (a class token) → a Parameter node.
"""

from __future__ import annotations

import numpy as np

from builder.interchange.onnx_ops import Call
from builder.interchange.onnx_values import INTEGER_TYPES, Const, Pieces, RnnHalf, Sym, T


class TensorOps:
    """Mixin of :class:`~builder.interchange.onnx_import.OnnxImporter`: ``_op_<ONNX op>`` handlers."""

    def _op_HardSigmoid(self, n, ins, a):
        if abs(float(a.get("alpha", 0.2)) - 1 / 6) > 1e-6 or abs(float(a.get("beta", 0.5)) - 0.5) > 1e-6:
            return None
        return self._unary("Hardsigmoid")(n, ins, a)

    def _op_PRelu(self, n, ins, a):
        """PRelu with a learned slope: one shared, or one per channel (dim 1) → PReLU."""
        if len(ins) < 2 or not isinstance(ins[0], T) or not isinstance(ins[1], Const) or self.fixed(ins[1], n.input):
            return None  # a fixed slope (a buffer): an Op's constant (onnx_ops.generic)
        slope = np.asarray(ins[1].value, dtype=np.float32)
        shape = self.shape(n.input[0])
        per_channel = slope.size > 1
        if per_channel and not (shape and len(shape) > 1 and slope.size == shape[1]
                                and slope.shape[-(len(shape) - 1):][0] == slope.size):
            return None  # a slope laid out along another axis has no PReLU form
        return T(self.add(self.node_name(n), "PReLU", {"per_channel": per_channel, "init": 0.25}, [ins[0]],
                          {"weight": slope.reshape(-1)}))

    def _op_Clip(self, n, ins, a):
        """Clip(0, 6) → ReLU6; other constant bounds → Clamp."""
        def bound(k, name):
            v = ins[k] if len(ins) > k else None
            return float(v.value.reshape(-1)[0]) if isinstance(v, Const) and v.value.size == 1 else a.get(name)
        lo, hi = bound(1, "min"), bound(2, "max")
        if not isinstance(ins[0], T) or any(len(ins) > k and ins[k] is not None and not isinstance(ins[k], Const)
                                            for k in (1, 2)):
            return None
        if self.vtype.get(n.input[0]) in INTEGER_TYPES:  # ids (a Cast's clamp into its vocabulary): an Op
            return None
        if lo == 0.0 and hi == 6.0:
            return self._unary("ReLU6")(n, ins, a)
        return T(self.add(self.node_name(n), "Clamp", {"min": lo, "max": hi}, [ins[0]]))

    def _op_Squeeze(self, n, ins, a):
        axes = [int(v) for v in ins[1].value.reshape(-1)] if len(ins) > 1 and isinstance(ins[1], Const) \
            else a.get("axes")
        r = self.rank(n.input[0])
        if not isinstance(ins[0], T) or not axes or len(axes) != 1 or not r or axes[0] % r == 0:
            return None
        return T(self.add(self.node_name(n), "Squeeze", {"dim": axes[0] % r}, [ins[0]]))

    def _op_Unsqueeze(self, n, ins, a):
        axes = [int(v) for v in ins[1].value.reshape(-1)] if len(ins) > 1 and isinstance(ins[1], Const) \
            else a.get("axes")
        r = self.rank(n.input[0])
        if not isinstance(ins[0], T) or not axes or len(axes) != 1 or not r or axes[0] % (r + 1) == 0:
            return None
        return T(self.add(self.node_name(n), "Unsqueeze", {"dim": axes[0] % (r + 1)}, [ins[0]]))

    def _pieces(self, n, x, sizes: list[int] | None, axis: int) -> Pieces | None:
        """Split sizes that torch.chunk gives (ceil(size / chunks), the last smaller) → :class:`Pieces`."""
        s = self.shape(n.input[0])
        if not isinstance(x, T) or s is None or not sizes or any(d is None for d in s[1:]):
            return None
        dim = axis % len(s)
        if dim == 0 or s[dim] != sum(sizes):
            return None
        k = len(sizes)
        step = -(-s[dim] // k)
        want = [min(step, s[dim] - i * step) for i in range(k)]
        return Pieces(x, k, dim) if sizes == want and all(w > 0 for w in want) else None

    def _chunk(self, n, p: Pieces, index: int) -> T:
        return T(self.add(self.node_name(n), "Chunk", {"chunks": p.chunks, "dim": p.dim, "index": index % p.chunks},
                          [p.src]))

    def _op_SplitToSequence(self, n, ins, a):
        split = ins[1] if len(ins) > 1 else None
        s = self.shape(n.input[0])
        if not all(self.g.node[i].op_type == "SequenceAt" for i in self.consumers[n.output[0]]) or s is None \
                or not isinstance(split, Const) or not a.get("keepdims", 1):
            return None
        dim = int(a.get("axis", 0)) % len(s)
        v = [int(x) for x in split.value.reshape(-1)]
        if split.value.ndim == 0 and s[dim]:
            v = [min(v[0], s[dim] - i * v[0]) for i in range(-(-s[dim] // v[0]))]
        return self._pieces(n, ins[0], v, dim)

    def _op_SequenceAt(self, n, ins, a):
        if not isinstance(ins[0], Pieces) or not isinstance(ins[1], Const) or ins[1].value.size != 1:
            return None
        return self._chunk(n, ins[0], int(ins[1].value.reshape(-1)[0]))

    def _op_Split(self, n, ins, a):
        sizes = [int(x) for x in ins[1].value.reshape(-1)] if len(ins) > 1 and isinstance(ins[1], Const) else \
            a.get("split")
        s = self.shape(n.input[0])
        if sizes is None and s is not None and s[int(a.get("axis", 0)) % len(s)]:
            d = s[int(a.get("axis", 0)) % len(s)]
            sizes = [min(-(-d // len(n.output)), d - i * -(-d // len(n.output))) for i in range(len(n.output))]
        p = self._pieces(n, ins[0], [int(x) for x in sizes] if sizes else None, int(a.get("axis", 0)))
        if p is None:
            return None
        outs = [self._chunk(n, p, i) if o and self.consumers[o] else None for i, o in enumerate(n.output)]
        for o, r in zip(n.output, outs):
            if r is not None:
                self.vals[o] = r
        self.out.mapped["Split"] += 1
        return False

    def _half(self, n, h: RnnHalf) -> T:
        """One direction's final state of a bidirectional RNN (h[-2] or h[-1]): a Chunk of its ``h_n``."""
        return T(self.add(f"{h.node}.{h.which}", "Chunk", {"chunks": 2, "dim": 1, "index": int(h.which == "bwd")},
                          [T(h.node, "h_n")]))

    def learned(self, c: Const, near=(), made: frozenset[str] | None = None) -> bool:
        """Whether constant ``c`` is learned on the canvas (the one rule of the import): a float tensor made of an
        initializer the module held as a parameter. A buffer or a constant of the module's code (what the
        exporter recorded: :func:`~builder.interchange.onnx_read.parameter_initializers`) and a value computed
        from no float initializer stay fixed. ``near``: the ONNX names ``c`` may be the value of; what it was
        folded from (a gathered or transposed weight) is read through them; ``made``: what it was computed from,
        when the caller knows (:meth:`~builder.interchange.onnx_import.OnnxImporter.made_of`).

        Returns:
            True when fine-tuning may change the constant.
        """
        return bool(c.value.dtype.kind == "f" and c.value.ndim and self._made_of(c, near, made) & self.param_inits)

    def fixed(self, c: Const, near=()) -> bool:
        """Whether constant ``c`` is made of initializers none of which is a parameter (:meth:`learned`): a
        buffer is no layer's weight (a Linear or Conv learns its weight); a constant of no initializer (a weight
        some tools write as a Constant node) may still be one."""
        made = self._made_of(c, near)
        return bool(made) and not made & self.param_inits

    def any_fixed(self, n, *values) -> bool:
        """Whether any of a layer's ``values`` (its weight, its bias) is a fixed constant (:meth:`fixed`): the
        layer, which learns them all, is then an Op with that constant (a buffer as a Linear's or Conv's bias)."""
        return any(isinstance(v, Const) and self.fixed(v, n.input) for v in values)

    def _made_of(self, c: Const, near, made: frozenset[str] | None = None) -> frozenset[str]:
        """The initializers ``c`` was computed from (a parameter's own copy, ``g.weight = Identity(f.weight)``,
        by the initializer it copies)."""
        if made is None:
            names = [nm for nm in near if nm and self.vals.get(nm) is c]
            made = self.made_of(names) if names else frozenset({c.src} & self.inits.keys())
        made = set(made)
        while copies := {v for v in made if v not in self.inits and getattr(self.producer.get(v), "op_type", "")
                         == "Identity"}:
            made = made - copies | {self.producer[v].input[0] for v in copies}
        return frozenset(made)

    def _parameter(self, n, c: Const, like: T, made: frozenset[str] | None = None):
        """A constant concatenated on a tensor (a class token, batch 1 or the file's batch) → a Parameter node, or
        when it is fixed (a buffer, :meth:`learned`; ``made``: what it was computed from) an Op expanding it over
        the batch."""
        v = np.asarray(c.value)
        sb = getattr(self, "static_batch", None)
        if v.dtype.kind != "f" or v.ndim < 2 or v.shape[0] not in (1, sb) or not np.all(v == v[:1]):
            return c
        if not self.learned(c, [*n.output, *n.input] if n is not None else (), made):
            call = Call(self, n) if n is not None else None
            return c if call is None else call.node("expand", [call.arg(Const(v[:1])), [call.arg(Sym(1)),
                                                                                        *[-1] * (v.ndim - 1)]])
        base = (c.src or f"{self.node_name(n)}.token").removesuffix(".weight")
        return T(self.add(base, "Parameter", {"shape": [int(d) for d in v.shape[1:]], "init": "normal"}, [like],
                          {"weight": v[:1].reshape(1, -1).astype(np.float32)}, ports=["like"]))


__all__ = ["TensorOps"]
