"""Classes: teachers from the server's configuration, join codes, starters, members' runs, leaderboard and the
teacher's permission to stop (only) a student's job."""

from __future__ import annotations

import json
import threading

import pytest

from builder.data.access import SYSTEM, may
from builder.errors import AccessDenied, LayerLabError
from builder.graph.templates import load_template
from builder.interpret import run_views
from builder.jobs.queue import request
from builder.runs import classes, owners
from builder.runs.classes import ClassError
from builder.runs.store import RunStore

TEACHER = "user:t@school.org"
STUDENTS = ["anon:" + c * 32 for c in "abc"]


@pytest.fixture
def ws(tmp_path, monkeypatch):
    monkeypatch.delenv("LAYERLAB_SERVER_CONFIG", raising=False)
    monkeypatch.setenv("LAYERLAB_TEACHERS", "t@school.org")
    return tmp_path


def test_teachers_come_from_env_and_config(ws, monkeypatch):
    assert owners.teachers(ws) == {TEACHER}
    (ws / "server.json").write_text(json.dumps({"teachers": ["user:x@y.org", "anon:" + "d" * 32]}))
    assert owners.teachers(ws) == {TEACHER, "user:x@y.org", "anon:" + "d" * 32}
    (ws / "server.json").write_text("[1, 2]")
    with pytest.raises(LayerLabError, match="JSON object"):
        owners.teachers(ws)
    monkeypatch.setenv("LAYERLAB_SERVER_CONFIG", str(ws / "missing.json"))
    with pytest.raises(LayerLabError, match="not a file. Fix"):
        owners.teachers(ws)


def test_teacher_creates_students_join(ws):
    with pytest.raises(ClassError, match="only a teacher creates a class") as e:
        classes.create_class(ws, STUDENTS[0], "x", load_template("mlp"))
    assert owners.pseudonym(ws, STUDENTS[0]) in str(e.value) and STUDENTS[0] not in str(e.value)  # id: a key
    c = classes.create_class(ws, TEACHER, "  ML   101 ", load_template("mlp"))
    assert c["name"] == "ML 101" and len(c["code"]) == 6
    got = classes.join_class(ws, c["code"].lower()[:3] + "-" + c["code"][3:], STUDENTS[0])
    assert got["members"] == [STUDENTS[0]]
    assert classes.starter_project(got).graph == load_template("mlp").graph
    classes.join_class(ws, c["code"], STUDENTS[0])  # twice: once a member
    assert classes.get_class(ws, c["id"], SYSTEM)["members"] == [STUDENTS[0]]
    with pytest.raises(ClassError, match="no class on this server has"):
        classes.join_class(ws, "ZZZZZZ", STUDENTS[1])
    with pytest.raises(ClassError, match="only the class's teacher"):
        classes.post_starter(ws, c["id"], STUDENTS[0], load_template("cnn"))
    classes.post_starter(ws, c["id"], TEACHER, load_template("cnn"))
    assert classes.starter_project(classes.get_class(ws, c["id"], SYSTEM)).name == load_template("cnn").name
    with pytest.raises(ClassError, match="class id"):
        classes.get_class(ws, "../../etc/passwd", SYSTEM)
    assert [x["id"] for x in classes.list_classes(ws, member=STUDENTS[0])] == [c["id"]]
    assert classes.list_classes(ws, member=STUDENTS[1]) == []


def test_thirty_students_joining_at_once_are_all_kept(ws):
    c = classes.create_class(ws, TEACHER, "big", load_template("mlp"))
    people = [f"anon:{i:032x}" for i in range(30)]
    threads = [threading.Thread(target=classes.join_class, args=(ws, c["code"], p)) for p in people]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(classes.get_class(ws, c["id"], SYSTEM)["members"]) == sorted(people)


def test_class_runs_leaderboard_and_teacher_stop(ws):
    store = RunStore(ws, actor=SYSTEM)
    c = classes.create_class(ws, TEACHER, "ML", load_template("mlp"))
    for s in STUDENTS:
        c = classes.join_class(ws, c["code"], s)
    ids = {}
    for s, acc in zip(STUDENTS, (0.8, 0.9, None), strict=True):
        rid = store.create_run(load_template("mlp"), "moons", {}, {"epochs": 1}, owner=s, class_id=c["id"])
        if acc is not None:
            store.finish(rid, "finished", test={"accuracy": acc, "loss": 1 - acc})
        else:
            store.update_status(rid, "running")
        ids[s] = rid
    outsider = store.create_run(load_template("mlp"), "moons", {}, {"epochs": 1}, owner="anon:" + "e" * 32)
    own = store.create_run(load_template("mlp"), "moons", {}, {"epochs": 1}, owner=STUDENTS[0])  # not for the class
    rows = classes.class_runs(store.as_actor(classes.actor_for(ws, TEACHER)), c)
    assert {r["id"] for r in rows} == set(ids.values()) and not {outsider, own} & {r["id"] for r in rows}
    assert all(r["params"] for r in rows)
    board = classes.leaderboard(store, c)
    assert [(r["owner"], r["rank"]) for r in board] == [(STUDENTS[1], 1), (STUDENTS[0], 2)]
    assert [r["owner"] for r in classes.leaderboard(store, {**c, "metric": "loss"})] == [STUDENTS[1], STUDENTS[0]]
    assert classes.member_label(c, STUDENTS[2]) == "student 3"
    assert classes.member_label(c, "anon:" + "9f3ab7" * 5 + "e2") == "a former member"  # never the id (a key)
    owners.set_display_name(ws, STUDENTS[2], "Ann B.")
    assert classes.member_label(c, STUDENTS[2], ws) == "Ann B. (student 3)"
    # the teacher may stop a student's job, nothing else; students control only their own runs
    teacher = classes.actor_for(ws, TEACHER)
    running = store.get(ids[STUDENTS[2]])
    assert may(teacher, "stop", running) and may(teacher, "read", running)
    assert not may(teacher, "control", running) and not may(teacher, "delete", running)
    assert not may(classes.actor_for(ws, STUDENTS[0]), "stop", running)
    assert not may(teacher, "stop", store.get(outsider))
    with pytest.raises(AccessDenied, match="no run .* of yours"):
        request(store.as_actor(classes.actor_for(ws, STUDENTS[0])), running["id"], "stop")
    request(store.as_actor(teacher), running["id"], "stop")
    assert store.take_control(running["id"]) == "stop"
    classes.delete_class(ws, c["id"], TEACHER)
    assert classes.list_classes(ws, actor=SYSTEM) == [] and store.get(ids[STUDENTS[0]])["owner"] == STUDENTS[0]


def test_a_class_runs_time_is_the_time_it_ran(ws):
    """A usability review's class: the teacher's list gave a student's 0.3 s run as "0.0s" and a 1.1 s one as
    "2.0s": it read the list row's start and finish stamps (whole seconds, stopped time included), not the running
    clock the Runs page reads (builder.runs.summary.duration_s of the run's record)."""
    from builder.runs.summary import duration_s

    store = RunStore(ws, actor=SYSTEM)
    c = classes.create_class(ws, TEACHER, "ML", load_template("mlp"))
    c = classes.join_class(ws, c["code"], STUDENTS[0])
    rid = store.create_run(load_template("mlp"), "moons", {}, {"epochs": 1}, owner=STUDENTS[0], class_id=c["id"])
    store.update_status(rid, "running")
    store.finish(rid, "finished", test={"accuracy": 0.9, "loss": 0.1})
    ran = store.get(rid)["environment"]["run_s"]  # the running clock: a fraction of a second here
    (row,) = classes.class_runs(store.as_actor(classes.actor_for(ws, TEACHER)), c)
    assert row["time_s"] == ran == duration_s(store.get(rid)), (row["time_s"], ran)


def test_leaderboard_scores_the_teachers_held_out_set(ws):
    from builder.runs.pipeline import run_training

    store = RunStore(ws, actor=SYSTEM)
    c = classes.create_class(ws, TEACHER, "ML", load_template("mlp"), metric="accuracy",
                             holdout={"dataset": "moons", "options": {"seed": 777, "n_samples": 400}})
    c = classes.join_class(ws, c["code"], STUDENTS[0])
    rid = run_training(classes.starter_project(c), "moons", {"epochs": 2, "seed": 0},  # trained for the class
                       store.as_actor(classes.actor_for(ws, STUDENTS[0])), owner=STUDENTS[0]).run_id
    assert classes.leaderboard(store, c) == []  # no scorer: nothing runs a model here, nothing is scored
    calls = []

    def scorer(run_id, holdout, metric):  # the app's runs the model in the sandboxed probe (tests/interpret)
        calls.append(run_id)
        return run_views.evaluate_holdout(store, run_id, holdout, metric)

    (row,) = classes.leaderboard(store, c, scorer=scorer)
    assert row["id"] == rid and 0.0 <= row["test"] <= 1.0 and row["test_error"] is None
    assert classes.leaderboard(store, c, scorer=scorer)[0]["test"] == row["test"] and calls == [rid]  # cached
    assert any(k.startswith(rid) for k in json.loads((ws / "classes" / f"{c['id']}.scores.json").read_text()))
    assert [x["id"] for x in classes.list_classes(ws, actor=SYSTEM)] == [c["id"]]  # the scores file is not a class
    with pytest.raises(ClassError, match="held-out set"):
        classes.create_class(ws, TEACHER, "x", load_template("mlp"), holdout={"options": {}})
    def crashed(run_id, holdout, metric):  # a scorer's one line may quote the student's files on the server
        raise LayerLabError(f"cannot load {ws}/runs/{run_id}/weights.safetensors for {ws}/owners/x/uploads/a.csv")

    c = classes.update_class(ws, c["id"], TEACHER, metric="loss")  # another metric: scored again
    (row,) = classes.class_runs(store, c, scorer=crashed)
    assert row["test"] is None and "weights.safetensors" in row["test_error"] and str(ws) not in row["test_error"]


def test_a_teacher_lists_its_classes_runs_past_its_students_other_runs(ws):
    """The listing's LIMIT came before the rule that a teacher reads only its classes' runs: a student's newer runs of
    their own filled the page and were then dropped, leaving the class's run out of a teacher's ``list_runs``."""
    store = RunStore(ws, actor=SYSTEM)
    c = classes.join_class(ws, classes.create_class(ws, TEACHER, "ML", load_template("mlp"))["code"], STUDENTS[0])
    made = store.create_run(load_template("mlp"), "moons", {}, {"epochs": 1}, owner=STUDENTS[0], class_id=c["id"])
    for _ in range(4):  # newer, the student's own
        store.create_run(load_template("mlp"), "moons", {}, {"epochs": 1}, owner=STUDENTS[0])
    teacher = store.as_actor(classes.actor_for(ws, TEACHER))
    assert [r["id"] for r in teacher.list_runs(limit=2)] == [made]
    student = store.as_actor(classes.actor_for(ws, STUDENTS[0]))
    assert len(student.list_runs(limit=3)) == 3 and len(student.list_runs(limit=10)) == 5


def _held_out_class_and_run(ws, n_samples: int):
    """A class with a held-out set of ``n_samples``, its first student and a finished one-epoch run of theirs for it:
    (the system's store, the class, the student's store, the run id)."""
    from builder.runs.pipeline import run_training

    store = RunStore(ws, actor=SYSTEM)
    c = classes.create_class(ws, TEACHER, "ML", load_template("mlp"), metric="accuracy",
                             holdout={"dataset": "moons", "options": {"seed": 777, "n_samples": n_samples}})
    c = classes.join_class(ws, c["code"], STUDENTS[0])
    student = store.as_actor(classes.actor_for(ws, STUDENTS[0]))
    rid = run_training(classes.starter_project(c), "moons", {"epochs": 1, "seed": 0}, student,
                       owner=STUDENTS[0]).run_id
    return store, c, student, rid


def test_only_the_teacher_scores_into_the_classs_shared_scores(ws):
    """A student's scorer wrote their own held-out score into the class's cache (classes/<id>.scores.json), which the
    teacher's leaderboard then read without scoring: only the class's teacher (as the class is stored) scores, the
    run read through the store, as it finished."""
    store, c, student, rid = _held_out_class_and_run(ws, 200)
    row = dict(student.get(rid))
    forged = {**c, "teacher": STUDENTS[0]}  # a class record that says the student teaches it
    for cls, run in ((c, row), (forged, row), (c, {**row, "epochs_done": 99})):
        assert classes.holdout_result(student, cls, run, scorer=lambda *a: 1.0) == (None, None)
    assert not (ws / "classes" / f"{c['id']}.scores.json").exists()
    teacher = store.as_actor(classes.actor_for(ws, TEACHER))
    assert classes.holdout_result(teacher, c, {**row, "epochs_done": 99}, scorer=lambda *a: 0.5) == (0.5, None)
    assert classes.holdout_result(teacher, c, row) == (0.5, None)  # written under the run as stored
    assert [r["test"] for r in classes.leaderboard(teacher, c)] == [0.5]


def test_a_starter_and_a_held_out_set_name_no_file(ws, tmp_path):
    """A class's starter and held-out set are content every student's run meets: a built-in dataset only, refused
    at the door when they name a server path (also as ``training.dataset``) or the teacher's upload (the
    leaderboard loads the held-out set with no one's uploads, so it could only ever score nothing); the message
    quotes no path."""
    secret = tmp_path / "private" / "grades.csv"
    up = "upload:" + "b" * 64 + ".csv"
    starters = [load_template("mlp").model_copy(update={"training": {"dataset": str(secret)}}),
                load_template("mlp").model_copy(update={"training": {"dataset": "../grades.csv"}})]
    for starter in starters:
        with pytest.raises(ClassError, match="never a file on the server") as e:
            classes.create_class(ws, TEACHER, "x", starter)
        assert "grades" not in str(e.value) and "private" not in str(e.value)
    holdouts = [{"dataset": "csv", "options": {"path": str(secret), "target": "y"}},
                {"dataset": "csv", "options": {"upload": up, "target": "y"}},
                {"dataset": str(secret), "options": {}},
                {"dataset": "moons", "options": {"noise": "file:///" + str(secret)}}]
    for holdout in holdouts:
        with pytest.raises(ClassError, match="held-out set is a built-in dataset") as e:
            classes.create_class(ws, TEACHER, "x", load_template("mlp"), holdout=holdout)
        assert "grades" not in str(e.value) and "private" not in str(e.value) and up not in str(e.value)
    c = classes.create_class(ws, TEACHER, "ok", load_template("mlp"),
                             holdout={"dataset": "moons", "options": {"seed": 7}})
    with pytest.raises(ClassError, match="never a file on the server"):
        classes.post_starter(ws, c["id"], TEACHER, starters[0])
    # options of the wrong kind (a starter every student opens, a held-out set every run is scored on): refused at
    # the door, not met by each student's Data page (int(None)) or by the scorer of every run
    wrong = load_template("mlp").model_copy(update={"dataset": {"kind": "builtin", "name": "moons",
                                                                "options": {"n_samples": None}}})
    with pytest.raises(ClassError, match="n_samples"):
        classes.post_starter(ws, c["id"], TEACHER, wrong)
    with pytest.raises(ClassError, match="seed is a whole number"):
        classes.create_class(ws, TEACHER, "x", load_template("mlp"), holdout={"dataset": "moons",
                                                                              "options": {"seed": -1}})
    assert classes.list_classes(ws, actor=SYSTEM) == [classes.get_class(ws, c["id"], SYSTEM)]  # nothing else was kept


def test_a_regression_class_shows_its_errors_in_the_targets_units(tmp_path, monkeypatch):
    """A class scored by MAE on a scaled target listed each run's best and test MAE in standard deviations."""
    from builder.data.access import SYSTEM
    from builder.graph.templates import load_template
    from builder.runs import classes
    from builder.runs.store import RunStore

    ws, teacher, student = tmp_path, "user:t@school.org", "anon:" + "c" * 32
    monkeypatch.setenv("LAYERLAB_TEACHERS", teacher)
    cls = classes.create_class(ws, teacher, "Stats", load_template("mlp"))
    classes.join_class(ws, cls["code"], student)
    cls = classes.update_class(ws, cls["id"], teacher, metric="mae")
    store = RunStore(ws, actor=SYSTEM)
    rid = store.create_run(load_template("mlp"), "moons", {}, {"epochs": 1}, owner=student, class_id=cls["id"],
                           dataset_info={"task": "regression", "target_std": [4.0], "target_mean": [0.0]})
    store.log_metrics(rid, [{"type": "epoch", "epoch": 1, "train_loss": 1.0, "val_loss": 1.0,
                             "metric_name": "mae", "val_metric": 0.5}])
    store.finish(rid, "finished", test={"mae": 0.25})
    (row,) = classes.class_runs(store, cls)
    assert (row["best"], row["test"]) == (2.0, 1.0)  # were 0.5 and 0.25


def test_a_run_continued_after_it_was_scored_is_scored_again(ws):
    """The class's held-out scores were cached by run id: a student whose run was scored, then continued with more
    epochs (its weights changed, it finished again), kept the first score on the leaderboard whatever the new
    weights scored. The cache is keyed by the run as it finished."""
    from builder.runs.pipeline import resume_run

    store, c, student, rid = _held_out_class_and_run(ws, 400)
    calls = []

    def scorer(run_id, holdout, metric):
        calls.append(store.get(run_id)["epochs_done"])
        return float(len(calls))  # a score that tells the two scorings apart

    assert classes.leaderboard(store, c, scorer=scorer)[0]["test"] == 1.0
    assert classes.leaderboard(store, c, scorer=scorer)[0]["test"] == 1.0 and calls == [1]  # cached
    assert resume_run(rid, student, overrides={"epochs": 2}).status == "finished"
    assert classes.leaderboard(store, c, scorer=scorer)[0]["test"] == 2.0 and calls == [1, 2]


def test_a_leaderboard_metric_is_one_a_test_split_measures_and_errors_rank_lowest_first(tmp_path, monkeypatch):
    """Any text was kept as a class's metric (a leaderboard of "accuracy" on a regression stayed empty without a
    word), and RMSE and perplexity ranked the largest first."""
    from builder.data.access import SYSTEM
    from builder.graph.templates import load_template
    from builder.runs import classes
    from builder.runs.store import RunStore

    ws, teacher = tmp_path, "user:t@school.org"
    monkeypatch.setenv("LAYERLAB_TEACHERS", teacher)
    with pytest.raises(classes.ClassError, match="one of accuracy, .*received: 'speed'"):
        classes.create_class(ws, teacher, "Stats", load_template("mlp"), metric="speed")
    cls = classes.create_class(ws, teacher, "Stats", load_template("mlp"), metric="rmse")
    with pytest.raises(classes.ClassError, match="received: 'Accuracy'"):
        classes.update_class(ws, cls["id"], teacher, metric="Accuracy")
    store = RunStore(ws, actor=SYSTEM)
    for i, (who, value) in enumerate((("anon:" + "a" * 32, 3.0), ("anon:" + "b" * 32, 1.0))):
        classes.join_class(ws, cls["code"], who)
        rid = store.create_run(load_template("mlp"), "moons", {}, {"epochs": 1}, owner=who, class_id=cls["id"])
        store.finish(rid, "finished", test={"rmse": value, "perplexity": 10.0 - i})
    assert [r["test"] for r in classes.leaderboard(store, classes.get_class(ws, cls["id"], SYSTEM))] == [1.0, 3.0]
    cls = classes.update_class(ws, cls["id"], teacher, metric="perplexity")
    assert [r["test"] for r in classes.leaderboard(store, cls)] == [9.0, 10.0]

