"""builder.interpret.tryit: the user's own input, preprocessed like the run's dataset, predicted and explained."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

import builder
from builder.data import adapt_graph, load_dataset
from builder.errors import ExplainError
from builder.interpret.session import ExplainSession
from builder.interpret.tryit import (
    encode_image,
    encode_row,
    encode_strokes,
    encode_tokens,
    grouped_attributions,
    grouped_ranking,
    rasterise_strokes,
    tokenize,
    try_form,
    try_input,
)


def _session(template: str, dataset: str) -> ExplainSession:
    torch.manual_seed(0)
    ds = load_dataset(dataset)
    graph = adapt_graph(builder.load_template(template).graph, ds.info)
    return ExplainSession(builder.compile_graph(graph).eval(), ds, "test")


def test_a_row_in_raw_units_round_trips_and_is_predicted_like_the_sample():
    xs = _session("mlp", "wine")
    form = try_form(xs, 3)
    assert form.kind == "features" and len(form.names) == len(form.start) == 13
    assert xs.info.input_mean is not None  # standardised: the form shows the data's own units
    assert abs(form.start[0] - float(xs.sample(3)[0, 0])) > 1  # alcohol ~13 %, not a z-score
    # the Explain page's sample table shows the same numbers as Try it (it showed the z-scores beside them)
    names, values = xs.feature_values(3)
    assert names == form.names and values == pytest.approx(form.start)
    x = encode_row(xs, form.start)
    assert torch.allclose(x, xs.sample(3), atol=1e-5)
    res = try_input(xs, x, "integrated_gradients")
    assert res.predicted == xs.summary(3).predicted and res.explanation is not None and not res.error
    assert res.explanation.attributions.shape == x.shape
    edited = list(form.start)
    edited[0] += 5 * xs.info.input_std[0]
    assert not torch.allclose(encode_row(xs, edited), x)


def test_row_mistakes_are_explained():
    xs = _session("mlp", "wine")
    with pytest.raises(ExplainError, match="reads 13 values per sample; received: 2"):
        encode_row(xs, [1.0, 2.0])
    with pytest.raises(ExplainError, match="not a finite number"):
        encode_row(xs, [float("nan")] * 13)
    with pytest.raises(ExplainError, match="past float32's range"):  # finite in float64: infinity in float32
        encode_row(xs, [1e39] * 13)


def test_an_uploaded_image_is_resized_and_scaled_like_the_dataset():
    from PIL import Image

    xs = _session("cnn", "digits")
    assert try_form(xs).kind == "image"
    sample = xs.sample(0)[0, 0].cpu().numpy()
    def png(im) -> bytes:
        buf = io.BytesIO()
        im.save(buf, format="PNG")
        return buf.getvalue()

    same = Image.fromarray((sample * 255).round().astype(np.uint8))
    x = encode_image(xs, png(same))
    assert x.shape == (1, 1, 8, 8) and float((x[0, 0].cpu() - torch.from_numpy(sample)).abs().max()) <= 1 / 255
    big = encode_image(xs, png(same.convert("RGB").resize((200, 120))))  # colour, another size: converted
    assert big.shape == (1, 1, 8, 8) and 0 <= float(big.min()) <= float(big.max()) <= 1
    buf_bytes = png(same)
    inv = encode_image(xs, buf_bytes, invert=True)
    assert torch.allclose(inv, 1 - x)
    res = try_input(xs, x, "saliency")
    assert res.predicted in xs.info.class_names and 0 < res.confidence <= 1
    with pytest.raises(ExplainError, match="not an image"):
        encode_image(xs, b"GIF89a not really")


def test_a_typed_sequence_uses_the_vocabulary():
    xs = _session("lstm", "sequence")
    form = try_form(xs, 1)
    assert form.kind == "tokens" and form.start_text
    x = encode_tokens(xs, form.start_text)
    assert torch.equal(x.cpu(), xs.sample(1).cpu())
    assert encode_tokens(xs, form.start_text.split()[0]).shape == x.shape  # padded to the model's length
    with pytest.raises(ExplainError, match="vocabulary; received: 'zebra'"):
        encode_tokens(xs, "zebra " + form.start_text)
    assert try_input(xs, x).predicted in xs.info.class_names


def test_a_drawing_is_centred_resampled_and_predicted():
    xs = _session("cnn", "digits")
    one = [[[0.52, 0.15], [0.5, 0.5], [0.48, 0.85]]]  # a short vertical stroke drawn anywhere on the pad
    shifted = [[[x * 0.5, y * 0.5] for x, y in one[0]]]  # the same, smaller, in the top-left corner
    x = encode_strokes(xs, one)
    assert x.shape == (1, 1, 8, 8) and float(x.min()) >= 0 and float(x.max()) == 1.0
    assert torch.allclose(x, encode_strokes(xs, shifted), atol=0.1)  # centred and scaled to fill the frame
    img = x[0, 0].cpu().numpy()
    assert img[:, 3:5].mean() > 0.5 and img[:, :2].max() == 0 and img[:, 6:].max() == 0
    assert torch.allclose(encode_strokes(xs, one, invert=True), 1 - x)
    res = try_input(xs, x, "saliency")
    assert res.predicted in xs.info.class_names and res.explanation is not None
    assert res.explanation.attributions.shape == x.shape
    big = rasterise_strokes(one, (28, 28))  # MNIST-sized: a 20-pixel box in 28 (15 % margins)
    rows = np.nonzero(big.max(1) > 0.5)[0]
    assert 3 <= rows.min() <= 5 and 22 <= rows.max() <= 24
    with pytest.raises(ExplainError, match="empty"):
        encode_strokes(xs, [])
    with pytest.raises(ExplainError, match=r"\[x, y\] points"):
        encode_strokes(xs, [["a", "b", "c"]])
    with pytest.raises(ExplainError, match="at most 5000 points"):
        encode_strokes(xs, [[[0.5, 0.5]] * 5001])
    with pytest.raises(ExplainError, match="not images"):
        encode_strokes(_session("mlp", "wine"), one)



def test_a_csv_row_round_trips_in_its_own_units_with_its_categories():
    from builder.data.tabular import load_csv

    lines = ["age,sex,grown"] + [f"{1.2 + 0.25 * i:.2f},{'FM'[i % 2]},{int(i > 30)}" for i in range(66)]
    ds = load_csv("\n".join(lines).encode(), "grown")
    torch.manual_seed(0)
    xs = ExplainSession(builder.compile_graph(adapt_graph(builder.load_template("mlp").graph, ds.info)).eval(),
                        ds, "test")
    form = try_form(xs, 2)
    assert form.names == ["age"] and 1.2 <= form.start[0] <= 17.5 and form.choices == {"sex": ["F", "M"]}
    # the Explain page's sample table shows the row as Try it does: age in years, sex as its category (it listed
    # sex=F 0, sex=M 1 in z-scores)
    assert xs.feature_values(2) == (["age", "sex"], [pytest.approx(form.start[0]), form.picked["sex"]])
    # the upload's file name is the person's text: the page's dataset line shows it literally (it was bold Markdown)
    xs.info.name = "csv:[x](https://evil.example) *e*.csv"
    assert "\\[x\\]" in xs.describe() and "\\*e\\*" in xs.describe(), xs.describe()
    x = encode_row(xs, form.start, form.picked)
    assert torch.allclose(x, xs.sample(2), atol=1e-5)  # standardised inside, exactly as the training data
    other = {"sex": "M" if form.picked["sex"] == "F" else "F"}
    assert not torch.allclose(encode_row(xs, form.start, other), x)
    with pytest.raises(ExplainError, match="one of its categories; received: sex='X'"):
        encode_row(xs, form.start, {"sex": "X"})
    # Try it's answer: one bar per picker (it drew sex=F and sex=M), the category held in its name, the same sum
    attr = xs.try_input(x, "integrated_gradients").explanation.attributions[0]
    names, values = grouped_attributions(xs, x[0], attr)
    assert names == ["age", f"sex: {form.picked['sex']}"], names
    assert values.shape == (2,) and values.sum() == pytest.approx(float(attr.sum()), abs=1e-6)
    assert values[1] == pytest.approx(float(attr[1:].sum()), abs=1e-6)
    # Rank over N: the text column is one feature there too (it ranked sex=F and sex=M apart), per row its sum
    many = torch.randn(5, 3)
    names, per_column = grouped_ranking(xs, many)
    assert names == ["age", "sex"] and per_column.shape == (5, 2)
    assert per_column[:, 1] == pytest.approx(many[:, 1:].sum(1).double().numpy(), abs=1e-6)
    assert grouped_ranking(xs, torch.randn(5, 4))[0] is None  # rows the names do not describe: as they are


def test_a_training_run_is_tried_on_its_newest_epoch(tmp_path, monkeypatch):
    """While a run trains (no checkpoint yet: they come every minute), Try it's run and the model it opens are
    those of the epoch that just ended; the file goes when the final weights land."""
    from builder.data.access import SYSTEM
    from builder.interpret.tryit import try_run
    from builder.runs.pipeline import load_run, run_training
    from builder.runs.store import RunStore
    from builder.training.callbacks import Callback, EpochWeights

    monkeypatch.setattr(EpochWeights, "MAX_SHARE", 1.0)  # every epoch (by default short epochs skip some writes)

    store = RunStore(tmp_path, actor=SYSTEM)
    project = builder.load_template("mlp")
    seen: list[tuple[str, bool]] = []

    class Probe(Callback):  # runs after the trainer's own callbacks, as a reader would between epochs
        def on_epoch_end(self, trainer, epoch, logs):
            tr = try_run(store, store.get(trainer.run_id).project.graph, "local")  # the adapted graph
            model, _ = load_run(store, trainer.run_id)
            same = all(torch.equal(v.cpu(), model.state_dict()[k]) for k, v in trainer.model.state_dict().items())
            seen.append((tr.version if tr and tr.ready else "", same))

    res = run_training(project, "iris", {"epochs": 2, "seed": 0}, store, [Probe()], adapt=True)
    assert len(seen) == 2 and all(same for _, same in seen), seen  # each epoch's own weights
    assert all(v for v, _ in seen) and len({v for v, _ in seen}) == 2  # a new version per epoch
    assert not store.folder(res.run_id).epoch_weights.exists() and store.folder(res.run_id).has_weights


def test_epoch_weights_cost_at_most_their_share_of_training(tmp_path):
    """Epochs far shorter than a write (a toy set's thousands of epochs) skip writes until one is due."""
    from types import SimpleNamespace

    from builder.training.callbacks import EpochWeights
    from builder.training.run_folder import RunFolder

    cb = EpochWeights()
    trainer = SimpleNamespace(run_dir=tmp_path, rank=0, model=torch.nn.Linear(4, 3))
    path = RunFolder(tmp_path).epoch_weights
    cb.on_epoch_end(trainer, 0, {})
    first = path.stat().st_mtime_ns
    with torch.no_grad():
        trainer.model.weight.add_(1.0)
    cb.on_epoch_end(trainer, 1, {})  # microseconds later: not due
    assert path.stat().st_mtime_ns == first
    cb._written -= cb._cost / cb.MAX_SHARE  # as if a due share of time had passed
    cb.on_epoch_end(trainer, 2, {})
    from builder.training.weights import read_weights

    assert torch.equal(read_weights(path)[0]["weight"], trainer.model.weight)
    cb.on_train_end(trainer, SimpleNamespace(status="finished"))
    assert not path.exists()


def test_a_series_of_two_columns_is_shown_and_forecast_by_its_columns_names(tmp_path):
    """An outside review (a weather CSV of temp and humidity, the RNN forecaster): Explain's heatmaps named the rows
    ``feature 1`` and ``feature 2``, the explained output was ``output 1``, and the true value, the prediction and
    Try it's answer read "15.64, 56.48" with nothing saying which is which. Each is named by its column now."""
    from builder.data.sources import LocalFile
    from builder.interpret import figures

    t = np.arange(300)
    rows = "".join(f"{20 + 5 * np.sin(i / 10):.3f},{50 + 10 * np.cos(i / 15):.3f}\n" for i in t)
    (tmp_path / "weather.csv").write_text("temp,humidity\n" + rows)
    ds = load_dataset("series", path=LocalFile(tmp_path / "weather.csv"), lookback=12)
    graph = adapt_graph(builder.load_template("rnn_forecaster").graph, ds.info)
    torch.manual_seed(0)
    xs = ExplainSession(builder.compile_graph(graph).eval(), ds, "test")
    preview = figures.sample_figure(xs.sample_array(0), xs.shown_modality, xs.axis_names())
    assert list(preview.data[0].y) == ["temp", "humidity"]
    assert try_form(xs).names == ["temp", "humidity"]
    assert [xs.target_label(k, 0) for k in xs.target_choices()] == ["Largest output", "temp", "humidity"]
    s = xs.summary(0)
    assert s.true.startswith("temp ") and ", humidity " in s.true, s.true
    assert s.predicted.startswith("temp ") and ", humidity " in s.predicted, s.predicted
    answer = try_input(xs, xs.sample(0))
    assert answer.predicted.startswith("temp ") and ", humidity " in answer.predicted, answer.predicted


def test_a_regression_in_large_units_is_answered_in_whole_numbers():
    """An outside review: values from 10,000 up (an income) read "3.041e+04" on the Explain page; the true value,
    the prediction and Try it's answer of a regression are whole numbers there (``30,411``)."""
    from builder.data.tabular import load_csv

    rows = "".join(f"{i % 50 + 18},{30000 + 97 * i}\n" for i in range(80))
    ds = load_csv(("age,income\n" + rows).encode(), "income", task="regression")
    torch.manual_seed(0)
    xs = ExplainSession(builder.compile_graph(adapt_graph(builder.load_template("mlp").graph, ds.info)).eval(), ds)
    s = xs.summary(0)
    assert "e+" not in s.true and "," in s.true, s.true
    assert "e+" not in try_input(xs, xs.sample(0)).predicted


def test_try_it_names_the_explained_output_as_the_sample_view_does(tmp_path):
    """A review in Chromium: Try it on a forecast titled its attribution "Integrated Gradients for temp 17, humidity
    51.96" (the prediction) where the sample view said "for temp" (the output explained). Try it's answer now
    carries what it explains, named by the sample view's one rule (ExplainSession.about): the series, the class,
    a regression's target by its column."""
    from builder.data.sources import LocalFile

    rows = "".join(f"{20 + 5 * np.sin(i / 10):.3f},{50 + 10 * np.cos(i / 15):.3f}\n" for i in range(300))
    (tmp_path / "weather.csv").write_text("temp,humidity\n" + rows)
    prices = "".join(f"{50 + i},{i % 4 + 1},{150_000 + 2_500 * i}\n" for i in range(120))
    (tmp_path / "prices.csv").write_text("area,rooms,price\n" + prices)
    cases = [("rnn_forecaster", load_dataset("series", path=LocalFile(tmp_path / "weather.csv"), lookback=12)),
             ("mlp", load_dataset("csv", path=LocalFile(tmp_path / "prices.csv"), target="price")),
             ("mlp", load_dataset("iris"))]
    said = []
    for template, ds in cases:
        torch.manual_seed(0)
        xs = ExplainSession(builder.compile_graph(adapt_graph(builder.load_template(template).graph, ds.info)).eval(),
                            ds, "test")
        answer = try_input(xs, xs.sample(0), "integrated_gradients")
        assert answer.explanation is not None, answer.error
        sample_view = xs.about(xs.explain(0, "integrated_gradients"), None)  # the page's title for the default
        assert answer.explained == sample_view, (answer.explained, sample_view, answer.predicted)
        said.append(answer.explained)
    assert said[0] in ("temp", "humidity"), said  # the series explained, never "temp 17, humidity 51.96"
    assert said[1] == "price", said  # the target by its column (it said "the model's output" or the value)
    assert said[2].startswith("class ") and said[2].endswith("(the prediction)"), said


def test_try_it_tokenizes_a_pretrained_tokenizers_text_as_its_training_data():
    """A run on a pretrained model's tokenizer trains on [CLS] text [SEP]: Try it (and predict, Explain: they all
    call tryit.tokenize) fed the model the text's ids alone, [5, 7, 8, 5, 0, 0, 0, 0] for [2, 5, 7, 8, 5, 3, 0, 0],
    and counted the cut tokens without the room the special tokens take."""
    import types

    from builder.data.splits import DatasetInfo
    from builder.data.text import PRETRAINED, TokenizerOptions, texts_dataset
    from tests.data.test_text import _bert_like_tokenizer_json

    texts = ["good film", "bad film", "very good plot", "bad plot was bad"] * 10
    info = DatasetInfo(name="t", task="binary", modality="text", input_shape=(8,), class_names=["neg", "pos"])
    ds = texts_dataset(texts, np.array([1, 0, 1, 0] * 10), info, TokenizerOptions(kind=PRETRAINED, max_length=8),
                       task=None, seed=0, val_fraction=0.25, test_fraction=0.25,
                       pretrained=_bert_like_tokenizer_json())
    xs = types.SimpleNamespace(info=ds.info, device="cpu", sandboxed=False)
    row = ds.train.X[0].tolist()
    words = " ".join(ds.info.vocab[i] for i in row if i > 3)
    ids, cut = tokenize(xs, words)
    assert ids.tolist() == [row] and cut == 0
    ids, cut = tokenize(xs, "a b c d e f g")  # 7 words, room for 6 between [CLS] and [SEP]
    assert ids.tolist() == [[2, 10, 11, 12, 13, 14, 15, 3]] and cut == 1


@pytest.mark.parametrize("end", ["\r", "\u2028", "\x0c", "\r\n"])
def test_a_pasted_series_ends_its_lines_as_before_it_was_read_from_its_end(end):
    """af8988d read a pasted series from its end by "\\n" alone: lines ended by a lone "\\r" (a spreadsheet's
    clipboard) or "\\u2028", which splitlines had read, became one line ('received: 1 step(s) with other column
    counts'); they give the same window as "\\n" again, also past the first 4,096 characters."""
    import types

    from builder.data.splits import DatasetInfo
    from builder.interpret.tryit import encode_series

    xs = types.SimpleNamespace(info=DatasetInfo("series:s.csv", "forecast", "series", (3, 2)), device="cpu")
    want = encode_series(xs, "1,2\n3,4\n5,6\n7,8").tolist()
    assert encode_series(xs, end.join(["1,2", "3,4", "5,6", "7,8"])).tolist() == want
    assert encode_series(xs, end.join(["9,9"] * 3000 + ["3,4", "5,6", "7,8"]) + end).tolist() == want
