"""builder/search/: search-space parsing and checks, applying a trial, and studies whose trials are jobs."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from builder.data.access import SYSTEM
from builder.errors import AccessDenied, LayerLabError
from builder.graph.templates import load_template
from builder.runs.pipeline import run_training
from builder.runs.store import RunStore
from builder.search import (
    Dimension,
    JobLauncher,
    SearchSpaceError,
    StudyRunner,
    StudySettings,
    best_project,
    launch_study,
    load_study,
    objective_direction,
    objective_value,
    parse_dimension,
    parse_space,
    request_stop,
    resolve_study,
    resume_study,
    study_figures,
    study_key,
    study_owner,
    trials_table,
)
from tests.helpers import shades_zip, until


@pytest.fixture(autouse=True)
def _warm_launcher(monkeypatch):
    """A study's trials are jobs submitted one after another: after the first, each is forked by the workspace's
    warm launcher (tests/conftest.py turns launchers off for the many one-job workspaces)."""
    monkeypatch.setenv("LAYERLAB_LAUNCHER_IDLE_S", "20")


@pytest.fixture
def mlp():
    return load_template("mlp")


def _problems(specs, project):
    with pytest.raises(SearchSpaceError) as e:
        parse_space(specs, project)
    return e.value.problems


# ----------------------------------------------------------------------------------------- parsing
def test_parse_ranges_and_choices(mlp):
    space = parse_space(["lr=1e-4..1e-1:log", "fc1.out_features=16..256:log", "optimizer={adam,sgd}",
                         "batch_size={16,32,64}", "weight_decay=0..0.01", "epochs=2..5"], mlp)
    d = {x.key: x for x in space.dims}
    assert d["lr"] == Dimension("lr", "float", 1e-4, 0.1, log=True)
    assert d["fc1.out_features"] == Dimension("fc1.out_features", "int", 16, 256, log=True)
    assert d["fc1.out_features"].node == "fc1" and d["fc1.out_features"].param == "out_features"
    assert d["optimizer"].choices == ("adam", "sgd")
    assert d["epochs"].kind == "int" and d["weight_decay"].kind == "float"
    again = parse_space(space.to_specs(), mlp)  # specs round-trip
    assert again.dims == space.dims


def test_float_parameter_range_from_integers_is_float():
    p = load_template("mlp")
    p.graph.nodes.append(p.graph.nodes[0].model_copy(update={"id": "drop", "type": "Dropout", "params": {}}))
    d = parse_space(["drop.p=0..1"], p).dims[0]
    assert d.kind == "float" and isinstance(d.low, float)


def test_every_bad_spec_is_a_located_problem(mlp):
    probs = _problems(["lr=1e-1..1e-4:log", "fc9.out_features=1..4", "fc1.out_feat=3..4",
                       "fc2.out_features=0..8", "fc1.out_features=8..8", "lr=1..2", "bogus=1..2", "x",
                       "optimizer={adam,sgdd}", "dropout=0.1..0.5", "weight_decay=0..1:log",
                       "head.out_features=1.5..4", "act1.inplace=1..2"], mlp)
    by = {(p.node, p.key): p for p in probs[1:]}
    assert len(probs) == 13
    assert "low to high" in probs[0].message and "Fix: lr=0.0001..0.1:log" in probs[0].message
    assert "no node 'fc9'" in by[(None, "fc9.out_features")].message
    assert by[("fc1", "fc1.out_feat")].where == "node fc1" and "did you mean `out_features`" in \
        by[("fc1", "fc1.out_feat")].message
    assert "≥ 1" in by[("fc2", "fc2.out_features")].message
    assert "more than one value" in by[("fc1", "fc1.out_features")].message
    assert "searched once" in by[(None, "lr")].message
    assert "unknown search setting" in by[(None, "bogus")].message
    assert "NAME=LOW..HIGH" in by[(None, "")].message
    assert "did you mean 'sgd'" in by[(None, "optimizer")].message
    assert "Dropout" in by[(None, "dropout")].message
    assert "bounds > 0" in by[(None, "weight_decay")].message
    assert "integer bounds" in by[("head", "head.out_features")].message
    assert by[("act1", "act1.inplace")].code in ("search_unknown_param", "search_kind")
    for p in probs:
        assert "received:" in p.message and "Fix:" in p.message, p.message


def test_inferred_and_choice_kind_errors(mlp):
    p = load_template("lstm")
    ids = {n.type: n.id for n in p.graph.nodes}
    rnn = ids["LSTM"]
    probs = _problems([f"{rnn}.input_size=2..4", f"{rnn}.num_layers={{1,2,99999}}", f"{rnn}.bidirectional=0..1"], p)
    assert [q.code for q in probs] == ["search_inferred", "search_choice", "search_kind"]
    assert all(q.node == rnn for q in probs)
    space = parse_space([f"{rnn}.num_layers={{1,2,3}}", f"{rnn}.bidirectional={{true,false}}"], p)
    assert space.dims[1].choices == (True, False)


def test_empty_space_and_empty_choices(mlp):
    assert _problems([], mlp)[0].code == "search_empty"
    assert _problems(["optimizer={}"], mlp)[0].code == "search_empty"


@given(lo=st.floats(1e-6, 1e3), hi=st.floats(1e-6, 1e3), log=st.booleans())
def test_ranges_property(lo, hi, log):
    """Any float range parses; it is accepted exactly when low < high and inside lr's bounds."""
    p = load_template("mlp")
    spec = f"lr={lo!r}..{hi!r}" + (":log" if log else "")
    ok = lo < hi and hi <= 10.0
    if ok:
        d = parse_space([spec], p).dims[0]
        assert (d.low, d.high, d.log) == (lo, hi, log)
        assert parse_dimension(d.to_text()) == d
    else:
        probs = _problems([spec], p)
        assert len(probs) == 1 and probs[0].key == "lr" and "Fix:" in probs[0].message


@given(a=st.integers(-5, 300), b=st.integers(-5, 300))
def test_int_node_ranges_property(a, b):
    p = load_template("mlp")
    spec = f"fc1.out_features={a}..{b}"
    if 1 <= a < b:
        assert parse_space([spec], p).dims[0] == Dimension("fc1.out_features", "int", a, b)
    else:
        assert _problems([spec], p)[0].node == "fc1"


def test_apply_sets_nodes_settings_and_dropout():
    p = load_template("mlp")
    p.graph.nodes.append(p.graph.nodes[0].model_copy(update={"id": "drop", "type": "Dropout", "params": {}}))
    space = parse_space(["fc1.out_features=4..64", "lr=1e-3..1e-1", "dropout=0..0.5"], p)
    q, cfg = space.apply(p, {"epochs": 3}, {"fc1.out_features": 7, "lr": 0.01, "dropout": 0.25})
    assert q.graph.node("fc1").params["out_features"] == 7 and q.graph.node("drop").params["p"] == 0.25
    assert cfg == {"epochs": 3, "lr": 0.01}
    assert p.graph.node("fc1").params["out_features"] == 32  # the base project is untouched


def test_objective_helpers():
    ev = {"val_loss": 0.3, "val_metric": 0.9, "metric_name": "accuracy"}
    assert objective_value(ev, "val_loss") == 0.3 and objective_value(ev, "val_accuracy") == 0.9
    assert objective_value(ev, "val_r2") is None and objective_value({"val_loss": float("nan")}, "val_loss") is None
    assert objective_direction("val_loss") == "minimize" and objective_direction("val_f1") == "maximize"


def test_settings_and_objective_task_are_checked(tmp_path, mlp):
    store = RunStore(tmp_path, actor=SYSTEM)
    with pytest.raises(LayerLabError, match="number of trials"):
        StudyRunner(store, mlp, "moons", space=["lr=1e-3..1e-1"], settings=StudySettings(n_trials=0))
    with pytest.raises(LayerLabError, match="objective must suit"):
        StudyRunner(store, mlp, "moons", space=["lr=1e-3..1e-1"], settings=StudySettings(objective="val_r2"))
    with pytest.raises(LayerLabError, match="study name"):
        StudyRunner(store, mlp, "moons", space=["lr=1e-3..1e-1"], settings=StudySettings(name="a b"))



@pytest.mark.parametrize(("template", "dataset", "objective"), [("gpt", "text_corpus", "val_r2"),
                                                                 ("rnn_forecaster", "sunspots", "val_metric")])
def test_an_objective_the_task_cannot_score_or_would_maximise_wrongly_is_refused(tmp_path, template, dataset,
                                                                                  objective):
    """The Search page offered R² for a language model (every trial then failed: "metric perplexity goes with task
    next_token"), and ``val_metric`` on a forecast maximised its mean absolute error. One rule
    (builder.search.settings.objectives_for) gives the page its choices and refuses the rest."""
    from builder import load_template
    from builder.search.settings import objectives_for

    store = RunStore(tmp_path, actor=SYSTEM)
    with pytest.raises(LayerLabError, match=f"received: {objective} on a .* dataset. Fix: use val_loss"):
        StudyRunner(store, load_template(template), dataset, space=["lr=1e-3..1e-1"],
                    settings=StudySettings(objective=objective))
    assert objective not in objectives_for("next_token" if template == "gpt" else "forecast")


def test_a_study_belongs_to_its_owner(tmp_path, mlp):
    """Another person cannot resume, extend or read a study by typing its name (app or CLI): the name is theirs to
    use for a study of their own (tests/search/test_study_names.py has the rest)."""
    store = RunStore(tmp_path, actor=SYSTEM)
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    assert resolve_study(storage, "shared", owner="anon:alice", workspace=tmp_path) is None
    StudyRunner(store, mlp, "moons", space=["lr=1e-3..1e-1"],
                settings=StudySettings(name="shared", storage=storage, owner="anon:alice"))
    key = resolve_study(storage, "shared", owner="anon:alice", workspace=tmp_path)
    assert key == study_key(tmp_path, "anon:alice", "shared") and study_owner(storage, key) == "anon:alice"
    StudyRunner(store, mlp, "moons", space=["lr=1e-3..1e-1"],  # its owner may resume it
                settings=StudySettings(name="shared", storage=storage, owner="anon:alice"))
    # resuming, reading or stopping it by name: answered as for an unknown name, listing only the asker's studies
    for door in (lambda: resume_study(tmp_path, storage, "shared", owner="anon:bob"),
                 lambda: load_study(storage, "shared", owner="anon:bob", workspace=tmp_path),
                 lambda: request_stop(storage, "shared", owner="anon:bob", workspace=tmp_path)):
        with pytest.raises(AccessDenied, match="no study named 'shared'.*none yet"):
            door()
    with pytest.raises(AccessDenied) as unknown:
        load_study(storage, "nope", owner="anon:bob", workspace=tmp_path)
    with pytest.raises(AccessDenied) as forbidden:
        load_study(storage, "shared", owner="anon:bob", workspace=tmp_path)
    assert str(unknown.value).replace("nope", "shared") == str(forbidden.value)  # no oracle
    bobs = StudyRunner(store, mlp, "moons", space=["lr=1e-4..1e-1"],  # Bob's own "shared", another space
                       settings=StudySettings(name="shared", storage=storage, owner="anon:bob"))
    assert bobs.study._study_id != load_study(storage, "shared", owner="anon:alice", workspace=tmp_path)._study_id
    assert load_study(storage, "shared", owner="anon:alice", workspace=tmp_path).study_name == key


def test_a_study_runner_gets_its_owner_outside_its_command_line(tmp_path, mlp):
    """A process's command line is public (``ps``); an anonymous owner id is a key: it goes in the environment."""
    cookie = "9f3ab7e1c4d28f60a5be17c93d4f8e2b"
    proc = launch_study(tmp_path, mlp, "moons", ["lr=1e-3..1e-1:log"],
                        StudySettings(name="mine", n_trials=1, workers=1, pruner="none", owner="anon:" + cookie,
                                      max_params=1),  # its trial fails before any job starts
                        config={"epochs": 1})
    try:
        # read once the runner's own command is in place: the launcher returns its pid as it starts, and the
        # command line of a process in mid-exec reads as '' (once in a run of the whole suite at three workers)
        cmdline = until(lambda: (c := Path(f"/proc/{proc.pid}/cmdline").read_bytes().decode(errors="replace"))
                        and "tune" in c and c, "the runner's command line", 60)
        storage = f"sqlite:///{tmp_path / 'studies.db'}"
        until(lambda: "space" in (load_study(storage, "mine", owner="anon:" + cookie, workspace=tmp_path)
                                  .user_attrs.get("layerlab") or {}), "the runner records its study", 120)
        assert study_owner(storage, study_key(tmp_path, "anon:" + cookie, "mine")) == "anon:" + cookie
    finally:
        proc.kill()
        proc.wait(30)
    assert "mine" in cmdline and not any(cookie[i:i + 6] in cmdline for i in range(len(cookie) - 5))


# ------------------------------------------------------------------------- runner, fast (in-process)
class ThreadJobs:
    """Trials as in-process background jobs (fast); the real job processes are used further down."""

    def __init__(self, slots: int = 2):
        self.n, self.jobs = slots, {}

    def max_jobs(self):
        return self.n

    def submit(self, store, spec):
        job = run_training(spec["project"], spec["dataset"], spec["config"], store, background=True,
                           dataset_options=spec["dataset_options"], name=spec["name"], owner=spec["owner"],
                           tags=spec["tags"])
        self.jobs[job.run_id] = job
        return job.run_id

    def request(self, store, run_id, action):
        self.jobs[run_id].stop()


def _thread_launcher(slots=2):
    return JobLauncher(ThreadJobs(slots))


def test_invalid_graph_trials_fail_with_problems_and_study_goes_on(tmp_path, mlp):
    store = RunStore(tmp_path, actor=SYSTEM)
    events = []
    runner = StudyRunner(store, mlp, "moons", {"epochs": 2}, space=["head.out_features={2,5}", "lr=1e-3..1e-1:log"],
                         settings=StudySettings(name="bad", n_trials=6, sampler="random", seed=3, pruner="none"),
                         launcher=_thread_launcher(), on_update=events.append)
    res = runner.run()
    rows = trials_table(runner.study)
    assert len(rows) == 6 and res.n_trials == 6
    bad = [r for r in rows if r["head.out_features"] == 5]
    good = [r for r in rows if r["head.out_features"] == 2]
    assert bad and good
    assert all(r["state"] == "fail" and "node head" in r["message"] and r["run_id"] is None for r in bad)
    assert all(r["state"] == "complete" and r["run_id"] for r in good)
    assert res.best_params["head.out_features"] == 2
    assert store.get(res.best_run_id)["status"] == "finished"
    assert events[-1]["type"] == "study_done"


def test_cost_limit_fails_trials_before_training_and_the_front_trades_cost(tmp_path, mlp):
    from builder.search.results import pareto_front, study_figures

    store = RunStore(tmp_path, actor=SYSTEM)
    runner = StudyRunner(store, mlp, "moons", {"epochs": 1}, space=["fc2.out_features={4,16,64}"],
                         settings=StudySettings(name="cost", n_trials=6, sampler="random", seed=1, pruner="none",
                                                max_macs=1_500),
                         launcher=_thread_launcher())
    res = runner.run()
    rows = trials_table(runner.study)
    # MACs of the MLP on moons: 2*32 + 32*h + h*2 (h = fc2.out_features): 200, 608 and 2,240
    assert {r["fc2.out_features"]: r["macs"] for r in rows} == {h: 64 + 34 * h for h in {r["fc2.out_features"]
                                                                                           for r in rows}}
    over = [r for r in rows if r["fc2.out_features"] == 64]
    assert over and all(r["state"] == "fail" and r["run_id"] is None and "multiply-adds must be at most 1,500"
                        in r["message"] for r in over)
    assert all(r["state"] == "complete" for r in rows if r["fc2.out_features"] != 64)
    front = pareto_front(runner.study)
    assert front == res.pareto and front and [p["macs"] for p in front] == sorted(p["macs"] for p in front)
    done = [r for r in rows if r["state"] == "complete"]
    for p in front:  # no complete trial is at least as cheap and strictly better
        assert not any(r["macs"] <= p["macs"] and r["value"] < p["value"] and r["trial"] != p["trial"] for r in done)
    assert ("pareto" in study_figures(runner.study)) == (len(front) > 1)


def test_resume_runs_until_the_study_holds_n_trials(tmp_path, mlp):
    store = RunStore(tmp_path, actor=SYSTEM)

    def runner(n):
        return StudyRunner(store, mlp, "moons", {"epochs": 1}, space=["lr=1e-3..1e-1:log"],
                           settings=StudySettings(name="r", n_trials=n, seed=1), launcher=_thread_launcher())

    assert runner(2).run().n_trials == 2
    res = runner(4).run()  # resumed (load_if_exists): two more
    assert res.n_trials == 4 and res.states == {"complete": 4}
    with pytest.raises(LayerLabError, match="another space"):
        StudyRunner(store, mlp, "moons", space=["lr=1e-4..1e-1:log"], settings=StudySettings(name="r"),
                    launcher=_thread_launcher())
    project, cfg = best_project(load_study(res.storage, "r"))
    assert cfg["lr"] == pytest.approx(res.best_params["lr"]) and project.training["lr"] == cfg["lr"]
    figs = study_figures(load_study(res.storage, "r"))
    assert {"history", "parallel", "intermediate"} <= set(figs)


class CrashingJobs(ThreadJobs):
    """Trials whose job process dies by SIGSEGV: a reader marks the run interrupted as soon as its process is gone,
    and the process that started the job records how it died a moment later (builder.jobs.job_sandbox.record_death),
    as on a loaded server."""

    def submit(self, store, spec):
        rid = store.create_run(spec["project"], spec["dataset"], spec["dataset_options"], spec["config"],
                               name=spec["name"], owner=spec["owner"], tags=spec["tags"])
        store.update_status(rid, "running")

        def die():
            time.sleep(0.3)
            store.update_status(rid, "interrupted", "the training process ended unexpectedly")  # a reader
            time.sleep(1.0)
            store.finish(rid, "failed", message="the training job died from SIGSEGV: a crash in native code")

        self.jobs[rid] = threading.Thread(target=die, daemon=True)
        self.jobs[rid].start()
        return rid


def test_a_trial_whose_job_crashed_says_how_it_died(tmp_path, mlp):
    """The browser test's crashing trial (Train › Search) said only "its job process ended unexpectedly": the study
    took the interim status a reader wrote before the job's starter recorded the SIGSEGV."""
    store = RunStore(tmp_path, actor=SYSTEM)
    runner = StudyRunner(store, mlp, "moons", {"epochs": 1}, space=["lr=1e-3..1e-1:log"],
                         settings=StudySettings(name="crash", n_trials=1, pruner="none", poll_s=0.05),
                         launcher=JobLauncher(CrashingJobs(1)))
    runner.run()
    (row,) = trials_table(runner.study)
    assert row["state"] == "fail" and "SIGSEGV" in row["message"], row
    assert store.get(row["run_id"])["status"] == "failed"


class LateStopJobs(ThreadJobs):
    """A stop that arrives too late: the job trains on to the end (as a fast epoch outruns the request)."""

    def request(self, store, run_id, action):
        self.asked = getattr(self, "asked", 0) + 1


@pytest.mark.parametrize("jobs", [ThreadJobs, LateStopJobs])
def test_a_pruned_trial_and_its_run_agree(tmp_path, mlp, jobs):
    """Issue 34: Optuna marked a trial pruned while its run trained on and was recorded finished with a better
    value. Now pruned <-> stopped and complete <-> finished, a complete trial's value is its run's last epoch."""
    store = RunStore(tmp_path, actor=SYSTEM)
    launcher = jobs(1)
    # ThreadJobs: runs of many short epochs (200 samples), long enough that a prune reaches a run before it ends
    # (a 6-epoch moons run outran the request); LateStopJobs never stops a run and the pruner judges every epoch a
    # run wrote, finished or not, so short runs ask it just the same
    epochs = 200 if jobs is ThreadJobs else 8
    runner = StudyRunner(store, mlp, "moons", {"epochs": epochs, "optimizer": "sgd", "momentum": 0.0,
                                               "early_stopping": 0},
                         space=["lr=1e-5..1.0:log"], dataset_options={"n_samples": 200},
                         settings=StudySettings(name="agree", n_trials=8, objective="val_accuracy", seed=0,
                                                sampler="random", prune_startup=1, prune_warmup=0),
                         launcher=JobLauncher(launcher))
    runner.run()
    rows = [r for r in trials_table(runner.study) if r["run_id"]]
    assert len(rows) == 8
    for r in rows:
        run = store.get(r["run_id"])
        assert (r["state"] == "pruned") == (run["status"] == "stopped"), (r, run["status"])
        assert (r["state"] == "complete") == (run["status"] == "finished"), (r, run["status"])
        if r["state"] == "complete":
            last = store.metrics(r["run_id"], "epoch")[-1]
            assert r["value"] == pytest.approx(objective_value(last, "val_accuracy"))
    if jobs is LateStopJobs:  # the pruner asked, every run finished anyway: every trial is complete
        assert launcher.asked >= 1 and {r["state"] for r in rows} == {"complete"}
        assert any("the pruner asked to stop" in r["message"] for r in rows)
    else:
        assert any(r["state"] == "pruned" for r in rows)


def test_stop_request_ends_the_study(tmp_path, mlp):
    store = RunStore(tmp_path, actor=SYSTEM)
    # a run far too long to finish on its own: the trial can only end by the stop request (with 200 epochs the
    # first trial sometimes completed before the request was read, on a fast machine)
    runner = StudyRunner(store, mlp, "moons", {"epochs": 100_000, "early_stopping": None},
                         space=["lr=1e-3..1e-1:log"],
                         settings=StudySettings(name="stopme", n_trials=50, pruner="none"),
                         launcher=_thread_launcher(1))
    th = threading.Thread(target=runner.run)
    th.start()
    deadline = time.monotonic() + 60

    def first_run_trains() -> bool:
        rows = trials_table(runner.study)
        return bool(rows) and bool(rows[0].get("run_id")) and bool(store.metrics(rows[0]["run_id"], "epoch"))

    while not first_run_trains() and time.monotonic() < deadline:
        time.sleep(0.1)
    request_stop(runner.storage_url, "stopme")  # from anywhere that reaches the storage
    th.join(60)
    assert not th.is_alive()
    rows = trials_table(runner.study)
    assert len(rows) < 50 and rows[0]["state"] == "fail" and "stopped with the study" in rows[0]["message"]
    assert store.get(rows[0]["run_id"])["status"] == "stopped"


# ------------------------------------------------------------------------- runner with job processes
@pytest.mark.slow
def test_seeded_study_beats_the_defaults_and_prunes(tmp_path, mlp):
    """moons/mlp with a deliberately poor learning rate: the study finds a better validation accuracy."""
    store = RunStore(tmp_path, actor=SYSTEM)
    # long enough runs that a prune reaches a run before it ends (6- and 60-epoch runs finished first on an idle
    # machine; a trial is pruned only when its run was stopped)
    base = {"epochs": 300, "lr": 1e-5, "optimizer": "sgd", "momentum": 0.0, "early_stopping": 0}
    default = run_training(mlp, "moons", base, store)
    default_acc = default.history[-1]["val_metric"]
    runner = StudyRunner(store, mlp, "moons", base, space=["lr=1e-4..1.0:log"],
                         settings=StudySettings(name="moons", n_trials=6, objective="val_accuracy", seed=0,
                                                workers=1, prune_startup=2, prune_warmup=1))
    res = runner.run()
    assert res.best_value > default_acc + 0.1
    assert res.states.get("pruned", 0) >= 1
    rows = trials_table(runner.study)
    ran = [r for r in rows if r["run_id"]]
    assert len({r["run_id"] for r in ran}) == len(ran) == 6
    for r in ran:  # every trial is a normal run in the store
        assert store.get(r["run_id"])["name"] == f"MLP for tabular data · trial {r['trial']} of moons"
    assert store.get(res.best_run_id)["status"] == "finished"


@pytest.mark.slow
def test_killed_worker_fails_its_trial_and_the_study_goes_on(tmp_path, mlp):
    store = RunStore(tmp_path, actor=SYSTEM)
    runner = StudyRunner(store, mlp, "moons", {"epochs": 10, "batch_size": 16},
                         space=["lr=1e-3..1e-1:log"], dataset_options={"n_samples": 1500},
                         settings=StudySettings(name="kill", n_trials=3, workers=1, pruner="none"))
    th = threading.Thread(target=runner.run)
    th.start()
    victim, deadline = None, time.monotonic() + 120
    while victim is None and time.monotonic() < deadline:
        for r in trials_table(runner.study):
            if r["run_id"] and store.metrics(r["run_id"]) and store.get(r["run_id"])["status"] == "running":
                victim = r
                os.kill(int(store.get(r["run_id"])["pid"]), signal.SIGKILL)
                break
        time.sleep(0.05)
    assert victim is not None
    th.join(300)
    assert not th.is_alive()
    rows = {r["trial"]: r for r in trials_table(runner.study)}
    assert len(rows) == 3
    assert rows[victim["trial"]]["state"] == "fail" and "ended unexpectedly" in rows[victim["trial"]]["message"]
    assert store.get(victim["run_id"])["status"] == "interrupted"
    assert sum(r["state"] == "complete" for r in rows.values()) == 2


def test_time_budget_stops_new_trials(tmp_path, mlp):
    store = RunStore(tmp_path, actor=SYSTEM)
    runner = StudyRunner(store, mlp, "moons", {"epochs": 30}, space=["lr=1e-3..1e-1:log"],
                         settings=StudySettings(name="budget", n_trials=500, timeout=0.5, pruner="none"),
                         launcher=_thread_launcher(1))
    res = runner.run()
    assert 1 <= res.n_trials < 500 and not res.stopped
    assert all(r["state"] == "complete" for r in trials_table(runner.study))


def test_a_dead_runners_trial_is_adopted_on_resume(tmp_path, mlp):
    """A runner killed mid-trial leaves the trial RUNNING; the next runner on the host picks up its job's result."""
    import socket

    store = RunStore(tmp_path, actor=SYSTEM)
    settings = StudySettings(name="orphan", n_trials=1, pruner="none")
    first = StudyRunner(store, mlp, "moons", {"epochs": 2}, space=["lr=1e-3..1e-1:log"], settings=settings,
                        launcher=_thread_launcher())
    trial = first.study.ask(first.space.distributions())
    done = run_training(mlp, "moons", {"epochs": 2, "lr": trial.params["lr"]}, store)
    trial.set_user_attr("runner", f"{socket.gethostname()}:999999999")  # a pid that is not alive
    trial.set_user_attr("run_id", done.run_id)
    res = StudyRunner(store, mlp, "moons", {"epochs": 2}, space=["lr=1e-3..1e-1:log"], settings=settings,
                      launcher=_thread_launcher()).run()
    assert res.n_trials == 1 and res.states == {"complete": 1} and res.best_run_id == done.run_id
    assert res.best_value == pytest.approx(store.metrics(done.run_id)[-1]["val_loss"])


def test_the_search_space_offers_no_parameter_the_data_fixes_or_the_wiring_needs():
    """Issue 29, item 11: Search offered head.out_features (fixed by the data), flatten.start_dim, groups and bias;
    what it offers are hyper-parameters (widths, kernel sizes, dropout rates)."""
    from builder.search import searchable_params

    for name in ("cnn", "mlp", "resnet"):
        keys = {p["key"] for p in searchable_params(load_template(name))}
        params = {k.split(".", 1)[1] for k in keys}
        assert "head.out_features" not in keys, name
        assert not params & {"start_dim", "end_dim", "groups", "bias"}, (name, sorted(params))
    assert {"fc.out_features", "conv1.out_channels", "dropout.p"} <= {p["key"] for p in searchable_params(load_template("cnn"))}


def test_an_app_owners_study_decodes_its_uploaded_images_in_a_sandboxed_worker(tmp_path, monkeypatch):
    """Issue 28: the study runner is not sandboxed (it starts its trials' jobs) and loads the study's dataset once
    to check each trial's graph: an app owner's uploaded zip was decoded there by Pillow's native decoders, with
    the server's rights to every owner's files. It is decoded in a sandboxed worker; the runner opens the cache."""


    from builder.data import images
    from builder.data.uploads import UploadFolder
    from builder.runs.owners import upload_dir

    monkeypatch.setenv("LAYERLAB_WORKSPACE", str(tmp_path))
    ref = UploadFolder(upload_dir(tmp_path, "anon:alice")).save("shades.zip", shades_zip())

    def refuse(*a, **k):
        raise AssertionError("a person's image was read by Pillow in the study runner's process")

    monkeypatch.setattr(images, "_image_header", refuse)
    monkeypatch.setattr(images, "_decode", refuse)
    runner = StudyRunner(RunStore(tmp_path, actor=SYSTEM), load_template("cnn"), "image_folder",
                         space=["lr=1e-3..1e-1"], dataset_options={"upload": ref, "size": 8},
                         settings=StudySettings(owner="anon:alice"))
    assert runner._ds.info.input_shape == (1, 8, 8) and runner._ds.info.class_names == ["dark", "light"]
