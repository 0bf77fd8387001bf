"""``layerlab predict``: a run's predictions for typed or filed inputs, made in the sandboxed probe as the CLI's
local user (another person's run is "no run of yours")."""

from __future__ import annotations

import json

import pytest

import builder
from builder.cli.main import main
from builder.data.access import Actor
from builder.runs.pipeline import run_training
from builder.runs.store import RunStore

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    ws = tmp_path_factory.mktemp("ws")
    mine = RunStore(ws, actor=Actor.local())
    ids = {"text": run_training(builder.load_template("text_encoder"), "text_sentiment", {"epochs": 1},
                                store=mine, dataset_options={"n_samples": 300}).run_id,
           "table": run_training(builder.load_template("mlp"), "iris", {"epochs": 1}, store=mine, adapt=True).run_id}
    return ws, ids


def _predict(capsys, ws, *argv: str) -> tuple[int, str, str]:
    code = main(["predict", *argv, "--workspace", str(ws)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_a_sentence_and_a_file_of_texts_are_predicted(runs, capsys, tmp_path):
    ws, ids = runs
    code, out, _ = _predict(capsys, ws, ids["text"], "--text", "a wonderful film and a superb cast", "--json")
    got = json.loads(out)
    assert code == 0 and got["run_id"] == ids["text"]
    (answer,) = got["predictions"]
    assert answer["prediction"] in ("negative", "positive") and 0.5 <= answer["confidence"] <= 1
    texts = tmp_path / "new.txt"
    texts.write_text("the plot was dull\n\na superb film\n")
    code, out, _ = _predict(capsys, ws, ids["text"][:-1], "--input-path", str(texts),  # a prefix (the two runs may share a second)
                            "--method", "layer_integrated_gradients")
    lines = out.splitlines()
    assert code == 0 and lines[0].startswith("the plot was dull: ") and "most attributed:" in lines[1]
    assert len([line for line in lines if not line.startswith("  ")]) == 2  # the blank line is no text


def test_table_rows_by_feature_name(runs, capsys, tmp_path):
    ws, ids = runs
    from builder.data import load_dataset

    names = load_dataset("iris").info.feature_names
    rows = tmp_path / "rows.csv"
    rows.write_text(",".join(reversed(names)) + "\n0.2,1.4,3.5,5.1\n2.3,5.4,3.0,6.2\n")  # columns in any order
    code, out, _ = _predict(capsys, ws, ids["table"], "--input-path", str(rows), "--json")
    preds = json.loads(out)["predictions"]
    assert code == 0 and [p["input"] for p in preds] == ["row 1", "row 2"]
    code, _, err = _predict(capsys, ws, ids["table"], "--text", "1, 2")
    assert code == 2 and "reads 4 values" in err and "Fix" in err


def test_another_persons_run_is_no_run_of_yours(runs, capsys):
    ws, ids = runs
    stranger = "anon:" + "b" * 32
    other = run_training(builder.load_template("mlp"), "iris", {"epochs": 1}, owner=stranger,
                         store=RunStore(ws, actor=Actor(stranger)), adapt=True).run_id
    code, out, err = _predict(capsys, ws, other, "--text", "1, 2, 3, 4")
    assert code == 2 and "of yours" in err and not out
