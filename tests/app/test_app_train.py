"""AppTest: the Train page starts a training job (its own process), follows it through the run store and shows
the final evaluation; pause, resume and stop reach the job through the store."""

from __future__ import annotations

import pytest
import torch

from app_pages.style import md
from builder.data.access import SYSTEM
from builder.jobs.queue import wait
from builder.runs.store import RunStore
from tests.helpers import button, open_app, wait_for_epochs, wait_for_status

TIMEOUT = 180


@pytest.fixture
def ws(job_workspace):
    return job_workspace


@pytest.fixture
def at(ws):
    return open_app("app_pages/train.py", template="mlp")  # MLP on moons: trains in a second


def _start(at, epochs: int, live: bool = False) -> str:
    next(n for n in at.number_input if n.label == "Epochs").set_value(epochs)  # by label: results may show boxes
    if epochs > 50:  # a long run the test pauses or stops itself: early stopping off (as the e2e tests do)
        next(n for n in at.number_input if n.label == "Early stopping patience").set_value(0)
    if live:
        next(c for c in at.checkbox if c.label == "Record attributions live").check()
    button(at, "Start training").click().run()  # the form's submit
    assert not at.exception, [e.value for e in at.exception]
    rid = at.session_state["ll_run"]
    assert rid
    return rid


def test_form_has_task_aware_defaults_and_devices(at):
    assert at.title[0].value == "Train"
    labels = {m.label: m.value for m in at.metric}
    assert labels["Task"] == "binary"
    assert labels["Dataset"] == "moons"
    dev = next(s for s in at.selectbox if s.label == "Device")  # by label: other selectboxes follow it
    assert dev.label == "Device" and "CPU" in dev.options and dev.value == "auto"
    assert any("No training yet" in i.value for i in at.info)


def test_form_starts_from_the_settings_a_run_resolves(at):
    """The form's starting values are TrainConfig's resolution (task defaults < project settings), the same the
    CLI and jobs train with (tests/cli/test_cli_train.py)."""
    from builder.runs.pipeline import prepare

    proj = at.session_state["ll_project"]
    at.session_state["ll_project"] = proj.model_copy(update={"training": {"dataset": "moons", "lr": 0.02}})
    at.run()
    values = {n.label: n.value for n in at.number_input}
    _, ds, cfg = prepare(at.session_state["ll_project"], None)
    assert (values["Epochs"], values["Batch size"], values["Learning rate"]) == (cfg.epochs, cfg.batch_size, cfg.lr)
    assert values["Seed"] == cfg.seed  # (the patience widget is keyed: it keeps the template's value in the session)
    assert cfg.lr == 0.02 and cfg.epochs == (50 if len(ds.train) < 500 else 20)


def test_start_runs_a_job_process_and_shows_results(at, ws):
    rid = _start(at, 3)
    store = RunStore(ws, actor=SYSTEM)
    run = store.get(rid)
    assert run["owner"] == at.session_state["ll_owner"] and run["pid"] != __import__("os").getpid()
    assert wait(store, [rid], TIMEOUT) == {rid: "finished"}
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(s.value == "Test results" for s in at.subheader)
    assert any(m.label == "Accuracy" for m in at.metric)
    assert at.session_state["ll_train_run"] == rid and len(at.session_state["ll_curve"].epochs) == 3
    # the run is named by its name and start, its id last: the caption ended in "· …abc123" and the status line
    # read "Finished · run `20261125-150536-abc123`"
    caption = next(c.value for c in at.caption if c.value.startswith("The newest run of the network on the canvas"))
    assert md(run["name"]) in caption and "started 2" in caption and f"…{rid[-6:]}" not in caption, caption
    assert caption.endswith(f"run `{rid}`"), caption
    head = next(m for m in at.markdown if "**Finished**" in m.value)
    assert rid not in head.value and rid in head.help, head.value
    link = next(p for p in at.get("page_link") if "Runs page" in p.proto.label)
    assert link.proto.label == "Open this run on the Runs page" and rid in link.proto.help  # was "Open run <id> …"
    # the run was over in seconds: it plays back once by itself (a frame each refresh of the view) ...
    assert _play(at) == [[1], [1, 2], [1, 2, 3]]
    assert _validation_epochs(at) == [1, 2, 3] and at.session_state["ll_poll_every"] is None
    # a 3-epoch run's charts are ticked at whole epochs (plotly put ticks at 1.5 and 2.5: issue 29)
    epoch_axes = [f["layout"]["xaxis"] for f in _figures(at) if f["layout"].get("xaxis", {}).get("title", {}).get("text") == "epoch"]
    assert len(epoch_axes) >= 3 and all(a.get("dtick") == 1 for a in epoch_axes)
    last = _boundary(at)
    # ... and the slider shows any epoch
    # (after a replay the slider is a new widget that starts where the replay stopped: one per page, by its label)
    (slider,) = [s for s in at.select_slider if s.label == "Epoch shown"]
    assert slider.value == 3  # where the replay stopped: the charts' epoch
    slider.set_value(1).run()
    assert _validation_epochs(at) == [1]  # the charts (and the boundary) as they stood after epoch 1
    assert _boundary(at) != last
    at.button(key="ll_replay_play").click().run()  # Replay plays it again from epoch 1
    assert at.session_state["ll_poll_every"] == 0.5
    assert _play(at) == [[1], [1, 2], [1, 2, 3]] and at.session_state["ll_poll_every"] is None


def _play(at) -> list[list[int]]:
    """The validation epochs of each frame of a playing replay, refreshing the view as its timer does."""
    shown = [_validation_epochs(at)]
    while at.session_state["ll_replay"] is not None and len(shown) < 6:
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        shown.append(_validation_epochs(at))
    return shown


def _figures(at) -> list[dict]:
    import json

    return [json.loads(p.proto.spec) for p in at.get("plotly_chart")]


def _validation_epochs(at) -> list[int]:
    """The epochs on the Loss chart's validation curve."""
    loss = next(f for f in _figures(at) if f["layout"]["title"]["text"] == "Loss")
    return next(t["x"] for t in loss["data"] if t["name"] == "validation")


def _boundary(at) -> list:
    """The decision boundary's probabilities over the plane (the chart coloured by P(1))."""
    return next(t["z"] for f in _figures(at) for t in f["data"]
                if ((t.get("colorbar") or {}).get("title") or {}).get("text") == "P(1)")


def test_stop_keeps_a_resumable_run(at, ws):
    rid = _start(at, 5000)
    store = RunStore(ws, actor=SYSTEM)
    wait_for_status(store, rid, {"running"}, TIMEOUT)
    wait_for_epochs(store, rid, 2, TIMEOUT)  # Replay is offered once two epochs are recorded (stopping sooner on a
    at.run()                                 # fast machine left nothing to replay)
    at.button(key="ll_stop").click().run()
    assert wait(store, [rid], TIMEOUT) == {rid: "stopped"}
    at.run()  # the page sees the run end
    assert not at.exception, [e.value for e in at.exception]
    # a run the person stopped does not play back by itself (its curves moved again right after Stop); Replay
    # is offered (issue 29)
    assert ("ll_replay" not in at.session_state or at.session_state["ll_replay"] is None)
    assert at.button(key="ll_replay_play")
    # the three charts side by side share one epoch axis, from 0 to past the furthest point of any of them: each
    # was ranged over its own points (the loss chart's steps of the unfinished epoch ran past the other charts'
    # last epoch, and plotly padded the charts drawn with markers)
    charts = [f for f in _figures(at) if f["layout"].get("xaxis", {}).get("title", {}).get("text") == "epoch"]
    ranges = [f["layout"]["xaxis"].get("range") for f in charts]
    furthest = max(x for f in charts for t in f["data"] for x in t.get("x") or ())
    assert len(charts) == 3 and ranges[0] is not None and ranges.count(ranges[0]) == 3, ranges
    assert ranges[0][0] == 0 and furthest <= ranges[0][1] <= furthest * 1.05, (ranges[0], furthest)
    at.run()
    assert store.checkpoint_path(rid).is_file()
    # Resume is right here, not only on the Runs page (issue 29, item 5), and in the run's own controls where
    # Pause was (a stopped run showed Pause and Stop greyed out there, and Resume below the charts)
    assert any("Resume it from its last checkpoint" in i.value for i in at.info)
    keys = [b.key for b in at.button]
    assert "ll_pause" not in keys and keys.count("ll_train_resume") == 1, keys
    assert at.button(key="ll_stop").disabled
    at.button(key="ll_train_resume").click().run()
    assert not at.exception, [e.value for e in at.exception]
    wait_for_status(store, rid, {"running"}, TIMEOUT)
    at.run()
    assert at.session_state["ll_run"] == rid and "ll_train_resume" not in [b.key for b in at.button]
    from builder.jobs.queue import request

    request(store, rid, "stop")  # end the long run
    assert wait(store, [rid], TIMEOUT) == {rid: "stopped"}


def test_graph_problems_block_training_with_a_clear_message(at):
    g = at.session_state["ll_project"].graph
    nodes = [n.model_copy(update={"params": {"shape": [3]}}) if n.type == "Input" else n for n in g.nodes]
    at.session_state["ll_project"] = at.session_state["ll_project"].model_copy(
        update={"graph": g.model_copy(update={"nodes": nodes})})
    at.run()
    assert any("shape" in w.value for w in at.warning)
    assert button(at, "Start training").disabled  # Start is disabled until fixed


def test_a_network_that_cannot_take_the_data_is_told_which_one_can(ws):
    """The digits CNN on iris (a table of 4 columns): Train said "set shape to [4]" and "set out_features of 'head'
    to 3", fixes that leave a CNN that cannot take a table, while the Data page said a CNN does not fit. Train now
    says what the Data page says: the network that fits, loaded there in one click."""
    at = open_app("app_pages/train.py", template="cnn")
    at.session_state["ll_data"] = {"kind": "builtin", "name": "iris", "options": {}}
    at.run()
    told = [w.value for w in at.warning]
    assert any("MLP for tabular data" in w and "not enough" in w for w in told), told
    assert not any("set shape to" in w for w in told), told
    assert button(at, "Start training").disabled


def test_pause_and_resume(at, ws):
    rid = _start(at, 5000)
    store = RunStore(ws, actor=SYSTEM)
    wait_for_status(store, rid, {"running"}, TIMEOUT)
    at.run()
    at.button(key="ll_pause").click().run()
    wait_for_status(store, rid, {"paused"}, TIMEOUT)
    at.run()
    at.button(key="ll_resume").click().run()
    wait_for_status(store, rid, {"running"}, TIMEOUT)
    at.run()
    at.button(key="ll_stop").click().run()
    assert wait(store, [rid], TIMEOUT) == {rid: "stopped"}
    at.run()  # the page sees the run end
    assert not at.exception, [e.value for e in at.exception]
    # a run the person stopped does not play back by itself (its curves moved again right after Stop); Replay
    # is offered (issue 29)
    assert ("ll_replay" not in at.session_state or at.session_state["ll_replay"] is None)
    assert at.button(key="ll_replay_play")


def test_record_attributions_live(at, ws):
    from builder.interpret.live import live_frames

    rid = _start(at, 3, live=True)
    store = RunStore(ws, actor=SYSTEM)
    assert wait(store, [rid], TIMEOUT) == {rid: "finished"}
    frames = live_frames(store, rid)
    assert frames["epochs"] == [1, 2, 3]
    assert frames["attributions"].shape == (3, 4, 2)  # 3 epochs × 4 samples × 2 moons features


def test_train_shows_only_the_run_of_the_canvas(at, ws):
    rid = _start(at, 2)
    assert wait(RunStore(ws, actor=SYSTEM), [rid], TIMEOUT) == {rid: "finished"}
    at.run()
    assert at.session_state["ll_train_run"] == rid
    g = at.session_state["ll_project"].graph  # another network on the canvas: its own (no) run
    nodes = [n.model_copy(update={"params": {**n.params, "out_features": 17}}) if n.id == "fc1" else n
             for n in g.nodes]
    at.session_state["ll_project"] = at.session_state["ll_project"].model_copy(
        update={"graph": g.model_copy(update={"nodes": nodes})})
    at.run()
    assert at.session_state["ll_train_run"] is None
    assert any("No training yet for the network on the canvas" in i.value for i in at.info)


def test_a_run_whose_graph_training_changed_is_still_the_canvass_run(at, ws):
    """A LoRA run trains the canvas's network with adapters added: its graph is another, so the Train page matched
    it to no canvas and said "No training yet" while it trained and after it finished (a usability review). The run
    this session started from the canvas as it is now is shown."""
    rid = _start(at, 2)
    store = RunStore(ws, actor=SYSTEM)
    assert wait(store, [rid], TIMEOUT) == {rid: "finished"}
    run = store.get(rid)
    graph = run["project"]["graph"]
    adapted = {**graph, "nodes": [*graph["nodes"], {"id": "adapter", "type": "ReLU", "params": {}}]}
    store.update_run(rid, project={**run["project"], "graph": adapted})  # what fine-tuning records
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state["ll_train_run"] == rid
    assert not any("No training yet" in i.value for i in at.info)
    assert any(rid in c.value for c in at.caption)


def test_the_runs_link_beside_a_live_runs_stop_opens_that_run(at, ws):
    """The live run's header links to Runs; the Runs page opened on the run whose results the Train page had shown
    before (a finished one: its results set the Runs page's focus), and the live run's Pause and Stop were not on
    screen until picked."""
    import builder
    from builder.runs.pipeline import run_training

    store = RunStore(ws, actor=SYSTEM)
    owner = at.session_state["ll_owner"]
    shown = run_training(builder.load_template("mlp"), "moons", {"epochs": 1}, store=store, owner=owner).run_id
    at.session_state["ll_run_focus"] = shown  # what Train's results view of that run set
    live = _start(at, 5000)
    wait_for_status(store, live, {"running"}, TIMEOUT)
    at.run()
    at.switch_page("app_pages/runs.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.multiselect(key="ll_runs_pick").value == [live]
    at.button(key=f"ll_jstop_{live}").click().run()  # its Stop, on screen
    assert wait(store, [live], TIMEOUT) == {live: "stopped"}


def test_freeze_layers_keeps_their_weights(at, ws):
    """The form's 'Freeze layers' reaches the job (transfer learning from imported or pretrained weights)."""
    from builder.runs.pipeline import build_model
    from builder.training.weights import read_weights

    freeze = at.multiselect(key="ll_hp_freeze")
    assert "fc1" in freeze.options and "act1" not in freeze.options  # only layers with weights
    freeze.set_value(["fc1"])  # a form widget: committed with the submit below
    rid = _start(at, 2)
    store = RunStore(ws, actor=SYSTEM)
    assert wait(store, [rid], TIMEOUT) == {rid: "finished"}
    run = store.get(rid)
    assert run["config"]["freeze"] == ["fc1"]
    assert at.session_state["ll_project"].training["freeze"] == ["fc1"]  # kept for the next run
    trained, _ = read_weights(store.weights_path(rid))
    start = build_model(at.session_state["ll_project"].graph, run["config"]["seed"]).state_dict()
    fc1 = [k for k in start if k.startswith("fc1.")]
    head = [k for k in start if k.startswith("head.")]
    assert fc1 and head
    assert all(torch.equal(trained[k], start[k]) for k in fc1)  # frozen: the initial weights
    assert not all(torch.equal(trained[k], start[k]) for k in head)  # the rest trained


def test_a_distilled_run_trains_its_student_alone_beside_it_and_shows_both(at, ws):
    """Teacher run on the form: the student alone (same settings, seed, the teacher's split) trains as its own
    job beside the distilled one, and the distilled run's results show the student alone's figure."""
    from builder.runs.pipeline import run_training

    store = RunStore(ws, actor=SYSTEM)
    me = at.session_state["ll_owner"]
    teacher = run_training(at.session_state["ll_project"], "moons", {"epochs": 1}, store, owner=me).run_id
    at.run()
    at.selectbox(key="ll_hp_teacher").set_value(teacher)
    rid = _start(at, 2)
    runs = {r["id"]: r for r in store.list_runs(limit=10)}
    (alone,) = [r for r in runs.values() if r["id"] not in (rid, teacher)]
    assert runs[rid]["tags"]["student_alone"] == {"run": alone["id"]}
    training = store.get(alone["id"])["project"]["training"]
    assert training["split_of"] == teacher and "teacher" not in training
    assert wait(store, [rid, alone["id"]], TIMEOUT) == {rid: "finished", alone["id"]: "finished"}, [store.get(r)["message"] for r in (rid, alone["id"])]
    at.run()
    line = next(i.value for i in at.info if "student alone" in i.value).replace("\\", "")  # Markdown-escaped
    assert f"run {alone['id']}" in line and f"{store.get(alone['id'])['test_metrics']['accuracy']:.3f}" in line


def test_a_run_resumed_here_shows_as_running_not_stopping(at, ws):
    """Stop, then Resume on the Train page: the resumed run's status line read "Stopping · place 1 in the queue"
    (the Stop asked before was still taken as pending) while it trained."""
    from builder.jobs.queue import request

    rid = _start(at, 5000)
    store = RunStore(ws, actor=SYSTEM)
    wait_for_status(store, rid, {"running"}, TIMEOUT)
    at.run()
    at.button(key="ll_stop").click().run()
    assert wait(store, [rid], TIMEOUT) == {rid: "stopped"}
    at.run()
    at.button(key="ll_train_resume").click().run()
    assert not at.exception, [e.value for e in at.exception]
    wait_for_status(store, rid, {"running"}, TIMEOUT)
    at.run()
    status = [m.value for m in at.markdown if "**" in m.value and "material/" in m.value]
    assert any("**Running**" in v for v in status) and not any("Stopping" in v for v in status), status
    request(store, rid, "stop")  # end the long run
    assert wait(store, [rid], TIMEOUT) == {rid: "stopped"}


def _scaled_run(ws, std: float, test: dict, epochs: int = 1):
    """The Train page (MLP template) beside a finished run of ``epochs`` epochs on a target scaled by ``std`` (mean
    3), its MAE 0.75 / 0.5 (train / validation) each epoch, and ``test`` as its test figures; (app, run id)."""
    import builder
    from tests.helpers import ME

    at = open_app("app_pages/train.py", owner=ME, template="mlp")
    store = RunStore(ws, actor=SYSTEM)
    rid = store.create_run(builder.load_template("mlp"), "moons", {}, {"epochs": epochs}, owner=ME,
                           dataset_info={"task": "regression", "target_std": [std], "target_mean": [3.0]})
    store.log_metrics(rid, [{"type": "epoch", "epoch": e, "step": 2 * e, "train_loss": 0.3, "val_loss": 0.3,
                             "metric_name": "mae", "train_metric": 0.75, "val_metric": 0.5}
                            for e in range(1, epochs + 1)])
    store.finish(rid, "finished", test=test)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at, rid


def test_a_scaled_targets_test_errors_show_in_its_own_units(ws):
    """A forecaster (or a regression) trains on standardised targets: its Test results showed MAE 1.016 for
    sunspots that vary by ~34 (34.8 in sunspots), beside a Runs table that now gives its best MAE in units."""
    at, _ = _scaled_run(ws, 10.0, {"mae": 0.5, "mse": 0.25, "r2": 0.9, "loss": 0.25, "n": 12})
    shown = {m.label: m.value for m in at.metric}
    # were 0.5 and 0.25; each figure names what it is measured in (the target has no name here: a built-in's). "MSE
    # 1.794" stood beside "Loss 0.007947" for one regression with no word of units (the loss is in deviations)
    assert (shown["MAE (target units)"], shown["MSE (target units²)"], shown["R²"], shown["Loss (scaled)"]) == (
        "5", "25", "0.900", "0.25"), shown
    helps = {m.label: m.help for m in at.metric}
    assert "standardised" in helps["Loss (scaled)"] and "own units" in helps["MAE (target units)"]
    import json

    (fig,) = [json.loads(c.proto.spec) for c in at.get("plotly_chart") if c.proto.id.endswith("ll_fig_metric")
              or "ll_fig_metric" in c.proto.id]
    assert {t["name"]: t["y"] for t in fig["data"]} == {"train": [7.5], "validation": [5.0]}  # the curve too
    # named as the results name it (the chart said "Mae", "R2"), with its units as they say them (it said "MAE")
    assert fig["layout"]["title"]["text"] == "MAE (target units)"
    titles = [f["layout"]["title"]["text"] for f in _figures(at)]
    assert "Loss (scaled)" in titles, titles  # the loss is measured on the standardised target


def test_a_forecast_of_several_columns_says_its_curves_are_in_standard_deviations(ws):
    """A usability review forecast two columns of a CSV (temperature varying by 7, humidity by 3.5): the Train page's
    chart said "MAE" at 0.2 and "Loss" at 0.1, both in standard deviations (each column is scaled by its own), with
    no word of it; Test results said "(scaled)"."""
    import builder
    from tests.helpers import ME

    at = open_app("app_pages/train.py", owner=ME, template="mlp")
    store = RunStore(ws, actor=SYSTEM)
    rid = store.create_run(builder.load_template("mlp"), "moons", {}, {"epochs": 1}, owner=ME,
                           dataset_info={"task": "forecast", "target_std": [7.0, 3.5], "target_mean": [15.0, 60.0]})
    store.log_metrics(rid, [{"type": "step", "step": 1, "loss": 0.1},
                            {"type": "epoch", "epoch": 1, "step": 1, "train_loss": 0.1, "val_loss": 0.1,
                             "metric_name": "mae", "train_metric": 0.2, "val_metric": 0.25}])
    store.finish(rid, "finished", test={"mae": 0.2, "loss": 0.1, "n": 12})
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    figs = {f["layout"]["title"]["text"]: f for f in _figures(at)}
    assert {"MAE (scaled)", "Loss (scaled)"} <= set(figs), list(figs)
    assert {t["name"]: t["y"] for t in figs["MAE (scaled)"]["data"]} == {"train": [0.2], "validation": [0.25]}


def test_an_ended_runs_replay_keeps_its_curves_in_the_targets_units(ws):
    """An ended run of two epochs or more opens on its replay's last frame: that frame lost the dataset's scale
    (curve_upto), so a finished forecaster's MAE chart read 0.5 standard deviations beside Test results' 5."""
    import json

    at, rid = _scaled_run(ws, 10.0, {"mae": 0.5, "loss": 0.25, "n": 12}, epochs=3)
    assert at.select_slider(key=f"ll_replay_epoch_{rid}").value == 3  # the replay's last frame is shown
    (fig,) = [json.loads(c.proto.spec) for c in at.get("plotly_chart") if "ll_fig_metric" in c.proto.id]
    assert {t["name"]: t["y"] for t in fig["data"]} == {"train": [7.5] * 3, "validation": [5.0] * 3}
    at.select_slider(key=f"ll_replay_epoch_{rid}").set_value(2).run()
    (fig,) = [json.loads(c.proto.spec) for c in at.get("plotly_chart") if "ll_fig_metric" in c.proto.id]
    assert {t["name"]: t["y"] for t in fig["data"]} == {"train": [7.5] * 2, "validation": [5.0] * 2}


def test_every_measured_test_figure_is_shown(ws):
    """Usability review: a GPT on a corpus showed "Loss 0.1572 · Test samples 9" as its Test results, while its run
    held the test perplexity (its headline figure, the one its curves show); a forecast's RMSE was measured and
    never shown either."""
    at, _ = _scaled_run(ws, 2.0, {"loss": 0.16, "perplexity": 1.17, "rmse": 0.5, "n": 9})
    shown = {m.label: m.value for m in at.metric}
    assert (shown["Perplexity"], shown["RMSE (target units)"], shown["Test samples"]) == ("1.17", "1", "9"), shown


def test_a_language_models_charts_say_when_loss_and_perplexity_are_measured(ws):
    """Known from the review of issue 29: a language model's charts showed its train loss (the mean over each
    epoch's steps) beside its train perplexity (measured after the epoch on 512 samples) without saying so, and
    exp of the one is not the other. The metric chart says it; a classifier's says nothing of the kind."""
    import builder
    from tests.helpers import ME

    store = RunStore(ws, actor=SYSTEM)
    for name, note in (("accuracy", False), ("perplexity", True)):
        at = open_app("app_pages/train.py", owner=ME, template="mlp")
        rid = store.create_run(builder.load_template("mlp"), "moons", {}, {"epochs": 2}, owner=ME)
        store.log_metrics(rid, [{"type": "epoch", "epoch": e, "step": 5 * e, "train_loss": 3.7, "val_loss": 3.4,
                                 "metric_name": name, "train_metric": 25.0, "val_metric": 30.0} for e in (1, 2)])
        store.finish(rid, "finished", test={"loss": 3.4, name: 30.0, "n": 9})
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        shown = [c.value for c in at.caption if "exp(train loss) is not the train perplexity" in c.value]
        assert bool(shown) == note, (name, [c.value for c in at.caption])


def test_a_run_without_points_yet_says_so_in_its_charts(ws):
    """Issue 29: a run's first moments (a second or more on a busy machine, just before a quick run's replay) showed
    three blank charts; each now says what it waits for."""
    import builder
    from tests.helpers import ME

    at = open_app("app_pages/train.py", owner=ME, template="mlp")
    store = RunStore(ws, actor=SYSTEM)
    rid = store.create_run(builder.load_template("mlp"), "moons", {}, {"epochs": 3}, owner=ME)
    store.update_status(rid, "running")  # this process's pid: alive, with no point recorded yet
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    notes = {f["layout"]["title"]["text"]: [a["text"] for a in f["layout"].get("annotations", [])]
             for f in _figures(at)}
    assert notes["Loss"] == ["waiting for the first training steps…"], notes
    assert notes["Learning rate"] == ["drawn when epoch 1 ends"], notes
    store.log_metrics(rid, [{"type": "step", "step": 1, "loss": 0.7}])
    at.run()
    notes = {f["layout"]["title"]["text"]: [a["text"] for a in f["layout"].get("annotations", [])]
             for f in _figures(at)}
    assert notes["Loss"] == [] and notes["Learning rate"] == ["drawn when epoch 1 ends"], notes
    store.finish(rid, "stopped")


def test_a_run_on_an_uploaded_csv_is_named_by_its_file(ws):
    """Review of issue 29: a run on people.csv, started from the Train page, was named
    'csv: upload:6272fc…csv' on the progress line, in the Runs table and in Explain's model picker, while the
    page's header said people.csv: the job's project lacked the Data page's spec that names the upload."""
    from builder.data.uploads import UploadFolder
    from builder.runs.owners import upload_dir
    from builder.runs.summary import dataset_label
    from tests.helpers import ME

    rows = "a,b,label\n" + "".join(f"{i},{i % 3},{'x' if i % 2 else 'y'}\n" for i in range(60))
    ref = UploadFolder(upload_dir(ws, ME)).save("people.csv", rows.encode())
    at = open_app("app_pages/train.py", owner=ME, template="mlp")
    at.session_state["ll_data"] = {"kind": "csv", "name": "people.csv", "file": ref, "target": "label", "task": ""}
    at.run()
    assert {m.label: m.value for m in at.metric}["Dataset"] == "csv: people.csv"
    rid = _start(at, 1)
    store = RunStore(ws, actor=SYSTEM)
    assert wait(store, [rid], TIMEOUT) == {rid: "finished"}
    assert dataset_label(store.get(rid)) == "csv: people.csv"  # the Runs table's and Explain's name
    at.run()
    caption = next(c.value for c in at.caption if c.value.startswith("The newest run of the network on the canvas"))
    assert "people.csv" in caption and "upload:" not in caption, caption
    # every job the page starts: a distilled run's student alone too
    at.selectbox(key="ll_hp_teacher").set_value(rid)
    distilled = _start(at, 1)
    (alone,) = [r["id"] for r in store.list_runs(limit=10) if r["id"] not in (rid, distilled)]
    assert wait(store, [distilled, alone], TIMEOUT) == {distilled: "finished", alone: "finished"}
    assert [dataset_label(store.get(r)) for r in (distilled, alone)] == ["csv: people.csv"] * 2


@pytest.mark.parametrize("template", ["autoencoder", "vae"])
def test_a_run_keeps_the_templates_settings_the_form_does_not_show(ws, template):
    """Review of issue 29: starting a run rewrote the project's training settings keeping only a drawn objective's
    networks: the autoencoder lost its task (reconstruction), so after its first run the Train page read
    'Task multiclass' and refused a second run ("set out_features of 'recon' to 10", a fix that breaks it), and
    the VAE lost its parts (its encoder), so Explain attributed the whole VAE's 64 outputs, not μ."""
    import builder
    from tests.helpers import ME

    before = builder.load_template(template).training
    at = open_app("app_pages/train.py", owner=ME, template=template)
    task = {m.label: m.value for m in at.metric}["Task"]
    rid = _start(at, 1)
    assert wait(RunStore(ws, actor=SYSTEM), [rid], TIMEOUT) == {rid: "finished"}
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    kept = {k: v for k, v in before.items() if k in ("task", "parts")}
    assert kept and {k: at.session_state["ll_project"].training.get(k) for k in kept} == kept
    assert {m.label: m.value for m in at.metric}["Task"] == task
    assert not at.warning, [w.value for w in at.warning]  # a second run is not refused
    run = RunStore(ws, actor=SYSTEM).get(rid)
    assert {k: run["project"]["training"].get(k) for k in kept} == kept  # the run's own project too (Explain)


def test_a_graph_with_problems_of_its_own_is_sent_to_build_only(at):
    """Review of issue 29: New, then one Linear from the palette, then Train: the page offered "Open the Data page
    (one-click fix)" for a graph without an Input, which the Data page cannot fix. The Data page is offered for a
    sound graph that does not fit the data (the CNN on moons), Build always."""
    import builder

    def links() -> list[str]:
        return [p.proto.label for p in at.get("page_link")]

    proj = at.session_state["ll_project"]
    g = proj.graph
    no_input = g.model_copy(update={"nodes": [n for n in g.nodes if n.type != "Input"],
                                    "edges": [e for e in g.edges if e.source != "input"]})
    at.session_state["ll_project"] = proj.model_copy(update={"graph": no_input})
    at.session_state["ll_revision"] += 1
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Fix these before training" in m.value for m in at.markdown)
    assert "Open the Build page" in links() and "Open the Data page (one-click fix)" not in links()
    at.session_state["ll_project"] = builder.load_template("cnn").model_copy(update={"training": {"dataset": "moons"}})
    at.session_state["ll_revision"] += 1
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert "Open the Build page" in links() and "Open the Data page (one-click fix)" in links()


def _unreadable(fig: dict) -> list[str]:
    """What a browser would not show of an ended run's chart: a legend entry without a finite point, a short curve
    drawn as a line alone (one point is invisible, a few are a sliver: :func:`app_pages.fmt.curve_mode`), and a
    point hidden under a later trace's filled marker of the same or a larger size (within 1 % of the y axis)."""
    import math

    def points(t):
        return [(x, y) for x, y in zip(t.get("x") or [], t.get("y") or [], strict=False)
                if isinstance(y, int | float) and math.isfinite(y)]

    title = (fig["layout"].get("title") or {}).get("text")
    scatters = [t for t in fig["data"] if t.get("type", "scatter") == "scatter"]
    ys = [y for t in scatters for _, y in points(t)]
    tol = 0.01 * ((max(ys) - min(ys)) if ys else 0.0)
    bad = []
    for i, t in enumerate(scatters):
        pts, mode, name = points(t), t.get("mode", "lines+markers"), f"{title}: {t.get('name')}"
        if not pts:
            bad.append(f"{name} has no point")
        elif "markers" not in mode and len(pts) <= 40:
            bad.append(f"{name} is {len(pts)} point(s) as a line alone")
        size = (t.get("marker") or {}).get("size", 6)
        covers = {(x, y) for u in scatters[i + 1:] if "markers" in u.get("mode", "lines+markers")
                  and "open" not in str((u.get("marker") or {}).get("symbol", "circle"))
                  and (u.get("marker") or {}).get("size", 6) >= size for x, y in points(u)}
        hidden = [p for p in pts if any(x == p[0] and abs(y - p[1]) <= tol for x, y in covers)]
        if "markers" in mode and hidden:
            bad.append(f"{name} hidden at {hidden}")
    return bad


def test_every_frame_of_a_replay_draws_each_curve_it_lists(workspace):
    """A review in Chromium: a 2-epoch run's replay at "epoch 1 of 2" showed a nearly empty Loss chart (its train
    loss was one line between two step points at x 0.91 and 1.0, no markers), and a GPT run's Perplexity chart
    listed "train" where its epoch-1 point (323.4) lay under validation's (322.9). Every chart of every frame,
    for every kind of task, draws each curve its legend lists, visibly."""
    import json

    import builder
    from builder.runs.pipeline import run_training
    from tests.helpers import ME

    store = RunStore(workspace, actor=SYSTEM)
    # a classifier, a language model, a forecaster, a GAN (its loss terms) and a one-epoch autoencoder
    for template, epochs in (("mlp", 2), ("gpt", 3), ("rnn_forecaster", 2), ("gan", 2), ("autoencoder", 1)):
        project = builder.load_template(template)
        rid = run_training(project, project.training.get("dataset", "moons"), {"epochs": epochs, "seed": 0},
                           store, owner=ME).run_id
        at = open_app("app_pages/train.py", owner=ME, template=template)
        for epoch in [*range(1, epochs + 1), None]:  # each frame of the replay, then the whole run
            at.session_state["ll_replay"] = {"run": rid, "epoch": epoch} if epoch else None
            at.run()
            assert not at.exception, [e.value for e in at.exception]
            figs = [json.loads(p.proto.spec) for p in at.get("plotly_chart")]
            assert len(figs) >= 3
            bad = [b for f in figs for b in _unreadable(f)]
            assert not bad, (template, epoch, bad)


def test_a_perfect_score_reads_with_the_decimals_of_any_other(ws):
    """helper-75 (a known defect): a Sentiment LSTM's Test results read "Macro F1 1" beside "Loss 0.0113", and a
    forecaster's "R² -0.04222"; the class leaderboard and the per-class table give scores with 3 decimals. F1 and R²
    are scores: 3 decimals wherever Test results show them."""
    import builder
    from tests.helpers import ME

    at = open_app("app_pages/train.py", owner=ME, template="mlp")
    store = RunStore(ws, actor=SYSTEM)
    rid = store.create_run(builder.load_template("mlp"), "moons", {}, {"epochs": 1}, owner=ME)
    store.log_metrics(rid, [{"type": "epoch", "epoch": 1, "step": 2, "train_loss": 0.3, "val_loss": 0.3}])
    store.finish(rid, "finished", test={"accuracy": 1.0, "macro_f1": 1.0, "loss": 0.0113, "n": 45})
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    shown = {m.label: m.value for m in at.metric}
    assert (shown["Accuracy"], shown["Macro F1"], shown["Loss"]) == ("100.0%", "1.000", "0.0113"), shown


def test_the_form_says_how_many_steps_the_settings_make_and_when_they_are_too_few(at):
    """A zip of 60 images at batch 64 for 5 epochs is 5 optimizer steps in all: its run ended at chance and the
    page gave no hint why. The form counts the steps (the trainers' rule, builder.training.config.steps_per_epoch)
    and warns below FEW_STEPS."""
    from builder.runs.pipeline import prepare
    from builder.training.config import FEW_STEPS, steps_per_epoch

    n = len(prepare(at.session_state["ll_project"], None)[1].train)
    batch = next(b for b in at.number_input if b.label == "Batch size").value
    epochs = next(b for b in at.number_input if b.label == "Epochs").value
    per = steps_per_epoch(n, batch)
    assert any(f"{per:,} optimizer steps per epoch, {per * epochs:,} in all" in c.value for c in at.caption), \
        [c.value for c in at.caption]
    assert not any("too few" in w.value for w in at.warning)
    next(b for b in at.number_input if b.label == "Batch size").set_value(n).run()
    next(b for b in at.number_input if b.label == "Epochs").set_value(2).run()
    warned = [w.value for w in at.warning if "too few for the model to learn" in w.value]
    assert warned and f"{2 * steps_per_epoch(n, n):,} in all" in warned[0] and str(FEW_STEPS) in warned[0], \
        [w.value for w in at.warning]
    # a batch larger than the data: the form's own number, and what it becomes (it said "at batch size <n>" beside the
    # form's larger number)
    next(b for b in at.number_input if b.label == "Batch size").set_value(n + 20).run()
    warned = [w.value for w in at.warning if "too few for the model to learn" in w.value]
    assert warned and f"at batch size {n + 20:,} (one batch of all {n:,})" in warned[0], warned
