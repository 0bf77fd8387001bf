"""AppTest: the Runs page lists the owner's runs, compares them, controls jobs, resumes, opens and deletes."""

from __future__ import annotations

import re

import pytest
from streamlit.testing.v1 import AppTest

import builder
from builder.data.access import SYSTEM
from builder.jobs.queue import JobSpec, submit, wait
from builder.runs import owners
from builder.runs.pipeline import run_training
from builder.runs.store import RunStore
from tests.helpers import ME, OTHER, open_app, wait_for_epochs, wait_for_status

TIMEOUT = 180


@pytest.fixture
def ws(job_workspace):
    return job_workspace


def open_runs(owner: str = ME, query: dict | None = None, timeout: int = 90) -> AppTest:
    return open_app("app_pages/runs.py", owner=owner, query=query, timeout=timeout)


def _train(store, owner=ME, **cfg):
    return run_training(builder.load_template("mlp"), "moons", {"epochs": 2, **cfg}, store=store, owner=owner).run_id


def test_empty_state(ws):
    at = open_runs()
    assert any("No runs yet" in i.value for i in at.info)


def test_lists_compares_and_deletes(ws):
    store = RunStore(ws, actor=SYSTEM)
    a = _train(store, lr=0.003)
    b = _train(store, epochs=3, lr=0.0012345678901234567)  # a rate a search drew
    at = open_runs()
    df = at.dataframe[0].value
    assert set(df["run"]) == {a, b}
    assert set(df["status"]) == {"✔ finished"}
    assert df["params"].notna().all() and set(df["lr"]) == {0.003, 0.0012345678901234567}
    assert set(df["epochs"]) == {"2/2", "3/3"}
    pick = at.multiselect(key="ll_runs_pick")
    assert "lr 0.001235" in pick.format_func(b) and "moons" in pick.format_func(b)  # told apart at a glance
    pick.set_value([a, b]).run()
    assert any("Comparing 2 runs" in s.value for s in at.subheader)
    # the settings compared: learning rates with 4 significant digits, not 17 (issue 29, item 11)
    settings = next(d.value for d in at.dataframe if any("lr" in str(i) for i in d.value.index))
    lr_row = settings.loc[[i for i in settings.index if str(i).endswith("lr")][0]]
    assert set(lr_row) == {"0.003", "0.001235"}, list(lr_row)
    peak = settings.loc[[i for i in settings.index if str(i).endswith("peak memory")][0]]  # beside time, accuracy
    assert all(str(v).endswith(("MB", "GB")) for v in peak), list(peak)
    at.multiselect(key="ll_runs_pick").set_value([a]).run()
    name = RunStore(ws, actor=SYSTEM).get(a)["name"]
    at.button(key=f"ll_delc_{a}").click().run()
    assert not at.exception
    assert {r["id"] for r in RunStore(ws, actor=SYSTEM).list_runs()} == {b}
    # the toast names the run as the page listed it (it said "Deleted run 20261126-063100-7fa788")
    assert any(t.value.startswith("Deleted the run ") and name in t.value for t in at.toast), [t.value for t in at.toast]


def test_another_owners_runs_are_neither_listed_nor_reachable(ws, monkeypatch):
    store = RunStore(ws, actor=SYSTEM)
    mine, theirs = _train(store), _train(store, owner=OTHER)
    at = open_runs()
    assert set(at.dataframe[0].value["run"]) == {mine}
    at = open_runs(query={"run": theirs})
    assert any("No run" in e.value for e in at.error) and theirs not in set(at.dataframe[0].value["run"])
    at = open_runs(query={"run": mine})
    assert at.multiselect(key="ll_runs_pick").value == [mine]
    monkeypatch.setenv("LAYERLAB_SHARED_RUNS", "1")  # classroom demo: everyone's runs, others' read-only
    at = open_runs()
    assert set(at.dataframe[0].value["run"]) == {mine, theirs}
    at.multiselect(key="ll_runs_pick").set_value([theirs]).run()
    assert any("read-only" in c.value for c in at.caption)
    # a finished run offers no Resume (every finished run showed a greyed-out one)
    assert not [b for b in at.button if b.label == "Resume"], [b.key for b in at.button]
    assert at.button(key=f"ll_int8_{theirs}").disabled  # quantizing writes into the run (its owner's alone)


def test_shared_mode_names_each_runs_owner_by_pseudonym(workspace, monkeypatch):
    store = RunStore(workspace, actor=SYSTEM)
    ids = {}
    for who in (ME, OTHER):
        ids[who] = store.create_run(builder.load_template("mlp"), "moons", {}, {"epochs": 2}, owner=who, name="net")
        store.update_status(ids[who], "finished")
    at = open_runs()
    assert "owner" not in at.dataframe[0].value.columns  # only your own runs: no owner column
    assert any("Your training runs" in m.value for m in at.markdown)
    monkeypatch.setenv("LAYERLAB_SHARED_RUNS", "1")
    at = open_runs()
    df = at.dataframe[0].value
    assert dict(zip(df["run"], df["owner"])) == {ids[ME]: "you", ids[OTHER]: owners.pseudonym(workspace, OTHER)}
    assert not any("Your training runs" in m.value for m in at.markdown)
    assert any("training runs on this server (shared mode" in m.value for m in at.markdown)
    at.multiselect(key="ll_runs_pick").set_value([ids[OTHER]]).run()
    assert any(owners.pseudonym(workspace, OTHER) in c.value and "read-only" in c.value
               for c in at.caption)


def test_pause_resume_stop_a_job_from_the_runs_page(ws):
    store = RunStore(ws, actor=SYSTEM)
    rid = submit(store, JobSpec(project=builder.load_template("mlp").model_dump(), dataset="moons",
                                config={"epochs": 5000, "early_stopping": None}, owner=ME))
    wait_for_status(store, rid, {"running"}, TIMEOUT)
    at = open_runs()
    at.multiselect(key="ll_runs_pick").set_value([rid]).run()
    at.button(key=f"ll_jpause_{rid}").click().run()
    wait_for_status(store, rid, {"paused"}, TIMEOUT)
    assert store.get(rid)["status"] == "paused"
    at.run()
    at.button(key=f"ll_jstop_{rid}").click().run()
    assert wait(store, [rid], TIMEOUT) == {rid: "stopped"}


def test_resume_a_stopped_run_and_open_its_project(ws):
    store = RunStore(ws, actor=SYSTEM)
    rid = submit(store, JobSpec(project=builder.load_template("mlp").model_dump(), dataset="moons",
                                config={"epochs": 5000, "early_stopping": None}, owner=ME))
    wait_for_epochs(store, rid, 1, TIMEOUT)
    from builder.jobs.queue import request
    request(store, rid, "stop")
    assert wait(store, [rid], TIMEOUT) == {rid: "stopped"}
    at = open_runs()
    at.multiselect(key="ll_runs_pick").set_value([rid]).run()
    resume = at.button(key=f"ll_resume_{rid}")
    assert not resume.disabled
    resume.click().run()
    assert not at.exception, [e.value for e in at.exception]
    wait_for_status(store, rid, {"running", "paused"}, TIMEOUT)
    at.run()
    assert [b.key for b in at.button if b.label == "Resume"] == [f"ll_jresume_{rid}"]  # one Resume, the live row's
    request(store, rid, "stop")
    assert wait(store, [rid], TIMEOUT) == {rid: "stopped"}
    at.run()
    at.multiselect(key="ll_runs_pick").set_value([rid]).run()
    at.button(key=f"ll_open_{rid}").click().run()
    # the canvas holds the untouched starting project: replaced at once, nothing asked
    assert not [b for b in at.button if b.key == "ll_confirm_replace"]
    assert not at.exception
    assert at.session_state["ll_project"].name == builder.load_template("mlp").name
    assert at.session_state["ll_data"]["name"] == "moons"


def test_deep_link_by_unique_prefix_and_a_hostile_link(ws):
    """``/runs?run=`` takes a unique prefix of one of this owner's runs; anything else is an escaped error."""
    store = RunStore(ws, actor=SYSTEM)
    mine = _train(store)
    at = open_runs(query={"run": mine[:18]})
    assert at.multiselect(key="ll_runs_pick").value == [mine]
    at = open_runs(query={"run": "[x](javascript:alert(1)) **b**"})
    err = next(e.value for e in at.error if "No run" in e.value)
    assert "\\[x\\]" in err and "\\*\\*b\\*\\*" in err  # shown literally, never as a link or bold


def test_a_render_parses_each_shown_runs_project_once_and_analyses_its_graph_once(workspace, monkeypatch):
    """The Runs page reads each run's record once and hands it on: the table's size, the details and the network
    picker share one parse of the project; a run that recorded no size (an older run) is analysed once for it."""
    import builder.graph.project as project_module
    import builder.graph.shapes as shapes_module
    from tests.helpers import count_calls

    store = RunStore(workspace, actor=SYSTEM)
    ids = []
    for name in ("first", "second"):  # recorded without training: no size in their environment
        p = builder.load_template("mlp")
        p.name = name
        ids.append(store.create_run(p, "moons", {}, {"epochs": 2}, owner=ME, name=name))
        store.update_status(ids[-1], "finished")
    at = open_app(owner=ME)
    parses = count_calls(monkeypatch, project_module, "parse_project")
    analyses = count_calls(monkeypatch, shapes_module, "infer_shapes")
    at.switch_page("app_pages/runs.py").run()
    assert not at.exception and set(at.dataframe[0].value["run"]) == set(ids)
    assert len(at.multiselect(key="ll_runs_pick").value) == 1  # the newest, in full: details and picker
    parsed = [args[0]["name"] for args, _ in parses]
    assert sorted(parsed) == ["first", "second"], f"each shown run's project parsed once; parsed: {parsed}"
    assert len(analyses) == 2, "each shown run's graph analysed once (its size), the details reuse it"


def test_the_page_settles_while_a_job_ends_an_epoch_between_any_two_reads(ws, monkeypatch):
    """A live job whose epoch count changes on every read (a busy server, a page slower than an epoch): the page
    run ends after reading as often as with a job that stands still; the 2-s watcher compares only on its own
    timed runs, never inline in the page's run (which reran the page until it timed out)."""
    from builder.runs.record import Run

    store = RunStore(ws, actor=SYSTEM)
    rid = _train(store)
    reads, real = [], RunStore.list_runs

    def live(self, *a, **kw):
        reads.append(1)
        epochs = len(reads) if moving else 1
        return [Run({**dict(r), "status": "running", "epochs_done": epochs}) if r["id"] == rid else r
                for r in real(self, *a, **kw)]

    monkeypatch.setattr(RunStore, "list_runs", live)
    moving = False
    open_runs(timeout=30)  # the workspace's first open also does its one-time upkeep (builder.admin.owner_migration)
    reads.clear()
    open_runs(timeout=30)
    still = len(reads)
    reads.clear()
    moving = True
    at = open_runs(timeout=30)
    assert not at.exception and rid in at.multiselect(key="ll_runs_pick").value
    assert len(reads) == still


def test_a_gan_run_shows_no_metric_that_repeats_its_loss(ws):
    """A GAN (or VAE) records its loss as its metric: the table's "best val metric" column repeated the best val
    loss (1.9639 and 1.9639), its label said "best loss", and comparing drew a "Validation metric" chart that
    was the loss chart again. Its metric is "—", and only runs with a metric of their own draw one."""
    store = RunStore(ws, actor=SYSTEM)
    gan = run_training(builder.load_template("gan"), "digits", {"epochs": 1}, store=store, owner=ME).run_id
    mlp = _train(store, epochs=1)
    at = open_runs()
    df = at.dataframe[0].value.set_index("run")
    assert df.loc[gan, "best val metric"] == "—" and df.loc[gan, "best val loss"] != "—", df.loc[gan].to_dict()
    assert df.loc[mlp, "best val metric"] != "—"  # accuracy
    # accuracies written as the Train page writes them: "Accuracy 98.9%" and "97.8%", not 0.9888 and 0.9780
    # (helper-84's and helper-86's reviews); a picker's label too
    assert re.fullmatch(r"Accuracy \d{1,3}\.\d%", df.loc[mlp, "best val metric"]), df.loc[mlp].to_dict()
    assert re.fullmatch(r"\d{1,3}\.\d%", df.loc[mlp, "test acc / R²"]), df.loc[mlp].to_dict()
    # a GAN's loss is its networks' losses added, which need not fall: the column says so (it read like any
    # other network's "best val loss"); a classifier's is a plain number
    assert df.loc[gan, "best val loss"].startswith("summed "), df.loc[gan, "best val loss"]
    float(df.loc[gan, "best val loss"].removeprefix("summed "))
    float(df.loc[mlp, "best val loss"])
    pick = at.multiselect(key="ll_runs_pick")
    assert "best" not in pick.format_func(gan) and re.search(r"best accuracy \d{1,3}\.\d% ", pick.format_func(mlp))
    pick.set_value([gan]).run()
    assert not at.exception
    titles = [c.proto.spec for c in at.get("plotly_chart")]
    assert sum("Validation " in t for t in titles) == 0 and sum("Loss (solid" in t for t in titles) == 1
    at.multiselect(key="ll_runs_pick").set_value([gan, mlp]).run()
    titles = [c.proto.spec for c in at.get("plotly_chart")]
    assert sum("Validation Accuracy" in t for t in titles) == 1  # named (it said "Validation metric")
    # the runs are named in the legends and the settings' columns by name and time (the end of the id said
    # nothing), and counts and durations read as in the run's details (17476 and 3.178 beside 17.5k and 3.2s)
    import json

    loss = json.loads(next(t for t in titles if "Loss (solid" in t))
    names = {tr["name"] for tr in loss["data"]}
    assert any(n.startswith("GAN (MLP, digits) · ") and n.endswith(" val") for n in names), names
    assert loss["layout"]["xaxis"].get("dtick") == 1 or loss["layout"]["xaxis"].get("tickvals"), loss["layout"]["xaxis"]
    settings = at.dataframe[-1].value
    settings.index = [str(i).removeprefix("● ") for i in settings.index]  # rows that differ are marked
    assert all(" · " in str(c) for c in settings.columns), list(settings.columns)
    row = settings.loc["params"].tolist()
    assert all(str(v)[-1] in "kMB" or str(v).isdigit() and int(v) < 1000 for v in row), row
    assert all(str(v).endswith("s") for v in settings.loc["duration"].tolist()), settings.loc["duration"]


def test_a_text_runs_tokenizer_is_offered_beside_its_exports(ws):
    """A text model reads token ids: Runs offers the run's own tokenizer.json beside the .py and ONNX downloads
    (it offered the model alone, which no one could feed a sentence), and a run without text offers none."""
    from builder.data.text import encode, load_tokenizer

    store = RunStore(ws, actor=SYSTEM)
    text = run_training(builder.load_template("sentiment_lstm"), "text_sentiment", {"epochs": 1}, store=store,
                        owner=ME, dataset_options={"n_samples": 100}).run_id
    plain = _train(store)
    at = open_runs(query={"run": text})
    buttons = {b.proto.label: b for b in at.get("download_button")}
    assert "Tokenizer (tokenizer.json)" in buttons, sorted(buttons)
    got = store.folder(text).read_tokenizer()
    assert encode(load_tokenizer(got.decode()), ["the film was good"], 20).shape == (1, 20)
    at = open_runs(query={"run": plain})
    assert not any("Tokenizer" in b.proto.label for b in at.get("download_button"))


def test_the_page_opens_on_the_newest_run_with_something_to_show(ws):
    """A run stopped before its first epoch (no curves, no weights) opened the page on empty charts, a greyed-out
    Weights and a Prune form: the page opens on the newest run with an epoch behind it (or a live one), and offers
    Prune only to a finished run with weights."""
    import time

    store = RunStore(ws, actor=SYSTEM)
    done = _train(store)
    time.sleep(1.1)  # a later second: ids and creation times order the newer run first
    empty = store.create_run(builder.load_template("cnn"), "digits", {}, {"epochs": 300}, owner=ME)
    store.update_status(empty, "stopped", "stopped by request")
    at = open_runs()
    assert at.multiselect(key="ll_runs_pick").value == [done]
    assert any("Prune this run" in e.label for e in at.expander)
    at.multiselect(key="ll_runs_pick").set_value([empty]).run()
    assert not at.exception and not any("Prune this run" in e.label for e in at.expander)


def test_a_runs_settings_are_a_json_tree_not_highlighted_code(ws):
    """Issue 29: the Runs page showed in the browser seconds after the server had drawn it. Part of it: the folded
    Settings (JSON) block was st.code, whose syntax highlighter is 1.5 MB of JavaScript the browser fetched and
    evaluated on every first load of the page. The settings are a JSON tree now (its viewer is loaded for tables
    anyway), and no element of a run's page asks for the highlighter."""
    import json

    store = RunStore(ws, actor=SYSTEM)
    rid = _train(store, lr=0.003)
    at = open_runs()
    assert at.multiselect(key="ll_runs_pick").value == [rid]
    assert not at.code, [c.value for c in at.code]
    shown = [json.loads(j.value) for j in at.json]
    assert shown == [store.get(rid)["config"]] and shown[0]["lr"] == 0.003
