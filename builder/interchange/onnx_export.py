"""ONNX export with a dynamic batch axis, verified against onnxruntime before the file is written, and
dynamic int8 quantization (onnxruntime.quantization) with the test metric measured before and after.

Example::

    # not a doctest (needs files or training): run by tests/interchange/test_onnx_export.py::test_every_template_exports_and_matches_onnxruntime
    report = export_onnx(load_template("cnn"), "cnn.onnx")
    report.max_abs_diff < 1e-4
    # -> True
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import io
import json
import logging
import math
import os
import tempfile
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from builder.data import fit_dataset
from builder.data.disk import write_atomic
from builder.errors import LayerLabError, TrainingError
from builder.graph.compile import compile_graph, example_inputs, module_names
from builder.graph.latency import compare_latency
from builder.graph.lora import merged_project
from builder.graph.project import as_graph
from builder.interchange.onnx_locate import exporter_reason, locate_failure, no_onnx_nodes, node_name
from builder.interpret.calibration import stored_temperature
from builder.runs.modelcard import write_model_card
from builder.training.metrics import evaluate

OPSET = 18
VERIFY_ATOL = 1e-4  # float32 kernels of torch and onnxruntime differ by rounding, not by semantics


class ExportError(LayerLabError):
    """A model cannot be exported to ONNX, or the exported file does not match the PyTorch model (``reason``: what
    failed, without the fix, for a message that names the node it failed at)."""

    def __init__(self, message: str, reason: str = ""):
        super().__init__(message)
        self.reason = reason or message


@dataclass
class ExportReport:
    """What :func:`export_onnx` wrote and how closely onnxruntime reproduces PyTorch."""

    path: str
    bytes: int
    max_abs_diff: float
    inputs: list[str]
    outputs: list[str]
    opset: int = OPSET
    verified_batch: int = 3
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _model_from(source: Any, weights: Any) -> nn.Module:
    """A compiled model in eval mode, with ``weights`` (path or state dict) loaded when given."""
    if isinstance(source, nn.Module):
        model = source
    else:
        torch.manual_seed(0)
        model = compile_graph(source)
    if weights is not None:
        if isinstance(weights, str | os.PathLike):
            from builder.training.weights import read_weights  # lazy: heavy (safetensors)

            weights, _ = read_weights(weights)
        try:
            model.load_state_dict(dict(weights))
        except RuntimeError as e:
            raise ExportError(f"the weights do not fit this graph; received: {str(e).splitlines()[0]}. "
                              "Fix: export the project the weights were trained with") from None
    return model.eval()


def refuse_packed_sequences(model: nn.Module) -> None:
    """Raise ExportError naming each node whose compiled code packs its rows (a bidirectional RNN/LSTM/GRU with a
    padding mask): torch.onnx cannot export packed sequences, and its own error names no node."""
    from builder.graph.layers.recurrent import ONNX_REFUSAL  # lazy: the layer modules load with the registry

    packing = torch.nn.utils.rnn.pack_padded_sequence
    graph = getattr(model, "graph", None)
    attrs = {n.target for n in getattr(graph, "nodes", ()) if n.op == "call_module"
             and any(getattr(a, "target", None) is packing for a in n.args)}
    if attrs:
        node_of = {attr: nid for nid, attr in getattr(model, "layerlab_names", {}).items()}
        names = ", ".join(sorted(f"'{node_of.get(a, a)}'" for a in attrs))
        raise ExportError(f"{ONNX_REFUSAL}; received: node {names}. Fix: set bidirectional off or disconnect its "
                          "padding_mask for an ONNX file; the .py export keeps it")


def _inputs_for(model: nn.Module, batch: int, seed: int = 0) -> list[torch.Tensor]:
    if hasattr(model, "layerlab_inputs"):
        return example_inputs(model, batch, seed)
    raise ExportError("a plain nn.Module needs example inputs; pass `example=` (a tensor or tuple of tensors)")


@contextlib.contextmanager
def quiet_export():
    """The exporter logs and warns a lot (torchvision ops, deprecations); keep the terminal readable."""
    prev = logging.root.manager.disable
    logging.disable(logging.WARNING)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            yield
        finally:
            logging.disable(prev)


@functools.cache
def keep_torchlib() -> bool:
    """Make torch's exporter read onnxscript's ATen translations, and build its registry and decomposition
    table from them, once per process instead of on every export (0.6 s of every export with onnxscript 0.5,
    then 0.19 of a template's 1.1 CPU-s with torch 2.13). They change only when a translation or decomposition
    is registered, which LayerLab never does; each export gets its own copy of the registry. Returns whether
    they are kept (False when this torch builds them another way: exports then stay as they were).

    >>> keep_torchlib() and keep_torchlib()
    True
    """
    try:
        from torch.onnx._internal import _lazy_import  # lazy: heavy (torch.onnx)
        from torch.onnx._internal.exporter import _decomp, _registration  # lazy: heavy (torch.onnx)

        apis = importlib.import_module(_lazy_import.onnxscript_apis._name)
        read = apis.get_torchlib_ops
        build = _registration.ONNXRegistry.from_torchlib.__func__
        derive = _decomp.create_onnx_friendly_decomposition_table
        known = _registration._torchlib_registry._registry
        decompositions = importlib.import_module("torch._decomp").decomposition_table
    except (ImportError, AttributeError):
        return False
    apis.get_torchlib_ops = functools.cache(functools.partial(_torchlib_ops, read))  # wrapped once
    registries: dict = {}
    tables: dict = {}

    def from_torchlib(cls, *args, **kwargs):
        key = (cls, args, tuple(sorted(kwargs.items())), len(known))
        if key not in registries:
            registries[key] = build(cls, *args, **kwargs)
        kept, registry = registries[key], cls()
        vars(registry).update(vars(kept))
        registry.functions = {k: list(v) for k, v in kept.functions.items()}  # a custom op goes to this copy only
        return registry

    def friendly_table(ops):
        key = (frozenset(ops), len(decompositions))
        if key not in tables:
            tables[key] = derive(ops)
        return dict(tables[key])

    _registration.ONNXRegistry.from_torchlib = classmethod(from_torchlib)
    _decomp.create_onnx_friendly_decomposition_table = friendly_table
    return True


def _torchlib_ops(read: Any) -> list:
    """onnxscript's ATen translations as its ``get_torchlib_ops`` (``read``) lists them, each one's domain read from
    its opset: ``read`` takes it from ``function_ir``, which parses the Python source of each of ~500 traced
    functions (0.3-0.4 of the ~3 CPU-s of a process's first export) to read a domain the opset already names, and
    torch's registry never reads it. ``read`` itself where this onnxscript keeps its registry another way."""
    try:
        from onnxscript.function_libs.torch_lib import ops, registration  # lazy: heavy (onnxscript)

        del ops  # imported for its registrations
        meta = importlib.import_module(read.__module__)._OnnxFunctionMeta  # where onnxscript defines the function
        return [meta(qualified_name=name, function=f, domain=f.opset.domain, name=f.name, is_complex=is_complex)
                for name, funcs in registration.default_registry.items() if not name.startswith("internal::")
                for group, is_complex in ((funcs.overloads, False), (funcs.complex, True)) for f in group]
    except (ImportError, AttributeError, TypeError):
        return read()


def to_onnx_proto(model: nn.Module, example: tuple[torch.Tensor, ...], input_names: list[str],
                  output_names: list[str] | None = None, opset: int = OPSET):
    """Export with the torch.export-based exporter (``dynamo=True``): batch axis dynamic, module scopes
    recorded in node metadata (the importer reads them), BatchNorm kept as its own op (not folded).
    """
    keep_torchlib()
    batch = torch.export.Dim("batch", min=1, max=1 << 20)
    dyn = tuple({0: batch} for _ in example)
    with quiet_export():
        try:
            prog = torch.onnx.export(model, example, dynamo=True, dynamic_shapes=dyn, opset_version=opset,
                                     input_names=input_names, output_names=output_names, optimize=False,
                                     verbose=False)
        except Exception as e:  # torch raises many types; the user needs its innermost cause, on one line
            why = f"torch.onnx.export failed; received: {exporter_reason(e)}"
            raise ExportError(f"{why}. Fix: simplify the graph or report the layer that fails", why) from None
    return without_stack_traces(prog.model_proto)


#: node metadata torch's exporter records that names files of this server (the Python frames of the trace: the
#: install folder, its Python version): an exported model is handed to whoever downloads it
SERVER_METADATA = ("pkg.torch.onnx.stack_trace",)


def without_stack_traces(proto):
    """``proto`` (an ONNX ModelProto, changed in place and returned) without :data:`SERVER_METADATA` on any node
    (the graph's, its subgraphs', its functions'): a downloaded model.onnx named the server's folders
    (``/srv/app/.venv/lib/python3.11/site-packages/torch/nn/modules/linear.py`` in every node's stack trace). The
    module scopes the importer reads (``name_scopes``, ``class_hierarchy``) stay."""
    from onnx import AttributeProto  # lazy: heavy (onnx)

    def clean(graph) -> None:
        for node in graph.node:
            kept = [m for m in node.metadata_props if m.key not in SERVER_METADATA]
            if len(kept) != len(node.metadata_props):
                del node.metadata_props[:]
                node.metadata_props.extend(kept)
            for a in node.attribute:
                if a.type == AttributeProto.GRAPH:
                    clean(a.g)
                elif a.type == AttributeProto.GRAPHS:
                    for g in a.graphs:
                        clean(g)

    clean(proto.graph)
    for fn in proto.functions:
        clean(fn)
    return proto


def warm_exporter() -> None:
    """Export a one-layer model once, so this process has torch's exporter imported and its registry and
    decomposition table built (:func:`keep_torchlib`): the sandbox's zygote calls it before it forks, and each
    forked export, import or quantization then skips that cold start (~2.5 CPU-s). The exporter's progress bars
    would start tqdm's monitor thread, which a process that forks must not have: it is turned off here."""
    with contextlib.suppress(ImportError):
        import tqdm  # lazy: only to turn its monitor thread off

        tqdm.tqdm.monitor_interval = 0
    torch.set_num_threads(1)  # no intra-op thread pool in a process that forks (each child sets its own)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        to_onnx_proto(nn.Linear(2, 1).eval(), (torch.zeros(2, 2),), ["x"])


def ort_session(model_bytes: bytes):
    """An onnxruntime CPU session (one thread: results are deterministic and the machine stays usable)."""
    import onnxruntime as ort  # lazy: heavy (onnxruntime)

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])


def compare_with_ort(model_bytes: bytes, reference: nn.Module, inputs: list[torch.Tensor],
                     scale: list | None = None) -> float:
    """Max |torch - onnxruntime| over every output for these inputs (``scale``: a list that gets the largest finite
    |torch output|, what a tolerance for float32 rounding is relative to)."""
    try:
        sess = ort_session(model_bytes)
        feeds = {i.name: t.numpy() for i, t in zip(sess.get_inputs(), inputs)}
        got = sess.run(None, feeds)
    except Exception as e:  # noqa: BLE001 - onnxruntime's errors have no common base class
        first = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
        hint = ("onnxruntime requires output_padding < stride for ConvTranspose: lower output_padding or raise "
                "stride" if "output_padding" in first else "report the layer that fails; the .py export still works")
        raise ExportError(f"onnxruntime cannot run the exported model; received: {first}. Fix: {hint}") from None
    with torch.no_grad():
        want = reference(*inputs)
    want = list(want) if isinstance(want, tuple | list) else [want]
    if len(want) != len(got):
        raise ExportError(f"onnxruntime returned {len(got)} outputs, PyTorch {len(want)}")
    want = [w.detach().numpy() for w in want]
    if scale is not None:
        finite = [np.abs(w[np.isfinite(w)]).max() for w in want if w.size and np.isfinite(w).any()]
        scale.append(float(max(finite, default=0.0)))
    return output_difference(want, got)


def output_difference(want: list, got: list, slack: list | None = None) -> float:
    """Max |want - got| over paired outputs (arrays or tensors), where the same NaN or the same infinity in both
    counts as equal (Log, Sqrt and Pow of negative inputs give NaN in torch and onnxruntime alike). ``slack``: per
    output, how much of each element's difference float32 rounding explains (left out of it).

    >>> output_difference([np.array([1.0, np.nan, np.inf])], [np.array([1.5, np.nan, np.inf])])
    0.5
    >>> output_difference([np.array([np.nan])], [np.array([0.0])])
    nan
    >>> output_difference([np.array([4000.0, 1.0])], [np.array([4000.5, 1.25])], [np.array([0.75, 0.0])])
    0.25
    """
    worst = 0.0
    for i, (w, g) in enumerate(zip(want, got)):
        w, g = np.asarray(w, dtype=np.float64), np.asarray(g, dtype=np.float64)
        if not w.size:
            continue
        same = (np.isnan(w) & np.isnan(g)) | ((w == g) & np.isinf(w))
        with np.errstate(invalid="ignore"):  # inf - inf where both are the same infinity: masked by ``same``
            d = np.abs(w - g) if slack is None else np.maximum(np.abs(w - g) - np.nan_to_num(slack[i]), 0.0)
            m = float(np.where(same, 0.0, d).max())  # a NaN left here is a real mismatch
        if m != m:
            return m
        worst = max(worst, m)
    return worst


class Tempered(nn.Module):
    """``model``'s single output (the logits) divided by a temperature (:mod:`builder.interpret.calibration`)."""

    def __init__(self, model: nn.Module, temperature: float):
        super().__init__()
        self.model, self.temperature = model, float(temperature)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The logits / T (one input: the exporter's dynamic shapes follow this signature)."""
        out = self.model(x)
        if not isinstance(out, torch.Tensor):
            raise ExportError("a temperature divides one output (the logits); received a model with several "
                              "outputs. Fix: export without the temperature")
        return out / self.temperature


def check_temperature(temperature: float) -> float:
    """``temperature`` as a float; raises ExportError unless it is finite and > 0."""
    t = float(temperature)
    if not (math.isfinite(t) and t > 0):
        raise ExportError(f"the temperature is a finite number > 0; received: {temperature!r}. Fix: use the one "
                          "`layerlab calibrate` fitted")
    return t


def export_onnx(source: Any, path: str | os.PathLike | None, weights: Any = None, *, opset: int = OPSET,
                example: tuple[torch.Tensor, ...] | None = None, atol: float = VERIFY_ATOL,
                seed: int = 0, temperature: float | None = None) -> ExportReport:
    """Export a graph (or compiled model) to ONNX with a dynamic batch axis.

    The file is checked with ``onnx.checker`` and run by onnxruntime on random inputs of a batch size other
    than the one traced; it is written only if every output matches PyTorch within ``atol``.

    Args:
        source: a Graph, Project, dict, project path, or an ``nn.Module`` (compiled graphs carry their inputs).
        path: where to write the ``.onnx`` file (None: verify only).
        weights: a safetensors path or a state dict to load first (default: the model's current weights).
        example: example inputs for a plain ``nn.Module``.
        atol: largest accepted difference, times the largest output magnitude where that is above 1 (float32
            rounding grows with the values).
        temperature: divide the (single) output by it, as a calibrated classifier's logits (:class:`Tempered`).

    Returns:
        An :class:`ExportReport` (``max_abs_diff`` is what onnxruntime differs from PyTorch).

    Raises:
        ExportError: export failed, the checker rejected the file, or outputs differ by more than ``atol``.
        GraphError: the graph has problems.

    A node that cannot be exported (:func:`~builder.interchange.onnx_locate.no_onnx_nodes`, or the one a failure
    is located at, :func:`~builder.interchange.onnx_locate.locate_failure`) is named in the ExportError.
    """
    if not isinstance(source, nn.Module):
        source = as_graph(source)  # once, here at the entry point
        if bad := no_onnx_nodes(source):  # known before exporting: named, with why and what to do
            raise ExportError(f"{len(bad)} node(s) cannot be exported to ONNX: " + "; ".join(bad[:5]))
    model = _model_from(source, weights)
    refuse_packed_sequences(model)
    mod_names = module_names(source) if not isinstance(source, nn.Module) else {}
    example_given = example is not None
    if example is None:
        example = tuple(_inputs_for(model, 2, seed))
        names = ([mod_names[n] for n in model.layerlab_inputs]  # padding masks are derived inside the model
                 if not isinstance(source, nn.Module) else [f"input_{i}" for i in range(len(example))])
        check_inputs = _inputs_for(model, 3, seed + 1)
    else:
        example = tuple(example) if isinstance(example, tuple | list) else (example,)
        names = [f"input_{i}" for i in range(len(example))]
        check_inputs = [torch.cat([t, t[:1]]) for t in example]
    outs = ([mod_names[n] for n in model.layerlab_outputs]
            if example_given is False and not isinstance(source, nn.Module) else None)
    if outs:  # an output named like a buffer (a sinusoidal position table) would break single assignment
        taken = set(model.state_dict()) | set(names)
        outs = [f"{o}_out" if o in taken else o for o in outs]
    if temperature is not None:
        if len(example) != 1:
            raise ExportError(f"a temperature is applied to a one-input classifier; received {len(example)} inputs. "
                              "Fix: export without the temperature")
        model = Tempered(model, check_temperature(temperature)).eval()
    try:
        proto, data, diff = _verified(model, example, names, outs, check_inputs, opset, atol)
    except ExportError as e:
        if isinstance(source, nn.Module) or example_given or temperature is not None:
            raise
        nid = locate_failure(source, model.state_dict(), lambda m: _verified(
            m, tuple(_inputs_for(m, 2, seed)), [f"input_{i}" for i in range(len(m.layerlab_inputs))], None,
            _inputs_for(m, 3, seed + 1), opset, atol))
        if nid is None:
            raise
        raise ExportError(f"{node_name(source, nid)}: the ONNX export fails at this node; {e.reason}. Fix: give "
                          "it other settings, or use another layer or operator, to export this model to ONNX (it "
                          "trains and runs as it is)", e.reason) from None
    report = ExportReport(path=str(path) if path else "", bytes=len(data), max_abs_diff=diff,
                          inputs=[i.name for i in proto.graph.input], outputs=[o.name for o in proto.graph.output],
                          opset=opset, verified_batch=int(check_inputs[0].shape[0]))
    if path is not None:
        _atomic_write(Path(path), data)
    return report


def _verified(model: nn.Module, example: tuple, names: list[str], outs: list[str] | None, check_inputs: list,
              opset: int, atol: float) -> tuple[Any, bytes, float]:
    """(ONNX proto, its bytes, onnxruntime's largest difference from PyTorch) of ``model``, checked by onnx.checker
    and within ``atol``; ExportError otherwise."""
    import onnx  # lazy: heavy (onnx)

    proto = to_onnx_proto(model, example, names, None, opset=opset)
    if outs:
        name_outputs(proto.graph, outs)
    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as e:
        why = f"onnx.checker rejected the exported model; received: {str(e).splitlines()[0][:300]}"
        raise ExportError(why, why) from None
    data = proto.SerializeToString()
    largest: list = []
    diff = compare_with_ort(data, model, check_inputs, largest)
    tol = atol * max(1.0, *largest)  # float32 rounding grows with the values (x ** 3 then 3 ** that: 8e-4 at 1e4)
    if not diff <= tol:
        why = f"onnxruntime differs from PyTorch by up to {diff:.3g}; received: tolerance {tol:.3g}"
        raise ExportError(f"{why}. Fix: report this graph (an exporter or runtime bug); the file was not written",
                          why)
    return proto, data, diff


def name_outputs(graph: Any, outs: list[str]) -> None:
    """Name ``graph``'s outputs ``outs`` (the output layers' names). torch's exporter names intermediate values
    after their operators (``linear``, ``linear_1``...), so an output layer called ``linear_1`` got a name already
    used, and onnx.checker refused the file: such an intermediate value is renamed first. An output that is a graph
    input, or a second output of one value, gets an Identity node of its own."""
    from onnx import helper  # lazy: heavy (onnx)

    used = {v for n in graph.node for v in (*n.input, *n.output)} | {v.name for v in graph.input} | \
        {v.name for v in graph.initializer} | {v.name for v in graph.value_info} | {v.name for v in graph.output}
    fixed = {v.name for v in graph.input} | {v.name for v in graph.initializer}

    def fresh(base: str) -> str:
        k = 1
        while f"{base}_{k}" in used:
            k += 1
        used.add(f"{base}_{k}")
        return f"{base}_{k}"

    def rename(old: str, new: str) -> None:
        for n in graph.node:
            n.input[:] = [new if v == old else v for v in n.input]
            n.output[:] = [new if v == old else v for v in n.output]
        for v in (*graph.value_info, *graph.output):
            if v.name == old:
                v.name = new
        used.add(new)

    named: set[str] = set()
    for out, want in zip(graph.output, outs):
        cur = out.name
        if cur == want:
            named.add(want)
            continue
        if want in fixed or want in named:  # a weight's or an input's name (kept), or another output's
            want = fresh(want)
        elif want in used:
            rename(want, fresh(want))  # an intermediate value of that name moves aside
        if cur in fixed or cur in named:
            graph.node.append(helper.make_node("Identity", [cur], [want], name=f"{want}_identity"))
            out.name = want
            used.add(want)
        else:
            rename(cur, want)
        named.add(want)


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, data, "the ONNX file")


# ----------------------------------------------------------------------------------------- int8


def quantize_int8(src: str | os.PathLike, dst: str | os.PathLike) -> dict:
    """Dynamic int8 quantization of an ONNX file (weights int8, activations quantized at run time).

    MatMul/Gemm, LSTM/GRU and attention weights are quantized; convolutions keep float weights because
    onnxruntime's CPU ConvInteger kernel needs uint8 weights (a UInt8 variant loses more accuracy).

    Returns:
        ``{"bytes_before", "bytes_after", "ratio", "ops"}``.

    Raises:
        ExportError: the quantizer or onnxruntime cannot handle the quantized model.
    """
    import onnx  # lazy: heavy (onnx)
    from onnxruntime.quantization import QuantType, quantize_dynamic  # lazy: heavy (onnxruntime)

    src, dst = Path(src), Path(dst)
    ops = ["MatMul", "Gemm", "LSTM", "GRU", "Attention"]
    with tempfile.TemporaryDirectory() as tmp, quiet_export():
        # the exporter's intermediate value_info can carry the traced batch size; let the quantizer re-infer
        proto = onnx.load(str(src), load_external_data=False)
        try:  # fold weight reshuffles (LSTM gate order, transposed Linear weights) into initializers
            import onnxscript.optimizer  # lazy: heavy (onnxscript)

            proto = onnxscript.optimizer.optimize(proto)
        except Exception:  # noqa: S110  the quantizer still works, on fewer initializers
            pass
        del proto.graph.value_info[:]
        pre = Path(tmp) / "pre.onnx"
        pre.write_bytes(proto.SerializeToString())
        out = Path(tmp) / "q.onnx"
        try:
            quantize_dynamic(str(pre), str(out), weight_type=QuantType.QInt8, op_types_to_quantize=ops)
            data = out.read_bytes()
            ort_session(data)  # refuses a model onnxruntime cannot run
        except Exception as e:
            raise ExportError(f"int8 quantization failed; received: {type(e).__name__}: {str(e).splitlines()[0][:300]}") from None
    _atomic_write(dst, data)
    before = src.stat().st_size
    return {"bytes_before": before, "bytes_after": len(data), "ratio": len(data) / before if before else None,
            "ops": ops}


class OrtModule(nn.Module):
    """An onnxruntime session behind ``nn.Module.__call__`` so :func:`builder.training.trainer.evaluate` can score it."""

    def __init__(self, model_bytes: bytes):
        super().__init__()
        self.sess = ort_session(model_bytes)
        self.names = [i.name for i in self.sess.get_inputs()]

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        out = self.sess.run(None, {n: x.detach().cpu().numpy() for n, x in zip(self.names, xs)})
        return torch.from_numpy(out[0])


def _run_dataset(store, run: dict, project):
    """The run's dataset as it was trained (snapshot for uploads; flattened when the graph wants vectors)."""
    from builder.runs.pipeline import load_run_dataset  # lazy: heavy (safetensors)

    return fit_dataset(project.graph, load_run_dataset(store, run))


def _run_weights(store, run: dict) -> Path:
    path = store.weights_path(run["id"])
    if not path.is_file():
        raise TrainingError(f"run {run['id']} ({run['status']}) has no trained weights yet. Fix: export a "
                            "finished run")
    return path


def export_run_onnx(store, run_id: str, path: str | os.PathLike | None = None, *,
                    temperature: bool = False) -> ExportReport:
    """Export a run's trained model to ONNX (default path: the run's ``exports/model.onnx``, for a run the store's
    actor controls; LoRA adapters merged into their base layers); with ``temperature`` its logits are divided by the
    temperature kept by ``layerlab calibrate``.

    Raises:
        ExplainError: ``temperature`` for a run never calibrated. ExportError, TrainingError: as export_onnx.
    """
    run = store.get(run_id)
    path = Path(path) if path else store.folder(run.id, write=True).onnx  # into the run: its controller's alone
    t = None
    if temperature:
        t = stored_temperature(store, run["id"])
    from builder.training.weights import read_weights  # lazy: heavy (safetensors)

    weights, _ = read_weights(_run_weights(store, run))
    project, weights = merged_project(run.project, weights)  # LoRA adapters folded in: plain MatMuls
    return export_onnx(project, path, weights, temperature=t)


def quantize_run(store, run_id: str, path: str | os.PathLike | None = None) -> dict:
    """Export a run to ONNX, quantize it to int8 and score both files on the run's test split.

    The figures go to ``exports/quantization.json`` in the run folder, and the model card gains a
    "Quantization" section. Returns that record: the two files (``fp32_path``, ``int8_path``: their place in the
    run folder, e.g. ``exports/model.onnx``, or an outside file's name; never a server path), sizes, ratio, test
    metrics before/after, delta, and the
    onnxruntime latency of both files on a test batch, timed interleaved with its p10-p90 spread and verdict
    (:func:`builder.graph.latency.compare_latency`). The files and the card are written into the run: the store's
    actor controls it (``store.folder(run_id, write=True)``; reading it is not enough).
    """
    run = store.get(run_id)
    folder = store.folder(run.id, write=True)  # AccessDenied: a run the actor reads but does not control
    rid = run.id
    project = run.project
    fp32 = folder.onnx
    out = Path(path) if path else folder.onnx_int8
    rep = export_onnx(project, fp32, _run_weights(store, run))
    sizes = quantize_int8(fp32, out)
    ds = _run_dataset(store, run, project)
    info = ds.info
    metric = "accuracy" if info.task in ("multiclass", "binary") else "r2"
    kw = {"class_names": info.class_names} if getattr(info, "class_names", None) else {}
    m32, m8 = OrtModule(fp32.read_bytes()), OrtModule(out.read_bytes())
    before = evaluate(m32, ds.test.X, ds.test.y, info.task, **kw)
    after = evaluate(m8, ds.test.X, ds.test.y, info.task, **kw)
    batch = ds.test.X[:32]  # both files' sessions (one thread each) timed interleaved on one batch
    lat = compare_latency(lambda: m32(batch), lambda: m8(batch), batch_size=len(batch), repeats=20, warmup=3)
    # the files by their place in the run folder (an outside one by its name): the record is downloaded and shown,
    # and a server path names the workspace
    shown = {k: (p.relative_to(folder.path).as_posix() if p.is_relative_to(folder.path) else p.name)
             for k, p in (("fp32_path", fp32), ("int8_path", out))}
    record = {"run": rid, **shown, **sizes, "metric": metric,
              "test_before": before.get(metric), "test_after": after.get(metric),
              "delta": (after.get(metric) - before.get(metric)) if before.get(metric) is not None else None,
              "test_loss_before": before.get("loss"), "test_loss_after": after.get("loss"),
              "onnx_max_abs_diff": rep.max_abs_diff, "n_test": int(len(ds.test)), "latency": lat.to_dict(),
              "latency_text": lat.text()}
    folder.exports.mkdir(parents=True, exist_ok=True)
    write_atomic(folder.quantization, json.dumps(record, indent=2), "the quantization record")
    write_model_card(store, rid)
    return record


__all__ = ["warm_exporter", "export_onnx", "refuse_packed_sequences", "ExportReport", "ExportError", "quantize_int8", "quantize_run", "export_run_onnx",
           "compare_with_ort", "output_difference", "ort_session", "OrtModule", "to_onnx_proto", "without_stack_traces",
           "SERVER_METADATA"]
