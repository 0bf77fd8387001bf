"""Cross-validation (issue 19): fold splits disjoint and covering, K grouped runs, mean ± std of the test metrics."""

from __future__ import annotations

import json

import numpy as np
import pytest

from builder.data import load_dataset
from builder.data.access import SYSTEM, Actor
from builder.data.splits import fold_indices, split_indices
from builder.errors import DatasetError, TrainingError
from builder.graph.templates import load_template
from builder.jobs.specs import crossval_job_specs
from builder.runs.crossval import cross_validate, group_runs, summarise
from builder.runs.store import RunStore


@pytest.mark.parametrize("stratify", [True, False])
def test_folds_are_disjoint_cover_the_data_and_are_stratified(stratify):
    y = np.repeat([0, 1, 2], [50, 30, 20])
    parts = [fold_indices(y, 100, seed=3, fold=k, folds=5, val_fraction=0.15, stratify=stratify) for k in range(5)]
    tests = [te for _, _, te in parts]
    assert sorted(np.concatenate(tests).tolist()) == list(range(100))  # disjoint and covering
    for tr, va, te in parts:  # within a fold: three disjoint splits of everything
        assert sorted(np.concatenate([tr, va, te]).tolist()) == list(range(100))
        assert len(va) > 0 and len(tr) > 0
    if stratify:
        assert all(np.bincount(y[te], minlength=3).tolist() == [10, 6, 4] for te in tests)


def test_iris_five_folds_through_load_dataset_and_reload():
    ds = [load_dataset("iris", fold=k, folds=5) for k in range(5)]
    assert [d.info.sizes["test"] for d in ds] == [30] * 5
    # the test rows of the folds are disjoint and cover iris: compared as raw rows (standardisation undone)
    def raw(d, X):
        return np.asarray(X) * np.array(d.info.input_std) + np.array(d.info.input_mean)

    tested = np.concatenate([raw(d, d.test.X) for d in ds]).round(3)
    everything = raw(ds[0], np.concatenate([ds[0].train.X, ds[0].val.X, ds[0].test.X])).round(3)
    assert np.array_equal(np.sort(tested.view([("", tested.dtype)] * 4), axis=0),
                          np.sort(everything.view([("", everything.dtype)] * 4), axis=0))
    name, opts = ds[2].info.reload_args()
    assert opts["fold"] == 2 and opts["folds"] == 5
    again = load_dataset(name, **opts)
    assert np.array_equal(again.test.X.numpy(), ds[2].test.X.numpy())
    # outside the fold option the plain split is untouched
    assert split_indices(np.zeros(20), 20, seed=0, val_fraction=0.15, test_fraction=0.15, stratify=False)[2].size == 3


@pytest.mark.parametrize("fold, folds", [(5, 5), (0, 1), (0, 100), ("a", 3)])
def test_bad_folds_are_refused(fold, folds):
    with pytest.raises(DatasetError, match="folds"):
        load_dataset("iris", fold=fold, folds=folds)


def test_cross_validate_groups_runs_and_reports_mean_std(tmp_path):
    store = RunStore(tmp_path, actor=SYSTEM)
    res = cross_validate(load_template("mlp"), "iris", {"epochs": 3, "early_stopping": None}, store, folds=3,
                         adapt=True, group="cv-test")
    assert res.ok and len(res.run_ids) == 3
    assert set(res.summary) >= {"accuracy", "loss"} and "n" not in res.summary
    acc = [t["accuracy"] for t in res.tests]
    assert res.summary["accuracy"]["mean"] == pytest.approx(np.mean(acc))
    assert res.summary["accuracy"]["std"] == pytest.approx(np.std(acc, ddof=1))
    runs = group_runs(store, "cv-test")
    assert [r["id"] for r in runs] == res.run_ids
    assert [(r["tags"]["fold"], r["dataset_options"]["fold"], r["dataset_options"]["folds"]) for r in runs] == [
        (0, 0, 3), (1, 1, 3), (2, 2, 3)]
    with pytest.raises(TrainingError, match="name"):
        cross_validate(load_template("mlp"), load_dataset("iris"), None, store, folds=2)


def test_summary_of_one_value_has_zero_std():
    assert summarise([{"accuracy": 0.5, "n": 10}]) == {"accuracy": {"mean": 0.5, "std": 0.0, "min": 0.5, "max": 0.5,
                                                                    "n": 1}}


def test_cli_train_folds_json(tmp_path, capsys):
    from builder.cli.main import main

    rc = main(["train", "mlp", "--dataset", "iris", "--adapt", "--folds", "2", "--epochs", "2", "--quiet", "--json",
               "--workspace", str(tmp_path)])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rc == 0 and out["folds"] == 2 and len(out["run_ids"]) == 2
    assert {"mean", "std"} <= set(out["summary"]["accuracy"])


def test_crossval_job_specs_are_training_jobs_tagged_with_the_group():
    group, specs = crossval_job_specs(load_template("mlp"), "moons", {"epochs": 2}, folds=3,
                                      dataset_options={"n": 200}, owner="anon:" + "a" * 32)
    assert [s.dataset_options for s in specs] == [{"n": 200, "fold": k, "folds": 3} for k in range(3)]
    assert [s.tags for s in specs] == [{"crossval": group, "fold": k, "folds": 3} for k in range(3)]
    assert {s.kind for s in specs} == {"train"} and {s.owner for s in specs} == {"anon:" + "a" * 32}
    assert specs[1].name.endswith("fold 2/3") and specs[0].config == {"epochs": 2}


@pytest.mark.parametrize(("kw", "text"), [({"folds": 1}, "2 to 50"), ({"folds": 51}, "2 to 50"),
                                          ({"dataset_options": {"fold": 0}}, "folds=K")])
def test_crossval_job_specs_refuse_bad_requests(kw, text):
    with pytest.raises(TrainingError, match=text):
        crossval_job_specs(load_template("mlp"), "moons", **kw)


def test_submit_group_refuses_jobs_of_two_owners_and_records_nothing(tmp_path):
    from builder.jobs.queue import submit_group

    store = RunStore(tmp_path, actor=Actor("anon:" + "a" * 32))
    _, specs = crossval_job_specs(load_template("mlp"), "moons", folds=2, owner="anon:" + "a" * 32)
    specs[1].owner = "anon:" + "b" * 32
    with pytest.raises(TrainingError, match="one owner"):
        submit_group(store, specs)
    with pytest.raises(TrainingError, match="one owner"):
        submit_group(store, [])
    assert store.list_runs() == []
