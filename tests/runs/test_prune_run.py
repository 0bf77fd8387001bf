"""The prune job (issue 21): the Runs page's Prune is a job like training, recorded by builder.runs.jobs.submit
(queued, parent and prune tags set, quota-checked) and run by run_job, which calls the same prune_run as
``layerlab prune``. Here run_job runs in this process (the detached launch is replaced), so the test is cheap."""

from __future__ import annotations

import os
import signal

import pytest
import torch

from builder import load_template
from builder.data.access import SYSTEM
from builder.errors import LayerLabError, TrainingError
from builder.graph.project import load_project
from builder.jobs import queue as jobs
from builder.jobs.specs import prune_job_spec
from builder.runs.pipeline import run_training
from builder.runs.store import RunStore

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture
def no_launch(monkeypatch):
    """submit records the run; nothing is launched (the test calls run_job itself, which sets this process's
    SIGTERM handler and torch threads: put back afterwards)."""
    monkeypatch.setattr(jobs, "launch_warm", lambda *a: os.getpid())
    handler, threads = signal.getsignal(signal.SIGTERM), torch.get_num_threads()
    yield
    signal.signal(signal.SIGTERM, handler)
    torch.set_num_threads(threads)


def test_a_prune_job_records_the_run_then_prunes_and_fine_tunes_it(tmp_path, no_launch):
    store = RunStore(tmp_path, actor=SYSTEM)
    parent = run_training(load_template("mlp"), "moons", {"epochs": 1, "seed": 0}, store, owner="ann").run_id
    spec = prune_job_spec(store, parent, 0.5, finetune_epochs=1)
    assert spec.kind == "prune" and spec.owner == "ann" and spec.config["epochs"] == 1
    rid = jobs.submit(store, spec)
    run = store.get(rid)
    assert run["status"] == "queued" and run["parent_id"] == parent and run["owner"] == "ann"
    assert run["tags"]["pruned_from"] == parent and store.folder(rid).read_prune() is None
    assert jobs.run_job(tmp_path, rid) == 0
    run = store.get(rid)
    assert run["status"] == "finished" and run["parent_id"] == parent
    assert load_project(run["project"]).graph.node("fc2").params["out_features"] == 16  # the pruned graph
    rep = store.folder(rid).read_prune()
    assert rep["run_id"] == rid and rep["after"]["params"] < rep["before"]["params"]
    assert len(store.metrics(rid)) == 1  # its fine-tune's curve, as a training run's


def test_a_prune_job_without_fine_tuning_records_the_pruned_weights_as_they_are(tmp_path, no_launch):
    """The Runs page's Prune with "Fine-tune epochs" 0 (the widget's minimum; its help: "0 keeps the pruned weights as
    they are") was refused: "invalid training settings: epochs: Input should be greater than or equal to 1" (pydantic's words then), as the
    job's settings were the fine-tune's with 0 epochs. ``layerlab prune --finetune-epochs 0`` worked."""
    store = RunStore(tmp_path, actor=SYSTEM)
    parent = run_training(load_template("mlp"), "moons", {"epochs": 1, "seed": 0}, store, owner="ann").run_id
    rid = jobs.submit(store, prune_job_spec(store, parent, 0.5, finetune_epochs=0))
    assert store.get(rid)["config"] == store.get(parent)["config"]  # nothing trains: the parent's settings
    assert jobs.run_job(tmp_path, rid) == 0
    run = store.get(rid)
    assert run["status"] == "finished" and store.metrics(rid) == [] and store.folder(rid).has_weights
    assert load_project(run["project"]).graph.node("fc2").params["out_features"] == 16
    rep = store.folder(rid).read_prune()
    assert rep["finetune_epochs"] == 0 and rep["after"]["params"] < rep["before"]["params"] and rep["after"]["test"]


def test_a_pruned_run_whose_weights_cannot_be_written_is_failed_not_left_queued(tmp_path, monkeypatch):
    """``layerlab prune`` without fine-tuning records the pruned run, then writes its weights: a write that failed
    (a full disk) left the run queued for ever, counted against its owner's queue."""
    from builder.errors import DiskFullError
    from builder.runs import prune_run as pr

    store = RunStore(tmp_path, actor=SYSTEM)
    parent = run_training(load_template("mlp"), "moons", {"epochs": 1, "seed": 0}, store, owner="ann").run_id

    def full(*a, **k):
        raise DiskFullError("the disk is full: the run's weights need 9 KB more")

    monkeypatch.setattr(pr, "save_weights", full)
    with pytest.raises(DiskFullError):
        pr.prune_run(store, parent, 0.5, finetune_epochs=0)
    (made,) = [r for r in store.list_runs() if r["id"] != parent]
    assert made["status"] == "failed" and "disk is full" in made["message"]


def test_a_prune_job_is_checked_before_anything_is_recorded(tmp_path, no_launch):
    store = RunStore(tmp_path, actor=SYSTEM)
    parent = run_training(load_template("mlp"), "moons", {"epochs": 1, "seed": 0}, store).run_id
    with pytest.raises(LayerLabError, match="criterion"):
        prune_job_spec(store, parent, 0.5, criterion="random")
    with pytest.raises(LayerLabError, match="amount"):
        prune_job_spec(store, parent, 1.5)
    with pytest.raises(LayerLabError, match="channels can be removed"):  # the output layer only: nothing to prune
        prune_job_spec(store, parent, 0.5, nodes=["head"])
    with pytest.raises(TrainingError, match="prune"):
        jobs.submit(store, jobs.JobSpec(project={}, dataset="", kind="prune"))
    assert [r["id"] for r in store.list_runs()] == [parent]


def test_a_prune_job_stops_on_request_and_resumes_as_a_job(tmp_path, no_launch):
    store = RunStore(tmp_path, actor=SYSTEM)
    parent = run_training(load_template("mlp"), "moons", {"epochs": 1, "seed": 0}, store).run_id
    rid = jobs.submit(store, prune_job_spec(store, parent, 0.6, structured=False, finetune_epochs=2))
    jobs.request(store, rid, "stop")  # taken by the fine-tune as it begins
    assert jobs.run_job(tmp_path, rid) == 0
    assert store.get(rid)["status"] == "stopped" and store.folder(rid).read_prune()["after"] == {}
    rid2 = jobs.submit(store, jobs.JobSpec(project={}, dataset="", resume_run=rid))
    assert rid2 == rid and jobs.run_job(tmp_path, rid) == 0
    assert store.get(rid)["status"] == "finished"
    rep = store.folder(rid).read_prune()  # the resumed fine-tune completed the report and the card
    assert rep["after"]["params"] == rep["before"]["params"] and rep["after"]["nonzero"] < rep["before"]["nonzero"]
    assert rep["sparsity"] and min(rep["sparsity"].values()) > 0 and rep["after"]["test"]
    assert f"{rep['after']['nonzero']:,}" in store.folder(rid).model_card.read_text(encoding="utf-8")


def test_the_cli_resumes_a_stopped_unstructured_fine_tune_with_its_mask(tmp_path, no_launch, capsys):
    from builder.cli.main import main

    store = RunStore(tmp_path, actor=SYSTEM)
    parent = run_training(load_template("mlp"), "moons", {"epochs": 1, "seed": 0}, store).run_id
    rid = jobs.submit(store, prune_job_spec(store, parent, 0.6, structured=False, finetune_epochs=2))
    jobs.request(store, rid, "stop")
    assert jobs.run_job(tmp_path, rid) == 0 and store.get(rid)["status"] == "stopped"
    assert main(["runs", "resume", rid, "--workspace", str(tmp_path), "--quiet"]) == 0
    rep = store.folder(rid).read_prune()
    assert store.get(rid)["status"] == "finished" and rep["after"]["nonzero"] < 0.5 * rep["before"]["nonzero"]


def test_another_persons_run_is_pruned_as_the_pruners_job_and_never_from_their_upload(tmp_path, no_launch,
                                                                                       monkeypatch):
    """Shared mode: the Runs page's Prune on another person's run made a job of that person's (refused: "a job runs
    for the actor of the run store"); with the owner given, a run trained on its owner's upload failed at the
    job's start ("Permission denied" on the workspace's key: only its owner's jobs read that file). The pruned run
    is the pruner's, and another person's upload is refused at the door, nothing recorded."""
    from builder.data.access import Actor
    from builder.data.uploads import UploadFolder
    from builder.errors import DatasetError
    from builder.runs.owners import upload_dir

    monkeypatch.setenv("LAYERLAB_SHARED_RUNS", "1")
    ann, bob = "anon:" + "a" * 32, "anon:" + "b" * 32
    system = RunStore(tmp_path, actor=SYSTEM)
    ref = UploadFolder(upload_dir(tmp_path, ann)).save("a.csv", b"x1,x2,y\n" + b"1,2,0\n" * 40)
    on_upload = system.create_run(load_template("mlp"), "csv", {"upload": ref, "target": "y"}, {"epochs": 1},
                                  owner=ann)
    on_moons = system.create_run(load_template("mlp"), "moons", {}, {"epochs": 1}, owner=ann)
    for rid in (on_upload, on_moons):
        system.finish(rid, "finished")
    bobs = RunStore(tmp_path, actor=Actor(bob, shared=True))
    spec = prune_job_spec(bobs, on_moons, 0.5, finetune_epochs=0)
    assert spec.owner == bob  # the pruner's job
    pruned = jobs.submit(bobs, spec)
    assert bobs.get(pruned)["owner"] == bob and bobs.get(pruned)["parent_id"] == on_moons
    before = len(system.list_runs())
    with pytest.raises(DatasetError, match="trained on its owner's uploaded file"):
        jobs.submit(bobs, prune_job_spec(bobs, on_upload, 0.5, finetune_epochs=0))
    assert len(system.list_runs()) == before  # nothing recorded
    annes = RunStore(tmp_path, actor=Actor(ann))
    assert prune_job_spec(annes, on_upload, 0.5, finetune_epochs=0).owner == ann  # its owner may


def test_a_run_recorded_before_upload_ids_is_another_persons_upload_at_the_prune_door(tmp_path, no_launch,
                                                                                      monkeypatch):
    """The door and the job ask one question (:func:`builder.runs.summary.run_data`): a run recorded with its
    upload's path (before upload ids) loads its owner's upload, so another person's prune is refused at the door;
    the door read the path as no upload and recorded a job that failed at its start."""
    from builder.data.access import Actor
    from builder.data.uploads import UploadFolder
    from builder.errors import DatasetError
    from builder.runs.owners import upload_dir

    monkeypatch.setenv("LAYERLAB_SHARED_RUNS", "1")
    ann, bob = "anon:" + "a" * 32, "anon:" + "b" * 32
    system = RunStore(tmp_path, actor=SYSTEM)
    uploads = UploadFolder(upload_dir(tmp_path, ann))
    ref = uploads.save("a.csv", b"x1,x2,y\n" + b"1,2,0\n" * 40)
    old = system.create_run(load_template("mlp"), "csv", {"upload": ref, "target": "y"}, {"epochs": 1}, owner=ann)
    system.update_run(old, dataset_options={"path": str(uploads.resolve(ref)), "target": "y"})
    system.finish(old, "finished")
    bobs = RunStore(tmp_path, actor=Actor(bob, shared=True))
    before = len(system.list_runs())
    with pytest.raises(DatasetError, match="trained on its owner's uploaded file"):
        jobs.submit(bobs, prune_job_spec(bobs, old, 0.5, finetune_epochs=0))
    assert len(system.list_runs()) == before
