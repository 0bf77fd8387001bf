"""Try it on sequences, in the sandboxed probe child: a sentence with per-token attributions, a prompt continued
by a language model, a pasted series forecast in its own units."""

from __future__ import annotations

import numpy as np
import pytest

import builder
from builder.data.access import SYSTEM
from builder.errors import ExplainError
from builder.graph.architectures import build as build_architecture
from builder.graph.project import Project
from builder.interpret import tryit
from builder.jobs.probe import ModelProbe, ProbeSession
from builder.runs.pipeline import run_training
from builder.runs.store import RunStore

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _lstm_lm(vocab: int, length: int) -> Project:
    return build_architecture("lstm_lm", seq_len=length, vocab=vocab, embed=16, hidden=32)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    store = RunStore(tmp_path_factory.mktemp("ws"), actor=SYSTEM)
    ids = {"sentiment": run_training(builder.load_template("sentiment_lstm"), "text_sentiment", {"epochs": 2},
                                     store=store, dataset_options={"n_samples": 300}).run_id,
           "lm": run_training(_lstm_lm(300, 16), "text_corpus", {"epochs": 1, "lr": 0.01}, store=store,
                              dataset_options={"vocab_size": 300, "max_length": 16}, adapt=True).run_id,
           "forecast": run_training(builder.load_template("rnn_forecaster"), "sunspots", {"epochs": 2},
                                    store=store).run_id}
    probe = ModelProbe()
    yield store, ids, probe
    probe.close()


def test_a_sentence_is_tokenized_like_the_training_data_and_attributed_per_token(runs):
    store, ids, probe = runs
    xs = ProbeSession(probe, store, ids["sentiment"], "test")
    assert tryit.try_form(xs).kind == "tokens"
    x = tryit.encode_tokens(xs, "Honestly, the plot was NOT wonderful but zzyzx")  # unknown word: <unk>, no refusal
    assert x.shape == (1, 20) and int(x[0, -1]) == 0
    # a sentence past the model's 20 tokens says how many are left out (they were dropped silently)
    assert tryit.tokens_cut(xs, "Honestly, the plot was NOT wonderful") == 0
    assert tryit.tokens_cut(xs, " ".join(["good"] * 23)) == 3
    res = tryit.try_input(xs, x, "layer_integrated_gradients")
    assert res.predicted in ("negative", "positive") and not res.error
    assert res.explanation.attributions.reshape(-1).shape[0] == 20  # one value per token position


def test_a_prompt_is_continued_in_the_child(runs):
    store, ids, probe = runs
    xs = ProbeSession(probe, store, ids["lm"], "test")
    form = tryit.try_form(xs)
    assert form.kind == "prompt" and form.start_text
    out = tryit.continue_text(xs, tryit.encode_tokens(xs, "Return a new"), steps=12, top_k=10, seed=3)
    assert out["prompt"].strip() == "Return a new" and out["continuation"]
    assert out == tryit.continue_text(xs, tryit.encode_tokens(xs, "Return a new"), steps=12, top_k=10, seed=3)
    with pytest.raises(ExplainError, match="Fix: type the start of a text"):  # said "words of the vocabulary"
        tryit.encode_tokens(xs, "  ")


def test_the_server_never_loads_a_runs_tokenizer(runs, monkeypatch):
    """A run's tokenizer.json is a pipeline its job wrote (padding, regular expressions the library runs): Try it
    reads it only in the probe's child. Here (the page's process) loading one fails the test."""
    import builder.data.text as text

    def refuse(_: str):
        raise AssertionError("the server process loaded a run's tokenizer")

    monkeypatch.setattr(text, "load_tokenizer", refuse)
    store, ids, probe = runs
    xs = ProbeSession(probe, store, ids["sentiment"], "test")
    assert tryit.try_form(xs).start_text
    x = tryit.encode_tokens(xs, "the plot was wonderful")
    assert x.shape == (1, 20) and tryit.tokens_cut(xs, " ".join(["good"] * 23)) == 3
    assert tryit.tokenize(xs, "the plot was wonderful")[0].tolist() == x.tolist()
    lm = ProbeSession(probe, store, ids["lm"], "test")
    assert tryit.try_form(lm).kind == "prompt"
    assert tryit.continue_text(lm, tryit.encode_tokens(lm, "Return a new"), steps=4, seed=1)["prompt"].strip()


def test_a_session_reads_its_runs_tokenizer_once(runs, monkeypatch):
    """In the child, the sample's text, the form, each typed prompt and each continuation all use one tokenizer the
    session read once (each call parsed tokenizer.json again: a 50 k-token vocabulary is megabytes of JSON)."""
    import builder.data.text as text
    from builder.interpret.session import ExplainSession, open_run

    store, ids, _ = runs
    xs = ExplainSession(*open_run(store, store.get(ids["lm"])), "test", ids["lm"])
    loads = []
    real = text.load_tokenizer
    monkeypatch.setattr(text, "load_tokenizer", lambda s: loads.append(1) or real(s))
    assert xs.sample_text(0) and xs.sample_text(1)
    assert tryit.try_form(xs).kind == "prompt"
    for prompt in ("Return a new", "def main"):
        out = tryit.continue_text(xs, tryit.encode_tokens(xs, prompt), steps=4, seed=1)
        assert out["prompt"].strip() == prompt
    assert tryit.decode_text(xs, [1, 2, 3]) == text.decode(real(xs.info.tokenizer), [1, 2, 3])
    assert len(loads) == 1


def test_a_pasted_series_is_forecast_in_its_own_units(runs):
    store, ids, probe = runs
    xs = ProbeSession(probe, store, ids["forecast"], "test")
    form = tryit.try_form(xs)
    assert form.kind == "series" and len(form.start_text.splitlines()) == 22
    res = tryit.try_input(xs, tryit.encode_series(xs, form.start_text))
    value = float(res.predicted)
    assert np.isfinite(value) and -100 < value < 400  # sunspot numbers, not standardised units
    with pytest.raises(ExplainError, match="last 22 steps"):
        tryit.encode_series(xs, "1\n2\n3")
    with pytest.raises(ExplainError, match="numbers, one step per line"):
        tryit.encode_series(xs, "1\nabc\n3")
    lines = form.start_text.splitlines()
    for bad in ("nan", "inf", "-Infinity", "1e45"):  # went to the model: a forecast of NaN or infinity
        with pytest.raises(ExplainError, match="not a finite number"):
            tryit.encode_series(xs, "\n".join([*lines[:-1], bad]))


def test_a_long_pasted_series_reads_only_the_steps_the_model_takes(runs):
    """A paste of 500,000 steps was split and parsed whole on every view of the page (3.2 s, 70 MiB in the server)
    for the last 22 the model reads; now only those are read, and they give the same window."""
    import tracemalloc

    store, ids, probe = runs
    xs = ProbeSession(probe, store, ids["forecast"], "test")
    window = tryit.try_form(xs).start_text
    long = "1\n" * 500_000 + window
    tracemalloc.start()
    try:
        x = tryit.encode_series(xs, long)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert x.tolist() == tryit.encode_series(xs, window).tolist()
    assert peak < 4 * 2**20, peak  # the 1 MB text is the caller's; no list of its lines


def test_an_explained_forecast_window_shows_its_true_and_predicted_value_in_the_series_units(runs):
    """The Explain page showed only "Sample #0" for a forecaster: neither the window's next value nor the model's."""
    store, ids, probe = runs
    s = ProbeSession(probe, store, ids["forecast"], "test").summary(0)
    assert s.kind == "value", s
    true, predicted = float(s.true), float(s.predicted)
    assert 0 <= true < 400 and -100 < predicted < 400  # sunspot numbers, not standardised units
    xs = ProbeSession(probe, store, ids["forecast"], "test")
    trues = [float(xs.summary(i).true) for i in range(5)]
    assert sum(trues) / 5 > 10, trues  # standardised sunspot numbers sit within a few units of 0


def test_a_series_is_shown_with_its_columns_names(runs):
    """An outside review: a weather series' Explain heatmaps and Try it named its columns ``feature 1`` and
    ``feature 2`` (``value`` for sunspots): the session checked the names, one per column, against the window's
    values (24 steps x 2). The preview, the attribution heatmaps and Try it's form read the columns' own names."""
    from builder.interpret import figures

    store, ids, probe = runs
    xs = ProbeSession(probe, store, ids["forecast"], "test")  # as the Explain page asks, in the probe child
    assert tryit.try_form(xs).names == ["SUNACTIVITY"]  # (it was [])
    assert xs.axis_names() == ["SUNACTIVITY"]
    preview = figures.sample_figure(xs.sample_array(0), xs.shown_modality, xs.axis_names())
    assert list(preview.data[0].y) == ["SUNACTIVITY"]
