"""Model cards: every section present, filled from a real run."""

from __future__ import annotations

import re

import torch

from builder.data.access import SYSTEM
from builder.graph.templates import load_template
from builder.runs.modelcard import model_card, write_model_card
from builder.runs.pipeline import run_training
from builder.runs.store import RunStore


def test_card_of_a_finished_run(tmp_path):
    torch.set_num_threads(1)
    store = RunStore(tmp_path, actor=SYSTEM)
    r = run_training(load_template("mlp"), "moons", {"epochs": 2, "device": "cpu"}, store)  # `auto` on a GPU host
    text = (store.run_dir(r.run_id) / "model_card.md").read_text()
    for section in ("# Model card", "## Architecture", "## Dataset", "## Hyper-parameters", "## Training curve",
                    "## Test metrics", "## Environment"):
        assert section in text
    assert "Parameters: **1,218**" in text  # (2*32+32) + (32*32+32) + (32*2+2)
    assert "multiply-adds per sample: **1,152**" in text  # 2*32 + 32*32 + 32*2
    assert "| `fc1` | Linear | out_features=32 |" in text
    assert f"torch {torch.__version__}" in text and "resolved: cpu" in text
    assert f"accuracy **{r.test['accuracy']:.4g}**" in text
    assert "train 700, validation 150, test 150" in text
    assert "Confusion matrix" in text and "| lr | 0.01 |" in text
    assert write_model_card(store, r.run_id).read_text() == text


def test_card_of_an_unfinished_run():
    run = {"id": "r1", "status": "failed", "message": "loss became NaN", "project": {"graph": {"nodes": []}},
           "config": {"epochs": 1}}
    text = model_card(run, [])
    assert "No epoch completed." in text and "Not evaluated" in text and "> loss became NaN" in text


def test_card_escapes_every_run_string():
    """Regression: names, ids, class names and messages went raw into Markdown (headings, HTML, table cells)."""
    evil = "x |\n# Owned\n<img src=x onerror=alert(1)> [link](http://e) **b** `c`"
    run = {"id": "r`1", "status": "finished", "name": evil, "message": "# not a heading\n- nor a list",
           "project": {"graph": {"nodes": [{"id": "a|b`c", "type": "<b>Linear</b>", "params": {"k": evil}}]}},
           "config": {evil: evil, "lr": 0.01}, "dataset_name": evil,
           "dataset_info": {"class_names": [evil, "ok"], "description": evil, "notes": ["# n"], "task": "multiclass"},
           "test_metrics": {"accuracy": 0.5, "per_class": {evil: {"precision": "x", "recall": 1, "f1": None,
                                                                  "support": 3}},
                            "confusion_matrix": [[1, "```"], [2, 3]]}}
    curve = [{"epoch": evil, "train_loss": 1.0, "val_loss": 1.0, "val_metric": 0.5, "metric_name": evil},
             {"epoch": 2, "train_loss": 1.0, "val_loss": "low", "val_metric": 0.5, "metric_name": evil}]
    text = model_card(run, curve)  # a job's metrics rows: an epoch that is text, a loss that is text (min() raised)
    lines = text.splitlines()
    assert not any(line.startswith(("# Owned", "# not", "# n", "- nor")) for line in lines)
    outside_code = re.sub(r"(?<![`\\])(`+)(?!`).*?(?<!`)\1(?!`)", "", text)  # code spans show text literally
    for raw in (r"<img", r"<b>", r"\]\(http", r"\*\*b", r"`c`"):
        assert not re.search(r"(?<!\\)" + raw, outside_code), raw  # only escaped forms remain
    assert sum(line.startswith("```") for line in lines) == 2  # the confusion matrix block only
    tables, current = [], []
    for line in [*lines, ""]:
        if line.startswith("|"):
            current.append(len(re.split(r"(?<!\\)\|", line)) - 2)  # cells between the outer pipes
        elif current:
            tables.append(current)
            current = []
    assert len(tables) == 4 and all(len(set(t)) == 1 for t in tables), tables  # no row gained a cell


def test_a_model_card_gives_a_scaled_targets_errors_in_its_own_units(tmp_path):
    """The model card listed a forecaster's test MAE and its curve's validation MAE in standard deviations."""
    import builder
    from builder.data.access import SYSTEM
    from builder.runs.modelcard import model_card
    from builder.runs.store import RunStore

    store = RunStore(tmp_path, actor=SYSTEM)
    rid = store.create_run(builder.load_template("mlp"), "moons", {}, {"epochs": 1},
                           dataset_info={"task": "regression", "target_std": [10.0], "target_mean": [0.0]})
    store.log_metrics(rid, [{"type": "epoch", "epoch": 1, "train_loss": 0.3, "val_loss": 0.3, "metric_name": "mae",
                             "val_metric": 0.25}])
    store.finish(rid, "finished", test={"mae": 0.5, "mse": 0.25, "r2": 0.9})
    card = model_card(store.get(rid), store.metrics(rid, "epoch"))
    assert "mae **5**" in card and "mse **25**" in card and "r2 **0.9**" in card, card
    assert "| 1 | 0.3 | 0.3 | 2.5 |" in card, card
