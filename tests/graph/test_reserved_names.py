"""Node ids that collide with attributes of ``nn.Module``, ``fx.GraphModule``, ``fx.Graph``, Python keywords,
builtins or LayerLab's own attributes: validation accepts them and every consumer (compile, forward,
backward, the ``.py`` export, ONNX, freezing, init-from, layer lookup) works, because each node gets its
module attribute from :func:`builder.graph.compile.module_names`; or validation refuses with a located
problem. Never a raw exception."""

from __future__ import annotations

import builtins
import keyword

import pytest
import torch
import torch.fx as fx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from builder import compile_graph, example_inputs, export_python, infer_shapes, module_names
from builder.graph.compile import _RESERVED
from builder.interpret.model import resolve_layer
from builder.runs.pipeline import transfer_weights
from builder.training.callbacks import freeze_nodes
from tests.fuzz_budget import budget

_GM = fx.GraphModule(nn.Module(), fx.Graph())
LAYERLAB_ATTRS = ["layerlab_names", "layerlab_types", "layerlab_inputs", "layerlab_outputs", "layerlab_input_shapes",
                  "layerlab_input_dtypes", "layerlab_vocab", "layerlab_output_shapes", "_user_preserved_attributes"]
NAMES = sorted(set(dir(nn.Module())) | set(dir(_GM)) | set(dir(fx.GraphModule)) | set(dir(fx.Graph))
               | set(keyword.kwlist) | set(keyword.softkwlist) | set(dir(builtins)) | set(LAYERLAB_ATTRS)
               | {"torch", "getattr", "meta", "graph", "code", "shape_env", "_modules", "fx_pytree", "pytree", "x",
                  "input", "output", "out", "self", "nn", "math", "operator", "device", "inf", "nan", "Model"})
# a chain that keeps a (5, 4) sequence: modules with parameters, a buffer (PositionalEncoding), module-less ops
CHAIN = [("Linear", {"out_features": 4}), ("ReLU", {}), ("LayerNorm", {}), ("PositionalEncoding", {}),
         ("Identity", {}), ("GroupNorm", {"num_groups": 1}), ("Dropout", {"p": 0.0}), ("Add", {})]


def _chain(ids: list[str]) -> dict:
    nodes = [{"id": ids[0], "type": "Input", "params": {"shape": [5, 4]}}]
    edges = []
    for i, nid in enumerate(ids[1:]):
        typ, params = CHAIN[i % len(CHAIN)]
        nodes.append({"id": nid, "type": typ, "params": params})
        edges.append({"source": nodes[-2]["id"], "target": nid})
        if typ == "Add":
            edges.append({"source": ids[0], "target": nid})
    return {"nodes": nodes, "edges": edges}


def _run_everywhere(graph: dict, onnx: bool = True) -> None:
    report = infer_shapes(graph)
    assert report.ok, [p.message for p in report.problems]
    model = compile_graph(graph, report=report)
    names = module_names(graph)
    assert all(n not in _RESERVED and n.isidentifier() and not keyword.iskeyword(n) for n in names.values())
    xs = example_inputs(model, batch_size=3)
    out = model(*xs)
    assert tuple(out.shape) == (3, *report.nodes[report.output_nodes[0]].shape)
    out.sum().backward()
    ns: dict = {}
    exec(compile(export_python({"format": "layerlab", "version": 1, "graph": graph}), "<e>", "exec"), ns)  # noqa: S102
    exported = ns["Model"]()
    exported.load_state_dict(model.state_dict())
    model.eval(), exported.eval()
    with torch.no_grad():
        torch.testing.assert_close(exported(*xs), model(*xs), rtol=0, atol=1e-6)
    with_weights = [n for n in model.layerlab_names if any(True for _ in resolve_layer(model, n)[1].parameters())]
    assert freeze_nodes(model, with_weights) == with_weights
    assert not any(p.requires_grad for p in model.parameters())
    fresh = compile_graph(graph, report=report)
    assert sorted(transfer_weights(fresh, model.state_dict(), model.layerlab_names)["loaded"]) == sorted(with_weights)
    if onnx:
        from builder.interchange.onnx_export import export_onnx

        export_onnx(graph, None)


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("chunk", range(0, len(NAMES), 120))
def test_every_reserved_name_as_node_id_compiles_runs_and_exports(chunk):
    _run_everywhere(_chain(NAMES[chunk:chunk + 120]), onnx=False)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_reserved_names_export_to_onnx():
    # ONNX names the inputs and outputs after the module names; the buffer (PositionalEncoding) is `graph`
    _run_everywhere(_chain(["training", "meta", "shape_env", "_modules", "graph", "forward", "code", "state_dict",
                            "layerlab_names"]))


@settings(max_examples=budget(60), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(NAMES) | st.text(min_size=1, max_size=12), min_size=2, max_size=9, unique=True))
def test_drawn_reserved_ids_accepted_and_work_or_refused_with_a_location(ids):
    graph = _chain(ids)
    report = infer_shapes(graph)  # never raises
    if not report.ok:
        assert all(p.node is not None or p.edge is not None for p in report.problems), report.problems
        return
    _run_everywhere(graph, onnx=False)


def test_mapping_is_deterministic_and_suffixes_clashes():
    graph = _chain(["meta", "meta_", "training", "training_", "shape_env", "_modules", "layerlab_names"])
    names = module_names(graph)
    assert names == module_names(graph)
    assert len(set(names.values())) == len(names)
    assert names["meta"] == "meta_" and names["meta_"] == "meta__2"


def test_names_that_work_keep_their_name():
    # renaming would move a node's weights to other state-dict keys: only names that cannot work are renamed
    ids = ["x", "output", "nodes", "match", "case", "placeholder", "lint", "conv1"]
    assert module_names(_chain(ids)) == {i: i for i in ids}
