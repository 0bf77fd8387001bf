"""Module groups of the ONNX importer: the ops that one ``nn.LSTM``/``GRU``/``RNN``, ``nn.MultiheadAttention`` or
``nn.TransformerEncoderLayer`` became (module scopes recorded by the dynamo exporter) map back to that one layer.

Weights are first read by their state-dict names (``scope.weight_ih_l0``...); when an optimiser renamed them,
recurrent groups fall back to their ONNX LSTM/GRU/RNN operators (:mod:`onnx_rnn`), and attention groups to
structural recognition (:mod:`onnx_attention`).
"""

from __future__ import annotations

import re

from builder.interchange.onnx_attention import cross_attention, encoder_weights, mha_weights, plausible
from builder.interchange.onnx_fold import _s
from builder.interchange.onnx_read import node_attributes as _attrs
from builder.interchange.onnx_read import to_array
from builder.interchange.onnx_values import Const, RnnHalf, RnnState, Sym, SymArr, T


class ModuleGroups:
    """Mixin of :class:`~builder.interchange.onnx_import.OnnxImporter`: one layer per recorded module scope."""

    # ------------------------------------------------------------------ module groups
    def _group(self, scope: str, idxs: list[int]) -> None:
        cls = self.group_class[scope]
        nodes = [self.g.node[i] for i in idxs]
        inside = {o for n in nodes for o in n.output}
        ext_inputs: list[str] = []
        for n in nodes:
            self._fold(n)  # shape arithmetic inside the module (num_heads lives there)
            for v in n.input:
                if v and v not in inside and isinstance(self.value(v), T | RnnState | RnnHalf) and v not in ext_inputs:
                    ext_inputs.append(v)
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
        if scope not in self.recorded_scopes and not plausible(self, cls, nodes):
            for n in nodes:  # a classic scope guessed from node names that is not that module after all
                self._node(n)
            return
        if cls == "MultiheadAttention" and len(ext_inputs) == 2 and len(ext_outputs) == 1:
            res = cross_attention(self, scope, nodes, ext_inputs, weights)
            if res is not None:
                self.vals[ext_outputs[0]] = res
                self.out.mapped["MultiheadAttention (decomposed)"] += 1
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
            self._mha(scope, nodes, src, ext_outputs, weights, where)
        else:
            self._encoder(scope, nodes, src, ext_outputs, weights, where)

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

    def _rnn(self, scope, cls, nodes, src, ext_outputs, weights, where) -> None:
        layers = sum(1 for k in weights if re.fullmatch(r"weight_ih_l\d+", k))
        directions = 2 if any(k.endswith("_reverse") for k in weights) else 1
        if any(n.op_type in ("LSTM", "GRU", "RNN") for n in nodes) and (not layers or "bias_ih_l0" not in weights):
            for n in nodes:  # weights renamed (optimised file): the ONNX operators themselves (onnx_rnn)
                self._node(n)
            return
        if not layers or "bias_ih_l0" not in weights:
            self.bad(f"{cls} without bias" if layers else f"{cls} (unrolled, weights renamed)", where,
                     "use bias=True; for nn.RNN export with torch.onnx.export(dynamo=False), which keeps the ONNX "
                     "RNN operator")
            return
        hidden = int(weights["weight_hh_l0"].shape[1])
        roles = {}
        for o in ext_outputs:
            hit = self._producer_chain(o, nodes)
            if hit is None:
                self.bad(f"{cls} output", where, "use the sequence output or the final hidden state")
                return
            roles[o] = {0: "out", 1: "h", 2: "c"}[hit[1]]
        params: dict = {"hidden_size": hidden, "num_layers": layers}
        if cls == "RNN":
            acts = [_s(x).lower() for n in nodes if n.op_type == "RNN" for x in _attrs(n).get("activations", [])]
            params["nonlinearity"] = "relu" if "relu" in acts else "tanh"
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
        """num_heads from torch's ``q.view(T, batch * heads, head_dim)``: a shape [T, Sym(heads), E/heads]."""
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
        return ks.pop() if len(ks) == 1 else None

    def _check_single_output(self, ext_outputs, where, cls) -> str | None:
        if len(ext_outputs) != 1:
            self.bad(f"{cls} attention weights", where, "use only the attention output (need_weights is ignored)")
            return None
        return ext_outputs[0]

    def _mha(self, scope, nodes, src, ext_outputs, weights, where) -> None:
        weights = mha_weights(self, nodes) or weights
        if "in_proj_weight" not in weights:
            self.bad("MultiheadAttention (separate q/k/v weights)", where, "use kdim = vdim = embed_dim")
            return
        if "bias_k" in weights:
            self.bad("MultiheadAttention (add_bias_kv)", where, "use add_bias_kv=False")
            return
        embed = int(weights["in_proj_weight"].shape[1])
        heads = self._heads(nodes, embed) or 1
        out = self._check_single_output(ext_outputs, where, "MultiheadAttention")
        if out is None:
            return
        nid = self.add(scope, "MultiheadAttention", {"num_heads": heads, "dropout": 0.0,
                                                     "bias": "in_proj_bias" in weights}, [src], weights,
                       ports=["query"])
        self.vals[out] = T(nid)
        self.out.mapped["MultiheadAttention"] += 1

    def _encoder(self, scope, nodes, src, ext_outputs, weights, where) -> None:
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
                        "dropout": 0.1, "activation": act, "norm_first": norm_first}, [src], weights)
        self.out.notes.append(f"{nid}: dropout is not stored in the file; LayerLab's default 0.1 is used")
        self.vals[out] = T(nid)
        self.out.mapped["TransformerEncoderLayer"] += 1


__all__ = ["ModuleGroups"]
