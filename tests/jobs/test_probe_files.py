"""builder.jobs.probe: a page session's model probe child is confined (Landlock, where the kernel has it) to what
its actor may read: the runs it may read, its own owner folder and the dataset cache. It ran as the server's user
and a model exploiting torch inside it could read the workspace's ``identity.key`` (which signs every owner id),
``server.json``, the run database (every owner id; its runs are read through its broker now,
:mod:`builder.process.broker`) and every owner's run folder. A run made after the child started (the owner trained again) is
outside its rules: the parent starts a fresh child with fresh rules before it asks.

The child reads files through the test-only hook ``ModelProbe.TEST_HOOK`` (:func:`_reader`: the method
``x-read`` of ``explain`` reads ``path`` in the child).
"""

from __future__ import annotations

import contextlib
import shutil
import socket

import pytest

import builder
from builder.data.access import LOCAL_OWNER, SYSTEM, Actor
from builder.errors import AccessDenied, LayerLabError
from builder.jobs.probe import ModelProbe, ProbeSession
from builder.process import landlock
from builder.runs import owners
from builder.runs.pipeline import run_training
from builder.runs.store import RunStore
from tests.helpers import SECCOMP

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

A, B = "anon:" + "a" * 32, "anon:" + "b" * 32


def _reader() -> None:
    """Inside the child: ``explain(i, "x-read", path=...)`` answers the bytes it read of ``path``, or "denied";
    ``explain(i, "x-connect", port=...)`` whether it connected to that TCP port of this host, ``"x-udp"`` whether
    it sent a datagram to that UDP port."""
    from builder.interpret.session import ExplainSession

    original = ExplainSession.explain

    def explain(self, i, method, *a, **k):
        if method == "x-connect":  # a service on this host (the run database's server, say)
            import socket

            try:
                socket.create_connection(("127.0.0.1", k["port"]), timeout=10).close()
                return "connected"
            except PermissionError:
                return "denied"
        if method == "x-udp":  # a datagram to a service on this host (a DNS server, a memcached)
            import socket

            try:
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"hi", ("127.0.0.1", k["port"]))
                return "sent"
            except PermissionError:
                return "denied"
        if method == "x-read":
            try:
                with open(k["path"], "rb") as f:
                    return len(f.read())
            except PermissionError:
                return "denied"
        return original(self, i, method, *a, **k)

    ExplainSession.explain = explain


def _train(store: RunStore, owner: str) -> str:
    return run_training(builder.load_template("mlp"), "moons", {"epochs": 1, "seed": 0}, store=store,
                        owner=owner).run_id


def test_a_probe_for_one_owner_reads_no_secret_nor_another_owners_run_yet_explains_its_own(tmp_path, monkeypatch):
    ws = tmp_path / "ws"
    store = RunStore(ws, actor=SYSTEM)
    owners.set_server_config(ws, admins=["user:root@x"])
    mine_id, theirs = _train(store, A), _train(store, B)
    (owners.upload_dir(ws, A) / "new.csv").write_text("x1,x2\n0,1\n")
    (owners.owner_path(ws, A) / "canvas.json").write_text("{}")  # its own folder beside its uploads: a project
    mine = store.as_actor(Actor(A))
    monkeypatch.setattr(ModelProbe, "TEST_HOOK", f"{__name__}:_reader")
    probe = ModelProbe()
    try:
        xs = ProbeSession(probe, mine, mine_id, "test")
        assert xs.explain(0, "saliency").attributions.shape == (1, 2)
        assert xs.try_input(xs.sample(1), "saliency").predicted is not None

        def read(path) -> int | str:
            return xs.explain(0, "x-read", path=str(path))

        seen = {"key": read(ws / owners.SECRET_FILE), "config": read(ws / "server.json"),
                "database": read(ws / "layerlab.db"),  # every owner id (a cookie): its broker reads runs for it
                "theirs": read(store.folder(theirs).project), "mine": read(store.folder(mine_id).project),
                "upload": read(owners.upload_dir(ws, A) / "new.csv"),
                "own canvas": read(owners.owner_path(ws, A) / "canvas.json")}  # not its to read: its uploads only
        with socket.socket() as service:  # a database server, or any other service of this host
            service.bind(("127.0.0.1", 0))
            service.listen(1)
            seen["tcp"] = xs.explain(0, "x-connect", port=service.getsockname()[1])
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as service:  # UDP: Landlock does not cover it
            service.bind(("127.0.0.1", 0))
            service.setblocking(False)
            seen["udp"] = xs.explain(0, "x-udp", port=service.getsockname()[1])
            with contextlib.suppress(BlockingIOError):
                seen["datagram"] = service.recv(16)
        # it needs no network: no socket at all (seccomp), whatever the kernel's Landlock says of TCP
        if SECCOMP:
            assert seen["tcp"] == seen["udp"] == "denied" and "datagram" not in seen, seen
        else:
            assert seen["tcp"] == ("denied" if landlock.net_abi() else "connected"), seen
        if landlock.abi():
            assert seen["key"] == seen["config"] == seen["theirs"] == seen["database"] == seen["own canvas"] == \
                "denied", seen
            assert probe.files.startswith("files confined by Landlock"), probe.files
            assert "started before it" not in probe.files, probe.files  # no thread of it left unconfined
        else:
            assert probe.files.startswith("files not confined: this kernel has no Landlock"), probe.files
        assert isinstance(seen["mine"], int) and seen["upload"] == 10, seen
        with pytest.raises(AccessDenied):  # the parent's check as the session's actor stands
            ProbeSession(probe, mine, theirs, "test")

        # the owner trains again: the new run is outside the running child's rules; a fresh child opens it
        first = probe.pid()
        newer = _train(store, A)
        again = ProbeSession(probe, mine, newer, "test")
        assert probe.pid() != first and probe.files.startswith("files ")
        assert again.explain(2, "saliency").attributions.shape == (1, 2)
        assert isinstance(again.explain(0, "x-read", path=str(store.folder(newer).project)), int)
        assert xs.explain(1, "saliency") is not None and probe.pid() != first  # the first run too, same child
        second = probe.pid()
        assert again.explain(3, "saliency") is not None and probe.pid() == second  # no restart once inside
        if landlock.abi():
            assert again.explain(0, "x-read", path=str(ws / owners.SECRET_FILE)) == "denied"
        # a run of A's without a folder: a fresh child could not open it either, so this one answers the error
        ghost = store.create_run(builder.load_template("mlp"), "moons", {}, {}, owner=A)
        shutil.rmtree(store.folder(ghost).path)
        with pytest.raises(LayerLabError):
            ProbeSession(probe, mine, ghost, "test")
        assert probe.pid() == second
    finally:
        probe.close()


def test_the_clis_local_user_and_trusted_code_get_an_unconfined_probe(tmp_path):
    store = RunStore(tmp_path / "ws", actor=SYSTEM)
    assert landlock.reader_confinement(store, tmp_path).rules.startswith("trusted code")
    local = landlock.reader_confinement(store.as_actor(Actor(LOCAL_OWNER, admin=True)), tmp_path)
    assert "local user" in local.rules and local.opens("any run")


def test_a_teachers_probe_explains_a_students_run_on_the_students_upload(tmp_path, monkeypatch):
    """The teacher may read a student's run and the data it trained on: a run on the student's upload resolves it
    in the student's upload folder, which a teacher's confined probe must read (only that folder of the
    student's, not its autosaved canvas), still never identity.key."""
    from builder.data.uploads import UploadFolder
    from builder.runs import classes

    ws, teacher = tmp_path / "ws", "user:t@school.org"
    monkeypatch.setenv("LAYERLAB_TEACHERS", teacher)
    store = RunStore(ws, actor=SYSTEM)
    cls = classes.create_class(ws, teacher, "ML", builder.load_template("mlp"))
    classes.join_class(ws, cls["code"], B)
    rows = "".join(f"{i % 7},{(i * 3) % 5},{i % 2}\n" for i in range(120))
    ref = UploadFolder(owners.upload_dir(ws, B)).save("mine.csv", ("a,b,y\n" + rows).encode())
    rid = run_training(classes.starter_project(cls), "csv", {"epochs": 1, "seed": 0}, store=store, owner=B,
                       dataset_options={"upload": ref, "target": "y"}, adapt=True).run_id
    monkeypatch.setattr(ModelProbe, "TEST_HOOK", f"{__name__}:_reader")
    probe = ModelProbe()
    try:
        xs = ProbeSession(probe, store.as_actor(classes.actor_for(ws, teacher)), rid, "test")
        assert xs.explain(0, "saliency").attributions.shape[0] == 1
        if landlock.abi():
            canvas = owners.owner_path(ws, B) / "project.json"  # the student's autosave: not the run's data
            canvas.write_text("{}")
            assert xs.explain(0, "x-read", path=str(ws / owners.SECRET_FILE)) == "denied"
            assert xs.explain(0, "x-read", path=str(canvas)) == "denied"
    finally:
        probe.close()


def test_an_unconfined_probe_for_a_person_reads_runs_as_that_person(tmp_path, monkeypatch):
    """Where Landlock cannot confine the probe (an old kernel, a database without its WAL file), its run store read
    as trusted code: an id its parent had not checked (a run's parent, its teacher) would open anyone's run. It
    reads as the session's person, as the broker does in a confined probe."""
    from builder.jobs import probe_child
    from builder.jobs.probe import _wire_rules
    from builder.process import broker

    ws = tmp_path / "ws"
    store = RunStore(ws, actor=SYSTEM)
    ann = run_training(builder.load_template("mlp"), "moons", {"epochs": 1}, store, owner="user:ann").run_id
    bob = Actor("user:bob")
    grant = landlock.ReaderRules("a kernel without Landlock", ())
    files = _wire_rules(grant, str(ws), bob)
    assert files["actor"] == broker.wire_actor(bob) and files["rules"] == "a kernel without Landlock"
    assert _wire_rules(grant, str(ws), SYSTEM)["actor"] is None  # trusted code is not a person
    monkeypatch.setattr(probe_child, "_STORES", {})
    monkeypatch.setattr(probe_child.landlock, "confine", lambda rules: f"unconfined: {rules}")
    probe_child._confine(files)
    with pytest.raises(AccessDenied, match="of yours"):
        probe_child._store(str(ws)).get(ann)
    assert probe_child._store(str(ws)).who() == bob


def test_a_teachers_probe_runs_each_students_models_in_a_child_of_their_own(tmp_path, monkeypatch):
    """The class leaderboard scores every member's model in the teacher's probe: one child for all let a model
    that took its child over answer (or read) for every student scored after it. A child runs one person's models
    and opens only their runs; the scoring goes member by member, one child each."""
    from builder.runs import classes

    ws, teacher = tmp_path / "ws", "user:t@school.org"
    monkeypatch.setenv("LAYERLAB_TEACHERS", teacher)
    store = RunStore(ws, actor=SYSTEM)
    cls = classes.create_class(ws, teacher, "ML", builder.load_template("mlp"),
                               holdout={"dataset": "moons", "options": {"seed": 5, "n_samples": 200}})
    for who in (A, B):
        classes.join_class(ws, cls["code"], who)
    project = classes.starter_project(cls)
    ids = {who: [run_training(project, "moons", {"epochs": 1, "seed": s}, store=store, owner=who).run_id
                 for s in (0, 1)] for who in (A, B)}
    teachers = store.as_actor(classes.actor_for(ws, teacher))
    monkeypatch.setattr(ModelProbe, "TEST_HOOK", f"{__name__}:_reader")
    probe = ModelProbe()
    try:
        pids = {}

        def scorer(run_id, holdout, metric):
            value = probe.holdout(teachers, run_id, holdout, metric)
            who = A if run_id in ids[A] else B
            pids.setdefault(who, set()).add(probe.pid())
            return value

        rows = classes.class_runs(teachers, classes.get_class(ws, cls["id"], SYSTEM), scorer=scorer)
        assert len(rows) == 4 and all(isinstance(r["test"], float) for r in rows), rows
        assert len(pids[A]) == len(pids[B]) == 1 and pids[A] != pids[B], pids  # one child per member
        assert probe.starts == 2
        xs = ProbeSession(probe, teachers, ids[A][0], "test")  # a child of A's models: B's run is not opened
        if landlock.abi():
            assert xs.explain(0, "x-read", path=str(store.folder(ids[B][0]).project)) == "denied"
        assert isinstance(xs.explain(0, "x-read", path=str(store.folder(ids[A][1]).project)), int)
    finally:
        probe.close()
