"""Drift check (issue 19): a shifted feature of wine is flagged and no other, an unshifted re-sample is not; CSV
runs are compared in the file's units (text columns by χ²); images are refused for now; ``layerlab drift``."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from builder.data import load_dataset
from builder.data.access import SYSTEM
from builder.data.drift import check_drift, compare_tables, encode_table, reference_table
from builder.data.sources import LocalFile
from builder.errors import DatasetError


@pytest.fixture(scope="module")
def wine():
    ds = load_dataset("wine")
    names = reference_table(ds)[0].columns

    def raw(X):
        return pd.DataFrame(np.asarray(X) * np.array(ds.info.input_std) + np.array(ds.info.input_mean), columns=names)
    return ds, pd.concat([raw(ds.val.X), raw(ds.test.X)], ignore_index=True)  # held-out rows in wine's units


def test_reference_is_the_training_split_in_the_data_units(wine):
    ds, _ = wine
    ref, categorical = reference_table(ds)
    assert ref.shape == (len(ds.train), 13) and categorical == set()
    assert ref["magnesium"].between(60, 170).all()  # milligrams, not z-scores
    assert np.allclose(encode_table(ds, ref).numpy(), ds.train.X.numpy(), atol=1e-4)


def test_a_feature_scaled_three_times_is_flagged_and_no_other(wine):
    ds, held = wine
    shifted = held.copy()
    shifted["proline"] *= 3
    rep = check_drift(ds, shifted)
    assert rep.moved == ["proline"]
    f = {x.name: x for x in rep.features}["proline"]
    assert f.test == "ks" and f.p_value < rep.threshold and f.psi > 0.25
    assert rep.threshold == pytest.approx(0.05 / 13)


def test_an_unshifted_resample_is_not_flagged(wine):
    ds, held = wine
    rep = check_drift(ds, held.sample(frac=0.8, random_state=1))
    assert rep.moved == [] and "0 of 13 features moved" in rep.lines()[0]


def test_categorical_columns_use_chi2_and_missing_columns_are_named():
    ref = pd.DataFrame({"n": np.arange(200) % 3, "x": np.linspace(0, 1, 200)})
    same = compare_tables(ref, ref.sample(frac=1.0, random_state=0), categorical={"n"})
    assert [(f.test, f.moved) for f in same] == [("chi2", False), ("ks", False)]
    assert same[0].p_value == pytest.approx(1.0) and same[0].psi == pytest.approx(0.0)
    moved = compare_tables(ref, pd.DataFrame({"n": [0] * 150 + [1] * 50, "x": np.linspace(0, 1, 200)}),
                           categorical={"n"})
    assert moved[0].moved and not moved[1].moved
    with pytest.raises(DatasetError, match="lacks column"):
        compare_tables(ref, ref[["x"]])


def test_images_without_a_model_are_refused():
    with pytest.raises(DatasetError, match="model's activations"):
        check_drift(load_dataset("digits"), pd.DataFrame({"a": [1.0]}))


def test_csv_run_drift_from_the_command_line(tmp_path, capsys):
    from builder.cli.main import main
    from builder.graph.templates import load_template
    from builder.interpret.session import open_run
    from builder.runs.pipeline import run_training
    from builder.runs.store import RunStore

    rng = np.random.default_rng(0)
    n = 300
    color = rng.choice(["red", "green", "blue"], n)
    size = rng.normal(10, 2, n)
    df = pd.DataFrame({"size": size, "color": color, "label": np.where(size + (color == "red") * 2 > 11, "big", "small")})
    train_csv = tmp_path / "train.csv"
    df.to_csv(train_csv, index=False)
    store = RunStore(tmp_path / "ws", actor=SYSTEM)
    r = run_training(load_template("mlp"), "csv", {"epochs": 1}, store, adapt=True,
                     dataset_options={"path": LocalFile(train_csv), "target": "label"})
    model, ds = open_run(store, store.get(r.run_id))
    ref, categorical = reference_table(ds)
    assert categorical == {"color"} and len(ref) == len(ds.train)
    enc = encode_table(ds, ref).numpy()  # the training rows encode back to the dataset's inputs
    assert np.allclose(np.sort(enc, axis=0), np.sort(ds.train.X.numpy(), axis=0), atol=1e-4)

    new = pd.DataFrame({"size": rng.normal(10, 2, 200), "color": ["red"] * 150 + ["green"] * 50})
    new_csv = tmp_path / "new.csv"
    new.to_csv(new_csv, index=False)
    assert main(["drift", r.run_id, "--data-path", str(new_csv), "--workspace", str(store.workspace), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["moved"] == ["color"] and out["n_new"] == 200
    assert set(out["prediction"]["class_mix_new"]) == {"big", "small"}
    assert main(["drift", r.run_id, "--data-path", str(new_csv), "--workspace", str(store.workspace)]) == 0
    text = capsys.readouterr().out
    assert "1 of 2 features moved" in text and "predicted class mix" in text
