"""Run statuses: the one type, its sets and predicates, and no status tuple typed out anywhere else."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from builder.data.access import SYSTEM
from builder.errors import RunStoreError
from builder.runs.store import RunStore
from builder.training import run_status as rs
from builder.training.run_status import (
    FINAL,
    LIVE,
    RESUMABLE,
    RunStatus,
    can_resume,
    is_final,
    is_live,
    resume_refusal,
)

ROOT = Path(__file__).resolve().parents[2]
STORED = ["queued", "running", "paused", "finished", "stopped", "failed", "interrupted", "imported"]
STATUSES = st.sampled_from(list(RunStatus))
RUNS = st.fixed_dictionaries({"id": st.just("20261121-104000-ab12cd"), "pid": st.just(1),
                              "status": st.one_of(STATUSES, STATUSES.map(str)),
                              "epochs_done": st.integers(0, 5)})


def test_the_stored_strings_never_change():
    """runs.db holds these strings: a renamed member would orphan every old run."""
    assert [s.value for s in RunStatus] == STORED
    for s in RunStatus:
        assert s == s.value and str(s) == s.value and f"{s}" == s.value and RunStatus(s.value) is s


def test_the_sets_partition_the_statuses():
    assert {"queued", "running", "paused"} == LIVE
    assert set(RunStatus) - LIVE == FINAL and not LIVE & FINAL
    assert {"stopped", "failed", "interrupted"} == RESUMABLE and RESUMABLE <= FINAL
    for group in (rs.TRAINER_END, rs.ENDED_BY_ERROR, rs.ENDED_CLEANLY, rs.CUT_SHORT):
        assert group <= FINAL
    assert set(RunStatus) >= rs.HALTED and RunStatus.RUNNING not in rs.HALTED
    assert rs.ENDED_BY_ERROR.isdisjoint(rs.ENDED_CLEANLY)


@given(STATUSES)
def test_predicates_agree_with_the_sets_for_strings_members_and_runs(s):
    for value in (s, s.value, {"status": s.value}):
        assert is_live(value) == (s in LIVE) == s.is_live
        assert is_final(value) == (s in FINAL) == s.is_final
        assert is_live(value) != is_final(value)
    assert not is_live(None) and not is_final(None) and not is_live("bogus")


@given(RUNS, st.booleans())
def test_resume_rule(run, has_checkpoint):
    ok = can_resume(run, has_checkpoint=has_checkpoint)
    assert ok == (run["status"] in RESUMABLE and (has_checkpoint or run["epochs_done"] == 0))
    if ok:  # what the Runs page offers, the job submitter and the pipeline accept
        assert resume_refusal(run) is None


@given(RUNS, st.booleans(), st.booleans())
def test_resume_refusals(run, more_epochs, own_process):
    why = resume_refusal(run, more_epochs=more_epochs, own_process=own_process)
    s = RunStatus(run["status"])
    if s.is_live:
        assert (why is None) == own_process and (own_process or "cannot run twice" in why)
    elif s == RunStatus.FINISHED:
        assert (why is None) == more_epochs and (more_epochs or "already finished" in why)
    elif s == RunStatus.IMPORTED:
        assert "imported model" in why
    else:
        assert why is None


def test_the_store_refuses_an_unknown_status(tmp_path):
    store = RunStore(tmp_path, actor=SYSTEM)
    from builder.graph.templates import load_template

    rid = store.create_run(load_template("mlp"), "moons", {}, {"epochs": 1})
    with pytest.raises(RunStoreError, match="unknown run status"):
        store.update_status(rid, "done")
    store.update_status(rid, RunStatus.STOPPED, "by hand")
    run = store.get(rid)
    assert run["status"] == "stopped" and type(run["status"]) is str and run["finished_at"]


# ----------------------------------------------------------------------------- one home: no literal status sets
def _is_status(node: ast.AST) -> bool:
    """A status written out: a string constant that is a stored status, or ``RunStatus.X``."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str) and node.value in STORED
    return (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "RunStatus"
            and node.attr in RunStatus.__members__)


def status_collections(source: str) -> list[tuple[int, str]]:
    """(line, code) of every tuple, list or set of two or more items that are all statuses."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)) and len(node.elts) >= 2 and all(
                _is_status(e) for e in node.elts):
            out.append((node.lineno, ast.unparse(node)[:80]))
    return out


def test_the_scan_finds_status_tuples():
    src = ('a = x in ("queued", "running")\nb = {RunStatus.STOPPED, RunStatus.FAILED}\n'
           'c = ["finished", "other"]\nd = ("queued",)\ne = ("pause", "stop")\n')
    assert sorted(line for line, _ in status_collections(src)) == [1, 2]


def test_no_status_tuple_outside_the_status_module():
    """Sets of statuses live in builder/training/run_status.py only; everyone else uses its sets and predicates."""
    found = []
    for folder in ("builder", "app_pages"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel == "builder/training/run_status.py":
                continue
            found += [f"{rel}:{line}: {code}" for line, code in status_collections(path.read_text(encoding="utf-8"))]
    assert not found, "use builder.runs.status (LIVE, FINAL, RESUMABLE, is_live, ...):\n" + "\n".join(found)
