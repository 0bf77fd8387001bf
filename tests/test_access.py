"""One trust boundary (issue 28): the policy of builder.data.access, the run store that asks it, and the conformance
matrix: every registered door (tests/access_registry.py) tried by a second owner, a stranger and the teacher of
another class against the first owner's run, class and study; doors that are not registered fail too."""

from __future__ import annotations

import argparse
import ast
import dataclasses
import importlib
import inspect
import pkgutil
import typing
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import builder
from builder.admin.housekeeping import HousekeepingError
from builder.data.access import SYSTEM, Actor, Resource, may, refusal
from builder.errors import AccessDenied, RunStoreError
from builder.graph.templates import load_template
from builder.runs import classes
from builder.runs.classes import ClassError
from builder.runs.store import RunStore
from tests.access_registry import (
    CLI_PRIVILEGE,
    ID_PARAMS,
    INTERNAL,
    OWNER_INTERNAL,
    READER_MAY,
    ROW_WRITERS,
    SENSITIVE_CLI,
    World,
    doors,
)
from tests.fuzz_budget import budget

ROOT = Path(__file__).resolve().parents[1]
ANN, BOB, STRANGER = "user:ann", "user:bob", "anon:" + "e" * 32
TEACHER, OTHER_TEACHER, ADMIN = "user:t@school.org", "user:u@school.org", "user:it@school.org"
RUN = {"id": "20261121-104000-ab12cd", "owner": ANN, "class_id": "c-000000000001"}


# --------------------------------------------------------------------------------------------- the policy
OWNERS = st.sampled_from(["local", ANN, BOB, STRANGER, TEACHER, ""])
ACTIONS = st.sampled_from(["read", "control", "stop", "delete", "delete_data", "delete_class_run", "train_for",
                           "teach", "fly"])


@settings(max_examples=budget(200))
@given(run_owner=OWNERS, me=OWNERS.filter(bool), shared=st.booleans(), admin=st.booleans(),
       students=st.frozensets(OWNERS), teaching=st.frozensets(st.sampled_from(["c-000000000001", "c-x"])),
       action=ACTIONS)
def test_the_rules_of_runs(run_owner, me, shared, admin, students, teaching, action):
    run = {**RUN, "owner": run_owner}
    owner = run_owner or "local"  # rows older than owners belong to the CLI's local user
    a = Actor(me, admin=admin, students=students, teaching=teaching, shared=shared)
    got = may(a, action, run)
    if owner == me:
        assert got is (action not in ("train_for", "teach", "fly"))
    elif action == "read":  # an admin reads nobody's; a teacher only its students' runs for its classes
        assert got is (shared or ("c-000000000001" in teaching and owner in students))
    elif action == "stop":
        assert got is (admin or ("c-000000000001" in teaching and owner in students))
    elif action == "delete":
        assert got is admin
    elif action == "delete_class_run":
        assert got is (admin or ("c-000000000001" in teaching and owner in students))
    else:  # control is the owner's alone, also in shared mode; unknown actions are refused
        assert got is False
    if may(a, "control", run):
        assert may(a, "read", run)  # control implies sight
    assert may(SYSTEM, action, run)


def test_classes_studies_and_owner_data():
    cls = Resource.klass({"id": "c-000000000001", "teacher": TEACHER, "members": [ANN]})
    assert may(Actor(TEACHER), "teach", cls) and not may(Actor(ANN), "teach", cls)
    assert may(Actor(ANN), "train_for", cls) and not may(Actor(BOB), "train_for", cls)
    assert may(Actor(ADMIN, admin=True), "delete", cls) and not may(Actor(ADMIN, admin=True), "teach", cls)
    study = Resource("study", ANN, "s")
    assert may(Actor(ANN), "control", study)
    assert not may(Actor(BOB, shared=True), "control", study) and not may(Actor(BOB, admin=True), "read", study)
    data = Resource("owner", ANN)
    assert may(Actor(ANN), "delete_data", data) and may(Actor(ADMIN, admin=True), "delete_data", data)
    assert not may(Actor(TEACHER, students=frozenset({ANN})), "delete_data", data)
    assert not may(Actor(ADMIN, admin=True), "delete_data", Resource("run", ANN))


def test_one_refusal_for_unknown_and_forbidden():
    assert str(refusal("20261121-104000-ab12cd")) == str(refusal(RUN))
    assert "no class 'c-1' of yours" in str(refusal("c-1", "class"))


# ------------------------------------------------------------------------------------------- the store
@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.delenv("LAYERLAB_SHARED_RUNS", raising=False)
    return RunStore(tmp_path, actor=SYSTEM)


def _runs(store: RunStore, owner: str, n: int) -> list[str]:
    return [store.create_run(load_template("mlp"), "moons", {}, {}, owner=owner) for _ in range(n)]


def test_a_store_without_an_actor_refuses(store):
    (rid,) = _runs(store, ANN, 1)
    bare = RunStore(store.workspace)
    for call in (lambda: bare.get(rid), lambda: bare.list_runs(), lambda: bare.folder(rid),
                 lambda: bare.weights_path(rid), lambda: bare.metrics(rid), lambda: bare.delete_run(rid)):
        with pytest.raises(AccessDenied, match="answers only for an actor"):
            call()


def test_another_owners_run_reads_as_an_unknown_one(store):
    (rid,) = _runs(store, ANN, 1)
    bob = store.as_actor(Actor(BOB))
    with pytest.raises(AccessDenied) as forbidden:
        bob.get(rid)
    unknown = rid[:-6] + ("000000" if rid[-6:] != "000000" else "111111")
    with pytest.raises(AccessDenied) as missing:
        bob.get(unknown)
    assert str(forbidden.value).replace(rid, "X") == str(missing.value).replace(unknown, "X")
    assert str(forbidden.value).startswith(f"no run '{rid}' of yours")
    assert store.as_actor(Actor(BOB, shared=True)).get(rid)["id"] == rid  # shared mode reads
    with pytest.raises(AccessDenied):  # a teacher reads its students' runs for its classes only, not this one
        store.as_actor(Actor(TEACHER, students=frozenset({ANN}), teaching=frozenset({"c-000000000001"}))).get(rid)
    assert [r["id"] for r in bob.list_runs()] == [] and bob.list_runs(owner=ANN) == []


def test_a_prefix_is_only_for_typed_ids_and_lists_only_your_own(store):
    """Issue 28: "2026" as init_from listed everyone's run ids; now content ids are exact, and a typed prefix
    matches among the actor's runs only."""
    anns, bobs = _runs(store, ANN, 2), _runs(store, BOB, 2)
    bob = store.as_actor(Actor(BOB))
    with pytest.raises(RunStoreError) as e:
        bob.get(bobs[0][:4], prefix=True)
    assert all(b in str(e.value) for b in bobs) and not any(a in str(e.value) for a in anns)
    with pytest.raises(RunStoreError):
        bob.get(bobs[0][:12])  # content: exact only
    assert bob.get(bobs[0], prefix=True)["id"] == bobs[0]
    ann = store.as_actor(Actor(ANN))
    with pytest.raises(RunStoreError) as e:
        ann.get(anns[0][:4], prefix=True)
    assert not any(b in str(e.value) for b in bobs)


def test_init_from_a_prefix_or_another_owners_run_is_refused(store):
    """Issue 28 (defect 1): a project's training.init_from named someone else's run (or a prefix of everyone's)."""
    from builder.runs.pipeline import run_training

    res = run_training(load_template("mlp"), "moons", {"epochs": 1}, store, owner=ANN)
    _runs(store, BOB, 1)
    bob = store.as_actor(Actor(BOB))
    for claim in (res.run_id, res.run_id[:4], "2026"):
        project = load_template("mlp").model_copy(update={"training": {"init_from": claim}})
        with pytest.raises(RunStoreError) as e:
            run_training(project, "moons", {"epochs": 1}, bob, owner=BOB)
        assert res.run_id not in str(e.value).replace(f"'{claim}'", "") or claim == res.run_id
        assert "of yours" in str(e.value) or "run id is 8 digits" in str(e.value)
    mine = run_training(load_template("mlp").model_copy(update={"training": {"init_from": res.run_id}}), "moons",
                        {"epochs": 1}, store.as_actor(Actor(ANN)), owner=ANN)
    assert mine.status == "finished"  # its owner still starts from it


def test_a_run_is_recorded_for_a_class_only_by_its_members(tmp_path, monkeypatch):
    monkeypatch.setenv("LAYERLAB_TEACHERS", TEACHER)
    c = classes.create_class(tmp_path, TEACHER, "c", load_template("mlp"))
    classes.join_class(tmp_path, c["code"], ANN)
    starter = classes.starter_project(classes.get_class(tmp_path, c["id"], SYSTEM))
    assert classes.class_for(tmp_path, Actor(ANN), starter) == c["id"]
    with pytest.raises(AccessDenied, match=f"no class '{c['id']}' of yours"):
        classes.class_for(tmp_path, Actor(BOB), starter)
    with pytest.raises(AccessDenied, match="no class 'c-ffffffffffff' of yours"):
        classes.class_for(tmp_path, Actor(ANN), starter.model_copy(update={"training": {"class_id": "c-ffffffffffff"}}))


# ------------------------------------------------------------------------------- the conformance matrix
@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    import optuna

    from builder.runs.pipeline import run_training
    from builder.search.storage import claim_study, default_storage

    mp = pytest.MonkeyPatch()
    for k in ("LAYERLAB_SHARED_RUNS", "LAYERLAB_SERVER_CONFIG", "LAYERLAB_ADMINS", "MLFLOW_TRACKING_URI"):
        mp.delenv(k, raising=False)
    mp.setenv("LAYERLAB_TEACHERS", f"{TEACHER},{OTHER_TEACHER}")
    mp.setenv("LAYERLAB_TORCH_THREADS", "1")
    ws = tmp_path_factory.mktemp("access_ws")
    mp.setenv("LAYERLAB_WORKSPACE", str(ws))
    store = RunStore(ws, actor=SYSTEM)
    project = load_template("mlp")
    (ws / "p.json").write_text(project.to_json())
    c = classes.create_class(ws, TEACHER, "ann's class", project)
    classes.join_class(ws, c["code"], ANN)
    other = classes.create_class(ws, OTHER_TEACHER, "another class", project)
    classes.join_class(ws, other["code"], BOB)
    ann = run_training(classes.starter_project(c), "moons", {"epochs": 1, "seed": 0},
                       store.as_actor(Actor(ANN)), owner=ANN).run_id
    second, bobs = _runs(store, ANN, 1)[0], _runs(store, BOB, 1)
    for rid in (second, *bobs):
        store.update_status(rid, "stopped")  # not queued: the job doors' runs take the queue's one slot
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = default_storage(ws)
    optuna.create_study(study_name="ann-study", storage=storage).set_user_attr("layerlab", {"owner": ANN})  # older
    key = claim_study(storage, "ann-new", owner=ANN, workspace=ws)  # a study of a name that is ann's alone
    yield World(ws=ws, ann=ann, ann_owner=ANN, ann_class=c["id"], teacher=TEACHER, ann_study="ann-study",
                storage=storage, project=project,
                extra={"ann_ids": {ann, second}, "ann_studies": ["ann-study", "ann-new", key]})
    mp.undo()


INTRUDERS = {"second owner": BOB, "stranger": STRANGER, "teacher of another class": OTHER_TEACHER}
REFUSALS = (AccessDenied, ClassError, HousekeepingError)


def _attempts() -> list:
    """Every door against every intruder; a command-line door once (the command line has one user, its local
    admin), not skipped twice (CI=true skips nothing)."""
    return [pytest.param(door, who, id=f"{door.name}-{who}") for door in doors() for who in INTRUDERS
            if not door.name.startswith("cli:") or who == "second owner"]


@pytest.mark.parametrize(("door", "who"), _attempts())
def test_no_door_lets_an_intruder_through(world, door, who):
    assert door.attempt is not None, f"{door.name} is registered without an attempt: add one"
    store = RunStore(world.ws, actor=classes.actor_for(world.ws, INTRUDERS[who]))
    with pytest.raises(REFUSALS) as e:
        door.attempt(world, store)
    leaked = [r for r in world.extra["ann_ids"] if r in str(e.value) and r not in door.name and r != world.ann]
    assert not leaked, f"{door.name} named another owner's runs: {leaked}"
    check = RunStore(world.ws, actor=SYSTEM)
    assert check.get(world.ann)["status"] == "finished" and check.weights_path(world.ann).is_file()
    assert classes.get_class(world.ws, world.ann_class, SYSTEM)["teacher"] == TEACHER


READERS = {"shared mode": BOB, "teacher of the class": TEACHER}
"""Actors that read the first owner's run (everyone in shared mode; the teacher of the class it was made for) and
control none of it."""


def _run_state(world: World) -> tuple:
    """The first owner's run as stored: its row and every file of its folder."""
    check = RunStore(world.ws, actor=SYSTEM)
    row = check.get(world.ann)
    folder = check.folder(world.ann)
    files = {p.relative_to(folder.path).as_posix(): p.read_bytes() for p in sorted(folder.path.rglob("*"))
             if p.is_file()}
    return ({k: row.get(k) for k in ("status", "message", "config", "tags", "epochs_done", "final_metrics",
                                     "test_metrics", "parent_id", "dataset_options")}, row.project.to_json(), files)


def _reader_attempts() -> list:
    return [pytest.param(door, who, id=f"{door.name}-{who}") for door in doors() if door.writes for who in READERS
            if not door.name.startswith("cli:") or who == "shared mode"]


@pytest.mark.parametrize(("door", "who"), _reader_attempts())
def test_no_writer_lets_a_reader_write(world, door, who, monkeypatch):
    """Reading a run was enough to write into it (run_training's run_id, resume, prune's new run, Explain's keep,
    int8 quantizing, the model card, the MLflow export's tracking.json, the CLI's robustness after computing it):
    every door that writes into the run it names is tried by actors that read the run and do not control it; the
    door refuses (or, for READER_MAY, does only what a reader may) and the run comes out unchanged."""
    if who == "shared mode":  # the CLI's local user too
        monkeypatch.setenv("LAYERLAB_SHARED_RUNS", "1")
    store = RunStore(world.ws, actor=classes.actor_for(world.ws, READERS[who]))
    assert store.get(world.ann)["id"] == world.ann  # it reads the run
    before = _run_state(world)
    try:
        door.attempt(world, store)
    except REFUSALS:
        pass
    except AssertionError as e:  # the door let the reader through
        if door.name not in READER_MAY:
            raise AssertionError(f"{door.name} let a reader ({who}) through: {e}") from None
    else:
        if door.name not in READER_MAY:
            raise AssertionError(f"{door.name} let a reader ({who}) through")
    assert _run_state(world) == before, f"{door.name} let a reader ({who}) write into another owner's run"


def test_the_owner_passes_the_cheap_doors(world):
    """The attempts reach their door: as the owner, the store's own doors answer."""
    ann = RunStore(world.ws, actor=classes.actor_for(world.ws, ANN))
    cheap = {"builder.runs.store.RunStore." + m for m in ("get", "run_dir", "folder", "weights_path", "metrics",
                                                          "metrics_after", "checkpoint_path", "job_spec")}
    for door in doors():
        if door.name in cheap:
            door.attempt(world, ann)
    assert world.ann in [r["id"] for r in ann.list_runs(owner=ANN)]
    teacher = RunStore(world.ws, actor=classes.actor_for(world.ws, TEACHER))
    assert teacher.get(world.ann)["class_id"] == world.ann_class  # the teacher reads the class's runs


# -------------------------------------------------------------------------- discovery: no unregistered door
def _public_functions():
    for m in pkgutil.walk_packages(builder.__path__, "builder."):
        if m.name.startswith(("builder.canvas", "builder.runs.migrations")) or m.name.endswith("__main__"):
            continue  # the canvas component; Alembic's scripts (run by Alembic, not imported)
        mod = importlib.import_module(m.name)
        for n in getattr(mod, "__all__", ()):
            obj = getattr(mod, n, None)
            if inspect.isfunction(obj) and obj.__module__ == mod.__name__:
                yield f"{mod.__name__}.{n}", obj
            elif inspect.isclass(obj) and obj.__module__ == mod.__name__:
                for k, v in vars(obj).items():
                    if inspect.isfunction(v) and (not k.startswith("_") or k == "__init__"):
                        yield f"{mod.__name__}.{n}.{k}", v


def _unguarded(functions, registry, internal) -> list[str]:
    """``function(parameter)`` for every id parameter of a public function taking a run store (or a workspace)
    that no registered door's attempt goes through: a door counts for the parameter its ``via`` names, or, without
    one, for the function's only id parameter (a function taking two ids needs a door for each)."""
    missing = []
    for name, f in functions:
        params = set(inspect.signature(f).parameters)
        holder = name.rsplit(".", 2)[-2] == "RunStore"
        ids = sorted(params & ID_PARAMS)
        if not ids or not (params & {"store", "workspace"} or holder) or name in internal:
            continue
        vias = [d.via for d in registry if d.name == name]
        missing += [f"{name}({p})" for p in ids if p not in vias and not (None in vias and len(ids) == 1)]
    return missing


def test_every_api_function_taking_a_store_and_an_id_is_registered():
    """A public function that takes a run store (or a workspace) and a run or class id is a door, with an attempt
    through each id it takes: run_training's door tried ``training.init_from`` only, and its ``run_id`` (record
    into this queued run) retrained another owner's finished run into its folder."""
    missing = _unguarded(_public_functions(), doors(), INTERNAL)
    assert not missing, ("register these doors in tests/access_registry.py (an attempt through each id): "
                         + ", ".join(missing))
    registered = {d.name for d in doors()} | INTERNAL
    stale = sorted(n for n in registered if "." in n and ":" not in n and n not in {k for k, _ in _public_functions()})
    assert not stale, "registered names that no longer exist: " + ", ".join(stale)


def _names_an_owner(f) -> bool:
    """Whether ``f`` takes an ``owner``, or settings that carry one (a dataclass or model with an ``owner`` field:
    a StudyRunner's StudySettings(owner=...) loaded that owner's upload and opened their study)."""
    params = inspect.signature(f).parameters
    if "owner" in params:
        return True
    try:
        hints = typing.get_type_hints(f)
    except Exception:  # noqa: BLE001  an annotation that does not resolve here: judged by its parameter names
        return False
    for name in params:
        for t in typing.get_args(hints.get(name)) or (hints.get(name),):
            fields = ({x.name for x in dataclasses.fields(t)} if dataclasses.is_dataclass(t) and isinstance(t, type)
                      else set(getattr(t, "model_fields", None) or ()))
            if "owner" in fields and t is not Actor:  # an Actor is the caller itself, not an owner it names
                return True
    return False


def _owner_unguarded(functions, registry, internal) -> list[str]:
    """Every public function taking a run store (or a RunStore method) and an ``owner`` (itself or in its settings)
    that no registered door's attempt passes the first owner through (``via="owner"``), nor :data:`OWNER_INTERNAL`
    explains."""
    vias = {d.name for d in registry if d.via == "owner"}
    return [name for name, f in functions if _names_an_owner(f)
            and ("store" in inspect.signature(f).parameters or name.rsplit(".", 2)[-2] == "RunStore")
            and name not in vias and name not in internal]


def test_every_api_function_taking_a_store_and_an_owner_is_registered():
    """A function given a store and an owner answers about that owner, or acts for it: quotas.usage told a second
    owner the first one's jobs, bytes and GPU time, and housekeeping.delete_runs on a second owner's store deleted
    the first one's runs when named as ``owner``. Each is tried with the first owner named on an intruder's store."""
    missing = _owner_unguarded(_public_functions(), doors(), set(OWNER_INTERNAL) | INTERNAL)
    assert not missing, ("register these doors in tests/access_registry.py (an attempt with owner= the first "
                         "owner, via=\"owner\"), or say in OWNER_INTERNAL why the owner is not a person's to name: "
                         + ", ".join(missing))
    assert _owner_unguarded([("m.usage", lambda store, owner: None)], [], set()) == ["m.usage"]

    @dataclasses.dataclass
    class Settings:
        owner: str = "local"

    def run(store, settings=None): ...

    run.__annotations__ = {"settings": Settings | None}  # as resolved (this module's annotations are strings)
    assert _owner_unguarded([("m.run", run)], [], set()) == ["m.run"]  # an owner inside its settings
    stale = sorted(set(OWNER_INTERNAL) - {k for k, _ in _public_functions()})
    assert not stale, "OWNER_INTERNAL names functions that no longer exist: " + ", ".join(stale)


def test_the_discovery_finds_a_new_door_and_an_id_no_attempt_goes_through():
    """The registry test fails for what it should: a new public function taking a store and a run id, an id of a
    registered function that its attempt does not pass (its door goes through content), a second id."""
    from tests.access_registry import Door

    def export_weights(store, run_id): ...
    def record_into(store, project, run_id): ...
    def prune_into(store, run_id, new_run): ...

    fns = [("m.export_weights", export_weights), ("m.record_into", record_into), ("m.prune_into", prune_into)]
    content = Door("m.record_into", ("project",), lambda w, s: None, via="project")
    one = Door("m.prune_into", ("run",), lambda w, s: None)
    assert _unguarded(fns, [content, one], set()) == ["m.export_weights(run_id)", "m.record_into(run_id)",
                                                      "m.prune_into(new_run)", "m.prune_into(run_id)"]
    doors_ = [Door("m.export_weights", ("run",), None), content, Door("m.record_into", ("run",), None),
              Door("m.prune_into", ("run",), None, via="run_id"), Door("m.prune_into", ("run",), None, via="new_run")]
    assert _unguarded(fns, doors_, set()) == []


def _cli_arguments():
    from builder.cli.main import build_parser

    def walk(p, path):
        for a in p._actions:
            if isinstance(a, argparse._SubParsersAction):
                for verb, sub in a.choices.items():
                    yield from walk(sub, [*path, verb])
            elif a.dest in SENSITIVE_CLI:
                yield f"cli: {' '.join(path)} {a.dest}"
    yield from walk(build_parser(), [])


def test_every_cli_argument_naming_a_run_path_or_study_is_registered():
    registered = {d.name for d in doors()} | CLI_PRIVILEGE
    missing = sorted(set(_cli_arguments()) - registered)
    assert not missing, ("register these CLI arguments in tests/access_registry.py (a door with an attempt, or "
                         "CLI_PRIVILEGE for a file on the command line): " + ", ".join(missing))


def test_every_job_kind_is_registered():
    from builder.jobs.queue import JOB_KINDS

    assert {f"job: {k}" for k in JOB_KINDS} <= {d.name for d in doors()}


def _calls(folder: Path):
    for path in sorted(folder.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            yield path, node


def test_pages_and_the_cli_act_only_as_their_session():
    """A page or a CLI verb opens the store with its actor and never as SYSTEM, and never calls the job
    process's own writers: every run it names goes through the store's check."""
    internal = {n.rsplit(".", 1)[-1] for n in INTERNAL if ".RunStore." in n} | ROW_WRITERS
    bad = []
    for folder in (ROOT / "app_pages", ROOT / "builder" / "cli"):
        for path, node in _calls(folder):
            if isinstance(node, ast.Name) and node.id == "SYSTEM":
                bad.append(f"{path.name}:{node.lineno} uses SYSTEM")
            if isinstance(node, ast.Call):
                f = node.func
                if isinstance(f, ast.Name) and f.id == "RunStore" and not any(k.arg == "actor" for k in node.keywords):
                    bad.append(f"{path.name}:{node.lineno} opens a RunStore without an actor")
                if isinstance(f, ast.Attribute) and f.attr in internal:
                    bad.append(f"{path.name}:{node.lineno} calls the job's writer {f.attr}")
    assert not bad, "\n".join(bad)


def test_the_docs_say_what_content_can_reach():
    text = (ROOT / "docs" / "explanation" / "jobs-and-owners.md").read_text(encoding="utf-8")
    part = text[text.index("### Who may do what"):]
    assert "only your own runs" in part and "exact id" in part and "`training.init_from`" in part


def test_a_job_submitted_for_another_owner_is_refused_without_naming_them(tmp_path):
    """The refusal reached the first owner's study as a failed trial's message, quoting the owner id it was given
    (an anonymous owner's id is their browser's key)."""
    from builder.jobs import queue as jobs

    store = RunStore(tmp_path, actor=Actor("anon:" + "b" * 32))
    key = "anon:" + "a" * 32
    with pytest.raises(AccessDenied) as info:
        jobs.submit(store, jobs.JobSpec(project=load_template("mlp").model_dump(mode="json"), dataset="moons",
                                        owner=key))
    assert "a" * 32 not in str(info.value) and store.list_runs(limit=5) == []
