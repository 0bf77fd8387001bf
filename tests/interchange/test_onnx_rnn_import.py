"""ONNX LSTM/GRU/RNN operators from the classic exporter → recurrent layers (builder/interchange/onnx_rnn.py).

Cheap (classic exporter, ~0.2 s a model): variants beyond the zoo: ReLU RNN, bidirectional GRU with both
``y[:, -1]`` and one direction's ``h[-1]`` (a Chunk of ``h_n``), stacked layers (one ONNX op per layer, their
final states concatenated: one layer node each, ``h[-1]`` the last one's state), and a refusal that names the
node instead of crashing (an explicit initial state).
"""

from __future__ import annotations

import logging
import warnings

import pytest
import torch
from torch import nn

from builder.graph.compile import compile_graph
from builder.interchange.errors import UnsupportedOpsError
from builder.interchange.importer import import_model


class Last(nn.Module):
    def __init__(self, kind: str, **kw):
        super().__init__()
        self.kind = kind
        self.r = getattr(nn, kind)(4, 5, batch_first=True, **kw)

    def forward(self, x):
        y, h = self.r(x)
        h = h[0] if self.kind == "LSTM" else h
        return torch.cat([y[:, -1], h[-1]], -1)


class WithState(nn.Module):
    def __init__(self):
        super().__init__()
        self.r = nn.GRU(4, 5, batch_first=True)
        self.h0 = nn.Parameter(torch.ones(1, 1, 5))

    def forward(self, x):
        return self.r(x, self.h0.expand(1, x.shape[0], 5).contiguous())[0]


def _export(model: nn.Module, path) -> str:
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)
        torch.onnx.export(model.eval(), (torch.randn(2, 6, 4),), str(path), dynamo=False, input_names=["x"],
                          dynamic_axes={"x": {0: "batch"}})
        logging.disable(logging.NOTSET)
    return str(path)


@pytest.mark.parametrize(("kind", "kw", "types"), [
    ("RNN", {"nonlinearity": "relu"}, {"RNN"}),
    ("GRU", {"bidirectional": True}, {"GRU", "Select", "Chunk"}),
    ("LSTM", {}, {"LSTM"}),
])
def test_recurrent_ops_map_to_one_layer(kind, kw, types, tmp_path):
    torch.manual_seed(0)
    model = Last(kind, **kw).eval()
    res = import_model(_export(model, tmp_path / "m.onnx"))
    got = {n.type for n in res.project.graph.nodes}
    assert types <= got and "Op" not in got, got
    imported = compile_graph(res.project.graph)
    imported.load_state_dict(res.weights)
    x = torch.randn(3, 7, 4)
    with torch.no_grad():
        assert float((imported.eval()(x) - model(x)).abs().max()) <= 1e-5


@pytest.mark.parametrize(("kind", "kw", "count"), [("LSTM", {"num_layers": 2}, 2),
                                                  ("GRU", {"num_layers": 3, "bidirectional": True}, 3)])
def test_stacked_layers_with_concatenated_states_import(kind, kw, count, tmp_path):
    torch.manual_seed(0)
    model = Last(kind, **kw).eval()
    res = import_model(_export(model, tmp_path / "m.onnx"))
    assert [n.type for n in res.project.graph.nodes].count(kind) == count
    imported = compile_graph(res.project.graph)
    imported.load_state_dict(res.weights)
    x = torch.randn(3, 7, 4)
    with torch.no_grad():
        assert float((imported.eval()(x) - model(x)).abs().max()) <= 1e-5


def test_an_initial_state_is_refused_by_name(tmp_path):
    with pytest.raises(UnsupportedOpsError) as err:
        import_model(_export(WithState(), tmp_path / "m.onnx"))
    assert "Fix:" in str(err.value)
