"""builder.interpret.probe: a run's model runs in a sandboxed child; its crash, memory blow-up or endless loop
is one error line and the next question is answered (issue 21). The wire format reads back data only.

The child is made to misbehave through the test-only hook ``ModelProbe.TEST_HOOK`` (the child imports this
module and calls :func:`_hook` after locking down); the app sets none.
"""

from __future__ import annotations

import gc
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import builder
from builder.data.access import SYSTEM
from builder.errors import ExplainError, RunStoreError
from builder.interpret.attributions import Explanation, MethodInfo
from builder.jobs import probe as probe_mod
from builder.jobs.probe import ModelProbe, ProbeSession
from builder.jobs.probe_child import _handle
from builder.jobs.probe_wire import FRAME, decode, encode, read_frame, write_frame
from builder.runs.pipeline import run_training
from builder.runs.store import RunStore

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _hook() -> None:
    """Inside the child: ``explain`` with a method named x-... misbehaves (a segfault, an allocation far over
    the address-space limit, an endless loop)."""
    from builder.interpret.session import ExplainSession

    original = ExplainSession.explain

    def explain(self, i, method, *a, **k):
        if method == "x-segfault":
            import ctypes

            ctypes.string_at(0)
        if method == "x-allocate":
            return len(bytearray(64 * 2**30))
        if method == "x-loop":
            while True:
                pass
        return original(self, i, method, *a, **k)

    ExplainSession.explain = explain


def crash_in_activation() -> None:
    """Inside the child (the Explain page's AppTest): a node's activations segfault, as a torch bug would."""
    import ctypes

    from builder.interpret.session import ExplainSession

    ExplainSession.activation = lambda self, *a, **k: ctypes.string_at(0)


def input_sign_spec():
    """A method added with one spec (the Explain page's AppTest registers it in the page and, through
    :func:`register_input_sign`, in the child)."""
    from builder.interpret.methods import Attribution, MethodSpec

    return MethodSpec("input_sign", "Input sign", None, lambda c: Attribution(c.inputs.sign()),
                      frozenset({"image"}), "input_sign is for images")


def register_input_sign() -> None:
    """Inside the child (the Explain page's AppTest): :func:`input_sign_spec` is registered."""
    from builder.interpret.methods import register

    register(input_sign_spec())


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    store = RunStore(tmp_path_factory.mktemp("ws"), actor=SYSTEM)
    res = run_training(builder.load_template("mlp"), "moons", {"epochs": 1, "seed": 0}, store=store)
    return store, res.run_id


def _pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_crash_memory_blowup_or_loop_is_one_line_and_the_next_question_works(run, monkeypatch):
    store, rid = run
    monkeypatch.setattr(ModelProbe, "TEST_HOOK", f"{__name__}:_hook")
    probe = ModelProbe()
    xs = ProbeSession(probe, store, rid, "test")
    assert (xs.modality, xs.n_samples, xs.classification) == ("tabular", 150, True)
    local = builder.interpret.session.ExplainSession(*builder.interpret.session.open_run(store, store.get(rid)),
                                                     "test", rid)
    e = xs.explain(3, "saliency")
    assert isinstance(e, Explanation)
    assert torch.allclose(e.attributions, local.explain(3, "saliency").attributions)
    assert xs.methods().default == local.methods().default and xs.summary(3) == local.summary(3)
    first = probe.pid()

    with pytest.raises(ExplainError, match=r"died from SIGSEGV: a crash in native code \(segmentation fault\)"):
        xs.explain(0, "x-segfault")
    assert not probe.running
    assert xs.explain(1, "saliency").attributions.shape == (1, 2)  # a fresh child
    assert probe.pid() != first and _pid_gone(first)

    second = probe.pid()
    with pytest.raises(ExplainError, match="ran out of memory") as err:
        xs.explain(0, "x-allocate")
    assert "\n" not in str(err.value)
    assert xs.explain(2, "saliency") is not None and probe.pid() == second  # the same child goes on

    probe.timeout = 3.0
    monkeypatch.setenv(probe_mod.IDLE_ENV, "1")  # the next child ends itself after 1 s without a question
    with pytest.raises(ExplainError, match="did not answer within 3 s"):
        xs.explain(0, "x-loop")
    assert _pid_gone(second)
    probe.timeout = 120.0
    assert xs.try_input(xs.sample(4), "saliency").predicted == local.summary(4).predicted
    third = probe.pid()
    deadline = time.monotonic() + 20
    while probe.running and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not probe.running and _pid_gone(third)  # idle: gone by itself
    assert xs.explain(5, "saliency") is not None  # and started again on demand
    last = probe.pid()
    newer = ProbeSession(probe, store, rid, "val", version="checkpoint 2")  # reopened in the same child
    assert newer.n_samples > 0 and probe.pid() == last
    del xs, newer, probe, err  # the page session ends: its state is dropped
    gc.collect()
    deadline = time.monotonic() + 10
    while not _pid_gone(last) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _pid_gone(last)


def test_the_crash_hook_kills_the_child_that_opens_a_run_named_for_it(tmp_path, monkeypatch):
    """LAYERLAB_TEST_CRASH_JOB (tests only) reaches the probe's child, whose environment is clean: a run whose name
    holds it kills the child by SIGSEGV as it opens the run (the browser test sends a crashing model through
    Explain this way); another run is answered."""
    from builder.jobs.job_sandbox import TEST_CRASH_ENV

    store = RunStore(tmp_path, actor=SYSTEM)
    rid = run_training(builder.load_template("mlp"), "moons", {"epochs": 1, "seed": 0}, store=store,
                       name="CRASHES net").run_id
    monkeypatch.setenv(TEST_CRASH_ENV, "CRASHES")
    probe = ModelProbe()
    try:
        with pytest.raises(ExplainError, match="SIGSEGV"):
            probe.request(store, rid, "test", "hello")
    finally:
        probe.close()


def test_a_run_that_does_not_open_is_its_own_error(run, tmp_path):
    store, _ = run
    with pytest.raises(RunStoreError, match="no run"):
        _handle({"workspace": str(store.workspace), "run": "20990101-000000-abcdef", "split": "test",
                 "call": "hello"}, {})
    with pytest.raises(ExplainError, match="answers the Explain page's questions"):
        _handle({"workspace": str(tmp_path), "run": "x", "split": "test", "call": "__class__"}, {})


def test_the_wire_reads_back_data_only():
    exp = Explanation("saliency", torch.arange(6.0).reshape(1, 2, 3), torch.tensor([1]), None, "fc1",
                      options={"n_steps": 8, "odd": object()})
    back = decode(*encode({"e": exp, "m": [MethodInfo("x", False, "why")], (1, "k"): np.float32(2.5),
                           "half": torch.ones(2, dtype=torch.bfloat16)}))
    assert torch.equal(back["e"].attributions, exp.attributions) and back["e"].layer == "fc1"
    assert back["e"].options == {"n_steps": 8, "odd": None}  # an unknown object comes back as None
    assert back["m"][0] == MethodInfo("x", False, "why") and back[(1, "k")] == 2.5
    assert back["half"].dtype == torch.float32
    with pytest.raises(ExplainError, match="unknown type"):
        decode(b'{"$dc": "os.system", "f": {}}', b"")
    with pytest.raises(ExplainError, match="not readable"):
        decode(b'{"$n": "a0"}', b"not an npz")


@pytest.mark.parametrize("bomb", ["compressed", "declared"])
def test_an_answer_that_would_grow_when_read_is_refused_before_it_grows(bomb):
    """The answer's cap counted the bytes sent: a 261 KB answer of deflate-compressed zeros became a 256 MiB tensor
    in the server (1,000 to 1 of the cap), and a header may declare more values than its member holds (numpy
    allocates the declared array first). Both are refused; nothing past the bytes on hand is allocated."""
    import io
    import zipfile

    buf = io.BytesIO()
    if bomb == "compressed":
        np.savez_compressed(buf, a0=np.zeros((64, 1024, 1024), np.float32))
    else:
        member = io.BytesIO()
        np.lib.format.write_array_header_1_0(member, {"descr": "<f4", "fortran_order": False,
                                                      "shape": (2**20, 2**20)})
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr("a0.npy", member.getvalue() + b"\0" * 64)
    assert len(buf.getvalue()) < 2**20
    with pytest.raises(ExplainError, match="not readable.*(compressed|declares)"):
        decode(b'{"$t": "a0"}', buf.getvalue())


def test_a_frame_over_the_cap_is_refused_before_it_is_read(monkeypatch):
    r, w = os.pipe()
    try:
        write_frame(w, *encode([1, 2]))
        assert decode(*read_frame(r)) == [1, 2]
        monkeypatch.setenv("LAYERLAB_PROBE_ANSWER_MB", "1")
        os.write(w, FRAME.pack(10, 2 * 2**20))
        with pytest.raises(ExplainError, match="over the size limit"):
            read_frame(r)
    finally:
        os.close(r)
        os.close(w)


def test_one_persons_probes_past_the_cap_take_an_idle_ones_place_and_busy_ones_are_kept(run, monkeypatch):
    """Each page session's probe is a child allowed gigabytes: one person has at most LAYERLAB_SANDBOX_PER_OWNER
    live at once. A further page's probe takes the place of one waiting for a question (a tab closed or reloaded
    keeps its session, and its probe, for two minutes: its owner's next Explain page met "at most N model
    processes" with nothing to do but wait); one answering a question is kept, and the further page gets one line."""
    store, rid = run
    monkeypatch.setenv("LAYERLAB_SANDBOX_PER_OWNER", "1")
    first, second = ModelProbe(), ModelProbe()
    first.owner = second.owner = "anon:" + "e5" * 16  # as a page session's ProbeSession sets it from its actor
    try:
        page = ProbeSession(first, store, rid, "test")
        assert ProbeSession(second, store, rid, "test").n_samples > 0  # first was idle: its child made room
        assert first.pid() is None and second.pid() is not None
        assert page.summary(0) is not None  # the first page's next question is answered by a fresh child
        assert second.pid() is None and first.pid() is not None
        assert ProbeSession(first, store, rid, "test").n_samples > 0  # and back: it starts a fresh child
        assert second.pid() is None and first.pid() is not None
        busy = r"^one person may have at most 1 model process\(es\) at once \(Explain.*each busy now"
        with first._lock, pytest.raises(ExplainError, match=busy):  # as while first answers a question: kept
            ProbeSession(second, store, rid, "test")
        assert second.pid() is None and first.pid() is not None
        first.close()
        assert ProbeSession(second, store, rid, "test").n_samples > 0  # its place is free again
    finally:
        first.close()
        second.close()


def _peek() -> None:
    """In the child (a model that took it over): every run its run store lists, and their owners, to its log."""
    import sys

    from builder.jobs import probe_child

    (store,) = probe_child._STORES.values()
    print("PEEK", sorted((r["id"], r["owner"]) for r in store.list_runs()), file=sys.stderr, flush=True)


def test_a_teachers_probe_scoring_one_student_reads_no_other_students_runs(tmp_path, monkeypatch):
    """Issue 28: a teacher's leaderboard scores each student's model in a child that runs that student's models alone
    (its files: that student's runs), but the child's run store, a broker answering as the teacher, listed and read
    every student's class runs, their rows with their owners' ids (an anonymous id is its browser's cookie): a model
    that took the child over read all of them. It answers as the teacher narrowed to the model's owner."""
    from builder.data.access import Actor
    from builder.runs import classes

    t, a, b = "user:t@school.org", "anon:" + "a" * 32, "anon:" + "b" * 32
    monkeypatch.setenv("LAYERLAB_TEACHERS", t)
    monkeypatch.delenv("LAYERLAB_SHARED_RUNS", raising=False)
    ws = tmp_path / "ws"
    cls = classes.create_class(ws, t, "c", builder.load_template("mlp"))
    for s in (a, b):
        classes.join_class(ws, cls["code"], s)
    starter = classes.starter_project(classes.get_class(ws, cls["id"], Actor(a)))
    ra, rb = (run_training(starter, "moons", {"epochs": 1}, RunStore(ws, actor=classes.actor_for(ws, s)),
                           owner=s).run_id for s in (a, b))
    monkeypatch.setattr(ModelProbe, "TEST_HOOK", f"{__name__}:_peek")
    teacher = RunStore(ws, actor=classes.actor_for(ws, t))
    assert {r["id"] for r in teacher.list_runs(class_id=cls["id"])} == {ra, rb}  # the teacher reads both
    probe = ModelProbe()
    try:
        assert 0 <= probe.holdout(teacher, ra, {"dataset": "moons", "options": {"seed": 5}}, "accuracy") <= 1
        log = (Path(probe._child.private) / "probe.log").read_text()
    finally:
        probe.close()
    peek = next(line for line in log.splitlines() if line.startswith("PEEK"))
    assert ra in peek and rb not in peek and "b" * 32 not in peek, peek
