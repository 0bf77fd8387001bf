"""ONNX import (builder/interchange/onnx_import.py, onnx_read.py, importer.py): template round trips and
malformed or hostile files (clear error, nothing executed, bounded memory)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

from builder import infer_shapes, load_template
from builder.graph.templates import OBJECTIVE_TEMPLATES, TEMPLATE_NAMES
from builder.interchange import ModelImportError, UnsupportedOpsError
from builder.interchange.importer import import_model, save_import
from builder.interchange.network_export import network_names, network_project
from builder.interchange.onnx_export import export_onnx


def _deployed(name: str) -> list:
    """What a template deploys: the project, or for a drawn objective (gan, vae) each of its networks exported on
    its own (the loss terms and targets only exist while training; the GAN's generator takes the noise)."""
    project = load_template(name)
    if name not in OBJECTIVE_TEMPLATES:
        return [project]
    return [network_project(project, n) for n in network_names(project)]


# an ONNX output that is also consumed inside the graph (the VAE's mu, logvar) comes back as an Output node, and
# several outputs keep the file's order (Output nodes in that order)
@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_template_round_trip(name, tmp_path):
    for i, project in enumerate(_deployed(name)):
        src = tmp_path / f"{name}{i}.onnx"
        export_onnx(project, src)
        res = import_model(src)
        assert res.report["max_abs_diff"] <= 1e-5
        assert res.report["total_params"] == infer_shapes(project.graph).total_params
        assert all(n.position is not None for n in res.project.graph.nodes)
        jpath, wpath = save_import(res, tmp_path / f"imp{i}.json")
        assert jpath.is_file() and wpath.is_file()
        # and back to ONNX from the imported project
        rep = export_onnx(res.project, tmp_path / f"back{i}.onnx", res.weights)
        assert rep.max_abs_diff < 1e-5


@pytest.mark.parametrize(("mode", "pad", "shape"), [("reflect", [1, 1, 0, 0], [2, 3, 3]),
                                                     ("replicate", [1, 0, 0, 0], [2, 3, 3]),
                                                     ("replicate", [0, 0, 1, 1], [2, 3, 3]),
                                                     ("reflect", [1, 1], [2, 4])])
def test_a_pad_of_the_last_dimensions_alone_comes_back_from_its_onnx_file(mode, pad, shape, tmp_path):
    """An audit: a reflect or replicate Pad of the width alone exported, and its import failed ("Padding size 2 is
    not supported for 4D input"): the importer trimmed the zero pads of the other spatial dimension, right for a
    constant pad only. A non-constant pad keeps one pair per spatial dimension."""
    from builder import load_project

    project = load_project({"format": "layerlab", "version": 1, "graph": {
        "nodes": [{"id": "x", "type": "Input", "params": {"shape": shape}},
                  {"id": "pad", "type": "Pad", "params": {"mode": mode, "pad": pad}}],
        "edges": [{"source": "x", "target": "pad"}]}})
    export_onnx(project, tmp_path / "pad.onnx")
    res = import_model(tmp_path / "pad.onnx")
    assert res.report["max_abs_diff"] <= 1e-6


def _model(nodes, inputs, outputs, inits=(), opset=18):
    g = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], ir_version=10)


def _raw(name: str, dims: list[int], raw: bytes) -> TensorProto:
    t = TensorProto(name=name, data_type=TensorProto.FLOAT, raw_data=raw)
    t.dims.extend(dims)
    return t


def _x(name="x", dims=("batch", 4)):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(dims))


def test_truncated_file_is_refused(tmp_path):
    src = tmp_path / "m.onnx"
    export_onnx(load_template("mlp"), src)
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    with pytest.raises(ModelImportError, match="truncated|not a readable"):
        import_model(bad)


def test_not_onnx_is_refused(tmp_path):
    bad = tmp_path / "x.onnx"
    bad.write_bytes(b"hello, I am text")
    with pytest.raises(ModelImportError):
        import_model(bad)


def test_external_data_outside_the_folder_is_refused(tmp_path):
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.ones(16, np.float32).tobytes())
    w = helper.make_tensor("w", TensorProto.FLOAT, [4, 4], vals=np.zeros(16, np.float32))
    w.ClearField("float_data")
    w.data_location = TensorProto.EXTERNAL
    for k, v in (("location", "../secret.bin"), ("length", "64")):
        e = w.external_data.add()
        e.key, e.value = k, v
    m = _model([helper.make_node("MatMul", ["x", "w"], ["y"])], [_x()], [_x("y")], [w])
    d = tmp_path / "models"
    d.mkdir()
    (d / "m.onnx").write_bytes(m.SerializeToString())
    with pytest.raises(ModelImportError, match="outside the model's folder"):
        import_model(d / "m.onnx")


def test_huge_initializer_is_refused_before_allocation(tmp_path):
    # the header claims 2^40 floats; the file holds a few bytes: refused from the dims alone
    w = _raw("w", [1 << 20, 1 << 20], b"\0" * 16)
    m = _model([helper.make_node("MatMul", ["x", "w"], ["y"])], [_x()], [_x("y")], [w])
    (tmp_path / "h.onnx").write_bytes(m.SerializeToString())
    with pytest.raises(ModelImportError, match="too large"):
        import_model(tmp_path / "h.onnx")


def test_truncated_initializer_is_refused(tmp_path):
    w = _raw("w", [4, 4], b"\0" * 8)
    m = _model([helper.make_node("MatMul", ["x", "w"], ["y"])], [_x()], [_x("y")], [w])
    (tmp_path / "t.onnx").write_bytes(m.SerializeToString())
    with pytest.raises(ModelImportError, match="truncated"):
        import_model(tmp_path / "t.onnx")


def test_cycle_is_refused(tmp_path):
    nodes = [helper.make_node("Add", ["x", "b"], ["a"], name="first"),
             helper.make_node("Relu", ["a"], ["b"], name="second")]
    m = _model(nodes, [_x()], [_x("b")])
    (tmp_path / "c.onnx").write_bytes(m.SerializeToString())
    with pytest.raises(ModelImportError, match="cycle"):
        import_model(tmp_path / "c.onnx")


def test_unknown_ops_are_all_reported_per_operator(tmp_path):
    w = helper.make_tensor("w", TensorProto.FLOAT, [4, 4], vals=np.eye(4, dtype=np.float32).reshape(-1))
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"], name="fc"),
             helper.make_node("Sin", ["h"], ["s1"], name="sin1"),
             helper.make_node("Sin", ["s1"], ["s2"], name="sin2"),
             helper.make_node("Hardmax", ["s2"], ["y"], name="hm")]
    m = _model(nodes, [_x()], [_x("y")], [w])
    (tmp_path / "u.onnx").write_bytes(m.SerializeToString())
    with pytest.raises(UnsupportedOpsError) as info:
        import_model(tmp_path / "u.onnx")
    ops = {u.op: u.nodes for u in info.value.unsupported}
    assert ops == {"Hardmax": ("hm",)}  # Sin becomes a generic Op node; Hardmax has no torch equivalent
    assert "op `Hardmax` has no LayerLab layer" in str(info.value) and "Fix:" in str(info.value)


def test_operators_without_a_layer_become_op_nodes(tmp_path):
    w = helper.make_tensor("w", TensorProto.FLOAT, [4, 4], vals=np.eye(4, dtype=np.float32).reshape(-1))
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"], name="fc"),
             helper.make_node("Sin", ["h"], ["s1"], name="sin1"),
             helper.make_node("Erf", ["s1"], ["y"], name="erf")]
    m = _model(nodes, [_x()], [_x("y")], [w])
    (tmp_path / "o.onnx").write_bytes(m.SerializeToString())
    res = import_model(tmp_path / "o.onnx")
    ops = {n.label: n.params["op"] for n in res.project.graph.nodes if n.type == "Op"}
    assert ops == {"Sin": "aten.sin", "Erf": "aten.erf"} and res.report["max_abs_diff"] <= 1e-6


def test_a_cast_to_another_float_type_imports_as_float32(tmp_path):
    """An Op's result must be float32 (every float edge is analysed as float32; a float16 one into the next layer
    failed at run time): a Cast to double or half imports as a cast to float32, and the import still verifies."""
    nodes = [helper.make_node("Cast", ["x"], ["d"], to=TensorProto.DOUBLE),
             helper.make_node("Sin", ["d"], ["s"]),
             helper.make_node("Cast", ["s"], ["y"], to=TensorProto.FLOAT)]
    m = _model(nodes, [_x()], [_x("y")])
    (tmp_path / "c.onnx").write_bytes(m.SerializeToString())
    res = import_model(tmp_path / "c.onnx")
    casts = [json.loads(n.params["args"])[1] for n in res.project.graph.nodes if n.type == "Op"
             and n.params["op"].startswith("aten.to")]
    assert casts and all(c == {"dtype": "float32"} for c in casts), casts
    assert res.report["max_abs_diff"] <= 1e-6


@pytest.mark.parametrize("elem, kind", [(TensorProto.BOOL, "boolean"), (TensorProto.DOUBLE, "float64"),
                                         (TensorProto.UINT8, "uint8"), (TensorProto.FLOAT16, "float16")])
def test_an_input_the_canvas_cannot_hold_is_refused_by_name(elem, kind, tmp_path):
    """A second input of booleans (a mask) or an input of another element type was given random float32 values
    by the import's check: onnxruntime's raw "Unexpected input data type". It is refused by name, with the fix."""
    w = helper.make_tensor("w", TensorProto.FLOAT, [4, 4], vals=np.eye(4, dtype=np.float32).reshape(-1))
    extra = helper.make_tensor_value_info("m", elem, ["batch", 4])
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"], name="fc"),
             helper.make_node("Cast", ["m"], ["mf"], to=TensorProto.FLOAT),
             helper.make_node("Mul", ["h", "mf"], ["y"], name="masked")]
    (tmp_path / "m.onnx").write_bytes(_model(nodes, [_x(), extra], [_x("y")], [w]).SerializeToString())
    with pytest.raises(UnsupportedOpsError) as info:
        import_model(tmp_path / "m.onnx")
    assert {u.op: u.nodes for u in info.value.unsupported} == {f"{kind} input": ("m",)}
    assert "ONNXRuntime" not in str(info.value) and "Fix:" in str(info.value)
    assert ("mask inside the model" if kind == "boolean" else "float32 inputs") in str(info.value)
    assert ("padding_mask port" in str(info.value)) == (kind == "boolean")  # where the canvas takes a mask


def test_a_model_whose_parts_do_not_fit_is_refused_with_the_files_fix_not_a_raw_error(tmp_path):
    """A Gemm whose bias does not fit its weight raised numpy's "operands could not be broadcast" (a traceback from
    ``layerlab import``, the raw text on the Build page); a Flatten with axis 7 gave onnxruntime's text and "pass
    verify=False", which the app cannot. Both say the file is at fault and how to check it."""
    w = helper.make_tensor("w", TensorProto.FLOAT, [3, 4], vals=np.ones(12, dtype=np.float32))
    b = helper.make_tensor("b", TensorProto.FLOAT, [3], vals=np.zeros(3, dtype=np.float32))
    gemm = _model([helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=0)], [_x(dims=(1, 4))], [_x("y", (1, 3))],
                  [w, b])
    flatten = _model([helper.make_node("Flatten", ["x"], ["y"], axis=7)], [_x(dims=(1, 4))], [_x("y", (1, 4))])
    for model, words in ((gemm, "parts do not fit together"), (flatten, "onnxruntime cannot run the original")):
        with pytest.raises(ModelImportError, match=f"{words}.*Fix: check the file"):
            import_model(model.SerializeToString())


def test_control_flow_is_refused_by_name(tmp_path):
    then = helper.make_graph([helper.make_node("Identity", ["x"], ["t"])], "then", [], [_x("t")])
    nodes = [helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
             helper.make_node("Cast", ["s"], ["c"], to=TensorProto.BOOL),
             helper.make_node("If", ["c"], ["y"], name="branch", then_branch=then, else_branch=then)]
    m = _model(nodes, [_x()], [_x("y")])
    (tmp_path / "if.onnx").write_bytes(m.SerializeToString())
    with pytest.raises(ModelImportError, match="If"):
        import_model(tmp_path / "if.onnx")


def test_constant_shape_arithmetic_is_folded(tmp_path):
    """Shape → Gather → Unsqueeze → Concat → Reshape (what exporters emit for x.view(x.size(0), -1))."""
    c = lambda name, v: helper.make_node("Constant", [], [name], value=helper.make_tensor(  # noqa: E731
        name, TensorProto.INT64, [len(v)] if isinstance(v, list) else [], v if isinstance(v, list) else [v]))
    nodes = [helper.make_node("Shape", ["x"], ["s"]), c("zero", 0),
             helper.make_node("Gather", ["s", "zero"], ["b"], axis=0), c("ax", [0]),
             helper.make_node("Unsqueeze", ["b", "ax"], ["b1"]), c("minus", [-1]),
             helper.make_node("Concat", ["b1", "minus"], ["shape"], axis=0),
             helper.make_node("Reshape", ["x", "shape"], ["y"])]
    m = _model(nodes, [_x("x", ("batch", 2, 3, 4))], [_x("y", ("batch", 24))])
    (tmp_path / "f.onnx").write_bytes(m.SerializeToString())
    res = import_model(tmp_path / "f.onnx")
    assert [n.type for n in res.project.graph.nodes] == ["Input", "Flatten"]
    assert res.report["max_abs_diff"] == 0.0


@pytest.mark.parametrize("per_channel, shape", [(True, [4, 5, 5]), (True, [3, 7]), (False, [6])])
def test_prelu_imports_as_the_layer_with_its_slopes(per_channel, shape, tmp_path):
    graph = {"nodes": [{"id": "x", "type": "Input", "params": {"shape": shape}},
                       {"id": "p", "type": "PReLU", "params": {"per_channel": per_channel, "init": 0.1}}],
             "edges": [{"source": "x", "target": "p"}]}
    export_onnx(graph, tmp_path / "m.onnx")
    res = import_model(tmp_path / "m.onnx")
    assert [n.type for n in res.project.graph.nodes] == ["Input", "PReLU"]
    assert res.report["max_abs_diff"] <= 1e-6 and res.report["total_params"] == (shape[0] if per_channel else 1)


def test_an_output_also_used_inside_keeps_its_place(tmp_path):
    """Outputs [y, h] where h also feeds y: both come back, in the file's order (Output nodes)."""
    w = helper.make_tensor("w", TensorProto.FLOAT, [4, 4], vals=np.eye(4, dtype=np.float32).reshape(-1) * 0.5)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"], name="fc"), helper.make_node("Tanh", ["h"], ["y"])]
    m = _model(nodes, [_x()], [_x("y"), _x("h")], [w])
    (tmp_path / "o.onnx").write_bytes(m.SerializeToString())
    res = import_model(tmp_path / "o.onnx")
    assert [n.type for n in res.project.graph.nodes][-2:] == ["Output", "Output"]
    assert [o[0] for o in infer_shapes(res.project.graph).output_nodes] == ["y", "h"] and res.report["max_abs_diff"] <= 1e-6


_FOLDER = st.text(st.characters(categories=("L", "N"), include_characters="._-"), min_size=1, max_size=10)


@settings(max_examples=20, deadline=None)
@given(st.lists(_FOLDER, min_size=1, max_size=4), st.sampled_from(["/srv/ws/owners/", "C:\\Users\\ann\\owners\\",
                                                                     "file:///srv/ws/owners/"]))
def test_imported_weights_name_their_source_without_a_server_path(tmp_path_factory, parts, root):
    """The weights an import writes (downloadable as a run's Weights) name the file imported from by its name:
    the metadata held the whole server path of the upload or library folder."""
    from safetensors import safe_open

    from builder.interchange.importer import ImportResult

    source = root + "3fa9c0" + root[-1] + root[-1].join([*parts, "model.onnx"])
    res = ImportResult(load_template("mlp"), {"fc1.weight": torch.zeros(2, 2)}, {"source": source})
    _, wpath = save_import(res, tmp_path_factory.mktemp("imp") / "imp.json")
    with safe_open(str(wpath), "pt") as f:
        shown = f.metadata()["imported_from"]
    assert shown.endswith("model.onnx") and "3fa9c0" not in shown and "owners" not in shown


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("affine", [False, True])
def test_a_group_norm_comes_back_with_its_affine_setting_and_parameter_count(affine, tmp_path):
    """affine=False exports its scale and shift as the exporter's own ones and zeros (no tensor of the file): it
    came back as affine=True with 2 parameters for 0 (test_onnx_export's drawn GroupNorm); a fresh affine one, whose
    learned weights are ones and zeros too, keeps them."""
    from builder import compile_graph

    graph = {"nodes": [{"id": "x", "type": "Input", "params": {"shape": [2, 3]}},
                       {"id": "gn", "type": "GroupNorm", "params": {"num_groups": 1, "affine": affine}}],
             "edges": [{"source": "x", "target": "gn"}]}
    model = compile_graph(graph).eval()
    export_onnx(graph, tmp_path / "m.onnx", weights=model.state_dict())
    res = import_model(tmp_path / "m.onnx", name="again")
    (gn,) = [n for n in res.project.graph.nodes if n.type == "GroupNorm"]
    assert gn.params["affine"] is affine
    assert res.report["total_params"] == infer_shapes(graph).total_params == (4 if affine else 0)


def _reciprocal_onnx(seed: int) -> bytes:
    """A Linear whose sums cancel near 0 for some rows, then 1/x: the model amplifies float32 rounding."""
    import io

    torch.manual_seed(seed)
    body = torch.nn.Sequential(torch.nn.Linear(48, 2048), torch.nn.Sigmoid(), torch.nn.Linear(2048, 512))

    class Reciprocal(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.body = body

        def forward(self, x):
            return torch.reciprocal(self.body(x))

    buf = io.BytesIO()
    torch.onnx.export(Reciprocal().eval(), (torch.randn(3, 48),), buf, dynamo=False, input_names=["x"],
                      dynamic_axes={"x": {0: "b"}})
    return buf.getvalue()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_an_ill_conditioned_model_imports_and_a_wrong_mapping_of_it_is_still_refused():
    """The deep graph fuzzer's Linear -> Reciprocal was refused ("differs from the original by up to 0.124;
    tolerance 0.0407"): two correct float32 runtimes differ where 1/x amplifies the rounding of a cancelling sum
    (3 of these 6 were refused in one run). What the model's own float32 rounding explains is left out of the
    difference; a mapping that is wrong by far less than the amplified rounding is still refused."""
    from builder.interchange import importer
    from builder.interchange.onnx_read import read_onnx

    for seed in range(6):
        res = import_model(_reciprocal_onnx(seed), name="r")
        assert res.report["max_abs_diff"] > 0
    data = _reciprocal_onnx(5)
    res = import_model(data, name="r")
    key = next(k for k in res.weights if k.endswith("weight"))
    res.weights[key] = res.weights[key] * (1 + 1e-3)  # a mapping off by 0.1 % in one layer
    diff, scale, _ = importer._verify(res, read_onnx(data), None)
    assert diff > importer.IMPORT_ATOL * scale
