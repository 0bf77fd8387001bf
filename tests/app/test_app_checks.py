"""AppTest: Explain › Robustness and Calibration, Runs › Prune and Check new data, on small finished runs."""

from __future__ import annotations

import os

import pytest

from builder.data import load_dataset
from builder.data.access import SYSTEM
from builder.data.drift import reference_table
from builder.data.uploads import UploadFolder
from builder.jobs.queue import wait
from builder.runs.owners import upload_dir
from builder.runs.store import RunStore
from tests.helpers import ME, open_app, until

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::UserWarning"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]


def _no_bug(at) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not [e.value for e in at.error if "bug in LayerLab" in e.value]


def _text(at) -> str:
    return " ".join(str(getattr(e, "value", "")) for coll in (at.markdown, at.caption, at.info, at.success,
                                                               at.warning, at.error) for e in coll)


def _tab(at, name: str):
    at.session_state["ll_xp_tab"] = name
    at.run()
    _no_bug(at)
    return at


def test_explain_robustness_and_calibration(checks_ws):
    _, cnn, _ = checks_ws
    at = _tab(open_app("app_pages/explain.py", owner=ME, query={"run": cnn}), "Robustness")
    assert "Run attack" in [b.label for b in at.button]
    at.text_input(key="ll_rb_eps").set_value("0, 0.1").run()
    at.button(key="ll_rb_go").click().run()
    _no_bug(at)
    labels = {m.label: m for m in at.metric}
    assert {"ε = 0", "ε = 0.1"} <= set(labels)
    assert float(labels["ε = 0.1"].value.rstrip("%")) < float(labels["ε = 0"].value.rstrip("%"))
    assert "Flipped samples" in _text(at)
    charts = {c.proto.id for c in at.get("plotly_chart")}
    assert any("ll_rb_flip_o" in i for i in charts) and any("ll_rb_flip_a" in i for i in charts)

    at = _tab(at, "Calibration")
    labels = {m.label: m.value for m in at.metric}
    assert {"ECE before", "ECE after scaling", "Temperature", "Automated"} <= set(labels)
    # the verdict matches the figures: scaling that did not lower the ECE is not offered without a word
    worse = float(labels["ECE after scaling"]) >= float(labels["ECE before"])
    assert worse == any("Scaling did not lower" in c.value for c in at.caption), labels
    assert worse == at.button(key="ll_cal_save").help.startswith("Not advised")
    before = labels["Automated"]
    at.slider(key="ll_cal_target").set_value(0.6).run()
    _no_bug(at)
    after = {m.label: m.value for m in at.metric}["Automated"]
    assert float(after.rstrip("%")) >= float(before.rstrip("%"))
    at.button(key="ll_cal_save").click().run()
    _no_bug(at)


def test_runs_prune_submits_a_job_whose_report_appears_and_drift_flags_the_moved_feature(checks_ws, tmp_path):
    ws, cnn, iris = checks_ws
    store = RunStore(ws, actor=SYSTEM)
    at = open_app("app_pages/runs.py", owner=ME, query={"run": cnn})
    at.number_input(key=f"ll_prune_epochs_{cnn}").set_value(1).run()
    at.button(key=f"ll_prune_go_{cnn}").click().run()
    _no_bug(at)
    new = [r["id"] for r in store.list_runs() if store.get(r["id"]).get("parent_id") == cnn]
    assert len(new) == 1 and store.get(new[0])["pid"] != os.getpid()  # a job process prunes and fine-tunes it
    assert wait(store, new, timeout=180)[new[0]] == "finished"
    # the report (with its "after" figures) is kept when the fine-tune has finished: a loaded machine reads the
    # finished run a moment before it
    until(lambda: store.folder(new[0]).read_prune(), "the prune report", timeout=60)
    at.run()
    _no_bug(at)
    assert "Pruned from run" in _text(at)  # the new run is picked and shows its prune.json
    rows = [df.value for df in at.dataframe if "before" in getattr(df.value, "columns", [])]
    assert rows and "parameters" in rows[0][""].tolist()
    assert any(b.label == "Open pruned graph on canvas" for b in at.button)

    ref, _ = reference_table(load_dataset("iris"))
    new = ref.sample(frac=1.0, random_state=0).copy()
    moved = ref.columns[2]
    new[moved] = new[moved] * 1.6 + 1.0
    path = tmp_path / "new.csv"
    new.to_csv(path, index=False)
    at = open_app("app_pages/runs.py", owner=ME, query={"run": iris})
    ref_id = UploadFolder(upload_dir(ws, ME)).save("new.csv", path.read_bytes())  # as the uploader does
    at.session_state["ll_drift_file"] = {"run": iris, "name": "new.csv", "upload": ref_id}
    at.run()
    at.button(key=f"ll_drift_go_{iris}").click().run()
    _no_bug(at)
    warn = " ".join(w.value for w in at.warning)
    assert "1 of 4 features moved" in warn and moved.split(" (")[0] in warn
    assert "Mean confidence" in [m.label for m in at.metric]


def test_a_prune_report_a_job_wrote_is_shown_as_text_whatever_it_holds(checks_ws):
    """prune.json is the job's to write and the Runs page's to show (to its owner, a teacher, everyone in shared
    mode): its run id went into a code span as it was (a backtick closed it and a link or an image followed), its
    criterion into a caption as Markdown, and a text where a number goes (or a number where a text goes) stopped the
    page. Each field is read as the type LayerLab writes and shown as text."""
    import json

    from builder.graph.templates import load_template

    ws, _, _ = checks_ws
    store = RunStore(ws, actor=SYSTEM)
    rid = store.create_run(load_template("mlp"), "moons", {}, {}, owner=ME)
    store.folder(rid).prune.write_text(json.dumps({
        "parent_id": "x` ![t](https://evil.example/p.png) [Open](https://evil.example) `", "method": "structured",
        "criterion": "[click](https://evil.example)", "amount": "1", "finetune_epochs": "many",
        "groups": [{"members": ["<b>fc</b>"], "before": 8, "after": "4"}, 7], "before": {"params": "9"}}))
    at = open_app("app_pages/runs.py", owner=ME, query={"run": rid})
    _no_bug(at)
    heading = next(m.value for m in at.markdown if "Pruned from run" in m.value)
    assert "``" in heading and "evil.example" in heading  # one code span holds it all: no image, no link
    caption = next(c.value for c in at.caption if "fine-tune epochs" in c.value)
    assert "\\[click\\]" in caption and "amount 0%" in caption, caption
