"""Read an ONNX file without running anything: protobuf only, sizes bounded before allocation, external data
refused unless it stays next to the model, cycles refused.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import networkx as nx
import numpy as np

from builder.escape import visible
from builder.interchange.errors import ModelImportError

MAX_FILE_BYTES = 1 << 30          # 1 GiB of protobuf (the app's upload limit is lower)
MAX_TENSOR_BYTES = 1 << 30        # one initializer
MAX_TOTAL_BYTES = 2 << 30         # all initializers together
MAX_ONNX_NODES = 200_000
MAX_DIM = 1 << 24                 # one declared input/output dimension
MAX_IO_ELEMENTS = 1 << 26         # one declared input/output (the import verifies with inputs of this shape)
STANDARD_DOMAINS = ("", "ai.onnx", "ai.onnx.ml")

_ITEMSIZE = {1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8, 16: 2}


def _tensor_bytes(t) -> int:
    n = 1
    for d in t.dims:
        if d < 0:
            raise ModelImportError(f"initializer `{visible(t.name, 60)}` has a negative dimension; received: "
                                   f"dims={list(t.dims)}. Fix: re-export the model")
        n *= int(d)
    return n * _ITEMSIZE.get(t.data_type, 8)


def read_onnx(source: str | os.PathLike | bytes, *, max_bytes: int = MAX_FILE_BYTES):
    """Parse an ONNX model. External data is loaded only from files inside the model's folder.

    Raises:
        ModelImportError: unreadable, truncated, too large, external data outside the folder, huge tensors.
    """
    import onnx  # lazy: heavy (onnx)
    from google.protobuf.message import DecodeError  # lazy: heavy (google)

    base: Path | None = None
    if isinstance(source, bytes | bytearray):
        data = bytes(source)
        name = "model"
    else:
        path = Path(source)
        name = visible(path.name, 80)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise ModelImportError(f"{path}: no such file") from None
        except OSError as e:
            raise ModelImportError(f"{path}: cannot read ({e.strerror})") from None
        if size > max_bytes:
            raise ModelImportError(f"{name}: the file is larger than the limit; received: {size:,} bytes. "
                                   f"Fix: import files up to {max_bytes:,} bytes")
        data = path.read_bytes()
        base = path.resolve().parent
    if len(data) > max_bytes:
        raise ModelImportError(f"{name}: the file is larger than the limit; received: {len(data):,} bytes")
    try:
        model = onnx.load_model_from_string(data)
    except (DecodeError, ValueError, RuntimeError) as e:
        what = ("bytes that do not decode as an ONNX model (protobuf DecodeError)" if isinstance(e, DecodeError)
                else f"bytes ({type(e).__name__})")
        raise ModelImportError(f"{name}: not a readable ONNX file (truncated or corrupt); received: {len(data):,} "
                               f"{what}. Fix: export the model again, or upload the whole file (a .onnx with its "
                               ".onnx.data file: both, or a zip of them)") from None
    g = model.graph
    if not g.node and not g.output:
        raise ModelImportError(f"{name}: not an ONNX model (no graph); received: {len(data):,} bytes. "
                               "Fix: choose a .onnx file written by an ONNX exporter")
    if len(g.node) > MAX_ONNX_NODES:
        raise ModelImportError(f"{name}: the graph has too many nodes; received: {len(g.node):,}. "
                               f"Fix: import models with at most {MAX_ONNX_NODES:,} nodes")
    _check_domains(model, name)
    _check_io_shapes(g, name)
    _check_tensors(model, base, name)
    _check_acyclic(g, name)
    return model


def _check_domains(model, name: str) -> None:
    """Only standard ONNX operators: a custom domain names code (a runtime plugin) LayerLab does not have."""
    nodes = list(model.graph.node) + [n for f in model.functions for n in f.node]
    bad = next((n for n in nodes if n.domain not in STANDARD_DOMAINS), None)
    if bad is not None:
        raise ModelImportError(f"{name}: node {visible(bad.name or bad.op_type, 60)} uses the custom operator "
                               f"domain {visible(bad.domain, 60)!s}; received: op {visible(bad.op_type, 60)}. "
                               "Fix: export with standard ONNX operators only (no custom ops or plugins)")


def _check_io_shapes(g, name: str) -> None:
    """Declared input/output sizes are bounded before anything is allocated from them."""
    for v in list(g.input) + list(g.output):
        dims = [d.dim_value for d in v.type.tensor_type.shape.dim if d.HasField("dim_value")]
        n = 1
        for d in dims:
            n *= max(int(d), 1)
        if any(d < 0 or d > MAX_DIM for d in dims) or n > MAX_IO_ELEMENTS:
            raise ModelImportError(f"{name}: `{visible(v.name, 60)}` declares a shape too large to import; "
                                   f"received: dims={dims[:8]}. Fix: export with dimensions up to {MAX_DIM:,} "
                                   f"and at most {MAX_IO_ELEMENTS:,} elements per input (a dynamic batch)")


def _check_tensors(model, base: Path | None, name: str) -> None:
    """Bound every initializer before any numpy array exists; resolve external data safely."""
    from onnx import TensorProto  # lazy: heavy (onnx)
    from onnx.external_data_helper import load_external_data_for_tensor  # lazy: heavy (onnx)

    total = 0
    tensors = list(model.graph.initializer) + [a.t for n in model.graph.node for a in n.attribute if a.type == 4]
    for t in tensors:
        nbytes = _tensor_bytes(t)
        if nbytes > MAX_TENSOR_BYTES:
            raise ModelImportError(f"initializer `{visible(t.name, 60)}` is too large; received: "
                                   f"dims={list(t.dims)} ({nbytes:,} bytes). Fix: import models whose tensors are "
                                   f"below {MAX_TENSOR_BYTES:,} bytes")
        total += nbytes
        if total > MAX_TOTAL_BYTES:
            raise ModelImportError(f"the initializers together exceed {MAX_TOTAL_BYTES:,} bytes. Fix: import a "
                                   "smaller model")
        if t.data_location == TensorProto.EXTERNAL:
            info = {e.key: e.value for e in t.external_data}
            loc = info.get("location", "")
            if base is None:
                raise ModelImportError(f"initializer `{visible(t.name, 60)}` keeps its data in an external file "
                                       f"({visible(loc, 80)!r}), which an upload cannot carry. Fix: save the "
                                       "model with all tensors inside (onnx.save(model, path, "
                                       "save_as_external_data=False))")
            try:
                target = (base / loc).resolve()
            except (ValueError, OSError):  # a NUL or an unresolvable link in the location
                target = Path("/")
            inside = not Path(loc).is_absolute() and ".." not in Path(loc).parts and target.is_relative_to(base)
            if inside and not target.is_file():  # the default torch export is two files; one came alone
                raise ModelImportError(f"initializer `{visible(t.name, 60)}` keeps its data in "
                                       f"{visible(loc, 80)!r}, which is missing; received: the model without it. "
                                       f"Fix: import both files together: choose {visible(loc, 80)} with the "
                                       "model (or a .zip of the two), or the folder holding both")
            if not inside or not target.is_file():
                raise ModelImportError(f"initializer `{visible(t.name, 60)}` points to external data outside the "
                                       f"model's folder; received: location={visible(loc, 80)!r}. Fix: keep external "
                                       "data files next to the model, or save all tensors inside it")
            try:
                length = int(info.get("length", target.stat().st_size))
                offset = int(info.get("offset", 0))
            except ValueError:
                length = offset = -1
            if offset < 0:
                raise ModelImportError(f"external data of `{visible(t.name, 60)}` has an unreadable offset or "
                                       "length; received: not a number. Fix: save the model again")
            if length > MAX_TENSOR_BYTES or length < nbytes:
                raise ModelImportError(f"external data of `{visible(t.name, 60)}` has the wrong size; received: "
                                       f"{length:,} bytes for dims {list(t.dims)}")
            try:
                load_external_data_for_tensor(t, str(base))
            except (ValueError, OSError) as e:
                raise ModelImportError(f"external data of `{visible(t.name, 60)}` cannot be read; received: "
                                       f"{type(e).__name__}. Fix: keep the data file next to the model") from None
            if len(t.raw_data) != nbytes:
                raise ModelImportError(f"external data of `{visible(t.name, 60)}` has the wrong size; received: "
                                       f"{len(t.raw_data):,} bytes for dims {list(t.dims)}")
        elif t.raw_data and len(t.raw_data) != nbytes:
            raise ModelImportError(f"initializer `{visible(t.name, 60)}` is truncated; received: "
                                   f"{len(t.raw_data):,} bytes for dims {list(t.dims)} ({nbytes:,} expected). "
                                   "Fix: export the model again")


def _check_acyclic(g, name: str) -> None:
    """Every node input must be a graph input, an initializer or produced by an earlier node (ONNX requires
    topological order); anything else is a cycle or a dangling reference."""

    known = {i.name for i in g.input} | {t.name for t in g.initializer} | {""}
    producer = {}
    for i, n in enumerate(g.node):
        for o in n.output:
            if o:
                producer[o] = i
    dg = nx.DiGraph()
    dg.add_nodes_from(range(len(g.node)))
    missing = []
    for i, n in enumerate(g.node):
        for v in n.input:
            if v in producer:
                dg.add_edge(producer[v], i)
            elif v not in known:
                missing.append((n.name or n.op_type, v))
    try:
        cycle = nx.find_cycle(dg)
    except nx.NetworkXNoCycle:
        cycle = None
    if cycle:
        names = [g.node[a].name or g.node[a].op_type for a, _ in cycle]
        raise ModelImportError(f"{name}: the graph contains a cycle; received: {' → '.join(names[:6])}. "
                               "Fix: export a feed-forward graph (loops must be unrolled)")
    if missing:
        node, v = missing[0]
        raise ModelImportError(f"{name}: node {node} reads `{v}`, which nothing produces; received: "
                               f"{len(missing)} dangling input(s). Fix: export the model again")


def to_array(t) -> np.ndarray:
    """A numpy copy of a (bounded, already checked) TensorProto."""
    from onnx import numpy_helper  # lazy: heavy (onnx)

    return np.array(numpy_helper.to_array(t))


def node_attributes(node) -> dict:
    """A node's attributes as Python values (``helper.get_attribute_value``)."""
    from onnx import helper  # lazy: heavy (onnx)

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def node_scopes(node) -> tuple[list[str] | None, list[str] | None]:
    """The module scopes and classes torch's dynamo exporter records on a node (None when absent or odd)."""
    md = {p.key: p.value for p in node.metadata_props}
    return _str_list(md.get("pkg.torch.onnx.name_scopes")), _str_list(md.get("pkg.torch.onnx.class_hierarchy"))


#: what torch's exporter records on an initializer it lifted from the module (torch.export's InputSpec.kind)
_KIND = "pkg.torch.export.graph_signature.InputSpec.kind"
_FLOAT_TYPES = (1, 10, 11, 16)  # ONNX float, float16, double, bfloat16


def parameter_initializers(g) -> frozenset[str]:
    """The float initializers of graph ``g`` that are the module's parameters: all but those the exporter recorded
    as no parameter, the module's buffers (a BatchNorm's statistics, a causal mask, a position table registered
    with ``register_buffer``) and its code's tensor constants (``torch.tensor(mean)`` in ``forward``). torch's
    exporter (``dynamo=True``, a ``.pt2``) writes the kind on each initializer's value; in a file that says
    nothing (the classic exporter, other tools) every float initializer counts as a parameter."""
    kinds = {v.name: p.value for v in [*g.value_info, *g.input] for p in v.metadata_props if p.key == _KIND}
    return frozenset(t.name for t in g.initializer if t.data_type in _FLOAT_TYPES
                     and kinds.get(t.name) not in ("BUFFER", "CONSTANT_TENSOR"))


def generated_name(name: str, op: bool = False) -> str:
    """A name an exporter made up, made readable: the dynamo exporter's ``node_`` prefix and the ``_<n>``
    counters dropped, lower case (``node_Reshape_7`` -> ``reshape``; ``op``: an operator's name in a scope,
    ``max_pool2d_1`` -> ``max_pool2d``); a name of the model's own is kept.

    >>> generated_name("node_Reshape_7"), generated_name("relu_1", op=True), generated_name("fc_1")
    ('reshape', 'relu', 'fc_1')
    """
    if name.startswith("node_") or op:
        name = re.sub(r"(_\d+)+$", "", name.removeprefix("node_")).lower()
    return name


def readable_name(n) -> str:
    """The base of a node's id, from the module that made it: a torch layer by its module path
    (``enc.fc1``), a functional call by its operator inside its module (``block.relu``, at the top ``relu``),
    a classic export's ``/enc/fc1/Gemm`` as ``enc.fc1``; else the node's name without the exporter's
    ``node_`` prefix and counter (``node_Reshape_7`` -> ``reshape``). The importer's ``new_id`` makes it unique."""
    scopes, classes = node_scopes(n)
    if scopes and classes and len(scopes) == len(classes) and len(scopes) >= 2:
        module, op = scopes[-2], generated_name(scopes[-1], op=True)
        if module and classes[-2].startswith("torch.nn."):
            return module
        if op:
            return f"{module}.{op}" if module else op
    parts = (n.name or "").split("/")
    if len(parts) >= 3 and not parts[0] and all(parts[1:-1]):  # the classic exporter's "/enc/fc1/Gemm"
        return ".".join(parts[1:-1])
    return generated_name(n.name or "") or (n.output[0] if n.output else n.op_type)


_QUOTED = re.compile(r"""\s*('(?:[^'\\\n]|\\.){0,1000}'|"(?:[^"\\\n]|\\.){0,1000}")\s*([,\]])""")
_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|.)", re.S)
_NAMED_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0"}


def _str_list(text: str | None) -> list[str] | None:
    """A flat list of quoted strings as torch writes it (``"['', 'conv1']"``), read by a regular expression:
    file metadata never reaches a Python parser (``ast.literal_eval`` compiles its input). Anything else, or
    more than 64 KiB, is ignored (None)."""
    if not text or len(text) > 65536 or not text.startswith("["):
        return None
    if text[1:].strip() == "]":
        return []
    out, pos = [], 1
    while (m := _QUOTED.match(text, pos)) is not None:
        body = m.group(1)[1:-1]
        out.append(_ESCAPE.sub(lambda e: chr(int(e[1][1:], 16)) if len(e[1]) > 1 else _NAMED_ESCAPES.get(e[1], e[1]),
                               body))
        pos = m.end()
        if m.group(2) == "]":
            return out if not text[pos:].strip() else None
    return None


__all__ = ["parameter_initializers", "generated_name", "readable_name", "node_attributes", "node_scopes", "read_onnx", "to_array", "MAX_FILE_BYTES"]
