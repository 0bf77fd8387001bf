"""A loss that became NaN/Inf is explained by what caused it (builder.training.nonfinite): a node without a finite
derivative where the data took it, a node without a finite value there, or weights grown by a learning rate too
high. Each blamed the learning rate before ("the learning rate (0.001) is probably too high")."""

from __future__ import annotations

import json

import pytest
import torch

import builder
from builder import compile_graph, load_project
from builder.errors import TrainingError
from builder.training.nonfinite import LARGE, Cause, diagnose, nonfinite_message


def _project(nodes: list[dict], edges: list[dict]):
    return load_project(json.dumps({"format": "layerlab", "version": 1, "graph": {"nodes": nodes, "edges": edges}}))


def _pow_of_learned_exponent(init: str = "zeros"):
    """moons' features (negative and positive) to a learned power: d/dp x**p = x**p * log(x) is NaN for x < 0."""
    nodes = [{"id": "x", "type": "Input", "params": {"shape": [2]}},
             {"id": "expo", "type": "Parameter", "params": {"shape": [2], "init": init}},
             {"id": "power", "type": "Op", "params": {"op": "aten.pow.Tensor_Tensor",
                                                      "args": json.dumps([{"t": 0}, {"t": 1}])}},
             {"id": "head", "type": "Linear", "params": {"out_features": 2}}]
    edges = [{"source": "x", "target": "power", "target_port": "0"}, {"source": "x", "target": "expo"},
             {"source": "expo", "target": "power", "target_port": "1"}, {"source": "power", "target": "head"}]
    return _project(nodes, edges)


def _log_of_features():
    """log of moons' features: NaN on the first batch, from fresh weights."""
    nodes = [{"id": "x", "type": "Input", "params": {"shape": [2]}},
             {"id": "fc", "type": "Linear", "params": {"out_features": 4}},
             {"id": "bn", "type": "BatchNorm1d", "params": {}},
             {"id": "the log", "type": "Log", "params": {}},
             {"id": "head", "type": "Linear", "params": {"out_features": 2}}]
    edges = [{"source": "x", "target": "fc"}, {"source": "fc", "target": "bn"}, {"source": "bn", "target": "the log"},
             {"source": "the log", "target": "head"}]
    return _project(nodes, edges)


def _fit(project, **config):
    moons = builder.load_dataset("moons")
    t = builder.Trainer(compile_graph(project.graph), moons, {"epochs": 2, "early_stopping": None, "device": "cpu",
                                                              **config})
    with pytest.raises(TrainingError) as e:
        t.fit()
    return str(e.value)


def test_a_learned_exponent_of_a_negative_base_names_its_node_not_the_learning_rate():
    message = _fit(_pow_of_learned_exponent())
    assert message.startswith("loss became NaN/Inf at epoch 1, step 1: node expo has a non-finite parameter after "
                              "a step whose loss was finite"), message
    assert "pow of a negative base to a learned exponent" in message and "learning rate" not in message


def test_a_node_without_a_finite_value_on_the_batch_is_named():
    message = _fit(_log_of_features())
    assert "node the log gives NaN/Inf from finite inputs on this batch" in message, message
    assert "learning rate" not in message


def test_grown_weights_still_point_at_the_learning_rate():
    model = compile_graph(_pow_of_learned_exponent("normal").graph)
    with torch.no_grad():
        model.head.weight.fill_(LARGE * 10)
    cause = diagnose(model, torch.randn(4, 2))
    assert cause.kind == "weights" and cause.largest == LARGE * 10
    text = nonfinite_message(0.5, 2, 9, cause)
    assert "the learning rate (0.5) is probably too high; lower it (e.g. 0.05)" in text and "grown to 1e+05" in text


def test_the_diagnosis_leaves_the_model_as_it_was():
    """Running the batch through the graph to find the node must not move BatchNorm's running statistics."""
    model = compile_graph(_log_of_features().graph).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cause = diagnose(model, torch.randn(8, 2))
    assert cause == Cause("forward", ("the log",), cause.largest)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before) and model.training


def test_a_model_not_compiled_from_a_graph_gets_the_learning_rates_message():
    net = torch.nn.Linear(2, 2)
    assert diagnose(net, torch.randn(3, 2)).kind == "weights"
    with torch.no_grad():
        net.weight[0, 0] = float("nan")
    assert diagnose(net, torch.randn(3, 2)) == Cause("gradient", ("weight",), diagnose(net).largest)


def test_a_call_the_shape_check_accepts_and_its_kernel_refuses_is_named_on_its_node(tmp_path):
    """An audit: an Op node's call that the meta kernel accepts and the CPU kernel refuses (a group norm's weight of
    one value for 4 channels) failed the run with torch's words alone; the run's message names the node and what
    to change (the first forward of a run is run once more node by node: nonfinite.failing_node)."""
    from builder.data.access import SYSTEM
    from builder.runs.pipeline import run_training
    from builder.runs.store import RunStore

    gn = {"op": "aten.native_group_norm", "args": json.dumps([{"t": 0}, {"w": "w"}, None, {"b": 1}, 4, 1, 2, 1e-5]),
          "weights": json.dumps({"w": [1]}), "outputs": 3}
    project = load_project(json.dumps({"format": "layerlab", "version": 1, "graph": {
        "nodes": [{"id": "x", "type": "Input", "params": {"shape": [4]}},
                  {"id": "fc", "type": "Linear", "params": {"out_features": 4}},
                  {"id": "u", "type": "Reshape", "params": {"shape": [4, 1, 1]}},
                  {"id": "gn", "type": "Op", "params": gn}, {"id": "f", "type": "Flatten", "params": {}},
                  {"id": "head", "type": "Linear", "params": {"out_features": 3}}],
        "edges": [{"source": "x", "target": "fc"}, {"source": "fc", "target": "u"},
                  {"source": "u", "target": "gn", "target_port": "0"}, {"source": "gn", "target": "f"},
                  {"source": "f", "target": "head"}]}}))
    assert not [p for p in builder.validate(project.graph) if p.severity == "error"]  # the meta kernel accepts it
    with pytest.raises(TrainingError, match=r"node `gn` failed: Expected weight to be a vector of size equal to the "
                                            r"number of channels.*Fix: change `gn`'s settings"):
        run_training(project, "iris", {"epochs": 1}, store=RunStore(tmp_path, actor=SYSTEM))
