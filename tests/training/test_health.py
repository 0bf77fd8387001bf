"""Training health: the recording callback on broken and healthy networks, its file with the run, and the doctor's
findings on them (builder.training.health, builder.interpret.doctor)."""

from __future__ import annotations

import json

import pytest
import torch

from builder import load_template
from builder.data.access import SYSTEM
from builder.graph.project import Graph, Project
from builder.interpret.doctor import diagnose, graph_health, run_findings
from builder.runs.pipeline import build_model, prepare, run_training
from builder.runs.store import RunStore
from builder.training.health import HealthMonitor, read_health
from builder.training.trainer import Trainer


def stack(act: str, depth: int, width: int = 32) -> Project:
    """Input(2) -> depth x (Linear(width) -> act) -> Linear(2)."""
    nodes = [{"id": "input", "type": "Input", "params": {"shape": [2]}}]
    edges, prev = [], "input"
    for i in range(1, depth + 1):
        nodes += [{"id": f"fc{i}", "type": "Linear", "params": {"out_features": width}},
                  {"id": f"act{i}", "type": act}]
        edges += [{"source": prev, "target": f"fc{i}"}, {"source": f"fc{i}", "target": f"act{i}"}]
        prev = f"act{i}"
    nodes.append({"id": "head", "type": "Linear", "params": {"out_features": 2}})
    edges.append({"source": prev, "target": "head"})
    return Project(graph=Graph(nodes=nodes, edges=edges), training={"dataset": "moons"})


def monitor_of(trainer: Trainer) -> HealthMonitor:
    return next(cb for cb in trainer.callbacks if isinstance(cb, HealthMonitor))


def test_deep_sigmoid_stack_with_a_high_learning_rate_is_flagged_in_two_epochs(tmp_path):
    store = RunStore(tmp_path, actor=SYSTEM)
    cfg = {"epochs": 2, "lr": 0.5, "optimizer": "adam", "early_stopping": None}
    result = run_training(stack("Sigmoid", 8), "moons", cfg, store)
    log = read_health(store.folder(result.run_id).path)
    assert log is not None and len(log.samples) >= 2 and {s["epoch"] for s in log.samples} == {1, 2}
    rows = run_findings(store, result.run_id)["findings"]
    found = {(n, f["rule"]) for f in rows for n in f["nodes"]}
    # one row and one Apply per learning-rate fix, not one per layer (the page listed act6, act7, act8 each with
    # "lower the learning rate to 0.05")
    lr_rows = [(f["rule"], str(f["action"])) for f in rows if (f["action"] or {}).get("key") == "lr"]
    assert len(lr_rows) == len(set(lr_rows)), lr_rows
    assert ("fc1", "vanishing") in found  # the first layer gets no gradient
    saturated = {n for n, r in found if r == "saturated"}
    assert {"act6", "act7", "act8"} <= saturated and not {n for n in saturated if n.startswith("fc")}
    report = run_findings(store, result.run_id)
    assert report["health"]["fc1"]["level"] == "bad"
    # Adam at lr 0.5 rewrote the head's weights in its first steps (an update over half the weights, 2e9e45a): a
    # warning naming the learning rate, not a healthy head
    assert report["health"]["head"]["level"] == "warn" and ("head", "update_high") in found
    assert graph_health(store, stack("Sigmoid", 8).graph, None) == report["health"]  # what the canvas tints
    assert graph_health(store, load_template("mlp").graph, None) == {}
    lr_fix = next(f["action"] for f in report["findings"] if f["rule"] == "saturated")
    assert lr_fix == {"action": "set_training", "key": "lr", "value": 0.05}


def test_relu_network_with_a_large_negative_bias_is_flagged_on_that_node():
    project, ds, cfg, report = prepare(stack("ReLU", 3), "moons", {"epochs": 2}, with_report=True)
    model = build_model(project.graph, cfg.seed, report)
    with torch.no_grad():
        model.get_submodule(model.layerlab_names["fc1"]).bias.fill_(-5.0)  # after compile: every unit of act1 dies
    trainer = Trainer(model, ds, cfg)
    trainer.fit()
    findings = diagnose(monitor_of(trainer).log, cfg.model_dump())
    dead = {f.node: f for f in findings if f.rule == "dead_relu"}
    assert dead["act1"].level == "bad" and dead["act1"].value == 1.0
    assert dead["act1"].message.startswith("dead ReLU") and "received: 100% dead. Fix:" in dead["act1"].message
    assert dead["act1"].action == {"action": "set_type", "node": "act1", "type": "LeakyReLU"}
    assert findings[0].level == "bad"
    assert not any(m._forward_hooks for m in model.modules())  # hooks only while sampling, all removed


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_template_default_runs_raise_no_flag(name):
    project = load_template(name)
    project, ds, cfg = prepare(project, None)
    trainer = Trainer(build_model(project.graph, cfg.seed), ds, cfg)
    trainer.fit()
    log = monitor_of(trainer).log
    assert len(log.samples) >= trainer.result.epochs_completed  # at least one sample per epoch
    assert diagnose(log, cfg.model_dump()) == []


def test_health_file_is_json_kept_with_the_run_and_off_with_zero(tmp_path):
    store = RunStore(tmp_path, actor=SYSTEM)
    on = run_training(load_template("mlp"), "moons", {"epochs": 2, "health_every": 3}, store)
    data = json.loads(store.folder(on.run_id).health.read_text(encoding="utf-8"))
    assert data["version"] == 1 and data["every"] == 3
    assert [n["id"] for n in data["nodes"]] == ["fc1", "act1", "fc2", "act2", "head"]
    assert next(n for n in data["nodes"] if n["id"] == "head")["output"] is True
    steps = [s["step"] for s in data["samples"]]
    assert steps == sorted(steps) and steps[:2] == [0, 3]
    off = run_training(load_template("mlp"), "moons", {"epochs": 1, "health_every": 0}, store)
    assert not store.folder(off.run_id).health.exists()
    assert run_findings(store, off.run_id) == {"recorded": False, "samples": 0, "findings": [], "anomalies": [],
                                               "health": {}}


def test_resumed_run_keeps_the_samples_before_its_checkpoint(tmp_path):
    from builder.runs.pipeline import resume_run

    store = RunStore(tmp_path, actor=SYSTEM)
    proj = load_template("mlp")
    first = run_training(proj, "moons", {"epochs": 2, "health_every": 4, "early_stopping": None}, store)
    before = read_health(store.folder(first.run_id).path).samples
    resume_run(first.run_id, store, overrides={"epochs": 3})
    after = read_health(store.folder(first.run_id).path).samples
    assert after[:len(before)] == before and len(after) > len(before)
    assert {s["epoch"] for s in after} == {1, 2, 3}


def test_bad_interval_and_unreadable_file(tmp_path):
    with pytest.raises(ValueError, match="positive integer"):
        HealthMonitor(0)
    (tmp_path / "health.json").write_text("{not json", encoding="utf-8")
    assert read_health(tmp_path) is None
