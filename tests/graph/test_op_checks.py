"""The generic operator node ``Op`` (builder/graph/layers/op.py) checks every call before torch sees it (issue 28):

- literals against the operator's schema: a raw integer where torch expects a dtype (``aten.to`` with ``dtype: -1``)
  reached ATen and crashed the next analysis in the same process; layouts, memory formats, devices likewise;
- shape inference allocates nothing: factory operators (``aten.full``, ``zeros``, ``arange``...) run on the meta
  device, and sizes over the budget are a located problem;
- output ports it does not have, tuple-returning operators declared as one output, in-place operators, integer
  inputs into operators whose CPU kernels refuse them, 0-d and empty constants the exported ``.py`` rebuilds.

Every problem comes back at once, located on its node (or edge).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from builder import compile_graph, export_python, infer_shapes, validate

ROOT = Path(__file__).resolve().parents[2]


def _op(nid: str, op: str, args: list, kwargs: dict | None = None, **extra) -> dict:
    params = {"op": op, "args": json.dumps(args), "kwargs": json.dumps(kwargs or {})}
    params.update({k: json.dumps(v) if k in ("weights", "buffers") else v for k, v in extra.items()})
    return {"id": nid, "type": "Op", "params": params}


def _graph(*ops: dict, shape=(4,), tokens: bool = False) -> dict:
    x = {"id": "x", "type": "Input", "params": {"shape": list(shape)}}
    if tokens:
        x["params"].update(modality="tokens", vocab_size=5)
    return {"nodes": [x, *ops], "edges": [{"source": "x", "target": o["id"]} for o in ops]}


T0 = {"t": 0}

# ------------------------------------------------------------------------- literals against the schema (28.10)
BAD_LITERALS = {
    "dtype_int_positional": ("aten.to", [T0, -1], {}),
    "dtype_int_keyword": ("aten.to", [T0], {"dtype": -1}),
    "dtype_string": ("aten.sum.dim_IntList", [T0, [-1], True], {"dtype": "float32"}),
    "memory_format_int": ("aten.clone", [T0], {"memory_format": 3}),
    "layout_int": ("aten.zeros_like", [T0], {"layout": 1}),
    "device_string": ("aten.ones_like", [T0], {"device": "cpu"}),
    "pin_memory_string": ("aten.ones_like", [T0], {"pin_memory": "yes"}),
    "bool_as_int": ("aten.sum.dim_IntList", [T0, [-1], 1], {}),
    "int_list_of_floats": ("aten.reshape", [T0, [{"b": 1}, 2.5]], {}),
    "huge_int": ("aten.select.int", [T0, 1, 2 ** 70], {}),
    "unknown_keyword": ("aten.erf", [T0], {"bogus": 1}),
    "too_many_args": ("aten.erf", [T0, 1, 2], {}),
    "missing_arg": ("aten.select.int", [T0, 1], {}),
    "tensor_for_int": ("aten.select.int", [T0, T0, 0], {}),
}


@pytest.mark.parametrize("case", sorted(BAD_LITERALS))
def test_a_literal_of_the_wrong_schema_type_is_a_located_problem(case):
    op, args, kwargs = BAD_LITERALS[case]
    problems = validate(_graph(_op("o", op, args, kwargs)))
    assert [(p.code, p.node) for p in problems if p.severity == "error"] == [("shape", "o")], problems
    assert "; received: " in problems[0].message and "Fix: " in problems[0].message


def test_every_bad_literal_is_reported_at_once():
    ops = [_op(f"o{i}", *BAD_LITERALS[c]) for i, c in enumerate(sorted(BAD_LITERALS))]
    assert sorted(p.node for p in validate(_graph(*ops))) == sorted(o["id"] for o in ops)


def test_a_dtype_given_as_an_integer_never_reaches_torch_twice_in_one_process():
    """Issue 28.10: the second analysis of ``aten.to`` with ``dtype: -1`` in one process segfaulted."""
    graph = _graph(_op("o", "aten.to", [T0], {"dtype": -1}), _op("p", "aten.to", [T0, -1]))
    code = textwrap.dedent(f"""
        import json
        from builder import validate
        graph = json.loads({json.dumps(json.dumps(graph))})
        for _ in range(3):
            print(sorted((p.code, p.node) for p in validate(graph)))
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.splitlines() == ["[('shape', 'o'), ('shape', 'p')]"] * 3


@settings(max_examples=60, deadline=None)
@given(value=st.one_of(st.integers(-10 ** 20, 10 ** 20), st.floats(allow_nan=True), st.text(max_size=5),
                       st.booleans(), st.lists(st.integers(-3, 3), max_size=3)))
def test_any_literal_in_a_dtype_slot_is_refused(value):
    problems = validate(_graph(_op("o", "aten.to", [T0], {"dtype": value})))
    assert [p.node for p in problems] == ["o"]


def test_a_well_typed_call_still_compiles_and_runs():
    graph = _graph(_op("o", "aten.to", [T0], {"dtype": {"dtype": "float32"}}),
                   _op("s", "aten.sum.dim_IntList", [T0, [-1], True], {"dtype": {"dtype": "float32"}}))
    model = compile_graph(graph)
    assert "torch.ops.aten.to.dtype(x" in model.code  # the overload that was checked is the one called
    outs = model(torch.randn(3, 4))
    assert [tuple(o.shape) for o in outs] == [(3, 4), (3, 1)]


# ------------------------------------------------------------------------- shape inference allocates nothing (28.5)
_HUGE = 25_000_000  # values per sample: 200-300 MB per batch if a factory operator ran on the CPU
FACTORIES = {
    "full": ("aten.full", [[{"b": 1}, _HUGE], 1.5], {}),
    "zeros": ("aten.zeros", [[{"b": 1}, _HUGE]], {}),
    "ones": ("aten.ones", [[{"b": 1}, _HUGE]], {"dtype": {"dtype": "float32"}}),
    "new_full": ("aten.new_full", [T0, [{"b": 1}, _HUGE], 2.0], {}),
    "new_ones": ("aten.new_ones", [T0, [{"b": 1}, _HUGE]], {}),
    "arange": ("aten.arange", [_HUGE * 4], {}),
    "expand_then": ("aten.repeat", [T0, [1, _HUGE // 4]], {}),
}


def _rss_probe(graph: dict) -> dict:
    """Analyse ``graph`` in a fresh process; its peak resident memory before and after (MiB) and the problems."""
    code = textwrap.dedent(f"""
        import json, resource
        import torch
        from builder import infer_shapes
        from builder.graph.shapes import Budget
        graph = json.loads({json.dumps(json.dumps(graph))})
        infer_shapes({{"nodes": graph["nodes"][:1], "edges": []}})  # imports and warm-up
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        report = infer_shapes(graph, Budget(max_params=10**6, max_activation_bytes=64 * 2**20, batch_size=3))
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({{"grew_mib": (after - before) / 1024,
                           "problems": [[p.code, p.node, p.severity] for p in report.problems]}}))
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.splitlines()[-1])


def test_factory_operators_allocate_nothing_while_shapes_are_inferred():
    graph = _graph(*[_op(name, *call) for name, call in FACTORIES.items()])
    res = _rss_probe(graph)
    assert res["grew_mib"] < 40, res  # a CPU run of any one of them holds 200+ MiB
    errors = {node for code, node, sev in res["problems"] if sev == "error"}
    assert errors and errors <= set(FACTORIES), res["problems"]  # over the budget (the costliest node), or refused


def test_a_factory_operator_over_the_budget_is_a_located_budget_problem():
    graph = _graph(_op("big", "aten.full", [[{"b": 1}, 1 << 40], 0.0]))
    res = _rss_probe(graph)
    assert res["grew_mib"] < 40, res
    assert ["budget", "big", "error"] in res["problems"], res


def test_factory_results_are_meta_tensors_whatever_device_the_call_names():
    from builder.graph.layers.op import _run

    p = {"op": "aten.full", "args": json.dumps([[{"b": 1}, 1 << 40], 1.0]), "kwargs": "{}", "weights": "{}",
         "buffers": "{}", "outputs": 1}
    (out,) = _run(p, [], 2)
    assert out.device.type == "meta" and out.shape == (2, 1 << 40)


# ------------------------------------------------------------------------- ports, outputs, in place, constants (28.11)
def test_an_edge_from_an_output_port_the_operator_lacks_is_a_located_problem():
    graph = _graph(_op("m", "aten.max.dim", [T0, -1], outputs=2))
    graph["nodes"].append({"id": "r", "type": "ReLU"})
    graph["edges"].append({"source": "m", "target": "r", "source_port": "out5"})
    problems = [p for p in validate(graph) if p.severity == "error"]
    assert [(p.code, p.node, p.edge) for p in problems] == [("bad_port", "r", "m.out5->r")], problems
    with pytest.raises(Exception, match="no output `out5`"):
        compile_graph(graph)


def test_a_tuple_returning_operator_declared_as_one_output_is_a_located_problem():
    problems = validate(_graph(_op("m", "aten.max.dim", [T0, -1], outputs=1)))
    assert [(p.code, p.node) for p in problems] == [("shape", "m")]
    assert "returns 2 tensor(s)" in problems[0].message


@pytest.mark.parametrize("op", ["aten.relu_", "aten.hardtanh_"])
def test_in_place_operators_are_refused(op):
    problems = validate(_graph(_op("o", op, [T0])))
    assert [(p.code, p.node) for p in problems] == [("shape", "o")]
    assert "in place" in problems[0].message and op.rstrip("_") in problems[0].message


def test_an_out_variant_is_refused():
    problems = validate(_graph(_op("o", "aten.erf.out", [T0], {"out": T0})))
    assert [(p.code, p.node) for p in problems] == [("shape", "o")]


def test_zero_d_and_empty_constants_are_rebuilt_by_the_exported_py():
    graph = _graph(_op("o", "aten.mul.Tensor", [T0, {"w": "scale"}], weights={"scale": []}),
                   _op("c", "aten.cat", [[T0, {"w": "empty"}], 1], buffers={"empty": [0]}))
    model = compile_graph(graph)
    with torch.no_grad():
        model.get_parameter(f"{model.layerlab_names['o']}.scale").fill_(3.0)
    namespace: dict = {"__name__": "exported"}
    exec(compile(export_python(graph), "<exported>", "exec"), namespace)  # noqa: S102
    exported = namespace["Model"]()
    exported.load_state_dict(model.state_dict())
    x = torch.randn(2, 4)
    for a, b in zip(exported(x), model(x), strict=True):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(model(x)[0], 3 * x)


def test_a_stored_constant_the_call_never_uses_is_a_located_problem():
    problems = validate(_graph(_op("o", "aten.erf", [T0], buffers={"unused": [2]})))
    assert [(p.code, p.node) for p in problems] == [("shape", "o")]


# ------------------------------------------------------------------------- integers into float-only kernels (28.11)
@pytest.mark.parametrize("op", ["aten.hardswish", "aten.gelu", "aten.softmax.int", "aten.silu", "aten.elu"])
def test_token_ids_into_an_operator_whose_kernel_refuses_integers_are_a_located_problem(op):
    args = [T0, -1] if op.startswith("aten.softmax") else [T0]
    problems = validate(_graph(_op("o", op, args), tokens=True))
    assert [(p.code, p.node) for p in problems] == [("shape", "o")]
    assert "float" in problems[0].message and "Fix:" in problems[0].message


def test_token_ids_into_integer_operators_still_work():
    graph = _graph(_op("o", "aten.add.Tensor", [T0, T0]), _op("e", "aten.eq.Tensor", [T0, T0]), tokens=True)
    model = compile_graph(graph)
    outs = model(torch.randint(0, 5, (3, 4)))
    assert [o.dtype for o in outs] == [torch.int64, torch.bool]


def test_every_layer_refuses_token_ids_unless_its_kernel_takes_them():
    """The class: a layer that accepts integer inputs in validation must run on them in torch."""
    from builder.graph.layers.op import INTEGER_OPS
    from builder.interchange.pt2_read import ALLOWED_OPS

    assert INTEGER_OPS.issubset({n.split(".")[1] for n in ALLOWED_OPS if n.startswith("aten.")})
    x = torch.arange(6).reshape(2, 3)
    for name in ("hardswish", "gelu", "silu", "softplus", "mish", "elu", "leaky_relu", "hardsigmoid"):
        assert name not in INTEGER_OPS
        with pytest.raises((NotImplementedError, RuntimeError)):
            getattr(torch.ops.aten, name)(x)  # torch's own refusal: the reason the list leaves them out
    assert infer_shapes(_graph({"id": "s", "type": "Softmax"}, tokens=True)).problems[0].node == "s"
    assert infer_shapes(_graph({"id": "p", "type": "PReLU"}, tokens=True)).problems[0].node == "p"


# ------------------------------------------------------------------------- found by the full-allow-list fuzzer
# Calls whose meta kernels accept what the CPU kernels refuse (each failed at run time in an accepted graph).
META_LAX = {
    "squeeze_drops_batch_1": ("aten.squeeze", [T0], {}, (4,)),  # batch 1: the batch dimension goes too
    "fixed_size_list": ("aten._adaptive_avg_pool2d", [T0, []], {}, (2, 4, 4)),
    "upsample_sizes": ("aten.upsample_bilinear2d.vec", [T0, [2], False, None], {}, (6, 2)),
    "pin_memory": ("aten.ones_like", [T0], {"pin_memory": True}, (4,)),
    "dropout_in_eval": ("aten.dropout", [T0, 0.5, True], {}, (4,)),  # an Op has no eval mode: a random export
    "bitwise_not_float": ("aten.bitwise_not", [T0], {}, (4,)),
    "index_select_matrix": ("aten.index_select", [T0, 1, {"tensor": [0, 1, 0, 1], "dtype": "int64", "shape": [2, 2]}],
                            {}, (4,)),
    "index_select_range": ("aten.index_select", [T0, 1, {"tensor": [0, 9], "dtype": "int64", "shape": [2]}], {}, (4,)),
    "gather_tokens_range": ("aten.gather", [T0, 1, T0], {}, "tokens"),
    "conv_transpose_channels": ("aten.conv_transpose2d.input", [T0, {"w": "k"}], {}, (1, 3, 2)),
    "celu_alpha_zero": ("aten.celu", [T0, 0.0], {}, (4,)),
    "empty_output": ("aten.slice.Tensor", [T0, 1, 2, 2], {}, (4,)),  # (B, 0): adaptive pools' backward refuses it
    "internal_attention": ("aten._scaled_dot_product_flash_attention_for_cpu", [T0, T0, T0], {}, (2, 3, 4)),
}


@pytest.mark.parametrize("case", sorted(META_LAX))
def test_calls_the_meta_kernel_takes_and_the_cpu_kernel_refuses_are_located_problems(case):
    op, args, kwargs, shape = META_LAX[case]
    extra = {"weights": {"k": [3, 1, 3, 2]}} if case == "conv_transpose_channels" else \
        {"outputs": 2} if case == "internal_attention" else {}
    tokens = shape == "tokens"
    problems = validate(_graph(_op("o", op, args, kwargs, **extra), shape=(4,) if tokens else shape, tokens=tokens))
    assert [(p.code, p.node) for p in problems if p.severity == "error"] == [("shape", "o")], problems


def test_index_values_within_range_still_compile_and_run():
    idx = {"tensor": [0, 3, 1], "dtype": "int64", "shape": [3]}
    graph = _graph(_op("s", "aten.index_select", [T0, 1, idx]), _op("g", "aten.embedding", [{"w": "table"}, T0],
                                                                      weights={"table": [5, 2]}), tokens=True)
    model = compile_graph(graph)
    outs = model(torch.randint(0, 5, (3, 4)))
    assert [tuple(o.shape) for o in outs] == [(3, 3), (3, 4, 2)]


@pytest.mark.parametrize("layer", ["Softmax", "PReLU", "Linear", "LayerNorm"])
def test_a_targets_labels_feed_a_losss_target_only(layer):
    """Issue 28.11: labels are class ids (int64) in training; a float-only layer behind them failed there."""
    graph = {"nodes": [{"id": "x", "type": "Input", "params": {"shape": [4]}},
                       {"id": "y", "type": "Target", "params": {"source": "labels", "size": 1}},
                       {"id": "f", "type": layer, "params": {"out_features": 2} if layer == "Linear" else {}}],
             "edges": [{"source": "x", "target": "y"}, {"source": "y", "target": "f"}]}
    problems = [p for p in validate(graph) if p.severity == "error"]
    assert [(p.code, p.node, p.edge) for p in problems] == [("bad_port", "f", "y->f")], problems
