"""Module groups of the ONNX importer: the ops that one ``nn.LSTM``/``GRU``/``RNN``, ``nn.MultiheadAttention`` or
``nn.TransformerEncoderLayer`` became (module scopes recorded by the dynamo exporter) map back to that one layer;
so do the decompositions of the modules in :data:`STATELESS` (LocalResponseNorm, PixelUnshuffle, GroupNorm, ELU,
GELU, adaptive pooling), their parameters read from the ops, or op by op when the ops are not the expected pattern.

Weights are first read by their state-dict names (``scope.weight_ih_l0``...); when an optimiser renamed them,
recurrent groups fall back to their ONNX LSTM/GRU/RNN operators (:mod:`onnx_rnn`), and attention groups to
structural recognition (:mod:`onnx_attention`).
"""

from __future__ import annotations

import re
from collections import defaultdict

import networkx as nx
import numpy as np

from builder.graph.registry import PADDING_MASK, get_spec
from builder.interchange.errors import ModelImportError
from builder.interchange.onnx_attention import (
    classic_class,
    classic_scopes,
    cross_attention,
    decoder_weights,
    encoder_weights,
    kv_extensions,
    learned_inputs,
    mha_roles,
    mha_weights,
    plausible,
    projections,
    separate_key_value,
)
from builder.interchange.onnx_fold import as_f32, text_of
from builder.interchange.onnx_read import node_attributes as _attrs
from builder.interchange.onnx_read import node_scopes as _meta
from builder.interchange.onnx_read import to_array
from builder.interchange.onnx_structure import CALL, module_calls, stray_reads, stray_refusal, unscoped_calls
from builder.interchange.onnx_values import Const, RnnHalf, RnnState, Sym, SymArr, T, shape_items

COMPLEX = {"LSTM", "GRU", "RNN", "MultiheadAttention", "TransformerEncoderLayer", "TransformerDecoderLayer"}
#: the modules whose layer takes the data's padding masks, and its mask ports (from the layer's spec)
# the recurrent layers' mask ports are not the module's input: their masked reads are plain ops beside the module
MASK_PORTS = {c: get_spec(c).mask_inputs for c in sorted(COMPLEX - {"LSTM", "GRU", "RNN"}) if get_spec(c).mask_inputs}
STATELESS = {"LocalResponseNorm", "PixelUnshuffle", "GroupNorm", "InstanceNorm1d", "InstanceNorm2d", "ELU", "GELU",
             "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "Upsample"}  # modules the dynamo exporter decomposes; their parameters are read from the ops
#: modules of other libraries that compute what a torch.nn module does, read as that module (their ops then map
#: back to one layer: transformers' GELU activations are ``F.gelu``, erf or tanh form, which the exporter
#: decomposes into five to eight ops; the import's output check confirms each)
AS_TORCH = {f"transformers.activations.{c}": "torch.nn.modules.activation.GELU"
            for c in ("GELUActivation", "NewGELUActivation", "GELUTanh", "PytorchGELUTanh")}


def _scalars(imp, nodes, op: str, kind: str = "f") -> list:
    """The scalar constants (float ``kind`` "f" or integer "iu") that ``op`` nodes of a module group take."""
    out = []
    for n in nodes:
        if n.op_type != op:
            continue
        for v in map(imp.value, n.input):
            if isinstance(v, Const) and v.value.size == 1 and v.value.dtype.kind in kind:
                out.append(v.value.reshape(-1)[0].item())
    return out


def _affine(imp, nodes) -> dict:
    """A norm's learned scale and shift by structure (one Mul and one Add by float constants of one size; none when
    they are ones and zeros the file holds as no tensor, a GroupNorm with affine=False); ``{"weight": ...}`` alone
    never, ``{"x": ...}`` (refused by the caller) when the pattern is another."""
    def consts(op):
        return [c for n in nodes if n.op_type == op for c in map(imp.value, n.input)
                if isinstance(c, Const) and c.value.ndim >= 1 and c.value.dtype.kind == "f"]
    muls, adds = consts("Mul"), consts("Add")
    if not muls and not adds:
        return {}
    if len(muls) == 1 and len(adds) == 1 and muls[0].value.size == adds[0].value.size:
        if not imp.made_of([v for n in nodes if n.op_type in ("Mul", "Add") for v in n.input]) and \
                np.all(muls[0].value == 1) and np.all(adds[0].value == 0):
            return {}  # the exporter's own ones and zeros, read from no tensor of the file: affine=False
        return {"weight": muls[0].value.reshape(-1), "bias": adds[0].value.reshape(-1)}
    return {"unrecognised": np.zeros(0)}


def other_mask(imp, nodes) -> bool:
    """Whether a module reads a constant attention mask (booleans, or additive with -inf where hidden) that is not
    the causal one: LayerLab's attention layers take a causal mask and the data's padding mask, nothing else."""
    for n in nodes:
        for v in (imp.value(name) for name in n.input if name):
            if isinstance(v, Const) and v.value.ndim >= 2 and v.value.size > 1 and (
                    v.value.dtype == bool or v.value.dtype.kind == "f" and np.isneginf(v.value).any()) \
                    and not causal_mask(imp, nodes, [v]):
                return True
    return False


def unread_mask(imp, nodes) -> bool:
    """Whether a module builds a mask (``Trilu``: SDPA's ``is_causal``) from sizes the importer could not fold to a
    constant, while reading no causal constant: the layer would be imported without its mask (the optimised
    dynamo export's ``Reshape`` to ``-1`` is read from the shape the exporter states: onnx_fold.stated_shape)."""
    return any(n.op_type == "Trilu" and not isinstance(imp.value(n.output[0]), Const) for n in nodes) \
        and not causal_mask(imp, nodes)


def causal_mask(imp, nodes, values: list | None = None) -> bool:
    """Whether a module's ops read a causal attention mask (or ``values`` hold one): a constant (T, T) (T > 1) that
    hides the steps above the diagonal, as booleans (True = hidden: ``triu(ones, 1)``) or as an additive float mask
    (-inf above the diagonal, 0 elsewhere). Any other constant mask is refused by name (:func:`other_mask`)."""
    for v in values if values is not None else (imp.value(name) for n in nodes for name in n.input if name):
        if not isinstance(v, Const) or v.value.ndim < 2 or v.value.shape[-1] != v.value.shape[-2]:
            continue
        steps = v.value.shape[-1]
        if steps < 2 or v.value.size != steps * steps:
            continue
        m = v.value.reshape(steps, steps)
        above = np.triu(np.ones((steps, steps), dtype=bool), 1)
        if m.dtype == bool and np.array_equal(m, above):
            return True
        if m.dtype.kind == "f" and np.all(np.isneginf(m[above])) and np.all(m[~above] == 0):
            return True
    return False


def _layer_notes(nid: str, weights: dict) -> list[str]:
    """What a Transformer layer's import changes: dropout (not in the file), and biases the file does not have
    (``bias=False``: its feed-forward biases read as zeros), which LayerLab's layer has and fine-tuning trains."""
    notes = [f"{nid}: dropout is not stored in the file; LayerLab's default 0.1 is used"]
    if all(not np.any(weights.get(k, 1)) for k in ("linear1.bias", "linear2.bias")):
        notes.append(f"{nid}: the file's layer has no biases (bias=False); LayerLab's layer has them, starting at "
                     "zero, so the outputs are the same and fine-tuning also trains them")
    return notes


def _cls(qual: str) -> str:
    return qual.rsplit(".", 1)[-1]


# the ops of a padding mask derived from an input (``ids == 0``, a step of all-zero features, "the row has a real
# step"): comparisons, logic, reductions and the shape plumbing exporters put between them
_MASK_OPS = frozenset({"Equal", "Not", "And", "Or", "Xor", "ReduceMax", "ReduceMin", "ReduceSum", "Cast", "Abs",
                       "Greater", "Less", "Unsqueeze", "Squeeze", "Identity", "Constant", "Shape", "Gather",
                       "Expand", "Reshape"})


def padding_mask_source(imp, value: str) -> T | None:
    """The padding mask of a sequence or token Input, when ``value`` is a boolean computed from that one Input and
    constants by :data:`_MASK_OPS` alone (what a compiled LayerLab model derives inside,
    :func:`builder.graph.compile.padding_mask_of`): ``T(input, "padding_mask")``; None otherwise. A mask that
    computes something else is refused by the import's output check."""
    if imp.vtype.get(value, 9) != 9:  # 9: ONNX BOOL
        return None
    producer = {o: n for n in imp.g.node for o in n.output}
    inputs = {i.name for i in imp.g.input if i.name not in imp.inits}
    seen: set[str] = set()
    stack, sources = [value], set()
    while stack:
        v = stack.pop()
        if not v or v in seen:
            continue
        seen.add(v)
        if v in inputs:
            sources.add(v)
        elif v not in imp.inits:
            n = producer.get(v)
            if n is None or n.op_type not in _MASK_OPS:
                return None
            stack.extend(n.input)
    src = imp.vals.get(next(iter(sources))) if len(sources) == 1 else None
    node = next((nd for nd in imp.out.nodes if isinstance(src, T) and nd["id"] == src.node), None)
    if node is None or src.port is not None or len(node["params"].get("shape", [])) not in (1, 2):
        return None
    return T(src.node, PADDING_MASK)


class ModuleGroups:
    """Mixin of :class:`~builder.interchange.onnx_import.OnnxImporter`: one layer per recorded module scope."""

    # ------------------------------------------------------------------ module groups
    def _schedule(self):
        """Group the ops of complex modules; order groups and single ops topologically."""
        group_of: dict[int, str] = {}
        self.group_class: dict[str, str] = {}
        self.recorded_scopes: set[str] = set()  # module scopes the file records (not guessed from names)
        under: dict[str, tuple[list, set]] = defaultdict(lambda: ([], set()))  # classic names: /enc/fc/Gemm
        for n in self.g.node:
            for s in classic_scopes(n.name):
                under[s][0].append(n.name)
                under[s][1].add(n.op_type)
        classic = {s: classic_class(s, *v) for s, v in under.items()}

        def later_call(scope: str | None) -> str | None:
            """The classic exporter's scope of a module's k-th call: its own operators under ``enc_k``, its
            children's under ``enc.self_attn_k``: ``enc`` when such children exist."""
            m = re.fullmatch(r"(.+)_(\d+)", scope or "")
            return m[1] if m and classic.get(m[1]) and any(u.startswith(m[1] + ".") and u.endswith("_" + m[2])
                                                           for u in under) else None
        for i, n in enumerate(self.g.node):
            scopes, classes = _meta(n)
            if not scopes:
                hit = next((s for s in classic_scopes(n.name) if classic.get(s) or classic.get(later_call(s))),
                           None)
                hit = hit if classic.get(hit) else later_call(hit)
                if hit:
                    group_of[i], self.group_class[hit] = hit, classic[hit]
                continue
            if not classes or len(scopes) != len(classes):
                continue
            for s, c in zip(scopes, classes):
                if (c := AS_TORCH.get(c, c)).startswith("torch.nn.") and _cls(c) in COMPLEX | STATELESS and s:
                    group_of[i] = s
                    self.group_class[s] = _cls(c)
                    self.recorded_scopes.add(s)
                    break
        groups: dict[str, list[int]] = defaultdict(list)
        for i, s in group_of.items():
            groups[s].append(i)
        groups = module_calls(self.g, groups, set(self.inits))  # a module used twice: one group per call
        groups = unscoped_calls(self.g, groups, set(self.inits))  # ... and its later calls no scope records
        matrices = {k for k, t in self.inits.items() if len(t.dims) >= 2}
        for scope, names in stray_reads(self.g, groups, set(self.inits), matrices).items():
            if self.group_class[scope] in COMPLEX:
                raise ModelImportError(stray_refusal(scope, self.group_class[scope], names))
        group_of = {i: s for s, idxs in reversed(groups.items()) for i in idxs}  # shared constants: first call
        key = {i: group_of.get(i, i) for i in range(len(self.g.node))}
        producer = {o: i for i, n in enumerate(self.g.node) for o in n.output if o}
        dg = nx.DiGraph()
        dg.add_nodes_from(dict.fromkeys(key.values()))
        for i, n in enumerate(self.g.node):
            for v in n.input:
                if v in producer and key[producer[v]] != key[i]:
                    dg.add_edge(key[producer[v]], key[i])
        try:
            order = list(nx.lexicographical_topological_sort(
                dg, key=lambda k: min(groups[k]) if isinstance(k, str) else k))
        except nx.NetworkXUnfeasible:
            raise ModelImportError("the module scopes recorded in the file form a cycle; re-export the model") from None
        return groups, order

    def _group(self, key: str, idxs: list[int]) -> None:
        cls, scope = self.group_class[key.split(CALL)[0]], key.split(CALL)[0]  # each call of a module used twice
        nodes = [self.g.node[i] for i in idxs]
        inside = {o for n in nodes for o in n.output}
        ext_inputs: list[str] = []
        for n in nodes:
            self._fold(n)  # shape arithmetic inside the module (num_heads lives there)
            for v in n.input:
                if v and v not in inside and isinstance(self.value(v), T | RnnState | RnnHalf) and v not in ext_inputs:
                    ext_inputs.append(v)
        self.reads = self.made_of(v for n in nodes for v in n.input if v not in inside)  # what the layer is made of
        idx_set = set(idxs)
        graph_outs = {o.name for o in self.g.output}
        ext_outputs = [o for n in nodes for o in n.output
                       if o and (o in graph_outs or any(c not in idx_set for c in self.consumers[o]))]
        ext_outputs = [o for o in ext_outputs if not isinstance(self.vals.get(o), Const | SymArr | Sym)]
        where = f"{scope} ({cls})"
        missing = [v for n in nodes for v in n.input if v and v not in inside and self.value(v) is None
                   and v not in self.inits]
        if missing:
            return  # fed by an unsupported op, already reported
        prefix = scope + "."
        weights = {k[len(prefix):]: to_array(t) for k, t in self.inits.items() if k.startswith(prefix)}
        if scope not in self.recorded_scopes and not plausible(self, cls, nodes, len(ext_inputs)):
            for n in nodes:  # a classic scope guessed from node names that is not that module after all
                self._node(n)
            return
        if cls in STATELESS:
            if not (len(ext_inputs) == 1 and len(ext_outputs) == 1 and self._stateless(scope, cls, nodes, ext_inputs[0],
                                                                                     ext_outputs[0], weights)):
                for n in nodes:  # not the expected pattern: op by op (layers, plumbing and Op nodes)
                    self._node(n)
            return
        if cls in COMPLEX - {"LSTM", "GRU", "RNN"} and other_mask(self, nodes):
            self.bad(f"{cls} with a constant attention mask that is not causal", where,
                     "pass no mask, or the causal one (torch.nn.Transformer.generate_square_subsequent_mask); "
                     "LayerLab's attention layers take a causal mask and the data's padding mask only")
            return
        if cls in COMPLEX - {"LSTM", "GRU", "RNN"} and unread_mask(self, nodes):
            self.bad(f"{cls} with a mask built from its sizes (is_causal) that this file does not let LayerLab read",
                     where, "keep the shapes the exporter states for its values (the file's value_info, which "
                     "some tools strip), export with torch.onnx.export(..., dynamo=True, optimize=False), or save a "
                     ".pt2")
            return
        if cls == "MultiheadAttention" and (extended := kv_extensions(self, nodes)):
            for arg in extended:  # steps appended to the keys and values: LayerLab's layer has no such argument
                self.bad(f"MultiheadAttention ({arg})", where, f"use {arg}=False")
            return
        masks: dict[str, T] | None = {}
        if cls in MASK_PORTS:  # the data's padding masks a LayerLab model derives inside: to the layer's mask ports
            found = {v: m for v in ext_inputs if (m := padding_mask_source(self, v)) is not None}
            ext_inputs = [v for v in ext_inputs if v not in found]
            if (masks := self._mask_ports(cls, nodes, found, where)) is None:
                return
        if cls == "MultiheadAttention" and (found := mha_roles(self, nodes)) and separate_key_value(self, found[0]):
            self._mha_roles(scope, nodes, *found, ext_outputs, where, masks)
            return
        if cls == "MultiheadAttention" and learned_inputs(self, nodes):  # its projections not read: not self-attention
            self.bad("MultiheadAttention fed a learned constant as key/value (kdim or vdim ≠ embed_dim, or "
                     "weights renamed)", where,
                     "use kdim = vdim = embed_dim and export with torch.onnx.export(..., dynamo=True, optimize=False) "
                     "or save a .pt2; or build the attention in LayerLab with a Parameter node on its key port")
            return
        if cls == "MultiheadAttention" and len(ext_inputs) == 2 and len(ext_outputs) == 1:
            res = cross_attention(self, scope, nodes, ext_inputs, weights)
            if res is not None:
                self.vals[ext_outputs[0]] = res
                self.out.mapped["MultiheadAttention (decomposed)"] += 1
                return
        if cls == "TransformerDecoderLayer":
            learned = learned_inputs(self, nodes) if ext_inputs else []  # a learned target or memory
            made = [self._learned(v, self.value(ext_inputs[0]), cls, where) for v in learned]
            if None in made:
                return
            self.vals.update(zip(learned, made))
            ext_inputs = list(dict.fromkeys(v for n in nodes for v in n.input if v in {*ext_inputs, *learned}))
            self._decoder(scope, nodes, ext_inputs, ext_outputs, weights, where, masks)
            return
        if len(ext_inputs) != 1:
            self.bad(f"{cls} with {len(ext_inputs)} tensor inputs", where,
                     "LayerLab imports self-attention / recurrent layers fed by one tensor (no initial state, "
                     "no separate key/value)")
            return
        src = self.value(ext_inputs[0])
        if not isinstance(src, T):
            return
        s_in = self.shape(ext_inputs[0])
        if s_in is not None and len(s_in) == 3 and s_in[0] is not None and s_in[1] is None:
            self.bad(f"{cls} (batch_first=False)", where, "construct the module with batch_first=True")
            return
        if cls in ("LSTM", "GRU", "RNN"):
            self._rnn(scope, cls, nodes, src, ext_outputs, weights, where)
        elif cls == "MultiheadAttention":
            self._mha(scope, nodes, src, ext_outputs, weights, where, masks)
        else:
            self._encoder(scope, nodes, src, ext_outputs, weights, where, masks)

    def _mask_ports(self, cls: str, nodes, found: dict[str, T], where: str) -> dict[str, T] | None:
        """The padding masks ``found`` ({input: mask}) by the port of ``cls`` each goes to (None, reported, when it
        cannot be told): a layer with one mask port takes one mask; a decoder layer's first port (the target's)
        takes the mask its self-attention reads, its second (the memory's) the one its cross-attention reads."""
        ports = MASK_PORTS[cls]
        if len(ports) == 1 and len(found) <= 1:
            return dict(zip(ports, found.values(), strict=False))  # none or one
        if len(ports) == 1:
            self.bad(f"{cls} with {len(found)} padding masks", where, "pass one key padding mask")
            return None
        masks: dict[str, T] = {}
        for v, m in found.items():
            scopes = {s for n in nodes if v in n.input for s in _meta(n)[0]}
            port = {p for attn, p in zip(("self_attn", "multihead_attn"), ports, strict=True)
                    if any(s.endswith("." + attn) for s in scopes)}
            if len(port) != 1 or (port := port.pop()) in masks:
                self.bad(f"{cls} with a padding mask read by neither or both attentions", where,
                         "pass tgt_key_padding_mask and memory_key_padding_mask as torch does; export with "
                         "torch.onnx.export(..., dynamo=True), which records the module scopes")
                return None
            masks[port] = m
        return masks

    def _stateless(self, scope: str, cls: str, nodes, src_name: str, out_name: str, weights: dict) -> bool:
        """One decomposed stateless module (or GroupNorm) → its layer, parameters read from the ops; False when
        the ops are not the expected pattern (the caller then imports them op by op)."""
        src = self.value(src_name)
        if not isinstance(src, T):
            return False
        ops = [n.op_type for n in nodes]
        params: dict | None = None
        if cls == "LocalResponseNorm":
            pools = [_attrs(n) for n in nodes if n.op_type == "AveragePool"]
            alpha, k, beta = (_scalars(self, nodes, op) for op in ("Mul", "Add", "Pow"))
            if len(pools) == 1 and len(alpha) == len(k) == len(beta) == 1:
                params = {"size": int(pools[0]["kernel_shape"][0]), "alpha": alpha[0], "beta": beta[0], "k": k[0]}
        elif cls == "PixelUnshuffle":
            r = set(_scalars(self, nodes, "Div", "iu"))
            if len(r) == 1 and ops.count("Transpose") == 1:
                params = {"downscale_factor": int(r.pop())}
        elif cls == "GroupNorm":
            norm = [n for n in nodes if n.op_type == "InstanceNormalization"]
            g = self.value(norm[0].input[1]) if len(norm) == 1 else None
            weights = weights or _affine(self, nodes)  # renamed by an optimiser: the Mul/Add after the norm
            if isinstance(g, Const) and g.value.ndim == 1 and set(weights) in (set(), {"weight", "bias"}):
                params = {"num_groups": int(g.value.shape[0]), "eps": as_f32(_attrs(norm[0]).get("epsilon", 1e-5)),
                          "affine": bool(weights)}
        elif cls.startswith("InstanceNorm"):
            norm_nodes = [n for n in nodes if n.op_type in ("InstanceNormalization", "BatchNormalization")]
            norm = [_attrs(n) for n in norm_nodes]
            track = {"running_mean", "running_var"} <= set(weights)
            plain = [self.value(v) for n in norm_nodes for v in n.input[1:3]]
            if not weights and not all(isinstance(c, Const) and np.all(c.value == k) for c, k in zip(plain, (1, 0))):
                norm = []  # renamed learned scale/shift or statistics: op by op keeps them
            if len(norm) == 1 and set(weights) - {"running_mean", "running_var"} in (set(), {"weight", "bias"}):
                mom = round(1.0 - float(norm[0].get("momentum", 0.9)), 6) if track else 0.1  # not stored otherwise
                params = {"eps": as_f32(norm[0].get("epsilon", 1e-5)), "momentum": mom,
                          "affine": "weight" in weights, "track_running_stats": track}
        elif cls == "ELU":
            elu = [_attrs(n) for n in nodes if n.op_type == "Elu"]
            if len(elu) == 1:
                params = {"alpha": as_f32(elu[0].get("alpha", 1.0))}
        elif cls == "GELU":
            params = {"approximate": "tanh" if "Tanh" in ops else "none"}
        elif cls == "Upsample":
            params = self._upsample(nodes, src_name)
        elif cls.startswith("AdaptiveAvgPool"):
            dims, s_out = int(cls[-2]), self.shape(out_name)
            if s_out is not None and len(s_out) == dims + 2 and all(d for d in s_out[2:]):
                size = [int(d) for d in s_out[2:]]
                params = {"output_size": size[0] if len(set(size)) == 1 else size}
        if params is None:
            return False
        self.vals[out_name] = T(self.add(scope, cls, params, [src], weights or None))
        self.out.mapped[f"{cls} (decomposed)"] += 1
        return True

    def _producer_chain(self, value: str, nodes) -> tuple[str, int] | None:
        """Follow first inputs back to a recurrent op inside the group: (op type, output index)."""
        prod = {o: n for n in nodes for o in n.output if o}
        seen = 0
        while value in prod and seen < 64:
            n = prod[value]
            if n.op_type in ("LSTM", "GRU", "RNN"):
                return n.op_type, list(n.output).index(value)
            value = next((v for v in n.input if v and v in prod or v and isinstance(self.value(v), T)), None)
            seen += 1
        return None

    def _unrolled_role(self, value: str, states: int, features: int) -> tuple[str, int] | None:
        """An unrolled RNN's output by its shape: (B, T, D·H) is the sequence (index 0), (L·D, B, H) ``h_n``."""
        s = self.shape(value)
        if s is None or len(s) != 3:
            return None
        sb = getattr(self, "static_batch", None)
        batch = [d is None or (sb is not None and d == sb) for d in s]  # dynamic, or the file's fixed batch
        if batch[0] and s[2] == features and s[1] is not None and not (batch[1] and s[0] == states):
            return "RNN", 0
        if s[0] == states and batch[1] and not batch[0]:
            return "RNN", 1
        return None

    def _upsample(self, nodes, src_name: str) -> dict | None:
        """``nn.Upsample``'s parameters from its one Resize: mode and corner alignment from the attributes, the
        scale factor from the constant scales (one value over the spatial axes) or the size from the sizes."""
        rs = [n for n in nodes if n.op_type == "Resize"]
        r = self.rank(src_name)
        if len(rs) != 1 or r not in (3, 4):
            return None
        a, ins = _attrs(rs[0]), [self.value(v) if v else None for v in rs[0].input]
        mode, ctm = text_of(a.get("mode", "nearest")), text_of(a.get("coordinate_transformation_mode", "half_pixel"))
        if mode == "nearest" and (ctm != "asymmetric" or text_of(a.get("nearest_mode", "round_prefer_floor")) != "floor"):
            return None
        if mode in ("linear", "cubic") and ctm not in ("align_corners", "half_pixel", "pytorch_half_pixel"):
            return None
        mode = {"nearest": "nearest", "linear": "bilinear" if r == 4 else "linear",
                "cubic": "bicubic" if r == 4 else None}.get(mode)
        if mode is None or (mode == "bicubic" and abs(float(a.get("cubic_coeff_a", -0.75)) + 0.75) > 1e-6):
            return None
        out = {"size": None, "scale_factor": None, "mode": mode, "align_corners": ctm == "align_corners"}
        scales = ins[2] if len(ins) > 2 else None
        sizes = ins[3] if len(ins) > 3 else None
        if isinstance(scales, Const) and scales.value.size == r and len(set(scales.value[2:].tolist())) == 1:
            out["scale_factor"] = float(scales.value[2])
        elif isinstance(sizes, Const | SymArr) and len(items := shape_items(sizes)) == r and \
                all(isinstance(v, int) for v in items[2:]):
            size = items[2:]
            out["size"] = size[0] if len(set(size)) == 1 else size
        else:
            return None
        return out

    def _unrolled_weights(self, nodes, src: T) -> dict | None:
        """A one-layer unrolled ``nn.RNN`` whose weights an optimiser renamed: ``weight_ih_l0`` is the matrix the
        time-first input is multiplied by, ``weight_hh_l0`` the one every step's state is."""
        tm = {n.output[0] for n in nodes if n.op_type == "Transpose" and self.value(n.input[0]) == src}
        mats = [(n.input[0] in tm, n.input[1], self.value(n.input[1])) for n in nodes if n.op_type == "MatMul"]
        if not all(isinstance(c, Const) and c.value.ndim == 2 for _, _, c in mats):
            return None
        ih = {name for first, name, _ in mats if first}
        hh = {name for first, name, _ in mats if not first}
        if len(ih) != 1 or len(hh) != 1:
            return None
        w_ih, w_hh = self.value(ih.pop()).value.T, self.value(hh.pop()).value.T
        if w_hh.shape[0] != w_hh.shape[1] or w_ih.shape[0] != w_hh.shape[0]:
            return None
        return {"weight_ih_l0": np.ascontiguousarray(w_ih), "weight_hh_l0": np.ascontiguousarray(w_hh)}

    def _rnn(self, scope, cls, nodes, src, ext_outputs, weights, where) -> None:
        layers = sum(1 for k in weights if re.fullmatch(r"weight_ih_l\d+", k))
        directions = 2 if any(k.endswith("_reverse") for k in weights) else 1
        if any(n.op_type in ("LSTM", "GRU", "RNN") for n in nodes) and (not layers or "bias_ih_l0" not in weights):
            for n in nodes:  # weights renamed (optimised file): the ONNX operators themselves (onnx_rnn)
                self._node(n)
            return
        if cls == "RNN" and set(weights) == {"bias_ih_l0", "bias_hh_l0"}:  # unrolled, weights renamed
            found = self._unrolled_weights(nodes, src)
            if found:
                weights, layers = {**weights, **found}, 1
        if not layers or "bias_ih_l0" not in weights:
            self.bad(f"{cls} without bias" if layers else f"{cls} (unrolled, weights renamed)", where,
                     "use bias=True; for nn.RNN export with torch.onnx.export(dynamo=False), which keeps the ONNX "
                     "RNN operator")
            return
        hidden = int(weights["weight_hh_l0"].shape[1])
        roles = {}
        unrolled = not any(n.op_type in ("LSTM", "GRU", "RNN") for n in nodes)
        for o in ext_outputs:
            hit = self._producer_chain(o, nodes)
            if hit is None and unrolled and cls == "RNN":  # dynamo unrolls nn.RNN: the role from the shape
                hit = self._unrolled_role(o, layers * directions, hidden * directions)
            if hit is None:
                self.bad(f"{cls} output", where, "use the sequence output or the final hidden state")
                return
            roles[o] = {0: "out", 1: "h", 2: "c"}[hit[1]]
        params: dict = {"hidden_size": hidden, "num_layers": layers}
        if cls == "RNN":
            acts = [text_of(x).lower() for n in nodes if n.op_type == "RNN" for x in _attrs(n).get("activations", [])]
            relu = "relu" in acts or (unrolled and any(n.op_type == "Relu" for n in nodes))
            params["nonlinearity"] = "relu" if relu else "tanh"
        params.update(bidirectional=directions == 2, dropout=0.0,
                      output_mode="all" if "out" in roles.values() else "last")
        nid = self.add(scope, cls, params, [src], weights)
        self.rnn_info[nid] = {"directions": directions, "layers": layers}
        if layers > 1:
            self.out.notes.append(f"{nid}: dropout between stacked layers is not stored in the file; set to 0")
        for o, role in roles.items():
            self.vals[o] = T(nid, "out") if role == "out" else RnnState(nid, directions, layers, cell=role == "c")
        self.out.mapped[cls] += 1

    def _heads(self, nodes, embed: int) -> int | None:
        """num_heads from torch's ``q.view(T, batch * heads, head_dim)``: a shape [T, Sym(heads), E/heads], or
        [T, -1, E/heads] with a dynamic batch (the smallest such E/heads: the merge back is [T, -1, E])."""
        split = [int(v.value.reshape(-1)[2]) for n in nodes if n.op_type == "Reshape" and len(n.input) > 1
                 for v in [self.vals.get(n.input[1])] if isinstance(v, Const) and v.value.size == 3
                 and int(v.value.reshape(-1)[1]) == -1 and 0 < int(v.value.reshape(-1)[2]) <= embed
                 and embed % int(v.value.reshape(-1)[2]) == 0]
        if split:
            return embed // min(split)
        for n in nodes:
            if n.op_type != "Reshape" or len(n.input) < 2:
                continue
            v = self.vals.get(n.input[1])
            items = v.items if isinstance(v, SymArr) else []
            sb = getattr(self, "static_batch", None)
            if isinstance(v, Const) and sb:  # a file exported at batch sb: [T, sb*heads, hd] or [sb, heads, T, hd]
                d = [int(x) for x in v.value.reshape(-1)]
                if len(d) == 3 and d[1] % sb == 0 and d[1] // sb * d[2] == embed:
                    return d[1] // sb
                if len(d) == 4 and d[0] == sb and d[1] * d[3] == embed:
                    return d[1]
            if isinstance(v, Const) and v.value.size == 4:  # [-1, heads, T, hd] (dynamic batch)
                d = [int(x) for x in v.value.reshape(-1)]
                if d[0] == -1 and d[1] > 0 and d[1] * d[3] == embed:
                    return d[1]
            if len(items) == 3 and isinstance(items[1], Sym) and isinstance(items[2], int) \
                    and items[1].coef * items[2] == embed:
                return items[1].coef
        # the classic exporter's shape arithmetic: batch * heads and embed / heads with an integer constant
        ks = {int(v.value) for n in nodes if n.op_type in ("Mul", "Div") for v in map(self.value, n.input)
              if isinstance(v, Const) and v.value.size == 1 and v.value.dtype.kind in "iu"
              and int(v.value.reshape(-1)[0]) > 1 and embed % int(v.value.reshape(-1)[0]) == 0}
        if len(ks) > 1:  # embed / heads with the embedding size folded from the query's shape
            ks.discard(embed)
        return ks.pop() if len(ks) == 1 else None

    def _check_single_output(self, ext_outputs, where, cls) -> str | None:
        if len(ext_outputs) != 1:
            self.bad(f"{cls} attention weights", where, "use only the attention output (need_weights is ignored)")
            return None
        return ext_outputs[0]

    def _learned(self, name: str, like: T, cls: str, where: str) -> T | None:
        """A learned tensor that the exporter expanded over the batch (an attention's key/value or query, a decoder's
        target or memory) → a Parameter node, the batch from ``like``; None (reported) when it is not the same for
        every sample."""
        reads, self.reads = self.reads, self.made_of([name])
        origin = sorted(self.reads)
        v = self._parameter(self.producer.get(name), Const(self.value(name).value,
                                                           src=origin[0] if len(origin) == 1 else name), like,
                            self.reads)
        self.reads = reads - self.reads  # the module's own weights: the constant is the Parameter's
        if not isinstance(v, T):
            self.bad(f"{cls} fed a constant that differs between samples", where,
                     "pass a learned tensor of shape (1, S, E) expanded over the batch")
            return None
        return v

    def _mha_roles(self, scope, nodes, roles: tuple[str, str, str], weights: dict, ext_outputs, where,
                   masks: dict[str, T]) -> None:
        """``nn.MultiheadAttention(query, key, value)`` with a key/value other than the query (another tensor, or
        a learned constant: a Parameter node, the batch from a tensor input) → the layer with its ports."""
        tensors = [r for r in roles if isinstance(self.value(r), T)]
        out = self._check_single_output(ext_outputs, where, "MultiheadAttention")
        if out is None:
            return
        if not tensors:
            self.bad("MultiheadAttention whose query, key and value are all stored tensors (weights or buffers)", where,
                     "feed the query (or the key and value) from the model's input")
            return
        s_in = self.shape(tensors[0])
        if s_in is not None and len(s_in) == 3 and s_in[0] is not None and s_in[1] is None:
            self.bad("MultiheadAttention (batch_first=False)", where, "construct the module with batch_first=True")
            return
        made = {name: self.value(name) if isinstance(self.value(name), T) else
                self._learned(name, self.value(tensors[0]), "MultiheadAttention", where) for name in dict.fromkeys(roles)}
        if None in made.values():
            return
        embed = int(weights["in_proj_weight"].shape[1])
        ins, ports = [made[roles[0]], made[roles[1]]], ["query", "key"]
        if roles[2] != roles[1]:  # the layer's value is its key unless a value edge says otherwise
            ins, ports = [*ins, made[roles[2]]], [*ports, "value"]
        ins, ports = [*ins, *masks.values()], [*ports, *masks]
        nid = self.add(scope, "MultiheadAttention", {"num_heads": self._heads(nodes, embed) or 1, "dropout": 0.0,
                                                     "bias": "in_proj_bias" in weights,
                                                     "causal": causal_mask(self, nodes)}, ins, weights, ports=ports)
        self.vals[out] = T(nid)
        self.out.mapped["MultiheadAttention"] += 1

    def _mha(self, scope, nodes, src, ext_outputs, weights, where, masks: dict[str, T]) -> None:
        weights = mha_weights(self, nodes) or weights
        if "in_proj_weight" not in weights:
            if "q_proj_weight" in weights:
                self.bad("MultiheadAttention (separate q/k/v weights: kdim or vdim ≠ embed_dim) fed by one tensor",
                         where, "use kdim = vdim = embed_dim, or feed it a query and a separate key/value")
            else:
                self.bad(f"MultiheadAttention whose projections were not found ({len(projections(self, nodes))} "
                         "constant-weight projections read, 2 expected: in_proj 3E×E and out_proj E×E)", where,
                         "export with torch.onnx.export(..., dynamo=True, optimize=False) or save a .pt2, which keep "
                         "the module's weights by name")
            return
        embed = int(weights["in_proj_weight"].shape[1])
        heads = self._heads(nodes, embed) or 1
        out = self._check_single_output(ext_outputs, where, "MultiheadAttention")
        if out is None:
            return
        nid = self.add(scope, "MultiheadAttention", {"num_heads": heads, "dropout": 0.0,
                                                     "bias": "in_proj_bias" in weights,
                                                     "causal": causal_mask(self, nodes)}, [src, *masks.values()],
                       weights, ports=["query", *masks])
        self.vals[out] = T(nid)
        self.out.mapped["MultiheadAttention"] += 1

    def _encoder(self, scope, nodes, src, ext_outputs, weights, where, masks: dict[str, T]) -> None:
        need = ("self_attn.in_proj_weight", "linear1.weight", "linear1.bias", "norm1.weight")
        weights = encoder_weights(self, nodes) or weights  # by structure: optimisers rename and deduplicate
        if any(k not in weights for k in need):
            self.bad("TransformerEncoderLayer (bias=False or custom projections)", where, "use bias=True")
            return
        embed = int(weights["self_attn.in_proj_weight"].shape[1])
        heads = self._heads(nodes, embed) or 1
        ops = {n.op_type for n in nodes}
        act = "gelu" if ("Gelu" in ops or "Erf" in ops) else "relu"
        lns = [n for n in nodes if n.op_type == "LayerNormalization"]
        ext = {v for n in nodes for v in n.input if isinstance(self.value(v), T)}
        norm_first = bool(lns) and lns[0].input[0] in ext
        eps = {float(_attrs(n).get("epsilon", 1e-5)) for n in lns}
        if any(abs(e - 1e-5) > 1e-9 for e in eps):
            self.bad("TransformerEncoderLayer (layer_norm_eps ≠ 1e-5)", where, "use layer_norm_eps=1e-5")
            return
        out = self._check_single_output(ext_outputs, where, "TransformerEncoderLayer")
        if out is None:
            return
        nid = self.add(scope, "TransformerEncoderLayer",
                       {"nhead": heads, "dim_feedforward": int(weights["linear1.weight"].shape[0]),
                        "dropout": 0.1, "activation": act, "norm_first": norm_first,
                        "causal": causal_mask(self, nodes)}, [src, *masks.values()], weights,
                       ports=[None, *masks] if masks else None)
        self.out.notes.extend(_layer_notes(nid, weights))
        self.vals[out] = T(nid)
        self.out.mapped["TransformerEncoderLayer"] += 1

    def _decoder(self, scope, nodes, ext_inputs, ext_outputs, weights, where, masks: dict[str, T]) -> None:
        """A ``nn.TransformerDecoderLayer`` (fed by the target and the memory, and the padding masks of either in
        ``masks``) → the layer, its weights by their state-dict names; the target is the input its residual Add
        reads."""
        parts = ("self_attn.in_proj_", "self_attn.out_proj.", "multihead_attn.in_proj_", "multihead_attn.out_proj.")
        need = [f"{p}weight" for p in parts] + \
            [f"{m}.{k}" for m in ("linear1", "linear2", "norm1", "norm2", "norm3") for k in ("weight", "bias")]
        if any(k not in weights for k in need) or "self_attn.in_proj_bias" not in weights:
            weights = decoder_weights(self, nodes) or weights  # by structure: an optimiser renamed them
        if any(k not in weights for k in need) or "self_attn.in_proj_bias" not in weights:
            self.bad("TransformerDecoderLayer (bias=False, or weights LayerLab could not read)", where,
                     "use bias=True; if it has, export with torch.onnx.export(..., dynamo=True) or save a .pt2")
            return
        if len(ext_inputs) != 2:
            self.bad(f"TransformerDecoderLayer with {len(ext_inputs)} tensor inputs", where,
                     "LayerLab imports a decoder layer fed by the target and the memory (and padding masks "
                     "derived from the model's inputs)")
            return
        consumers = {v: {n.op_type for n in nodes if v in n.input} for v in ext_inputs}
        tgt = [v for v in ext_inputs if "Add" in consumers[v]]
        vals = [self.value(v) for v in ext_inputs]
        out = self._check_single_output(ext_outputs, where, "TransformerDecoderLayer")
        if len(tgt) != 1 or not all(isinstance(v, T) for v in vals) or out is None:
            if out is not None:
                self.bad("TransformerDecoderLayer (target and memory not told apart)", where,
                         "feed the decoder layer two different tensors")
            return
        memory = next(v for v in ext_inputs if v != tgt[0])
        embed = int(weights["self_attn.in_proj_weight"].shape[1])
        ops = {n.op_type for n in nodes}
        params = {"nhead": self._heads(nodes, embed) or 1, "dim_feedforward": int(weights["linear1.weight"].shape[0]),
                  "dropout": 0.1, "activation": "gelu" if ("Gelu" in ops or "Erf" in ops) else "relu",
                  "norm_first": "LayerNormalization" in consumers[tgt[0]], "causal": causal_mask(self, nodes)}
        nid = self.add(scope, "TransformerDecoderLayer", params,
                       [self.value(tgt[0]), self.value(memory), *masks.values()], weights,
                       ports=["tgt", "memory", *masks])
        self.out.notes.extend(_layer_notes(nid, weights))
        self.vals[out] = T(nid)
        self.out.mapped["TransformerDecoderLayer"] += 1


__all__ = ["ModuleGroups"]
