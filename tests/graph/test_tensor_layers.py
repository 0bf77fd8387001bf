"""Tensor plumbing, arithmetic, the new activations and norms (issue 17): what the per-layer tables do not
check: old files load unchanged, values equal torch's, learned Parameters are parameters, MatMul's MACs, the
worded refusals, and the NaN-producing functions exported on inputs where they are defined."""

from __future__ import annotations

import pytest
import torch

from builder import compile_graph, export_python, infer_shapes
from builder.graph.cost import node_costs
from builder.interchange.onnx_export import export_onnx


def _chain(shape, *layers, extra_inputs=()):
    """Input `x` of `shape` -> layers in a chain (each (id, type, params)); extra inputs feed named ports."""
    nodes = [{"id": "x", "type": "Input", "params": {"shape": list(shape)}}]
    edges, prev = [], "x"
    for nid, typ, params in layers:
        nodes.append({"id": nid, "type": typ, "params": params})
        edges.append({"source": prev, "target": nid})
        prev = nid
    for nid, shape2, target, port in extra_inputs:
        nodes.append({"id": nid, "type": "Input", "params": {"shape": list(shape2)}})
        edges.append({"source": nid, "target": target, "target_port": port})
    return {"nodes": nodes, "edges": edges}


def _run(graph, *xs):
    model = compile_graph(graph).eval()
    with torch.no_grad():
        return model, model(*xs)


def test_old_mean_files_behave_as_before():
    graph = _chain([5, 3], ("m", "Mean", {"dim": 1}))
    model, out = _run(graph, x := torch.randn(2, 5, 3))
    assert "x.mean(1)" in model.code and "keepdim" not in model.code
    assert torch.equal(out, x.mean(1))
    assert infer_shapes(graph).nodes["m"].shape == (3,)


@pytest.mark.parametrize("typ,fn", [("Mean", torch.mean), ("Sum", torch.sum), ("Max", torch.amax),
                                    ("Min", torch.amin)])
def test_reductions_over_several_dims(typ, fn):
    graph = _chain([2, 3, 4], ("r", typ, {"dim": [2, -1], "keepdim": True}))
    x = torch.randn(2, 2, 3, 4)
    _, out = _run(graph, x)
    assert torch.allclose(out, fn(x, dim=(2, 3), keepdim=True))
    assert infer_shapes(graph).nodes["r"].shape == (2, 1, 1)
    bad = infer_shapes(_chain([2, 3], ("r", typ, {"dim": [1, 1]})))
    assert "each dimension may be reduced once" in bad.problems[0].message and "Fix:" in bad.problems[0].message


def test_select_last_step_slice_and_chunk_are_indexing():
    x = torch.randn(2, 6, 4)
    _, last = _run(_chain([6, 4], ("s", "Select", {"dim": 1, "index": -1})), x)
    assert torch.equal(last, x[:, -1])
    _, sl = _run(_chain([6, 4], ("s", "Slice", {"dim": 1, "start": 1, "end": -1, "step": 2})), x)
    assert torch.equal(sl, x[:, 1:-1:2])
    _, ch = _run(_chain([6, 4], ("c", "Chunk", {"chunks": 2, "dim": -1, "index": 1})), x)
    assert torch.equal(ch, x[..., 2:])


def test_parameter_is_learned_and_counted():
    """A class token: Parameter (1, 8) concatenated in front of a (5, 8) sequence."""
    graph = _chain([5, 8], ("tok", "Parameter", {"shape": [1, 8], "init": "zeros"}))
    graph["nodes"].append({"id": "cat", "type": "Concat", "params": {"dim": 1}})
    graph["edges"] += [{"source": "tok", "target": "cat", "target_port": "0"},
                       {"source": "x", "target": "cat", "target_port": "1"}]
    rep = infer_shapes(graph)
    assert rep.ok, rep.problems
    assert rep.nodes["cat"].shape == (6, 8) and rep.nodes["tok"].num_params == 8 == rep.total_params
    model = compile_graph(graph)
    assert sum(p.numel() for p in model.parameters()) == 8
    x = torch.randn(3, 5, 8)
    out = model(x)
    assert torch.equal(out[:, 0], torch.zeros(3, 8)) and torch.equal(out[:, 1:], x)  # zeros init
    out.sum().backward()
    assert torch.equal(next(model.parameters()).grad, torch.full((1, 8), 3.0))  # one gradient per sample
    src = export_python(graph)
    ns: dict = {}
    exec(compile(src, "<export>", "exec"), ns)
    exported = ns["Model"]()
    assert set(exported.state_dict()) == set(model.state_dict())
    exported.load_state_dict(model.state_dict())
    assert torch.equal(exported(x), model(x))


def test_constant_follows_the_batch():
    graph = _chain([3], ("c", "Constant", {"shape": [2, 2], "value": 1.5}))
    _, out = _run(graph, torch.randn(4, 3))
    assert out.shape == (4, 2, 2) and out.dtype == torch.float32 and bool((out == 1.5).all())


def test_matmul_shapes_macs_and_refusals():
    graph = _chain([4, 6], ("mm", "MatMul", {}), extra_inputs=[("y", [6, 5], "mm", "other")])
    rep = infer_shapes(graph)
    assert rep.ok and rep.nodes["mm"].shape == (4, 5)
    assert {c.node: c.macs for c in node_costs(rep)}["mm"] == 4 * 6 * 5
    a, b = torch.randn(2, 4, 6), torch.randn(2, 6, 5)
    model, out = _run(graph, a, b)
    assert torch.allclose(out, a @ b)
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc:
        model(a[:1], b[:1])
    assert fc.get_total_flops() == 2 * 4 * 6 * 5
    bad = infer_shapes(_chain([4, 6], ("mm", "MatMul", {}), extra_inputs=[("y", [5, 5], "mm", "other")]))
    msg = bad.nodes["mm"].errors[0]
    assert "n×k @ k×m" in msg and "received:" in msg and "Fix: Transpose other" in msg


def test_binary_ops_broadcast_and_refuse_mismatches():
    graph = _chain([3, 4], ("d", "Sub", {}), extra_inputs=[("y", [1, 4], "d", "other")])
    a, b = torch.randn(2, 3, 4), torch.randn(2, 1, 4)
    _, out = _run(graph, a, b)
    assert torch.equal(out, a - b)
    bad = infer_shapes(_chain([3, 4], ("d", "Div", {}), extra_inputs=[("y", [3, 5], "d", "other")]))
    assert "differ in dim 2" in bad.nodes["d"].errors[0] and "Fix:" in bad.nodes["d"].errors[0]


def test_layernorm_old_files_and_trailing_dims():
    old = _chain([4, 6], ("n", "LayerNorm", {}))
    assert infer_shapes(old).nodes["n"].inferred == {"normalized_shape": 6}
    assert "nn.LayerNorm(6)" in export_python(old)
    img = _chain([3, 4, 4], ("n", "LayerNorm", {"normalized_dims": 3, "elementwise_affine": False}))
    x = torch.randn(2, 3, 4, 4)
    _, out = _run(img, x)
    assert torch.allclose(out, torch.nn.functional.layer_norm(x, (3, 4, 4)), atol=1e-6)


def test_prelu_per_channel_and_instance_norm_counts():
    rep = infer_shapes(_chain([6, 5], ("p", "PReLU", {"per_channel": True}),
                              ("i", "InstanceNorm1d", {"affine": True, "track_running_stats": True})))
    assert rep.ok and rep.nodes["p"].num_params == 6 and rep.nodes["i"].num_params == 12
    assert rep.nodes["i"].num_buffers == 13


@pytest.mark.parametrize("layers", [
    [("s", "Sigmoid", {}), ("f", "Sqrt", {})], [("s", "Sigmoid", {}), ("f", "Log", {})],
    [("s", "Sigmoid", {}), ("f", "Arithmetic", {"op": "pow", "constant": 0.5})],
    [("s", "Softplus", {}), ("f", "Reciprocal", {}), ("u", "Upsample", {"scale_factor": 1.5, "mode": "linear"})],
], ids=["sqrt", "log", "pow", "reciprocal-upsample"])
def test_functions_defined_for_positive_inputs_export_to_onnx(layers):
    """Sqrt, Log and fractional powers give NaN on the exporter's random normal inputs (so the shared per-layer
    ONNX check feeds them through a Sigmoid first)."""
    assert export_onnx(_chain([3, 5], *layers), None).max_abs_diff < 1e-4


def test_pad_and_upsample_refusals_are_worded():
    msg = infer_shapes(_chain([4], ("p", "Pad", {"pad": [4, 0], "mode": "reflect"}))).problems[0].message
    assert "smaller than the size it pads" in msg and "Fix:" in msg
    msg = infer_shapes(_chain([2, 4], ("u", "Upsample", {"mode": "bilinear"}))).problems[0].message
    assert "mode 'bilinear'" in msg and "Fix: use mode 'nearest' or 'linear'" in msg


def test_grouped_and_depthwise_convolution():
    graph = _chain([8, 6, 6], ("dw", "Conv2d", {"out_channels": 16, "kernel_size": 3, "groups": 8, "padding": 1}))
    rep = infer_shapes(graph)
    assert rep.ok and rep.nodes["dw"].num_params == 16 * 1 * 9 + 16
    model = compile_graph(graph)
    assert model.dw.groups == 8 and "groups=8" in export_python(graph)
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc:
        model(torch.randn(1, 8, 6, 6))
    assert fc.get_total_flops() == 2 * {c.node: c.macs for c in node_costs(rep)}["dw"]
    old = _chain([8, 6, 6], ("c", "Conv2d", {"out_channels": 4}))  # a file from before `groups`
    assert "nn.Conv2d(8, 4, 3)" in export_python(old)
    msg = infer_shapes(_chain([6, 10], ("c", "Conv1d", {"out_channels": 8, "groups": 4}))).problems[0].message
    assert "groups must divide both the 6 input channels and out_channels=8" in msg and "Fix: use one of [1, 2]" in msg


def test_conv_transpose_1d_with_output_padding():
    graph = _chain([4, 5], ("up", "ConvTranspose1d", {"out_channels": 2, "kernel_size": 3, "stride": 2,
                                                       "padding": 1, "output_padding": 1}))
    x = torch.randn(2, 4, 5)
    model, out = _run(graph, x)
    want = torch.nn.functional.conv_transpose1d(x, model.up.weight, model.up.bias, 2, 1, 1)
    assert out.shape == (2, 2, 10) and torch.allclose(out, want)
    assert infer_shapes(graph).nodes["up"].shape == (2, 10)


def test_cast_to_ids_keeps_the_vocabulary_it_declares():
    """Found by the graph fuzzer (seed 777): float values cast to int64 ids reached an Embedding of vocab_size ids
    out of range (torch's IndexError at run time in an accepted graph); they are clamped into 0..vocab_size-1."""
    from builder.graph.project import Edge, Graph, Node

    graph = Graph(nodes=[Node(id="x", type="Input", params={"shape": [3]}),
                         Node(id="ids", type="Cast", params={"dtype": "int64", "vocab_size": 20}),
                         Node(id="emb", type="Embedding", params={"embedding_dim": 2})],
                  edges=[Edge(source="x", target="ids"), Edge(source="ids", target="emb")])
    model = compile_graph(graph).eval()
    x = torch.tensor([[-3.2, 5.9, 40.0]])
    assert model(x).shape == (1, 3, 2)
    ids = compile_graph(Graph(nodes=graph.nodes[:2], edges=graph.edges[:1])).eval()(x)
    assert ids.tolist() == [[0, 5, 19]]


def test_integers_of_unknown_vocabulary_reach_an_embedding_through_a_cast():
    """Integers from an operator (no vocabulary) are a located problem at an Embedding, whose fix works."""
    from builder.graph.layers.recurrent import _embedding_shape
    from builder.graph.layers.tensor import _cast_shape
    from builder.graph.spec import TOKENS, ShapeError, TensorType

    ids = TensorType((5,), TOKENS, None)
    with pytest.raises(ShapeError, match="Cast with dtype int64 and vocab_size"):
        _embedding_shape({"padding_idx": 3, "embedding_dim": 4}, [ids])
    cast = _cast_shape({"dtype": "int64", "vocab_size": 12}, [ids])
    assert cast.vocab == 12 and _embedding_shape({"padding_idx": 3, "embedding_dim": 4}, [cast]).shape == (5, 4)
