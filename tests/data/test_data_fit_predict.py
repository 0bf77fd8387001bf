"""builder.data.fit and builder.data.predictions: one rule for fitting data to a graph's Input, one prediction type."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from builder.data import Dataset, DatasetInfo, Split, check_compat, fit_dataset, load_dataset, predict
from builder.errors import DatasetError
from builder.graph.compile import compile_graph
from builder.graph.project import Graph, Node
from builder.graph.templates import load_template
from tests.fuzz_budget import budget


def _ds(shape: tuple[int, ...], dtype: str = "float32", n: int = 6) -> Dataset:
    X = torch.zeros(n, *shape, dtype=torch.float32 if dtype == "float32" else torch.int64)
    info = DatasetInfo(name="t", task="multiclass", modality="image" if len(shape) > 1 else "tabular",
                       input_shape=shape, input_dtype=dtype, num_classes=2, out_size=2)
    y = torch.zeros(n, dtype=torch.long)
    return Dataset(info, Split(X, y), Split(X, y), Split(X, y))


def _graph(shape) -> Graph:
    return Graph(nodes=[Node(id="in", type="Input", params={"shape": list(shape)})], edges=[])


def test_float_images_are_flattened_for_a_vector_input():
    """prepare / resume / load_run / search / ONNX export: the autoencoder's Input [64] on digits (1x8x8)."""
    ds = load_dataset("digits", task="reconstruction")
    fitted = fit_dataset(load_template("autoencoder").graph, ds)
    assert fitted.info.input_shape == (64,) and fitted.train.X.shape[1:] == (64,)
    assert check_compat(load_template("autoencoder").graph, fitted.info) == []  # the search's trial check


def test_matching_or_unrelated_inputs_are_left_alone():
    ds = load_dataset("digits")
    assert fit_dataset(load_template("cnn").graph, ds) is ds  # same shape
    assert fit_dataset(_graph([10]), ds) is ds  # not the flat size: check_compat reports it
    assert fit_dataset(Graph(nodes=[], edges=[]), ds) is ds  # no Input


def test_token_ids_are_never_flattened():
    """The float32 check: integer inputs of a multi-dimensional shape stay as they are (strict: an error)."""
    ds = _ds((2, 3), dtype="int64")
    assert fit_dataset(_graph([6]), ds) is ds
    with pytest.raises(DatasetError, match="expects"):
        fit_dataset(_graph([6]), ds, strict=True)


def test_a_compiled_model_is_fitted_by_its_input_shape():
    """The Explain page: a run's model (its layerlab_input_shapes) and the chosen dataset."""
    torch.manual_seed(0)
    model = compile_graph(load_template("autoencoder").graph)
    assert fit_dataset(model, load_dataset("digits"), strict=True).info.input_shape == (64,)
    with pytest.raises(DatasetError, match=r"Input expects \[64\]"):
        fit_dataset(model, load_dataset("iris"), strict=True)


@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=3).map(tuple))
@settings(max_examples=budget(30), deadline=None)
def test_flat_size_input_always_flattens(shape):
    ds = _ds(shape)
    flat = fit_dataset(_graph([math.prod(shape)]), ds)
    assert flat.info.input_shape == (math.prod(shape),)
    assert fit_dataset(_graph(list(shape)), ds) is ds


# ------------------------------------------------------------------------------------------ predict
def test_one_logit_is_a_binary_probability():
    model = torch.nn.Linear(3, 1)
    X = torch.randn(20, 3)
    p = predict(model, X, "binary")
    p1 = torch.sigmoid(model(X)[:, 0]).detach()
    assert p.single_logit and torch.equal(p.labels, (p1 > 0.5).long())
    assert torch.allclose(p.confidence, torch.where(p1 > 0.5, p1, 1 - p1))
    assert torch.allclose(p.positive(), p1) and torch.allclose(p.probabilities().sum(1), torch.ones(20))
    assert p.runners_up(0) == []


def test_class_logits_give_argmax_softmax_and_runners_up():
    model = torch.nn.Linear(3, 4)
    X = torch.randn(9, 3)
    p = predict(model, X, "multiclass", batch_size=4)
    probs = model(X).softmax(1).detach()
    assert torch.equal(p.labels, probs.argmax(1)) and torch.allclose(p.confidence, probs.max(1).values)
    runners = p.runners_up(0, k=2)
    order = probs[0].argsort(descending=True)
    assert [c for c, _ in runners] == order[1:3].tolist()
    assert runners[0][1] == pytest.approx(float(probs[0, order[1]]))
    two = predict(torch.nn.Linear(3, 2), X, "binary")
    assert torch.allclose(two.positive(), two.probabilities()[:, 1], atol=1e-6)


def test_regression_reads_values_and_keeps_the_mode():
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Dropout(0.5)).train()
    X = torch.randn(5, 3)
    p = predict(model, X, "regression", batch_size=None)
    assert model.training  # restored
    assert (p.labels == 0).all() and torch.allclose(p.confidence, model.eval()(X)[:, 0].detach())
    assert p.values.shape == (5, 2) and not p.classification


def test_batches_do_not_change_the_result():
    model = torch.nn.Linear(4, 3)
    X = torch.randn(50, 4)
    a, b = predict(model, X, batch_size=7), predict(model, X, batch_size=None)
    # equal up to float rounding: another batch size may take another kernel (it did on a 16-core host)
    torch.testing.assert_close(a.outputs, b.outputs)
    assert torch.equal(a.labels, b.labels)
