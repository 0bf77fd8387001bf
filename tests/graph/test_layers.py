"""Every registered layer: inferred shape == the real module's output, over drawn params and inputs."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from builder import Project, compile_graph, infer_shapes, load_project
from builder.graph.compile import example_inputs
from builder.graph.registry import PADDING_MASK, TOKENS, all_specs, get_spec
from tests.fuzz_budget import budget
from tests.strategies import layer_case

SPECS = [s for s in all_specs() if s.type != "Input"]


def _graph(layer: str, shapes, params, masks: bool = False) -> dict:
    """One ``layer`` fed by one Input per shape; with ``masks``, each of its mask ports (``mask_inputs``) gets the
    padding mask of the Input at the same position (the last Input for the ports beyond)."""
    spec = get_spec(layer)
    nodes, edges = [], []
    for i, shape in enumerate(shapes):
        inp = {"shape": list(shape)}
        if spec.input_kind == TOKENS:
            inp.update(modality="tokens", vocab_size=20)
        nodes.append({"id": f"in{i}", "type": "Input", "params": inp})
        edges.append({"source": f"in{i}", "target": "layer", "target_port": str(i) if spec.variadic else None})
    for i, port in enumerate(spec.mask_inputs if masks else ()):
        edges.append({"source": f"in{min(i, len(shapes) - 1)}", "source_port": PADDING_MASK, "target": "layer",
                      "target_port": port})
    nodes.append({"id": "layer", "type": layer, "params": params})
    return {"nodes": nodes, "edges": edges}


def test_every_palette_type_is_covered():
    listed = {"Input", "Linear", "Conv1d", "Conv2d", "ConvTranspose2d", "MaxPool1d", "MaxPool2d", "AvgPool1d",
              "AvgPool2d", "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "BatchNorm1d", "BatchNorm2d", "LayerNorm",
              "GroupNorm", "Dropout", "Dropout2d", "Flatten", "Unflatten", "Reshape", "Permute", "Embedding", "RNN",
              "LSTM", "GRU", "MultiheadAttention", "TransformerEncoderLayer", "TransformerDecoderLayer",
              "PositionalEncoding", "ReLU",
              "LeakyReLU", "ELU", "GELU", "SiLU", "Sigmoid", "Tanh", "Softmax", "LogSoftmax", "Add", "Concat",
              "Multiply", "Identity"}
    assert listed <= {s.type for s in all_specs()}


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.type)
@settings(max_examples=budget(25), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_inferred_shape_matches_module(spec, data):
    shapes, params = data.draw(layer_case(spec))
    graph = _graph(spec.type, shapes, params, masks=bool(spec.mask_inputs) and data.draw(st.booleans()))
    report = infer_shapes(graph)
    info = report.nodes["layer"]
    if not report.ok:
        # a rejection must be located on the node and worded with a fix
        assert info.status == "error" and info.errors, report.problems
        assert all(p.node or p.edge for p in report.problems)
        assert any("Fix" in p.message or "fix" in p.message for p in report.problems)
        return
    model = compile_graph(graph).eval()
    xs = []
    for shape in shapes:
        if spec.input_kind == TOKENS:
            xs.append(torch.randint(0, 20, (3, *shape)))
        else:
            xs.append(torch.randn(3, *shape))
    xs += example_inputs(model, 3)[len(xs):]  # the padding masks, if any
    with torch.no_grad():
        out = model(*xs)
    assert tuple(out.shape) == (3, *info.shape), (spec.type, params, shapes)
    # every output port has a real tensor of the inferred shape
    for port, t in info.outputs.items():
        assert len(t.shape) >= 0 and port in spec.outputs
    # the parameter count equals the module's
    sub = dict(model.named_modules()).get(model.layerlab_names.get("layer", ""), None)
    if sub is not None:
        assert info.num_params == sum(p.numel() for p in sub.parameters())
    # the JSON round-trip keeps the node intact
    project = Project(graph=graph)
    again = load_project(project.to_json())
    assert again.graph == project.graph


# per multi-output type: (params, the second port, expected shapes of both ports for an input of (5, 6))
MULTI_OUTPUT = {"Op": ({"op": "aten.var_mean.correction", "args": '[{"t": 0}, [-1]]', "outputs": 2,
                        "kwargs": '{"correction": 0}'}, "out1", (5,), (5,))}
RECURRENT = ({"hidden_size": 4, "bidirectional": True, "output_mode": "all"}, "h_n", (5, 8), (8,))


@pytest.mark.parametrize("spec", [s for s in SPECS if s.outputs != ("out",)], ids=lambda s: s.type)
def test_multi_output_ports(spec):
    params, second, shape_a, shape_b = MULTI_OUTPUT.get(spec.type, RECURRENT)
    graph = {"nodes": [{"id": "x", "type": "Input", "params": {"shape": [5, 6]}},
                       {"id": "r", "type": spec.type, "params": params},
                       {"id": "a", "type": "Identity"}, {"id": "b", "type": "Identity"}],
             "edges": [{"source": "x", "target": "r"}, {"source": "r", "target": "a", "source_port": "out"},
                       {"source": "r", "target": "b", "source_port": second}]}
    rep = infer_shapes(graph)
    assert rep.ok, rep.problems
    assert rep.nodes["a"].shape == shape_a and rep.nodes["b"].shape == shape_b
    out_a, out_b = compile_graph(graph)(torch.randn(2, 5, 6))
    assert out_a.shape == (2, *shape_a) and out_b.shape == (2, *shape_b)


def test_param_schema_is_complete():
    for spec in all_specs():
        for p in spec.params:
            assert p.help, f"{spec.type}.{p.name} has no help text"
            v, err = p.check(p.default) if p.default is not None or p.nullable else (None, None)
            assert err is None, (spec.type, p.name, err)


def test_self_built_modules_are_counted_without_torch():
    """A spec that builds its own module (Op, LoRA) also counts it: one without the other is refused."""
    from builder.graph.spec import LayerSpec

    held = [s.type for s in all_specs() if s.make_module is not None]
    assert {"Op", "LoRA"} <= set(held)
    assert all(get_spec(t).counts is not None for t in held)
    with pytest.raises(ValueError, match="make_module and counts come together"):
        LayerSpec("Half", "Dense", "only a module", make_module=lambda p, ins: None)
