"""The typed run record: the store returns a Run (info typed, project/config/dataset parsed once, still readable as
the old row mapping), and a pipeline pass parses its project once and analyses its graph once."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import builder.graph.project as project_module
import builder.graph.shapes as shapes_module
from builder.data.access import SYSTEM, Actor
from builder.errors import ProjectFormatError, RunStoreError
from builder.graph.project import Project
from builder.graph.templates import load_template
from builder.runs.pipeline import load_run, resume_run, run_training
from builder.runs.record import Run, RunInfo
from builder.runs.store import RunStore
from builder.training.config import TrainConfig
from builder.training.run_status import RunStatus
from tests.fuzz_budget import budget
from tests.helpers import count_calls


@pytest.fixture
def store(tmp_path):
    return RunStore(tmp_path / "ws", actor=SYSTEM)


def test_the_store_returns_typed_records_that_still_read_as_the_row(store):
    rid = store.create_run(load_template("mlp"), "moons", {"n_samples": 100}, {"epochs": 2}, name="net",
                           owner="user:ann", tags={"k": "v"})
    run = store.get(rid)
    assert isinstance(run, Run) and isinstance(run.info, RunInfo)
    assert run.id == rid and run.status is RunStatus.QUEUED and run.owner == "user:ann" and run.info.name == "net"
    assert isinstance(run.project, Project) and isinstance(run.config, TrainConfig) and run.config.epochs == 2
    assert run.dataset.name == "moons" and run.tags == {"k": "v"}
    # the old dict's answers, unchanged: stored columns, JSON decoded
    assert run["status"] == "queued" and run.get("config")["epochs"] == 2 and run["project"]["graph"]["nodes"]
    assert run == dict(run) and json.loads(json.dumps(dict(run)))["id"] == rid and "project" in run
    with pytest.raises(TypeError):
        run["status"] = "finished"  # a record is read-only
    listed = store.list_runs()
    assert [r.id for r in listed] == [rid] and all(isinstance(r, Run) for r in listed)
    assert "project" not in listed[0]  # a listed record carries no project; asking for it says where it is
    with pytest.raises(RunStoreError, match=r"RunStore.get"):
        _ = listed[0].project


def test_a_record_parses_its_project_once(store, monkeypatch):
    rid = store.create_run(load_template("mlp"), "moons", {}, {"epochs": 1})
    run = store.get(rid)
    parses = count_calls(monkeypatch, project_module, "parse_project")
    graphs = {id(run.project.graph) for _ in range(3)}
    assert len(parses) == 1 and len(graphs) == 1 and Run.of(run) is run and Run.of(run).project is run.project
    again = Run.of(dict(run))  # a row dict coerced at the door is a new record: parsed again, once
    assert again.project.graph.model_dump() == run.project.graph.model_dump() and len(parses) == 2


def test_a_damaged_record_fails_where_it_is_read():
    run = Run({"id": "20261122-000000-abcdef", "status": "exploded", "project": {"graph": 3}})
    assert run["status"] == "exploded"  # the mapping reads what is stored
    with pytest.raises(RunStoreError, match="unknown run status; received: 'exploded'"):
        _ = run.status
    with pytest.raises(ProjectFormatError):
        _ = run.project


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                     max_leaves=8)


@settings(max_examples=budget(50), deadline=None)
@given(st.dictionaries(st.text(max_size=12), _JSON, max_size=8))
def test_a_record_reads_as_the_row_it_was_made_from(row):
    run = Run(row)
    assert run == row and dict(run) == row and len(run) == len(row) and {**run} == row
    assert all(run.get(k) == v and run[k] == v for k, v in row.items())


def test_a_pass_from_project_to_trained_run_parses_once_and_analyses_once(store, monkeypatch):
    project = json.loads(load_template("mlp").to_json())  # as a job or a file hands it: not yet parsed
    parses = count_calls(monkeypatch, project_module, "parse_project")
    analyses = count_calls(monkeypatch, shapes_module, "infer_shapes")
    result = run_training(project, "moons", {"epochs": 1, "seed": 0}, store=store, adapt=True, owner="user:ann")
    assert result.status == "finished"
    assert len(parses) == 1, "the project is parsed once from the door to the model card"
    assert len(analyses) == 1, "prepare, adapt, compat, compile and the recorded size share one analysis"
    run = store.as_actor(Actor("user:ann")).get(result.run_id)
    card = store.folder(run.id).model_card.read_text(encoding="utf-8")
    assert "## Objective" in card and "cross-entropy" in card  # written from the project handed on
    assert run.environment["params"] == run.params > 0

    del parses[:], analyses[:]
    resumed = resume_run(run.id, store.as_actor(Actor("user:ann")), overrides={"epochs": 2})
    assert resumed.status == "finished"
    assert len(parses) == 1 and len(analyses) == 1, "a resume reads its record's project once and compiles once"

    del parses[:], analyses[:]
    load_run(store, store.get(run.id))  # a record in hand: its project parsed once, its graph analysed once
    assert len(parses) == 1 and len(analyses) == 1


def test_a_job_on_a_gpu_host_parses_its_project_and_analyses_its_graph_once(store, monkeypatch):
    """On a GPU host the job process estimates the graph's GPU memory (job_need) before it trains: the same
    job body (run_job, in this process) with a GPU reported and its slot given on the CPU analyses the graph once
    for the estimate and the training."""
    import os
    import signal

    import torch

    from builder.jobs import queue
    from builder.training.gpus import Gpu

    monkeypatch.setattr(queue, "launch_warm", lambda *a: os.getpid())  # recorded, not launched
    monkeypatch.setattr(queue, "GPU_QUERY", lambda: [Gpu(0, free=80 * 2**30, total=80 * 2**30)])
    needs, wait = [], queue._wait_for_slot
    monkeypatch.setattr(queue, "_wait_for_slot", lambda s, rid, need=0, gpus=None, **k: (needs.append(need), wait(s, rid))[1])
    rid = queue.submit(store, queue.JobSpec(project=json.loads(load_template("mlp").to_json()), dataset="moons",
                                            dataset_options={"n_samples": 100}, config={"epochs": 1}, adapt=True))
    real_analyses = count_calls(monkeypatch, shapes_module, "analyse")  # analyses made, memo answers not counted
    parses = count_calls(monkeypatch, project_module, "parse_project")
    handler, threads = signal.getsignal(signal.SIGTERM), torch.get_num_threads()
    try:
        assert queue.run_job(store.workspace, rid) == 0
    finally:
        signal.signal(signal.SIGTERM, handler)
        torch.set_num_threads(threads)
    assert store.get(rid)["status"] == "finished"
    assert len(needs) == 1 and needs[0] > 0, "the job estimated its GPU memory"
    assert len(real_analyses) == 1, "the GPU estimate and the training share one analysis"
    assert len(parses) == 1, "the GPU estimate and the training read one parsed project"
