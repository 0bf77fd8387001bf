"""Imports keep the structure the user wrote (issue 34 item 5): a module used twice imports as one set of weights
that two nodes share (classic ONNX, dynamo ONNX, .pt2 static and dynamic), and a BatchNorm stays a BatchNorm
where the file keeps it, or the import says that an exporter folded it away and how to keep it."""

from __future__ import annotations

import logging
import warnings

import pytest
import torch
from torch import nn

from builder.data import Dataset, DatasetInfo, Split
from builder.graph.compile import compile_graph
from builder.interchange import UnsupportedOpsError
from builder.interchange.importer import import_model
from builder.interchange.onnx_structure import KEEP_BATCHNORM
from builder.training.trainer import Trainer

SOURCES = ("onnx_classic", "onnx_dynamo", "pt2_static", "pt2_dynamic")


class SharedEncoder(nn.Module):
    """Two branches through one encoder (Conv, ReLU, Linear), then a head on both."""

    def __init__(self):
        super().__init__()
        self.enc = nn.Sequential(nn.Conv1d(2, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(32, 16), nn.ReLU())
        self.head = nn.Linear(32, 3)

    def forward(self, x):
        return self.head(torch.cat([self.enc(x), self.enc(x * 2.0)], 1))


class ConvBN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 2)

    def forward(self, x):
        return self.fc(torch.relu(self.bn(self.conv(x))).mean((2, 3)))


def _build(cls) -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    m = cls()
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):  # statistics a fresh layer does not have
            mod.running_mean.uniform_(-0.5, 0.5)
            mod.running_var.uniform_(0.5, 1.5)
            mod.weight.data.uniform_(0.5, 1.5)
            mod.bias.data.uniform_(-0.2, 0.2)
    x = torch.randn(2, 2, 8) if cls is SharedEncoder else torch.randn(2, 3, 8, 8)
    return m.eval(), x


def _export(model, x, source: str, folder, **options) -> str:
    path = folder / ("m.pt2" if source.startswith("pt2") else "m.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)
        try:
            if source == "onnx_classic":
                torch.onnx.export(model, (x,), str(path), dynamo=False, input_names=["x"],
                                  dynamic_axes={"x": {0: "batch"}}, **options)
            elif source == "onnx_dynamo":
                prog = torch.onnx.export(model, (x,), dynamo=True, verbose=False,
                                         dynamic_shapes=({0: torch.export.Dim("batch", min=1)},), **options)
                prog.save(str(path))
            else:
                dyn = ({0: torch.export.Dim("batch")},) if source == "pt2_dynamic" else None
                torch.export.save(torch.export.export(model, (x,), dynamic_shapes=dyn), str(path))
        finally:
            logging.disable(logging.NOTSET)
    return str(path)


def _params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def _imported(res) -> torch.fx.GraphModule:
    model = compile_graph(res.project.graph)
    model.load_state_dict(res.weights)
    return model.eval()


def _max_diff(a: nn.Module, b: nn.Module, x: torch.Tensor) -> float:
    x = torch.cat([x, x[:1]])  # a batch size other than the exported one
    with torch.no_grad():
        return float((a(x) - b(x)).abs().max())


@pytest.mark.parametrize("source", SOURCES)
def test_shared_encoder_imports_once_and_training_keeps_it_tied(source, tmp_path):
    model, x = _build(SharedEncoder)
    res = import_model(_export(model, x, source, tmp_path))
    imported = _imported(res)
    assert _max_diff(model, imported, x) <= 1e-5
    assert res.report["total_params"] == _params(imported) == _params(model)  # 1,891, not 3,424
    shared = res.report["shared"]
    assert len(shared) == 2 and all(res.project.graph.node(t).type == res.project.graph.node(s).type
                                    for t, s in shared.items())  # the encoder's Conv1d and Linear, once each
    assert all("shares" in res.project.graph.node(t).label for t in shared)  # the canvas shows the tie
    assert any("used twice" in n for n in res.report["notes"])

    names = imported.layerlab_names
    before = {t: imported.get_submodule(names[t]).weight.detach().clone() for t in shared}
    info = DatasetInfo(name="tiny", task="multiclass", modality="tabular", input_shape=tuple(x.shape[1:]),
                       num_classes=3, out_size=3, class_names=["a", "b", "c"])
    X = torch.randn(24, *x.shape[1:])
    y = torch.randint(0, 3, (24,))
    empty = Split(X[:0], y[:0])
    assert Trainer(imported, Dataset(info, Split(X, y), empty, empty), {"epochs": 2, "batch_size": 8}).fit().status \
        == "finished"
    for tied, first in shared.items():
        w_tied, w_first = (imported.get_submodule(names[n]).weight for n in (tied, first))
        assert not torch.equal(w_tied, before[tied])  # trained
        assert torch.equal(w_tied, w_first)  # and still the same weights in both branches


@pytest.mark.parametrize("source", SOURCES)
def test_batchnorm_stays_batchnorm_where_the_file_keeps_it(source, tmp_path):
    model, x = _build(ConvBN)
    keep = {"onnx_classic": {"training": torch.onnx.TrainingMode.PRESERVE}, "onnx_dynamo": {"optimize": False}}
    res = import_model(_export(model, x, source, tmp_path, **keep.get(source, {})))
    imported = _imported(res)
    assert _max_diff(model, imported, x) <= 1e-5
    assert res.report["total_params"] == _params(model)
    bn = [n for n in res.project.graph.nodes if n.type == "BatchNorm2d"]
    assert len(bn) == 1 and not res.report["batchnorm_folded"]
    sd = res.weights
    name = imported.layerlab_names[bn[0].id]
    assert torch.equal(sd[f"{name}.running_mean"], model.bn.running_mean)
    assert torch.equal(sd[f"{name}.running_var"], model.bn.running_var)


def test_classic_constant_folding_off_keeps_batchnorm(tmp_path):
    model, x = _build(ConvBN)
    res = import_model(_export(model, x, "onnx_classic", tmp_path, do_constant_folding=False))
    assert [n.type for n in res.project.graph.nodes].count("BatchNorm2d") == 1
    assert res.report["total_params"] == _params(model)


@pytest.mark.parametrize("source", ["onnx_classic", "onnx_dynamo"])
def test_folded_batchnorm_is_reported_with_the_export_option_that_keeps_it(source, tmp_path, capsys):
    from builder.cli.main import main as cli_main

    model, x = _build(ConvBN)
    path = _export(model, x, source, tmp_path)  # the exporters' defaults fold BatchNorm into the convolution
    res = import_model(path)
    assert _max_diff(model, _imported(res), x) <= 1e-5
    assert "BatchNorm2d" not in {n.type for n in res.project.graph.nodes}
    assert res.report["batchnorm_folded"] == ["conv"]  # named after the convolution, not the folded BatchNorm
    note = next(n for n in res.report["notes"] if "no BatchNorm" in n)
    assert KEEP_BATCHNORM in note
    assert cli_main(["import", path, "-o", str(tmp_path / "out.json")]) == 0
    out = capsys.readouterr().out
    assert "no BatchNorm" in out and "TrainingMode.PRESERVE" in out and "optimize=False" in out


def test_a_training_mode_export_is_refused_naming_eval_mode(tmp_path):
    model, x = _build(ConvBN)
    path = _export(model, x, "onnx_classic", tmp_path, training=torch.onnx.TrainingMode.TRAINING)
    with pytest.raises(UnsupportedOpsError, match="training mode.*model.eval"):
        import_model(path)


def test_layers_with_equal_values_but_their_own_parameters_stay_two_layers(tmp_path):
    class Twins(nn.Module):
        def __init__(self):
            super().__init__()
            self.f, self.g = nn.Linear(6, 6), nn.Linear(6, 6)
            self.g.load_state_dict(self.f.state_dict())

        def forward(self, x):
            return self.g(torch.relu(self.f(x)))

    model = Twins().eval()
    res = import_model(_export(model, torch.randn(2, 6), "onnx_classic", tmp_path))  # the file holds one copy
    assert not res.report["shared"]
    assert res.report["total_params"] == _params(model)


class SharedConvBN(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
        self.fc = nn.Linear(8, 2)

    def forward(self, x):
        return self.fc(torch.cat([self.enc(x).mean((2, 3)), self.enc(x * 2.0).mean((2, 3))], 1))


@pytest.mark.parametrize("source", SOURCES)
def test_a_shared_encoder_with_batchnorm_stays_shared(source, tmp_path):
    torch.manual_seed(0)
    model, x = SharedConvBN().eval(), torch.randn(2, 3, 6, 6)
    res = import_model(_export(model, x, source, tmp_path))
    assert _max_diff(model, _imported(res), x) <= 1e-5
    assert res.report["shared"]  # the encoder's layers once, with its BatchNorm where the file keeps one
    if source == "onnx_classic":  # folded into each use's convolution: tied, and said to have no BatchNorm
        assert len(res.report["batchnorm_folded"]) == 2 and any("no BatchNorm" in n for n in res.report["notes"])
    else:
        assert res.report["total_params"] == _params(model)


def test_a_shared_lstm_from_the_classic_exporter_stays_shared(tmp_path):
    class TwoReads(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.LSTM(4, 6, batch_first=True)
            self.fc = nn.Linear(12, 2)

        def forward(self, x):
            a, _ = self.rnn(x)
            b, _ = self.rnn(x * 2.0)
            return self.fc(torch.cat([a[:, -1], b[:, -1]], 1))

    torch.manual_seed(0)
    model, x = TwoReads().eval(), torch.randn(2, 5, 4)
    res = import_model(_export(model, x, "onnx_classic", tmp_path))  # the exporter computed the LSTM's weights
    assert _max_diff(model, _imported(res), x) <= 1e-5
    assert res.report["total_params"] == _params(model) and len(res.report["shared"]) == 1
