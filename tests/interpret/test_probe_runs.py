"""builder.interpret.probe for the Runs page's drift check and the Train page's VAE view (issue 21): the model
runs in the sandboxed child, the answer is the in-process answer, and a crash there is one error line."""

from __future__ import annotations

import pytest

import builder
from builder.data.access import SYSTEM
from builder.data.drift import reference_table
from builder.errors import ExplainError, TrainingError
from builder.interpret import run_views
from builder.interpret.run_views import drift_run
from builder.jobs.probe import ModelProbe
from builder.runs.pipeline import load_run_dataset, run_training
from builder.runs.store import RunStore

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def crash_in_drift() -> None:
    """Inside the child: a drift check at alpha 0.123 segfaults, as a torch bug in the user's model would."""
    import ctypes

    from builder.data import drift

    original = drift.check_drift

    def check_drift(ds, new, *, model=None, alpha=0.05):
        if alpha == 0.123:
            ctypes.string_at(0)
        return original(ds, new, model=model, alpha=alpha)

    drift.check_drift = check_drift


def crash_in_holdout() -> None:
    """Inside the child: scoring on a held-out set drawn with seed 666 segfaults (a torch bug in the model), with
    seed 667 it hangs (a model that never returns)."""
    import ctypes
    import time

    from builder.interpret import run_views

    original = run_views.evaluate_holdout

    def evaluate_holdout(store, run_id, holdout, metric):
        seed = holdout.get("options", {}).get("seed")
        if seed == 666:
            ctypes.string_at(0)
        while seed == 667:
            time.sleep(1)
        return original(store, run_id, holdout, metric)

    run_views.evaluate_holdout = evaluate_holdout


@pytest.fixture(scope="module")
def moons(tmp_path_factory):
    ws = tmp_path_factory.mktemp("ws")
    store = RunStore(ws, actor=SYSTEM)
    rid = run_training(builder.load_template("mlp"), "moons", {"epochs": 1, "seed": 0}, store=store).run_id
    ref, _ = reference_table(load_run_dataset(store, store.get(rid)))
    new = ref.copy()
    new[ref.columns[0]] = new[ref.columns[0]] * 2.0 + 1.5
    path = ws / "new.csv"
    new.to_csv(path, index=False)
    return store, rid, path


def test_drift_in_the_probe_is_the_in_process_report_and_a_crash_is_one_line(moons, monkeypatch):
    store, rid, path = moons
    monkeypatch.setattr(ModelProbe, "TEST_HOOK", f"{__name__}:crash_in_drift")
    probe = ModelProbe()
    try:
        got = probe.drift(store, rid, path, alpha=0.05)
        assert probe.running
        with pytest.raises(ExplainError, match="segmentation fault") as e:
            probe.drift(store, rid, path, alpha=0.123)
        assert "\n" not in str(e.value) and not probe.running
        with pytest.raises(TrainingError, match="gives its input back"):  # the next question: a fresh child, its
            probe.reconstructions(store, rid)  # own error
        assert probe.starts == 2
    finally:
        probe.close()
    want = drift_run(store, rid, path, alpha=0.05).to_dict()
    assert got["moved"] == want["moved"] == [want["features"][0]["name"]]
    assert [f["p_value"] for f in got["features"]] == pytest.approx([f["p_value"] for f in want["features"]])
    assert got["prediction"]["confidence_new"] == pytest.approx(want["prediction"]["confidence_new"], abs=1e-6)


def test_leaderboard_scores_in_the_probe_and_a_crash_is_one_cached_line(moons, monkeypatch):
    from builder.runs import classes

    store, rid, _ = moons
    ws = store.workspace
    monkeypatch.setenv("LAYERLAB_TEACHERS", "t@school.org")
    monkeypatch.delenv("LAYERLAB_SERVER_CONFIG", raising=False)
    monkeypatch.setattr(ModelProbe, "TEST_HOOK", f"{__name__}:crash_in_holdout")
    run = store.get(rid)
    good = classes.create_class(ws, "user:t@school.org", "ok", builder.load_template("mlp"),
                                holdout={"dataset": "moons", "options": {"seed": 7, "n_samples": 300}})
    bad = classes.create_class(ws, "user:t@school.org", "crash", builder.load_template("mlp"),
                               holdout={"dataset": "moons", "options": {"seed": 666, "n_samples": 300}})
    probe = ModelProbe()
    try:
        def scorer(run_id, holdout, metric):
            return probe.holdout(store, run_id, holdout, metric)

        here = run_views.evaluate_holdout(store, rid, good["holdout"], "accuracy")
        value, error = classes.holdout_result(store, good, run, scorer)
        assert error is None and value == pytest.approx(here, abs=1e-6)  # the child's answer is the in-process one
        value, error = classes.holdout_result(store, bad, run, scorer)
        assert value is None and "SIGSEGV" in error and "\n" not in error and not probe.running
        starts = probe.starts
        assert classes.holdout_result(store, bad, run, scorer) == (None, error)  # cached: the model is not run again
        assert probe.starts == starts
        assert classes.holdout_result(store, good, run, scorer)[0] == pytest.approx(here, abs=1e-6)
    finally:
        probe.close()


def test_a_leaderboard_score_that_hangs_is_one_line_after_the_probes_timeout(moons, monkeypatch):
    from builder.runs import classes

    store, rid, _ = moons
    monkeypatch.setenv("LAYERLAB_TEACHERS", "t@school.org")
    monkeypatch.delenv("LAYERLAB_SERVER_CONFIG", raising=False)
    monkeypatch.setattr(ModelProbe, "TEST_HOOK", f"{__name__}:crash_in_holdout")
    hung = classes.create_class(store.workspace, "user:t@school.org", "hang", builder.load_template("mlp"),
                                holdout={"dataset": "moons", "options": {"seed": 667, "n_samples": 300}})
    probe = ModelProbe(timeout=10)
    try:
        value, error = classes.holdout_result(store, hung, store.get(rid),
                                              lambda r, h, m: probe.holdout(store, r, h, m))
        assert value is None and "did not answer within 10 s" in error and "\n" not in error
        assert not probe.running  # the hung child was stopped
    finally:
        probe.close()


def test_an_autoencoders_reconstructions_in_the_probe_are_its_models_output(tmp_path):
    """An autoencoder (task reconstruction, no VAE node) gives its test inputs back through its output: the
    probe's pictures are the model's own output for the first test samples, shaped as the 8x8 digits it reads
    flat; no latent space (it has no Reparameterize node). Before, only a VAE had reconstructions."""
    import torch

    from builder.data import fit_dataset
    from builder.runs.pipeline import load_run

    store = RunStore(tmp_path / "ws", actor=SYSTEM)
    rid = run_training(builder.load_template("autoencoder"), "digits", {"epochs": 1, "seed": 0}, store=store).run_id
    probe = ModelProbe()
    try:
        got = probe.reconstructions(store, rid, shown=5)
    finally:
        probe.close()
    assert set(got) == {"inputs", "recons"} and got["inputs"].shape == got["recons"].shape == (5, 1, 8, 8)
    model, _ = load_run(store, store.get(rid))
    ds = fit_dataset(store.get(rid).project.graph, load_run_dataset(store, store.get(rid)))
    x = ds.test.batch(torch.arange(5))
    with torch.no_grad():
        want = model(x).reshape(5, 1, 8, 8).numpy()
    assert got["inputs"] == pytest.approx(x.reshape(5, 1, 8, 8).numpy())
    assert got["recons"] == pytest.approx(want, abs=1e-6)
    assert abs(got["recons"] - got["inputs"]).max() > 0  # a model's answer, not its input handed back
