"""Graph versus dataset: mismatches located on the node to change, and the one-click fix."""

from __future__ import annotations

from builder.data import load_dataset
from builder.data.compat import adapt_graph, check_compat, fitting_template, train_problems
from builder.graph.templates import load_template


def test_check_compat_reports_on_nodes_with_fix():
    mlp = load_template("mlp").graph
    info = load_dataset("digits").info
    problems = {p.code: p for p in check_compat(mlp, info)}
    assert problems["input_shape_mismatch"].node == "input"
    assert "set shape to [1, 8, 8]" in problems["input_shape_mismatch"].message
    assert problems["output_size_mismatch"].node == "head"
    assert "out_features" in problems["output_size_mismatch"].message and "10" in problems["output_size_mismatch"].message
    fixed = adapt_graph(mlp, info)
    # an MLP takes vectors: the images are flattened for it (an Input of [1, 8, 8] gave a head of (B, 1, 8, 10))
    assert fixed.node("input").params["shape"] == [64] and fixed.node("head").params["out_features"] == 10
    assert mlp.node("input").params["shape"] == [2]  # the original is untouched


def test_check_compat_templates_fit_their_datasets():
    assert check_compat(load_template("mlp").graph, load_dataset("moons").info) == []
    assert check_compat(load_template("cnn").graph, load_dataset("digits").info) == []
    seq = load_dataset("sequence").info
    assert check_compat(load_template("lstm").graph, seq) == []
    assert check_compat(load_template("transformer").graph, seq) == []
    codes = {p.code for p in check_compat(load_template("mlp").graph, seq)}
    assert "input_modality_mismatch" in codes
    ae = load_dataset("digits", task="reconstruction", flatten=True).info
    assert check_compat(load_template("autoencoder").graph, ae) == []


def test_adapt_graph_tokens():
    g = adapt_graph(load_template("lstm").graph, load_dataset("sequence", length=20, markers=4).info)
    assert g.node("tokens").params == {"shape": [20], "modality": "tokens", "vocab_size": 12}
    assert g.node("head").params["out_features"] == 4


def test_the_fix_trains_or_names_the_network_that_fits():
    """Issue 29, item 4: the one-click fix said "fits" for a CNN on table rows that Train refused (conv1 expects
    (B, C, H, W)), and left an MLP on images with a head of (B, 3, 32, 3). The fix makes the graph train, or the
    verdict says so and names the kind of network that fits; "fits" is Train's own check."""
    from builder.data.fit import fit_dataset
    from builder.graph.shapes import infer_shapes
    from builder.runs.pipeline import prepare

    digits, iris = load_dataset("digits"), load_dataset("iris")
    # MLP + images: adapted, it trains (Train's preparation accepts it) and the head gives one logit per class
    mlp = adapt_graph(load_template("mlp").graph, digits.info)
    assert train_problems(mlp, digits) == []
    report = infer_shapes(mlp)
    assert tuple(report.nodes["head"].shape) == (10,)
    project = load_template("mlp").model_copy(update={"graph": mlp})
    prepare(project, digits, {"epochs": 1})
    assert fit_dataset(mlp, digits).info.input_shape == (64,)
    # CNN + table rows: no adaptation trains; the verdict is not "fits" and the MLP is the network that fits
    cnn = adapt_graph(load_template("cnn").graph, iris.info)
    problems = train_problems(cnn, iris)
    assert problems and any(p.node == "conv1" for p in problems)
    assert fitting_template(iris.info) == "mlp" and fitting_template(digits.info) == "cnn"
    assert fitting_template(load_dataset("nile").info) == "rnn_forecaster"  # windows: not "MLP for tabular data"
    assert check_compat(cnn, iris.info) == []  # the old verdict: "fits" (Input and head only)


def test_padded_texts_get_a_network_that_reads_the_padding_mask():
    """helper-75: an uploaded CSV of 4-word reviews (padded to 16 tokens) was offered the LSTM sequence classifier,
    whose final state comes after the padding: 51 % test accuracy after 6 epochs, where the Sentiment LSTM (the
    Input's padding_mask into the LSTM) reached 100 % on the same data. Texts a tokenizer pads get a network that
    reads the mask, and it trains on them; token ids without padding (id 0 is a real token) keep the plain LSTM."""
    from builder.data.text import load_text

    rows = "".join(f"the movie was {w},{'pos' if w in ('good', 'great') else 'neg'}\n"
                   for w in ("good", "bad", "great", "awful") * 15)
    texts = load_text(f"review,label\n{rows}".encode(), "label", text_column="review", max_length=16, name="r.csv")
    name = fitting_template(texts.info)
    graph = adapt_graph(load_template(name).graph, texts.info)
    lstm = next(n.id for n in graph.nodes if n.type == "LSTM")
    assert any(e.source_port == "padding_mask" and e.target == lstm for e in graph.edges), name
    assert train_problems(graph, texts) == []
    assert fitting_template(load_dataset("sequence").info) == "lstm"


def test_trains_verdict_for_an_encoder_on_labelled_texts_names_the_head():
    """helper-75: Train's verdict for an imported DistilBERT (16 values per token) on labelled reviews was only
    "Fix: load the Sentiment LSTM template", which throws the pretrained model away, while the Data page offers the
    head it needs. The verdict names the head first; a language model's (the GPT template) does not."""
    from builder.graph.project import Graph
    from builder.training.objectives import network_mismatch

    info = load_dataset("text_sentiment").info
    encoder = Graph.model_validate({"nodes": [
        {"id": "tokens", "type": "Input", "params": {"shape": [20], "modality": "tokens", "vocab_size": 500}},
        {"id": "embed", "type": "Embedding", "params": {"embedding_dim": 16}}],
        "edges": [{"source": "tokens", "target": "embed"}]})
    said = network_mismatch(encoder, info).message
    assert "gives 16 values per token (an encoder" in said and "Fix: add a classifier head" in said, said
    assert "a language model" not in said, said
    gpt = network_mismatch(load_template("gpt").graph, info).message
    assert "a language model" in gpt and "classifier head" not in gpt, gpt
