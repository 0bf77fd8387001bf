"""ONNX graph → LayerLab graph + weights.

Two levels of mapping:

* operators (any exporter): Conv, Gemm, MatMul(+Add bias), BatchNormalization, LayerNormalization, pooling,
  activations, Add/Mul/Concat, Flatten/Reshape/Transpose, ReduceMean, Gather on a table (Embedding);
* modules (files written by ``torch.onnx.export(dynamo=True)``, which records each op's module scope):
  the ops of one ``nn.LSTM``/``GRU``/``RNN``, ``nn.MultiheadAttention`` or ``nn.TransformerEncoderLayer``
  become that one layer, with its weights read by their state-dict names.

Shape arithmetic (Shape/Gather/Unsqueeze/Concat/Constant/Cast/Slice chains) is folded with the batch size
kept symbolic, so a ``Reshape`` to ``[batch, -1]`` becomes a Flatten. Whatever does not map is collected per
operator and raised at once (:class:`UnsupportedOpsError`).
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from typing import Any

import numpy as np

from builder.graph.layers import sinusoid_table
from builder.interchange.errors import ModelImportError, Unsupported, UnsupportedOpsError
from builder.interchange.onnx_fold import (
    NoFold,
    as_f32,
    batch_shape,
    const_array,
    distinct_values,
    fold_op,
    fold_sequence,
    fold_size,
    slice_rows,
    text_of,
)
from builder.interchange.onnx_modules import ModuleGroups
from builder.interchange.onnx_norm_pool import NormPoolOps
from builder.interchange.onnx_ops import NO_TORCH, generic
from builder.interchange.onnx_read import node_attributes as _attrs
from builder.interchange.onnx_read import parameter_initializers, readable_name, to_array
from builder.interchange.onnx_rnn import (
    RNN_OPS,
    TIME_MAJOR_FIX,
    batch_axis,
    follow,
    rnn_op,
    special,
    time_major_shape,
    to_time_major,
    zero_state_nodes,
)
from builder.interchange.onnx_structure import (
    checked_layer,
    folded_batchnorm,
    folded_batchnorm_note,
    tie_shared,
)
from builder.interchange.onnx_tensor_ops import TensorOps
from builder.interchange.onnx_values import (
    MAX_FOLD_ELEMENTS,
    Built,
    Const,
    Pieces,
    RnnHalf,
    RnnStack,
    RnnState,
    Sym,
    SymArr,
    T,
)

_FIX_DEFAULT = "replace it in the source model with a supported layer (see docs/reference/import-matrix.md), or " \
               "remove it and rebuild that part on the canvas"
_FIXES: dict[str, str] = {}


#: ONNX element types an input may have (the canvas's Input: 0 unset and 1 float32 as floats, 6/7 token ids)
_INPUT_TYPES = (0, 1, 6, 7)
_VIEWS = frozenset({"Identity", "Reshape", "Unsqueeze", "Squeeze", "Flatten", "Transpose", "Slice"})
"""Folded ops whose result is a view of their input (numpy copies only a non-contiguous reshape: counted after)."""
_ELEM_NAMES = {2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 8: "string", 9: "boolean", 10: "float16",
               11: "float64", 12: "uint32", 13: "uint64", 14: "complex64", 15: "complex128", 16: "bfloat16"}
_MASK_FIX = ("a boolean input (a mask) is not imported as an input of its own: the canvas's token or sequence Input "
             "gives the padding mask (True = padding) on its padding_mask port. Export with the main input only, "
             "computing the mask inside the model (e.g. `ids == pad_id`), or rebuild the attention on the canvas "
             "and connect the Input's padding_mask port to it")


def _ident(text: str) -> str:
    s = re.sub(r"\W+", "_", text, flags=re.ASCII).strip("_")
    return (s or "node")[:120]


class OnnxImporter(ModuleGroups, TensorOps, NormPoolOps):
    """Map one ONNX ModelProto (already checked by :func:`read_onnx`) to nodes, edges and weights."""

    def __init__(self, model, name: str = "model"):
        import onnx  # lazy: heavy (onnx)

        self.name = name
        try:
            model = onnx.shape_inference.infer_shapes(model, strict_mode=False)
        except Exception:  # noqa: S110  shape inference is a help for ranks, not required
            model = model
        self.model = model
        self.g = model.graph
        self.vals: dict[str, Any] = {}
        self.inits = {t.name: t for t in self.g.initializer}
        self.param_inits = parameter_initializers(self.g)  # not its buffers or constants: what may be learned()
        self.weights = sum(math.prod(t.dims) for t in self.g.initializer)  # values the file holds (read_onnx: bounded)
        self.folded = 0  # values constant folding has computed so far: within fold_room (_fold_count)
        self.fold_room = 2 * self.weights + 8 * MAX_FOLD_ELEMENTS
        self.vshape: dict[str, list] = {}
        self.vparam: dict[str, list] = {}  # the exporter's names of sizes it left symbolic
        self.batch_param: str | None = None  # the first input's name for its batch size
        self.vtype: dict[str, int] = {}  # ONNX element types where the model states them (1 float, 7 int64, ...)
        for vi in [*self.g.value_info, *self.g.input, *self.g.output]:
            tt = vi.type.tensor_type
            if tt.elem_type:
                self.vtype[vi.name] = int(tt.elem_type)
            if tt.HasField("shape"):
                self.vshape[vi.name] = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
                self.vparam[vi.name] = [d.dim_param or None for d in tt.shape.dim]  # `batch`, `2*batch`...
        self.producer = {o: n for n in self.g.node for o in n.output if o}
        self.consumers: dict[str, list[int]] = defaultdict(list)
        for i, n in enumerate(self.g.node):
            for v in n.input:
                self.consumers[v].append(i)
        self.out = Built()
        self.unsupported: dict[str, list[str]] = defaultdict(list)
        self.fixes: dict[str, str] = {}
        self.ids: set[str] = set()
        self.pending_bias: dict[str, str] = {}  # value -> Linear node id without bias yet
        self.sigmoid_of: dict[str, tuple[str, str]] = {}  # sigmoid value -> (node id, input value)
        self.rnn_info: dict[str, dict] = {}
        self.vocab: dict[str, int] = {}
        self.zero_state = zero_state_nodes(self.g)  # RNN initial states that are all zeros: no nodes
        self.reads: frozenset[str] = frozenset()  # the constant values (by ONNX name) the op being mapped reads
        self.weight_reads: dict[str, set[str]] = {}  # node id -> the constant values its weights came from
        self.origin: dict[str, frozenset[str]] = {}  # folded value -> the initializers it was computed from
        # the classic exporter's merge of equal tensors: a tensor it computed (onnx::LSTM_213) read as another
        # computed one (a parameter's own name, g.weight = Identity(f.weight), stays a parameter of its own)
        self.alias = {n.output[0]: n.input[0] for n in self.g.node if n.op_type == "Identity" and n.input
                      and n.input[0] in self.inits and n.output and n.input[0].startswith("onnx::")
                      and n.output[0].startswith("onnx::")}

    # ------------------------------------------------------------------ helpers
    def made_of(self, names) -> frozenset[str]:
        """The constants (by ONNX name) values ``names`` are: an initializer itself, a value folded from
        initializers those initializers (a weight the exporter sliced and concatenated is still that weight)."""
        return frozenset().union(*(self.origin[v] if v in self.origin else {self.alias.get(v, v)} & self.inits.keys()
                                   for v in names if v and isinstance(self.value(v), Const)))

    def bad(self, op: str, where: str, fix: str | None = None) -> None:
        self.unsupported[op].append(where)
        if fix:
            self.fixes.setdefault(op, fix)

    def value(self, name: str):
        if name == "":
            return None
        if name in self.vals:
            return self.vals[name]
        if name in self.inits:
            v = Const(to_array(self.inits[name]), src=name)
            self.vals[name] = v
            return v
        return None

    def new_id(self, base: str) -> str:
        base = _ident(base)
        nid, i = base, 2
        while nid in self.ids:
            nid, i = f"{base}_{i}", i + 1
        self.ids.add(nid)
        return nid

    def add(self, base: str, type_: str, params: dict, inputs: list[T], weights: dict | None = None,
            ports: list[str | None] | None = None) -> str:
        nid = self.new_id(base)
        self.out.nodes.append({"id": nid, "type": type_, "params": params})
        for k, t in enumerate(inputs):
            e = {"source": t.node, "target": nid}
            if t.port:
                e["source_port"] = t.port
            tp = ports[k] if ports else None
            if tp:
                e["target_port"] = tp
            self.out.edges.append(e)
        if weights:
            self.out.weights[nid] = {k: np.ascontiguousarray(v) for k, v in weights.items()}
            self.weight_reads[nid] = set(self.reads)
        return nid

    def node_name(self, n) -> str:
        return readable_name(n)  # the module that made it, else its operator (builder.interchange.onnx_read)

    def rank(self, name: str) -> int | None:
        s = self.vshape.get(name)
        return len(s) if s is not None else None

    def shape(self, name: str) -> list | None:
        return self.vshape.get(name)

    # ------------------------------------------------------------------ run
    def run(self) -> Built:
        self._inputs()
        groups, order = self._schedule()
        for item in order:
            if isinstance(item, str):
                self._group(item, groups[item])
            else:
                self._node(self.g.node[item])
        self._outputs()
        if self.unsupported:
            raise UnsupportedOpsError([Unsupported(op, tuple(dict.fromkeys(nodes)),
                                                   self.fixes.get(op) or _FIXES.get(op, _FIX_DEFAULT))
                                       for op, nodes in self.unsupported.items()])
        self._prune()
        tie_shared(self.out, self.weight_reads)
        kept = {n["id"] for n in self.out.nodes}
        self.out.folded_batchnorm = {k: v for k, v in self.out.folded_batchnorm.items() if k in kept}
        if self.out.folded_batchnorm:
            self.out.notes.append(folded_batchnorm_note(self.out.folded_batchnorm))
        return self.out

    def _inputs(self) -> None:
        token_inputs = set()
        for i in self.g.input:
            if i.name in self.inits:
                continue
            tt = i.type.tensor_type
            dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
            if not dims:
                self.bad("scalar input", i.name, "give the model a batch dimension")
                continue
            rest = dims[1:]
            self.batch_param = self.batch_param or tt.shape.dim[0].dim_param or None
            self.static_batch = dims[0] if dims[0] and dims[0] > 1 else None  # Reshape([2, -1]) at batch 2
            self.export_batch = dims[0] or None  # the file's fixed batch, 1 included (Reshape([1, 64]) at batch 1)
            if any(d is None or d < 1 for d in rest):
                self.bad("dynamic input size", i.name, "export with fixed sizes for every dimension but the "
                         "batch (LayerLab checks shapes at build time)")
                continue
            if tt.elem_type not in _INPUT_TYPES:  # what the canvas's Input holds: floats, or int token ids
                kind = _ELEM_NAMES.get(tt.elem_type, f"element type {tt.elem_type}")
                self.bad(f"{kind} input", i.name, _MASK_FIX if tt.elem_type == 9 else
                         "export with float32 inputs (model.float() and a float32 example input) or int64 token ids")
                continue
            nid = self.new_id(i.name)
            params: dict = {"shape": [int(d) for d in rest]}
            if tt.elem_type in (6, 7):  # int32 / int64 ids
                params.update(modality="tokens")
                token_inputs.add(nid)
            self.out.nodes.append({"id": nid, "type": "Input", "params": params})
            self.vals[i.name] = T(nid)
        self.token_inputs = token_inputs

    def _outputs(self) -> None:
        """Every output of the file, in order, as a canvas node paired with its name as mapped (a Parameter too)."""
        pairs: list[tuple[str, T]] = []
        inputs = self.token_inputs | {n["id"] for n in self.out.nodes if n["type"] == "Input"}
        first = next((T(nd["id"]) for nd in self.out.nodes if nd["type"] == "Input"), None)
        for o in self.g.output:
            v = self.vals.get(o.name)
            if isinstance(v, T) and v.node in inputs:
                v = T(self.add(o.name, "Identity", {}, [v]))  # a pass-through model keeps an output node
            if isinstance(v, Const) and v.src in self.inits and first is not None and o.name in self.producer:
                self.reads = self.made_of([o.name])  # what its weights are (tie_shared), not the last op's reads
                v = self._parameter(self.producer[o.name], v, first)  # a learned tensor returned: a Parameter node
            if isinstance(v, T):
                pairs.append((o.name, v))
            elif (isinstance(v, Const) or o.name in self.inits) and not any(self.unsupported.values()):
                self.bad("stored tensor returned as an output", o.name, "a LayerLab graph's outputs carry the "
                         "batch: return it expanded over the batch (e.g. self.b.expand(x.shape[0], -1), saved as "
                         ".pt2 or with torch.onnx.export(..., dynamo=True)), or leave it out of the outputs")
            elif not any(self.unsupported.values()):
                self.bad("non-tensor output", o.name, "make the model return tensors computed from its inputs")
        fed = {e["source"] for e in self.out.edges}
        pos = {nd["id"]: i for i, nd in enumerate(self.out.nodes)}
        order = [pos[v.node] for _, v in pairs]
        if len(pairs) > 1 and (any(v.node in fed or v.port for _, v in pairs) or order != sorted(set(order))):
            # an output that also feeds other layers (a VAE's mu), a port, or outputs out of file order: Output
            # nodes, added in the file's output order (a graph's outputs are its sinks in node order)
            pairs = [(name, T(self.add(name, "Output", {}, [v]))) for name, v in pairs]
        self.outputs = [v.node for _, v in pairs]

    def _learned_node(self, n) -> None:
        """A learned tensor the file returns and also computes with (a Parameter node that is an output and feeds a
        layer), or expands over the batch for more than one operator (a Parameter node feeding two), becomes its
        Parameter node as soon as it is folded, so the operators after it read that node: one set of weights.
        Before, each operator stored a copy of the weights (the parameter count doubled, training untied them)
        and the Parameter node of a returned one was made in :meth:`_outputs`, after them."""
        first = next((T(nd["id"]) for nd in self.out.nodes if nd["type"] == "Input"), None)
        returned = {o.name for o in self.g.output}
        for o in n.output:
            v, users = self.vals.get(o), set(self.consumers.get(o, ()))
            if not (isinstance(v, Const) and v.src in self.inits and first is not None and users) or \
                    not (o in returned or (n.op_type == "Expand" and len(users) > 1)):
                continue
            self.reads = self.made_of([o])  # what its weights are (tie_shared)
            if isinstance(t := self._parameter(n, v, first), T):
                self.vals[o] = t

    def _prune(self) -> None:
        """Drop nodes that do not lead to an output (e.g. the unused state of an LSTM)."""
        keep = set(self.outputs)
        preds = defaultdict(list)
        for e in self.out.edges:
            preds[e["target"]].append(e["source"])
        stack = list(keep)
        while stack:
            for p in preds[stack.pop()]:
                if p not in keep:
                    keep.add(p)
                    stack.append(p)
        keep |= {n["id"] for n in self.out.nodes if n["type"] == "Input"}
        self.out.nodes = [n for n in self.out.nodes if n["id"] in keep]
        self.out.edges = [e for e in self.out.edges if e["source"] in keep and e["target"] in keep]
        self.out.weights = {k: v for k, v in self.out.weights.items() if k in keep}
        for n in self.out.nodes:
            if n["type"] == "Input" and n["params"].get("modality") == "tokens":
                vocab = self.vocab.get(n["id"])
                if vocab is None:
                    self.bad("integer input", n["id"], "integer inputs must feed an Embedding (Gather on a table)")
                    raise UnsupportedOpsError([Unsupported("integer input", (n["id"],),
                                                           "integer inputs must feed an Embedding")])
                n["params"]["vocab_size"] = int(vocab)

    # ------------------------------------------------------------------ folding
    def _fold(self, n) -> bool:
        """Evaluate ``n`` when every input is known (constants, symbolic shapes); True when folded. A folded
        value remembers the initializers it was computed from (what a layer's weights are made of)."""
        if not self._fold_value(n):
            return False
        made_of = frozenset().union(*(self.origin.get(v, frozenset({v} & self.inits.keys())) for v in n.input if v))
        if n.op_type == "Identity" and n.output[0] not in self.alias and made_of:
            made_of = frozenset(n.output[:1])  # g.weight = Identity(f.weight): a parameter of its own, equal values
        self.origin.update((o, made_of) for o in n.output if o)
        return True

    def _fold_check(self, n, size: int, largest: int) -> None:
        """Refuse a folded constant that outgrows its inputs: more than :data:`MAX_FOLD_ELEMENTS` values and more
        than its largest input (a broadcast, a Gather, an Expand of a few-byte file). Checked before anything is
        computed wherever :func:`fold_size` can tell the size, else on the result."""
        if size > max(MAX_FOLD_ELEMENTS, largest):
            raise ModelImportError(f"node {n.name or n.op_type}: a constant would hold {size:,} values, more than "
                                   f"its inputs ({largest:,}); received: op {n.op_type}. Fix: import models whose "
                                   f"computed constants stay below {MAX_FOLD_ELEMENTS:,} values or their inputs' size")

    def _fold_count(self, n, value: np.ndarray) -> None:
        """Add what folding ``n`` allocated (a view of a weight, its transpose or a slice, allocates nothing) and
        refuse once folding holds more than twice the model's own weights: each constant is no larger than its
        inputs (:meth:`_fold_check`), a thousand copies of a weight are."""
        if not value.flags.owndata:
            return
        self.folded += value.size
        self._fold_room_check(n, self.folded)

    def _fold_room_check(self, n, total: int) -> None:
        """Refuse constant folding that would hold ``total`` values in all, over twice the model's weights."""
        if total > self.fold_room:
            raise ModelImportError(f"node {n.name or n.op_type}: constant folding would hold {total:,} values "
                                   f"in all; received: op {n.op_type}, a model of {self.weights:,} weight values. "
                                   f"Fix: import models whose computed constants stay within twice their weights")

    def _fold_value(self, n) -> bool:
        op = n.op_type
        ins = [self.value(v) for v in n.input]
        a = _attrs(n)
        if op == "Constant":
            if "value" in a:
                self.vals[n.output[0]] = Const(to_array(a["value"]))
            elif "value_ints" in a:
                self.vals[n.output[0]] = Const(np.array(a["value_ints"], dtype=np.int64))
            elif "value_int" in a:
                self.vals[n.output[0]] = Const(np.array(a["value_int"], dtype=np.int64))
            elif "value_float" in a:
                self.vals[n.output[0]] = Const(np.array(a["value_float"], dtype=np.float32))
            elif "value_floats" in a:
                self.vals[n.output[0]] = Const(np.array(a["value_floats"], dtype=np.float32))
            else:
                return False
            return True
        if op == "Shape" and (isinstance(ins[0], T | Const) or special(ins[0]) or batch_shape(self, n.input[0])):
            if special(ins[0]):  # time-major values: the batch is dimension batch_axis
                s, b = self.shape(n.input[0]), batch_axis(ins[0])
                if s is None or any(d is None for i, d in enumerate(s) if i != b):
                    s = time_major_shape(self, ins[0])  # shape inference lost it (stacked layers): rebuilt
                if s is None or any(d is None for i, d in enumerate(s) if i != b):
                    return False
                full = [Sym(1) if i == b else d for i, d in enumerate(s)]
            elif isinstance(ins[0], Const):
                full = list(ins[0].value.shape)
            elif (full := batch_shape(self, n.input[0])) is None:
                return False
            start, end = a.get("start", 0), a.get("end", len(full))
            self.vals[n.output[0]] = const_array(full[start:end])
            return True
        if op == "Split" and isinstance(ins[0], Const) and all(v is None or isinstance(v, Const) for v in ins[1:]):
            v, axis = ins[0].value, int(a.get("axis", 0))
            sizes = [int(x) for x in ins[1].value.reshape(-1)] if len(ins) > 1 and ins[1] is not None else \
                a.get("split") or [-(-v.shape[axis] // len(n.output))] * len(n.output)
            parts = np.split(v, np.cumsum(sizes)[:-1], axis=axis)
            for o, part in zip(n.output, parts):
                self.vals[o] = Const(part)
            return True
        if (seq := fold_sequence(op, ins, a)) is not None:  # torch.split of a weight (in_proj into q and kv)
            self.vals[n.output[0]] = seq
            return True
        if op == "CastLike" and isinstance(ins[0], Const):
            like = ins[1].value.dtype if isinstance(ins[1], Const) else np.float32
            self.vals[n.output[0]] = Const(ins[0].value.astype(like), src=ins[0].src)
            self._fold_count(n, self.vals[n.output[0]].value)
            return True
        if any(v is not None and not isinstance(v, Const | SymArr | Sym) for v in ins):
            return False
        if any(v is None for v, name in zip(ins, n.input) if name):
            return False
        consts = [v.value for v in ins if isinstance(v, Const)]
        # what the result may hold: its largest input, or for a Concat its distinct inputs together (q, k and v
        # weights side by side; one range, or views of one weight under other names, concatenated 2,000 times is
        # still one range's worth)
        largest = distinct_values(consts) if op == "Concat" else max((c.size for c in consts), default=0)
        size = fold_size(op, ins, a)  # checked before anything is computed
        if size is not None:
            self._fold_check(n, size, largest)
            if op not in _VIEWS:  # it allocates: the total is refused before, not after
                self._fold_room_check(n, self.folded + size)
        try:
            res = fold_op(op, ins, a)
        except (ValueError, TypeError, IndexError, OverflowError, NoFold):
            return False
        if res is None:
            return False
        if isinstance(res, Const):
            self._fold_check(n, res.value.size, largest)
            if not any(res.value is c for c in consts):  # Identity, a Cast to its own type: the input itself
                self._fold_count(n, res.value)
        if isinstance(res, Const) and isinstance(ins[0], Const) and ins[0].src and op == "Slice":
            res.src, res.rows = ins[0].src, slice_rows(ins, ins[0].value, res.value)
        if isinstance(res, Const) and isinstance(ins[0], Const) and (
                op in ("Identity", "Cast") or op in ("Reshape", "Unsqueeze", "Squeeze")
                and res.value.size == ins[0].value.size):  # a learned vector viewed (C, 1, 1) stays learned
            res.src = ins[0].src
        if isinstance(res, Const) and op == "Transpose" and isinstance(ins[0], Const) and ins[0].src:
            res.src = ins[0].src + ".T"
        self.vals[n.output[0]] = res
        return True

    # ------------------------------------------------------------------ single ops
    def _node(self, n) -> None:
        if self._fold(n):
            self._learned_node(n)
            return
        op = n.op_type
        handler = getattr(self, f"_op_{op}", None)
        where = n.name or (n.output[0] if n.output else op)
        ins = [self.value(v) for v in n.input]
        if n.output and n.output[0] in self.zero_state:
            return
        if any(v is None for v, name in zip(ins, n.input) if name and name not in self.zero_state):
            return  # an input is already unsupported; that op is reported
        self.reads = self.made_of(n.input)
        if op in RNN_OPS or any(special(v) for v in ins) or to_time_major(self, n, ins, _attrs(n)) is not None:
            res = rnn_op(self, n, ins, _attrs(n)) if op in RNN_OPS else \
                to_time_major(self, n, ins, _attrs(n)) or follow(self, n, ins, _attrs(n))
            if res is None:
                self.bad(op, where, TIME_MAJOR_FIX)
            if res is None or res is False:
                return
            for o, r in zip(n.output, res if isinstance(res, list) else [res]):
                self.vals[o] = r
            return
        if any(isinstance(v, RnnHalf) for v in ins) and not (op == "Concat" and all(isinstance(v, RnnHalf) for v in ins)):
            ins = [self._half(n, v) if isinstance(v, RnnHalf) else v for v in ins]  # h[-1] of a bidirectional RNN
        stack = op == "Concat" and all(isinstance(v, RnnState) for v in ins)  # stacked layers' states
        if any(isinstance(v, RnnState | RnnStack | Pieces) for v in ins) and op not in ("Gather", "SequenceAt") \
                and not stack:
            self.bad(op, where, "use the recurrent layer's last hidden state (h[-1]) or its output sequence")
            return
        res = checked_layer(self, handler, n, ins, _attrs(n))  # None also when the layer refuses its parameters
        if res is None:  # no layer fits: a generic Op node (onnx_ops), or a refusal naming the node
            res = generic(self, n, ins, _attrs(n))
            if res is None:
                self.bad(op, where, _FIXES.get(op, NO_TORCH))
            if res is None or res is False:
                return
            for o, r in zip(n.output, res if isinstance(res, list) else [res]):
                self.vals[o] = r
            return
        if res is False:
            return
        self.vals[n.output[0]] = res
        self.out.mapped[op] += 1

    def _unary(self, type_, params=None):
        def h(n, ins, a):
            if not isinstance(ins[0], T):
                return None
            return T(self.add(self.node_name(n), type_, params(a) if callable(params) else dict(params or {}),
                              [ins[0]]))
        return h

    def __getattr__(self, name: str):
        simple = {"_op_Relu": ("ReLU", None), "_op_Sigmoid": ("Sigmoid", None), "_op_Tanh": ("Tanh", None),
                  "_op_LeakyRelu": ("LeakyReLU", lambda a: {"negative_slope": as_f32(a.get("alpha", 0.01))}),
                  "_op_Elu": ("ELU", lambda a: {"alpha": as_f32(a.get("alpha", 1.0))}),
                  "_op_Gelu": ("GELU", lambda a: {"approximate": text_of(a.get("approximate", "none"))}),
                  "_op_HardSwish": ("Hardswish", None), "_op_Mish": ("Mish", None), "_op_Selu": ("SELU", None)}
        if name in simple:
            return self._unary(*simple[name])
        if name in ("_op_Softmax", "_op_LogSoftmax"):
            return self._softmax(name.removeprefix("_op_"))
        raise AttributeError(name)

    def _softmax(self, type_: str):
        """Softmax/LogSoftmax over a sample's axis; over the batch axis (an Op node's ``softmax(x, 0)``) the layer
        refuses it (dim 0 is the batch), so a generic Op node keeps it."""
        def h(n, ins, a):
            axis, rank = int(a.get("axis", -1)), self.rank(n.input[0])
            if rank is not None and axis % rank == 0:
                return None
            return self._unary(type_, {"dim": axis})(n, ins, a)
        return h

    def _op_Sigmoid(self, n, ins, a):
        res = self._unary("Sigmoid")(n, ins, a)
        if isinstance(res, T):
            self.sigmoid_of[n.output[0]] = (res.node, n.input[0])
        return res

    def _op_Identity(self, n, ins, a):
        return ins[0] if isinstance(ins[0], T) else None

    _op_Dropout = _op_Identity

    def _op_Gemm(self, n, ins, a):
        x, w = ins[0], ins[1]
        b = ins[2] if len(ins) > 2 else None
        if not (isinstance(x, T) and isinstance(w, Const) and not self.any_fixed(n, w, b)) or a.get("transA", 0) or \
                a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0 or (b is not None and not isinstance(b, Const)):
            return None
        W = w.value if a.get("transB", 0) else w.value.T
        weights = {"weight": W}
        if b is not None:
            weights["bias"] = np.broadcast_to(b.value, (W.shape[0],)).astype(W.dtype)
        nid = self.add(self._folded_name(n, w), "Linear", {"out_features": int(W.shape[0]), "bias": b is not None},
                       [x], weights)
        self._note_folded(n, nid, w)
        return T(nid)

    def _op_MatMul(self, n, ins, a):
        x, w = ins
        if not (isinstance(x, T) and isinstance(w, Const) and w.value.ndim == 2 and not self.fixed(w, n.input)):
            return None  # a fixed matrix (a buffer) is an Op's constant, not a Linear's weight
        nid = self.add(self.node_name(n), "Linear", {"out_features": int(w.value.shape[1]), "bias": False}, [x],
                       {"weight": w.value.T})
        if len(self.consumers[n.output[0]]) == 1:
            self.pending_bias[n.output[0]] = nid
        return T(nid)

    def _op_Add(self, n, ins, a):
        x, y = ins
        if isinstance(y, T) and isinstance(x, Const):
            x, y = y, x
            src_first = n.input[1]
        else:
            src_first = n.input[0]
        if isinstance(x, T) and isinstance(y, T):
            return T(self.add(self.node_name(n), "Add", {}, [x, y], ports=["0", "1"]))
        if isinstance(x, T) and isinstance(y, Const):
            nid = self.pending_bias.pop(src_first, None)
            if nid is not None and y.value.ndim == 1 and not self.fixed(y, n.input):  # a fixed bias: an Op's
                node = next(nd for nd in self.out.nodes if nd["id"] == nid)
                if y.value.shape[0] == node["params"]["out_features"]:
                    node["params"]["bias"] = True
                    self.out.weights[nid]["bias"] = np.ascontiguousarray(y.value)
                    self.weight_reads.setdefault(nid, set()).update(self.reads)
                    return x
            return self._positional(n, x, y)
        return None

    def _positional(self, n, x: T, table: Const):
        """``x + table[:T]`` → PositionalEncoding (learned table or fixed sinusoids)."""
        s = self.shape(n.input[0] if isinstance(self.value(n.input[0]), T) else n.input[1])
        v = table.value
        if v.ndim != 2 or s is None or len(s) != 3 or s[1] != v.shape[0] or s[2] != v.shape[1]:
            return None
        full, max_len = v, v.shape[0]
        if table.src and table.src in self.inits:
            full = to_array(self.inits[table.src])
            if full.ndim != 2 or full.shape[1] != v.shape[1] or not np.array_equal(full[:v.shape[0]], v):
                full = v
            max_len = full.shape[0]

        base = (table.src or self.node_name(n)).removesuffix(".weight")
        if v.shape[1] % 2 == 0 and np.allclose(full, sinusoid_table(max_len, v.shape[1]).numpy(), atol=1e-6):
            return T(self.add(base, "PositionalEncoding", {"kind": "sinusoidal", "max_len": int(max_len)}, [x],
                              {"": full}))
        if not self.learned(table, n.input):  # a fixed table (a causal mask, a buffer): an Op adding a constant
            return None
        return T(self.add(base, "PositionalEncoding", {"kind": "learned", "max_len": int(max_len)}, [x],
                          {"weight": full}))

    def _op_Mul(self, n, ins, a):
        x, y = ins
        if isinstance(x, T) and isinstance(y, T):
            for sv, other in ((n.input[1], n.input[0]), (n.input[0], n.input[1])):
                hit = self.sigmoid_of.get(sv)
                if hit and hit[1] == other and len(self.consumers[sv]) == 1:
                    node = next(nd for nd in self.out.nodes if nd["id"] == hit[0])
                    node["type"] = "SiLU"
                    return T(hit[0])
            return T(self.add(self.node_name(n), "Multiply", {}, [x, y], ports=["0", "1"]))
        return None

    def _op_Conv(self, n, ins, a):
        x, w = ins[0], ins[1]
        b = ins[2] if len(ins) > 2 else None
        if not (isinstance(x, T) and isinstance(w, Const) and not self.any_fixed(n, w, b)) or \
                text_of(a.get("auto_pad", "NOTSET")) not in ("NOTSET", "VALID"):
            return None
        W = w.value
        dims = W.ndim - 2
        if b is not None and b.src is None and not np.any(b.value):
            b = None  # the exporter's explicit zero bias of a bias=False convolution
        pads = list(a.get("pads", [0] * 2 * dims))
        if pads[:dims] != pads[dims:] or dims not in (1, 2):
            return None  # a generic Op node
        ks, st, dl = list(W.shape[2:]), list(a.get("strides", [1] * dims)), list(a.get("dilations", [1] * dims))
        one = (lambda v: int(v[0])) if dims == 1 else (lambda v: int(v[0]) if v[0] == v[1] else [int(i) for i in v])
        weights = {"weight": W}
        if b is not None:
            weights["bias"] = b.value
        nid = self.add(self._folded_name(n, w), f"Conv{dims}d",
                       {"out_channels": int(W.shape[0]), "kernel_size": one(ks), "stride": one(st),
                        "padding": one(pads[:dims]), "dilation": one(dl), "bias": b is not None,
                        "groups": int(a.get("group", 1))}, [x], weights)
        self._note_folded(n, nid, w)
        return T(nid)

    def _folded_name(self, n, weight: Const) -> str:
        """The layer's name; one with a BatchNorm folded in (dynamo) by its own weight's name (``conv.weight``)."""
        src = weight.src or ""
        if src.endswith(".weight") and folded_batchnorm(n, weight) == "dynamo":
            return src.removesuffix(".weight")
        return self.node_name(n)

    def _note_folded(self, n, nid: str, weight: Const) -> None:
        """Remember a layer into which the exporter folded a BatchNorm (reported in one note)."""
        if how := folded_batchnorm(n, weight):
            self.out.folded_batchnorm[nid] = how

    def _op_ConvTranspose(self, n, ins, a):
        x, w = ins[0], ins[1]
        b = ins[2] if len(ins) > 2 else None
        if not (isinstance(x, T) and isinstance(w, Const) and not self.any_fixed(n, w, b)) or w.value.ndim != 4 \
                or a.get("group", 1) != 1 or "output_shape" in a:  # a fixed kernel or bias (a buffer): an Op's constant
            return None
        W = w.value
        pads = list(a.get("pads", [0, 0, 0, 0]))
        if pads[:2] != pads[2:]:
            return None
        p2 = lambda v: int(v[0]) if v[0] == v[1] else [int(i) for i in v]  # noqa: E731
        weights = {"weight": W, **({"bias": b.value} if b is not None else {})}
        nid = self.add(self._folded_name(n, w), "ConvTranspose2d",
                       {"out_channels": int(W.shape[1]), "kernel_size": p2(W.shape[2:]),
                        "stride": p2(a.get("strides", [1, 1])), "padding": p2(pads[:2]),
                        "output_padding": p2(a.get("output_padding", [0, 0])),
                        "dilation": p2(a.get("dilations", [1, 1])), "bias": b is not None}, [x], weights)
        self._note_folded(n, nid, w)
        return T(nid)

    def _op_Flatten(self, n, ins, a):
        if not isinstance(ins[0], T) or a.get("axis", 1) != 1:
            return None
        return T(self.add(self.node_name(n), "Flatten", {}, [ins[0]]))

    def _op_Reshape(self, n, ins, a):
        x, shape = ins
        s_in = self.shape(n.input[0])
        if not isinstance(x, T) or s_in is None or any(d is None for d in s_in[1:]):
            return None
        items = list(shape.items) if isinstance(shape, SymArr) else \
            [int(v) for v in shape.value.reshape(-1)] if isinstance(shape, Const) else None
        if not items:
            return None
        first, rest = items[0], items[1:]
        batch = getattr(self, "export_batch", None)
        fixed = batch is not None and first == batch and s_in[0] == batch  # a file exported at one batch size
        if not (first == Sym(1) or first == 0 or (first == -1 and -1 not in rest) or fixed):
            return None
        if any(isinstance(v, Sym) for v in rest):
            return None
        rest = [int(s_in[i + 1]) if v == 0 and not a.get("allowzero", 0) else int(v) for i, v in enumerate(rest)]
        numel = math.prod(s_in[1:])
        if first == -1:
            rest = [numel // max(1, math.prod(v for v in rest if v != -1))] if -1 in rest else rest
        if fixed and -1 not in rest and math.prod(rest) != numel:
            return None  # the constant leading size is not the batch: the sample's values do not stay together
        if rest in ([-1], [numel]):
            return T(self.add(self.node_name(n), "Flatten", {}, [x]))
        if list(s_in[1:]) == rest:
            return x
        return T(self.add(self.node_name(n), "Reshape", {"shape": rest}, [x]))

    def _op_Transpose(self, n, ins, a):
        perm = [int(p) for p in a.get("perm", [])]
        if not isinstance(ins[0], T) or not perm or perm[0] != 0:
            return None
        if perm == list(range(len(perm))):
            return ins[0]
        return T(self.add(self.node_name(n), "Permute", {"dims": perm}, [ins[0]]))

    def _op_Concat(self, n, ins, a):
        axis = int(a.get("axis", 0))
        if len(ins) == 2 and all(isinstance(v, RnnHalf) for v in ins) and ins[0].node == ins[1].node \
                and [v.which for v in ins] == ["fwd", "bwd"] and axis in (-1, 1):
            return T(ins[0].node, "h_n")
        if all(isinstance(v, RnnState) for v in ins) and axis == 0 and len({v.cell for v in ins}) == 1:
            return RnnStack(tuple(ins))  # read by a Gather of one layer's state below
        if axis != 0 and any(isinstance(v, T) for v in ins) and any(isinstance(v, Const) for v in ins):
            ins = [self._parameter(n, v, next(t for t in ins if isinstance(t, T))) if isinstance(v, Const) else v
                   for v in ins]
        if not all(isinstance(v, T) for v in ins) or axis == 0:
            return None
        if len(ins) == 1:
            return ins[0]
        return T(self.add(self.node_name(n), "Concat", {"dim": axis}, list(ins),
                          ports=[str(i) for i in range(len(ins))]))

    def _op_Gather(self, n, ins, a):
        data, idx = ins
        axis = int(a.get("axis", 0))
        if isinstance(data, Const) and isinstance(idx, T) and axis == 0 and data.value.ndim == 2:
            if idx.node not in self.token_inputs:
                self.bad("Gather (lookup on computed ids)", n.name or "Gather",
                         "an Embedding must read token ids straight from an integer Input")
                return False
            self.vocab[idx.node] = max(self.vocab.get(idx.node, 0), int(data.value.shape[0]))
            if self.fixed(data, n.input):  # a fixed table (a buffer): an Op looking it up (onnx_ops.generic)
                return None
            base = data.src.removesuffix(".weight") if data.src else self.node_name(n)
            return T(self.add(base, "Embedding", {"embedding_dim": int(data.value.shape[1]), "padding_idx": None},
                              [idx], {"weight": data.value}))
        if not isinstance(idx, Const) or idx.value.ndim != 0:
            return None
        k = int(idx.value)
        if isinstance(data, RnnStack) and axis == 0:  # h[k] of stacked layers: that layer's own state
            sizes = [p.layers * p.directions for p in data.parts]
            k %= sum(sizes)
            j = next(i for i in range(len(sizes)) if k < sum(sizes[:i + 1]))
            data, k = data.parts[j], k - sum(sizes[:j])
        if isinstance(data, RnnState) and axis == 0 and not data.cell:
            total = data.layers * data.directions
            k = k % total
            if data.directions == 1 and k == total - 1:
                return T(data.node, "h_n")
            if data.directions == 2 and k in (total - 2, total - 1):
                return RnnHalf(data.node, "fwd" if k == total - 2 else "bwd")
            self.bad("RNN state of an inner layer", n.name or "Gather", "use the last layer's state (h[-1])")
            return False
        if isinstance(data, T) and data.port == "out" and axis == 1 and data.node in self.rnn_info:
            info = self.rnn_info[data.node]
            s = self.shape(n.input[0])
            if info["directions"] == 1 and s is not None and s[1] is not None and k % s[1] == s[1] - 1:
                return T(data.node, "h_n")
        r = self.rank(n.input[0])
        if isinstance(data, T) and r and axis % r > 0:  # y[:, -1], x[:, 0]: a Select
            return T(self.add(self.node_name(n), "Select", {"dim": axis % r, "index": k}, [data]))
        return None


__all__ = ["OnnxImporter", "Built"]
