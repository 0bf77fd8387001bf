"""The run folder: every file of runs/<id>/ named in one class, with the names older workspaces hold."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from builder.data.access import SYSTEM
from builder.errors import RunStoreError
from builder.graph.templates import load_template
from builder.runs.modelcard import read_model_card
from builder.runs.store import RunStore
from builder.training.run_folder import RunFolder

ROOT = Path(__file__).resolve().parents[2]


def test_file_names_are_those_of_existing_workspaces(tmp_path):
    f = RunFolder(tmp_path / "runs" / "20261121-104000-ab12cd")
    rel = {k: getattr(f, k).relative_to(f.path).as_posix() for k in (
        "project", "checkpoint", "weights", "dataset", "job_spec", "job_log", "live_attributions", "model_card",
        "imported", "onnx", "onnx_int8", "quantization")}
    assert rel == {"project": "project.json", "checkpoint": "checkpoints/last.safetensors",
                   "weights": "model.safetensors", "dataset": "dataset.safetensors", "job_spec": "job.json",
                   "job_log": "job.log", "live_attributions": "live_attributions.safetensors",
                   "model_card": "model_card.md", "imported": "imported.json", "onnx": "exports/model.onnx",
                   "onnx_int8": "exports/model.int8.onnx", "quantization": "exports/quantization.json"}
    assert f.run_id == "20261121-104000-ab12cd" and Path(f) == f.path and f == RunFolder(f.path)
    assert f.export("model.py") == f.exports / "model.py"


@given(st.sampled_from(["", ".", "..", "../x", "a/b", "/etc/passwd", "sub/model.onnx"]))
def test_an_export_name_cannot_leave_the_exports_folder(name):
    with pytest.raises(ValueError, match="plain file name"):
        RunFolder("/ws/runs/x").export(name)


def test_the_store_hands_out_folders(tmp_path):
    store = RunStore(tmp_path, actor=SYSTEM)
    rid = store.create_run(load_template("mlp"), "moons", {}, {"epochs": 1})
    folder = store.folder(rid)
    assert folder.path == store.run_dir(rid) and folder.project.is_file() and folder.checkpoints.is_dir()
    assert store.checkpoint_path(rid) == folder.checkpoint and store.weights_path(rid) == folder.weights
    assert not folder.has_checkpoint and not folder.has_weights
    folder.checkpoint.write_bytes(b"x")
    folder.weights.write_bytes(b"x")
    assert folder.has_checkpoint and folder.has_weights
    with pytest.raises(RunStoreError, match="invalid run id"):
        store.folder("../../etc")


def test_job_spec_and_model_card_readers(tmp_path):
    store = RunStore(tmp_path, actor=SYSTEM)
    rid = store.create_run(load_template("mlp"), "moons", {}, {"epochs": 1}, name="spec run")
    folder = store.folder(rid)
    assert store.job_spec(rid) is None  # a CLI run has none
    folder.job_spec.write_text("{not json", encoding="utf-8")
    assert store.job_spec(rid) is None
    folder.job_spec.write_text(json.dumps({"callbacks": ["live_attributions"], "tags": {"study": "s"}}))
    assert store.job_spec(rid)["tags"] == {"study": "s"}
    assert folder.read_model_card() is None
    card = read_model_card(store, rid)  # a live run: made from the store
    assert card.startswith("# Model card: spec run") and not folder.model_card.exists()
    store.finish(rid, "finished")  # writes the card into the folder
    assert folder.read_model_card() == read_model_card(store, rid) and folder.model_card.is_file()


def test_nobody_else_joins_file_names_onto_a_run_folder():
    """Every path into a run folder comes from RunFolder: no ``run_dir(...) / "name"`` joins in builder/ or
    app_pages/, and the folder's file names are spelled only in builder/training/run_folder.py."""
    names = [RunFolder.CHECKPOINT, RunFolder.WEIGHTS, RunFolder.DATASET, RunFolder.JOB_SPEC, RunFolder.JOB_LOG,
             RunFolder.LIVE_ATTRIBUTIONS, RunFolder.MODEL_CARD, RunFolder.QUANTIZATION, RunFolder.ONNX_INT8]
    spelled = re.compile("|".join(re.escape(f'"{n}"') for n in names))
    join = re.compile(r"run_dir\([^)]*\)\s*/")
    found = []
    for folder in ("builder", "app_pages"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel in ("builder/training/run_folder.py", "builder/_moved.py"):
                continue
            for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                other = "file_name=" in line or "Hugging Face folder's file" in line  # a download's, a model folder's
                if join.search(line) or (spelled.search(line) and not other):
                    found.append(f"{rel}:{i}: {line.strip()[:90]}")
    assert not found, "ask builder.runs.folder.RunFolder (store.folder(run_id)) for the path:\n" + "\n".join(found)


def test_a_run_folder_as_downloaded_names_no_owner_id_and_no_server_path(tmp_path, monkeypatch):
    """Every file a job, an int8 quantization and the model card write into a run folder, zipped as the app zips
    files (app_pages.fmt.zip_dir_bytes), carries the owner's pseudonym at most: never the raw owner id (a cookie's
    key) nor a server path (quantization.json named both ONNX files by their full paths)."""
    import zipfile

    from app_pages.fmt import zip_dir_bytes
    from builder.interchange.onnx_export import quantize_run
    from builder.jobs.queue import JobSpec, submit, wait
    from builder.runs.modelcard import write_model_card

    monkeypatch.setenv("LAYERLAB_LAUNCHER_IDLE_S", "0")  # one cold job: no launcher left behind
    monkeypatch.setenv("LAYERLAB_TORCH_THREADS", "1")
    ws = tmp_path / "server ws" / "layerlab"
    store = RunStore(ws, actor=SYSTEM)
    owner = "anon:" + "c0ffee42" * 4
    rid = submit(store, JobSpec(project=load_template("mlp").model_dump(), dataset="moons", config={"epochs": 2},
                                dataset_options={"n_samples": 300}, owner=owner))
    assert wait(store, [rid], 300) == {rid: "finished"}
    quantize_run(store, rid)
    write_model_card(store, rid)
    folder = store.folder(rid)
    files = {p.relative_to(folder.path).as_posix(): p.read_bytes() for p in folder.path.rglob("*") if p.is_file()}
    assert {"job.json", "model_card.md", "exports/quantization.json", "exports/model.int8.onnx"} <= set(files)
    with zipfile.ZipFile(__import__("io").BytesIO(zip_dir_bytes(files))) as z:
        for name in z.namelist():
            data = z.read(name)
            for secret in (owner, "c0ffee42", str(ws), str(ws.resolve()), str(tmp_path), "server ws"):
                assert secret.encode() not in data, f"{name} names {secret!r}"
    q = json.loads(files["exports/quantization.json"])
    assert (q["fp32_path"], q["int8_path"]) == ("exports/model.onnx", "exports/model.int8.onnx")


def test_a_report_is_kept_only_by_whoever_controls_the_run(tmp_path, monkeypatch):
    """Explain's "Keep with the run" (calibration, robustness) wrote into any run its session could read: a
    teacher explaining a student's class run, or anyone in shared mode, set the temperature that divides that
    run's exported logits (keep_report asked the store to read, not to control)."""
    from dataclasses import dataclass

    from builder.data.access import Actor
    from builder.errors import AccessDenied, ExplainError
    from builder.interpret.calibration import stored_temperature
    from builder.training.run_folder import keep_report

    @dataclass
    class Report:
        run_id: str
        temperature: float = 5.0

        def to_dict(self) -> dict:
            return {"run_id": self.run_id, "temperature": self.temperature}

    monkeypatch.delenv("LAYERLAB_SHARED_RUNS", raising=False)
    store = RunStore(tmp_path, actor=SYSTEM)
    rid = store.create_run(load_template("mlp"), "moons", {}, {"epochs": 1}, owner="user:ann", class_id="c-1")
    readers = [Actor("user:bob", shared=True), Actor("user:t", students=frozenset({"user:ann"}),
                                                     teaching=frozenset({"c-1"}))]
    for who in readers:
        other = store.as_actor(who)
        assert other.get(rid)["id"] == rid  # it reads the run
        for what in ("calibration", "robustness"):
            with pytest.raises(AccessDenied, match=f"no run '{rid}' of yours"):
                keep_report(other, Report(rid), what)
    folder = store.folder(rid)
    assert not folder.calibration.exists() and not folder.robustness.exists()
    with pytest.raises(ExplainError, match="no calibration.json"):
        stored_temperature(store, rid)
    keep_report(store.as_actor(Actor("user:ann")), Report(rid), "calibration")  # its owner keeps it
    assert stored_temperature(store, rid) == 5.0


def test_files_a_hostile_job_leaves_in_its_run_folder_read_back_as_nothing(tmp_path, monkeypatch):
    """A job's process writes its run folder; one its model turned against it could leave JSON nested 200,000
    deep (json.loads: RecursionError), a number no float holds (float(): OverflowError) or a file of gigabytes, and
    the Runs, Explain and Train pages of whoever reads the run (its owner, the teacher of its class, everyone in
    shared mode) raised while reading it back. Each reader now answers "no report"."""
    from builder.training import run_folder as rf
    from builder.training.forecasts import read_forecasts
    from builder.training.health import read_health
    from builder.training.text_samples import read_text_samples

    folder = rf.RunFolder(tmp_path)
    deep = "[" * 200_000 + "]" * 200_000
    for path in (folder.robustness, folder.calibration, folder.prune, folder.job_spec, folder.health,
                 tmp_path / "forecast.json", tmp_path / "text_samples.json"):
        path.write_text('{"windows": ' + deep + "}")
    folder.latency.write_text('{"per_node": {"fc1": ' + "9" * 400 + ', "fc2": 0.5}}')
    assert folder.read_robustness() is folder.read_calibration() is folder.read_prune() is None
    assert folder.read_job_spec() is None and read_health(tmp_path) is None
    assert read_forecasts(tmp_path / "forecast.json") == {} and read_text_samples(tmp_path / "text_samples.json") == []
    assert folder.read_latency()["per_node"] == {"fc2": 0.5}
    folder.health.write_text('{"events": 5, "every": "x"}')
    assert read_health(tmp_path) is None
    folder.robustness.write_text('{"eps": [0.1, 0.2, 0.3]}')
    assert folder.read_robustness() == {"eps": [0.1, 0.2, 0.3]}
    monkeypatch.setattr(rf, "MAX_REPORT_BYTES", 10)
    assert folder.read_robustness() is None  # over the bound: not read at all


def test_reports_a_hostile_job_wrote_are_read_as_the_types_layerlab_writes(tmp_path):
    """Well-formed JSON of the wrong shape: the pages that draw a run's reports (its owner's, a teacher's, everyone's
    in shared mode) formatted a text as a number, subscripted a number, or drew ten thousand forecast windows as as
    many subplots. Read back, each field has LayerLab's type, or the entry is left out."""
    from builder.training import run_folder as rf
    from builder.training.forecasts import KEPT_WINDOWS, forecast_figure, read_forecasts

    folder = rf.RunFolder(tmp_path)
    folder.prune.write_text(json.dumps({"parent_id": {"a": 1}, "method": 3, "amount": "all", "finetune_epochs": None,
                                        "groups": [7, {"members": "fc"}], "sparsity": {"fc": "half", "fc2": 0.5},
                                        "before": {"params": [1], "test": {"accuracy": "good"}}, "after": {}}))
    p = folder.read_prune()
    assert (p["parent_id"], p["method"], p["amount"], p["finetune_epochs"], p["groups"]) == ("?", "3", 0, 0, [])
    assert p["sparsity"] == {"fc2": 0.5} and p["before"] == {"test": {}} and p["after"] == {}
    window = {"inputs": [[1.0], [2.0]], "targets": [[3.0]], "forecast": [[2.5]]}
    (tmp_path / "forecast.json").write_text(json.dumps({"columns": ["y"], "windows": [
        {"inputs": [["a"]], "targets": [[1]], "forecast": [[1]]}, *[window] * 10_000]}))
    got = read_forecasts(tmp_path / "forecast.json")
    assert len(got["windows"]) == KEPT_WINDOWS and got["columns"] == ["y"]
    assert len(forecast_figure(got).data) == 3 * KEPT_WINDOWS


def test_a_report_is_bounded_by_what_is_read_not_by_a_size_read_before(tmp_path, monkeypatch):
    """A job renames a new report over the one a page opens: the size the page read before opening was the old
    file's, and a large file renamed in between was read whole into the server. The bound holds on what is read
    through the one handle (here the size read first is the old, small file's)."""
    import builder.training.run_folder as rf

    folder = rf.RunFolder(tmp_path)
    folder.robustness.write_text(json.dumps({"eps": [0.1] * 100}))
    real = Path.stat

    def stale(self, *args, **kwargs):  # what stat said just before the big file was renamed over the small one
        st = real(self, *args, **kwargs)
        return os.stat_result((st.st_mode, *st[1:6], 5, *st[7:])) if self == folder.robustness else st

    monkeypatch.setattr(Path, "stat", stale)
    monkeypatch.setattr(rf, "MAX_REPORT_BYTES", 100)
    assert folder.read_robustness() is None


def test_a_named_pipe_as_a_report_is_no_report_and_keeps_no_page_waiting(tmp_path):
    """A named pipe where a report should be (a confined job makes none; a job outside Landlock could): opened, it
    waited for a writer for ever, and the page reading it with it. It is refused as soon as it is opened."""
    import builder.training.run_folder as rf

    folder = rf.RunFolder(tmp_path)
    os.mkfifo(folder.robustness)
    assert folder.read_robustness() is None
    assert rf.read_json_file(folder.robustness) is None


def test_a_model_card_or_tokenizer_past_the_bound_is_not_read(tmp_path, monkeypatch):
    """The model card and a run's tokenizer are text its job wrote: read bounded too (they were read whole)."""
    import builder.training.run_folder as rf

    folder = rf.RunFolder(tmp_path)
    folder.model_card.write_text("# card\n" + "x" * 200)
    assert folder.read_model_card().startswith("# card")
    monkeypatch.setattr(rf, "MAX_REPORT_BYTES", 100)
    assert folder.read_model_card() is None
    assert rf.read_text_file(folder.model_card, limit=1000).startswith("# card")


def test_a_job_spec_to_run_that_cannot_be_read_is_refused_with_its_fix(tmp_path):
    """A job starts from its job.json, which its earlier process could have replaced: read bounded, and a missing,
    oversized or non-object file stops the job with one line, not a traceback or an allocation of its size."""
    import builder.training.run_folder as rf

    folder = rf.RunFolder(tmp_path / "20261127-120000-abcdef")
    folder.path.mkdir()
    for text in (None, "[1, 2]", '{"project": {}}' + " " * (rf.MAX_REPORT_BYTES + 1)):
        if text is not None:
            folder.job_spec.write_text(text)
        with pytest.raises(RunStoreError, match=r"run 20261127-120000-abcdef: its job spec \(job.json\) is missing "
                                                r"or unreadable\. Fix: start a new run"):
            folder.job_spec_to_run()
    folder.job_spec.write_text('{"project": {}, "dataset": "moons"}')
    assert folder.job_spec_to_run() == {"project": {}, "dataset": "moons"}


def test_a_named_pipe_as_weights_keeps_no_download_waiting(tmp_path):
    """The Runs page's Weights download reads the run's weights file: a named pipe there (a job outside Landlock)
    kept it waiting for a writer for ever. It reads as no weights yet."""
    import builder.training.run_folder as rf

    folder = rf.RunFolder(tmp_path)
    os.mkfifo(folder.weights)
    assert folder.read_weights() is None


def test_more_files_a_hostile_job_wrote_are_read_as_the_types_layerlab_writes(tmp_path, monkeypatch):
    """A job's health log, latency record, live attributions, decision-boundary grid, epoch extras and tracking
    state, of the right format and the wrong shape: each stopped the page of whoever read the run (a list where a
    statistic goes, a spread of three numbers, more epochs than frames, a grid of 10^9 classes whose colours were
    listed), or held the server's memory (2,000,000 empty frames: 718 MiB as Python objects). Read back, each
    has LayerLab's types and bounds, or is one clear error."""
    import numpy as np
    import torch
    from safetensors.torch import save_file

    from builder.errors import ExplainError
    from builder.graph.cost import NodeCost, cost_overlay, latency_note
    from builder.interpret import live
    from builder.interpret.boundary import latest_boundary
    from builder.interpret.doctor import diagnose
    from builder.interpret.figures import boundary_figure
    from builder.tracking import TrackingState
    from builder.training.events import typed_event
    from builder.training.health import read_health

    folder = RunFolder(tmp_path)
    folder.health.write_text(json.dumps({"every": "x", "nodes": [{"id": "fc", "type": ["Linear"], "params": "yes"},
                                                                 {"id": "b", "type": "ReLU", "kind": "relu"}],
                                         "samples": [{"step": [1], "epoch": 1, "nodes": {"fc": {"grad_norm": [1, 2],
                                                      "act_std": "inf", "dead": {"x": 1}}, "b": [3]}}]}))
    log = read_health(tmp_path)
    assert log.nodes[0] == {"id": "fc", "type": "", "kind": "", "params": False, "output": False}
    assert log.samples == [{"step": 0, "epoch": 1, "nodes": {"fc": {"act_std": "inf"}}}]
    diagnose(log, {"lr": 0.1})  # (it raised AttributeError on the list)
    folder.latency.write_text(json.dumps({"per_node": {"fc": 0.001}, "spread": {"fc": [1, 2, 3]}, "threads": [1],
                                          "load": "high"}))
    rec = folder.read_latency()
    assert rec["spread"] == {} and rec["threads"] is None and latency_note(rec) is None
    overlay, modes = cost_overlay([NodeCost("fc", "Linear", 30, 30, 40)], rec)  # (it raised AttributeError)
    assert "latency" in modes and "no spread recorded" in overlay["fc"]["latency"][0], overlay

    def frames(path, **t):
        save_file({k: torch.as_tensor(v) for k, v in t.items()}, str(path), metadata={"method": "saliency"})
        return path

    many = frames(tmp_path / "many.safetensors", epochs=np.arange(200_000), attributions=np.zeros((200_000, 0)),
                  inputs=np.zeros((0, 2)), indices=np.zeros(0, dtype=np.int64))
    assert len(live.load_frames(many)["epochs"]) == live.MAX_PLAYED  # thinned evenly, first and newest kept
    assert live.load_frames(many)["epochs"][-1] == 199_999
    for bad in ({"epochs": np.arange(5), "attributions": np.zeros((3, 2, 4)), "inputs": np.zeros((2, 4)),
                 "indices": np.arange(2)},
                {"attributions": np.zeros((3, 2, 4)), "inputs": np.zeros((2, 4)), "indices": np.arange(2)},
                {"epochs": np.zeros(3), "attributions": np.zeros((3, 2, 4)), "inputs": np.zeros((2, 4)),
                 "indices": np.arange(2)}):
        with pytest.raises(ExplainError, match="not as LayerLab writes them"):
            live.load_frames(frames(tmp_path / "bad.safetensors", **bad))
    grid = {"epoch": 1, "xs": [0, 1], "ys": [0, 1], "kind": "class", "classes": 10**9, "z": [[0, 1], [1, 0]]}
    events = [typed_event({"epoch": 1, "extras": ["boundary"]}), typed_event({"epoch": 2, "extras": {"boundary": grid}})]
    assert latest_boundary(events) == (None, None)
    fine = {**grid, "classes": 3, "points": {"x": [0.5], "y": [0.5], "label": [2]}}
    got, points = latest_boundary([{"extras": {"boundary": fine}}, {"extras": {"boundary": {**fine, "z": "x"}}}])
    assert got["classes"] == 3 and points == {"x": [0.5], "y": [0.5], "label": [2]}
    boundary_figure(got, points)
    folder.tracking.write_text(json.dumps({"https://ml.example.org": {"mlflow_run_id": "../../other", "params": "yes",
                                                                       "steps": [1, "2", True], "status": 3}}))
    state = TrackingState.load(folder, "https://ml.example.org")
    assert (state.mlflow_run_id, state.params, state.steps, state.status) == (None, False, [1], None)
    import builder.training.run_folder as rf

    folder.weights.write_bytes(b"x" * 100)
    monkeypatch.setattr(rf, "MAX_DOWNLOAD_BYTES", 10)
    assert folder.read_weights() is None and "layerlab export --run" in folder.download_refusal(folder.weights)
