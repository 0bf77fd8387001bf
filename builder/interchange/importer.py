"""``import_model(source) -> ImportResult``: ONNX, torch.export (.pt2) and Python-defined models onto the canvas.

Sources:

* ``model.onnx``: read with the ``onnx`` package (protobuf; nothing runs). Compared with onnxruntime.
* ``model.pt2``: a ``torch.export`` archive, read as data by :mod:`builder.interchange.pt2_read` (never
  ``torch.export.load``: no pickle, no evaluated size expressions, call targets from an allow-list); the
  program is then converted to ONNX in memory and mapped like an ONNX file. Compared with the program.
* ``file.py:ClassName`` or ``file.py:ClassName(args)`` (CLI and Python only: this runs the file's code): the
  module is instantiated, exported with ``torch.export`` and mapped the same way. Compared with the module.

Example::

    # not a doctest (needs files or training): run by tests/interchange/test_onnx_import.py::test_template_round_trip
    result = import_model("resnet.onnx")
    result.report["max_abs_diff"] < 1e-5
    # -> True
    save_import(result, "resnet.json")
"""

from __future__ import annotations

import ast
import contextlib
import copy
import importlib.util
import inspect
import io
import json
import os
import re
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils import _pytree

import builder.data.limits as limits
from builder.data.disk import atomic_file, write_atomic
from builder.data.files import ZIP_ERRORS, check_zip_directory, error_name
from builder.errors import DatasetError, GraphError, LayerLabError
from builder.escape import hide_paths, visible
from builder.graph.compile import compile_graph, example_inputs, module_names
from builder.graph.layout import row_layout
from builder.graph.memory import training_memory
from builder.graph.project import Project, as_graph
from builder.graph.report import ShapeReport, human_bytes
from builder.graph.shapes import infer_shapes
from builder.graph.spec import SHARES
from builder.interchange.errors import ModelImportError, converter_refusal
from builder.interchange.onnx_export import (
    ExportError,
    keep_torchlib,
    ort_session,
    output_difference,
    quiet_export,
    to_onnx_proto,
)
from builder.interchange.onnx_import import OnnxImporter
from builder.interchange.onnx_read import read_onnx
from builder.interchange.pt2_read import check_members, load_program, open_zip
from builder.training.run_status import RunStatus

IMPORT_ATOL = 1e-5  # × the largest output magnitude when that is above 1 (float32 rounding is relative)
ROUNDING_SLACK = 4.0  # × the imported model's own float32 error: what two float32 runtimes may differ by beyond it
#: What checking an import (``verify``) may hold at once: a file whose check would need more is refused before
#: anything runs (a 2 KB file can describe a layer that outputs billions of values per sample).
MAX_VERIFY_BYTES = 2 * 2**30
#: What the check holds whatever the model (onnxruntime's session, the compiled module), measured: a model
#: whose outputs are 8 to 40 million values grew the importing process by this plus 40.7 bytes per output value.
VERIFY_RUNTIME = 96 * 2**20


@dataclass
class ImportResult:
    """An imported model: the project, weights keyed like the compiled module, and a report."""

    project: Project
    weights: dict[str, torch.Tensor]
    report: dict = field(default_factory=dict)


def _kind(source: Any) -> str:
    if isinstance(source, bytes | bytearray):
        return "pt2" if bytes(source[:4]) == b"PK\x03\x04" else "onnx"
    s = str(source)
    if re.match(r"^.+\.py:[A-Za-z_]\w*(\(.*\))?\Z", s, flags=re.S):
        return "python"
    suffix = Path(s).suffix.lower()
    if suffix == ".onnx":
        return "onnx"
    if suffix in (".pt2", ".pt", ".pth", ".zip"):
        return "pt2"
    raise ModelImportError(f"unknown model source; received: {s[:80]!r}. Fix: give a .onnx or .pt2 file, or "
                           "file.py:ClassName")


MAX_BUNDLE_FILES = 16  # a model and its external-data files (torch writes one: ``m.onnx.data``)
MAX_BUNDLE_BYTES = 1 << 30
_BUNDLE_NAME = re.compile(r"[A-Za-z0-9_+\-(][A-Za-z0-9._+\-() ,]{0,199}")


def write_bundle(files: Mapping[str, bytes], folder: str | os.PathLike) -> Path:
    """Write an uploaded set (one ``.onnx`` with its external-data files, or one ``.pt2``) into ``folder`` (empty
    and private) and return the model's path. Names must be plain file names (no folders, no ``..``), so the
    model's external data can resolve only to files of the set (:func:`~builder.interchange.onnx_read.read_onnx`
    refuses locations outside the model's folder).

    Raises:
        ModelImportError: no model or several, a name that is no plain file name, too many or too large files.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     write_bundle({"m.onnx": b"x", "m.onnx.data": b"y"}, tmp).name
    'm.onnx'
    >>> write_bundle({"m.onnx": b"x", "../etc/passwd": b""}, "/nonexistent")
    Traceback (most recent call last):
    ...
    builder.interchange.errors.ModelImportError: an uploaded file name must be a plain file name; received: '../etc/passwd'. Fix: upload the files themselves (m.onnx and m.onnx.data), not paths
    """
    if len(files) > MAX_BUNDLE_FILES or sum(len(b) for b in files.values()) > MAX_BUNDLE_BYTES:
        raise ModelImportError(f"an upload holds at most {MAX_BUNDLE_FILES} files and {MAX_BUNDLE_BYTES:,} bytes; "
                               f"received: {len(files)} files, {sum(len(b) for b in files.values()):,} bytes. Fix: "
                               "upload the model and its external-data files only")
    model = _bundle_model(list(files))
    folder = Path(folder)
    for n, data in files.items():
        (folder / n).write_bytes(data)
    return folder / model


def _bundle_model(names: list) -> str:
    """The model's name among an uploaded set's file names, each a plain file name; one ``.onnx`` (with its
    external-data files) or one ``.pt2`` alone. Raises ModelImportError."""
    bad = [n for n in names if not isinstance(n, str) or not _BUNDLE_NAME.fullmatch(n)]
    if bad:
        raise ModelImportError(f"an uploaded file name must be a plain file name; received: "
                               f"{visible(str(bad[0]), 80)!r}. Fix: upload the files themselves (m.onnx and "
                               "m.onnx.data), not paths")
    models = [n for n in names if n.lower().endswith((".onnx", ".pt2"))]
    if len(models) != 1 or (models[0].lower().endswith(".pt2") and len(names) > 1):
        raise ModelImportError(f"an upload holds one model (.onnx with its external-data files, or one .pt2); "
                               f"received: {len(models)} model files among {len(names)}. Fix: upload one model at a "
                               "time")
    return models[0]


#: entries a zipped model's directory may list (its files, the folders they sit in), counted before it is parsed
MAX_BUNDLE_ENTRIES = 4 * MAX_BUNDLE_FILES


def _zip_directory_problem(data: bytes) -> str | None:
    """Why a zip's directory is refused before ``ZipFile`` parses it (one object per entry: a 200 MB upload can
    list millions), or None."""
    try:
        check_zip_directory(data, "the zipped model", MAX_BUNDLE_ENTRIES)
    except DatasetError as e:
        return str(e)
    return None


_ZIP_FIX = "Fix: zip the .onnx and its .data file again (no password)"


def _bundle_members(zf: zipfile.ZipFile, max_bytes: int) -> list[tuple[str, zipfile.ZipInfo]]:
    """``(plain name, member)`` of each file of a zipped model, every rule checked on the directory before anything
    is unpacked: at most MAX_BUNDLE_FILES files, no two of one name, none encrypted, each at most
    ``limits.MAX_ZIP_RATIO`` times its compressed size (over 1 MiB: a model's weights barely compress; a 203 KB zip
    of 200 MB of zeros grew the server by 397 MB as it was unpacked), ``max_bytes`` declared in all."""
    infos = [i for i in zf.infolist() if not i.is_dir()]
    if len(infos) > MAX_BUNDLE_FILES:
        raise ModelImportError(f"a zipped model holds at most {MAX_BUNDLE_FILES} files; received: "
                               f"{len(infos)}. Fix: zip the model and its external-data files only")
    out: list[tuple[str, zipfile.ZipInfo]] = []
    total = 0
    for info in infos:
        name = info.filename.replace("\\", "/").rsplit("/", 1)[-1]
        if any(name == n for n, _ in out):
            raise ModelImportError(f"a zipped model holds two files named {visible(name, 80)!r}; received: "
                                   f"{visible(info.filename, 80)!r}. Fix: zip one model and its data files")
        if info.flag_bits & 0x1:
            raise ModelImportError(f"a zipped model's file is encrypted; received: a password-protected "
                                   f"member. {_ZIP_FIX}")
        if info.file_size > max(limits.MAX_ZIP_RATIO * info.compress_size, 2**20):
            raise ModelImportError(f"a zipped model's file unpacks to at most {limits.MAX_ZIP_RATIO} times its "
                                   f"compressed size; received: {info.file_size:,} bytes from {info.compress_size:,} "
                                   f"(a zip bomb?). {_ZIP_FIX}")
        total += info.file_size
        if total > max_bytes:
            raise ModelImportError(f"the zipped model unpacks to more than {max_bytes:,} bytes. Fix: import "
                                   "a smaller model")
        out.append((name, info))
    return out


def _zip_directory_checked(data: bytes) -> None:
    if (problem := _zip_directory_problem(data)) is not None:
        raise ModelImportError(f"{problem.removesuffix('. Fix: upload a smaller subset')}. Fix: zip the model and its "
                               "external-data files only")


def zip_members(data: bytes, max_bytes: int = MAX_BUNDLE_BYTES) -> dict[str, bytes]:
    """The files of a zipped upload by their plain names (folders inside the zip dropped), read with bounds
    that the zip's own size fields cannot lift; its directory is bounded before it is parsed
    (:func:`_bundle_members`). Held in memory: the server unpacks an upload to disk (:func:`unzip_bundle`). Raises
    ModelImportError for a bad, damaged or encrypted zip or one over the limits (a line quoting nothing of it)."""
    _zip_directory_checked(data)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            out: dict[str, bytes] = {}
            total = 0
            for name, info in _bundle_members(zf, max_bytes):
                with zf.open(info) as f:
                    out[name] = f.read(max_bytes - total + 1)
                total += len(out[name])
                if total > max_bytes:
                    raise ModelImportError(f"the zipped model unpacks to more than {max_bytes:,} bytes. Fix: import "
                                           "a smaller model")
            return out
    except ZIP_ERRORS as e:
        raise ModelImportError(f"not a readable zip file (damaged or encrypted); received: {error_name(e)}. "
                               f"{_ZIP_FIX}") from None


_UNZIP_BLOCK = 1 << 20


def unzip_bundle(data: bytes, folder: str | os.PathLike, max_bytes: int = MAX_BUNDLE_BYTES, *,
                 model_stem: str | None = None) -> Path:
    """Unpack a zipped upload (one ``.onnx`` with its external-data files, or one ``.pt2``) into ``folder`` (empty
    and private) a MiB at a time, under :func:`_bundle_members`'s rules and :func:`write_bundle`'s (plain names, one
    model), and return the model's path; ``model_stem``: the name the model file is given, before its suffix (its
    external data keep theirs). The server holds a block of it at a time, not every file (:func:`zip_members`).
    Raises ModelImportError."""
    _zip_directory_checked(data)
    folder = Path(folder)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            members = _bundle_members(zf, max_bytes)
            names = [n for n, _ in members]
            model = _bundle_model(names)
            model_file = f"{model_stem}{Path(model).suffix.lower()}" if model_stem else model
            total = 0
            for name, info in members:
                target = folder / (model_file if name == model else name)
                with zf.open(info) as f, open(target, "xb") as out:
                    while block := f.read(_UNZIP_BLOCK):
                        total += len(block)
                        if total > max_bytes:
                            raise ModelImportError(f"the zipped model unpacks to more than {max_bytes:,} bytes. "
                                                   "Fix: import a smaller model")
                        out.write(block)
            return folder / model_file
    except ZIP_ERRORS as e:
        raise ModelImportError(f"not a readable zip file (damaged or encrypted); received: {error_name(e)}. "
                               f"{_ZIP_FIX}") from None


def _is_onnx_zip(source) -> bool:
    """A zip whose files include an ``.onnx`` (a .pt2 is a zip too, without one); a zip whose directory lists
    too many entries counts as one, so :func:`zip_members` refuses it before it is parsed."""
    if isinstance(source, bytes | bytearray):
        data = bytes(source[:4])
        if data != b"PK\x03\x04":
            return False
        if _zip_directory_problem(bytes(source)) is not None:
            return True
        try:
            with zipfile.ZipFile(io.BytesIO(bytes(source))) as zf:
                return any(n.lower().endswith(".onnx") for n in zf.namelist())
        except ZIP_ERRORS:
            return False
    return False


def _model_in_folder(folder: Path) -> Path:
    """The one ``.onnx`` or ``.pt2`` of a folder (the CLI's ``layerlab import FOLDER``)."""
    models = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in (".onnx", ".pt2"))
    if len(models) != 1:
        raise ModelImportError(f"{folder}: a model folder holds one .onnx (with its external-data files) or one "
                               f".pt2; received: {len(models)} model files. Fix: name the model file itself")
    return models[0]


_CHECK_FILE = "check the file (onnx.checker.check_model, and whether onnxruntime runs it), then export it again"


def import_model(source: str | os.PathLike | bytes | Mapping[str, bytes], *, name: str | None = None,
                 verify: bool = True, seed: int = 0) -> ImportResult:
    """Import a model as a LayerLab project with its weights.

    Args:
        source: a ``.onnx`` or ``.pt2`` path (or the file's bytes), a folder holding one model (with its
            external-data files), an uploaded set ``{file name: bytes}`` or a zip of one (``.onnx`` plus
            ``.onnx.data``; external data resolves only to files of the set), or ``file.py:ClassName[(args)]``. A
            Hugging Face model folder imports through :func:`builder.interchange.hf_import.import_hf_folder`.
        name: project name (default: the file name).
        verify: run the original (onnxruntime / the torch program / the module) and the imported model on
            random inputs and record ``max_abs_diff`` in the report; raise if it exceeds ``tolerance`` (1e-5, times
            the largest output magnitude when that is above 1).

    Returns:
        :class:`ImportResult` with ``project``, ``weights`` (state dict of ``compile_graph(project.graph)``)
        and ``report`` (source, mapped operators, notes, parameters, max_abs_diff, ``shared``: tied node ->
        the node whose weights it uses, ``batchnorm_folded``: layers an exporter folded a BatchNorm into).

    Raises:
        UnsupportedOpsError: operators without a LayerLab layer (all listed, per operator, with a fix).
        ModelImportError: unreadable, hostile or too large files, or outputs that do not match.
    """
    if isinstance(source, Mapping) or _is_onnx_zip(source):
        files = dict(source) if isinstance(source, Mapping) else zip_members(bytes(source))
        with tempfile.TemporaryDirectory(prefix="layerlab-import-") as tmp:
            path = write_bundle(files, tmp)
            res = import_model(path, name=name or Path(path).stem, verify=verify, seed=seed)
        res.report["source"] = path.name
        return res
    if not isinstance(source, bytes | bytearray) and ":" not in str(source) and Path(source).is_dir():
        source = _model_in_folder(Path(source))  # a Hugging Face model folder: builder.interchange.hf_import
    elif not isinstance(source, bytes | bytearray) and str(source).lower().endswith(".zip") and \
            Path(source).is_file() and Path(source).stat().st_size <= MAX_BUNDLE_BYTES:
        data = Path(source).read_bytes()
        if _is_onnx_zip(data):
            return import_model(data, name=name or Path(source).stem, verify=verify, seed=seed)
    kind = _kind(source)
    label = name or ("model" if isinstance(source, bytes | bytearray) else Path(str(source).split(":")[0]).stem)
    reference, batch, bounds = None, None, ""
    if kind == "onnx":
        proto = read_onnx(source)
    elif kind == "pt2":
        ep = load_pt2(source)
        proto = _ep_to_onnx(ep)
        reference = _flat_call(ep)
        batch, bounds = _pt2_batch(ep)
    else:
        module, example = load_python(str(source))
        proto = module_to_onnx(module, example)
        reference = module
    try:
        result = build_from_onnx(proto, label, kind, str(source) if not isinstance(source, bytes | bytearray)
                                 else "bytes")
    except (ValueError, IndexError, KeyError, TypeError, RuntimeError, ArithmeticError) as e:  # not LayerLab's
        raise ModelImportError(f"the file holds a model whose parts do not fit together (shapes or attributes the "
                               f"import did not expect); received: {type(e).__name__}: {str(e).splitlines()[0][:200]}."
                               f" Fix: {_CHECK_FILE}") from None
    if bounds:
        result.report["notes"].append(f"the file was exported for batches of {bounds} rows (torch checked its code "
                                      "there only); the canvas takes any batch, so check other sizes yourself")
    if verify:
        diff, scale, raw = _verify(result, proto, reference, batch)
        tol = IMPORT_ATOL * scale
        result.report.update(max_abs_diff=raw, tolerance=tol)
        result.report["verified_against"] = "onnxruntime" if reference is None else "the original PyTorch module"
        if not diff <= tol:
            if low := low_precision(proto):  # a known cause: values rounded to 16 bits, computed in float32 here
                raise ModelImportError(
                    f"an imported model computes in float32, the original partly in {low[1]} (rounded values "
                    f"differ by up to {diff:.3g}, over the tolerance {tol:.3g}); received: {low[0]}. Fix: export "
                    "the model in float32 (remove the .half() or .to(torch.float16) cast, or call model.float() "
                    "before exporting); nothing was written")
            raise ModelImportError(f"the imported model differs from the original by up to {diff:.3g}; received: "
                                   f"tolerance {tol:.3g}. Fix: report this model (nothing was written)")
    return result


_LOW = {10: "float16", 16: "bfloat16"}  # ONNX TensorProto data types of 16-bit floats


def low_precision(proto) -> tuple[str, str] | None:
    """(where, dtype) of the first 16-bit float in an ONNX model (a Cast to it, or a weight stored in it), None
    when it computes in 32 bits or more: rounding there is a cause an import's output check names."""
    for n in proto.graph.node:
        if n.op_type == "Cast":
            to = next((a.i for a in n.attribute if a.name == "to"), None)
            if to in _LOW:
                return f"a Cast to {_LOW[to]} (node {visible(n.name or n.output[0], 60)})", _LOW[to]
    for t in proto.graph.initializer:
        if t.data_type in _LOW:
            return f"a weight stored in {_LOW[t.data_type]} ({visible(t.name, 60)})", _LOW[t.data_type]
    return None


def build_from_onnx(proto, name: str, kind: str = "onnx", source: str = "") -> ImportResult:
    """Map an ONNX ModelProto to a project and weights (no verification)."""
    built = OnnxImporter(proto, name).run()
    graph = as_graph({"nodes": built.nodes, "edges": built.edges})
    graph = row_layout(graph, per_row=None)  # layered, wrapped into rows that fit a screen
    report = infer_shapes(graph)
    if not report.ok:
        errors = [p for p in report.problems if p.severity == "error"]
        raise ModelImportError("the imported graph does not validate: " + str(GraphError(errors))
                               + _fixed_batch_hint(proto))
    torch.manual_seed(0)
    model = compile_graph(graph, report=report)
    weights = _assign_weights(model, built.weights)
    project = Project(name=name[:200], description=f"Imported from {Path(source).name or kind} ({kind}).",
                      graph=graph)
    rep = {"source": source, "format": kind, "nodes": len(graph.nodes), "edges": len(graph.edges),
           "onnx_nodes": len(proto.graph.node), "total_params": int(report.total_params),
           "mapped": dict(sorted(built.mapped.items())), "notes": list(built.notes),
           "shared": {n.id: n.params[SHARES] for n in graph.nodes if SHARES in n.params},
           "batchnorm_folded": sorted(built.folded_batchnorm),
           "layer_types": sorted({n.type for n in graph.nodes})}
    return ImportResult(project, weights, rep)


def _fixed_batch_hint(proto) -> str:
    """What to export differently when a file fixes the batch size (sizes computed from it became constants)."""
    dims = [d for i in proto.graph.input[:1] for d in i.type.tensor_type.shape.dim[:1]]
    if not dims or not dims[0].HasField("dim_value"):
        return ""
    return (f". The file fixes the batch at {dims[0].dim_value}, so sizes computed from it are constants. Fix: export "
            "with a dynamic batch: torch.onnx.export(..., dynamo=True, dynamic_shapes=({0: "
            "torch.export.Dim('batch')},)) or, with dynamo=False, dynamic_axes={'x': {0: 'batch'}}")


def _assign_weights(model: torch.nn.Module, weights: dict[str, dict[str, np.ndarray]]) -> dict[str, torch.Tensor]:
    """Place imported tensors into the compiled model's state dict; every parameter must be covered."""
    names = model.layerlab_names
    sd = model.state_dict()
    out = dict(sd)
    covered = set()
    problems = []
    for nid, tensors in weights.items():
        attr = names.get(nid)
        if attr is None and "" in tensors:  # a buffer-only node (sinusoidal positions)
            attr = nid
        for suffix, arr in tensors.items():
            key = f"{attr}.{suffix}" if suffix else str(attr)
            if key not in sd:
                key = next((k for k in sd if k == attr or k.endswith("." + suffix) and k.startswith(f"{attr}.")),
                           key)
            if key not in sd:
                problems.append(f"{nid}: no tensor {suffix or '(buffer)'} in the compiled layer")
                continue
            t = torch.from_numpy(np.array(arr, copy=True)).to(sd[key].dtype)
            if tuple(t.shape) != tuple(sd[key].shape):
                problems.append(f"{nid}: {suffix} has shape {tuple(t.shape)}, the layer wants {tuple(sd[key].shape)}")
                continue
            out[key] = t
            covered.add(key)
    params = {k for k, _ in model.named_parameters()}
    missing = sorted(params - covered)
    if missing:
        problems.append("parameters without imported values: " + ", ".join(missing[:8]))
    if problems:
        raise ModelImportError("the weights do not fit the imported layers; received: " + "; ".join(problems[:6]))
    with torch.no_grad():  # in place: load_state_dict scans the whole dict per child (quadratic in layers)
        for key in covered:
            sd[key].copy_(out[key])
    return {k: v.detach().clone().contiguous() for k, v in sd.items()}


def _random_inputs(model, batch: int = 3, seed: int = 1) -> list[torch.Tensor]:
    return example_inputs(model, batch, seed)


def output_scale(outputs: list) -> float:
    """The tolerance's scale: the largest finite output magnitude, at least 1.

    >>> output_scale([np.array([0.5, -3.0, np.inf])])
    3.0
    """
    arrays = [np.asarray(a, dtype=np.float64) for a in outputs]
    finite = [np.abs(a[np.isfinite(a)]).max() for a in arrays if np.isfinite(a).any()]
    return float(max([1.0, *finite]))


def verify_memory(report: ShapeReport, batch: int) -> tuple[int, str]:
    """(bytes, node id) of checking an imported model on ``batch`` samples at its peak: the weights twice (the
    imported model and the original's runtime), the largest inputs-plus-outputs of one node twice (each model runs
    its layers one at a time, without gradients), the outputs compared (float32 from each model, float64 copies
    and their difference) and :data:`VERIFY_RUNTIME`; the node is the one whose inputs and outputs are
    largest (tests/interchange/test_onnx_fold_limits.py measures it against a process's growth)."""
    est = training_memory(report, batch)
    outs = sum(t.numel for n in report.output_nodes
               for t in (list(report.nodes[n].outputs.values()) or report.nodes[n].inputs))
    worst = max(report.nodes.values(),
                key=lambda i: sum(t.numel for t in i.outputs.values()) + sum(t.numel for t in i.inputs))
    return (VERIFY_RUNTIME + 2 * est.weights + 2 * batch * est.transient_per_sample + batch * outs * (4 + 4 + 8 * 3),
            worst.id)


def check_verify_memory(graph, batch: int) -> None:
    """Refuse, before anything runs, an import whose check would hold more than :data:`MAX_VERIFY_BYTES`
    (:func:`verify_memory`, estimated on meta tensors). Raises ModelImportError naming the node."""
    report = infer_shapes(graph)
    need, node = verify_memory(report, batch)
    if need > MAX_VERIFY_BYTES:
        shapes = ", ".join(f"(B, {', '.join(map(str, t.shape))})" for t in report.nodes[node].outputs.values())
        raise ModelImportError(
            f"checking the imported model against the original runs both on {batch} random sample(s) and would "
            f"hold about {human_bytes(need)}, above the {human_bytes(MAX_VERIFY_BYTES)} an import may use; "
            f"received: node {visible(node, 80)} with outputs {shapes or 'of its inputs size'}. Fix: export the model "
            "with smaller inputs or layers (in Python, import_model(..., verify=False) skips the check); nothing "
            "was written")


def _verify(result: ImportResult, proto, reference, batch: int | None = None) -> tuple[float, float, float]:
    """(max |imported - original| over random inputs of ``batch`` rows (else the file's, else 3) beyond what float32
    rounding explains (:func:`_rounding`, asked only when the plain difference is over the tolerance), the
    outputs' scale, the plain difference)."""
    model = compile_graph(result.project.graph)
    model.load_state_dict(result.weights)
    model.eval()
    dims = [d for i in proto.graph.input[:1] for d in i.type.tensor_type.shape.dim[:1]]
    if batch is None:
        batch = dims[0].dim_value if dims and dims[0].HasField("dim_value") and dims[0].dim_value > 0 else 3
    check_verify_memory(result.project.graph, batch)
    xs = _random_inputs(model, batch)
    with torch.no_grad():
        got = model(*xs)
    got = list(got) if isinstance(got, tuple) else [got]
    if reference is None:
        try:
            sess = ort_session(proto.SerializeToString())
        except Exception as e:
            raise ModelImportError(f"onnxruntime cannot run the original model, so the file is not a valid model "
                                   f"(the import compares against it); received: {str(e).splitlines()[0][:200]}. "
                                   f"Fix: {_CHECK_FILE} (from Python, import_model(..., verify=False) skips the "
                                   "comparison)") from None
        feeds = {}
        for i, x in zip(sess.get_inputs(), xs):
            feeds[i.name] = x.numpy().astype(np.int64 if "int64" in i.type else
                                             np.int32 if "int32" in i.type else np.float32)
        try:
            ran = sess.run(None, feeds)
        except Exception as e:  # onnxruntime's own error, as one line: the original fails on random inputs
            raise ModelImportError(f"onnxruntime cannot run the original model on random inputs to compare; "
                                   f"received: {visible(str(e).splitlines()[0], 200)}. Fix: pass verify=False to "
                                   "skip the check") from None
        want = [torch.from_numpy(np.asarray(w)) for w in ran]
    else:
        with torch.no_grad():
            w = reference(*xs)
        want = list(w) if isinstance(w, tuple | list) else [w]
    if len(want) != len(got):
        raise ModelImportError(f"the imported model has {len(got)} output(s), the original {len(want)}")

    want, got = [w.detach().numpy() for w in want], [g.detach().numpy() for g in got]
    diff, scale = output_difference(want, got), output_scale(want)
    if diff > IMPORT_ATOL * scale and verify_memory(infer_shapes(result.project.graph), batch)[0] * 3 <= \
            MAX_VERIFY_BYTES:  # room for a float64 copy: what of the difference is the model's own rounding?
        beyond = output_difference(want, got, _rounding(model, xs, got))
        if beyond < diff:
            result.report["notes"].append(
                f"the outputs differ by up to {diff:.3g}: the model amplifies float32 rounding there (it is "
                f"ill-conditioned), and beyond that rounding they differ by {beyond:.3g}")
            result.report["beyond_rounding"] = beyond
        return beyond, scale, diff
    return diff, scale, diff


def _rounding(model: torch.nn.Module, xs: list[torch.Tensor], got: list[np.ndarray]) -> list[np.ndarray] | None:
    """Per output, what float32 rounding explains of a difference: ``ROUNDING_SLACK`` times the larger of how far
    the imported model's float32 outputs lie from its float64 ones and how far those move when every weight is
    perturbed by a few float32 roundings (the conditioning, whichever way a runtime happens to sum). An
    ill-conditioned model amplifies rounding (a Reciprocal after a Linear whose sums cancel near 0: two correct
    float32 runtimes differed by 0.18 where the tolerance was 0.021), while a wrong mapping differs far beyond it.
    None when the model does not run in float64."""
    xs64 = [x.double() if x.is_floating_point() else x for x in xs]
    gen = torch.Generator().manual_seed(0)
    try:
        with torch.no_grad():
            m64 = copy.deepcopy(model).double()
            exact = m64(*xs64)
            for p in m64.parameters():  # 16 float32 roundings of each weight, of random sign
                p.mul_(1 + 16 * 2.0**-24 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
            moved = m64(*xs64)
    except (RuntimeError, TypeError, ValueError):
        return None
    exact, moved = ([t] if isinstance(t, torch.Tensor) else list(t) for t in (exact, moved))
    return [ROUNDING_SLACK * np.maximum(np.abs(g.astype(np.float64) - e.detach().numpy()),
                                         np.abs(v.detach().numpy() - e.detach().numpy()))
            for g, e, v in zip(got, exact, moved)]


# ----------------------------------------------------------------------------------------- torch sources


def check_pt2_archive(data_or_path: str | os.PathLike | bytes) -> None:
    """Refuse a .pt2 whose zip is not a plain torch.export archive (not a zip, e.g. a raw pickle; pickled
    members, native libraries, hostile member names, a zip bomb), from its central directory only."""
    with open_zip(data_or_path) as zf:
        check_members(zf)


def load_pt2(source: str | os.PathLike | bytes):
    """Load the ``model`` program of a .pt2 as data (:mod:`builder.interchange.pt2_read`): no pickle, no
    ``torch.export.load``, size expressions parsed by a safe grammar, call targets from an allow-list."""
    return load_program(source)


#: the largest batch the import's check will run a program at (a file may demand more; it is refused then)
MAX_CHECK_BATCH = 64


def _pt2_batch(ep) -> tuple[int | None, str]:
    """The batch the import's check runs a program at (3 where the program's range for its batch allows it,
    else the nearest size it allows; None for a fixed batch: the file's own size), and the range in words when
    it bounds the batch beyond torch's usual ``2..`` (``"4 to 8"``, ``"5 or more"``), else ``""``."""
    phs = [n for n in ep.graph.nodes if n.op == "placeholder" and n.name in ep.graph_signature.user_inputs]
    val = phs[0].meta.get("val") if phs else None
    if not isinstance(val, torch.Tensor) or val.dim() == 0 or isinstance(val.shape[0], int):
        return None, ""
    rng = ep.range_constraints.get(val.shape[0].node.expr)
    lo = int(rng.lower) if rng is not None and getattr(rng.lower, "is_Integer", False) else 0
    hi = int(rng.upper) if rng is not None and getattr(rng.upper, "is_Integer", False) else None  # int_oo
    batch = max(lo, 3 if hi is None else min(3, hi))
    if batch > MAX_CHECK_BATCH:
        raise ModelImportError(f"the program only accepts batches of {lo} or more rows, more than the import's "
                               f"check runs; received: {visible(str(rng), 80)}. Fix: export with a batch Dim whose "
                               f"min is at most {MAX_CHECK_BATCH}")
    return batch, (f"{lo} to {hi}" if hi is not None else f"{lo} or more" if lo > 2 else "")


def _flat_call(ep):
    """The program as a function of its flat inputs (the imported graph's Inputs, in order), whatever its
    signature's nesting and keywords; no generated guard code to exec."""
    module, spec = ep.module(check_guards=False), ep.call_spec.in_spec

    def call(*xs):
        args, kwargs = _pytree.tree_unflatten(list(xs), spec)
        return module(*args, **kwargs)

    return call


def _ep_to_onnx(ep):
    """The exported program as ONNX (dynamo exporter: module scopes recorded for the mapper)."""
    keep_torchlib()
    with quiet_export():
        try:
            prog = torch.onnx.export(ep, dynamo=True, optimize=False, verbose=False)
        except Exception as e:
            raise ModelImportError(f"torch's ONNX converter, which the import reads a program through, refused it; "
                                   f"received: {visible(converter_refusal(e), 240)}. Fix: change that call in the "
                                   "model so that torch.onnx.export(program, dynamo=True) takes it") from None
    return prog.model_proto


def module_to_onnx(module: torch.nn.Module, example: tuple[torch.Tensor, ...]):
    try:
        return to_onnx_proto(module.eval(), example, [f"input_{i}" for i in range(len(example))])
    except ExportError as e:
        if "pack_padded_sequence" in _forward_source(module):  # torch's own error names neither the call nor a fix
            raise ModelImportError("a model that packs its sequences (pack_padded_sequence in forward: LayerLab's "
                                   "bidirectional recurrent layer with a padding mask) cannot be imported: import "
                                   "goes through ONNX, which cannot express packed sequences. Fix: rebuild that "
                                   "layer in LayerLab, or import the model without the padding mask") from None
        raise ModelImportError(str(e)) from None


def _forward_source(module: torch.nn.Module) -> str:
    """The source of ``module``'s forward ('' when it cannot be read)."""
    try:
        return inspect.getsource(type(module).forward)
    except (OSError, TypeError):
        return ""


def load_python(spec: str) -> tuple[torch.nn.Module, tuple[torch.Tensor, ...]]:
    """Instantiate ``file.py:ClassName(args)`` (runs the file: for your own code only).

    The class may define ``example_inputs()`` (a method or attribute) returning example tensors; otherwise
    the inputs are found from the first layer (Linear/Conv/Embedding ...) with a batch of 2.
    """

    m = re.match(r"^(?P<file>.+\.py):(?P<cls>[A-Za-z_]\w*)(?:\((?P<args>.*)\))?\Z", spec, flags=re.S)
    if not m:
        raise ModelImportError(f"expected file.py:ClassName or file.py:ClassName(args); received: {spec[:80]!r}")
    path = Path(m["file"])
    if not path.is_file():
        raise ModelImportError(f"{path}: no such file")
    args, kwargs = _parse_args(m["args"] or "")
    mod_name = f"layerlab_user_{abs(hash(str(path.resolve())))}"
    loader = importlib.util.spec_from_file_location(mod_name, path)
    module = importlib.util.module_from_spec(loader)
    sys.modules[mod_name] = module
    try:
        loader.loader.exec_module(module)
        cls = getattr(module, m["cls"])
        inst = cls(*args, **kwargs)
    except AttributeError:
        raise ModelImportError(f"{path} defines no class {m['cls']!r}") from None
    except Exception as e:
        raise ModelImportError(f"{path}:{m['cls']} could not be built; received: {type(e).__name__}: {e}") from None
    if not isinstance(inst, torch.nn.Module):
        raise ModelImportError(f"{m['cls']} is not a torch.nn.Module")
    ex = getattr(inst, "example_inputs", None)
    ex = ex() if callable(ex) else ex
    if ex is None:
        ex = _guess_inputs(inst)
    return inst.eval(), tuple(ex) if isinstance(ex, tuple | list) else (ex,)


def _parse_args(text: str) -> tuple[list, dict]:
    """Literal arguments only (numbers, strings, lists, True/None)."""
    if not text.strip():
        return [], {}
    try:
        call = ast.parse(f"f({text})", mode="eval").body
        return [ast.literal_eval(a) for a in call.args], {k.arg: ast.literal_eval(k.value) for k in call.keywords}
    except (SyntaxError, ValueError):
        raise ModelImportError(f"constructor arguments must be literals; received: ({text[:80]})") from None


def _guess_inputs(module: torch.nn.Module) -> tuple[torch.Tensor, ...]:
    from torch import nn  # lazy: heavy (torch)

    for m in module.modules():
        if isinstance(m, nn.Embedding):
            return (torch.randint(0, m.num_embeddings, (2, 16)),)
        if isinstance(m, nn.Linear):
            return (torch.randn(2, m.in_features),)
        if isinstance(m, nn.Conv2d):
            return (torch.randn(2, m.in_channels, 32, 32),)
        if isinstance(m, nn.Conv1d):
            return (torch.randn(2, m.in_channels, 32),)
        if isinstance(m, nn.LSTM | nn.GRU | nn.RNN):
            return (torch.randn(2, 16, m.input_size),)
        if isinstance(m, nn.TransformerEncoderLayer):
            return (torch.randn(2, 16, m.linear1.in_features),)
    raise ModelImportError("cannot guess the model's input; define example_inputs() on the class returning a "
                           "tensor with batch dimension 2")


# ----------------------------------------------------------------------------------------- saving


def save_import(result: ImportResult, path: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``OUT.json`` (the project) and ``OUT.safetensors`` (weights, with the node → module map that
    ``--init-from`` reads)."""
    from safetensors.torch import save_file  # lazy: heavy (safetensors)


    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wpath = path.with_suffix(".safetensors")
    write_atomic(path, result.project.to_json(), "the imported project")
    names = module_names(result.project.graph)
    meta = {"layerlab_names": json.dumps({n.id: names[n.id] for n in result.project.graph.nodes
                                          if any(k.startswith(names[n.id] + ".") for k in result.weights)}),
            "imported_from": hide_paths(str(result.report.get("source", "")))[:500]}  # downloaded with the weights
    with atomic_file(wpath, "the imported weights") as tmp:  # a full disk: one line, no partial weights
        save_file({k: v.contiguous() for k, v in result.weights.items()}, str(tmp), metadata=meta)
    return path, wpath


def register_import(store, result: ImportResult, name: str | None = None, *,
                    tokenizer: str | os.PathLike | None = None, weights_file: str | os.PathLike | None = None) -> str:
    """Record an imported model as a run (status ``imported``) so ``train --init-from RUN`` starts from its
    weights and ``--freeze`` can keep chosen nodes fixed, with the model folder's ``tokenizer`` (its
    ``tokenizer.json``, which the run's texts are then tokenized with). The run is the store's actor's. Returns
    the run id.

    One step: every file is written whole (a full disk is one line, :func:`builder.data.disk.atomic_file`), the
    tokenizer before the weights, into the new run's folder before its row is inserted ``imported``
    (:meth:`~builder.runs.store.RunStore.create_run`'s ``files``): a failed copy leaves neither a row nor a
    folder. Before, a full disk left the new run imported with its weights and a cut ``tokenizer.json`` (589,824
    of 1,849,368 bytes), then a ``queued`` run that counted against its owner's queue.

    ``weights_file``: the weights as a worker wrote them (:func:`save_import` there, final; its header checked by
    the caller), copied as they are, never loaded into this process (``result.weights`` then unused): the server read every tensor of an imported
    model to write it again."""
    def files(folder) -> None:
        if tokenizer is not None:  # first: a run with weights always has its tokenizer (init_from reads any such run)
            with atomic_file(folder.tokenizer, "the model's tokenizer", needed=Path(tokenizer).stat().st_size) as tmp:
                shutil.copyfile(tokenizer, tmp)
        if weights_file is None:
            _, wpath = save_import(result, folder.imported)
            os.replace(wpath, folder.weights)
            return
        write_atomic(folder.imported, result.project.to_json(), "the imported project")
        with atomic_file(folder.weights, "the imported weights", needed=Path(weights_file).stat().st_size) as tmp:
            shutil.copyfile(weights_file, tmp)

    rid = store.create_run(result.project, "imported", {}, {}, name=name or f"imported {result.project.name}",
                           owner=store.who().owner, status=RunStatus.IMPORTED, files=files)
    with contextlib.suppress(LayerLabError):  # the run is whole: its message is a nicety
        store.update_status(rid, RunStatus.IMPORTED, f"imported from {Path(str(result.report.get('source', ''))).name}")
    return rid


__all__ = ["ImportResult", "import_model", "build_from_onnx", "save_import", "register_import", "load_pt2",
           "check_pt2_archive", "load_python", "write_bundle", "zip_members", "unzip_bundle"]
