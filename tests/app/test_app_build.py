"""AppTest: the Build page (canvas host, inspector, templates, exports) drives the library."""

from __future__ import annotations

from pathlib import Path

import pytest

import builder
from builder.data.access import SYSTEM
from builder.runs import owners
from tests.helpers import ME, open_app, own_work

APP = str(Path(__file__).resolve().parents[2] / "app.py")


@pytest.fixture
def at(workspace):
    return open_app(timeout=60)


def graph(at) -> builder.Graph:
    return at.session_state["ll_project"].graph


def _widget(widgets, prefix: str):
    """The inspector's widget whose key starts with ``prefix`` (its key ends in a digest of the value it shows)."""
    found = [w for w in widgets if (w.key or "").startswith(prefix)]
    assert len(found) == 1, [w.key for w in widgets]
    return found[0]


def test_loads_with_the_cnn_template_and_annotations(at):
    g = graph(at)
    assert any(n.type == "Conv2d" for n in g.nodes)
    assert all(e.id for e in g.edges), "edges carry explicit ids so the canvas and Python agree"
    key, report, ann = at.session_state["ll_ann"]
    assert report.ok
    assert ann["nodes"]["conv1"]["shape"] == "(B, 16, 8, 8)"
    assert ann["nodes"]["conv1"]["params"] == 160
    assert ann["edges"]["image->conv1"]["shape"] == "(B, 1, 8, 8)"
    assert ann["summary"]["total_params"] == report.total_params
    assert ann["summary"]["problems"] == []
    assert at.title[0].value == "Build"


def test_template_menu_replaces_the_graph_and_bumps_the_revision(at):
    own_work(at)
    rev = at.session_state["ll_revision"]
    at.selectbox(key="ll_tpl_pick").set_value("mlp").run()
    assert not at.exception
    assert at.session_state["ll_revision"] == rev  # the canvas holds the person's project: confirm first
    at.button(key="ll_confirm_replace").click().run()
    assert at.session_state["ll_revision"] > rev
    assert at.session_state["ll_project"].name == builder.load_template("mlp").name
    assert at.session_state["ll_data"]["name"] == "moons"


@pytest.mark.parametrize("name", ["gan", "vae"])
def test_template_menu_offers_the_drawn_objectives(at, name):
    """The gan and vae templates (several outputs, the GAN two networks) load from the picker with their
    objective (networks, optimizers, schedule) and dataset, and the page checks them without problems."""
    at.selectbox(key="ll_tpl_pick").set_value(name).run()  # over the untouched starter: at once
    assert not at.exception
    want = builder.load_template(name)
    assert at.session_state["ll_project"].training == want.training
    assert {n.id for n in graph(at).nodes} == {n.id for n in want.graph.nodes}
    assert at.session_state["ll_data"]["name"] == "digits"
    _, report, ann = at.session_state["ll_ann"]
    assert report.ok and ann["summary"]["problems"] == []
    assert len(report.output_nodes) > 1  # one per loss term
    at.switch_page("app_pages/train.py").run()  # the Train page takes it as it is (digits fit its flat Input)
    assert not at.exception and not at.warning, [w.value for w in at.warning]
    assert not next(b for b in at.button if b.label == "Start training").disabled


def test_a_layer_drawn_while_the_inspector_changed_the_graph_is_kept(at):
    """An inspector edit bumps the canvas revision; a layer the person dropped meanwhile arrived from the browser
    drawn on the old revision and was dropped without a trace (then Python's graph replaced the canvas). Now the
    browser's edits are applied on top of Python's: both survive, and the canvas is sent the result."""
    at.session_state["ll_selected"] = "conv1"
    at.run()
    rev = at.session_state["ll_revision"]
    drawn = graph(at)  # what the browser holds at this revision
    _widget(at.number_input, f"ll_p_conv1_out_channels_{rev}_").set_value(8).run()
    assert at.session_state["ll_revision"] == rev + 1
    # meanwhile, in the browser (still on the old revision): a ReLU dropped and wired after the first ReLU's output
    local = drawn.model_copy(update={
        "nodes": [*drawn.nodes, builder.Node(id="relu_9", type="ReLU", position={"x": 5, "y": 5})],
        "edges": [*drawn.edges, builder.Edge(source="relu1", target="relu_9", id="relu1->relu_9")]})
    at.session_state["ll_canvas"] = {"value": {"graph": local.model_dump(mode="json"), "selected": "relu_9",
                                               "revision": rev}}
    at.run()
    g = graph(at)
    assert g.node("conv1").params["out_channels"] == 8 and g.node("relu_9").type == "ReLU"
    assert any(e.source == "relu1" and e.target == "relu_9" for e in g.edges)
    assert at.session_state["ll_revision"] == rev + 2  # the canvas is sent the merged graph
    at.run()  # the same stale value again (a rerun): nothing changes twice
    assert graph(at) == g and at.session_state["ll_revision"] == rev + 2


def test_a_canvas_edit_that_arrives_after_another_project_replaced_the_canvas_is_kept_in_the_history(at, workspace):
    """A layer dropped on the canvas whose message arrived after a template replaced the project (the browser drew
    it on the old revision) cannot be applied to the new project; it was dropped without a trace. Now the network
    it was made on, with the edit, is in the replace history, and the person is told."""
    own_work(at)
    rev = at.session_state["ll_revision"]
    drawn = graph(at)
    at.selectbox(key="ll_tpl_pick").set_value("mlp").run()
    at.button(key="ll_confirm_replace").click().run()
    assert at.session_state["ll_revision"] > rev
    replaced = graph(at)
    local = drawn.model_copy(update={"nodes": [*drawn.nodes, builder.Node(id="late_1", type="ReLU",
                                                                           position={"x": 5, "y": 5})]})
    at.session_state["ll_canvas"] = {"value": {"graph": local.model_dump(mode="json"), "selected": None,
                                               "revision": rev, "seq": 7}}
    at.run()
    assert graph(at) == replaced  # the template stays on the canvas
    history = owners.history(workspace, at.session_state["ll_owner"])
    assert "late_1" in {n.id for n in builder.load_project(history[-1]).graph.nodes}
    assert any("not applied" in t.value and "Undo replace" in t.value for t in at.toast)
    at.run()  # the same late value again: kept once
    assert len(owners.history(workspace, at.session_state["ll_owner"])) == len(history)


def test_inspector_edits_params_and_renames_as_text(at):
    at.session_state["ll_selected"] = "conv1"
    at.run()
    assert at.subheader[0].value == "Conv2d"
    rev = at.session_state["ll_revision"]
    _widget(at.number_input, f"ll_p_conv1_out_channels_{rev}_").set_value(8).run()
    assert graph(at).node("conv1").params["out_channels"] == 8
    assert at.session_state["ll_revision"] == rev + 1
    _, report, ann = at.session_state["ll_ann"]
    assert ann["nodes"]["conv1"]["shape"] == "(B, 8, 8, 8)"
    rev = at.session_state["ll_revision"]
    _widget(at.text_input, f"ll_label_conv1_{rev}_").set_value("<b>first</b>").run()
    assert graph(at).node("conv1").label == "<b>first</b>"
    assert not any("<b>" in m.value for m in at.markdown), "user text is never rendered as markdown/HTML"


def test_kernel_pair_parsing_and_bad_input(at):
    at.session_state["ll_selected"] = "conv1"
    at.run()
    rev = at.session_state["ll_revision"]
    _widget(at.text_input, f"ll_p_conv1_kernel_size_{rev}_").set_value("3, 5").run()
    assert graph(at).node("conv1").params["kernel_size"] == [3, 5]
    rev = at.session_state["ll_revision"]
    _widget(at.text_input, f"ll_p_conv1_kernel_size_{rev}_").set_value("three").run()
    assert graph(at).node("conv1").params["kernel_size"] == [3, 5]
    assert any("whole numbers" in w.value for w in at.warning)


@pytest.mark.parametrize("text", ["1e400", "2.5", "inf", "1" + "0" * 400])
def test_a_kernel_typed_as_no_whole_number_is_refused_with_a_message(at, text):
    """Typed into a list field: ``1e400`` (and 1 with 400 zeros, which float turns into inf) stopped the whole
    page with "OverflowError: cannot convert float infinity to integer"; ``2.5`` became 2 without a word. Now the
    field keeps its value and says what it takes; ``1e1`` is 10."""
    at.session_state["ll_selected"] = "conv1"
    at.run()
    rev = at.session_state["ll_revision"]
    _widget(at.text_input, f"ll_p_conv1_kernel_size_{rev}_").set_value(text).run()
    assert not at.exception, at.exception
    assert graph(at).node("conv1").params["kernel_size"] == 3
    assert any("whole numbers" in w.value and "received" in w.value for w in at.warning), at.warning
    rev = at.session_state["ll_revision"]
    _widget(at.text_input, f"ll_p_conv1_kernel_size_{rev}_").set_value("1e1, 3").run()
    assert graph(at).node("conv1").params["kernel_size"] == [10, 3]


def test_shape_error_reaches_the_annotations_and_inspector(at):
    g = graph(at)
    nodes = [n.model_copy(update={"params": {**n.params, "in_features": 5}}) if n.id == "fc" else n for n in g.nodes]
    at.session_state["ll_project"] = at.session_state["ll_project"].model_copy(
        update={"graph": g.model_copy(update={"nodes": nodes})})
    at.session_state["ll_selected"] = "fc"
    at.run()
    _, report, ann = at.session_state["ll_ann"]
    assert not report.ok
    assert ann["nodes"]["fc"]["errors"]
    assert ann["summary"]["problems"]
    assert at.error, "the inspector shows the node's problem"


def test_delete_layer_from_the_inspector(at):
    at.session_state["ll_selected"] = "dropout"
    at.run()
    rev = at.session_state["ll_revision"]
    at.button(key=f"ll_del_dropout_{rev}").click().run()
    assert "dropout" not in {n.id for n in graph(at).nodes}
    assert not any("dropout" in (e.source, e.target) for e in graph(at).edges)


def test_group_event_makes_a_palette_block_once_however_often_the_browser_sends_it(at):
    """Grouping layers into a block is a one-shot action: the browser keeps it, with an id, in every payload until
    Python acknowledges one (a rerun Streamlit dropped cannot lose it), and Python takes each id once (a payload
    sent again cannot repeat it)."""
    from app_pages import ui

    g = graph(at)
    block = ui.make_block(g, ["conv1", "relu1", "pool1"], "conv block")
    assert [n["id"] for n in block["nodes"]] == ["conv1", "relu1", "pool1"]
    assert len(block["edges"]) == 2
    value = {"graph": g.model_dump(mode="json"), "selected": None, "revision": at.session_state["ll_revision"]}
    group = {"type": "group", "nodes": ["conv1", "relu1", "pool1"], "name": "conv block"}
    at.session_state["ll_canvas"] = {"value": {**value, "seq": 1, "events": [{**group, "id": 1}]}}
    at.run()
    assert not at.exception
    assert [b["name"] for b in at.session_state["ll_project"].blocks] == ["conv block"]
    assert any("added to the palette" in t.value for t in at.toast)
    at.session_state["ll_canvas"] = {"value": {**value, "seq": 2, "retry": 1, "events": [{**group, "id": 1}]}}
    at.run()  # sent again: taken once
    assert [b["name"] for b in at.session_state["ll_project"].blocks] == ["conv block"]
    assert not any("added to the palette" in t.value for t in at.toast)
    other = {"type": "group", "nodes": ["fc"], "name": "head"}
    at.session_state["ll_canvas"] = {"value": {**value, "seq": 3, "events": [{**group, "id": 1}, {**other, "id": 2}]}}
    at.run()  # a second action while the first was not acknowledged yet: only the new one is taken
    assert [b["name"] for b in at.session_state["ll_project"].blocks] == ["conv block", "head"]


def test_empty_project_has_helpful_empty_states(at):
    at.button(key="ll_new").click()
    at.run()  # the untouched starter: emptied at once
    assert graph(at).nodes == []
    assert not at.exception


def test_first_build_run_imports_neither_torch_nor_pandas(tmp_path):
    """The cold first visit does not wait for torch (~1.3 s) or pandas (~0.4 s): the Build page validates,
    infers shapes, lists layers and hosts the canvas without them (the warm-up imports them later)."""
    import subprocess
    import sys

    code = ("import sys, os\n"
            "from streamlit.testing.v1 import AppTest\n"
            "before = set(sys.modules)  # what Streamlit itself loads (plotly, numpy) is the server's, not ours\n"
            f"at = AppTest.from_file({APP!r}, default_timeout=60)\n"
            "at.run()\n"
            "assert not at.exception, [e.value for e in at.exception]\n"
            "assert at.title[0].value == 'Build'\n"
            "heavy = ('torch', 'pandas', 'plotly', 'sklearn', 'captum', 'safetensors')\n"
            "print(sorted(m for m in heavy if m in sys.modules and m not in before))")
    env = {**__import__("os").environ, "LAYERLAB_WORKSPACE": str(tmp_path / "ws")}  # the warm-up waits 1.5 s: we look first
    out = subprocess.run([sys.executable, "-c", code], cwd=Path(APP).parent, env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout


def test_a_trained_run_tints_the_canvas_with_its_health(workspace):
    """After a run of the canvas graph, every recorded node carries the doctor's verdict in the annotations."""
    from builder.runs.pipeline import run_training
    from builder.runs.store import RunStore

    run_training(builder.load_template("mlp"), "moons", {"epochs": 2}, RunStore(workspace, actor=SYSTEM))  # owner local
    at = open_app(owner="local", template="mlp")
    _, _, ann = at.session_state["ll_ann"]
    health = {nid: a["health"] for nid, a in ann["nodes"].items() if a.get("health")}
    assert {"fc1", "fc2", "head"} <= set(health)
    assert all(h["level"] == "ok" for h in health.values())  # a healthy template raises no flag


def test_a_finished_run_offers_its_measured_latency_on_the_canvas(workspace):
    """A stored run of the canvas graph records each node's time (latency.json); the Build page's annotations
    then offer the overlay's latency mode with a value on the timed nodes."""
    from builder.runs.pipeline import run_training
    from builder.runs.store import RunStore

    store = RunStore(workspace, actor=SYSTEM)
    project = builder.load_template("cnn")
    res = run_training(project, "digits", {"epochs": 1}, store=store, owner=ME, adapt=True)
    rec = store.folder(res.run_id).read_latency()
    per_node = rec["per_node"]
    assert rec["threads"] == 1 and set(rec["spread"]) == set(per_node)
    assert per_node and {"conv1", "conv2", "fc"} <= set(per_node) and all(v > 0 for v in per_node.values())
    at = open_app(owner=ME)
    _, _, ann = at.session_state["ll_ann"]
    assert "latency" in ann["summary"]["cost_modes"]
    text, share = ann["nodes"]["conv1"]["cost"]["latency"]
    assert " ms (p10-p90 " in text and 0 < share <= 1
    assert "thread" in ann["summary"]["latency"]


def _guide_text(at) -> str:
    return " ".join(m.value for m in at.markdown if "1 ·" in m.value)


def test_the_guide_tells_an_empty_canvas_apart_and_stays_hidden_after_a_reload(workspace):
    """Issue 29, item 14: on an empty canvas the guide said "untitled is on the canvas … Train this network";
    its Hide lasted only until a reload (a new session of the same person)."""
    at = open_app(owner=ME, timeout=60)
    assert "On the canvas:" in _guide_text(at)
    at.button(key="ll_new").click().run()  # the untouched starter: emptied at once
    assert graph(at).nodes == []
    text = _guide_text(at)
    assert "On the canvas" not in text and "Templates" in text and "drag layers" in text
    assert at.button(key="ll_train_this").disabled  # nothing to train
    # a layer dragged onto the empty canvas (a rerun of the canvas only, in a browser): the guide follows
    one = builder.Graph(nodes=[builder.Node(id="input_1", type="Input", params={"shape": [4]}),
                               builder.Node(id="linear_1", type="Linear", params={"out_features": 2})],
                        edges=[builder.Edge(source="input_1", target="linear_1")])
    at.session_state["ll_canvas"] = {"value": {"graph": one.model_dump(mode="json"), "selected": None,
                                               "revision": at.session_state["ll_revision"]}}
    at.run()
    assert [n.id for n in graph(at).nodes] == ["input_1", "linear_1"]
    assert "On the canvas:" in _guide_text(at) and not at.button(key="ll_train_this").disabled
    # its steps are numbered 1, 2, 3 (the button was the only one without its number)
    assert at.button(key="ll_train_this").label == "2 · Train"
    # a Linear alone (no Input) cannot train: the button said nothing until clicked (review of issue 29)
    lone = builder.Graph(nodes=[builder.Node(id="linear_1", type="Linear", params={"out_features": 4})])
    at.session_state["ll_canvas"] = {"value": {"graph": lone.model_dump(mode="json"), "selected": None,
                                               "revision": at.session_state["ll_revision"]}}
    at.run()
    button = at.button(key="ll_train_this")
    assert button.disabled and "Fix the network first" in button.help
    at.button(key="ll_guide_hide").click().run()
    assert "ll_guide_hide" not in [b.key for b in at.button]
    again = open_app(owner=ME, timeout=60)  # a reload: a new session of the same person
    assert "ll_guide_hide" not in [b.key for b in again.button] and not _guide_text(again)
    other = open_app(owner="anon:" + "c" * 32, timeout=60)  # someone else still gets the guide
    assert "ll_guide_hide" in [b.key for b in other.button]


def test_the_guide_stays_after_an_import_and_goes_after_a_first_run(workspace):
    """The guide card vanished after an import: the imported model's weights are a run (status ``imported``), and
    the guide counted any run as "has trained"."""
    from builder.runs.store import RunStore
    from builder.training.run_status import RunStatus

    store = RunStore(workspace, actor=SYSTEM)
    rid = store.create_run(builder.load_template("mlp"), "imported", {}, {}, owner=ME)
    store.update_status(rid, RunStatus.IMPORTED, "imported from m.onnx")
    at = open_app(owner=ME, timeout=60)
    assert "On the canvas:" in _guide_text(at) and "ll_train_this" in [b.key for b in at.button]
    store.create_run(builder.load_template("mlp"), "moons", {}, {}, owner=ME)  # a first training run (queued)
    at = open_app(owner=ME, timeout=60)
    assert not _guide_text(at) and "ll_train_this" not in [b.key for b in at.button]


def test_an_error_banner_of_build_is_gone_after_another_page(workspace):
    """Issue 29, item 11: an import's error banner stayed on Build after navigating away and back."""
    at = open_app(owner=ME, timeout=60)
    at.session_state["ll_canvas_error"] = "Cannot import m.onnx: a test message"
    at.run()
    assert any("a test message" in e.value for e in at.error)
    at.run()  # a rerun of the same page keeps it
    assert any("a test message" in e.value for e in at.error)
    at.switch_page("app_pages/train.py").run()
    at.switch_page("app_pages/build.py").run()
    assert not any("a test message" in e.value for e in at.error)


def test_the_inspector_turned_off_stays_off_after_another_page(workspace):
    """The Inspector toggle kept its value only while Build was shown: off, a visit to Train, and it was on again
    (its value lived in widget state, dropped on a page switch, and the page's default put it back)."""
    at = open_app(owner=ME, timeout=60)
    assert at.toggle(key="ll_show_inspector").value
    at.toggle(key="ll_show_inspector").set_value(False).run()
    assert not any(s.value == "Inspector" for s in at.subheader)
    at.switch_page("app_pages/train.py").run()
    at.switch_page("app_pages/build.py").run()
    assert at.toggle(key="ll_show_inspector").value is False
    assert not any(s.value == "Inspector" for s in at.subheader)
    at.toggle(key="ll_show_inspector").set_value(True).run()  # and on again
    assert any(s.value == "Inspector" for s in at.subheader)


def test_train_this_on_data_the_network_cannot_take_names_the_network_that_can(workspace):
    """The guide's "Train this network" with the digits CNN on iris said "set shape to [4]" (a CNN cannot take a
    table whatever its Input says); it says what Train and the Data page say: the network that fits."""
    at = open_app(owner=ME, timeout=60)
    at.session_state["ll_data"] = {"kind": "builtin", "name": "iris", "options": {}}
    at.run()
    at.button(key="ll_train_this").click().run()
    said = [e.value for e in at.error]
    assert any("MLP for tabular data" in e for e in said) and not any("set shape to" in e for e in said), said
    assert not any(e.count("Data page") > 1 for e in said), said  # where the fix is, said once
    assert at.title[0].value == "Build"  # no run started


def test_the_inspector_follows_a_rename_and_a_parameter_typed_on_the_canvas(at):
    """A layer renamed (or a parameter typed) on the canvas changes the graph without a new revision; the
    inspector's widgets, keyed by the revision, kept what they first held (a widget with a key ignores a new
    ``value=``): the Name box stayed empty beside a layer the canvas showed renamed, and out features said 10 after
    the canvas set 32. They show the graph's values."""
    at.session_state["ll_selected"] = "fc"
    at.run()
    rev = at.session_state["ll_revision"]
    assert _widget(at.text_input, f"ll_label_fc_{rev}_").value == ""
    g = graph(at)
    renamed = g.model_copy(update={"nodes": [n.model_copy(update={"label": "<i>head</i>",
                                                                  "params": {**n.params, "out_features": 32}})
                                             if n.id == "fc" else n for n in g.nodes]})
    at.session_state["ll_canvas"] = {"value": {"graph": renamed.model_dump(mode="json"), "selected": "fc",
                                               "revision": rev}}
    at.run()
    assert not at.exception and at.session_state["ll_revision"] == rev  # the browser's own edit: no new revision
    assert graph(at).node("fc").label == "<i>head</i>"
    assert _widget(at.text_input, f"ll_label_fc_{rev}_").value == "<i>head</i>"
    assert _widget(at.number_input, f"ll_p_fc_out_features_{rev}_").value == 32
    # typed here afterwards, the inspector's edit applies to the graph the canvas shows
    _widget(at.text_input, f"ll_label_fc_{rev}_").set_value("head").run()
    g = graph(at)
    assert g.node("fc").label == "head" and g.node("fc").params["out_features"] == 32


def test_a_long_message_stays_until_it_is_closed():
    """A usability review: an ONNX import's ~600-character note (the BatchNorms folded) was a toast gone after 4 s,
    behind 'view more'. The pages' docstring examples are not collected as doctests: this runs them."""
    import doctest

    from app_pages import state

    assert doctest.testmod(state, verbose=False).failed == 0
    assert [state.toast_duration("x" * n) for n in (40, 150, 600)] == ["short", "long", "infinite"]


def test_the_inspector_has_a_close_that_deselects_the_layer(at):
    """At 900 px the inspector floats over the canvas's right third once a layer is selected, and had no close
    control (only Esc on the canvas). Its Close deselects the layer: the canvas follows (``selected`` None) and a
    narrow window's inspector goes (its container key turns idle)."""
    at.session_state["ll_selected"] = "conv1"
    at.run()
    assert at.button(key="ll_inspector_close")
    at.button(key="ll_inspector_close").click().run()
    assert at.session_state["ll_selected"] is None
    assert not [b for b in at.button if b.key == "ll_inspector_close"]
    assert not at.exception


def test_a_canvas_graph_over_a_project_files_bounds_is_refused_before_it_is_serialised(at):
    """The browser's graph is checked as an opened file is: a parameter nested 900 deep was taken onto the canvas
    (``json.dumps`` of it the page's change signature), and the sidebar's Save then failed on every page with
    "Maximum serialization depth exceeded"."""
    before = graph(at)
    deep: list = []
    for _ in range(900):
        deep = [deep]
    bad = before.model_dump(mode="json")
    bad["nodes"][0]["params"] = {**bad["nodes"][0]["params"], "junk": deep}
    at.session_state["ll_canvas"] = {"value": {"graph": bad, "selected": None,
                                               "revision": at.session_state["ll_revision"]}}
    at.run()
    assert not at.exception
    assert graph(at) == before
    assert any("at most 64 deep" in e.value for e in at.error)


def test_grouping_is_bounded_in_blocks_and_layers_per_block(at):
    """Every grouping copied its layers into the project (its file, autosave and every page's palette), with no
    limit: 200 groupings of a 5,000-layer network (8 MB of events, 16 a message) grew the server by 750 MB and the
    autosaved file to 285 MB. Now a project keeps at most MAX_BLOCKS blocks of MAX_BLOCK_NODES layers; one more is a message."""
    from builder.graph.project import MAX_BLOCK_NODES, MAX_BLOCKS

    g = graph(at)
    value = {"graph": g.model_dump(mode="json"), "selected": None, "revision": at.session_state["ll_revision"]}
    ids = [n.id for n in g.nodes]
    events = [{"type": "group", "nodes": ids[:2], "name": f"b{k}", "id": k + 1} for k in range(MAX_BLOCKS + 5)]
    for seq, start in enumerate(range(0, len(events), 16)):  # a payload carries 16 actions at most
        at.session_state["ll_canvas"] = {"value": {**value, "seq": seq + 1, "events": events[start:start + 16]}}
        at.run()
        assert not at.exception
    assert len(at.session_state["ll_project"].blocks) == MAX_BLOCKS
    assert any(f"at most {MAX_BLOCKS} blocks" in e.value for e in at.error)
    wide = builder.load_project({"graph": {"nodes": [{"id": f"r{i}", "type": "ReLU"}
                                                     for i in range(MAX_BLOCK_NODES + 1)], "edges": []}})
    from app_pages import ui

    with pytest.raises(builder.ProjectFormatError, match=f"at most {MAX_BLOCK_NODES} layers"):
        ui.make_block(wide.graph, [n.id for n in wide.graph.nodes], "all")
