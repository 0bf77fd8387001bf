"""Pruning (issue 19): channel groups on the graph (residual Adds pruned identically, blockers left alone), the
shrunk model computing what the old one computes with the removed channels cut at their consumers, export of
the pruned graph (.py, ONNX vs onnxruntime), ``layerlab prune`` as a new run (structured and unstructured)."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from builder.data.access import SYSTEM
from builder.errors import LayerLabError
from builder.graph.compile import compile_graph, example_inputs
from builder.graph.project import load_project
from builder.graph.shrink import CONSUMER_DIM, channel_plan
from builder.graph.templates import load_template
from builder.training.prune import (
    keep_channels,
    layout_index,
    magnitude_masks,
    module_names_of,
    structured_prune,
)
from tests.fuzz_budget import budget


def _project(nodes: list[tuple], edges: list[tuple]) -> object:
    return load_project({"format": "layerlab", "version": 1, "graph": {
        "nodes": [{"id": i, "type": t, "params": p} for i, t, p in nodes],
        "edges": [{"source": s, "target": d, **({"target_port": port} if port else {})} for s, d, port in edges]}})


def _concat_net():
    """Two conv branches joined by a Concat over the channels, BatchNorm after it, a LayerNorm branch that
    blocks its producer, Flatten -> Linear head."""
    return _project(
        [("x", "Input", {"shape": [2, 6, 6]}), ("a", "Conv2d", {"out_channels": 6, "kernel_size": 3, "padding": 1}),
         ("b", "Conv2d", {"out_channels": 4, "kernel_size": 1}), ("cat", "Concat", {"dim": 1}),
         ("bn", "BatchNorm2d", {}), ("act", "ReLU", {}), ("pool", "MaxPool2d", {"kernel_size": 2}),
         ("flat", "Flatten", {}), ("fc", "Linear", {"out_features": 12}), ("ln", "LayerNorm", {}),
         ("head", "Linear", {"out_features": 3})],
        [("x", "a", None), ("x", "b", None), ("a", "cat", "0"), ("b", "cat", "1"), ("cat", "bn", None),
         ("bn", "act", None), ("act", "pool", None), ("pool", "flat", None), ("flat", "fc", None),
         ("fc", "ln", None), ("ln", "head", None)])


def test_channel_groups_of_the_templates_and_the_blockers():
    plan = channel_plan(load_template("resnet").graph)
    assert plan.groups["stem"].members == ["stem", "b1_conv2"]  # they meet in b1_add: pruned identically
    assert plan.groups["down"].members == ["down", "b2_conv2"]
    assert plan.groups["head"].blocked == ["head: its output is the model output"]
    assert set(plan.followers) >= {"stem_bn", "b1_bn2", "down_bn"}
    plan = channel_plan(_concat_net().graph)
    assert plan.consumers["fc"].segs == (("a", 6), ("b", 4)) and plan.consumers["fc"].mult == 9
    assert plan.groups["fc"].blocked == ["ln (LayerNorm): mixes or reshapes channels"]
    assert [g.members[0] for g in plan.prunable()] == ["a", "b"]
    assert layout_index(plan.consumers["fc"], {"b": torch.tensor([1, 3])}).tolist() == [
        *range(54), *range(63, 72), *range(81, 90)]  # channel 6 + 1 and 6 + 3, 9 columns each


def test_an_add_with_a_branch_that_cannot_shrink_is_left_alone_with_the_reason():
    p = _project([("x", "Input", {"shape": [4]}), ("fc", "Linear", {"out_features": 4}), ("sum", "Add", {}),
                  ("head", "Linear", {"out_features": 2})],
                 [("x", "fc", None), ("x", "sum", None), ("fc", "sum", None), ("sum", "head", None)])
    model = compile_graph(p.graph)
    with pytest.raises(LayerLabError, match="sum \\(Add\\)"):
        structured_prune(p, model, 0.5)
    with pytest.raises(LayerLabError, match="Conv1d, Conv2d, Linear nodes; received: 'sum'"):
        structured_prune(p, model, 0.5, nodes=["sum"])
    with pytest.raises(LayerLabError, match="\\[0, 1\\)"):
        structured_prune(p, model, 1.0)


def test_a_partly_chosen_residual_group_is_left_alone():
    model = compile_graph(load_template("resnet").graph)
    _, _, groups, alone = structured_prune(load_template("resnet"), model, 0.5, nodes=["stem", "b1_conv1"])
    assert [g["members"] for g in groups] == [["b1_conv1"]]
    assert alone == [{"members": ["stem", "b1_conv2"],
                      "reasons": ["shares its channels (Add/Multiply) with b1_conv2, not chosen"]}]


def _randomise_norms(model: torch.nn.Module, gen: torch.Generator) -> None:
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen))
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
            m.weight.data.copy_(torch.randn(m.weight.shape, generator=gen))


@settings(max_examples=budget(12), deadline=None)
@given(which=st.sampled_from(["cnn", "resnet", "mlp", "autoencoder", "concat"]),
       amount=st.floats(0.0, 0.9), seed=st.integers(0, 2**16), taylor=st.booleans())
def test_shrunk_model_equals_the_old_one_with_removed_channels_cut_at_their_consumers(which, amount, seed, taylor):
    project = _concat_net() if which == "concat" else load_template(which)
    torch.manual_seed(seed)
    model = compile_graph(project.graph).eval()
    gen = torch.Generator().manual_seed(seed)
    _randomise_norms(model, gen)
    (x,) = example_inputs(model, batch_size=4, seed=seed)
    batches = []
    if taylor:
        out = model(x)
        y = torch.zeros(len(x), dtype=torch.long) if out.shape[-1] > 1 else torch.zeros(len(x), 1)
        batches = [(x, y)]
    task = "multiclass" if which != "autoencoder" else "reconstruction"
    new, state, groups, _ = structured_prune(project, model, amount, criterion="taylor" if taylor else "l1",
                                             batches=batches, task=task)
    shrunk = compile_graph(new.graph).eval()
    shrunk.load_state_dict(state)  # strict: every tensor has the new graph's shape
    plan, names = channel_plan(project.graph), module_names_of(model)
    types = {n.id: n.type for n in project.graph.nodes}
    keep = {g["members"][0]: torch.tensor(g["kept"]) for g in groups}
    assert all(len(k) == max(1, round(g["before"] * (1 - amount))) for k, g in zip(keep.values(), groups))
    sd = model.state_dict()
    for node, lay in plan.consumers.items():  # cut the removed channels at every consumer of the old model
        idx = layout_index(lay, keep)
        if idx is not None:
            w, d = sd[f"{names[node]}.weight"], CONSUMER_DIM[types[node]]
            mask = torch.zeros(w.shape[d])
            mask[idx] = 1
            w.mul_(mask.reshape([-1 if i == d else 1 for i in range(w.dim())]))
    with torch.no_grad():
        torch.testing.assert_close(shrunk(x), model(x), rtol=1e-5, atol=1e-5)
    assert sum(p.numel() for p in shrunk.parameters()) <= sum(p.numel() for p in model.parameters())


def test_pruned_graph_exports_to_python_and_onnx_matching_onnxruntime(tmp_path):
    from builder.interchange.onnx_export import export_onnx
    from builder.interchange.python_export import export_python

    project = _concat_net()
    model = compile_graph(project.graph).eval()
    new, state, _, _ = structured_prune(project, model, 0.5)
    assert new.graph.node("a").params["out_channels"] == 3 and new.graph.node("b").params["out_channels"] == 2
    shrunk = compile_graph(new.graph).eval()
    shrunk.load_state_dict(state)
    ns: dict = {}
    exec(compile(export_python(new), "<pruned>", "exec"), ns)  # noqa: S102
    exported = ns["Model"]().eval()
    exported.load_state_dict(state)
    (x,) = example_inputs(shrunk, batch_size=3, seed=1)
    with torch.no_grad():
        torch.testing.assert_close(exported(x), shrunk(x), rtol=0, atol=1e-6)
    rep = export_onnx(new, tmp_path / "pruned.onnx", state)  # verified against onnxruntime before writing
    assert (tmp_path / "pruned.onnx").is_file() and rep.max_abs_diff < 1e-4


def test_global_magnitude_masks_zero_the_smallest_weights():
    model = compile_graph(load_template("mlp").graph)
    masks = magnitude_masks(model, 0.5)
    ws = torch.cat([model.state_dict()[k].abs().reshape(-1) for k in masks])
    ms = torch.cat([m.reshape(-1) for m in masks.values()])
    assert int((ms == 0).sum()) == round(0.5 * len(ws))
    assert ws[ms == 0].max() <= ws[ms == 1].min()
    assert keep_channels(torch.tensor([0.1, 0.3, 0.2]), 0.9).tolist() == [1]
    with pytest.raises(LayerLabError, match="Conv/Linear"):
        magnitude_masks(model, 0.5, nodes=["act1"])


def test_layerlab_prune_makes_new_runs_with_reports(tmp_path, capsys):
    from builder.cli.main import main
    from builder.graph.latency import NO_DIFFERENCE
    from builder.runs.pipeline import load_run, run_training
    from builder.runs.store import RunStore

    store = RunStore(tmp_path, actor=SYSTEM)
    parent = run_training(load_template("mlp"), "moons", {"epochs": 1}, store).run_id
    ws = ["--workspace", str(tmp_path)]
    assert main(["prune", parent, "--amount", "0.5", "--finetune-epochs", "1", *ws]) == 0
    out = capsys.readouterr().out
    assert "fc1: 32 -> 16 channels" in out and "left alone head" in out and "CPU latency" in out
    child = store.get([r for r in store.list_runs() if r["id"] != parent][0]["id"])
    assert child["parent_id"] == parent and child["status"] == "finished"
    rep = store.folder(child["id"]).read_prune()
    assert rep["after"]["params"] < rep["before"]["params"] and rep["after"]["weights_bytes"] < rep["before"]["weights_bytes"]
    assert load_project(child["project"]).graph.node("fc2").params["out_features"] == 16
    assert "## Pruning" in store.folder(child["id"]).read_model_card()
    # issue 34: both models timed interleaved, each with its p10-p90, one verdict and the conditions
    b, a, lat = rep["before"], rep["after"], rep["latency"]
    assert b["latency_p10_ms"] <= b["latency_ms"] <= b["latency_p90_ms"] and a["latency_p10_ms"] <= a["latency_ms"]
    assert lat["conditions"]["threads"] == 1 and lat["before"]["repeats"] == lat["after"]["repeats"]
    assert lat["verdict"] == NO_DIFFERENCE or lat["verdict"].startswith(("faster", "slower"))
    assert "p10-p90" in out and "thread" in out and ("no measurable difference" in out or "spreads separate" in out)

    assert main(["prune", parent, "--unstructured", "--amount", "0.6", "--finetune-epochs", "1", "--json", *ws]) == 0
    rep = json.loads(capsys.readouterr().out)
    model, _ = load_run(store, rep["run_id"])
    sd = model.state_dict()
    zeros = sum(int((sd[f"{n}.weight"] == 0).sum()) for n in ("fc1", "fc2", "head"))
    total = sum(sd[f"{n}.weight"].numel() for n in ("fc1", "fc2", "head"))
    assert zeros >= round(0.6 * total)  # the mask held through the fine-tune
    assert set(rep["sparsity"]) == {"fc1", "fc2", "head"} and rep["after"]["params"] == rep["before"]["params"]

    assert main(["prune", parent, "--criterion", "taylor", "--finetune-epochs", "0", "--nodes", "fc1", *ws]) == 0
    assert "fc1: 32 -> 16 channels" in capsys.readouterr().out


def test_a_resumed_unstructured_run_keeps_its_mask(tmp_path):
    from builder.runs.pipeline import load_run, resume_run, run_training
    from builder.runs.prune_run import prune_run, resume_pruned
    from builder.runs.store import RunStore

    store = RunStore(tmp_path, actor=SYSTEM)
    parent = run_training(load_template("mlp"), "iris", {"epochs": 3, "seed": 0}, store, adapt=True).run_id
    rep = prune_run(store, parent, 0.6, structured=False, finetune_epochs=1, latency_repeats=1)
    assert store.get(rep.run_id)["tags"]["prune"] == "unstructured"

    def zeros(run_id: str) -> int:
        model, _ = load_run(store, run_id)
        return sum(int((p == 0).sum()) for n, p in model.named_parameters() if n.endswith("weight"))

    pruned = zeros(rep.run_id)
    assert pruned >= rep.before["params"] * 0.5  # most of the 60 % of Conv/Linear weights
    resume_pruned(store, rep.run_id, overrides={"epochs": 2})  # one more epoch, mask re-installed
    assert zeros(rep.run_id) == pruned
    resume_run(rep.run_id, store, overrides={"epochs": 3})  # a plain resume lets the zeros grow back
    assert zeros(rep.run_id) < pruned
