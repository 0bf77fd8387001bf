import copy

import pytest
import torch
import torch.fx as fx

from builder import GraphError, compile_graph, example_inputs, load_template, module_names
from builder.errors import BudgetError
from builder.graph.project import Graph


def test_compiles_to_graph_module_with_readable_code(example_project):
    m = compile_graph(example_project)
    assert isinstance(m, fx.GraphModule)
    code = m.code
    for line in ("c1 = self.c1(x)", "sum_1 = r1 + c1", "fc = self.fc(f)"):
        assert line.replace("sum_1", "sum_") in code or line in code, code
    assert m(torch.randn(4, 1, 8, 8)).shape == (4, 10)
    assert set(m.layerlab_names) == {"c1", "r1", "f", "fc"}


def test_forward_has_no_interpreter():
    m = compile_graph(load_template("cnn").graph)
    # the forward is generated Python source, not fx.Interpreter
    assert "def forward" in m.code and type(m).forward is not fx.Interpreter.run


def test_names_from_awkward_ids():
    graph = Graph.model_validate({
        "nodes": [{"id": "my input", "type": "Input", "params": {"shape": [3]}},
                  {"id": "1st layer!", "type": "Linear", "params": {"out_features": 2}},
                  {"id": "forward", "type": "ReLU"}, {"id": "class", "type": "Identity"},
                  {"id": "code", "type": "Tanh"}, {"id": "1st_layer_", "type": "Sigmoid"},
                  {"id": "torch", "type": "ReLU"}, {"id": "état", "type": "ReLU"}],
        "edges": [{"source": "my input", "target": "1st layer!"}, {"source": "1st layer!", "target": "forward"},
                  {"source": "forward", "target": "class"}, {"source": "class", "target": "code"},
                  {"source": "code", "target": "1st_layer_"}, {"source": "1st_layer_", "target": "torch"},
                  {"source": "torch", "target": "état"}]})
    names = module_names(graph)
    assert names["my input"] == "my_input"
    assert names["1st layer!"] == "n_1st_layer_"
    assert names["forward"] == "forward_" and names["class"] == "class_" and names["code"] == "code_"
    assert len(set(names.values())) == len(names)
    assert all(n.isidentifier() and n.isascii() for n in names.values())
    assert names == module_names(graph)  # deterministic
    m = compile_graph(graph)
    assert m(torch.randn(2, 3)).shape == (2, 2)


def test_multiple_inputs_and_outputs():
    g = {"nodes": [{"id": "a", "type": "Input", "params": {"shape": [4]}}, {"id": "b", "type": "Input", "params": {"shape": [4]}},
                   {"id": "cat", "type": "Concat"}, {"id": "o1", "type": "Linear", "params": {"out_features": 3}},
                   {"id": "o2", "type": "Sigmoid"}],
         "edges": [{"source": "a", "target": "cat"}, {"source": "b", "target": "cat"}, {"source": "cat", "target": "o1"},
                   {"source": "a", "target": "o2"}]}
    m = compile_graph(g)
    o1, o2 = m(torch.randn(2, 4), torch.randn(2, 4))
    assert o1.shape == (2, 3) and o2.shape == (2, 4)


def test_invalid_graph_raises_with_all_problems():
    with pytest.raises(GraphError) as ei:
        compile_graph({"nodes": [{"id": "fc", "type": "Linear", "params": {"out_features": 0}}], "edges": []})
    codes = {p.code for p in ei.value.problems}
    assert {"bad_param", "no_input"} <= codes


def test_budget_error():
    with pytest.raises(BudgetError):
        compile_graph({"nodes": [{"id": "x", "type": "Input", "params": {"shape": [100000]}},
                                 {"id": "fc", "type": "Linear", "params": {"out_features": 100000}}],
                       "edges": [{"source": "x", "target": "fc"}]})


@pytest.mark.parametrize("name", ["mlp", "cnn", "resnet", "lstm", "transformer", "autoencoder"])
def test_templates_compile_deepcopy_and_backprop(name):
    m = compile_graph(load_template(name).graph)
    xs = example_inputs(m, batch_size=3)
    out = m(*xs)
    out.float().sum().backward()
    assert any(p.grad is not None for p in m.parameters())
    m2 = copy.deepcopy(m)
    assert m2.layerlab_names == m.layerlab_names
    m.eval()
    m2.eval()
    torch.testing.assert_close(m(*xs), m2(*xs))
