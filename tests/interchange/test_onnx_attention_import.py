"""Attention read by structure (builder/interchange/onnx_attention.py, issue 34): a hand-written attention that a
classic file's names make look like ``nn.MultiheadAttention`` imports op by op, and a recorded MultiheadAttention
whose projections cannot be read is refused with the rule, the module and the fix."""

from __future__ import annotations

import math
import tempfile
import warnings
from pathlib import Path

import onnx
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from builder.graph.compile import compile_graph
from builder.interchange import ModelImportError
from builder.interchange.importer import import_model


class HandAttention(nn.Module):
    """Self-attention written out with the names of transformers' models: ``q_proj``, ``k_proj``, ``v_proj``
    Linears, heads by view/transpose, softmax, ``out_proj``. Not an ``nn.MultiheadAttention``."""

    def __init__(self, dim: int = 8, heads: int = 2):
        super().__init__()
        self.heads = heads
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(dim, dim) for _ in range(4))

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = (p(x).view(b, t, self.heads, c // self.heads).transpose(1, 2)  # (B, heads, T, D)
                   for p in (self.q_proj, self.k_proj, self.v_proj))
        att = F.softmax(q @ k.transpose(-2, -1) / math.sqrt(c // self.heads), dim=-1)  # (B, heads, T, T)
        return self.out_proj((att @ v).transpose(1, 2).reshape(b, t, c))


class WithHead(nn.Module):
    def __init__(self, attn: nn.Module):
        super().__init__()
        self.attn, self.head = attn, nn.Linear(8, 3)

    def forward(self, x):
        return self.head(self.attn(x))


class SplitSelfAttention(nn.Module):
    """``nn.MultiheadAttention`` on ``x`` with the key and value passed as other tensor objects (``detach`` is no
    op in the file): torch then projects q, k and v with three slices of in_proj, not one packed MatMul."""

    def __init__(self):
        super().__init__()
        self.attn, self.head = nn.MultiheadAttention(8, 2, batch_first=True), nn.Linear(8, 3)

    def forward(self, x):
        return self.head(self.attn(x, x.detach(), x.detach(), need_weights=False)[0])


def test_hand_written_attention_named_like_multihead_attention_imports_op_by_op(tmp_path):
    """A classic ONNX file records no module classes; the scope ``/attn/...`` with a Softmax and an ``out_proj``
    child was taken for an nn.MultiheadAttention, and four projections (not in_proj 3E×E + out_proj E×E) made
    the import refuse the model. It is not one: its operators import one by one and compute the same."""
    torch.manual_seed(0)
    model, x = WithHead(HandAttention()).eval(), torch.randn(2, 5, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), tmp_path / "m.onnx", dynamo=False, input_names=["x"],
                          dynamic_axes={"x": {0: "b"}})
    res = import_model(tmp_path / "m.onnx")
    assert "MultiheadAttention" not in res.report["mapped"]
    assert res.report["max_abs_diff"] <= res.report["tolerance"]
    imported = compile_graph(res.project.graph)
    imported.load_state_dict(res.weights)
    x3 = torch.randn(3, 5, 8)  # a batch size other than the traced one
    with torch.no_grad():
        assert float((imported.eval()(x3) - model(x3)).abs().max()) <= 1e-5


def test_multihead_attention_whose_projections_are_not_found_is_refused_with_the_fix(tmp_path):
    """A recorded nn.MultiheadAttention fed by one tensor whose weights are read neither by name (an optimiser
    renamed the initializers, as onnx-simplifier and the dynamo optimiser do) nor by structure (q, k and v
    projected apart: four projections): refused naming the module, what was read, and how to export it."""
    torch.manual_seed(0)
    model, x = SplitSelfAttention().eval(), torch.randn(2, 5, 8)
    proto = torch.onnx.export(model, (x,), dynamo=True, optimize=True, input_names=["x"], verbose=False,
                              dynamic_shapes=({0: torch.export.Dim("batch")},)).model_proto
    renamed = {init.name: f"onnx::w{i}" for i, init in enumerate(proto.graph.initializer)}
    for init in proto.graph.initializer:
        init.name = renamed[init.name]
    for node in proto.graph.node:
        node.input[:] = [renamed.get(v, v) for v in node.input]
    (tmp_path / "m.onnx").write_bytes(proto.SerializeToString())
    with pytest.raises(ModelImportError) as err:
        import_model(tmp_path / "m.onnx")
    msg = str(err.value)
    assert ("MultiheadAttention whose projections were not found (4 constant-weight projections read, 2 expected: "
            "in_proj 3E×E and out_proj E×E)") in msg
    assert "received: node(s) attn (MultiheadAttention)" in msg
    assert "Fix: export with torch.onnx.export(..., dynamo=True, optimize=False) or save a .pt2" in msg



ROUTES = ["onnx_dynamo", "onnx_dynamo_optimized", "onnx_classic", "pt2"]


def _export(model: nn.Module, x: torch.Tensor, route: str, folder) -> object:
    """``model`` saved by one export route with a dynamic batch: dynamo ONNX (``optimize`` off, or on as
    torch.onnx.export's default), the classic exporter, or torch.export's ``.pt2``."""
    batch = ({0: torch.export.Dim("batch")},)
    if route == "pt2":
        torch.export.save(torch.export.export(model, (x,), dynamic_shapes=batch), folder / "m.pt2")
        return folder / "m.pt2"
    path = folder / "m.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if route == "onnx_classic":
            torch.onnx.export(model, (x,), path, dynamo=False, input_names=["x"], dynamic_axes={"x": {0: "b"}})
        else:
            proto = torch.onnx.export(model, (x,), dynamo=True, optimize=route == "onnx_dynamo_optimized",
                                      input_names=["x"], verbose=False, dynamic_shapes=batch).model_proto
            path.write_bytes(proto.SerializeToString())
    return path


class MHA(nn.Module):
    """Self-attention with the constructor arguments ``kw``, then a Linear."""

    def __init__(self, **kw):
        super().__init__()
        self.attn, self.head = nn.MultiheadAttention(8, 2, batch_first=True, **kw), nn.Linear(8, 3)

    def forward(self, x):
        return self.head(self.attn(x, x, x, need_weights=False)[0])


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("arg", ["add_bias_kv", "add_zero_attn", "add_bias_kv+add_zero_attn"])
def test_steps_appended_to_keys_and_values_are_refused_naming_the_argument(arg, route, tmp_path):
    """``add_bias_kv=True`` / ``add_zero_attn=True`` append a learned or a zero step to the keys and values
    (LayerLab's layer has neither). add_bias_kv was found by the name ``bias_k``, which the dynamo optimiser
    (torch.onnx.export's default) renames, and add_zero_attn not at all: both were imported without it, to fail
    the output check with "report this model". Read from the operators, each argument is named on every route."""
    torch.manual_seed(0)
    model, x = MHA(**dict.fromkeys(arg.split("+"), True)).eval(), torch.randn(2, 5, 8)
    with pytest.raises(ModelImportError) as err:
        import_model(_export(model, x, route, tmp_path))
    for name in arg.split("+"):
        assert f"MultiheadAttention ({name})` has no LayerLab layer; received: node(s) attn (MultiheadAttention). " \
               f"Fix: use {name}=False" in str(err.value)
    assert "report this model" not in str(err.value)


class LearnedMemory(nn.Module):
    """Cross-attention to a learned memory: ``attn(x, mem, mem)`` (the key is the value)."""

    def __init__(self, steps: int = 5, embed: int = 16, heads: int = 2):
        super().__init__()
        self.mem = nn.Parameter(torch.randn(1, steps, embed))
        self.attn = nn.MultiheadAttention(embed, heads, batch_first=True)

    def forward(self, x):
        m = self.mem.expand(x.shape[0], -1, -1)
        return self.attn(x, m, m)[0]


class LearnedKeyValue(nn.Module):
    """A learned key and another learned value."""

    def __init__(self):
        super().__init__()
        self.k, self.v = nn.Parameter(torch.randn(1, 5, 16)), nn.Parameter(torch.randn(1, 5, 16))
        self.attn = nn.MultiheadAttention(16, 2, batch_first=True)

    def forward(self, x):
        b = x.shape[0]
        return self.attn(x, self.k.expand(b, -1, -1), self.v.expand(b, -1, -1), need_weights=False)[0]


class LearnedQuery(nn.Module):
    """Learned queries attending over the input (a Perceiver/DETR-style read-out)."""

    def __init__(self):
        super().__init__()
        self.q = nn.Parameter(torch.randn(1, 3, 16))
        self.attn = nn.MultiheadAttention(16, 2, batch_first=True)

    def forward(self, x):
        return self.attn(self.q.expand(x.shape[0], -1, -1), x, x, need_weights=False)[0]


class CrossToTensor(nn.Module):
    """The query ``x``, the key and value another tensor of the same width computed from it."""

    def __init__(self):
        super().__init__()
        self.enc, self.attn = nn.Linear(16, 16), nn.MultiheadAttention(16, 2, batch_first=True)

    def forward(self, x):
        m = torch.tanh(self.enc(x))
        return self.attn(x, m, m, need_weights=False)[0]


def _imported_matches(res, model, x3) -> float:
    imported = compile_graph(res.project.graph)
    imported.load_state_dict(res.weights)
    with torch.no_grad():
        return float((imported.eval()(x3) - model(x3)).abs().max())


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("cls, ports", [(LearnedMemory, {"query": "x", "key": "Parameter"}),
                                        (LearnedKeyValue, {"query": "x", "key": "Parameter", "value": "Parameter"}),
                                        (LearnedQuery, {"query": "Parameter", "key": "x"}),
                                        (CrossToTensor, {"query": "x", "key": "Tanh"})])
def test_attention_to_a_learned_constant_or_another_tensor_imports_with_its_ports(cls, ports, route, tmp_path):
    """``nn.MultiheadAttention`` whose key/value (or query) is a learned constant expanded over the batch, or
    another tensor: read from its projections (q, then kv or k and v, in the order torch computes them), the
    constant becomes a Parameter node (the batch from the input) on the layer's port. It was imported as
    self-attention of the query (the constant folded away), to fail the output check with "report this model";
    a classic file's guessed scope was not even taken for one (its Shape ops refused), and a learned query
    crashed with numpy's broadcast error."""
    torch.manual_seed(0)
    model, x = cls().eval(), torch.randn(2, 4, 16)
    res = import_model(_export(model, x, route, tmp_path))
    assert res.report["max_abs_diff"] <= res.report["tolerance"]
    nodes = {n.id: n for n in res.project.graph.nodes}
    attn = next(n for n in nodes.values() if n.type == "MultiheadAttention")
    fed = {e.target_port: nodes[e.source].type if nodes[e.source].type != "Input" else e.source
           for e in res.project.graph.edges if e.target == attn.id}
    assert fed == ports
    assert attn.params["num_heads"] == 2
    params = [n for n in nodes.values() if n.type == "Parameter"]
    assert res.report["total_params"] == sum(p.numel() for p in model.parameters())
    assert all(sorted(res.weights[f"{p.id}.weight"].shape) == [1, math.prod(p.params["shape"])] for p in params)
    assert _imported_matches(res, model, torch.randn(3, 4, 16)) <= 1e-5  # another batch size: not fixed


@settings(max_examples=6, deadline=None)
@given(steps=st.integers(1, 6), heads=st.sampled_from([1, 2, 4]), route=st.sampled_from(ROUTES[:2] + ROUTES[3:]))
def test_learned_memory_of_any_length_and_heads_imports(steps, heads, route):
    """Any memory length (one step included) and head count, through the dynamo and .pt2 routes."""
    torch.manual_seed(steps)
    model, x = LearnedMemory(steps, 8, heads).eval(), torch.randn(2, 3, 8)
    with tempfile.TemporaryDirectory() as tmp:
        res = import_model(_export(model, x, route, Path(tmp)))
    attn = next(n for n in res.project.graph.nodes if n.type == "MultiheadAttention")
    assert attn.params["num_heads"] == heads
    assert _imported_matches(res, model, torch.randn(3, 3, 8)) <= 1e-5


class LearnedMemoryOtherWidth(nn.Module):
    """A learned memory of another width than the query (kdim = vdim = 4 ≠ embed_dim 8)."""

    def __init__(self):
        super().__init__()
        self.mem = nn.Parameter(torch.randn(1, 5, 4))
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True, kdim=4, vdim=4)

    def forward(self, x):
        return self.attn(x, *[self.mem.expand(x.shape[0], -1, -1)] * 2, need_weights=False)[0]


@pytest.mark.parametrize("route", ROUTES)
def test_learned_key_value_of_another_width_is_refused_naming_it(route, tmp_path):
    """A learned key/value that LayerLab's layer cannot take (another width): refused before the output check,
    naming the module, the learned constant and what to do (it was taken for self-attention of the query)."""
    torch.manual_seed(0)
    model, x = LearnedMemoryOtherWidth().eval(), torch.randn(2, 5, 8)
    with pytest.raises(ModelImportError) as err:
        import_model(_export(model, x, route, tmp_path))
    assert "MultiheadAttention fed a learned constant as key/value (kdim or vdim ≠ embed_dim, or weights renamed)` " \
           "has no LayerLab layer; received: node(s) attn (MultiheadAttention). Fix: use kdim = vdim = embed_dim" \
           in str(err.value)


class ConstantMask(nn.Module):
    """Self-attention with a constant mask that is not causal (steps 1 and 4 hidden from every query)."""

    def __init__(self):
        super().__init__()
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
        self.register_buffer("mask", torch.tensor([[0, 1, 0, 0, 1]] * 5, dtype=torch.bool))

    def forward(self, x):
        return self.attn(x, x, x, attn_mask=self.mask, need_weights=False)[0]


class CausalMask(nn.Module):
    """Self-attention with a causal constant mask, as models write it: a bool ``triu`` buffer, a float ``-inf``
    one (``nn.Transformer.generate_square_subsequent_mask``), or ``is_causal`` with that mask."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind, self.attn = kind, nn.MultiheadAttention(8, 2, batch_first=True)
        bool_mask = torch.triu(torch.ones(5, 5, dtype=torch.bool), 1)
        self.register_buffer("mask", bool_mask if kind == "bool" else nn.Transformer.generate_square_subsequent_mask(5))

    def forward(self, x):
        return self.attn(x, x, x, attn_mask=self.mask, need_weights=False, is_causal=self.kind == "is_causal")[0]


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("kind", ["bool", "float", "is_causal"])
def test_causal_mask_imports_as_the_layers_causal_on_every_route(kind, route, tmp_path):
    """A causal mask becomes the layer's ``causal``. A ``.pt2`` was refused for any mask ("calls
    `aten.masked_fill_`"): torch.export keeps the in-place op MultiheadAttention turns a bool mask into a float
    one with; an imported program may call it (its conversion functionalises it), an Op node may not. With
    ``is_causal`` SDPA builds the mask from the heads' sizes (a Reshape's shape is now read for that); every
    such file imported without its mask, to fail the output check with "report this model". The optimised dynamo
    file reshapes the heads to ``-1``: the size is read from the shape the exporter states (``batch``, 2, 5, 4);
    it was refused by name."""
    torch.manual_seed(0)
    model, x = CausalMask(kind).eval(), torch.randn(2, 5, 8)
    res = import_model(_export(model, x, route, tmp_path))
    (attn,) = [n for n in res.project.graph.nodes if n.type == "MultiheadAttention"]
    assert attn.params["causal"] is True
    assert _imported_matches(res, model, torch.randn(3, 5, 8)) <= 1e-5


class InPlace(nn.Module):
    """Ordinary in-place code: ``inplace=True`` activations and augmented assignments."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(8, 8), nn.Linear(8, 4)
        self.acts = nn.Sequential(nn.ReLU(inplace=True), nn.Hardswish(inplace=True), nn.Dropout(0.1, inplace=True))

    def forward(self, x):
        h = self.a(x)
        h += x
        h *= 0.5
        return self.b(self.acts(h)).clamp_(-1.0, 1.0)


def test_a_pt2_with_in_place_operators_imports_exactly(tmp_path):
    torch.manual_seed(0)
    model = InPlace().eval()
    res = import_model(_export(model, torch.randn(2, 8), "pt2", tmp_path))
    assert res.report["max_abs_diff"] <= res.report["tolerance"]
    assert _imported_matches(res, model, torch.randn(5, 8)) <= 1e-6


@pytest.mark.parametrize("route", ROUTES)
def test_constant_mask_that_is_not_causal_is_refused_naming_it(route, tmp_path):
    """Only a causal constant mask is read (the layer's ``causal``); any other was left out of the import, to
    fail the output check with "report this model"."""
    torch.manual_seed(0)
    with pytest.raises(ModelImportError) as err:
        import_model(_export(ConstantMask().eval(), torch.randn(2, 5, 8), route, tmp_path))
    assert "MultiheadAttention with a constant attention mask that is not causal` has no LayerLab layer; received: " \
           "node(s) attn (MultiheadAttention). Fix: pass no mask, or the causal one" in str(err.value)


class DecoderWithLearned(nn.Module):
    """A TransformerDecoderLayer whose target (learned queries) or memory is a learned tensor."""

    def __init__(self, learned: str, bias: bool = True):
        super().__init__()
        self.learned, self.table = learned, nn.Parameter(torch.randn(1, 3, 8))
        self.dec = nn.TransformerDecoderLayer(8, 2, 16, dropout=0.0, batch_first=True, bias=bias)

    def forward(self, x):
        t = self.table.expand(x.shape[0], -1, -1)
        return self.dec(t, x) if self.learned == "tgt" else self.dec(x, t)


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("learned", ["tgt", "memory"])
def test_decoder_layer_with_a_learned_target_or_memory_imports_with_a_parameter_node(learned, route, tmp_path):
    """A learned target or memory was folded into the decoder's constants, which then had one tensor input and
    was refused as "TransformerDecoderLayer with 1 tensor inputs": it is a Parameter node on its port. The
    optimised dynamo file renames and deduplicates the decoder's weights (equal LayerNorm ones and zeros), and the
    classic one also slices the cross-attention's projections out of in_proj while it runs: both are read by
    structure (both were refused)."""
    torch.manual_seed(0)
    model = DecoderWithLearned(learned).eval()
    res = import_model(_export(model, torch.randn(2, 5, 8), route, tmp_path))
    nodes = {n.id: n for n in res.project.graph.nodes}
    dec = next(n for n in nodes.values() if n.type == "TransformerDecoderLayer")
    fed = {e.target_port: nodes[e.source].type for e in res.project.graph.edges if e.target == dec.id}
    assert fed == {"tgt": "Parameter", "memory": "Input"} if learned == "tgt" else {"tgt": "Input", "memory": "Parameter"}
    assert _imported_matches(res, model, torch.randn(3, 5, 8)) <= 1e-5


@pytest.mark.parametrize("route", ["onnx_dynamo", "onnx_classic", "pt2"])
def test_a_layer_without_bias_imports_and_says_its_biases_are_new(route, tmp_path):
    """``bias=False`` has no LayerLab parameter: the layer imports with zero biases (the same outputs) and a note
    says that fine-tuning will train biases the original did not have (an import changes structure only with a
    note: issue 34)."""
    torch.manual_seed(0)
    model = DecoderWithLearned("memory", bias=False).eval()
    res = import_model(_export(model, torch.randn(2, 5, 8), route, tmp_path))
    assert _imported_matches(res, model, torch.randn(3, 5, 8)) <= 1e-5
    assert any("has no biases (bias=False)" in n and "fine-tuning also trains them" in n for n in res.report["notes"]), res.report["notes"]


# ---------------------------------------------------------------- the data's padding masks on attention layers
def _tokens(nid: str, steps: int) -> dict:
    return {"id": nid, "type": "Input", "params": {"shape": [steps], "modality": "tokens", "vocab_size": 20}}


def _masked(layer: str, params: dict, feeds: dict[str, str], masks: dict[str, str]) -> dict:
    """Two token inputs (5 and 3 steps), each embedded to 8 features; ``layer`` fed the embeddings on
    ``feeds`` ({port: input}) and each input's padding mask on ``masks`` ({port: input})."""
    nodes = [_tokens("a", 5), _tokens("b", 3),
             {"id": "ea", "type": "Embedding", "params": {"embedding_dim": 8}},
             {"id": "eb", "type": "Embedding", "params": {"embedding_dim": 8}},
             {"id": "layer", "type": layer, "params": params}]
    edges = [{"source": "a", "target": "ea"}, {"source": "b", "target": "eb"}]
    edges += [{"source": f"e{src}", "target": "layer", "target_port": port} for port, src in feeds.items()]
    edges += [{"source": src, "source_port": "padding_mask", "target": "layer", "target_port": port}
              for port, src in masks.items()]
    return {"nodes": nodes, "edges": edges}


MASKED_CASES = {
    "self-attention": ("MultiheadAttention", {"num_heads": 2}, {"query": "a"}, {"padding_mask": "a"}),
    "cross-attention": ("MultiheadAttention", {"num_heads": 2}, {"query": "a", "key": "b"}, {"padding_mask": "b"}),
    "encoder": ("TransformerEncoderLayer", {"nhead": 2, "dim_feedforward": 16}, {"in": "a"},
                {"padding_mask": "a"}),
    "decoder, both": ("TransformerDecoderLayer", {"nhead": 2, "dim_feedforward": 16}, {"tgt": "a", "memory": "b"},
                      {"tgt_padding_mask": "a", "memory_padding_mask": "b"}),
    "decoder, memory": ("TransformerDecoderLayer", {"nhead": 2, "dim_feedforward": 16},
                        {"tgt": "a", "memory": "b"}, {"memory_padding_mask": "b"}),
    "decoder, target": ("TransformerDecoderLayer", {"nhead": 2, "dim_feedforward": 16, "causal": False},
                        {"tgt": "a", "memory": "b"}, {"tgt_padding_mask": "a"}),
}


@pytest.mark.parametrize("case", MASKED_CASES)
def test_padding_masks_come_back_on_their_ports(case, tmp_path):
    """A LayerLab model whose attention layers take the data's padding masks exports (the masks derived inside
    from the token ids) and imports back with each mask on the port it came from: self-attention, cross-attention
    (the key's mask), an encoder layer, a decoder layer's target and memory masks apart (told by the attention
    that reads each). Were refused as "2 (or 4) tensor inputs"; the numbers agree on padded ids."""
    from builder.graph.project import as_graph
    from builder.interchange.onnx_export import export_onnx

    layer, params, feeds, masks = MASKED_CASES[case]
    graph = as_graph(_masked(layer, params, feeds, masks))
    export_onnx(graph, tmp_path / "m.onnx")
    res = import_model(tmp_path / "m.onnx")
    assert res.report["max_abs_diff"] <= res.report["tolerance"]
    nodes = {n.id: n for n in res.project.graph.nodes}
    attn = next(n for n in nodes.values() if n.type == layer)
    got = {e.target_port: nodes[e.source].params.get("shape") for e in res.project.graph.edges
           if e.target == attn.id and e.source_port == "padding_mask"}
    assert got == {port: [5 if src == "a" else 3] for port, src in masks.items()}
    torch.manual_seed(0)
    model = compile_graph(graph).eval()
    imported = compile_graph(res.project.graph).eval()
    imported.load_state_dict(res.weights)
    ids = (torch.randint(1, 20, (3, 5)), torch.randint(1, 20, (3, 3)))
    ids[0][:, 3:], ids[1][0, 2:] = 0, 0  # padded steps (id 0)
    by_name = dict(zip(("a", "b"), ids, strict=True))  # the file keeps the inputs' names
    with torch.no_grad():
        want = model(*ids)
        have = imported(*(by_name[n.id] for n in res.project.graph.nodes if n.type == "Input"))
    for w, h in zip(*(o if isinstance(o, tuple) else (o,) for o in (want, have)), strict=True):
        torch.testing.assert_close(h, w, atol=1e-5, rtol=1e-5)


def test_is_causal_in_a_file_stripped_of_its_stated_shapes_is_refused_naming_them(tmp_path):
    """The optimised dynamo file's causal mask is built from a size read from the shapes the exporter states
    (``value_info``). A file without them (a tool stripped them) would import the layer without its mask: it is
    refused by name, and the fix names what brings the sizes back."""
    torch.manual_seed(0)
    path = _export(CausalMask("is_causal").eval(), torch.randn(2, 5, 8), "onnx_dynamo_optimized", tmp_path)
    proto = onnx.load(path)
    del proto.graph.value_info[:]
    onnx.save(proto, path)
    with pytest.raises(ModelImportError) as err:
        import_model(path)
    msg = str(err.value)
    assert "MultiheadAttention with a mask built from its sizes (is_causal) that this file does not let LayerLab " \
           "read" in msg
    assert "Fix: keep the shapes the exporter states for its values (the file's value_info" in msg
