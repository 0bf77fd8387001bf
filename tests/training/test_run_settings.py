"""Training settings that name or need layers (``freeze``, ``finetune``) checked against the graph: ``layerlab
validate`` reports them, and a run is refused with the same words before it is recorded (before, validate said
"ok" and the run was recorded and failed at its first step: "cannot freeze 'nope': no such node with weights")."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from builder import load_template
from builder.data.access import Actor
from builder.errors import LayerLabError
from builder.graph.project import Project
from builder.runs.pipeline import run_training
from builder.runs.store import RunStore

# the mlp template: input -> fc1 -> act1 -> fc2 -> act2 -> head, trained on moons
CASES = [({"freeze": ["nope"]}, "no node of this graph"),
         ({"freeze": ["act1"]}, "a node without weights"),
         ({"finetune": "lora"}, "attention projections"),
         ({"freeze": ["fc1", "fc2", "head"]}, "every layer with weights"),
         ({"finetune": "linear_probe", "freeze": ["head"]}, "every layer with weights"),
         ({"init_nodes": ["fc1", "ghost"]}, "init_nodes must name layers with weights")]


def _project(training: dict) -> Project:
    project = load_template("mlp")
    project.training = {**(project.training or {}), "epochs": 1, **training}
    return project


@pytest.mark.parametrize(("training", "words"), [CASES[1], CASES[2]])  # one per kind of check: the command is slow
def test_validate_reports_settings_that_do_not_fit_the_graph(tmp_path, training, words):
    path = tmp_path / "p.json"
    path.write_text(_project(training).to_json())
    r = subprocess.run([sys.executable, "-m", "builder", "validate", str(path)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 1, r.stdout
    line = r.stdout.strip()
    assert words in line and "Fix:" in line and "\n" not in line, line
    if training.get("freeze") == ["act1"]:
        assert line.startswith("node act1:")  # located on the node it names


@pytest.mark.parametrize(("training", "words"), CASES)
def test_a_run_is_refused_with_the_same_words_before_it_is_recorded(tmp_path, training, words):
    store = RunStore(tmp_path / "ws", actor=Actor.local())
    with pytest.raises(LayerLabError, match=words):
        run_training(_project(training), "moons", store=store)
    assert store.list_runs() == []


def test_settings_that_fit_still_train(tmp_path):
    store = RunStore(tmp_path / "ws", actor=Actor.local())
    out = run_training(_project({"freeze": ["fc1"], "finetune": "linear_probe"}), "moons", store=store)
    assert [r.info.status for r in store.list_runs()] == ["finished"] and out.run_id
    assert json.loads(store.get(out.run_id).project.to_json())["training"]["freeze"] == ["fc1"]
