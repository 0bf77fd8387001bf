"""A run that learns from another run tests on that run's split (issue 34): a distilled student trained with
another seed, a fine-tune (``init_from``) and a distillation's student-alone baseline; conflicting options are
refused. Checked by content: no test row of the child was a training row of the model it learns from."""

from __future__ import annotations

import re

import pytest
import torch

from builder import cli
from builder.data.access import SYSTEM
from builder.errors import TrainingError
from builder.graph.templates import load_template
from builder.runs.pipeline import load_run_dataset, run_training
from builder.runs.store import RunStore
from builder.training.lineage import BASELINE_TAG


def _student(tmp_path):
    """The mlp template sized for breast_cancer (30 features, two logits: distillation reads class logits)."""
    p = load_template("mlp")
    p.graph.node("input").params["shape"] = [30]
    p.graph.node("head").params["out_features"] = 2
    path = tmp_path / "student.json"
    path.write_text(p.model_dump_json())
    return p, path


def _rows(split) -> set[tuple[float, ...]]:
    """Rows by content, in the dataset's raw units (standardisation differs with the training split)."""
    return {tuple(round(float(v), 4) for v in row) for row in split}


def _raw(store, run_id: str, part: str) -> set[tuple[float, ...]]:
    ds = load_run_dataset(store, store.get(run_id))
    x = getattr(ds, part).X.reshape(len(getattr(ds, part)), -1)
    mean, std = torch.tensor(ds.info.input_mean), torch.tensor(ds.info.input_std)
    return _rows(x * std + mean)


def test_a_student_with_another_seed_tests_only_on_rows_its_teacher_never_trained_on(tmp_path, capsys):
    project, path = _student(tmp_path)
    ws = str(tmp_path / "ws")
    assert cli.main(["train", str(path), "--dataset", "breast_cancer", "--epochs", "2", "--seed", "0",
                     "--workspace", ws, "--quiet"]) == 0
    store = RunStore(ws, actor=SYSTEM)
    teacher = store.list_runs(None, 1)[0]["id"]
    capsys.readouterr()
    assert cli.main(["train", str(path), "--dataset", "breast_cancer", "--epochs", "2", "--seed", "5",
                     "--teacher", teacher, "--workspace", ws, "--quiet"]) == 0
    out = capsys.readouterr().out
    runs = {r["id"]: r for r in store.list_runs(None, 5)}
    student = next(i for i, r in runs.items() if (r.get("tags") or {}).get(BASELINE_TAG))
    baseline = runs[student]["tags"][BASELINE_TAG]["run"]
    assert {teacher, student, baseline} == set(runs)
    teacher_train = _raw(store, teacher, "train") | _raw(store, teacher, "val")
    for child in (student, baseline):  # the distilled student and its student-alone baseline
        test = _raw(store, child, "test")
        assert len(test) == 86 and not test & teacher_train, child
        assert store.get(child)["config"]["seed"] == 5  # its own training seed, the teacher's split
    assert _raw(store, student, "test") == _raw(store, baseline, "test")
    card = store.folder(student).read_model_card()
    assert f"split of run {teacher}" in card and "student alone" in card
    base_acc = store.get(baseline)["test_metrics"]["accuracy"]
    assert re.search(rf"student alone \(same graph, settings, seed and split, no teacher\) {base_acc:.3f}", out)


def test_a_fine_tune_reuses_its_parents_split_and_a_conflicting_seed_is_refused(tmp_path):
    project, _ = _student(tmp_path)
    store = RunStore(tmp_path / "ws", actor=SYSTEM)
    parent = run_training(project, "breast_cancer", {"epochs": 1, "seed": 1}, store).run_id
    child = run_training(project, "breast_cancer", {"epochs": 1, "seed": 9, "init_from": parent}, store).run_id
    assert not _raw(store, child, "test") & (_raw(store, parent, "train") | _raw(store, parent, "val"))
    assert store.get(child)["dataset_options"]["seed"] == 1
    with pytest.raises(TrainingError, match=r"tests on that run's split.*seed=9"):
        run_training(project, "breast_cancer", {"epochs": 1, "init_from": parent}, store,
                     dataset_options={"seed": 9})
    other = run_training(project, "wine", {"epochs": 1, "seed": 3, "init_from": None}, store,
                         adapt=True).run_id  # another dataset shares no rows: a run from it keeps its own split
    assert store.get(other)["dataset_options"]["seed"] == 3
