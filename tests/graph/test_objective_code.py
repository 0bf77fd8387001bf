"""Objective nodes compile to plain torch calls: each loss node's compiled value equals its eager function
(builder.graph.layers.objective), Reparameterize / Noise / Target keep their train and eval behaviour, and the
exported ``.py`` of the gan and vae templates runs without LayerLab and gives the compiled model's outputs."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from builder import compile_graph, export_python, infer_shapes
from builder.graph.layers.objective import LOSS_FUNCTIONS, reparameterize
from builder.graph.registry import get_spec
from builder.graph.templates import OBJECTIVE_TEMPLATES, load_template
from tests.fuzz_budget import budget


def _graph(layer: str, shapes, params: dict) -> dict:
    ports = get_spec(layer).inputs
    nodes = [{"id": f"in{i}", "type": "Input", "params": {"shape": list(s)}} for i, s in enumerate(shapes)]
    nodes.append({"id": "L", "type": layer, "params": params})
    return {"nodes": nodes, "edges": [{"source": f"in{i}", "target": "L", "target_port": ports[i]}
                                      for i in range(len(shapes))]}


@st.composite
def loss_case(draw, layer: str):
    """(input shapes, params, input tensors) of a valid loss node."""
    c = draw(st.integers(2, 5))
    if layer == "CrossEntropyLoss":
        soft = draw(st.booleans())  # C probabilities in any shape the shape rule takes ((C, 1): read as B·C ids)
        shapes = [(c,), draw(st.sampled_from([(c,), (c, 1), (1, c)])) if soft else (1,)]
    elif layer in ("KLDivLoss", "DistillationLoss"):
        shapes = [(c,), (c,)]
    elif layer == "PenaltyLoss":
        shapes = [tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=2)))]
    else:
        shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=3)))
        flat = draw(st.booleans()) and layer != "GaussianKLLoss"
        shapes = [shape, (int(torch.tensor(shape).prod()),) if flat else shape]
    spec = get_spec(layer)
    params = {p.name: draw(st.sampled_from(p.choices)) if p.choices else p.default for p in spec.params}
    if "label_smoothing" in params:
        params["label_smoothing"] = draw(st.sampled_from([0.0, 0.1]))
    if "delta" in params:
        params["delta"] = draw(st.sampled_from([0.5, 1.0]))
    xs = [torch.randn(3, *s) for s in shapes]
    if layer == "CrossEntropyLoss" and shapes[1] == (1,):
        xs[1] = torch.randint(0, c, (3, 1)).float()
    elif layer == "CrossEntropyLoss":
        xs[1] = xs[1].reshape(3, -1).softmax(-1).reshape(xs[1].shape)
    return shapes, params, xs


@pytest.mark.parametrize("layer", sorted(LOSS_FUNCTIONS))
@settings(max_examples=budget(6), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_compiled_losses_equal_their_functions(layer, data):
    shapes, params, xs = data.draw(loss_case(layer))
    graph = _graph(layer, shapes, params)
    rep = infer_shapes(graph)
    assert rep.ok, rep.problems
    fn, names = LOSS_FUNCTIONS[layer]
    with torch.no_grad():
        got = compile_graph(graph)(*xs)
        want = fn(*xs, **{n: params[n] for n in names})
    assert got.shape == (3,) and torch.allclose(got, want, atol=1e-6), (layer, params, shapes)


def test_reparameterize_draws_in_training_and_gives_mu_in_eval():
    graph = _graph("Reparameterize", [(4,), (4,)], {})
    model = compile_graph(graph)
    mu, lv = torch.randn(3, 4), torch.randn(3, 4)
    torch.manual_seed(0)
    got = model.train()(mu, lv)
    torch.manual_seed(0)
    assert torch.equal(got, reparameterize(mu, lv))
    assert torch.equal(model.eval()(mu, lv), mu)


@pytest.mark.parametrize("layer, params, eval_value", [
    ("Noise", {"size": 5, "distribution": "gaussian"}, 0.0), ("Noise", {"size": 5, "distribution": "uniform"}, 0.5),
    ("Target", {"source": "labels", "size": 5}, 0.0), ("Target", {"source": "ones"}, 1.0)])
def test_stand_ins_of_fed_nodes(layer, params, eval_value):
    model = compile_graph(_graph(layer, [(5,)], params))
    like = torch.randn(3, 5)
    assert torch.equal(model.eval()(like), torch.full((3, 5), eval_value))
    drawn = model.train()(like)
    assert drawn.shape == (3, 5) and (layer == "Target" or not torch.equal(drawn, torch.full((3, 5), eval_value)))


@pytest.mark.parametrize("distribution", ["gaussian", "uniform"])
def test_noise_is_float_when_its_like_holds_token_ids(distribution):
    """Found by the graph fuzzer (seed 20261123): a uniform Noise fed by a tokens Input drew in torch.long,
    which torch refuses; noise is float whatever gives it the batch size, compiled and exported alike."""
    from builder.graph.project import Edge, Graph, Node

    graph = Graph(nodes=[Node(id="x", type="Input", params={"shape": [4], "modality": "tokens", "vocab_size": 7}),
                         Node(id="z", type="Noise", params={"size": 3, "distribution": distribution})],
                  edges=[Edge(source="x", target="z")])
    assert infer_shapes(graph).ok
    ids = torch.randint(0, 7, (2, 4))
    model = compile_graph(graph)
    for mode in (model.eval(), model.train()):
        out = mode(ids)
        assert out.dtype == torch.float32 and out.shape == (2, 3)
    namespace: dict = {}
    exec(compile(export_python(graph), "noise.py", "exec"), namespace)  # noqa: S102 - our own generated code
    assert namespace["Model"]().eval()(ids).dtype == torch.float32


@pytest.mark.parametrize("source", ["input", "teacher"])
def test_a_target_is_float_when_its_like_holds_token_ids(source):
    """An audit found it: a Target (labels, teacher) whose `like` port held token ids stood in as int64 zeros, which
    its shape rule calls float: a Softmax or Linear after it failed in the compiled model and the exported .py."""
    from builder.graph.project import Edge, Graph, Node

    graph = Graph(nodes=[Node(id="x", type="Input", params={"shape": [4], "modality": "tokens", "vocab_size": 7}),
                         Node(id="t", type="Target", params={"source": source, "size": 3}),
                         Node(id="s", type="Softmax")],
                  edges=[Edge(source="x", target="t"), Edge(source="t", target="s")])
    assert infer_shapes(graph).ok
    ids = torch.randint(0, 7, (2, 4))
    assert compile_graph(graph).eval()(ids).dtype == torch.float32
    namespace: dict = {}
    exec(compile(export_python(graph), "target.py", "exec"), namespace)  # noqa: S102 - our own generated code
    assert namespace["Model"]().eval()(ids).shape == (2, 3)


@pytest.mark.parametrize("name", OBJECTIVE_TEMPLATES)
def test_objective_templates_export_python_that_runs_without_layerlab(name):
    project = load_template(name)
    source = export_python(project)
    assert "builder" not in source.split('"""', 2)[2]  # only torch: no LayerLab helper is called
    namespace: dict = {}
    exec(compile(source, f"{name}.py", "exec"), namespace)  # noqa: S102 - our own generated code
    model = compile_graph(project.graph).eval()
    exported = namespace["Model"]().eval()
    exported.load_state_dict(model.state_dict())
    x = torch.rand(3, 64)
    with torch.no_grad():
        for a, b in zip(exported(x), model(x), strict=True):
            assert torch.allclose(a, b)


@pytest.mark.parametrize("source", ["PenaltyLoss", "Linear", "Target input"])
def test_a_cross_entropys_class_ids_come_from_a_target_of_the_labels(source):
    """``make fuzz`` (seed 31437, graph 9473): a PenaltyLoss's per-sample value fed a CrossEntropyLoss's target as
    class ids; validation accepted it and the forward pass failed ("Class values must be non-negative"). One value
    per sample into the target is a class id only from a Target of the labels (ones, zeros); probabilities of the
    input's width may come from anywhere."""
    from builder import validate

    src = {"PenaltyLoss": {"id": "s", "type": "PenaltyLoss"},
           "Linear": {"id": "s", "type": "Linear", "params": {"out_features": 1}},
           "Target input": {"id": "s", "type": "Target", "params": {"source": "input", "size": 1}}}[source]
    graph = {"nodes": [{"id": "x", "type": "Input", "params": {"shape": [1]}}, src,
                       {"id": "fc", "type": "Linear", "params": {"out_features": 3}},
                       {"id": "ce", "type": "CrossEntropyLoss"}],
             "edges": [{"source": "x", "target": "s"}, {"source": "x", "target": "fc"},
                       {"source": "fc", "target": "ce", "target_port": "input"},
                       {"source": "s", "target": "ce", "target_port": "target"}]}
    problems = [p for p in validate(graph) if p.severity == "error"]
    assert [(p.code, p.node, p.edge) for p in problems] == [("bad_port", "ce", "s->ce.target")], problems
    assert "Fix:" in problems[0].message
    graph["nodes"][1] = {"id": "s", "type": "Target", "params": {"source": "labels", "size": 1}}
    assert not [p for p in validate(graph) if p.severity == "error"]
