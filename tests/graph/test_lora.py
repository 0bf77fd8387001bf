"""The LoRA node (builder.graph.layers.lora, builder.graph.lora) against PEFT as the oracle: a tiny BERT made with
save_pretrained, imported, LoRA on its attention projections; same initialisation (A and B copied), same outputs
and gradients; the adapter saved in PEFT's format loads into PEFT; the merged model exports as plain .py and ONNX."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from builder.errors import LayerLabError
from builder.graph.compile import compile_graph, module_names
from builder.graph.lora import add_lora, lora_state, lora_targets, merge_lora, peft_adapter, trainable_params
from builder.graph.project import as_graph
from builder.interchange.hf_import import import_hf_folder, inspect_folder, load_reference
from tests.fuzz_budget import budget
from tests.interchange.hf_models import SEQ, make_folder

RANK, ALPHA = 4, 8.0


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    folder = make_folder("bert", tmp_path_factory.mktemp("hf") / "bert", tokenizer=False)
    res = import_hf_folder(folder, seq_len=SEQ)
    graph = add_lora(res.project.graph, "attention", rank=RANK, alpha=ALPHA)
    names = module_names(graph)
    model = compile_graph(graph)
    model.load_state_dict(lora_state(graph, res.weights, names), strict=False)
    return folder, graph, names, model


def _peft(folder):
    from peft import LoraConfig, get_peft_model

    ref = load_reference(inspect_folder(folder, seq_len=SEQ))
    return get_peft_model(ref, LoraConfig(r=RANK, lora_alpha=ALPHA, lora_dropout=0.0,
                                          target_modules=["query", "key", "value"]))


def _same_adapters(graph, names, model, peft_model) -> None:
    """Copy PEFT's A and a random B into the LayerLab model (the same initialisation)."""
    g = torch.Generator().manual_seed(3)
    sd = dict(peft_model.named_parameters())
    with torch.no_grad():
        for n in graph.nodes:
            if n.type != "LoRA":
                continue
            mod = getattr(model, names[n.id])
            a = sd[f"base_model.model.{n.label}.lora_A.default.weight"]
            b = sd[f"base_model.model.{n.label}.lora_B.default.weight"]
            b.copy_(torch.randn(b.shape, generator=g) * 0.1)
            mod.lora_A.weight.copy_(a)
            mod.lora_B.weight.copy_(b)


def test_lora_wraps_the_attention_projections(bert):
    _, graph, _, model = bert
    lora = sorted(n.id for n in graph.nodes if n.type == "LoRA")
    assert lora == ["encoder_layer_0_attention_self_key", "encoder_layer_0_attention_self_query",
                    "encoder_layer_0_attention_self_value"]
    counts = trainable_params(graph)
    assert counts["adapter"] == 3 * RANK * (16 + 16)
    trained = {k for k, p in model.named_parameters() if p.requires_grad}
    assert all(".lora_" in k or "LoRA" not in k for k in trained)
    assert not any("base_layer" in k for k in trained)  # the base is frozen when built


def test_outputs_and_gradients_equal_peft(bert):
    folder, graph, names, model = bert
    peft_model = _peft(folder)
    _same_adapters(graph, names, model, peft_model)
    model.eval()
    peft_model.eval()
    x = torch.randint(0, 100, (3, SEQ), generator=torch.Generator().manual_seed(5))
    ours, theirs = model(x), peft_model(input_ids=x, attention_mask=(x != 0).long()).last_hidden_state  # id 0 pads
    assert torch.allclose(ours, theirs, atol=1e-5, rtol=0)
    ours.pow(2).mean().backward()
    theirs.pow(2).mean().backward()
    sd = dict(peft_model.named_parameters())
    for n in (n for n in graph.nodes if n.type == "LoRA"):
        for part in ("lora_A", "lora_B"):
            mine = getattr(getattr(model, names[n.id]), part).weight.grad
            assert torch.allclose(mine, sd[f"base_model.model.{n.label}.{part}.default.weight"].grad, atol=1e-6)
    model.zero_grad()


def test_adapter_in_peft_format_loads_into_peft(bert, tmp_path):
    from peft import PeftModel

    folder, graph, names, model = bert
    files = peft_adapter(graph, model.state_dict(), names)
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    ref = load_reference(inspect_folder(folder, seq_len=SEQ))
    loaded = PeftModel.from_pretrained(ref, str(tmp_path)).eval()
    model.eval()
    x = torch.randint(0, 100, (2, SEQ))
    with torch.no_grad():
        assert torch.allclose(model(x), loaded(input_ids=x, attention_mask=(x != 0).long()).last_hidden_state,
                              atol=1e-5, rtol=0)


def test_merged_model_is_plain_and_equal(bert, tmp_path):
    from builder.interchange.onnx_export import export_onnx
    from builder.interchange.python_export import export_python

    _, graph, names, model = bert
    merged, weights = merge_lora(graph, model.state_dict(), names)
    assert "LoRA" not in {n.type for n in merged.nodes}
    plain = compile_graph(merged)
    plain.load_state_dict(weights)
    model.eval()
    plain.eval()
    x = torch.randint(0, 100, (2, SEQ))
    with torch.no_grad():
        assert torch.allclose(plain(x), model(x), atol=1e-5, rtol=0)
    space: dict = {}
    exec(compile(export_python(merged), "merged.py", "exec"), space)  # noqa: S102  our own generated code
    py = space["Model"]().eval()
    py.load_state_dict(weights)
    with torch.no_grad():
        assert torch.allclose(py(x), model(x), atol=1e-5, rtol=0)
    rep = export_onnx(merged, tmp_path / "merged.onnx", weights)
    assert rep.max_abs_diff <= 1e-4 and (tmp_path / "merged.onnx").stat().st_size > 0


def _small(out: int = 4):
    return as_graph({"nodes": [{"id": "x", "type": "Input", "params": {"shape": [5]}},
                               {"id": "blk_fc", "type": "Linear", "params": {"out_features": out}},
                               {"id": "head", "type": "Linear", "params": {"out_features": 2, "bias": False}}],
                     "edges": [{"source": "x", "target": "blk_fc"}, {"source": "blk_fc", "target": "head"}]})


def test_lora_graph_exports_as_python_with_the_same_keys():
    from builder.interchange.python_export import export_python

    graph = add_lora(_small(), "blk_fc", rank=2, alpha=4.0, dropout=0.1)
    model = compile_graph(graph)
    space: dict = {}
    exec(compile(export_python(graph), "lora.py", "exec"), space)  # noqa: S102  our own generated code
    py = space["Model"]()
    assert set(py.state_dict()) == set(model.state_dict())
    assert {k for k, p in py.named_parameters() if p.requires_grad} == \
        {k for k, p in model.named_parameters() if p.requires_grad}
    py.load_state_dict(model.state_dict())
    model.eval()
    py.eval()
    x = torch.randn(3, 5)
    assert torch.allclose(py(x), model(x))


def test_unknown_target_lists_the_linear_nodes():
    with pytest.raises(LayerLabError, match="names no Linear node.*blk_fc, head"):
        lora_targets(_small(), "encoder")


@settings(max_examples=budget(25), deadline=None)
@given(out=st.integers(1, 6), rank=st.integers(1, 8), alpha=st.floats(0.5, 64), bias=st.booleans())
def test_counts_match_the_built_module(out, rank, alpha, bias):
    g = _small(out)
    g = g.model_copy(update={"nodes": [n.model_copy(update={"params": {**n.params, "bias": bias}})
                                       if n.id == "blk_fc" else n for n in g.nodes]})
    graph = add_lora(g, "blk", rank=rank, alpha=alpha)
    model = compile_graph(graph)
    counts = trainable_params(graph)
    assert counts["trainable"] == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert counts["frozen"] == sum(p.numel() for p in model.parameters() if not p.requires_grad)
    merged, weights = merge_lora(graph, model.state_dict(), module_names(graph))
    plain = compile_graph(merged)
    plain.load_state_dict(weights)
    x = torch.randn(2, 5)
    assert torch.allclose(plain(x), model.eval()(x), atol=1e-5)


def test_canvas_shows_what_trains_per_node_and_in_the_summary():
    """Frozen nodes, LoRA nodes (adapter trains, base frozen) and trainable ones reach the canvas annotations; a
    graph where everything trains gets no badges."""
    from builder.graph.cost import canvas_annotations
    from builder.graph.lora import add_lora, trainable_params
    from builder.graph.project import as_graph
    from builder.graph.shapes import infer_shapes

    g = as_graph({"nodes": [{"id": "x", "type": "Input", "params": {"shape": [4]}},
                            {"id": "body", "type": "Linear", "params": {"out_features": 4}},
                            {"id": "enc_q", "type": "Linear", "params": {"out_features": 4}},
                            {"id": "head", "type": "Linear", "params": {"out_features": 2}}],
                  "edges": [{"source": "x", "target": "body"}, {"source": "body", "target": "enc_q"},
                            {"source": "enc_q", "target": "head"}]})
    plain = canvas_annotations(g, infer_shapes(g))
    assert "trainable" not in plain["summary"] and not any("train" in n for n in plain["nodes"].values())
    g2 = add_lora(g, "enc_q", rank=2)
    report = infer_shapes(g2)
    ann = canvas_annotations(g2, report, freeze=["body"])
    nodes = ann["nodes"]
    assert nodes["body"]["train"] == {"state": "frozen", "trainable": 0, "frozen": 20}
    assert nodes["enc_q"]["train"] == {"state": "adapter", "trainable": 16, "frozen": 20}
    assert nodes["head"]["train"]["state"] == "trainable" and "train" not in nodes["x"]
    assert ann["summary"]["trainable"] == trainable_params(g2, ["body"]) == {"trainable": 26, "frozen": 40,
                                                                            "adapter": 16}


def test_finetune_freeze_reuses_the_canvas_pass():
    from builder.graph.project import as_graph
    from builder.graph.shapes import infer_shapes
    from builder.training.finetune import finetune_freeze

    g = as_graph({"nodes": [{"id": "x", "type": "Input", "params": {"shape": [4]}},
                            {"id": "body", "type": "Linear", "params": {"out_features": 4}},
                            {"id": "head", "type": "Linear", "params": {"out_features": 2}}],
                  "edges": [{"source": "x", "target": "body"}, {"source": "body", "target": "head"}]})
    assert finetune_freeze(g, "linear_probe", report=infer_shapes(g)) == finetune_freeze(g, "linear_probe") == ["body"]
