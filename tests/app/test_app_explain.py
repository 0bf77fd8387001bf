"""The Explain page under Streamlit's AppTest: empty state, and trained runs driving the library.

Every model the page explains is a finished run in the run store, asked through the page session's sandboxed
probe (:class:`builder.jobs.probe.ProbeSession`), as in the served app: the runs are trained once per module into
one workspace (owner ``local``, this session's owner; a few epochs, a second or two each) and one probe child
answers the tests that share it; tests that change the store train their own runs (in process or as job
processes).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import builder
from builder.data.access import SYSTEM
from builder.interpret.live import LiveAttributions
from builder.jobs.probe import ModelProbe
from builder.runs.pipeline import load_run_dataset, run_training
from builder.runs.store import RunStore

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow,
              pytest.mark.filterwarnings("ignore::UserWarning"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]


def _train(store: RunStore, template: str, dataset: str, epochs: int, **kw) -> str:
    """A finished run of ``template`` on ``dataset`` (seed 0) in ``store``; its id."""
    return run_training(builder.load_template(template), dataset, {"epochs": epochs, "seed": 0}, store=store,
                        **kw).run_id


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A workspace with the runs the tests explain: the digits CNN (2 epochs, live attributions recorded and
    saved with the run), the iris MLP, the sequence transformer and the diabetes regression MLP."""
    ws = tmp_path_factory.mktemp("explain-runs")
    store = RunStore(ws, actor=SYSTEM)
    live = LiveAttributions("integrated_gradients", n_samples=3)
    runs = {"cnn": _train(store, "cnn", "digits", 2, callbacks=[live]),
            "iris": _train(store, "mlp", "iris", 20, adapt=True),
            "transformer": _train(store, "transformer", "sequence", 1, dataset_options={"n_samples": 600}),
            "diabetes": _train(store, "mlp", "diabetes", 2, adapt=True),
            "table": _csv_run(store, ws),
            "autoencoder": _train(store, "autoencoder", "digits", 1)}
    live.save(store.folder(runs["cnn"]).live_attributions)
    return ws, runs, live


def _csv_run(store: RunStore, ws: Path) -> str:
    """A finished MLP run on an upload with a text column (age, sex F/M, grown); its id."""
    from builder.data.sources import DatasetSource, load_dataset
    from builder.data.uploads import UploadFolder
    from builder.runs.owners import upload_dir

    rows = "".join(f"{1.2 + 0.25 * i:.2f},{'FM'[i % 2]},{int(i > 30)}\n" for i in range(66))
    ref = UploadFolder(upload_dir(ws, "local")).save("students.csv", ("age,sex,grown\n" + rows).encode())
    ds = load_dataset(DatasetSource("csv", {"upload": ref, "target": "grown"}, "students.csv"),
                      uploads=upload_dir(ws, "local"))  # named as the Data page names it
    return run_training(builder.load_template("mlp"), ds, {"epochs": 2, "seed": 0}, store=store, adapt=True).run_id


@pytest.fixture(scope="module")
def probe():
    """One sandboxed probe child for the module's pages (each AppTest is a new page session; the served app
    starts one per session, as the crash test does): a cold child costs a few CPU-seconds of imports."""
    p = ModelProbe()
    yield p
    p.close()


@pytest.fixture
def runs(trained, probe, monkeypatch):
    """The trained workspace as this test's workspace; ``runs(name, **state)`` opens the page on that run."""
    ws, ids, _ = trained
    monkeypatch.setenv("LAYERLAB_WORKSPACE", str(ws))
    monkeypatch.setenv("LAYERLAB_TORCH_THREADS", "1")

    def page_on(name: str, **state) -> AppTest:
        return _page({"ll_xp_probe": probe, "ll_xp_model": f"run:{ids[name]}", **state})

    page_on.ids = ids
    page_on.store = RunStore(ws, actor=SYSTEM)
    return page_on


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    monkeypatch.setenv("LAYERLAB_WORKSPACE", str(tmp_path))
    monkeypatch.setenv("LAYERLAB_TORCH_THREADS", "1")
    monkeypatch.setenv("LAYERLAB_LAUNCHER_IDLE_S", "0")  # no warm launcher: the jobs here start before one would be up
    return tmp_path


def _page(state: dict | None = None) -> AppTest:
    """The app, switched to the Explain page, with ``state`` put into session state first."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.session_state["ll_owner"] = "local"  # the owner of runs recorded without one (CLI, run_training)
    for k, v in (state or {}).items():
        at.session_state[k] = v
    at.run()
    at.switch_page("app_pages/explain.py")
    at.run()
    _no_bug(at)
    return at


def _no_bug(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    bugs = [e.value for e in at.error if "bug in LayerLab" in e.value]
    assert not bugs, bugs


def _tab(at: AppTest, name: str) -> AppTest:
    """Open a tab of the page (tabs are lazy: only the open one runs)."""
    at.session_state["ll_xp_tab"] = name
    at.run()
    _no_bug(at)
    return at


def _specs(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def _titles(at: AppTest) -> str:
    """Every figure's title and subplot titles, joined (what a user reads above the charts)."""
    out = []
    for s in _specs(at):
        lay = s.get("layout", {})
        t = lay.get("title", {})
        out.append(t.get("text", "") if isinstance(t, dict) else str(t))
        out += [a.get("text", "") for a in lay.get("annotations", [])]
    return " | ".join(out)


def _trace_types(at: AppTest) -> set[str]:
    return {t.get("type", "") for s in _specs(at) for t in s.get("data", [])}


def _widget(elements, label: str):
    found = [w for w in elements if w.label == label]
    assert found, f"no widget {label!r}; have {[w.label for w in elements]}"
    return found[0]


def _text(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [i.value for i in at.info]
    parts += [w.value for w in at.warning] + [e.value for e in at.error] + [s.value for s in at.success]
    return "\n".join(str(p) for p in parts)


# --------------------------------------------------------------------------------------------- tests
def test_empty_state_without_a_model(workspace):
    at = _page()
    assert "No trained model yet" in _text(at)
    assert not at.get("plotly_chart")
    assert not at.error


def test_trained_cnn_shows_default_attributions(runs):
    at = runs("cnn")
    methods = _widget(at.multiselect, "Methods (side by side)")
    assert methods.value == ["saliency", "integrated_gradients", "grad_cam"]
    titles = _titles(at)
    for name in ("Saliency<br>heatmap", "Integrated Gradients<br>overlay", "Grad-CAM · conv2<br>heatmap"):
        assert name in titles
    assert "heatmap" in _trace_types(at)
    assert "Convergence delta" in _text(at)
    assert "ch 0" not in titles  # tabs are lazy: the activations tab has not run
    # the prediction is shown with its confidence
    labels = [m.label for m in at.metric]
    assert "True label" in labels and "Prediction" in labels
    pred = _widget(at.metric, "Prediction").proto
    assert "%" in pred.delta and "confidence" in pred.help  # a short pill (cut at 900 px when it said "confident")


def _preview_is_a_picture(at: AppTest) -> None:
    """The sample beside the pickers is a picture that scales to its column: a plotly preview is at least 150 px
    wide, and its column is ~92 px at 900x900 (~140 px at 1440): a digit showed 5 of its 8 columns."""
    assert not [c for c in at.get("plotly_chart") if "ll_xp_preview" in str(c.proto.id)]
    assert at.get("imgs") or at.get("image"), "the sample is shown as a picture"


def test_an_image_sample_is_a_picture_that_fits_its_column(runs):
    _preview_is_a_picture(runs("cnn"))


def test_unavailable_methods_show_their_reason(runs):
    at = runs("cnn")
    exp = [e for e in at.expander if e.label.startswith("Not available")]
    assert exp, "unavailable methods are listed"
    text = "\n".join(m.value for m in exp[0].markdown)
    assert "Feature ablation" in text and "tabular inputs" in text
    assert "Layer Integrated Gradients" in text and "Embedding" in text
    assert "feature_ablation" not in _widget(at.multiselect, "Methods (side by side)").options


def test_choosing_a_method_draws_its_figure(runs):
    at = runs("cnn")
    _widget(at.multiselect, "Methods (side by side)").set_value(["occlusion", "deep_lift"]).run()
    _no_bug(at)
    titles = _titles(at)
    assert "Occlusion<br>heatmap" in titles and "DeepLift<br>overlay" in titles
    assert "Saliency<br>heatmap" not in titles
    _widget(at.multiselect, "Methods (side by side)").set_value(["layer_conductance"]).run()
    assert "conductance of node conv1" in _titles(at)
    _widget(at.selectbox, "Layer conductance node").set_value("fc").run()
    _no_bug(at)
    assert "conductance of node fc" in _titles(at)


def test_target_class_and_baseline_drive_the_explanation(runs):
    at = runs("cnn")
    _widget(at.selectbox, "Explain class").set_value(7).run()
    assert "for class 7" in _titles(at)
    _widget(at.selectbox, "Baseline").set_value("blur").run()
    _no_bug(at)
    assert not at.warning
    figs = [s for s in _specs(at) if "Saliency" in json.dumps(s.get("layout", {}))]
    assert figs, "the attribution figure is still there"


def test_sample_pickers(runs):
    at = runs("cnn")
    _widget(at.number_input, "Index (0–268)").set_value(5).run()
    _no_bug(at)
    for by in ("class", "correct", "incorrect", "confident_mistakes"):
        _widget(at.selectbox, "Pick samples").set_value(by).run()
        _no_bug(at)
        sample = [s for s in at.selectbox if s.label.startswith("Sample (")]
        assert sample or "No " in _text(at), by
    _widget(at.selectbox, "Pick samples").set_value("class").run()
    _widget(at.selectbox, "True class").set_value(4).run()
    sample = [s for s in at.selectbox if s.label.startswith("Sample (")][0]
    assert sample.options and all("true 4 " in o for o in sample.options)


def test_trust_checks_run_on_demand(runs):
    at = _tab(runs("cnn"), "Trust")
    assert "Model-parameter randomisation" not in _titles(at)  # behind a button
    _widget(at.multiselect, "Methods").set_value(["saliency", "grad_cam"]).run()
    _widget(at.button, "Run sanity check").click().run()
    _no_bug(at)
    assert "Model-parameter randomisation" in _titles(at)
    assert any("Saliency" in m.value or "Grad-CAM" in m.value for m in [*at.success, *at.warning])
    _widget(at.button, "Check completeness").click().run()
    _no_bug(at)
    assert "IG completeness" in _titles(at)
    assert "Model-parameter randomisation" in _titles(at)  # the first check's result stays beside the second's


def test_activations_and_weights(runs):
    at = _tab(runs("cnn"), "Activations & weights")
    assert "ch 0" in _titles(at)  # conv1 feature-map grid
    assert "conv1.weight" in _titles(at)
    _widget(at.selectbox, "Node").set_value("fc").run()
    _no_bug(at)
    assert "fc (Linear)" in _titles(at)
    assert "no MultiheadAttention" in _text(_tab(at, "Attention"))


def test_live_attributions_play_back(runs, trained):
    live = trained[2]
    at = _tab(runs("iris"), "Live")
    assert "Record attributions live" in _text(at)  # how to enable it (a run recorded none)
    at = _tab(runs("cnn"), "Live")  # the frames saved with the model's run play back (after a restart too)
    live_figs = [s for s in _specs(at) if s.get("frames")]
    assert live_figs and len(live_figs[0]["frames"]) == len(live.frames) == 2
    assert live_figs[0]["layout"]["sliders"]


def _dataset(runs, name: str):
    """The dataset a trained run was trained on (for what the page should show)."""
    return load_run_dataset(runs.store, runs.store.get(runs.ids[name]))


def test_tabular_bars_and_global_ranking(runs):
    ds = _dataset(runs, "iris")
    at = runs("iris")
    assert _widget(at.multiselect, "Methods (side by side)").value == ["integrated_gradients", "feature_ablation"]
    assert "Attribution per feature" in _titles(at)
    bars = [t for s in _specs(at) for t in s["data"] if t.get("type") == "bar"]
    assert {tuple(b["y"]) for b in bars} and set(bars[0]["y"]) == set(ds.info.feature_names)
    assert "Occlusion" in "\n".join(m.value for e in at.expander for m in e.markdown)
    _widget(at.button, f"Rank over {len(ds.test)} test samples").click().run()
    _no_bug(at)
    assert f"over {len(ds.test)} test samples" in _titles(at)
    _widget(at.selectbox, "Baseline").set_value("mean").run()
    _no_bug(at)
    assert not at.warning


def test_the_ranking_groups_a_text_column_as_the_bars_do(runs):
    """Issue 29: "Rank over N" listed ``sex=F`` and ``sex=M`` as two features while the bars above it and Try it
    show one ``sex``: the ranking groups a text column's one-hot features the same way."""
    at = runs("table")
    # the upload is named as everywhere ("csv: students.csv"; this line said "csv:students.csv")
    assert "Dataset **csv: students.csv**" in _text(at), _text(at)
    bars = {y for s in _specs(at) for t in s["data"] if t.get("type") == "bar" for y in t["y"]}
    assert any(y.startswith("sex: ") for y in bars) and not any("=" in y for y in bars), bars
    n = len(_dataset(runs, "table").test)
    _widget(at.button, f"Rank over {n} test samples").click().run()
    _no_bug(at)
    spec = next(s for s in _specs(at) if f"over {n} test samples" in str(s["layout"].get("title")))
    assert set(spec["data"][0]["y"]) == {"age", "sex"}, spec["data"][0]["y"]


def test_try_it_predicts_and_explains_your_own_input(runs):
    ds = _dataset(runs, "iris")
    at = _tab(runs("iris"), "Try it")
    pred = _widget(at.metric, "Your input's prediction")
    assert pred.value in ds.info.class_names and "confident" in pred.delta
    assert f"for class {pred.value} (the prediction)" in _titles(at)  # the predicted class, as the sample view says
    tab = next(t for t in at.tabs if t.label == "Try it")
    assert tab.dataframe, "the row editor is shown"  # AppTest reads a data editor as a dataframe
    ds = _dataset(runs, "transformer")
    at = _tab(runs("transformer"), "Try it")
    box = _widget(at.text_input, "Your sequence (words of the vocabulary, separated by spaces)")
    assert _widget(at.metric, "Your input's prediction").value in ds.info.class_names
    box.set_value("zebra " + box.value).run()
    assert any("vocabulary; received: 'zebra'" in w.value for w in at.warning)


def test_try_it_drawing_pad_on_an_image_model(runs):
    """An 8×8 digits model offers the drawing pad first; the strokes it sends are predicted and attributed."""
    ds = _dataset(runs, "cnn")
    at = _tab(runs("cnn"), "Try it")
    assert "Draw a digit: it is centred and resampled to the model's 8×8 input." in _text(at)
    pad = next(k for k in at.session_state._state._state.filtered_state if k.startswith("ll_try_pad@"))
    at.session_state[pad] = {"strokes": json.dumps([[[0.5, 0.1], [0.5, 0.9]]])}  # what the browser sends
    at.run()
    _no_bug(at)
    assert _widget(at.metric, "Your input's prediction").value in ds.info.class_names
    assert "Answered in" in _text(at) and " for " in _titles(at)


def test_try_it_decodes_an_uploaded_image_in_the_probe_never_in_the_server(runs, monkeypatch):
    """Issue 28: Try it's uploaded image is a stranger's file for Pillow's native decoders; the page hands its bytes
    to the session's sandboxed probe, which decodes it (the server decoded it before asking the probe)."""
    import io

    from PIL import Image

    from builder.data import images

    def refuse(*a, **k):
        raise AssertionError("a person's image was read by Pillow in the server process")

    ds = _dataset(runs, "cnn")
    at = _tab(runs("cnn"), "Try it")
    monkeypatch.setattr(images, "_image_header", refuse)  # the data stage's two readers of an image file
    monkeypatch.setattr(images, "_decode", refuse)
    source = next(k for k in at.session_state._state._state.filtered_state if k.startswith("ll_try_source@"))
    at.session_state[source] = "Upload"
    at.run()
    buf = io.BytesIO()
    Image.new("L", (20, 20), 200).save(buf, format="PNG")
    _widget(at.get("file_uploader"), "Your image").upload("mine.png", buf.getvalue()).run()
    _no_bug(at)
    assert not at.error, [e.value for e in at.error]
    assert _widget(at.metric, "Your input's prediction").value in ds.info.class_names


def test_try_it_on_an_mlp_autoencoder_draws_a_digit_and_shows_its_reconstruction(runs):
    """Issue 29: Try it on the MLP autoencoder (digits read as 64 values) showed an empty row editor and "Your
    input's prediction -0.01506" (the first of 64 reconstructed values) beside bars of x0..x63: it offers the
    drawing pad, shows the reconstruction as a picture and the attribution of one named output over the picture."""
    at = _tab(runs("autoencoder"), "Try it")
    assert "Draw a digit: it is centred and resampled to the model's 8×8 input." in _text(at)
    pad = next(k for k in at.session_state._state._state.filtered_state if k.startswith("ll_try_pad@"))
    at.session_state[pad] = {"strokes": json.dumps([[[0.5, 0.1], [0.5, 0.9]]])}
    at.run()
    _no_bug(at)
    assert not [m for m in at.metric if m.label == "Your input's prediction"]  # no first value as "the" answer
    assert "Its reconstruction" in _text(at) and at.get("image"), "the reconstruction is a picture"
    titles = _titles(at)
    # the explained unit named as the sample view names it (it said "output 27"; the sample view "pixel (3, 3)")
    assert "for pixel (" in titles and "(the largest)" in titles, titles
    maps = [t for s in _specs(at) for t in s["data"] if t.get("type") == "heatmap"]
    assert maps and {t["z"]["shape"].replace(" ", "") for t in maps} == {"8,8"}


def test_tokens_attention_and_rollout(runs):
    at = runs("transformer")
    assert _widget(at.multiselect, "Methods (side by side)").value == ["layer_integrated_gradients", "occlusion"]
    titles = _titles(at)
    assert "Layer Integrated Gradients" in titles and "Occlusion" in titles
    titles = _titles(_tab(at, "Attention"))
    assert "per-head attention" in titles and "head 0" in titles and "mean over heads" in titles
    assert "Rollout across encoder1, encoder2" in titles
    _widget(at.selectbox, "Attention node").set_value("encoder2").run()
    _no_bug(at)
    assert "encoder2: per-head attention" in _titles(at)
    _tab(at, "Attributions")
    _widget(at.selectbox, "Baseline").set_value("pad")  # the only one for tokens
    _widget(at.selectbox, "Pad token").set_value(3).run()
    _no_bug(at)
    assert not at.warning


def test_pick_a_finished_run_from_the_store(workspace, monkeypatch):
    """A run's model runs in the session's sandboxed probe: a segfault there is one error line, the server
    keeps serving and the next question is answered by a fresh child (issue 21)."""
    monkeypatch.setattr(ModelProbe, "TEST_HOOK", "tests.jobs.test_probe:crash_in_activation")
    res = run_training(builder.load_template("mlp"), "moons", {"epochs": 3}, store=RunStore(workspace, actor=SYSTEM))
    at = _page()
    model = _widget(at.selectbox, "Model")
    assert model.value == f"run:{res.run_id}"
    assert "Attribution per feature" in _titles(at)
    assert not at.error
    probe = at.session_state["ll_xp_probe"]
    first = probe.pid()
    at = _tab(at, "Activations & weights")
    crash = [e.value for e in at.error]
    assert len(crash) == 1 and "died from SIGSEGV" in crash[0] and "the app is unaffected" in crash[0], crash
    assert "Weight histograms" in _text(at) and "fc1" in _titles(at)  # answered by a fresh child
    assert probe.pid() not in (None, first)
    at = _tab(at, "Attributions")
    _widget(at.number_input, "Index (0–149)").set_value(7).run()
    _no_bug(at)
    assert "Attribution per feature" in _titles(at) and not at.error
    probe.close()


def test_a_padded_sentence_is_shown_with_its_padding_counted(workspace, probe):
    """A sentence's trailing padding is counted, not written out: an uploaded five-word review padded to 64 tokens
    filled the Explain page's first screen at 900x900 with 59 <pad>."""
    res = run_training(builder.load_template("sentiment_lstm"), "text_sentiment",
                       {"epochs": 1, "seed": 0}, store=RunStore(workspace, actor=SYSTEM),
                       dataset_options={"n_samples": 200})
    at = _page({"ll_xp_probe": probe, "ll_xp_model": f"run:{res.run_id}"})
    _no_bug(at)
    shown = [c.value for c in at.code]
    assert shown and all("<pad> <pad>" not in v for v in shown), shown
    assert any("<pad>)" in v for v in shown), shown  # "… (+k <pad>)"
    # a usability review: 8 of 11 words unknown answered "positive · 100.0% confident" without a word said
    at = _tab(at, "Try it")
    box = _widget(at.text_input, "Your sentence")
    box.set_value("zxq qwv vbn great").run()
    _no_bug(at)
    said = [w.value for w in at.warning]
    assert any("3 of 4 tokens are words the model never saw in training" in w for w in said), said
    box.set_value("the film was great").run()
    assert not any("never saw in training" in t for t in [w.value for w in at.warning] + [c.value for c in at.caption])


def test_a_stopped_run_is_offered_from_its_newest_weights(workspace, probe):
    """A run stopped after an epoch has no final weights but a model to explain: the picker lists it."""
    from builder.training.callbacks import Callback

    class StopAfterFirst(Callback):
        def on_epoch_end(self, trainer, epoch, logs):
            trainer.stop()

    res = run_training(builder.load_template("mlp"), "moons", {"epochs": 5}, RunStore(workspace, actor=SYSTEM),
                       callbacks=[StopAfterFirst()])
    assert res.status == "stopped"
    at = _page({"ll_xp_probe": probe})
    model = _widget(at.selectbox, "Model")
    assert model.value == f"run:{res.run_id}" and "stopped after 1 ep" in model.format_func(model.value)
    _no_bug(at)
    assert "Attribution per feature" in _titles(at) and not at.error


def test_an_mlp_autoencoder_shows_its_flattened_digits_as_pictures(runs):
    """Issue 29: the MLP autoencoder reads the 8x8 digits as 64 values; the page described them as "tabular input
    [64]", showed a sample as a table of x0..x63 and its attributions as bars of pixels ranked x14, x53, ..."""
    at = runs("autoencoder")
    text = _text(at)
    assert "8×8 images read as 64 values (flattened)" in text and "tabular input [" not in text, text[:600]
    assert not at.dataframe  # no table of x0..x63: the sample is its picture
    _preview_is_a_picture(at)
    titles = _titles(at)
    assert "Integrated Gradients<br>heatmap" in titles and "Attribution per feature" not in titles, titles
    maps = [t for s in _specs(at) for t in s["data"] if t.get("type") == "heatmap"]
    assert maps and {t["z"]["shape"].replace(" ", "") for t in maps} == {"8,8"}  # each map is the 8x8 picture
    assert not [b for b in at.button if b.label.startswith("Rank over")]  # no ranking of 64 pixels as features
    assert "explained class" not in text  # it reconstructs; no class is explained


def test_an_autoencoders_sample_comes_with_its_reconstruction_and_error(runs):
    """Explain for an autoencoder showed the sample and "Sample #0": what the model gives back for it is its
    prediction, so it comes beside the sample as a picture, with the mean squared difference between the two (the
    in-process model's own output and error). The unit an attribution explains is a pixel of the reconstruction,
    named by its row and column (it read "output 13")."""
    import numpy as np
    import torch

    from builder.data import fit_dataset
    from builder.runs.pipeline import load_run, load_run_dataset

    at = runs("autoencoder")
    imgs = at.get("imgs") or at.get("image")
    assert len(imgs) >= 2 and any("Its reconstruction" in str(i.proto) for i in imgs), [str(i.proto)[:200] for i in imgs]
    err = _widget(at.metric, "Reconstruction error")
    assert not [m for m in at.metric if m.label == "Sample"]
    run = runs.store.get(runs.ids["autoencoder"])
    model, _ = load_run(runs.store, run)
    x = fit_dataset(run.project.graph, load_run_dataset(runs.store, run)).test.X[:1]
    with torch.no_grad():
        want = float(np.mean((model(x) - x).numpy() ** 2))
    assert float(err.value) == pytest.approx(want, rel=1e-3)
    unit = _widget(at.selectbox, "Explain output")
    assert unit.format_func(13) == "pixel (1, 5)" and unit.format_func(-1) == "Largest output"
    unit.set_value(13).run()
    assert "Attributions for pixel (1, 5)" in _titles(at), _titles(at)
    text = _text(_tab(at, "Trust"))  # it said "for the explained class (its prediction)" of a model with no class
    assert "for the explained output" in text and "explained class" not in text, text[-900:]
    text = _text(_tab(at, "Calibration"))  # it said "this model does regression"
    assert "this model does reconstruction (it gives its input back)" in text and "regression" not in text, text


def test_many_positions_are_picked_by_number(workspace, probe, monkeypatch):
    """Issue 29: a language model's position menu listed every position (1,024 for GPT-2 imported at its length);
    above ``ui.MAX_MENU`` the position is a number, its token named below it, and the header follows it."""
    from app_pages import ui
    from builder.interpret.next_token import token_word
    from builder.runs.pipeline import open_run

    store = RunStore(workspace, actor=SYSTEM)
    project = builder.load_template("gpt")
    rid = run_training(project, project.training["dataset"], {"epochs": 1, "seed": 0}, store=store).run_id
    _, ds = open_run(store, store.get(rid))
    t = int(ds.info.input_shape[0])
    monkeypatch.setattr(ui, "MAX_MENU", 8)
    at = _page({"ll_xp_probe": probe, "ll_xp_model": f"run:{rid}"})
    assert not [s for s in at.selectbox if s.label == "Position"]
    position = _widget(at.number_input, f"Position (0–{t - 1})")
    assert position.value == t - 1
    position.set_value(3).run()
    _no_bug(at)
    assert f"3 · after {token_word(ds.info, int(ds.test.X[0, 3]))}" in _text(at)
    assert "at position 3" in _titles(at), _titles(at)


def test_many_output_units_are_picked_by_number(runs, monkeypatch):
    """Issue 29: the explained output's menu labelled each of a model's outputs through the probe's child, one
    round trip per option (a 784-pixel reconstruction: 785 per sample, and 785 options in the page). Above
    ``ui.MAX_MENU`` units (lowered here for the 64-pixel autoencoder) the unit is a number, named below it."""
    from app_pages import ui

    monkeypatch.setattr(ui, "MAX_MENU", 8)
    at = runs("autoencoder")
    assert not [s for s in at.selectbox if s.label == "Explain output"]
    unit = _widget(at.number_input, "Explain output (0–63; −1: the largest)")
    assert unit.value == -1 and "Largest output" in _text(at)
    unit.set_value(13).run()
    _no_bug(at)
    assert "pixel (1, 5)" in _text(at) and "Attributions for pixel (1, 5)" in _titles(at), _titles(at)


def test_regression_model_explains_its_output(runs):
    at = runs("diabetes")
    assert "Attribution per feature for the model's output" in _titles(at)
    assert [s.label for s in at.selectbox if s.label in ("Explain class", "Pick samples")] == ["Pick samples"]
    assert _widget(at.selectbox, "Pick samples").options == ["By index"]  # no classes to pick by
    assert not at.error and not at.warning
    # in the target's own units (diabetes progression, 25 to 346): it said "True value -1.565", the standardised
    # value the model learns, beside a Data page that draws the target in its units (an outside review)
    shown = {m.label: m.value for m in at.metric}
    assert 25 <= float(shown["True value"].replace(",", "")) <= 346, shown
    assert -200 < float(shown["Prediction"].replace(",", "")) < 600, shown


def test_switching_models_resets_model_specific_choices(runs):
    at = runs("cnn")
    _widget(at.multiselect, "Methods (side by side)").set_value(["occlusion"]).run()
    _widget(at.selectbox, "Model").set_value(f"run:{runs.ids['iris']}").run()
    _no_bug(at)
    assert _widget(at.multiselect, "Methods (side by side)").value == ["integrated_gradients", "feature_ablation"]
    _widget(at.selectbox, "Model").set_value(f"run:{runs.ids['cnn']}").run()
    _no_bug(at)
    assert _widget(at.multiselect, "Methods (side by side)").value == ["saliency", "integrated_gradients", "grad_cam"]


def test_live_frames_of_a_job_follow_the_picked_model(workspace, probe):
    """A job recording attributions saves them with its run; the Live tab shows the picked run's frames."""
    from builder.jobs.queue import JobSpec, submit, wait

    store = RunStore(workspace, actor=SYSTEM)
    spec = dict(project=builder.load_template("cnn").model_dump(), dataset="digits", owner="local")
    rec = submit(store, JobSpec(**spec, config={"epochs": 2}, callbacks=["live_attributions"]))
    plain = submit(store, JobSpec(**spec, config={"epochs": 1}))
    assert wait(store, [rec, plain], 180) == {rec: "finished", plain: "finished"}
    at = _page({"ll_xp_probe": probe})
    _widget(at.selectbox, "Model").set_value(f"run:{rec}").run()
    at = _tab(at, "Live")
    live_figs = [s for s in _specs(at) if s.get("frames")]
    assert live_figs and [f["name"] for f in live_figs[0]["frames"]] == ["1", "2"]
    assert any(f"while training run `{rec}`" in c.value for c in at.caption)
    _widget(at.selectbox, "Model").set_value(f"run:{plain}").run()  # another model: not the same recording
    _no_bug(at)
    assert not [s for s in _specs(at) if s.get("frames")] and "Record attributions live" in _text(at)


def test_the_page_only_draws():
    """The page imports no torch or numpy, opens no file and names no explanation method (the specs do)."""
    import ast

    from builder.interpret.methods import method_names

    source = (ROOT / "app_pages" / "explain.py").read_text()
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "open":
            raise AssertionError("the page opens a file")
    assert not imported & {"torch", "numpy", "json", "pathlib", "captum"}, imported
    assert "run_dir" not in source
    assert [m for m in method_names() if f'"{m}"' in source] == []


def test_a_registered_method_is_offered_and_drawn(runs, monkeypatch):
    """A method added with one spec (builder/interpret/methods.py) shows up in the page's options and draws (the
    spec registered here, for the page, and in the probe child, which computes it)."""
    from builder.interpret.methods import registered
    from tests.jobs.test_probe import input_sign_spec

    monkeypatch.setattr(ModelProbe, "TEST_HOOK", "tests.jobs.test_probe:register_input_sign")
    with registered(input_sign_spec()):
        at = runs("cnn", ll_xp_probe=None)  # a fresh child, which runs the hook
        methods = _widget(at.multiselect, "Methods (side by side)")
        assert "Input sign" in methods.options  # options as shown: the spec's label
        methods.set_value(["input_sign"]).run()
        _no_bug(at)
        assert "Input sign<br>heatmap" in _titles(at)
        assert "Input sign" in _widget(_tab(at, "Trust").multiselect, "Methods").options
    at.session_state["ll_xp_probe"].close()


def test_an_unexpected_failure_is_one_message_not_a_traceback(runs, monkeypatch):
    from builder.interpret import figures

    def broken(*a, **k):
        raise RuntimeError("boom")

    monkeypatch.setattr(figures, "weight_histogram_figure", broken)
    at = runs("cnn")
    at.session_state["ll_xp_tab"] = "Activations & weights"
    at.run()
    assert not at.exception
    assert [e.value for e in at.error if "bug in LayerLab" in e.value and "boom" in e.value]
    assert "ch 0" in _titles(at)  # what ran before the failure is still shown


def test_a_run_whose_weights_do_not_load_is_an_error_message(workspace, probe):
    store = RunStore(workspace, actor=SYSTEM)
    res = run_training(builder.load_template("mlp"), "moons", {"epochs": 1}, store=store)
    store.weights_path(res.run_id).write_bytes(b"not a safetensors file")
    at = _page({"ll_xp_probe": probe})
    assert any("do not fit its project" in e.value for e in at.error)
    assert not at.get("plotly_chart")


def test_drawn_objectives_explain_the_network_that_reads_the_samples(workspace, probe):
    """A VAE run is explained through its encoder (μ per latent unit, attributions per input pixel); a GAN run,
    whose networks read noise or stacked pairs, says so in one line instead of offering nothing."""
    store = RunStore(workspace, actor=SYSTEM)
    gan = run_training(builder.load_template("gan"), "digits", {"epochs": 1}, store=store).run_id
    vae = run_training(builder.load_template("vae"), "digits", {"epochs": 1}, store=store).run_id
    at = _page({"ll_xp_probe": probe})
    _widget(at.selectbox, "Model").set_value(f"run:{vae}").run()
    _no_bug(at)
    assert "the encoder network's outputs" in _text(at) and not at.error
    assert "8×8 images read as 64 values" in _text(at)  # the encoder reads the digits flattened: shown as pictures
    assert "Integrated Gradients<br>heatmap" in _titles(at)
    shown = {m.label: m.value for m in at.metric}  # μ, not "True value 5 · Prediction 0.2618" (a digit's class)
    assert "True value" not in shown and len(shown["Output"].split(", ")) == 2, shown
    _widget(at.selectbox, "Model").set_value(f"run:{gan}").run()
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "reads the dataset's samples" in errors[0], errors


def test_no_tab_runs_a_model_in_the_server_process(runs, monkeypatch):
    """Every view of the page (every attribution method side by side, the global ranking, Try it, attention,
    activations, the trust checks, robustness, calibration, live playback) asks the sandboxed probe: no module
    of the run's model is called on a real tensor in this process, the server's (found walking a live,
    instrumented server; the page's figures of the probe's answers stay here). Fails when a view runs the
    model in-process (an ExplainSession built here instead of the probe's)."""
    import torch

    from builder.interpret.methods import method_label, method_names

    called: list[str] = []
    call = torch.nn.Module.__call__

    def spy(self, *a, **k):
        if any(isinstance(t, torch.Tensor) and t.device.type != "meta" for t in (*a, *k.values())):
            called.append(type(self).__name__)
        return call(self, *a, **k)

    monkeypatch.setattr(torch.nn.Module, "__call__", spy)
    by_label = {method_label(m): m for m in method_names()}
    clicked: list[str] = []
    for name in ("cnn", "iris", "transformer"):
        at = runs(name)
        every = _widget(at.multiselect, "Methods (side by side)")
        every.set_value([by_label[o] for o in every.options]).run()
        _no_bug(at)
        for b in [b for b in at.button if b.label.startswith("Rank over")]:
            b.click().run()
        for tab, buttons in (("Try it", ()), ("Attention", ()), ("Activations & weights", ()),
                             ("Trust", ("Run sanity check", "Check completeness")), ("Robustness", ("Run attack",)),
                             ("Calibration", ()), ("Live", ())):
            at = _tab(at, tab)
            for b in [b for b in at.button if b.label in buttons]:  # a view the model has (not every one has all)
                b.click().run()
                _no_bug(at)
                clicked.append(b.label)
        assert called == [], f"{name}: the model ran in the server process ({sorted(set(called))})"
    assert {"Run sanity check", "Check completeness", "Run attack"} <= set(clicked)  # the checks were walked


def test_a_run_that_did_not_learn_is_marked_in_the_picker_and_warned_about(workspace, probe):
    """A run trained at learning rate 5 ends confidently wrong (validation loss ~50 where a guess is 1.1): its
    explanations and Try it answered "100 % confident" without a word (a usability review). The picker marks it
    and the page says why, above what it shows; a run that learned gets neither."""
    store = RunStore(workspace, actor=SYSTEM)
    bad = run_training(builder.load_template("mlp"), "iris", {"epochs": 4, "lr": 5, "early_stopping": None, "seed": 0},
                       store=store, adapt=True).run_id
    good = _train(store, "mlp", "iris", 5, adapt=True)
    at = _page({"ll_xp_probe": probe, "ll_xp_model": f"run:{bad}"})
    picker = at.selectbox(key="ll_xp_model")
    assert "did not learn" in picker.format_func(f"run:{bad}") and "did not learn" not in picker.format_func(
        f"run:{good}")
    warned = [w.value for w in at.warning if "This run did not learn" in w.value]
    assert warned and "confidently wrong" in warned[0], [w.value for w in at.warning]
    picker.set_value(f"run:{good}").run()
    _no_bug(at)
    assert not [w.value for w in at.warning if "did not learn" in w.value]


def test_a_language_model_explains_one_next_token_at_a_chosen_position(workspace, probe):
    """Issues 28 and 29: on a GPT run the page offered 32,001 "output units" (``output 20200``: T × V logits as one
    menu; the child kept every logit of the split) and said "Sample #0". It says what the model predicts after the
    sample's last token, offers the sample's positions and then a few next tokens, and titles what it explains."""
    import torch

    from builder.data.text import decode, load_tokenizer
    from builder.escape import md_lines
    from builder.interpret.next_token import TOP_TOKENS, token_word
    from builder.interpret.session import MAX_PAD_CHOICES
    from builder.runs.pipeline import open_run

    store = RunStore(workspace, actor=SYSTEM)
    project = builder.load_template("gpt")
    rid = run_training(project, project.training["dataset"], {"epochs": 1, "seed": 0}, store=store).run_id
    model, ds = open_run(store, store.get(rid))
    t = int(ds.info.input_shape[0])
    with torch.no_grad():
        logits = model.eval()(ds.test.X[:1])[0]  # sample 0 has no padding: its last position is t - 1
    predicted = token_word(ds.info, int(logits[t - 1].argmax()))
    at = _page({"ll_xp_probe": probe, "ll_xp_model": f"run:{rid}"})
    assert not [s for s in at.selectbox if s.label == "Explain output"]
    position = _widget(at.selectbox, "Position")
    assert len(position.options) == t and position.value == t - 1
    token = _widget(at.selectbox, "Explain next token")
    assert len(token.options) <= TOP_TOKENS + 1 and predicted in token.options[0]
    # a metric's value is Markdown: a token (the corpus's text) is escaped
    assert _widget(at.metric, "Predicted next").value == md_lines(predicted)
    assert _widget(at.metric, "True next").value == md_lines(token_word(ds.info, int(ds.test.y[0, t - 1])))
    assert f"at position {t - 1}" in _titles(at) and "output " not in _titles(at)
    # the explained position is outlined on every token map (the map did not say which token it explains after)
    marks = [sh for s in _specs(at) for sh in s.get("layout", {}).get("shapes", []) if sh.get("type") == "rect"]
    assert marks and {(m["x0"], m["y0"]) for m in marks} == {((t - 1) % 12 - 0.5, (t - 1) // 12 - 0.5)}, marks
    assert f"outlined token is position {t - 1}" in _text(at)
    position.set_value(3).run()
    _no_bug(at)
    token = _widget(at.selectbox, "Explain next token")
    assert token_word(ds.info, int(logits[3].argmax())) in token.options[0]
    assert "at position 3" in _titles(at), _titles(at)
    # the header follows the chosen position (it kept the last one's prediction beside the picker's other token)
    assert _widget(at.metric, "Predicted next").value == md_lines(token_word(ds.info, int(logits[3].argmax())))
    assert _widget(at.metric, "True next").value == md_lines(token_word(ds.info, int(ds.test.y[0, 3])))
    text = _text(_tab(at, "Calibration"))  # it said "this model does next_token"
    assert "next-token prediction (a language model" in text and "does next_token" not in text, text[-900:]
    # no menu lists the vocabulary (the pad token's listed all V tokens)
    assert all(len(s.options) <= max(t, MAX_PAD_CHOICES) for s in at.selectbox), [len(s.options) for s in at.selectbox]
    # the sample reads as text: its tokens decoded, not subword pieces joined by spaces ("C ust om er")
    ids = ds.test.X[0].tolist()
    assert [c.value for c in at.code][0] == decode(load_tokenizer(ds.info.tokenizer), ids).rstrip()  # st.code strips
