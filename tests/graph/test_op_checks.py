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
from torch.utils._python_dispatch import TorchDispatchMode

from builder import compile_graph, export_python, infer_shapes, validate
from builder.graph.compile import canonical_strides
from tests.fuzz_budget import budget

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


@pytest.mark.parametrize(("op", "args", "missing"), [("aten.mean.dim", [T0], "dim"),
                                                    ("aten.div.Tensor_mode", [T0, T0], "rounding_mode")])
def test_an_optional_argument_without_a_default_must_be_given(op, args, missing):
    """``int[1]? dim`` (no ``=None``) is still required: torch refuses the call without it ("missing value for
    argument"), as it refused ``aten.full.names``' ``str[]? names`` on torch 2.11 at shape inference."""
    problems = validate(_graph(_op("o", op, args)))
    assert [(p.code, p.node) for p in problems] == [("shape", "o")], problems
    assert f"needs argument `{missing}`; received: nothing" in problems[0].message


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


@settings(max_examples=budget(60), deadline=None)
@given(value=st.one_of(st.integers(-10 ** 20, 10 ** 20), st.floats(allow_nan=True), st.text(max_size=5),
                       st.booleans(), st.lists(st.integers(-3, 3), max_size=3)))
def test_any_literal_in_a_dtype_slot_is_refused(value):
    problems = validate(_graph(_op("o", "aten.to", [T0], {"dtype": value})))
    assert [p.node for p in problems] == ["o"]


def test_a_well_typed_call_still_compiles_and_runs():
    graph = _graph(_op("o", "aten.to", [T0], {"dtype": {"dtype": "float32"}}),
                   _op("s", "aten.sum.dim_IntList", [T0, [-1], True], {"dtype": {"dtype": "float32"}}))
    model = compile_graph(graph)
    assert "torch.ops.aten.to.dtype(o_canonical" in model.code  # the overload that was checked is the one called
    # (on a canonical copy of the input: a caller may hand any strides, and Op kernels include stride-buggy ones)
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
        # imports and warm-up: the first Op node a process analyses imports ~75 MiB of torch (autograd on meta, the
        # dispatch modes that follow a backward: torch._dynamo): a fixed cost, not one of the sizes measured here
        infer_shapes({{"nodes": [graph["nodes"][0], {{"id": "warm", "type": "Op", "params": {{"op": "aten.erf",
                      "args": '[{{"t": 0}}]', "kwargs": "{{}}"}}}}], "edges": [{{"source": graph["nodes"][0]["id"],
                      "target": "warm"}}]}})
        before = int(open('/proc/self/status').read().split('VmHWM:')[1].split()[0])
        report = infer_shapes(graph, Budget(max_params=10**6, max_activation_bytes=64 * 2**20, batch_size=3))
        after = int(open('/proc/self/status').read().split('VmHWM:')[1].split()[0])
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


_WIDE = 300_000  # one input dimension: as many meta tensors, three times over, if a list-returning operator ran
LISTS = {
    "unbind": ("aten.unbind", [T0, 1], {}),
    "split": ("aten.split", [T0, 1, 1], {}),
    "chunk": ("aten.chunk", [T0, _WIDE, 1], {}),
}


def test_a_list_returning_operator_longer_than_the_output_ports_is_refused_before_it_runs():
    """``aten.unbind`` of a dimension of 10^6 made 10^6 meta tensors for each of the three batches tried: 2 GiB and
    13 s of the server's for one node of a graph that validates (the canvas, a share link)."""
    graph = _graph(*[_op(name, *call) for name, call in LISTS.items()], shape=(_WIDE,))
    res = _rss_probe(graph)
    assert res["grew_mib"] < 40, res
    assert sorted(node for code, node, sev in res["problems"] if sev == "error") == sorted(LISTS), res


def test_list_lengths_are_computed_as_torch_counts_them():
    from builder.graph.layers.op import MAX_OUTPUTS

    calls = [("aten.unbind", [T0, 1], (8, 3)), ("aten.unbind", [T0, -1], (8, 3)), ("aten.chunk", [T0, 3, 1], (10,)),
             ("aten.chunk", [T0, 100, 1], (7,)), ("aten.split", [T0, 3, 1], (10,)),
             ("aten.split", [T0, [4, 6], 1], (10,)), ("aten.split_with_sizes", [T0, [2, 2, 2], 1], (6,))]
    for op, args, shape in calls:
        n = len(getattr(torch.ops.aten, op.split(".")[1])(torch.zeros(2, *shape), *args[1:]))
        assert n <= MAX_OUTPUTS
        assert validate(_graph(_op("o", op, args, outputs=n), shape=shape)) == [], (op, args)
    for op, args, shape in [("aten.unbind", [T0, 1], (9,)), ("aten.chunk", [T0, 100, 1], (10,)),
                            ("aten.split", [T0, 2, 1], (17,))]:
        (p,) = validate(_graph(_op("o", op, args, outputs=8), shape=shape))
        assert p.node == "o" and "at most 8" in p.message, p


def test_every_allow_listed_operator_returning_a_tensor_list_has_its_length_computed():
    from builder.graph.layers.op import LIST_OPS
    from builder.graph.op_allow import ALLOWED_OPS

    for name in ALLOWED_OPS:
        packet = getattr(torch.ops.aten, name.split(".")[1]) if name.startswith("aten.") else None
        for overload in packet.overloads() if packet else ():
            returns = getattr(packet, overload)._schema.returns
            if len(returns) == 1 and str(returns[0].type) == "List[Tensor]":
                assert name.split(".")[1] in LIST_OPS, (name, overload)


def test_factory_results_are_meta_tensors_whatever_device_the_call_names():
    from builder.graph.layers.op_meta import run_call

    p = {"op": "aten.full", "args": json.dumps([[{"b": 1}, 1 << 40], 1.0]), "kwargs": "{}", "weights": "{}",
         "buffers": "{}", "outputs": 1}
    (out,) = run_call(p, [], 2)
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


def test_a_list_returning_operator_of_one_tensor_hands_on_the_tensor_not_the_list():
    """``make fuzz`` (operator fuzzer, seed 28, graph 874): aten.split of a size larger than the dimension returns a
    list of one tensor; validation accepted ``outputs: 1`` and the compiled model returned the list itself."""
    graph = _graph(_op("s", "aten.split.Tensor", [T0, 2 ** 40, -1], outputs=1), shape=(5, 2))
    assert not [p for p in validate(graph) if p.severity == "error"]
    x = torch.randn(3, 5, 2)
    out = compile_graph(graph)(x)
    assert isinstance(out, torch.Tensor) and out.shape == (3, 5, 2)
    namespace: dict = {"__name__": "exported"}
    exec(compile(export_python(graph), "<exported>", "exec"), namespace)  # noqa: S102
    torch.testing.assert_close(namespace["Model"]()(x), out)
    # a tuple of two (``make fuzz`` seed 31437, graph 1250: the ports were zipped against the whole port list)
    values = compile_graph(_graph(_op("m", "aten.max.dim", [T0, -1], outputs=2), shape=(5, 2)))(x)
    torch.testing.assert_close(values, x.max(-1).values)


@pytest.mark.parametrize("call", [("aten.cumsum", [T0, -1], {"dtype": {"dtype": "uint8"}}),
                                  ("aten.sum.dim_IntList", [T0, [-1]], {"dtype": {"dtype": "int64"}}),
                                  ("aten.prod.dim_int", [T0, 1], {"dtype": {"dtype": "bool"}})])
def test_a_float_input_reduced_into_an_integer_dtype_is_a_located_problem(call):
    """``make fuzz`` (operator fuzzer, seed 28, graphs 1101-1104): aten.cumsum of a float input with
    ``dtype: uint8`` passed validation and failed in training ("Autograd not support dtype: Byte"), as it does for
    Explain's input gradients; a cast with aten.to (no gradient through it) still passes."""
    op, args, kwargs = call
    problems = validate(_graph(_op("o", op, args, kwargs)))
    assert [(p.code, p.node) for p in problems] == [("shape", "o")], problems
    assert "floating-point" in problems[0].message and "Fix:" in problems[0].message
    cast = _graph(_op("o", "aten.to.dtype", [T0], {"dtype": {"dtype": "uint8"}}))
    assert not [p for p in validate(cast) if p.severity == "error"]


def test_a_float_operator_asked_for_an_integer_dtype_is_a_located_problem():
    """``make fuzz`` (operator fuzzer, seed 2232740939, graph 1108): aten.log_softmax of a factory's float result
    (no gradient, so autograd's refusal above never fired) with ``dtype: int32`` passed validation and failed in
    the forward pass ("log_softmax_lastdim_kernel_impl" not implemented for 'Int'); a float dtype and an integer
    factory still pass."""
    def graph(*ops: dict) -> dict:
        x = {"id": "x", "type": "Input", "params": {"shape": [4]}}
        return {"nodes": [x, _op("z", "aten.zeros", [[{"b": 1}, 4]]), *ops],
                "edges": [{"source": "x", "target": "z"}] + [{"source": "z", "target": o["id"]} for o in ops]}

    for op in ("aten.log_softmax.int", "aten.softmax.int"):
        problems = validate(graph(_op("o", op, [T0, 1, {"dtype": "int32"}])))
        assert [(p.code, p.node) for p in problems if p.severity == "error"] == [("shape", "o")], problems
        assert "dtype=int32" in problems[0].message and "Fix:" in problems[0].message
    fine = graph(_op("f", "aten.log_softmax.int", [T0, 1, {"dtype": "float32"}]))
    fine["nodes"].append(_op("n", "aten.zeros", [[{"b": 1}, 2]], {"dtype": {"dtype": "int64"}}))
    fine["edges"].append({"source": "x", "target": "n"})
    assert not [p for p in validate(fine) if p.severity == "error"]


def test_non_finite_fill_values_are_written_into_the_exported_py():
    """``make fuzz`` (operator fuzzer, seed 3065547435, graph 1127): aten.new_full with a NaN fill value exported a
    ``.py`` that raised NameError (torch.fx writes the names nan and inf); -inf (attention masks) likewise."""
    graph = _graph(_op("n", "aten.new_full", [T0, [{"b": 1}, 3], float("nan")]),
                   _op("i", "aten.new_full", [T0, [{"b": 1}, 2], float("-inf")]))
    x = torch.randn(2, 4)
    namespace: dict = {}
    exec(compile(export_python(graph), "model.py", "exec"), namespace)  # noqa: S102 - our own generated file
    for got, want in zip(namespace["Model"]()(x), compile_graph(graph)(x), strict=True):
        torch.testing.assert_close(got, want, equal_nan=True)


def test_an_operators_bool_result_reaches_layers_as_token_ids_and_operators_as_analysed():
    """``make fuzz`` (operator fuzzer, seed 3065547435, graphs 1874-1880): aten.logical_or's result (typed as token
    ids of vocabulary 2) into an Embedding failed at run time ("Expected tensor for argument #1 'indices' to have
    one of the following scalar types: Long, Int; but got CPUBoolType"): bool results are int64 ids at run time,
    as analysed, and an operator analysed with bool inputs (a mask of ids 0/1) gets bools."""
    x = {"id": "x", "type": "Input", "params": {"shape": [4]}}
    graph = {"nodes": [x, _op("o", "aten.logical_or", [T0, T0]), {"id": "e", "type": "Embedding",
                                                                   "params": {"embedding_dim": 3}}],
             "edges": [{"source": "x", "target": "o"}, {"source": "o", "target": "e"}]}
    mask = {"nodes": [x, {"id": "m", "type": "Input", "params": {"shape": [4], "modality": "tokens",
                                                                  "vocab_size": 2}},
                      _op("f", "aten.masked_fill.Scalar", [T0, {"t": 1}, 0.0])],
            "edges": [{"source": "x", "target": "f", "target_port": "0"}, {"source": "m", "target": "f", "target_port": "1"}]}
    for g, inputs in ((graph, (torch.randn(3, 4),)), (mask, (torch.randn(3, 4), torch.randint(0, 2, (3, 4))))):
        assert not [p for p in validate(g) if p.severity == "error"]
        model = compile_graph(g)
        out = model(*inputs)
        namespace: dict = {}
        exec(compile(export_python(g), "model.py", "exec"), namespace)  # noqa: S102 - our own generated file
        exported = namespace["Model"]()
        exported.load_state_dict(model.state_dict())
        torch.testing.assert_close(exported(*inputs), out)
    assert out.shape == (3, 4) and (out[inputs[1].bool()] == 0).all()


def test_one_hot_with_enough_classes_still_compiles_and_runs():
    model = compile_graph(_graph(_op("o", "aten.one_hot", [T0, 5]), tokens=True))
    ids = torch.randint(0, 5, (3, 4))
    torch.testing.assert_close(model(ids), torch.nn.functional.one_hot(ids, 5))


@pytest.mark.parametrize("op", ["aten.relu_", "aten.hardtanh_", "aten.masked_fill_", "aten.add_.Tensor"])
def test_in_place_operators_are_refused(op):
    problems = validate(_graph(_op("o", op, [T0])))
    assert [(p.code, p.node) for p in problems] == [("shape", "o")]
    assert "in place" in problems[0].message and op.split(".")[1].rstrip("_") in problems[0].message


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
    assert [o.dtype for o in outs] == [torch.int64, torch.int64]  # a comparison's result: ids 0/1, as typed


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
    "softmax_dim_range": ("aten.softmax", [T0, 3], {}, (6,)),  # deep operator fuzzer seed 92004, graph 1031
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
    "celu_alpha_tiny": ("aten.celu", [T0, 1e-45], {}, (4,)),  # an audit: 1/alpha past float32 ("overflow")
    "empty_output": ("aten.slice.Tensor", [T0, 1, 2, 2], {}, (4,)),  # (B, 0): adaptive pools' backward refuses it
    "internal_attention": ("aten._scaled_dot_product_flash_attention_for_cpu", [T0, T0, T0], {}, (2, 3, 4)),
    # probe of h-graphs: attention's dropout_p drops in evaluation too (an Op has no training mode: the exported .py
    # gave other values), and a negative one fails the CPU forward ("Currently do not support dropout > 0")
    "attention_dropout_in_eval": ("aten.scaled_dot_product_attention", [T0, T0, T0], {"dropout_p": 0.5}, (2, 3, 4)),
    "attention_negative_dropout": ("aten.scaled_dot_product_attention", [T0, T0, T0], {"dropout_p": -1.0},
                                   (2, 3, 4)),
    # make fuzz, operator fuzzer (seed 2232740939): graphs 758/759 (uninitialised values: the exported .py gave
    # others), 2536/2537 (one_hot of ids 0..2 into 1 class: "Class values must be smaller than num_classes")
    "empty_uninitialised": ("aten.empty.memory_format", [[{"b": 1}, 1]], {}, (4,)),
    "one_hot_too_few_classes": ("aten.one_hot", [T0, 1], {}, "tokens"),
    # seed 3065547435, graph 1977: a bfloat16 result into a Linear ("expected m1 and m2 to have the same dtype")
    "bfloat16_output": ("aten.to.dtype", [T0, {"dtype": "bfloat16"}], {}, (4,)),
    # seed 1490306169, graphs 1290-1293: a float input and an int64 inline weight ("Found dtype Long")
    "integer_constant_into_float_op": ("aten._prelu_kernel", [T0, {"tensor": [2], "dtype": "int64", "shape": [1]}],
                                       {}, (1, 5, 5)),
    # seed 777001, graphs 447-450: a float index constant ("index_select(): Expected dtype int32 or int64")
    "index_select_float_index": ("aten.index_select", [T0, 1, {"tensor": [0.0, 1.0], "dtype": "float32",
                                                               "shape": [2]}], {}, (4,)),
    # seed 9090, graphs 1966-1971: aten._convolution with transposed=1 and the wrong channels ("to have 1 channels")
    "transposed_convolution_channels": ("aten.convolution", [T0, {"w": "k"}, None, [1, 1], [0, 0], [1, 1], True,
                                                             [0, 0], 1], {}, (1, 3, 2)),
    # seed 5150, graphs 2267-2270: a bool constant into aten.matmul ("addmv input tensors must have the same dtype")
    "matmul_bool_constant": ("aten.matmul", [T0, {"tensor": [True, False], "dtype": "bool", "shape": [2]}], {},
                             (3, 2)),
    # seed 424242, graphs 399-403: a bool exponent (backward: "Subtraction ... with a bool tensor is not supported")
    "pow_bool_exponent": ("aten.pow.Tensor_Tensor", [T0, {"tensor": [False, True], "dtype": "bool", "shape": [2]}],
                          {}, (3, 2)),
    # probe of h-probe2 (issue 28 class a): integer kernels refuse values their meta kernels take
    "integer_power_negative_exponent": ("aten.pow.Tensor_Scalar", [T0, -1], {}, "tokens"),  # "Integers to negative"
    "integer_division_by_zero": ("aten.div.Scalar_mode", [T0, 0], {"rounding_mode": "trunc"}, "tokens"),
    "integer_division_by_token_ids": ("aten.div.Tensor_mode", [T0, T0], {"rounding_mode": "floor"}, "tokens"),
    "fill_overflows_int64": ("aten.full_like", [T0, 1e30], {}, "tokens"),  # "cannot be converted to type int64_t"
    "new_full_overflows_int64": ("aten.new_full", [T0, [{"b": 1}, 2], 1e30], {}, "tokens"),
    "factory_fill_overflows_uint8": ("aten.full", [[{"b": 1}, 2], 300], {"dtype": {"dtype": "uint8"}}, (4,)),
    "masked_fill_overflows_int64": ("aten.masked_fill.Scalar", [T0, {"tensor": [True, False, True, False],
                                                                     "dtype": "bool", "shape": [4]}, 1e30], {},
                                    "tokens"),
    "round_decimals_of_integers": ("aten.round.decimals", [T0], {"decimals": 2}, "tokens"),  # "round_cpu" for Long
    # deep fuzzer, seed 4080916290: indices all null ("ntensor >= 3 INTERNAL ASSERT FAILED", CPU only)
    "index_of_only_nulls": ("aten.index.Tensor", [T0, [None]], {}, (2, 3)),
    # "value cannot be converted to type float without overflow": numbers beyond float32's range
    "threshold_beyond_float32": ("aten.threshold", [T0, 1e308, 0.0], {}, (4,)),
    "fill_beyond_float32": ("aten.full_like", [T0, -1e300], {}, (4,)),
    "pad_value_beyond_float32": ("aten.constant_pad_nd", [T0, [1, 1], 1e300], {}, (2, 3)),
    "clamp_beyond_float32": ("aten.clamp", [T0], {"max": 1e39}, (4,)),
    # an inline constant's values outside its dtype: torch.tensor refused them in the forward only
    "int8_constant_overflows": ("aten.add.Tensor", [T0, {"tensor": [300], "dtype": "int8", "shape": [1]}], {},
                                "tokens"),
    "int64_constant_overflows": ("aten.add.Tensor", [T0, {"tensor": [10 ** 30], "dtype": "int64", "shape": [1]}], {},
                                 "tokens"),
    "int64_constant_of_400_digits": ("aten.add.Tensor", [T0, {"tensor": [10 ** 400], "dtype": "int64", "shape": [1]}],
                                     {}, "tokens"),
    "int64_constant_of_a_huge_float": ("aten.add.Tensor", [T0, {"tensor": [1e30], "dtype": "int64", "shape": [1]}],
                                       {}, "tokens"),
    "int64_constant_of_nan": ("aten.add.Tensor", [T0, {"tensor": [float("nan")], "dtype": "int64", "shape": [1]}],
                              {}, "tokens"),
    "uint8_constant_negative": ("aten.add.Tensor", [T0, {"tensor": [-1], "dtype": "uint8", "shape": [1]}], {},
                                "tokens"),
}


@pytest.mark.parametrize("case", sorted(META_LAX))
def test_calls_the_meta_kernel_takes_and_the_cpu_kernel_refuses_are_located_problems(case):
    op, args, kwargs, shape = META_LAX[case]
    transposed = case in ("conv_transpose_channels", "transposed_convolution_channels")
    extra = {"weights": {"k": [3, 1, 3, 2]}} if transposed else {"outputs": 2} if case == "internal_attention" else {}
    tokens = shape == "tokens"
    problems = validate(_graph(_op("o", op, args, kwargs, **extra), shape=(4,) if tokens else shape, tokens=tokens))
    assert [(p.code, p.node) for p in problems if p.severity == "error"] == [("shape", "o")], problems


def _const(dtype: str, values: list) -> dict:
    return {"tensor": values, "dtype": dtype, "shape": [len(values)]}


# Issue 30: the dtype rules of inline constants are one walk over the bound arguments, nested lists included, and
# each problem names its argument. Before, the mask rule read top-level values only: a bool constant inside
# aten.einsum's `tensors` got torch's own refusal ("expected scalar type torch.float32 but found torch.bool"), or
# none at all next to a float constant (which CPU refuses in the other order: "expected scalar type Float but
# found Bool"); the other two rules said "an inline constant of dtype ..." without the argument.
NAMED_CONSTANTS = {
    "bool_in_a_list": ("aten.einsum", ["bi,i->b", [T0, _const("bool", [True, False])]],
                       "computes on float values; received: a bool constant as `tensors`. Fix: write the constant "
                       "as float32 (bool constants are masks"),
    "bool_before_a_float_in_a_list": ("aten.einsum", ["bi,i,i->b", [T0, _const("bool", [True, False]),
                                                                    _const("float32", [0.0, 1.0])]],
                                      "received: a bool constant as `tensors`"),
    "int_in_a_list": ("aten.einsum", ["bi,i->b", [T0, _const("int64", [0, 1])]],
                      "computes on float values; received: an inline constant of dtype int64 as `tensors`. Fix: "
                      "write the constant as float32"),
    "bool_exponent": ("aten.pow.Tensor_Tensor", [T0, _const("bool", [False, True])],
                      "cannot compute with bool values (its CPU kernel or its derivative subtracts from them); "
                      "received: a bool constant as `exponent`. Fix: write the constant as float32"),
    # the rules' order decides between two constants, whatever their order: the integer one before the bool one
    # (a 3-d query: attention over a 2-d one reads the batch as its steps, op_batch's problem)
    "int_after_a_bool": ("aten.scaled_dot_product_attention", [T0, _const("bool", [True, False]),
                                                               _const("int64", [0, 1])],
                         "received: an inline constant of dtype int64 as `value`", (1, 2)),
}


@pytest.mark.parametrize("case", sorted(NAMED_CONSTANTS))
def test_an_inline_constants_dtype_problem_names_its_argument_nested_ones_too(case):
    op, args, message, *shape = NAMED_CONSTANTS[case]
    problems = [p for p in validate(_graph(_op("o", op, args), shape=(shape or [(2,)])[0])) if p.severity == "error"]
    assert [(p.code, p.node) for p in problems] == [("shape", "o")], problems
    assert f"{op} " in problems[0].message and message in problems[0].message, problems[0].message


def test_a_bool_mask_constant_stays_allowed():
    mask = {"tensor": [True, False, True] * 3, "dtype": "bool", "shape": [3, 3]}  # (L, S): 3 queries, 3 keys
    graph = _graph(_op("o", "aten.scaled_dot_product_attention", [T0, T0, T0], {"attn_mask": mask}), shape=(3, 4))
    assert [p for p in validate(graph) if p.severity == "error"] == []


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


@pytest.mark.parametrize("call", [
    ("aten.embedding", [{"w": "w"}, T0, -1, False, True], {}),  # sparse=True
    ("aten.embedding", [{"w": "w"}, T0], {"sparse": True}),
])
def test_a_call_asking_for_sparse_gradients_is_a_located_problem(call):
    """Adam and AdamW refuse sparse gradients ("Adam does not support sparse gradients") at the first step: an
    Op embedding with ``sparse=true`` passed validation and failed in training."""
    op, args, kwargs = call
    problems = validate(_graph(_op("o", op, args, kwargs, weights={"w": [5, 3]}), tokens=True))
    assert [(p.code, p.node) for p in problems if p.severity == "error"] == [("shape", "o")], problems
    assert "sparse" in problems[0].message and "Fix: " in problems[0].message


def test_gather_with_sparse_gradients_is_a_located_problem():
    x = {"id": "x", "type": "Input", "params": {"shape": [4]}}
    i = {"id": "i", "type": "Input", "params": {"shape": [4], "modality": "tokens", "vocab_size": 4}}
    o = _op("o", "aten.gather", [T0, 1, {"t": 1}], {"sparse_grad": True})
    graph = {"nodes": [x, i, o], "edges": [{"source": "x", "target": "o", "target_port": "0"},
                                           {"source": "i", "target": "o", "target_port": "1"}]}
    problems = validate(graph)
    assert [(p.code, p.node) for p in problems if p.severity == "error"] == [("shape", "o")], problems
    o["params"]["kwargs"] = "{}"
    assert not [p for p in validate(graph) if p.severity == "error"]


def test_an_operator_after_a_strided_operator_gets_the_strides_it_was_analysed_with():
    """Shape inference runs each Op on fresh (contiguous) meta inputs; the compiled forward handed it a transpose,
    so ``aten.view`` after ``aten.transpose`` validated and failed in the forward ("view size is not compatible
    with input tensor's size and stride"), and a norm kernel behind a permuting Op got the strides issue 28.4
    crashes on. An Op's strided inputs get canonical strides, as the norm layers' do."""
    graph = _graph(shape=(3, 4))
    graph["nodes"] += [_op("t", "aten.transpose.int", [T0, 1, 2]), _op("v", "aten.view", [T0, [{"b": 1}, 12]])]
    graph["edges"] = [{"source": "x", "target": "t"}, {"source": "t", "target": "v"}]
    assert validate(graph) == []
    model = compile_graph(graph)
    assert model(torch.randn(2, 3, 4)).shape == (2, 12)
    # a permute moving a size-1 dimension (issue 28.4's strides) into a norm kernel called by an Op
    graph = _graph(shape=(5, 1, 1))
    graph["nodes"] += [_op("p", "aten.permute", [T0, [0, 2, 1, 3]]), _op("n", "aten.group_norm", [T0, 1])]
    graph["edges"] = [{"source": "x", "target": "p"}, {"source": "p", "target": "n"}]
    assert validate(graph) == []
    seen = []

    class Strides(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func is torch.ops.aten.native_group_norm.default:
                seen.append((tuple(args[0].shape), args[0].stride()))
            return func(*args, **(kwargs or {}))
    model = compile_graph(graph)
    with Strides():
        model(torch.randn(2, 5, 1, 1))
    assert seen == [((2, 1, 5, 1), canonical_strides((2, 1, 5, 1)))]


# probe of h-probe2: convolution arguments the meta kernels take and the CPU kernels refuse in the forward
_BIAS3 = {"tensor": [0.0, 0.0, 0.0], "dtype": "float32", "shape": [3]}
CONV_LAX = {
    "negative_padding": ("aten.conv2d", [T0, {"w": "k"}, None, [1, 1], [-1, -1]], [2, 2, 3, 3]),  # "negative padding"
    "negative_padding_1d": ("aten.conv1d", [T0, {"w": "k"}, None, [1], [-2]], [2, 2, 3]),
    "negative_dilation": ("aten.conv2d", [T0, {"w": "k"}, None, [1, 1], [0, 0], [-1, -1]], [2, 2, 3, 3]),
    "negative_padding_convolution": ("aten.convolution", [T0, {"w": "k"}, None, [1, 1], [-1, 0], [1, 1], False,
                                                          [0, 0], 1], [2, 2, 3, 3]),
    # "output padding must be smaller than either stride or dilation"
    "output_padding_too_large": ("aten.conv_transpose2d.input", [T0, {"w": "k"}, None, [1, 1], [0, 0], [3, 3], 1,
                                                                 [1, 1]], [2, 2, 3, 3]),
    "output_padding_too_large_convolution": ("aten.convolution", [T0, {"w": "k"}, None, [2, 2], [0, 0], [1, 1],
                                                                  True, [0, 2], 1], [2, 2, 3, 3]),
    # probe of h-graphs: groups and bias against the weight ("Given groups=2, expected weight to be divisible by 2 at
    # dimension 0", "expected bias to be 1-dimensional with 2 elements"), which meta kernels do not check
    "groups_not_dividing_out_channels": ("aten.conv2d", [T0, {"w": "k"}, None, [1, 1], [0, 0], [1, 1], 2],
                                         [3, 1, 3, 3]),
    "groups_not_dividing_out_channels_1d": ("aten.conv1d", [T0, {"w": "k"}, None, [1], [0], [1], 2], [3, 1, 3]),
    "groups_not_dividing_out_channels_convolution": ("aten.convolution", [T0, {"w": "k"}, None, [1, 1], [0, 0],
                                                                          [1, 1], False, [0, 0], 2], [3, 1, 3, 3]),
    "groups_not_dividing_in_channels_transposed": ("aten.conv_transpose2d.input", [T0, {"w": "k"}, None, [1, 1],
                                                                                   [0, 0], [0, 0], 3], [2, 1, 3, 3]),
    "bias_not_one_per_out_channel": ("aten.conv2d", [T0, {"w": "k"}, _BIAS3], [2, 2, 3, 3]),
    "bias_not_one_per_out_channel_transposed": ("aten.conv_transpose2d.input", [T0, {"w": "k"}, _BIAS3],
                                                [2, 2, 3, 3]),
}


@pytest.mark.parametrize("case", sorted(CONV_LAX))
def test_convolution_arguments_the_cpu_kernel_refuses_are_located_problems(case):
    op, args, weight = CONV_LAX[case]
    shape = (2, 5) if len(weight) == 3 else (2, 5, 5)
    problems = validate(_graph(_op("o", op, args, weights={"k": weight}), shape=shape))
    assert [(p.code, p.node) for p in problems if p.severity == "error"] == [("shape", "o")], problems
    assert "; received: " in problems[0].message and "Fix: " in problems[0].message


def test_a_transposed_convolution_within_its_output_padding_still_runs():
    args = [T0, {"w": "k"}, None, [2, 2], [0, 0], [1, 1], 1, [1, 1]]
    graph = _graph(_op("o", "aten.conv_transpose2d.input", args, weights={"k": [2, 2, 3, 3]}), shape=(2, 5, 5))
    assert validate(graph) == []
    assert compile_graph(graph)(torch.randn(2, 2, 5, 5)).shape == (2, 2, 12, 12)


@pytest.mark.parametrize(("op", "args", "shape", "fine", "wider"), [
    ("aten.group_norm", [T0, 4], (4,), [T0, 2], (4,)),  # groups of one channel of one value
    ("aten.group_norm", [T0, 2], (2, 1, 1), [T0, 2], (2, 2, 1)),
    ("aten.native_group_norm", [T0, None, None, {"b": 1}, 4, 1, 4, 1e-5], (4,), None, None),
    ("aten.instance_norm", [T0, None, None, None, None, True, 0.1, 1e-5, False], (3, 1),
     [T0, None, None, None, None, True, 0.1, 1e-5, False], (3, 2)),
    ("aten.layer_norm", [T0, [1]], (3, 1), [T0, [2]], (3, 2)),
])
def test_a_normalisation_of_single_values_is_a_located_problem(op, args, shape, fine, wider):
    """``make fuzz`` (operator fuzzer, seed 3665110642): aten.group_norm of a (B, 4) input in 4 groups passed
    validation; it normalises single values, so it gives its shift whatever the input, and torch's kernel and
    onnxruntime's agree there only up to rounding noise that 1/sqrt(eps) multiplies: the exported ONNX file did
    not import back (the check saw 1.12e-05 over its 1e-05). The GroupNorm and InstanceNorm layers refused such
    groups already; the same call over more values still passes."""
    problems = validate(_graph(_op("o", op, args), shape=shape))
    assert [(p.code, p.node) for p in problems if p.severity == "error"] == [("shape", "o")], problems
    assert "normalises single values" in problems[0].message and "Fix:" in problems[0].message
    if fine is not None:
        assert not [p for p in validate(_graph(_op("o", op, fine), shape=wider)) if p.severity == "error"]


def test_the_layer_norm_layer_refuses_single_values_as_the_group_and_instance_norm_layers_do():
    """A LayerNorm over a trailing dimension of one value (after a Linear with one output) gives its shift whatever
    its input: refused, with the fix; over two trailing dimensions it normalises five values and passes."""
    def graph(dims: int) -> dict:
        return {"nodes": [{"id": "x", "type": "Input", "params": {"shape": [5, 1]}},
                          {"id": "n", "type": "LayerNorm", "params": {"normalized_dims": dims}}],
                "edges": [{"source": "x", "target": "n"}]}

    problems = validate(graph(1))
    assert [(p.code, p.node) for p in problems] == [("shape", "n")], problems
    assert "received: normalized_dims=1 for (B, 5, 1) (1 value). Fix: use normalized_dims=2" in problems[0].message
    assert not [p for p in validate(graph(2)) if p.severity == "error"]


@pytest.mark.parametrize(("op", "args"), [
    ("aten.upsample_bilinear2d", [T0, [4, 3], False, 1e-5, None]),
    ("aten.upsample_bilinear2d", [T0, [3, 3], False, None, 0.0]),
    ("aten.upsample_nearest2d", [T0, [6, 6], 2.0, 3.0]),
    ("aten.upsample_nearest1d", [T0, [6], 0.5]),
])
def test_an_upsample_scale_that_is_not_its_output_over_its_input_is_a_located_problem(op, args):
    """``make fuzz`` (operator fuzzer, seed 301375524, graphs 2478-2481): aten.upsample_bilinear2d with
    scales_h=1e-05 beside output_size [4, 3] was accepted; torch maps the output rows back with that scale and
    clamps, and its ONNX export gathers far outside the input ("invalid index found, index = 49999"). Given scales
    must be the output size over the input's; left out, or given as that, they pass."""
    shape = (2, 3) if op.endswith("1d") else (2, 3, 3)
    problems = validate(_graph(_op("o", op, args), shape=shape))
    assert [(p.code, p.node) for p in problems if p.severity == "error"] == [("shape", "o")], problems
    assert "is the output size over the input's" in problems[0].message and "Fix: leave it out" in problems[0].message
    out = args[1]
    fine = [T0, out, *([False] if "bilinear" in op else []),
            *[o / s for o, s in zip(out, shape[1:], strict=False)]]
    left_out = [T0, out, *([False] if "bilinear" in op else []), *([None] * len(out))]
    for call in (fine, left_out):
        assert not [p for p in validate(_graph(_op("o", op, call), shape=shape)) if p.severity == "error"], call


# --------------------------------------------------------- names that become Python names in the exported .py
@pytest.mark.parametrize("name", ["class", "lambda", "ﬁ", "ｗ", "\u00b5", "_hidden"])
def test_an_op_constant_or_keyword_name_that_is_no_plain_python_name_is_a_located_problem(name):
    """An Op constant's name is an attribute of the generated module (``self.op.<name>``) and a keyword argument's
    is written as ``<name>=``: ``class`` made the exported .py a SyntaxError that reached the page uncaught, and
    ``ﬁ`` (read by Python as ``fi``) gave the exported file other state-dict keys than the trained weights."""
    consts = _graph(_op("o", "aten.mul.Tensor", [T0, {"w": name}], weights={name: []}))
    problems = validate(consts)
    assert [p.node for p in problems] == ["o"], problems
    assert "ASCII Python identifiers" in problems[0].message
    kw = _graph(_op("o", "aten.sum.dim_IntList", [T0, [-1]], {name: True}))
    problems = validate(kw)
    assert [p.node for p in problems] == ["o"], problems


def test_a_plain_op_constant_name_exports_with_the_trained_keys():
    graph = _graph(_op("o", "aten.mul.Tensor", [T0, {"w": "scale"}], weights={"scale": []}))
    assert validate(graph) == []
    source = export_python(graph)
    compile(source, "model.py", "exec")
    assert "scale" in source and set(compile_graph(graph).state_dict()) == {"o.scale"}


# ------------------------------------------------------------------- a variance NaN or inf whatever the input (28)
#: (operator, args, kwargs, input shape): each validated before; NaN or inf in training (measured on CPU), but for
#: an eps over 1, outside the norm layers' range
NONFINITE_STATISTICS = {
    "layer_norm_negative_eps": ("aten.layer_norm", [T0, [4], None, None, -1.0], {}, (4,)),  # a constant row: NaN
    "group_norm_zero_eps": ("aten.group_norm", [T0, 1, None, None, 0.0], {}, (2, 3)),  # a constant sample: 0/0
    "batch_norm_eps_over_one": ("aten.batch_norm", [T0, None, None, None, None, True, 0.1, 2.0, False], {}, (4,)),
    "std_of_one_value": ("aten.std.dim", [T0, [1]], {}, (1,)),  # one value less a correction of 1: 0/0
    "var_correction_of_all": ("aten.var.correction", [T0, [-1]], {"correction": 4}, (3, 4)),
    "var_over_a_1x1_plane": ("aten.var.dim", [T0, [1, 2]], {}, (1, 1)),
}
FINITE_STATISTICS = {
    "layer_norm_eps": ("aten.layer_norm", [T0, [4], None, None, 1e-5], {}, (4,)),
    "var_of_two": ("aten.var.correction", [T0, [1]], {"correction": 1}, (2,)),
    "std_of_one_value_biased": ("aten.std.dim", [T0, [1], False], {}, (1,)),
}


@pytest.mark.parametrize("case", sorted(NONFINITE_STATISTICS))
def test_a_variance_that_is_nan_whatever_the_input_is_a_located_problem(case):
    op, args, kwargs, shape = NONFINITE_STATISTICS[case]
    problems = [p for p in validate(_graph(_op("o", op, args, kwargs), shape=shape)) if p.severity == "error"]
    assert [(p.code, p.node) for p in problems] == [("shape", "o")], problems
    assert "received:" in problems[0].message and "Fix:" in problems[0].message, problems[0].message


@pytest.mark.parametrize("case", sorted(FINITE_STATISTICS))
def test_a_variance_with_values_to_spare_stays_valid_and_finite(case):
    op, args, kwargs, shape = FINITE_STATISTICS[case]
    graph = _graph(_op("o", op, args, kwargs), shape=shape)
    assert not [p for p in validate(graph) if p.severity == "error"]
    out = compile_graph(graph).train()(torch.randn(3, *shape))
    assert all(torch.isfinite(o).all() for o in (out if isinstance(out, tuple | list) else [out]))
