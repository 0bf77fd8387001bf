"""Issue 28: study names are per owner. Two people each have their own "lr-sweep"; neither learns the other's exists
(no "taken" answer, no oracle by display or storage name); a study an app owner made under a bare name before
names were per owner is still that owner's alone; the files of two owners' same-named studies are separate."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from builder.data.access import SYSTEM
from builder.errors import AccessDenied, LayerLabError
from builder.graph.project import load_project
from builder.graph.templates import load_template
from builder.runs.store import RunStore
from builder.search import (
    JobLauncher,
    StudyRunner,
    StudySettings,
    default_storage,
    launch_study,
    list_studies,
    load_study,
    request_stop,
    resume_study,
)
from builder.search import runner as runner_mod
from builder.search.storage import study_key
from tests.search.test_search import ThreadJobs  # trials as in-process background jobs

ALICE, BOB = "anon:" + "a1" * 16, "user:bob@school.org"


@pytest.fixture
def store(tmp_path):
    return RunStore(tmp_path, actor=SYSTEM)


def _runner(store, owner, name, n_trials=1, lr="lr=1e-3..1e-1:log", run=False):
    r = StudyRunner(store, load_template("mlp"), "moons", {"epochs": 1}, space=[lr],
                    dataset_options={"n_samples": 120},
                    settings=StudySettings(name=name, n_trials=n_trials, pruner="none", owner=owner, seed=1),
                    launcher=JobLauncher(ThreadJobs(1)))
    return r.run() if run else r


def _stored_names(storage):
    return sorted(s.study_name for s in optuna.get_all_study_summaries(optuna.storages.RDBStorage(storage)))


def _load(ws, storage, name, owner):
    return load_study(storage, name, owner=owner, workspace=ws)


def test_two_owners_each_create_and_run_their_own_study_of_one_name(store):
    ws, storage = store.workspace, default_storage(store.workspace)
    a = _runner(store, ALICE, "lr-sweep", n_trials=2, run=True)
    b = _runner(store, BOB, "lr-sweep", n_trials=1, run=True)  # no "taken": Bob's own study
    assert (a.study, a.n_trials, b.study, b.n_trials) == ("lr-sweep", 2, "lr-sweep", 1)
    assert len(_stored_names(storage)) == 2
    sa, sb = _load(ws, storage, "lr-sweep", ALICE), _load(ws, storage, "lr-sweep", BOB)
    assert sa._study_id != sb._study_id and len(sa.trials) == 2 and len(sb.trials) == 1
    for study, owner in ((sa, ALICE), (sb, BOB)):  # each study's trials are its owner's runs
        assert {store.get(t.user_attrs["run_id"])["owner"] for t in study.trials} == {owner}
    for owner, n in ((ALICE, 2), (BOB, 1)):  # listing: only one's own, by display name
        assert [(s["name"], s["n_trials"]) for s in list_studies(storage, owner=owner, workspace=ws)] == \
            [("lr-sweep", n)]
    a2 = _runner(store, ALICE, "lr-sweep", n_trials=3, run=True)  # resuming Alice's grows hers only
    assert a2.n_trials == 3 and len(_load(ws, storage, "lr-sweep", BOB).trials) == 1
    for stored in _stored_names(storage):  # nothing of an owner id in a storage name
        assert "a1a1a1" not in stored and "bob" not in stored


def test_a_strangers_doors_answer_no_study_named_by_display_or_storage_name(store, monkeypatch):
    ws, storage = store.workspace, default_storage(store.workspace)
    _runner(store, ALICE, "lr-sweep")  # Alice's study, claimed in the storage with its settings
    (alices_key,) = _stored_names(storage)
    _runner(store, BOB, "mine")
    monkeypatch.setattr(runner_mod, "spawn_detached", lambda *a, **k: pytest.fail("a runner was started"))
    doors = {"load": lambda n: load_study(storage, n, owner=BOB, workspace=ws),
             "stop": lambda n: request_stop(storage, n, owner=BOB, workspace=ws),
             "resume": lambda n: resume_study(ws, storage, n, owner=BOB)}
    for what, door in doors.items():
        for name in ("lr-sweep", alices_key, "nope"):
            with pytest.raises(AccessDenied) as e:
                door(name)
            text = str(e.value)
            assert text.startswith(f"no study named {name!r}"), (what, text)
            assert text.replace(repr(name), "'X'").replace(f"--study {name}", "--study X") == \
                "no study named 'X'; received: --study X. Fix: use one of mine", (what, text)  # only Bob's own
    alice = _load(ws, storage, "lr-sweep", ALICE)
    assert "layerlab_stop" not in alice.user_attrs and alice.study_name == alices_key
    with pytest.raises(AccessDenied, match="no study named 'lr-sweep'"):  # a third person: the same answer
        load_study(storage, "lr-sweep", owner="anon:" + "c3" * 16, workspace=ws)


def _legacy_study(store, owner, name):
    """A study an app owner made before names were per owner: a bare storage name recording its owner."""
    r = _runner(store, "local", name)  # the bare name, its settings as a runner writes them
    r.study.set_user_attr("layerlab", {**r.study.user_attrs["layerlab"], "owner": owner})
    return r.study


def test_a_legacy_bare_name_study_is_still_its_owners_alone(store):
    ws, storage = store.workspace, default_storage(store.workspace)
    old = _legacy_study(store, ALICE, "old")
    assert _load(ws, storage, "old", ALICE)._study_id == old._study_id  # loads for Alice
    assert [s["name"] for s in list_studies(storage, owner=ALICE, workspace=ws)] == ["old"]
    assert list_studies(storage, owner=BOB, workspace=ws) == []
    for door in (lambda: load_study(storage, "old", owner=BOB, workspace=ws),
                 lambda: request_stop(storage, "old", owner=BOB, workspace=ws),
                 lambda: resume_study(ws, storage, "old", owner=BOB)):
        with pytest.raises(AccessDenied, match="no study named 'old'.*none yet"):
            door()
    res = _runner(store, ALICE, "old", n_trials=1, run=True)  # Alice resumes it: the same study
    assert res.n_trials == 1 and _stored_names(storage) == ["old"]
    assert len(load_study(storage, "old").trials) == 1
    bob = _runner(store, BOB, "old", n_trials=1, run=True)  # Bob's "old" is his own, Alice's untouched
    assert bob.n_trials == 1 and len(_stored_names(storage)) == 2
    assert len(_load(ws, storage, "old", ALICE).trials) == 1
    request_stop(storage, "old", owner=ALICE, workspace=ws)
    assert _load(ws, storage, "old", ALICE).user_attrs.get("layerlab_stop")
    assert not _load(ws, storage, "old", BOB).user_attrs.get("layerlab_stop")


def test_the_local_user_takes_a_bare_name_without_touching_a_legacy_study(store):
    """The CLI's local user keeps bare names: a legacy study of an app owner holding one moves to its owner's
    key (found by its owner as before) instead of answering "taken"."""
    ws, storage = store.workspace, default_storage(store.workspace)
    old = _legacy_study(store, ALICE, "x")
    res = _runner(store, "local", "x", n_trials=1, run=True)
    assert res.study == "x" and res.n_trials == 1
    assert load_study(storage, "x")._study_id != old._study_id  # the local user's own bare study
    alice = _load(ws, storage, "x", ALICE)
    assert alice._study_id == old._study_id and alice.trials == []
    assert [s["name"] for s in list_studies(storage, owner="local", workspace=ws)] == ["x"]


class _Proc(SimpleNamespace):
    pid = 0


def test_the_files_of_two_owners_same_named_studies_are_separate(tmp_path, monkeypatch):
    """Two owners launching one name at the same moment: each study is claimed with its owner before any file
    is written, and each writes its own project, log and private folder."""
    started: list[dict] = []
    monkeypatch.setattr(runner_mod, "spawn_detached",
                        lambda cmd, log, env, name: started.append({"log": log, "tmp": env["HOME"],
                                                                    "project": cmd[3], "owner": env[
                                                                        runner_mod.ENV_STUDY_OWNER]}) or _Proc())
    monkeypatch.setattr(runner_mod, "limit_study", lambda pid: None)
    projects = {ALICE: load_template("mlp"), BOB: load_template("mlp")}
    projects[BOB].name = "bob's net"
    barrier = threading.Barrier(2)
    errors = []

    def launch(owner):
        barrier.wait()
        try:
            launch_study(tmp_path, projects[owner], "moons", ["lr=1e-3..1e-1:log"],
                         StudySettings(name="lr-sweep", n_trials=1, owner=owner))
        except LayerLabError as e:  # the old code's "taken" answer
            errors.append(str(e))

    threads = [threading.Thread(target=launch, args=(o,)) for o in (ALICE, BOB)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == [] and len(started) == 2
    by = {s["owner"]: s for s in started}
    for key in ("log", "tmp", "project"):
        assert str(by[ALICE][key]) != str(by[BOB][key])
    for owner, s in by.items():
        assert Path(s["tmp"]).is_dir()
        assert load_project(Path(s["project"])).name == projects[owner].name
        assert "a1a1a1" not in s["log"].as_posix() and "bob" not in s["log"].as_posix()
    storage = default_storage(tmp_path)
    assert len(_stored_names(storage)) == 2  # both claimed before their files: two studies
    launch_study(tmp_path, projects[ALICE], "moons", ["lr=1e-3..1e-1:log"],  # Alice again: her one study
                 StudySettings(name="lr-sweep", n_trials=1, owner=ALICE))
    assert len(_stored_names(storage)) == 2 and started[-1]["log"] == by[ALICE]["log"]


_NAMES = st.one_of(st.sampled_from([".", "..", "...", ".-", "a.", "ｌｒ", "x" * 100]),
                   st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=12))


@settings(max_examples=200, deadline=None)
@given(name=_NAMES, owner=st.sampled_from(["local", ALICE]))
def test_a_study_name_never_names_a_folder(tmp_path_factory, name, owner):
    """A study's files lie in its owner's folder of ``studies/`` whatever the name typed; a name that would put them
    elsewhere is refused, by the settings and the storage alike. '.' put them beside the owner's folder
    (``studies/<key>.project.json``, its private HOME ``studies/<key>.tmp``; the local user's ``<ws>/studies.tmp``),
    where the owner's runner records are not looked for (:func:`runner_records`, the study quota)."""
    from builder.search.storage import STUDIES_DIR, study_files

    ws = tmp_path_factory.getbasetemp() / "names"
    try:
        files = study_files(ws, owner, name)
    except LayerLabError:
        with pytest.raises(LayerLabError, match="study name"):
            StudySettings(name=name).check()
        return
    StudySettings(name=name).check()
    home = (ws / STUDIES_DIR / study_key(ws, owner, "x")).parent
    for path in files.values():
        assert path.parent == home and path.name.startswith(name) and path.resolve().parent == home.resolve()
