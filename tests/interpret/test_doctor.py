"""The training doctor's rules, curve anomalies, canvas annotations and fixes on hand-made health logs."""

from __future__ import annotations

import pytest

from builder import load_template
from builder.errors import LayerLabError
from builder.graph.cost import canvas_annotations
from builder.graph.report import human_number
from builder.graph.shapes import infer_shapes
from builder.interpret.doctor import (
    Finding,
    apply_fix,
    broken_line,
    curve_anomalies,
    diagnose,
    fix_change,
    health_annotations,
    merge_repeats,
)
from builder.training.health import HealthLog

NODES = [{"id": "fc1", "type": "Linear", "kind": "other", "params": True},
         {"id": "act1", "type": "ReLU", "kind": "relu"},
         {"id": "head", "type": "Linear", "kind": "other", "params": True, "output": True}]


def log_of(*samples: dict) -> HealthLog:
    return HealthLog(5, NODES, [{"step": 5 * i, "epoch": 1, "nodes": s} for i, s in enumerate(samples)])


def healthy(**over: float) -> dict:
    s = {"fc1": {"grad_norm": 0.1, "update_ratio": 1e-3, "act_std": 1.0},
         "act1": {"dead": 0.1, "act_std": 0.5}, "head": {"grad_norm": 0.2, "update_ratio": 1e-3}}
    for key, v in over.items():
        node, stat = key.split("__")
        s[node] = {**s[node], stat: v}
    return s


def rules(log: HealthLog, config: dict | None = None) -> set[tuple[str, str]]:
    return {(f.node, f.rule) for f in diagnose(log, config)}


def test_a_healthy_log_has_no_findings():
    assert diagnose(log_of(healthy(), healthy(), healthy())) == []
    assert diagnose(HealthLog()) == []


def test_each_rule_on_its_node():
    assert rules(log_of(healthy(), healthy(fc1__grad_norm="nan"))) == {("fc1", "nonfinite")}
    assert ("head", "exploding") in rules(log_of(healthy(), healthy(head__grad_norm=5e3)))
    assert ("fc1", "vanishing") in rules(log_of(healthy(), healthy(fc1__grad_norm=1e-6)))
    fix = next(f.message for f in diagnose(log_of(healthy(), healthy(fc1__grad_norm=1e-6))) if f.rule == "vanishing")
    assert "Sigmoid" not in fix and "normalisation" in fix  # a ReLU network: not told to use ReLU (a review)
    assert rules(log_of(healthy(), healthy(fc1__update_ratio=0.5))) == {("fc1", "update_high")}
    assert rules(log_of(healthy(), healthy(fc1__update_ratio=1e-8))) == {("fc1", "update_low")}
    assert rules(log_of(healthy(), healthy(fc1__act_std=100.0))) == {("fc1", "std_drift")}
    assert rules(log_of(healthy(), healthy(act1__dead=0.7))) == {("act1", "dead_relu")}


def test_fix_wording_and_actions_name_the_run_settings():
    (f,) = diagnose(log_of(healthy(), healthy(fc1__grad_norm="inf")), {"lr": 0.1})
    assert f.level == "bad" and f.message.startswith("non-finite values") and "; received: grad_norm = inf" in f.message
    assert "Fix: lower the learning rate to 0.01, and set grad_clip" in f.message
    assert f.action == {"action": "set_training", "key": "lr", "value": 0.01}
    (e,) = [f for f in diagnose(log_of(healthy(), healthy(head__grad_norm=5e3))) if f.rule == "exploding"]
    assert e.action == {"action": "set_training", "key": "grad_clip", "value": 1.0}


@pytest.mark.parametrize("ratio", [0.5, 1e-8])
def test_the_learning_rate_a_fix_names_is_the_one_its_action_sets(ratio):
    """A searched learning rate (0.00643117): the words said "lower the learning rate to 0.0006431" (4 digits of
    lr / 10) and Apply set 0.000643 (3 digits), so the Train page then showed another value than the advice."""
    (f,) = diagnose(log_of(healthy(), healthy(fc1__update_ratio=ratio)), {"lr": 0.00643117})
    value = f.action["value"]
    assert f.message.split("Fix: ")[1].endswith(f"learning rate to {human_number(value)}"), (f.message, value)


def test_curve_anomalies_point_at_the_findings_nodes():
    dead = [Finding("act1", "dead_relu", "bad", 1.0, "dead ReLU; ...")]
    flat = [{"train_loss": 0.69, "val_loss": 0.69}] * 5
    (a,) = curve_anomalies(flat, dead)
    assert a.kind == "plateau" and a.nodes == ["act1"] and a.epoch == 5
    learned = [{"train_loss": v} for v in (1.0, 0.5, 0.3, 0.3, 0.3, 0.3)]
    assert curve_anomalies(learned) == []  # converged, not stuck
    rising = [{"train_loss": v} for v in (1.0, 0.5, 0.6, 0.9)]
    assert [a.kind for a in curve_anomalies(rising)] == ["divergence"]
    assert [a.kind for a in curve_anomalies([{"train_loss": 1.0}, {"train_loss": float("nan")}])] == ["divergence"]
    over = [{"train_loss": t, "val_loss": v} for t, v in ((1, 1), (0.5, 0.5), (0.3, 0.6), (0.2, 0.7), (0.1, 0.8))]
    assert [a.kind for a in curve_anomalies(over)] == ["overfitting"]


def test_a_converged_loss_wobbling_near_zero_is_no_divergence():
    """0.0004 -> 0.002 is five times the best but a rounding error against the first epoch's 0.69: not divergence."""
    converged = [{"train_loss": v} for v in (0.69, 0.05, 0.003, 0.0004, 0.002)]
    assert curve_anomalies(converged) == []
    blown = [{"train_loss": v} for v in (0.69, 0.05, 0.003, 0.0004, 0.3)]
    assert [a.kind for a in curve_anomalies(blown)] == ["divergence"]


def test_a_rise_over_too_few_steps_is_no_divergence():
    """Known from the review of issue 29: a run of 3 one-step epochs (a tiny dataset) read 0.654 -> 1.28 and the
    doctor, Explain and Try it called it "divergence": one batch's loss against another's. A rise is judged once the
    run took 10 optimiser steps; a non-finite loss always is; epochs without a step count are judged as before."""
    few = [{"train_loss": v, "step": i + 1} for i, v in enumerate((0.654, 0.9, 1.28))]
    assert curve_anomalies(few) == []
    assert broken_line(few) is None
    many = [{"train_loss": v, "step": 8 * (i + 1)} for i, v in enumerate((0.654, 0.5, 1.28))]
    assert [a.kind for a in curve_anomalies(many)] == ["divergence"]
    blown = [{"train_loss": 0.654, "step": 1}, {"train_loss": float("inf"), "step": 2}]
    assert [a.kind for a in curve_anomalies(blown)] == ["divergence"]


def test_the_learning_rate_ranks_first_when_updates_are_too_large():
    """Too large a step kills ReLUs downstream: the dead ReLU (bad) is the symptom, the learning rate the cause."""
    log = log_of(healthy(), *[healthy(act1__dead=0.95, fc1__update_ratio=0.5, head__update_ratio=0.4)] * 3)
    found = diagnose(log, {"lr": 0.5})
    assert {f.rule for f in found} == {"dead_relu", "update_high"}
    assert found[0].action == {"action": "set_training", "key": "lr", "value": 0.05}
    alone = diagnose(log_of(healthy(), *[healthy(act1__dead=0.95)] * 3), {"lr": 0.5})
    assert [f.rule for f in alone] == ["dead_relu"]  # no sign of the learning rate: the node's own fix


def test_a_learning_rate_that_killed_the_network_in_its_first_steps_is_named_first():
    """The CNN template at lr 2 (a newcomer's typo): the first step rewrote every layer's weights (update ratio ~1),
    then every ReLU was dead and no gradient reached conv1. The doctor's first finding was "vanishing gradients ...
    use ReLU-like activations instead of Sigmoid/Tanh" (the network has none), and nothing named the learning rate:
    the recent updates were 0, the dead units having stopped them."""
    dead = healthy(act1__dead=1.0, fc1__grad_norm=0.0, fc1__update_ratio=0.0, head__update_ratio=2e-3)
    log = log_of(healthy(fc1__update_ratio=0.99, head__update_ratio=1.0), *[dead] * 5)
    found = diagnose(log, {"lr": 2.0})
    assert found[0].rule == "update_high" and found[0].action == {"action": "set_training", "key": "lr", "value": 0.2}
    assert "step 0" in found[0].message, found[0].message
    assert "vanishing" not in {f.rule for f in found}  # the dead units stop the gradient: their finding says so
    assert "dead_relu" in {f.rule for f in found}
    # a healthy first step (the templates' largest: ~0.08) is no sign
    assert diagnose(log_of(healthy(fc1__update_ratio=0.08), healthy(), healthy(), healthy(), healthy())) == []


def test_one_learning_rate_fix_is_one_row_not_one_per_layer():
    """A high learning rate shows at every layer: the page listed the same "lower the learning rate to 0.05" with
    its own Apply once per layer. One rule with one training-setting fix is one row naming all its nodes; a
    node's own fix (insert a BatchNorm after it) stays a row per node, and the canvas still tints every node."""
    log = log_of(healthy(), *[healthy(fc1__update_ratio=0.5, head__update_ratio=0.4)] * 3)
    found = diagnose(log, {"lr": 0.5})
    assert [f.node for f in found] == ["fc1", "head"]
    rows = merge_repeats(found)
    assert [(r["rule"], r["nodes"]) for r in rows] == [("update_high", ["fc1", "head"])]
    assert rows[0]["action"] == {"action": "set_training", "key": "lr", "value": 0.05}
    assert set(health_annotations(log, found)) >= {"fc1", "head"}
    own = [Finding(n, "std_drift", "warn", 12.0, "drift", {"action": "insert_after", "node": n, "type": "BatchNorm1d"})
           for n in ("fc1", "head")]
    assert [r["nodes"] for r in merge_repeats(own)] == [["fc1"], ["head"]]


def test_fix_change_names_the_old_and_new_value():
    p = load_template("mlp")
    act = next(n.id for n in p.graph.nodes if n.type == "ReLU")
    action = {"action": "set_type", "node": act, "type": "LeakyReLU"}
    assert fix_change(p, apply_fix(p, action), action) == f"{act}: ReLU → LeakyReLU"


def test_health_annotations_reach_the_canvas_annotations():
    log = log_of(healthy(), healthy(act1__dead=0.95))
    health = health_annotations(log, diagnose(log))
    assert health["act1"]["level"] == "bad" and health["fc1"]["level"] == "ok"
    assert health["fc1"]["message"].startswith("healthy: grad norm 0.1")
    graph = load_template("mlp").graph
    ann = canvas_annotations(graph, infer_shapes(graph), health)
    assert ann["nodes"]["act1"]["health"]["level"] == "bad" and "health" not in ann["nodes"]["input"]
    assert "health" not in canvas_annotations(graph, infer_shapes(graph))["nodes"]["act1"]


def test_apply_fix_returns_a_new_project():
    p = load_template("mlp")
    lr = apply_fix(p, {"action": "set_training", "key": "lr", "value": 0.001})
    assert lr.training["lr"] == 0.001 and p.training["lr"] == 0.01
    assert apply_fix(p, {"action": "set_param", "node": "fc1", "param": "out_features", "value": 8}
                     ).graph.node("fc1").params == {"out_features": 8}
    leaky = apply_fix(p, {"action": "set_type", "node": "act1", "type": "LeakyReLU"})
    assert leaky.graph.node("act1").type == "LeakyReLU" and infer_shapes(leaky.graph).ok
    bn = apply_fix(p, {"action": "insert_after", "node": "fc1", "type": "BatchNorm1d"})
    assert [n.id for n in bn.graph.nodes][:3] == ["input", "fc1", "batchnorm1d_1"] and infer_shapes(bn.graph).ok
    assert {(e.source, e.target) for e in bn.graph.edges} >= {("fc1", "batchnorm1d_1"), ("batchnorm1d_1", "act1")}
    with pytest.raises(LayerLabError, match="unknown fix action; received: 'explode'"):
        apply_fix(p, {"action": "explode"})
    with pytest.raises(LayerLabError, match="needs the field 'value'"):
        apply_fix(p, {"action": "set_training", "key": "lr"})
