"""Reading a run is not enough to write into it: every write into a run's folder goes through the store's write
accessor, ``store.folder(run_id, write=True)`` (or ``run_dir(..., write=True)``), which asks that the actor controls
the run (builder.data.access: shared mode and a teacher read runs they do not control).

Found as one class (issue 28): ``run_training``'s ``run_id``, ``resume_run``, prune's ``new_run``, Explain's keep,
int8 quantizing, the model card and the MLflow export's ``tracking.json`` each wrote into a run the caller could only
read, each with a check of its own or none. The test below reads the source (AST, nothing imported; in the spirit of
tests/test_architecture.py): a write whose destination comes from a read accessor (``store.folder(rid)``,
``store.run_dir(rid)``, ``weights_path``, ``checkpoint_path``, a ``RunFolder(...)`` made outside the trainer) fails,
so a new writer of a run folder that skips the accessor cannot come back. The behaviour (a reader refused, nothing of
the run changed) is tests/test_access.py's ``test_no_writer_lets_a_reader_write``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from builder.data.access import SYSTEM, Actor
from builder.errors import AccessDenied, RunStoreError
from builder.graph.templates import load_template
from builder.runs.store import RunStore

ROOT = Path(__file__).resolve().parents[2]

READ_ACCESSORS = {"folder", "run_dir", "weights_path", "checkpoint_path"}
"""Store methods that hand out a run's folder (or a file of it) to read; with ``write=True`` (the first two) to
write."""
PATH_WRITES = {"write_text", "write_bytes", "mkdir", "touch", "unlink", "rename", "replace", "symlink_to",
               "hardlink_to", "chmod", "rmdir", "create"}
"""Methods of a path (or a folder) that change the file system."""
PATH_OPS = {"export", "with_suffix", "with_name", "with_stem", "joinpath", "resolve", "absolute"}
"""Methods that give a path (or a folder) inside the one they are called on."""
WRITERS = re.compile(r"^_?(write|save|keep|copy|dump|move|rmtree|export_onnx$|export_network$|quantize_int8$|"
                     r"(Objective)?Trainer$)", re.IGNORECASE)
"""Calls that write into a path handed to them (``write_atomic``, ``save_weights``, ``shutil.copyfile``,
``TrackingState.save``, ``KeepForecasts``, a Trainer's run folder, ...)."""
DESTINATION = {"copyfile": (1, "dst"), "copy": (1, "dst"), "copy2": (1, "dst"), "copytree": (1, "dst"),
               "move": (1, "dst"), "save_weights": (1, "path"), "save_dataset": (1, "path"),
               "save_file": (1, "filename"), "export_onnx": (1, "path"), "quantize_int8": (1, "out"),
               "export_network": (3, "out")}
"""Writers whose other arguments are read: the argument (position, keyword) they write to."""
TRAINER_PACKAGE = "builder/training/"
"""The trainer and its callbacks write into the ``run_dir`` they are handed (by the pipeline, from the write
accessor) and know no store: a ``RunFolder(trainer.run_dir)`` there is that folder."""
ACCESSOR = {"builder/runs/store.py", "builder/process/broker.py"}
"""The store itself: the accessor, and its writers of a run it creates, finishes or deletes; a confined process's
store, whose folders are the path its broker's store checked (``run_dir(run_id, write=True)``)."""


def _is_true(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def _read_handle(node: ast.AST, trainer: bool) -> bool:
    """A call that hands out a run folder (or one of its files) to read."""
    if not isinstance(node, ast.Call):
        return False
    kw = {k.arg: k.value for k in node.keywords}
    f = node.func
    if isinstance(f, ast.Attribute) and f.attr in READ_ACCESSORS:
        return not _is_true(kw.get("write"))
    if isinstance(f, ast.Name) and f.id == "RunFolder":
        return not trainer and not _is_true(kw.get("writable"))
    return False


def _name(f: ast.AST) -> str:
    return f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""


def _writing_open(call: ast.Call) -> bool:
    mode = call.args[1] if len(call.args) > 1 else next((k.value for k in call.keywords if k.arg == "mode"), None)
    return isinstance(mode, ast.Constant) and isinstance(mode.value, str) and bool(set(mode.value) & set("wax+"))


def _dirty(e: ast.AST | None, tainted: set[str], trainer: bool) -> bool:
    """Whether ``e`` is a path into a read handle's folder (not data read from it); ``tainted``: names holding one."""
    def dirty(x: ast.AST | None) -> bool:
        return _dirty(x, tainted, trainer)

    if e is None:
        return False
    if _read_handle(e, trainer):
        return True
    if isinstance(e, ast.Name):
        return e.id in tainted
    if isinstance(e, ast.Attribute | ast.Subscript | ast.Starred):
        return dirty(e.value)
    if isinstance(e, ast.BinOp):
        return dirty(e.left)
    if isinstance(e, ast.IfExp):
        return dirty(e.body) or dirty(e.orelse)
    if isinstance(e, ast.BoolOp | ast.Tuple | ast.List):
        return any(dirty(v) for v in (e.values if isinstance(e, ast.BoolOp) else e.elts))
    if isinstance(e, ast.Call):
        f = e.func
        if isinstance(f, ast.Attribute) and f.attr in PATH_OPS:
            return dirty(f.value)
        if _name(f) in ("Path", "str", "fspath"):
            return any(dirty(a) for a in e.args)
    return False


def reader_writes(source: str, where: str, *, trainer: bool = False) -> list[str]:
    """``where:line name`` for each write whose destination derives, inside one function, from a read handle: a
    read accessor's result, or a name assigned from one (``folder = store.folder(rid)``; ``path = folder.tokenizer``).
    """
    out = []
    tree = ast.parse(source)
    for fn in [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)] or [tree]:
        tainted: set[str] = set()

        def dirty(e: ast.AST | None, tainted: set[str] = tainted) -> bool:
            return _dirty(e, tainted, trainer)

        assigns = [n for n in ast.walk(fn) if isinstance(n, ast.Assign | ast.AnnAssign | ast.NamedExpr)]
        changed = True
        while changed:  # names assigned from a read handle, to a fixpoint (order does not matter: over-approximate)
            changed = False
            for a in assigns:
                if a.value is None or not dirty(a.value):
                    continue
                targets = a.targets if isinstance(a, ast.Assign) else [a.target]
                for t in targets:
                    for n in ast.walk(t):
                        if isinstance(n, ast.Name) and n.id not in tainted:
                            tainted.add(n.id)
                            changed = True
        for call in (n for n in ast.walk(fn) if isinstance(n, ast.Call)):
            f, name = call.func, _name(call.func)
            if isinstance(f, ast.Attribute) and name in PATH_WRITES and dirty(f.value):
                bad = True
            elif name == "open" and (isinstance(f, ast.Attribute) and dirty(f.value)
                                     or bool(call.args) and dirty(call.args[0])):  # path.open(...), open(path, ...)
                bad = _writing_open(call)
            elif name in DESTINATION:  # a copy reads its source: only where it writes counts
                i, key = DESTINATION[name]
                dest = call.args[i] if len(call.args) > i else next(
                    (k.value for k in call.keywords if k.arg == key), None)
                bad = dirty(dest)
            else:
                args = [*call.args, *(k.value for k in call.keywords)]
                bad = bool(WRITERS.match(name)) and any(dirty(a) for a in args)
            if bad:
                out.append(f"{where}:{call.lineno} {name}")
    return sorted(set(out))


def _sources():
    for folder in (ROOT / "builder", ROOT / "app_pages"):
        for path in sorted(folder.rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel not in ACCESSOR:
                yield rel, path.read_text(encoding="utf-8")


def test_every_write_into_a_run_folder_goes_through_the_write_accessor():
    bad = [w for rel, src in _sources() for w in reader_writes(src, rel, trainer=rel.startswith(TRAINER_PACKAGE))]
    assert not bad, ("these write into a run folder opened to read; open it with store.folder(run_id, write=True) "
                     "(the actor must control the run):\n" + "\n".join(bad))


def bypasses(source: str, where: str) -> list[str]:
    """``where:line what`` for each way around the accessor: a writable ``RunFolder`` made by hand, a path joined
    onto the workspace's ``runs`` folder."""
    out = []
    for n in ast.walk(ast.parse(source)):
        if isinstance(n, ast.Call) and _name(n.func) == "RunFolder" and any(k.arg == "writable" for k in n.keywords):
            out.append(f"{where}:{n.lineno} RunFolder(writable=...)")
        if isinstance(n, ast.BinOp) and isinstance(n.op, ast.Div) and isinstance(n.right, ast.Constant) \
                and n.right.value == "runs":
            out.append(f"{where}:{n.lineno} / 'runs'")
    return out


def test_only_the_store_makes_a_writable_folder_or_a_path_into_the_runs():
    bad = [w for rel, src in _sources() for w in bypasses(src, rel)]
    assert not bad, "ask the store for a run's folder (store.folder(run_id, write=True)):\n" + "\n".join(bad)
    assert bypasses("f = RunFolder(ws / 'runs' / rid, writable=True)", "m") == ["m:1 RunFolder(writable=...)",
                                                                                "m:1 / 'runs'"]


def test_a_stopper_writes_only_the_tag_that_says_who_stopped(tmp_path):
    """The store checks every writer of a run's row (tests/access_registry.py ROW_WRITERS, tried by every
    intruder and reader in tests/test_access.py): its owner writes it; the teacher of its class and an admin, who
    may stop it, write the stop request and the tag naming who stopped it, nothing else."""
    from builder.runs.record import STOPPED_BY

    ws = tmp_path / "ws"
    system = RunStore(ws, actor=SYSTEM)
    rid = system.create_run(load_template("mlp"), "moons", {}, {"epochs": 1}, owner="user:ann", tags={"k": "v"},
                            class_id="c1")
    teacher = RunStore(ws, actor=Actor("user:tea", students=frozenset({"user:ann"}), teaching=frozenset({"c1"})))
    admin = RunStore(ws, actor=Actor("user:adm", admin=True))
    for who in (teacher, admin):
        who.update_run(rid, tags={"k": "v", STOPPED_BY: "your teacher t"})
        who.set_control(rid, "stop")
        for name, args, kwargs in (("update_run", (), {"tags": {"k": "changed", STOPPED_BY: "x"}}),
                                   ("update_run", (), {"tags": {STOPPED_BY: "x"}}), ("update_run", (), {"message": "x"}),
                                   ("set_control", ("pause",), {}), ("update_status", ("failed",), {}),
                                   ("take_control", (), {})):
            with pytest.raises(AccessDenied):
                getattr(who, name)(rid, *args, **kwargs)
    row = system.get(rid)
    assert row.tags == {"k": "v", STOPPED_BY: "your teacher t"} and row["control"] == "stop"
    assert row["status"] == "queued" and not row["message"]
    ann = RunStore(ws, actor=Actor("user:ann"))
    ann.update_run(rid, tags={"k": "mine"}, message="ok")
    assert system.get(rid).tags == {"k": "mine"}


@pytest.mark.parametrize("fields", [{"owner": "user:bob"}, {"class_id": "c2"}, {"pid": 1}, {"queued_at": 0.0},
                                    {"message = (SELECT group_concat(owner) FROM runs), status": "x"}],
                         ids=["owner", "class", "process", "queue", "sql in a name"])
def test_an_owner_writes_its_runs_row_but_not_who_owns_it_nor_its_class_or_queue(tmp_path, fields):
    """The owner controls its run's row, but who owns it, its class, its process and its place in the queue are
    LayerLab's to set (a run given to another owner landed in their list; one moved into a class its owner never
    joined, on that class's leaderboard), and a column name is a column's (update_status put any keyword's name
    into its statement: a name carrying SQL read every owner id into the run's message)."""
    ws = tmp_path / "ws"
    system = RunStore(ws, actor=SYSTEM)
    rid = system.create_run(load_template("mlp"), "moons", {}, {"epochs": 1}, owner="user:ann")
    ann = RunStore(ws, actor=Actor("user:ann"))
    for write in (lambda: ann.update_run(rid, **fields), lambda: ann.update_status(rid, "running", "", **fields)):
        with pytest.raises((AccessDenied, RunStoreError)):
            write()
    row = system.get(rid)
    assert (row["owner"], row["class_id"], row["status"]) == ("user:ann", None, "queued")
    assert "user:ann" not in (row["message"] or "")
    system.update_run(rid, class_id="c2")  # the system's own bookkeeping stands
    assert system.get(rid)["class_id"] == "c2"


def test_the_check_finds_the_writers_it_should():
    """The members of the class as they were written: each is found, and its fixed form is not."""
    old = '''
def write_model_card(store, run_id):
    run = store.get(run_id)
    return write_card(run, store.metrics(run["id"]), store.run_dir(run["id"]))

def export(store, run):
    state.save(store.folder(run["id"]), uri)

def keep(store, rid, data):
    folder = store.folder(rid)
    path = folder.tokenizer
    write_atomic(path, data, "x")
    folder.exports.mkdir(parents=True)
    folder.create()
    with open(folder.onnx, "wb") as f:
        f.write(data)

def train(store, rid, model):
    Trainer(model, None, None, [], store.run_dir(rid))
    save_weights(model, store.weights_path(rid))
    KeepForecasts(RunFolder(rid).forecasts)
'''
    found = [w.split(" ", 1)[1] for w in reader_writes(old, "m")]
    assert sorted(found) == sorted(["write_card", "save", "write_atomic", "mkdir", "create", "open", "Trainer",
                                    "save_weights", "KeepForecasts"]), found
    fixed = '''
def write_model_card(store, run_id):
    run = store.get(run_id)
    return write_card(run, store.metrics(run["id"]), store.folder(run["id"], write=True))

def keep(store, rid, data):
    folder = store.folder(rid, write=True)
    write_atomic(folder.tokenizer, data, "x")
    shown = store.folder(rid)
    data = read(shown.tokenizer)
    with open(shown.onnx, "rb") as f:
        f.read()
    _export_tokenizer(store.folder(rid), "out.onnx")
'''
    assert reader_writes(fixed, "m") == []
    assert reader_writes("def f(t):\n    save_weights(t.model, RunFolder(t.run_dir).weights)\n", "m",
                         trainer=True) == []  # the trainer writes into the folder it was handed


# ------------------------------------------------------------------------------------ the accessor itself
ANN = "user:ann"
READERS = {"shared mode": Actor("user:bob", shared=True),
           "teacher": Actor("user:t", students=frozenset({ANN}), teaching=frozenset({"c-1"}))}


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.delenv("LAYERLAB_SHARED_RUNS", raising=False)
    return RunStore(tmp_path, actor=SYSTEM)


@pytest.fixture
def ann_run(store) -> str:
    """A run of ann's made for class c-1 (its teacher reads it; shared mode reads it)."""
    return store.create_run(load_template("mlp"), "moons", {}, {"epochs": 1}, owner=ANN, class_id="c-1")


def _files(store: RunStore, rid: str) -> dict[str, bytes]:
    folder = store.folder(rid)
    return {p.relative_to(folder.path).as_posix(): p.read_bytes() for p in folder.path.rglob("*") if p.is_file()}


@pytest.mark.parametrize("who", READERS)
def test_a_reader_gets_a_folder_to_read_never_one_to_write(store, ann_run, who):
    reader = store.as_actor(READERS[who])
    folder = reader.folder(ann_run)  # it reads the run
    assert folder.path == store.folder(ann_run).path and not folder.writable
    for call in (lambda: reader.folder(ann_run, write=True), lambda: reader.run_dir(ann_run, write=True),
                 folder.to_write):
        with pytest.raises(AccessDenied, match=f"no run '{ann_run}' of yours"):
            call()
    assert store.as_actor(Actor(ANN)).folder(ann_run, write=True).to_write().writable  # its owner writes
    assert store.folder(ann_run, write=True).writable  # trusted code (the job on its own run)


@pytest.mark.parametrize("who", READERS)
def test_the_model_card_and_the_tracking_state_are_written_only_by_whoever_controls_the_run(store, ann_run, who):
    """write_model_card and export_runs's tracking.json wrote into any run the caller could read."""
    from builder.runs.modelcard import write_model_card
    from builder.tracking import TrackingState

    reader = store.as_actor(READERS[who])
    before = _files(store, ann_run)
    with pytest.raises(AccessDenied):
        write_model_card(reader, ann_run)
    with pytest.raises(AccessDenied):
        TrackingState("m1").save(reader.folder(ann_run), "sqlite:///x.db")
    assert _files(store, ann_run) == before
    ann = store.as_actor(Actor(ANN))
    assert write_model_card(ann, ann_run).is_file()
    TrackingState("m1").save(ann.folder(ann_run, write=True), "sqlite:///x.db")
    assert store.folder(ann_run).tracking.is_file()


def _no_work(*a, **k):
    raise AssertionError("computed for a reader who may not keep the result")


@pytest.mark.parametrize("who", READERS)
def test_a_report_that_will_be_kept_is_refused_before_it_is_computed(store, ann_run, who, monkeypatch):
    """`layerlab robustness RUN` (and calibrate) attacked the whole test split, then was refused when keeping."""
    import builder.runs.pipeline as pipeline
    from builder.interpret.calibration import calibrate_run
    from builder.interpret.robustness import robustness_run

    monkeypatch.setattr(pipeline, "open_run", _no_work)
    reader = store.as_actor(READERS[who])
    with pytest.raises(AccessDenied):
        robustness_run(reader, ann_run)
    with pytest.raises(AccessDenied):
        calibrate_run(reader, ann_run)
    with pytest.raises(AssertionError, match="computed"):  # only to look at: the reader may compute it
        robustness_run(reader, ann_run, save=False)


@pytest.mark.parametrize("argv", [["robustness", "{rid}"], ["calibrate", "{rid}"], ["export", "--run", "{rid}"],
                                  ["export", "--run", "{rid}", "--format", "onnx"]])
def test_the_cli_refuses_to_save_into_a_run_it_reads_before_any_work(store, ann_run, argv, monkeypatch):
    """The command line's local user in shared mode reads everyone's runs; a command that saves into the run
    (robustness, calibrate, an export without -o) is refused before it computes or reads the weights."""
    import contextlib
    import io

    import builder.runs.pipeline as pipeline
    import builder.training.weights as weights
    from builder.cli.main import main

    monkeypatch.setenv("LAYERLAB_SHARED_RUNS", "1")
    for mod, name in ((pipeline, "open_run"), (pipeline, "load_run"), (weights, "read_weights")):
        monkeypatch.setattr(mod, name, _no_work)
    before = _files(store, ann_run)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main([a.format(rid=ann_run) for a in argv] + ["--workspace", str(store.workspace)])
    assert code != 0 and f"no run '{ann_run}' of yours" in err.getvalue(), err.getvalue()[-400:]
    assert _files(store, ann_run) == before


def test_a_new_run_whose_id_is_taken_leaves_the_other_runs_files_alone(tmp_path, monkeypatch):
    """Ids carry 24 random bits per second: a new run that draws an id whose folder exists takes another id. It
    wrote its project into that folder, and when its row then failed on the duplicate id, removed the folder, with
    the other person's weights in it."""
    from builder import load_template
    from builder.data.access import SYSTEM
    from builder.runs import store as store_mod
    from builder.runs.store import RunStore

    store = RunStore(tmp_path / "ws", actor=SYSTEM)
    ids = iter(["20261128-120000-aaaaaa", "20261128-120000-aaaaaa", "20261128-120000-bbbbbb"])
    monkeypatch.setattr(store_mod, "_new_id", lambda: next(ids))
    project = load_template("mlp")
    alice = store.create_run(project, "moons", {}, {}, owner="anon:alice")
    (store.folder(alice).path / "model.safetensors").write_bytes(b"alice's weights")
    bob = store.create_run(load_template("cnn"), "digits", {}, {}, owner="anon:bob")
    assert bob == "20261128-120000-bbbbbb" and store.get(bob)["owner"] == "anon:bob"
    assert (store.folder(alice).path / "model.safetensors").read_bytes() == b"alice's weights"
    assert store.get(alice).project.name == project.name  # its project file was not overwritten
    assert store.folder(alice).project.read_text() == project.to_json()
    monkeypatch.setattr(store_mod, "_new_id", lambda: alice)
    with pytest.raises(RunStoreError, match="no free run id"):
        store.create_run(project, "moons", {}, {}, owner="anon:bob")
    assert store.folder(alice).path.is_dir() and store.get(alice)["owner"] == "anon:alice"
