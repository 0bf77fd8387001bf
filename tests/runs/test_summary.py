"""What the pages show about runs: labels, the canvas's run, best epochs, the dataset to reopen, predictions."""

from __future__ import annotations

import torch

from builder.data import predict
from builder.data.access import SYSTEM
from builder.graph.templates import load_template
from builder.runs import summary
from builder.runs.store import RunStore, graph_hash


def test_best_epoch_and_label():
    eps = [{"epoch": 1, "val_loss": 0.5, "val_metric": 0.8, "metric_name": "accuracy"},
           {"epoch": 2, "val_loss": float("nan")}, {"epoch": 3, "val_loss": 0.3, "val_metric": 0.9,
                                                    "metric_name": "accuracy"}]
    best = summary.best_epoch(eps)
    assert best["epoch"] == 3 and summary.best_epoch([]) == {}
    run = {"id": "20261122-000000-abcdef", "name": "net", "dataset_name": "csv",
           "dataset_options": {"path": "/w/owners/x/uploads/f.csv"}, "config": {"lr": 0.01, "epochs": 5,
                                                                              "batch_size": 32}}
    assert summary.run_label(run, best) == "net · csv: f.csv · lr 0.01 · 5 ep · bs 32 · best accuracy 90.0% · …abcdef"
    # a searched learning rate as the Runs table shows it (4 digits): the picker under that table said 0.00643117
    searched = {**run, "config": {**run["config"], "lr": 0.006431170338945217}}
    assert " · lr 0.006431 · " in summary.run_label(searched), summary.run_label(searched)
    # a GAN's or VAE's metric is its loss: its label says no "best loss 1.964" beside nothing else
    gan = summary.best_epoch([{"epoch": 1, "val_loss": 1.9639, "val_metric": 1.9639, "metric_name": "loss"}])
    assert summary.best_metric(gan) is None and summary.best_metric(best) == ("accuracy", 0.9)
    assert "best" not in summary.run_label(run, gan)
    assert summary.dataset_spec_of_run(run)["kind"] == "csv"
    assert summary.dataset_spec_of_run({"dataset_name": "moons", "dataset_options": {"seed": 0, "noise": 0.1}}) == \
        {"kind": "builtin", "name": "moons", "options": {"noise": 0.1}}


def test_the_canvas_run_is_matched_by_graph_and_owner(tmp_path):
    store = RunStore(tmp_path, actor=SYSTEM)
    mlp = load_template("mlp")
    moved = mlp.model_copy(deep=True)
    moved.graph.nodes[0].position = None  # positions do not count
    assert graph_hash(moved.graph) == graph_hash(mlp.graph)
    a = store.create_run(mlp, "moons", {}, {"epochs": 1}, owner="alice")
    store.finish(a, "finished")
    b = store.create_run(mlp, "moons", {}, {"epochs": 1}, owner="alice")
    store.create_run(mlp, "moons", {}, {"epochs": 1}, owner="bob")
    store.create_run(load_template("cnn"), "digits", {}, {"epochs": 1}, owner="alice")
    assert summary.current_run(store, moved.graph, "alice")["id"] == b  # the live (queued) one first
    assert summary.finished_run(store, mlp.graph, "alice") is None  # no weights on disk
    store.weights_path(a).write_bytes(b"x")
    assert summary.finished_run(store, mlp.graph, "alice")["id"] == a
    assert summary.current_run(store, load_template("resnet").graph, "alice") is None


def test_a_run_of_a_template_as_loaded_is_still_the_canvas_run_once_the_canvas_names_its_ports(tmp_path):
    """A usability review pressed the guide's Train on the MLP template at once (the run stored the template's
    edges, without ports), came back to Build and clicked a layer: the canvas sent the same edges back with their
    ports (out, in), and Build › Weights and Try it said "train this network" seconds after it trained."""
    store = RunStore(tmp_path, actor=SYSTEM)
    mlp = load_template("mlp")
    assert all(e.source_port is None and e.target_port is None for e in mlp.graph.edges)  # as shipped
    rid = store.create_run(mlp, "moons", {}, {"epochs": 1}, owner="alice")
    store.finish(rid, "finished")
    store.weights_path(rid).write_bytes(b"x")
    canvas = mlp.graph.model_copy(update={"edges": [e.model_copy(update={"source_port": "out", "target_port": "in"})
                                                    for e in mlp.graph.edges]})  # what the browser sends
    assert {(e.source_port, e.target_port) for e in canvas.edges} == {("out", "in")}
    assert summary.finished_run(store, canvas, "alice")["id"] == rid
    assert summary.current_run(store, canvas, "alice")["id"] == rid
    # and the other way round: a run of the canvas's graph is the run of the graph as a project file writes it
    named = store.create_run(mlp.model_copy(update={"graph": canvas}), "moons", {}, {"epochs": 1}, owner="bob")
    assert summary.current_run(store, mlp.graph, "bob")["id"] == named
    wired = canvas.model_copy(update={"edges": [canvas.edges[0].model_copy(update={"target": "fc2"}),
                                                *canvas.edges[1:]]})
    assert summary.current_run(store, wired, "alice") is None  # another network is not matched


def test_predictions_for_one_logit_and_regression():
    X = torch.randn(10, 3)
    one = torch.nn.Linear(3, 1)
    pred, conf = predict(one, X, "binary").pair()
    assert pred.shape == (10,) and bool(((conf >= 0.5) & (conf <= 1)).all())
    pred, value = predict(one, X, "regression").pair()
    assert (pred == 0).all() and torch.allclose(value, one(X)[:, 0].detach())
    pred, conf = predict(torch.nn.Linear(3, 4), X, "multiclass").pair()
    assert pred.max() < 4 and conf.shape == (10,)


def test_a_runs_duration_counts_only_the_time_it_ran(tmp_path):
    """Ran 40 s, stopped for an hour, resumed for 20 s: 60 s, not the hour between start and finish."""
    from datetime import datetime, timedelta, timezone

    store = RunStore(tmp_path, actor=SYSTEM)
    rid = store.create_run(load_template("mlp"), "moons", {}, {"epochs": 1})
    now = datetime.now(timezone.utc)

    def ran_since(seconds: float) -> None:  # the clock as if the current running stretch began `seconds` ago
        store.set_environment(rid, running_since=(now - timedelta(seconds=seconds)).isoformat())

    store.update_status(rid, "running")
    ran_since(40)
    store.update_status(rid, "stopped")
    store.update_status(rid, "running")
    ran_since(20)
    store.finish(rid, "finished")
    start = (now - timedelta(hours=1)).isoformat()
    store._write("UPDATE runs SET started_at = ? WHERE id = ?", (start, rid))  # began an hour ago
    assert 59 <= summary.duration_s(store.get(rid)) <= 62


def test_a_scaled_targets_error_is_shown_in_its_own_units_and_named():
    """The Runs table's best val metric of the RNN forecaster on sunspots read 1.2496: the MAE in standard deviations
    of the scaled series (std 34.2), with no name (the column's help said accuracy or R²)."""
    run = {"dataset_info": {"target_std": [34.197], "target_mean": [42.9]},
           "best": {"val_metric": 1.2496, "metric_name": "mae"}}
    assert summary.best_metric_text(run) == "MAE 42.73"  # 1.2496 × 34.197, 4 digits as every page writes it
    assert "best MAE 42.73" in summary.run_label({**run, "name": "f", "id": "x"})
    two = {**run, "dataset_info": {"target_std": [34.0, 2.0]}}
    assert summary.best_metric_text(two) == "MAE 1.25 (scaled)"
    acc = {"best": {"val_metric": 0.9, "metric_name": "accuracy"}, "dataset_info": {}}
    assert summary.best_metric_text(acc) == "Accuracy 90.0%"  # as the Train page writes it (0.9000 before)
    f1 = {"best": {"val_metric": 0.8, "metric_name": "macro_f1"}, "name": "f", "id": "x"}
    assert "best macro F1 0.800" in summary.run_label(f1)  # "macro_f1 0.8000" before
    assert summary.best_metric_text({"best": {"val_metric": 2.0, "metric_name": "loss"}}) is None


def test_a_text_upload_run_is_named_by_its_file_not_its_upload_id(tmp_path):
    """A job reloads the data from its options, which name the upload by id: a text run on my_reviews.csv was
    shown as 'text: upload:23bdceb4...csv' on the Train page's progress line, in the Runs table and in Explain's
    model picker (the Train page's header said 'my_reviews.csv'). The project's Data page spec names the file."""
    from builder.data import load_dataset
    from builder.data.uploads import UploadFolder
    from builder.graph.templates import load_template
    from builder.runs.pipeline import prepare

    uploads = UploadFolder(tmp_path / "up")
    rows = "text,label\n" + "".join(f"the film was {'good' if i % 2 else 'bad'},{i % 2}\n" for i in range(40))
    ref = uploads.save("my_reviews.csv", rows.encode())
    spec = {"kind": "text", "name": "my_reviews.csv", "file": ref, "task": None,
            "options": {"target": "label", "text_column": "text", "max_length": 20}}
    page = load_dataset(spec, uploads=uploads)  # what the Data page loaded; a job gets its reload arguments
    name, opts = page.info.reload_args()
    project = load_template("sentiment_lstm").model_copy(update={"dataset": spec})
    _, ds, _ = prepare(project, name, {"epochs": 1}, dataset_options=opts, uploads=uploads)
    assert ds.info.name == "text:my_reviews.csv", ds.info.name
    run = {"dataset_name": name, "dataset_options": ds.info.options, "dataset_info": {"name": ds.info.name}}
    assert summary.dataset_label(run) == "text: my_reviews.csv"
    # the rows of RunStore.list_runs (the Runs page's picker, Explain's model picker) carried no dataset_info: they
    # named it "csv: upload:8a817a8e...csv" (issue 29); an upload's row carries it
    store = RunStore(tmp_path / "ws", actor=SYSTEM)
    store.create_run(project, name, ds.info.options, {"epochs": 1}, dataset_info=ds.info.to_dict())
    store.create_run(load_template("mlp"), "moons", {}, {"epochs": 1})
    rows = store.list_runs()
    assert [summary.dataset_label(r) for r in rows] == ["moons", "text: my_reviews.csv"]
    assert rows[0].get("dataset_info") is None and "upload:" not in summary.run_label(rows[1])

