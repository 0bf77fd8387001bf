"""PyTorch sources (builder/interchange/importer.py): plain torch.nn models through ONNX and .pt2, the
file.py:Class path, and .pt2 files that would run code when unpickled (refused; nothing executed)."""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from pathlib import Path

import pytest
import torch

from builder.cli.main import main as cli_main
from builder.interchange import ModelImportError
from builder.interchange.importer import import_model
from builder.interchange.onnx_export import export_onnx, to_onnx_proto
from tests.exchange_models import MODELS, build

MODELS_FILE = Path(__file__).resolve().parents[1] / "exchange_models.py"


def _params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def _compare(res, model) -> float:
    from builder import compile_graph

    imported = compile_graph(res.project.graph)
    imported.load_state_dict(res.weights)
    imported.eval()
    x = model.example_inputs()[0]
    x = torch.cat([x, x[:1]])  # a batch size other than the traced one
    with torch.no_grad():
        return float((imported(x) - model(x)).abs().max())


@pytest.mark.parametrize("name", list(MODELS))
def test_onnx_round_trip(name, tmp_path):
    model = build(name)
    proto = to_onnx_proto(model, model.example_inputs(), ["x"])
    (tmp_path / "m.onnx").write_bytes(proto.SerializeToString())
    res = import_model(tmp_path / "m.onnx")
    assert res.report["max_abs_diff"] <= 1e-5
    assert res.report["total_params"] == _params(model)
    assert _compare(res, model) <= 1e-5
    back = export_onnx(res.project, tmp_path / "back.onnx", res.weights)
    assert back.max_abs_diff <= 1e-5


@pytest.mark.parametrize("name", list(MODELS))
def test_pt2_round_trip(name, tmp_path):
    model = build(name)
    ep = torch.export.export(model, model.example_inputs(), dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(ep, tmp_path / "m.pt2")
    res = import_model(tmp_path / "m.pt2")
    assert res.report["max_abs_diff"] <= 1e-5
    assert res.report["total_params"] == _params(model)
    assert _compare(res, model) <= 1e-5


def _gpt_export(how: str, path: Path) -> Path:
    """The GPT-style model (tril buffer + masked_fill(-inf), torch.where, manual heads) saved one of four ways."""
    model = build("gpt")
    x = model.example_inputs()
    batch = {0: torch.export.Dim("batch")}
    if how == "classic_onnx":
        torch.onnx.export(model, x, path / "m.onnx", dynamo=False, input_names=["x"], dynamic_axes={"x": {0: "b"}})
        return path / "m.onnx"
    if how == "dynamo_onnx":
        (path / "m.onnx").write_bytes(to_onnx_proto(model, x, ["x"]).SerializeToString())
        return path / "m.onnx"
    ep = torch.export.export(model, x, dynamic_shapes=(batch,) if how == "dynamic_pt2" else None)
    torch.export.save(ep, path / "m.pt2")
    return path / "m.pt2"


@pytest.mark.parametrize("how", ["classic_onnx", "dynamo_onnx", "static_pt2", "dynamic_pt2"])
def test_gpt_style_masks_import_from_every_export(how, tmp_path):
    """Masks as people write them (a tril buffer, masked_fill(-inf), torch.where) come back as mask operators
    (Op nodes) with outputs equal to the original's; before, `aten.where`/-Infinity/Trilu were refused."""
    model = build("gpt")
    res = import_model(_gpt_export(how, tmp_path))
    assert res.report["max_abs_diff"] <= 1e-5
    assert res.report["total_params"] == _params(model)
    assert _compare(res, model) <= 1e-5
    assert any(n.type == "Op" for n in res.project.graph.nodes)


class _Buffers(torch.nn.Module):
    """Each way a module's buffers reach an import: arithmetic on the input (a pixel scaling), a position table added, a fixed projection, a class token concatenated, a causal table."""

    def __init__(self, use: str):
        super().__init__()
        self.use, self.lin = use, torch.nn.Linear(6, 3)
        self.register_buffer("mean", torch.linspace(0.1, 0.6, 6))
        self.register_buffer("std", torch.linspace(0.5, 3.0, 6))
        self.register_buffer("pos", torch.randn(5, 6), persistent=False)
        self.register_buffer("proj", torch.randn(6, 6))
        self.register_buffer("token", torch.randn(1, 1, 6))
        self.register_buffer("causal", torch.full((5, 5), -1e9).triu(1))

    def example_inputs(self):
        return (torch.randn(2, 5, 6),)

    def forward(self, x):  # (B, 5, 6)
        if self.use == "scaling":
            x = (x - self.mean) / self.std
        elif self.use == "positions":
            x = x + self.pos
        elif self.use == "projection":
            x = torch.nn.functional.linear(x[:, 0], self.proj)
        elif self.use == "token":
            x = torch.cat([self.token.expand(x.shape[0], -1, -1), x], 1)
        else:
            x = ((x @ x.transpose(1, 2)) + self.causal).softmax(-1) @ x
        return self.lin(x)


def _import_saved(model: torch.nn.Module, how: str, tmp_path) -> tuple:
    """``model`` in eval mode, saved as torch's exporter saves it (``onnx`` or ``pt2``, a dynamic batch) and imported:
    ``(model, ImportResult)``."""
    model = model.eval()
    path = tmp_path / f"m.{how}"
    if how == "onnx":
        path.write_bytes(to_onnx_proto(model, model.example_inputs(), ["x"]).SerializeToString())
    else:
        torch.export.save(torch.export.export(model, model.example_inputs(), dynamic_shapes=(
            {0: torch.export.Dim("batch")},)), path)
    return model, import_model(path)


@pytest.mark.parametrize("how", ["onnx", "pt2"])
@pytest.mark.parametrize("use", ["scaling", "positions", "projection", "token", "causal"])
def test_a_modules_buffers_stay_fixed_after_import(use, how, tmp_path):
    """An exported module's buffers and constants are fixed on the canvas, its parameters learned: the import
    learned every float initializer of the file, so a fine-tune moved a pixel scaling, a position table, a
    projection, a class token or a causal mask the model was built with (learned 33 values of 21 with 'scaling';
    the canvas counted them as parameters). torch's exporter records which initializer is which."""
    torch.manual_seed(0)
    model, res = _import_saved(_Buffers(use), how, tmp_path)
    assert res.report["max_abs_diff"] <= 1e-5
    assert res.report["total_params"] == _params(model)
    assert _compare(res, model) <= 1e-5



class _LayerBuffers(torch.nn.Module):
    """A buffer where a layer's weight would be: a frozen embedding table, a transposed convolution's kernel, a
    LayerNorm's scale and shift, a PReLU's slope."""

    def __init__(self, use: str):
        super().__init__()
        self.use, self.lin = use, torch.nn.Linear(6, 3)
        self.register_buffer("table", torch.randn(10, 6))
        self.register_buffer("kernel", torch.randn(6, 6, 3, 3))
        self.register_buffer("scale", torch.linspace(0.5, 2.0, 6))
        self.register_buffer("shift", torch.linspace(-1.0, 1.0, 6))
        self.register_buffer("slope", torch.linspace(0.05, 0.3, 6))

    def example_inputs(self):
        return ((torch.arange(10) % 10).reshape(2, 5),) if self.use == "embedding" else \
            (torch.randn(2, 6, 4, 4),) if self.use == "conv_transpose" else (torch.randn(2, 6),)

    def forward(self, x):
        F = torch.nn.functional  # noqa: N806
        if self.use == "embedding":
            h = F.embedding(x, self.table).mean(1)
        elif self.use == "conv_transpose":
            h = F.conv_transpose2d(x, self.kernel).mean((2, 3))
        elif self.use == "layer_norm":
            h = F.layer_norm(x, (6,), self.scale, self.shift)
        else:
            h = F.prelu(x, self.slope)
        return self.lin(h)


@pytest.mark.parametrize("how", ["onnx", "pt2"])
@pytest.mark.parametrize("use", ["embedding", "conv_transpose", "layer_norm", "prelu"])
def test_a_buffer_where_a_layers_weight_would_be_stays_fixed_after_import(use, how, tmp_path):
    """The import's one rule (``OnnxImporter.learned``) for every layer it recognises, not Linear and Conv only: a
    buffer read as an Embedding's table, a ConvTranspose's kernel, a LayerNorm's scale or a PReLU's slope was
    imported as that layer's weight, which fine-tuning moves (canvas 81, 237, 33, 27 parameters for the module's
    21); now an Op with the buffer as its constant."""
    torch.manual_seed(0)
    model, res = _import_saved(_LayerBuffers(use), how, tmp_path)
    assert res.report["total_params"] == _params(model) == 21
    assert _compare(res, model) <= 1e-5
    assert export_onnx(res.project, None, res.weights).max_abs_diff <= 1e-5  # and it exports again

class _BiasBuffers(torch.nn.Module):
    """A learned weight beside a buffer where the layer's bias would be: a Linear's (Gemm, or MatMul then Add),
    a Conv's, a ConvTranspose's."""

    def __init__(self, use: str):
        super().__init__()
        self.use, self.lin = use, torch.nn.Linear(6, 3)
        shape = {"linear": (6, 6), "matmul_add": (6, 6), "conv": (6, 6, 3, 3), "conv_transpose": (6, 6, 3, 3)}[use]
        self.w = torch.nn.Parameter(torch.randn(*shape))
        self.register_buffer("bias6", torch.linspace(-1.0, 1.0, 6))

    def example_inputs(self):
        return (torch.randn(2, 6, 4, 4),) if self.use.startswith("conv") else (torch.randn(2, 6),)

    def forward(self, x):
        F = torch.nn.functional  # noqa: N806
        if self.use == "linear":
            h = F.linear(x, self.w, self.bias6)
        elif self.use == "matmul_add":
            h = x @ self.w + self.bias6
        elif self.use == "conv":
            h = F.conv2d(x, self.w, self.bias6).mean((2, 3))
        else:
            h = F.conv_transpose2d(x, self.w, self.bias6).mean((2, 3))
        return self.lin(h)


@pytest.mark.parametrize("how", ["onnx", "pt2"])
@pytest.mark.parametrize("use", ["linear", "matmul_add", "conv", "conv_transpose"])
def test_a_buffer_where_a_layers_bias_would_be_stays_fixed_after_import(use, how, tmp_path):
    """The rule holds for a layer's bias as for its weight: a buffer added as a Linear's, Conv's or
    ConvTranspose's bias beside a learned weight was imported as the layer's learned bias (canvas 63, 63, 351 and
    351 parameters for the module's 57, 57, 345 and 345); now an Op with the buffer as its constant."""
    torch.manual_seed(0)
    model, res = _import_saved(_BiasBuffers(use), how, tmp_path)
    assert res.report["total_params"] == _params(model)
    assert _compare(res, model) <= 1e-5
    assert export_onnx(res.project, None, res.weights).max_abs_diff <= 1e-5  # and it exports again


class _TinyEpsNorm(torch.nn.Module):
    """A LayerNorm of fixed scale and shift with BERT's eps, 1e-12 (an Op on the canvas: its scale is a buffer)."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(6, 3)
        self.register_buffer("scale", torch.linspace(0.5, 2.0, 6))
        self.register_buffer("shift", torch.linspace(-1.0, 1.0, 6))

    def example_inputs(self):
        return (torch.randn(2, 6),)

    def forward(self, x):
        return self.lin(torch.nn.functional.layer_norm(x, (6,), self.scale, self.shift, eps=1e-12))


@pytest.mark.parametrize("how", ["onnx", "pt2"])
def test_an_imported_norms_eps_reads_as_written(how, tmp_path):
    """ONNX stores ``epsilon`` as float32: the Op's eps read 9.999999960041972e-13 for 1e-12, under the norm eps
    range an Op's ``eps`` is now checked against, so the import was refused ("the imported graph does not
    validate"); the layers read it as written (``as_f32``), and so does the Op."""
    torch.manual_seed(0)
    model, res = _import_saved(_TinyEpsNorm(), how, tmp_path)
    (op,) = [n for n in res.project.graph.nodes if n.type == "Op"]
    assert json.loads(op.params["args"])[-1] == 1e-12
    assert _compare(res, model) <= 1e-5


def test_python_source_and_cli(tmp_path, capsys):
    res = import_model(f"{MODELS_FILE}:SmallResNet(classes=4)")
    types = {n.type for n in res.project.graph.nodes}
    assert {"Conv2d", "BatchNorm2d", "Add", "AdaptiveAvgPool2d", "Linear"} <= types
    assert res.report["max_abs_diff"] <= 1e-5
    out = tmp_path / "lenet.json"
    assert cli_main(["import", f"{MODELS_FILE}:LeNet", "-o", str(out)]) == 0
    assert out.is_file() and out.with_suffix(".safetensors").is_file()
    assert "outputs match" in capsys.readouterr().out


class _Marker:
    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def test_pickle_disguised_as_pt2_is_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    bad = tmp_path / "model.pt2"
    bad.write_bytes(pickle.dumps(_Marker(str(marker))))
    with pytest.raises(ModelImportError, match="pickle"):
        import_model(bad)
    assert cli_main(["import", str(bad), "-o", str(tmp_path / "x.json")]) == 2
    assert not marker.exists()


def test_pt2_with_pickled_sample_inputs_is_loaded_without_them(tmp_path):
    """torch.export.load would unpickle sample inputs (falling back to weights_only=False); we never read them."""
    model = build("mlp")
    ep = torch.export.export(model, model.example_inputs())
    good = tmp_path / "m.pt2"
    torch.export.save(ep, good)
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt2"
    with zipfile.ZipFile(good) as zin, zipfile.ZipFile(evil, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if "/sample_inputs/" in item.filename:
                data = pickle.dumps(_Marker(str(marker)))
            zout.writestr(item, data)
    res = import_model(evil)
    assert res.report["max_abs_diff"] <= 1e-5
    assert not marker.exists()


def test_pt2_with_pickled_weights_is_refused(tmp_path):
    model = build("mlp")
    torch.export.save(torch.export.export(model, model.example_inputs()), tmp_path / "m.pt2")
    evil = tmp_path / "evil.pt2"
    with zipfile.ZipFile(tmp_path / "m.pt2") as zin, zipfile.ZipFile(evil, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename.endswith("model_weights_config.json"):
                data = data.replace(b'"use_pickle": false', b'"use_pickle": true', 1)
            zout.writestr(item, data)
    with pytest.raises(ModelImportError, match="pickle"):
        import_model(evil)


def test_pt2_bytes_and_not_a_zip(tmp_path):
    with pytest.raises(ModelImportError):
        import_model(b"PK\x03\x04" + b"\0" * 100)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("archive/data.pkl", b"x")
    with pytest.raises(ModelImportError):
        import_model(buf.getvalue())


def test_imported_graphs_are_named_by_their_modules_and_fit_a_screen(tmp_path):
    """``torch.onnx.export``'s default (dynamo) file and a ``.pt2``: nodes are named after the modules that made
    them (``conv1``, ``fc2``) and functional calls after their operator (``relu``), never the exporter's
    ``node_relu_1`` / ``node_Reshape_7``; the layout wraps the 14-layer chain into rows instead of one long row."""
    model = build("lenet")
    torch.onnx.export(model, model.example_inputs(), str(tmp_path / "m.onnx"), external_data=False)
    torch.export.save(torch.export.export(model, model.example_inputs()), tmp_path / "m.pt2")
    for name in ("m.onnx", "m.pt2"):
        graph = import_model(tmp_path / name).project.graph
        ids = [n.id for n in graph.nodes]
        assert {"conv1", "pool1", "conv2", "pool2", "fc1", "fc2", "fc3"} <= set(ids), (name, ids)
        assert "relu" in ids and not [i for i in ids if i.startswith("node_")], (name, ids)
        xs, ys = {n.position.x for n in graph.nodes}, {n.position.y for n in graph.nodes}
        assert len(xs) < len(graph.nodes) / 2 and len(ys) > 2, (name, sorted(xs))  # rows, not one long row


class _HalfCast(torch.nn.Module):
    """Rounds its input to float16 and back: LayerLab computes that part in float32 (no rounding)."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(x.half().float() * 3.0)


@pytest.mark.parametrize("how", ["pt2", "onnx"])
def test_a_model_rounding_to_float16_is_refused_naming_the_cast_and_the_fix(how, tmp_path):
    """An import whose output check fails because the original rounds to 16 bits says so (it said 'report this
    model'); a float64 cast imports as float32 and passes (tests/interchange/test_onnx_import.py covers Cast)."""
    torch.manual_seed(0)
    m, x = _HalfCast().eval(), torch.randn(2, 4) * 10
    if how == "pt2":
        path = tmp_path / "m.pt2"
        torch.export.save(torch.export.export(m, (x,)), path)
    else:
        path = tmp_path / "m.onnx"
        torch.onnx.export(m, (x,), path, dynamo=False, input_names=["x"], dynamic_axes={"x": {0: "b"}})
    with pytest.raises(ModelImportError) as e:
        import_model(path)
    msg = str(e.value)
    assert "partly in float16" in msg and "received: a Cast to float16" in msg and "Fix: export the model in float32" \
        in msg and "report this model" not in msg, msg


class _Attention3d(torch.nn.Module):
    """Attention on 3-d query, key and value, the key and value a buffer: torch's ONNX converter takes only 4-d."""

    def __init__(self):
        super().__init__()
        self.q = torch.nn.Linear(4, 4)
        self.register_buffer("kv", torch.randn(5, 4))

    def forward(self, x):
        kv = self.kv.expand(x.shape[0], 5, 4)
        return torch.nn.functional.scaled_dot_product_attention(self.q(x), kv, kv)


def test_a_program_the_onnx_converter_refuses_names_the_call_and_the_rule(tmp_path):
    """A .pt2 program goes through torch's ONNX converter; its refusal was shown by its first line, a banner with
    terminal colours ending in 'Next steps:' (received: ConversionError: Failed to convert the exported program to
    an ONNX model. \\x1b[96mThis is step 3/3\\x1b[0m of exporting the model to ONNX. Next steps:). Now the call it
    failed on and why, in one printable line."""
    path = tmp_path / "m.pt2"
    torch.export.save(torch.export.export(_Attention3d(), (torch.randn(2, 6, 4),)), path)
    with pytest.raises(ModelImportError) as e:
        import_model(path)
    msg = str(e.value)
    assert "received: aten.scaled_dot_product_attention: AssertionError: only 4D query, key, and value" in msg, msg
    assert "\x1b" not in msg and "Next steps" not in msg and "Fix: " in msg, msg


class _ReturnsItsParameter(torch.nn.Module):
    """Returns a learned tensor expanded over the batch beside its prediction (a class token, a learned prior)."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 3)
        self.prior = torch.nn.Parameter(torch.arange(3.0))

    def forward(self, x):
        return self.fc(x), self.prior.expand(x.shape[0], 3)


def test_a_program_returning_its_parameter_imports(tmp_path):
    """The check compared the program's outputs through numpy, and the program returns its parameter's view still
    requiring a gradient: the import stopped with torch's RuntimeError ("Can't call numpy() on Tensor that
    requires grad"), outside LayerLab's errors. Now it imports and matches."""
    torch.manual_seed(0)
    path = tmp_path / "m.pt2"
    torch.export.save(torch.export.export(_ReturnsItsParameter(), (torch.randn(2, 4),),
                                          dynamic_shapes=({0: torch.export.Dim("b")},)), path)
    res = import_model(path)
    assert res.report["max_abs_diff"] <= 1e-6
    assert sorted(t.numel() for t in res.weights.values()) == [3, 3, 12]


class _ReturnsItsBuffer(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 3)
        self.register_buffer("prior", torch.arange(3.0))

    def forward(self, x):
        return self.fc(x), self.prior


@pytest.mark.parametrize("how", ["pt2", "onnx"])
def test_a_buffer_returned_as_stored_is_refused_saying_so(how, tmp_path):
    """A buffer returned as it is stored has no batch dimension, which every LayerLab output has: refused, but as
    "op `non-tensor output` has no LayerLab layer ... Fix: make the model return tensors computed from its
    inputs", though it is a tensor. Now named for what it is, with the form that imports (expanded over the
    batch: a .pt2 file of that imports, see test_a_program_returning_its_parameter_imports)."""
    m, x = _ReturnsItsBuffer().eval(), torch.randn(2, 4)
    path = tmp_path / f"m.{how}"
    if how == "pt2":
        torch.export.save(torch.export.export(m, (x,)), path)
    else:
        torch.onnx.export(m, (x,), path, dynamo=False, input_names=["x"], dynamic_axes={"x": {0: "b"}})
    with pytest.raises(ModelImportError) as e:
        import_model(path)
    msg = str(e.value)
    assert "stored tensor returned as an output" in msg and "non-tensor" not in msg and "expand" in msg, msg


class _AttendsToItsBuffer(torch.nn.Module):
    """Attention whose query, key and value are all one buffer expanded over the batch."""

    def __init__(self):
        super().__init__()
        self.att = torch.nn.MultiheadAttention(8, 2, batch_first=True)
        self.fc = torch.nn.Linear(8, 8)
        self.register_buffer("q", torch.randn(1, 3, 8))

    def forward(self, x):
        q = self.q.expand(x.shape[0], 3, 8)
        return self.att(q, q, q, need_weights=False)[0] + self.fc(x).mean(1, keepdim=True)


def test_attention_fed_only_a_buffer_is_refused_without_calling_it_learned(tmp_path):
    """Refused (its output would not depend on the input), but the refusal called the buffer a learned
    constant ("MultiheadAttention whose query, key and value are all learned constants"); now "stored tensors
    (weights or buffers)"."""
    path = tmp_path / "m.pt2"
    torch.export.save(torch.export.export(_AttendsToItsBuffer().eval(), (torch.randn(2, 6, 8),),
                                          dynamic_shapes=({0: torch.export.Dim("b")},)), path)
    with pytest.raises(ModelImportError) as e:
        import_model(path)
    msg = str(e.value)
    assert "all stored tensors (weights or buffers)" in msg and "learned" not in msg, msg
