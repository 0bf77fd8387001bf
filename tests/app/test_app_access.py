"""AppTest: the pages reach only the session's own runs, whatever a project names (issue 28): Build › ONNX never
exports another owner's weights through ``training.init_from``; Runs and Explain refuse another owner's run by
link."""

from __future__ import annotations

import builder
from builder.data.access import SYSTEM
from builder.runs.pipeline import run_training
from builder.runs.store import RunStore
from tests.helpers import ME, OTHER, open_app


def _with_init_from(project, rid: str):
    return project.model_copy(update={"training": {**(project.training or {}), "init_from": rid}})


def _onnx_caption(at) -> str:
    return next(c.value for c in at.caption if "ONNX with a dynamic batch axis" in c.value)


def test_build_onnx_never_exports_another_owners_weights(workspace):
    theirs = run_training(builder.load_template("cnn"), "digits", {"epochs": 1}, RunStore(workspace, actor=SYSTEM),
                          owner=OTHER).run_id
    at = open_app(owner=ME, template="cnn")
    at.session_state["ll_project"] = _with_init_from(at.session_state["ll_project"], theirs)
    at.run()
    assert "freshly initialised" in _onnx_caption(at)  # before issue 28: "Uses the trained/imported weights"
    owner = open_app(owner=OTHER, template="cnn")
    owner.session_state["ll_project"] = _with_init_from(owner.session_state["ll_project"], theirs)
    owner.run()
    assert "Uses the trained/imported weights" in _onnx_caption(owner)  # its owner does export them


def test_runs_and_explain_refuse_another_owners_run_by_link(workspace):
    theirs = run_training(builder.load_template("mlp"), "moons", {"epochs": 1}, RunStore(workspace, actor=SYSTEM),
                          owner=OTHER).run_id
    for page in ("app_pages/runs.py", "app_pages/explain.py"):
        at = open_app(page, owner=ME, query={"run": theirs})
        assert any("of yours" in str(e.value) for e in [*at.error, *at.markdown])
        chosen = [w.value for w in [*at.selectbox, *at.multiselect]]
        assert not any(theirs == v or (isinstance(v, list) and theirs in v) for v in chosen)


def test_a_link_with_options_of_the_wrong_kind_is_refused_and_no_page_raises(workspace):
    """A crafted link whose moons dataset carried ``"n_samples": null``: Build opened it, then the Data page raised
    int(None) and the Train page scikit-learn's InvalidParameterError (a traceback each); now the link is refused
    in one line and every page answers."""
    from builder.graph.share import encode_project

    link = encode_project(builder.load_template("mlp").model_copy(update={
        "dataset": {"kind": "builtin", "name": "moons", "options": {"n_samples": None}}}))
    at = open_app("app_pages/build.py", owner=OTHER, query={"p": link})
    assert any("Cannot open the shared link" in e.value and "n_samples" in e.value for e in at.error)
    for page in ("app_pages/data.py", "app_pages/train.py"):
        at.switch_page(page).run()
        assert not at.exception, [e.value for e in at.exception]


def test_a_link_with_training_settings_of_the_wrong_kind_leaves_the_train_page_answering(workspace):
    """A crafted link carried ``"epochs": null`` (or ``"lr": "x"``, a seed of -1, 20,000 epochs: valid for a run,
    past the form's widget): the Train page raised int(None) at every visit, since the visitor's canvas (and its
    autosave) kept the settings. Now the form starts from the defaults and says which settings it left out; a
    run of the project still refuses them (TrainConfig.resolve)."""
    from builder.graph.share import encode_project

    for i, bad in enumerate(({"epochs": None}, {"lr": "x"}, {"seed": -1}, {"epochs": 20_000})):
        link = encode_project(builder.load_template("mlp").model_copy(update={"training": bad}))
        at = open_app("app_pages/build.py", owner="anon:" + f"{i:032x}", query={"p": link})
        at.switch_page("app_pages/train.py").run()
        assert not at.exception, (bad, [e.value for e in at.exception])
        key = next(iter(bad))
        assert any(f"{key} (received" in w.value for w in at.warning), (bad, [w.value for w in at.warning])


def test_opening_another_owners_run_on_the_canvas_brings_none_of_their_files_or_run_ids(workspace, monkeypatch):
    """Runs › Open on canvas of a run this session reads but does not own (shared mode here; a teacher reads its
    students' class runs the same way) put the owner's project on the reader's canvas whole: the owner's upload id
    (``upload:<SHA-256 of their file>.csv``) as the Data page's choice and in the project, kept in the reader's
    autosave, and the run ids it started from. It now gets what a link of the run carries
    (:func:`builder.runs.summary.opened_project`); the owner still gets its own project whole."""
    from builder.data.uploads import UploadFolder
    from builder.runs.owners import upload_dir

    monkeypatch.setenv("LAYERLAB_SHARED_RUNS", "1")
    ref = UploadFolder(upload_dir(workspace, OTHER)).save("patients.csv", b"age,diagnosis,y\n50,flu,1\n30,no,0\n")
    sha = ref.split(":", 1)[1].split(".")[0]
    data = {"kind": "csv", "name": "patients.csv", "file": ref, "target": "y"}
    project = _with_init_from(builder.load_template("mlp"), "20261101-000000-abcdef").model_copy(
        update={"dataset": data})
    theirs = RunStore(workspace, actor=SYSTEM).create_run(project, "csv", {"upload": ref, "target": "y"}, {},
                                                          owner=OTHER, dataset_info={"name": "csv:patients.csv"})
    for who, sees in ((ME, False), (OTHER, True)):
        at = open_app("app_pages/runs.py", owner=who, query={"run": theirs})
        at.button(key=f"ll_open_{theirs}").click().run()
        if any(b.key == "ll_confirm_replace" for b in at.button):  # the canvas held a network: asked first
            at.button(key="ll_confirm_replace").click().run()
        held = " ".join(str(at.session_state[k]) for k in ("ll_project", "ll_data") if k in at.session_state)
        opened = at.session_state["ll_project"]
        assert opened.graph.nodes and (sha in held) == sees, (who, held[:300])
        assert ("init_from" in (opened.training or {})) == sees, opened.training
