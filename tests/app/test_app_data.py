"""AppTest: the Data page previews datasets and fixes graph/data mismatches."""

from __future__ import annotations

import json
import time

import pytest

import builder
from builder.data.uploads import UploadFolder
from builder.errors import LayerLabError
from builder.runs.owners import upload_dir
from tests.helpers import ME, button, open_app, shades_zip


@pytest.fixture
def at(workspace):
    return open_app("app_pages/data.py", owner=ME, timeout=90)


def _upload(name: str, data: bytes) -> str:
    """Keep ``data`` as the Data page's uploader does (the session owner's folder); its upload id."""
    import os

    return UploadFolder(upload_dir(os.environ["LAYERLAB_WORKSPACE"], ME)).save(name, data)


def test_digits_preview_and_fit(at):
    assert at.title[0].value == "Data"
    labels = {m.label: m.value for m in at.metric}
    assert labels["Task"] == "multiclass"
    assert labels["Input shape"] == "1×8×8"
    assert any("fit this dataset" in s.value for s in at.success)


def test_mismatch_is_shown_and_fixed_only_where_the_fix_trains(at):
    """Issue 29, item 4: the CNN on table rows was "fixed" into a graph Train refused (conv1 expects (B, C, H, W))
    and then said to fit. Now the page names the network that fits (the MLP), and its fix makes it train."""
    at.selectbox(key="ll_ds_name").set_value("iris").run()  # the session starts with the CNN template
    assert not at.exception
    assert at.session_state["ll_data"]["name"] == "iris"
    # one answer: the kind of network that fits, not per-layer fixes that would not make this one train (it said
    # "set shape to [4]" and "set out_features to 3", then that changing those was not enough)
    assert not at.warning
    advice = " ".join(i.value for i in at.info)
    assert "takes images of 1×8×8" in advice and "table rows of 4 values with 3 classes" in advice, advice
    assert "MLP" in advice and any("set shape to" in c.value for c in at.caption)  # the details, folded
    # the page's own button is the one click (it said "the Data page does it in one click" on the Data page)
    assert "the button below does it" in advice and "Data page" not in advice, advice
    assert "Fix the graph for this dataset" not in [b.label for b in at.button]
    assert not any("fit this dataset" in s.value for s in at.success)
    at.button(key="ll_fit_template").click().run()  # over the untouched starter: at once
    assert any(n.type == "Linear" for n in at.session_state["ll_project"].graph.nodes)
    assert at.session_state["ll_data"]["name"] == "iris"  # the dataset is kept
    # the one click loaded the MLP fitted to the data: it trains, no second fix asked for (it loaded the template
    # as is: 2 warnings and a "Fix the graph" button)
    g = at.session_state["ll_project"].graph
    assert next(n for n in g.nodes if n.type == "Input").params["shape"] == [4]
    assert any("fit this dataset" in s.value for s in at.success)
    assert not at.warning and "Fix the graph for this dataset" not in [b.label for b in at.button]


def test_the_fix_for_an_imported_network_says_which_layers_lose_their_weights(at):
    """helper-84's review: an imported 28x28 CNN (it starts from the import's run) on the 8x8 digits: "The fix
    changes: x: shape [1, 28, 28] → [1, 8, 8]", and nothing more; the pretrained fc (a Linear after the convolution)
    then read fewer values and started random, said only by the run's own line after training. The fix's words
    name it before the click; a network with no weights to keep is not told so."""
    from builder.graph.project import Project

    graph = {"nodes": [{"id": "x", "type": "Input", "params": {"shape": [1, 28, 28], "modality": "image"}},
                       {"id": "conv", "type": "Conv2d", "params": {"out_channels": 4, "kernel_size": 3}},
                       {"id": "flat", "type": "Flatten", "params": {}},
                       {"id": "fc", "type": "Linear", "params": {"out_features": 10}}],
             "edges": [{"source": "x", "target": "conv"}, {"source": "conv", "target": "flat"},
                       {"source": "flat", "target": "fc"}]}
    for start in ("20261129-000000-abcdef", None):
        at.session_state["ll_project"] = Project.model_validate({"name": "imported cnn", "graph": graph,
                                                                 "training": {"init_from": start}})
        at.selectbox(key="ll_ds_name").set_value("digits").run()
        assert not at.exception, [e.value for e in at.exception]
        (warn,) = [w.value for w in at.warning if "The fix changes" in w.value]
        assert ("fc change size" in warn and "start from random weights" in warn) == (start is not None), warn


def test_next_token_data_names_the_network_that_predicts_tokens(at):
    """A corpus for next-token prediction named the LSTM classifier, which cannot be adapted to it (logits per
    position): loading it showed the same advice and button again, a loop. It names the GPT template, and its
    one click gives a network that trains."""
    at.selectbox(key="ll_ds_name").set_value("text_corpus").run()  # the session starts with the CNN template
    assert not at.exception
    assert "Fix the graph for this dataset" not in [b.label for b in at.button]
    assert "GPT" in at.button(key="ll_fit_template").label
    at.button(key="ll_fit_template").click().run()  # over the untouched starter: at once
    assert not at.exception
    assert at.session_state["ll_project"].name == builder.load_template("gpt").name
    assert any("fit this dataset" in s.value for s in at.success), [w.value for w in at.warning]


def test_csv_dataset_from_a_saved_upload(at, tmp_path):
    csv = tmp_path / "flowers.csv"
    csv.write_text("a,b,label\n" + "".join(f"{i},{i % 3},{'x' if i % 2 else 'y'}\n" for i in range(60)))
    at.session_state["ll_data"] = {"kind": "csv", "name": "flowers.csv", "file": _upload("f.csv", csv.read_bytes()),
                                   "target": "label", "task": ""}
    at.segmented_control(key="ll_ds_kind").set_value("csv").run()
    assert not at.exception
    labels = {m.label: m.value for m in at.metric}
    assert labels["Task"] == "binary"
    # the upload is named as on every page, card and command (issue 29: "csv:flowers.csv", "flowers.csv (csv)")
    at.switch_page("app_pages/train.py").run()
    assert {m.label: m.value for m in at.metric}["Dataset"] == "csv: flowers.csv"


def test_bad_csv_shows_a_clear_error(at, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("")
    at.session_state["ll_data"] = {"kind": "csv", "name": "bad.csv", "file": _upload("bad.csv", b""), "target": "y",
                                   "task": ""}
    at.segmented_control(key="ll_ds_kind").set_value("csv").run()
    assert not at.exception
    assert any("empty" in e.value for e in at.error)


def test_image_zip_dataset(at, tmp_path):
    path = tmp_path / "shades.zip"
    path.write_bytes(shades_zip(12, vary=5))
    at.session_state["ll_data"] = {"kind": "images", "name": "shades.zip", "file": _upload("s.zip", path.read_bytes()),
                                   "size": 8}
    at.segmented_control(key="ll_ds_kind").set_value("images").run()
    assert not at.exception, [e.value for e in at.exception]
    labels = {m.label: m.value for m in at.metric}
    assert labels["Classes"] == "2" or labels["Classes"] == 2
    # the MLP on these images (issue 29, item 4: "Graph adapted" left its head at (B, 1, 8, 2)): the fix trains
    at.session_state["ll_project"] = builder.load_template("mlp")
    at.run()
    # the words above the button say what it does (helper-75: they said "set shape to [1, 8, 8]", the per-layer
    # fix, while the button flattened the images into an Input of [64])
    said = " ".join(w.value for w in at.warning).replace("\\", "")  # (Markdown escapes of the brackets)
    assert "shape [2] → [64]" in said and "set shape to" not in said, said
    button(at, "Fix the graph for this dataset").click().run()
    assert any("fit this dataset" in s.value for s in at.success), [w.value for w in at.warning]
    g = at.session_state["ll_project"].graph
    assert next(n for n in g.nodes if n.type == "Input").params["shape"] == [1 * 8 * 8]  # grey 8x8, flattened


def test_an_image_upload_is_decoded_in_a_sandboxed_worker_never_in_the_server(at, monkeypatch):
    """Issue 28: Pillow's decoders are native code, and an uploaded zip is a stranger's file. The Data page's preview
    of an image upload decodes nothing in the server process (the worker fills the dataset cache; this process
    opens its uint8 entry), and a worker that dies on a file is one error line with the page still answering."""
    from builder.process.sandbox import TEST_CRASH_ENV

    def refuse(*a, **k):
        raise AssertionError("a person's image was read by Pillow in the server process")

    from builder.data import images

    # the data stage's two readers of an image file (its header, its pixels); Streamlit itself reads the preview's
    # PNGs, made here from the decoded uint8 arrays
    monkeypatch.setattr(images, "_image_header", refuse)
    monkeypatch.setattr(images, "_decode", refuse)
    file = _upload("s.zip", shades_zip())
    monkeypatch.setenv(TEST_CRASH_ENV, file.removeprefix("upload:")[:16])  # the worker dies on this file
    at.session_state["ll_data"] = {"kind": "images", "name": "shades.zip", "file": file, "size": 8}
    at.segmented_control(key="ll_ds_kind").set_value("images").run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("SIGSEGV" in e.value for e in at.error), [e.value for e in at.error]
    monkeypatch.delenv(TEST_CRASH_ENV)
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.exception or at.error]
    labels = {m.label: m.value for m in at.metric}
    assert str(labels["Classes"]) == "2"


def test_an_unreadable_upload_is_not_put_in_use(at):
    """Issue 29: an empty .zip replaced the dataset in use (the digits); Train then showed only its error, with no
    dataset to train on. The page shows the error and keeps the dataset that loads."""
    import io
    import zipfile

    buf = io.BytesIO()
    zipfile.ZipFile(buf, "w").close()
    before = at.session_state["ll_data"] if "ll_data" in at.session_state else None  # noqa: SIM401 - no .get
    at.segmented_control(key="ll_ds_kind").set_value("images").run()
    at.file_uploader(key="ll_img_up").upload("empty_photos.zip", buf.getvalue()).run()
    assert not at.exception
    assert any("empty_photos.zip: no class sub-folders" in e.value for e in at.error), [e.value for e in at.error]
    assert any("Training still uses" in c.value for c in at.caption)
    after = at.session_state["ll_data"] if "ll_data" in at.session_state else None  # noqa: SIM401 - no .get
    assert after == before and (after or {}).get("kind", "builtin") == "builtin", after


@pytest.mark.parametrize("spec", [
    {"kind": "csv", "name": "x.csv", "file": "{secret}", "target": "y", "task": ""},
    {"kind": "images", "name": "x.zip", "file": "{secret}", "size": 8},
    {"kind": "text", "name": "x.csv", "file": "{secret}", "options": {"target": "y", "text_column": "t"}},
    {"kind": "series", "name": "x.csv", "file": "{secret}", "options": {"lookback": 2}},
])
def test_a_dataset_naming_a_server_file_is_refused_without_quoting_it(at, tmp_path, spec):
    secret = tmp_path / "private.csv"
    secret.write_text("SECRET-FIRST-LINE,y\n1,0\n")
    at.session_state["ll_data"] = json.loads(json.dumps(spec).replace("{secret}", str(secret)))
    at.segmented_control(key="ll_ds_kind").set_value(spec["kind"]).run()
    assert not at.exception
    shown = " ".join(e.value for e in at.error)
    assert "never a file on the server" in shown and "SECRET" not in shown and str(secret) not in shown


def test_a_text_upload_previews_its_tokens_lengths_and_unknown_words(at):
    rows = "".join(f"the film was {'good' if i % 2 else 'bad'} number {i},{'pos' if i % 2 else 'neg'}\n"
                   for i in range(80))
    at.session_state["ll_data"] = {"kind": "text", "name": "r.csv", "file": _upload("r.csv", b"text,label\n" + rows.encode()),
                                   "task": None, "options": {"target": "label", "text_column": "text", "max_length": 8}}
    at.segmented_control(key="ll_ds_kind").set_value("text").run()
    assert not at.exception
    labels = {m.label: m.value for m in at.metric}
    assert labels["Task"] == "binary" and labels["Input shape"] == "8"
    assert labels["Unknown tokens (val + test)"].endswith("%")  # the numbers of val/test rows were never seen
    assert float(labels["Unknown tokens (val + test)"].rstrip("%")) > 0


def test_count_axes_are_ticked_at_whole_numbers(at):
    """Usability review: four-token texts gave a token histogram ticked "4 4 4 4 4" (tickformat "d" over plotly's
    ticks 3.8 .. 4.2), and a class balance of a few samples a class was ticked at half samples (tests/app/test_fmt.py).
    Narrow count axes are ticked at whole numbers."""
    rows = "".join(f"{'great lovely' if i % 2 else 'awful boring'} movie {i},{'pos' if i % 2 else 'neg'}\n"
                   for i in range(40))
    at.session_state["ll_data"] = {"kind": "text", "name": "r.csv", "file": _upload("r.csv", b"text,label\n" + rows.encode()),
                                   "task": None, "options": {"target": "label", "text_column": "text", "max_length": 8}}
    at.segmented_control(key="ll_ds_kind").set_value("text").run()
    assert not at.exception, [e.value for e in at.exception]
    figs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    (hist,) = [f for f in figs if f["data"][0]["type"] == "histogram"]
    assert hist["layout"]["xaxis"].get("dtick") == 1, hist["layout"]["xaxis"]


def test_a_fine_tuned_runs_text_spec_opens_on_the_data_page(at):
    """A run fine-tuned from a pretrained model records tokenizer "pretrained" and the model's vocabulary (50,257
    for GPT-2): put back on the Data page (Runs › Open), the tokenizer picker raised ValueError (not one of its
    choices) and the vocabulary box StreamlitAPIException (past its 50,000)."""
    rows = "".join(f"the film was {'good' if i % 2 else 'bad'},{'pos' if i % 2 else 'neg'}\n" for i in range(40))
    at.session_state["ll_data"] = {"kind": "text", "name": "r.csv", "file": _upload("r.csv", b"text,label\n" + rows.encode()),
                                   "task": None, "options": {"target": "label", "text_column": "text",
                                                             "tokenizer": "pretrained", "vocab_size": 50_257}}
    at.segmented_control(key="ll_ds_kind").set_value("text").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="ll_txt_tok").value == "word" and at.number_input(key="ll_txt_vocab").value == 50_000


def test_a_builtin_series_previews_its_windows(at):
    at.selectbox(key="ll_ds_name").set_value("nile").run()
    assert not at.exception
    labels = {m.label: m.value for m in at.metric}
    assert labels["Task"] == "forecast" and labels["Input shape"] == "10×1"
    assert any("public domain" in c.value for c in at.caption)
    # the CNN cannot be adapted to windows: the page names the forecaster (it named "MLP for tabular data")
    assert "RNN forecaster" in at.button(key="ll_fit_template").label
    at.button(key="ll_fit_template").click().run()  # over the untouched starter: at once
    assert any("fit this dataset" in s.value for s in at.success), [w.value for w in at.warning]


@pytest.mark.parametrize("template", ["gan", "vae"])
def test_a_drawn_objective_on_its_own_data_fits_as_train_says(workspace, template):
    """Issue 29: the GAN and VAE templates on their digits were told they "take images of 1×8×8; this data is
    images of 1×8×8 ... a network that fits this data is the Small CNN" (one output wanted, their loss nodes
    counted), while Train accepted them; the Data page now asks Train's own question."""
    at = open_app("app_pages/data.py", owner=ME, template=template, timeout=90)
    assert not at.info or not any("a network that fits" in i.value for i in at.info), [i.value for i in at.info]
    assert any("fit this dataset" in s.value for s in at.success), [w.value for w in at.warning]


def test_an_upload_past_the_storage_quota_is_refused_and_not_kept(at, monkeypatch):
    import os

    monkeypatch.setenv("LAYERLAB_QUOTA_STORAGE_MB", "1")
    at.segmented_control(key="ll_ds_kind").set_value("csv").run()
    rows = "".join(f"{i},{i % 7},{i % 2}\n" for i in range(150_000))  # ~1.5 MiB: more than the whole quota
    at.file_uploader(key="ll_csv_up").upload("big.csv", ("a,b,y\n" + rows).encode()).run()
    assert not at.exception
    assert any("may take at most 1 MiB" in e.value for e in at.error), [e.value for e in at.error]
    folder = upload_dir(os.environ["LAYERLAB_WORKSPACE"], ME)
    assert not list(folder.iterdir())
    assert (at.session_state["ll_data"] or {}).get("kind") != "csv"


@pytest.mark.parametrize("template", ["gan", "vae"])
def test_a_drawn_objective_on_a_table_is_told_the_kind_that_fits(workspace, template):
    """Issue 29: a GAN or VAE on table rows was told "the network takes vectors of 64 values ... a network that fits
    is MLP" on the Data page and "set shape to [4]" on Train and Build (its generator still made 64 values). The one
    verdict names the kind of network on the canvas, the data, and the template that fits; Train shows the same."""
    at = open_app("app_pages/data.py", owner=ME, template=template, timeout=90)
    at.selectbox(key="ll_ds_name").set_value("iris").run()
    advice = " ".join(i.value for i in at.info)
    assert f"The {template.upper()} on the canvas" in advice and "table rows of 4 values" in advice, advice
    assert "MLP for tabular data" in advice and "64 values per sample" in advice, advice
    assert not any("set shape to" in t.value for t in [*at.caption, *at.warning, *at.info])
    assert "Load the MLP for tabular data template" in [b.label for b in at.button]
    at.switch_page("app_pages/train.py").run()
    said = [w.value for w in at.warning]
    assert any(f"The {template.upper()} on the canvas" in w and "MLP for tabular data" in w for w in said), said
    assert not any("set shape to" in w for w in said), said


def test_the_autoencoder_trains_on_its_digits_as_its_project_says(workspace):
    """The Autoencoder template (training task "reconstruction") on its own digits: the pages loaded the digits for
    classification and asked to set its output to 10 classes; Train refused the template as it came, while the
    command line trained it. The pages ask the project's task of a built-in dataset, as the job does."""
    at = open_app("app_pages/data.py", owner=ME, template="autoencoder", timeout=90)
    assert {m.label: m.value for m in at.metric}["Task"] == "reconstruction"
    assert any("fit this dataset" in s.value for s in at.success), [w.value for w in at.warning]
    at.selectbox(key="ll_ds_name").set_value("iris").run()  # another table: its fix keeps an autoencoder
    assert {m.label: m.value for m in at.metric}["Task"] == "reconstruction"
    # the mismatch in its words, under "What does not fit" beside the fix's own list of changes
    assert any("(the flattened input)" in w.value for w in [*at.warning, *at.caption]), [w.value for w in at.warning]
    at.switch_page("app_pages/train.py").run()
    assert {m.label: m.value for m in at.metric}["Task"] == "reconstruction"


def test_the_template_loaded_for_short_texts_reads_them_at_a_length_that_fits(at):
    """Review of issue 29: five-word reviews uploaded as text, the CNN on the canvas: "Load the LSTM sequence
    classifier template" gave "✓ the graph trains", but at the default max length 64 (59 tokens of padding) the
    LSTM stayed at chance (54.9 % on its first test review, wrong), as the warning above it says. The one click
    loads the network and the max length that fits the texts, and says so."""
    rows = "".join(f"the film was {'great' if i % 2 else 'awful'} really,{'pos' if i % 2 else 'neg'}\n"
                   for i in range(80))
    at.session_state["ll_data"] = {"kind": "text", "name": "r.csv", "file": _upload("r.csv", b"text,label\n" + rows.encode()),
                                   "task": None, "options": {"target": "label", "text_column": "text"}}
    at.segmented_control(key="ll_ds_kind").set_value("text").run()
    assert {m.label: m.value for m in at.metric}["Input shape"] == "64"
    # the padding advice is for a network that reads these texts: the CNN on the canvas is told the template
    # (whose click reads them at 8), not "Use max length 8" above it (known from the review of issue 29)
    assert "Use max length 8" not in [b.label for b in at.button]
    assert not [w.value for w in at.warning if "mostly padding" in w.value]
    at.button(key="ll_fit_template").click().run()
    if any(b.key == "ll_confirm_replace" for b in at.button):
        at.button(key="ll_confirm_replace").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert {m.label: m.value for m in at.metric}["Input shape"] == "8"
    assert any("fit this dataset" in s.value for s in at.success), [w.value for w in at.warning]
    assert "Use max length 8" not in [b.label for b in at.button]
    assert any("max length 8" in t.value for t in at.toast), [t.value for t in at.toast]


@pytest.mark.parametrize(("dataset", "ranges"), [
    ("blobs", {"n_samples": (20, 200_000), "noise": (0, 5), "centers": (2, 20)}),
    ("sequence", {"length": (4, 64), "markers": (2, 4)}),
    ("sunspots", {"lookback": (1, 4096), "horizon": (1, 1024), "stride": (1, 4096)}),
    ("text_corpus", {"vocab_size": (260, 50_000), "max_length": (2, 1024)}),  # byte-level BPE
])
def test_a_builtin_datasets_number_boxes_allow_only_what_it_loads(at, dataset, ranges):
    """The built-in datasets' option boxes had no bounds: n_samples 0, noise -0.1, centers 1, lookback 0 or a BPE
    vocabulary of 259 were typed and then refused by the loader. The boxes take their ranges from the rule the
    loaders apply (builder.data.limits.OPTION_RANGES), and each end loads or is refused as the box says."""
    from builder.data import load_dataset

    at.selectbox(key="ll_ds_name").set_value(dataset).run()
    assert not at.exception
    for key, (lo, hi) in ranges.items():
        box = at.number_input(key=f"ll_dso_{dataset}_{key}")
        assert (box.min, box.max) == (lo, hi), key
        for bad in (lo - 1, hi + 1):
            with pytest.raises(LayerLabError, match=f"option {key} of {dataset} is from {lo:g} to {hi:g}"):
                load_dataset({"kind": "builtin", "name": dataset, "options": {key: bad}})



def test_a_series_csv_with_a_date_column_offers_the_date_as_time_and_the_numbers_as_series(at):
    """A usability review: a CSV of months and sales stopped the Data page with numpy's "Cannot interpret
    '<StringDtype(na_value=nan)>' as a data type" (pandas 3 reads text as its own dtype). The page reads numeric
    columns by the loader's rule (builder.data.series.numeric_columns)."""
    rows = "".join(f"2000-{m:02d}-01,{100 + 3 * m},{m % 2 == 0}\n" for m in range(1, 13)) * 4
    at.segmented_control(key="ll_ds_kind").set_value("series").run()
    at.number_input(key="ll_ser_lb").set_value(4).run()
    at.file_uploader(key="ll_ser_up").upload("sales.csv", ("month,sales,promo\n" + rows).encode()).run()
    assert not at.exception, [e.value for e in at.exception]
    assert "month" in at.selectbox(key="ll_ser_time").options
    series = at.multiselect(key="ll_ser_cols")
    assert "month" not in series.options and series.value == ["sales", "promo"]


def _reviews(at) -> None:
    """80 short labelled reviews (4 words each, two classes) chosen on the Data page's Text tab."""
    rows = "".join(f"the film was {'great' if i % 2 else 'awful'} really,{'pos' if i % 2 else 'neg'}\n"
                   for i in range(80))
    at.session_state["ll_data"] = {"kind": "text", "name": "r.csv", "file": _upload("r.csv", b"text,label\n" + rows.encode()),
                                   "task": None, "options": {"target": "label", "text_column": "text",
                                                             "vocab_size": 40}}
    at.segmented_control(key="ll_ds_kind").set_value("text").run()
    assert not at.exception, [e.value for e in at.exception]


def test_the_padding_advice_is_for_a_network_that_reads_the_texts(at):
    """The LSTM that reads these texts (the canvas's own) is told that 64 tokens are mostly padding and offered the
    length that fits; its one click reads them at 8 and the network still trains on them."""
    at.session_state["ll_project"] = builder.load_template("sentiment_lstm")
    _reviews(at)
    assert any("mostly padding" in w.value for w in at.warning), [w.value for w in at.warning]
    at.button(key="ll_txt_len_fit").click().run()
    assert not at.exception and {m.label: m.value for m in at.metric}["Input shape"] == "8"


def test_texts_read_at_another_length_than_a_fixed_length_network_are_offered_its_length(at):
    """A usability review: a pretrained BERT (32 positions) with texts read at 20 tokens was told to load the LSTM
    template, which would have thrown the pretrained model away. A network whose length is fixed (a learned
    position table) is offered its own length for the texts, and then trains on them."""
    from builder.graph.project import Project

    graph = {"nodes": [{"id": "ids", "type": "Input", "params": {"shape": [12], "modality": "tokens", "vocab_size": 40}},
                       {"id": "emb", "type": "Embedding", "params": {"embedding_dim": 4}},
                       {"id": "pos", "type": "Parameter", "params": {"shape": [12, 4]}},
                       {"id": "add", "type": "Add", "params": {}},
                       {"id": "flat", "type": "Flatten", "params": {}},
                       {"id": "head", "type": "Linear", "params": {"out_features": 2}}],
             "edges": [{"source": "ids", "target": "emb"}, {"source": "emb", "target": "add"},
                       {"source": "ids", "target": "pos"},  # (a Parameter takes the batch size from its input)
                       {"source": "pos", "target": "add"}, {"source": "add", "target": "flat"},
                       {"source": "flat", "target": "head"}]}
    at.session_state["ll_project"] = Project.model_validate({"name": "fixed length", "graph": graph})
    _reviews(at)
    assert "ll_fit_template" not in [b.key for b in at.button]  # no template offered over this network
    assert any("This network reads 12 tokens per sample" in i.value for i in at.info), [i.value for i in at.info]
    at.button(key="ll_txt_len_model").click().run()
    assert {m.label: m.value for m in at.metric}["Input shape"] == "12"
    assert not at.exception and "ll_txt_len_model" not in [b.key for b in at.button]
    assert any("fit this dataset" in s.value for s in at.success)  # the offer made it train


def test_a_language_model_over_texts_with_labels_is_not_offered_a_length_that_would_not_make_it_train(at):
    """An outside review: the GPT template with a CSV of labelled reviews was offered "Read them at 32: the data is
    made to fit the network" (Use max length 32); after the click Train still refused it, in words that named the
    same thing twice ("takes texts (token ids) of 32 tokens; received: texts (token ids) of 32 tokens with 2
    classes"). The length is offered only where it makes the network train; a language model is named as one."""
    at.session_state["ll_project"] = builder.load_template("gpt")
    rows = "".join(f"the film was {'great' if i % 2 else 'awful'} really,{'pos' if i % 2 else 'neg'}\n"
                   for i in range(80))
    at.session_state["ll_data"] = {"kind": "text", "name": "r.csv", "file": _upload("r.csv", b"text,label\n" + rows.encode()),
                                   "task": None, "options": {"target": "label", "text_column": "text"}}
    at.segmented_control(key="ll_ds_kind").set_value("text").run()
    assert not at.exception, [e.value for e in at.exception]
    assert "ll_txt_len_model" not in [b.key for b in at.button], [i.value for i in at.info]
    advice = " ".join(i.value for i in at.info)
    assert "a language model" in advice and "with 2 classes" in advice, advice
    at.button(key="ll_fit_template").click().run()  # the network that fits: it trains
    assert not at.exception and any("fit this dataset" in s.value for s in at.success)


def test_a_regression_targets_distribution_is_drawn_in_its_own_units(at):
    """The model sees a regression target standardised; the Data page drew that (diabetes progression from -2 to
    2.5) where a person reads its units (25 to 346), and titled no axis (a usability review)."""
    import json

    at.selectbox(key="ll_ds_name").set_value("diabetes").run()
    assert not at.exception
    spec = next(json.loads(c.proto.spec) for c in at.get("plotly_chart")
                if json.loads(c.proto.spec)["data"][0].get("type") == "histogram")
    xs = spec["data"][0]["x"]
    values = xs if isinstance(xs, list) else None
    if values is None:  # plotly's typed-array form
        import base64

        import numpy as np
        values = np.frombuffer(base64.b64decode(xs["bdata"]), dtype=xs["dtype"]).tolist()
    assert min(values) >= 20 and max(values) > 300, (min(values), max(values))
    assert spec["layout"]["yaxis"]["title"]["text"] == "samples"


def test_a_regression_csvs_first_rows_show_its_target_by_name_in_its_own_units(at):
    """A review in Chromium: prices.csv (target "price", 150k to 450k) showed "First rows (after preprocessing)"
    with a column "target" of -0.661 (standardised) beside a histogram of "price" in its own units. The table now
    names the target by its column and shows it as the histogram does; the heading says which values are which."""
    rows = "".join(f"{50 + i},{i % 4 + 1},{150_000 + 2_500 * i + 1_000 * (i % 4)}\n" for i in range(120))
    at.session_state["ll_data"] = {"kind": "csv", "name": "prices.csv", "task": "",
                                   "file": _upload("prices.csv", ("area,rooms,price\n" + rows).encode()), "target": "price"}
    at.segmented_control(key="ll_ds_kind").set_value("csv").run()
    assert not at.exception, [e.value for e in at.exception]
    assert {m.label: m.value for m in at.metric}["Task"] == "regression"
    (table,) = at.dataframe
    df = table.value
    assert list(df.columns)[:1] == ["price"] and "target" not in df.columns, list(df.columns)
    assert df["price"].between(150_000, 460_000).all(), df["price"].tolist()  # the CSV's values, not -0.661
    csv_prices = {150_000 + 2_500 * i + 1_000 * (i % 4) for i in range(120)}
    assert all(min(abs(p - q) for q in csv_prices) < 0.5 for p in df["price"]), df["price"].tolist()
    head = next(m.value for m in at.markdown if m.value.startswith("**First rows**"))
    assert "price in its own units" in head and "features after preprocessing" in head, head
    hist = next(json.loads(c.proto.spec) for c in at.get("plotly_chart")
                if json.loads(c.proto.spec)["data"][0].get("type") == "histogram")
    assert hist["layout"]["xaxis"]["title"]["text"] == "price"  # the same name as the table's column


def _sent_so_far() -> list:
    """The messages the running script has sent so far (called from inside the script, in an AppTest)."""
    from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

    return list(get_script_run_ctx()._enqueue.__self__.forward_msgs())  # the AppTest runner's queue


def _spinners(sent: list) -> list[str]:
    """The texts of the spinners among ``sent``."""
    return [e.spinner.text for m in sent if m.HasField("delta") and m.delta.WhichOneof("type") == "new_transient"
            for e in m.delta.new_transient.elements]


def _metrics_still_shown(before, sent: list) -> list[str]:
    """The metrics of the last run's page that a browser still shows while this run has sent only ``sent``.
    A top-level element of the last run is gone once this run sent a new element at its place; a block sent there
    keeps the old block's children on screen until the run replaces them one by one (Streamlit's frontend)."""
    replaced = {m.metadata.delta_path[1] for m in sent if m.HasField("delta") and len(m.metadata.delta_path) == 2
                and m.metadata.delta_path[0] == 0 and m.delta.WhichOneof("type") == "new_element"}

    def metrics(node) -> list[str]:
        if getattr(node, "type", None) == "metric":
            return [f"{node.label}: {node.value}"]
        return [m for child in getattr(node, "children", {}).values() for m in metrics(child)]

    return [m for i, node in before.main.children.items() if i not in replaced for m in metrics(node)]


def test_a_dataset_loading_hides_the_preview_of_the_one_before(at, monkeypatch):
    """Issue 29: while another dataset loaded, the preview of the one before stayed on the page as if it were the new
    one's (a spinner took the place of its heading alone). Now its place is emptied before the load, and a spinner
    names what loads."""
    from app_pages import ui

    assert any(m.label == "Input shape" and m.value == "1×8×8" for m in at.metric)  # digits, shown
    during, real = {}, ui.open_spec

    def watched(spec):
        during["shown"] = _metrics_still_shown(at, _sent_so_far())
        deadline = time.monotonic() + 10  # the spinner shows after half a second (st.spinner's delay)
        while not any("Loading iris" in t for t in _spinners(_sent_so_far())) and time.monotonic() < deadline:
            time.sleep(0.05)
        during["spinner"] = time.monotonic() < deadline
        return real(spec)

    monkeypatch.setattr(ui, "open_spec", watched)
    at.selectbox(key="ll_ds_name").set_value("iris").run()
    assert not at.exception
    assert during["shown"] == [], f"the digits' preview stayed on screen while iris loaded: {during['shown']}"
    assert during["spinner"], "no spinner named the dataset loading"
    assert any(m.label == "Input shape" and m.value == "4" for m in at.metric)  # then iris's own preview
    during.clear()
    at.selectbox(key="ll_ds_name").set_value("iris").run()  # loaded already: nothing loads, nothing is emptied
    assert during == {} and any(m.label == "Input shape" and m.value == "4" for m in at.metric)


def test_the_data_page_shows_the_data_the_training_seed_makes(workspace):
    """The job loads its data with the run's seed (a built-in's generation and every split); the Data page loaded
    seed 0's: with Seed 5 on the Train page it showed other moons and another split than the run trained on."""
    import numpy as np

    from builder.data import load_dataset

    at = open_app("app_pages/train.py", owner=ME, template="mlp")  # MLP on moons
    next(n for n in at.number_input if n.label == "Seed").set_value(5).run()
    at.switch_page("app_pages/data.py").run()
    assert not at.exception, [e.value for e in at.exception]
    shown = at.session_state["ll_dataset"][1]
    trained = load_dataset("moons", seed=5)  # as builder.runs.pipeline loads it for a run of seed 5
    assert np.array_equal(shown.train.X.numpy(), trained.train.X.numpy())
    assert not np.array_equal(shown.train.X.numpy(), load_dataset("moons").train.X.numpy())


def test_a_pretrained_encoder_over_texts_with_labels_is_offered_a_head_not_another_network(at):
    """helper-75: an imported DistilBERT (it starts from the import's run; 16 values per token, no head) with a CSV
    of labelled reviews was called "a language model" that "guesses the next token", and the page's one click was
    "Load the Sentiment LSTM template", which throws the pretrained model away. The page names an encoder, offers
    the head it needs, keeps every layer, and the length offer then makes it train."""
    from builder.graph.project import Project

    graph = {"nodes": [{"id": "ids", "type": "Input", "params": {"shape": [12], "modality": "tokens", "vocab_size": 40}},
                       {"id": "emb", "type": "Embedding", "params": {"embedding_dim": 4}},
                       {"id": "pos", "type": "Parameter", "params": {"shape": [12, 4]}},
                       {"id": "add", "type": "Add", "params": {}},
                       {"id": "norm", "type": "LayerNorm", "params": {}}],
             "edges": [{"source": "ids", "target": "emb"}, {"source": "emb", "target": "add"},
                       {"source": "ids", "target": "pos"}, {"source": "pos", "target": "add"},
                       {"source": "add", "target": "norm"}]}
    at.session_state["ll_project"] = Project.model_validate({"name": "imported encoder", "graph": graph,
                                                             "training": {"init_from": "20261129-000000-abcdef"}})
    _reviews(at)
    advice = " ".join(i.value for i in at.info)
    assert "ll_fit_template" not in [b.key for b in at.button], advice  # no template over the pretrained network
    assert "language model" not in advice and "a vector per token" in advice, advice
    at.button(key="ll_add_head").click().run()
    g = at.session_state["ll_project"].graph
    assert {n.id for n in g.nodes} >= {"ids", "emb", "pos", "add", "norm", "first_token", "head"}
    assert g.node("head").params["out_features"] == 2
    at.button(key="ll_txt_len_model").click().run()  # its own length (12), as before
    assert not at.exception and any("fit this dataset" in s.value for s in at.success), [i.value for i in at.info]
    # 5-word texts read at 12 are "mostly padding", but a shorter length would break this network: not offered
    # (it offered "Use max length 8", and then "Use max length 12" again)
    assert "ll_txt_len_fit" not in [b.key for b in at.button], [b.label for b in at.button]
