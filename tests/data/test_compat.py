"""Graph versus dataset: mismatches located on the node to change, and the one-click fix."""

from __future__ import annotations

from builder.data import load_dataset
from builder.data.compat import adapt_graph, check_compat
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
    assert fixed.node("input").params["shape"] == [1, 8, 8] and fixed.node("head").params["out_features"] == 10
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
