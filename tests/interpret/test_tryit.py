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
    rasterise_strokes,
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
    with pytest.raises(ExplainError, match="not finite"):
        encode_row(xs, [float("nan")] * 13)


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

