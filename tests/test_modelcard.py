"""Model cards: every section present, filled from a real run."""

from __future__ import annotations

import re

import torch

from builder.modelcard import model_card, write_model_card
from builder.pipeline import run_training
from builder.runs import RunStore
from builder.templates import load_template


def test_card_of_a_finished_run(tmp_path):
    torch.set_num_threads(1)
    store = RunStore(tmp_path)
    r = run_training(load_template("mlp"), "moons", {"epochs": 2}, store)
    text = (store.run_dir(r.run_id) / "model_card.md").read_text()
    for section in ("# Model card", "## Architecture", "## Dataset", "## Hyper-parameters", "## Training curve",
                    "## Test metrics", "## Environment"):
        assert section in text
    assert "Parameters: **1,218**" in text  # (2*32+32) + (32*32+32) + (32*2+2)
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
