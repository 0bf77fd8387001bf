"""Model exchange in a separate OS process (spawned, with a timeout), for the app.

An uploaded file is parsed in a fresh process: a malformed or hostile file that crashes a parser, loops or
eats memory takes that process down, not the app. Nothing in an upload is executed (ONNX is protobuf; a
.pt2 is checked for pickles before loading, see :func:`builder.interchange.importer.check_pt2_archive`).

Example::

    # not a doctest (needs files or training): run by tests/interchange/test_worker.py::test_import_upload_records_the_weights_as_a_run
    project, run_id, report = import_upload(data, "resnet.onnx", store)
"""

from __future__ import annotations

import multiprocessing as mp
import os
import tempfile
import traceback
from pathlib import Path
from typing import Any

from builder.errors import LayerLabError
from builder.interchange.errors import ModelImportError

MAX_UPLOAD_BYTES = 200 * 1024 * 1024
IMPORT_TIMEOUT_S = 300.0
UPLOAD_SUFFIXES = (".onnx", ".pt2")


def _entry(fn: str, kwargs: dict, queue) -> None:
    try:
        res = globals()[fn](**kwargs)
        queue.put(("ok", res))
    except LayerLabError as e:
        queue.put(("user", f"{type(e).__name__}: {e}" if not isinstance(e, ModelImportError) else str(e)))
    except BaseException as e:  # noqa: BLE001  reported to the parent as one line
        queue.put(("crash", f"{type(e).__name__}: {str(e)[:300]}", traceback.format_exc(limit=3)))


def run_isolated(fn: str, timeout: float = IMPORT_TIMEOUT_S, **kwargs: Any) -> Any:
    """Run ``fn(**kwargs)`` (a function of this module) in a spawned process; its result comes back pickled
    from our own child, never from the file. Raises ModelImportError on failure or timeout."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_entry, args=(fn, kwargs, queue), daemon=True)
    proc.start()
    import queue as queue_mod
    import time

    deadline = time.monotonic() + timeout
    msg = None
    try:
        while msg is None:
            try:
                msg = queue.get(timeout=0.2)
            except queue_mod.Empty:
                if not proc.is_alive() and queue.empty():
                    raise ModelImportError(f"the worker process ended without an answer (exit code {proc.exitcode}; "
                                           "out of memory or a crashing parser). Fix: try a smaller model") from None
                if time.monotonic() > deadline:
                    raise ModelImportError(f"the worker did not answer within {timeout:.0f} s. Fix: try a smaller "
                                           "model") from None
    finally:
        proc.join(5)
        if proc.is_alive():
            proc.kill()
            proc.join(5)
    if msg[0] == "ok":
        return msg[1]
    raise ModelImportError(msg[1])


# ----------------------------------------------------------------------------------------- child functions


def _child_import(path: str, out: str) -> dict:
    from builder.interchange.importer import import_model, save_import

    res = import_model(path, name=Path(path).stem)
    save_import(res, out)
    return res.report


def _child_export(project_json: str, weights: str | None, out: str) -> dict:
    from builder.graph.project import load_project
    from builder.interchange.onnx_export import export_onnx

    return export_onnx(load_project(project_json), out, weights).to_dict()


def _child_quantize(workspace: str, run_id: str) -> dict:
    from builder.interchange.onnx_export import quantize_run
    from builder.runs.store import RunStore

    return quantize_run(RunStore(workspace), run_id)


# ----------------------------------------------------------------------------------------- app entry points


def import_upload(data: bytes, filename: str, store, *, max_bytes: int = MAX_UPLOAD_BYTES,
                  timeout: float = IMPORT_TIMEOUT_S):
    """Import an uploaded ``.onnx``/``.pt2`` in a worker process and record its weights as a run.

    Returns:
        ``(project, run_id, report)``: the project's ``training`` names the run in ``init_from`` so training
        starts from the imported weights (``freeze`` keeps chosen nodes fixed).

    Raises:
        ModelImportError: wrong type, too large, unsupported operators (all listed), timeout.
    """
    from safetensors.torch import load_file

    from builder.graph.project import load_project
    from builder.interchange.importer import ImportResult, register_import

    suffix = Path(filename).suffix.lower()
    if suffix not in UPLOAD_SUFFIXES:
        raise ModelImportError(f"the app imports .onnx and .pt2 files; received: {filename!r}. Fix: convert the "
                               "model, or use `layerlab import file.py:Class` for Python code (it runs the code)")
    if len(data) > max_bytes:
        raise ModelImportError(f"the file is larger than the upload limit; received: {len(data):,} bytes. Fix: "
                               f"use the CLI (`layerlab import`) for models over {max_bytes // 2**20} MiB")
    with tempfile.TemporaryDirectory(prefix="layerlab-import-") as tmp:
        src = Path(tmp) / f"upload{suffix}"
        src.write_bytes(data)
        out = Path(tmp) / "imported.json"
        report = run_isolated("_child_import", timeout, path=str(src), out=str(out))
        project = load_project(out)
        weights = load_file(str(out.with_suffix(".safetensors")))
    stem = Path(filename).stem[:100] or "model"
    project = project.model_copy(update={"name": stem, "description": f"Imported from {Path(filename).name[:150]}."})
    report["source"] = Path(filename).name
    rid = register_import(store, ImportResult(project, weights, report), name=f"imported {stem}")
    project = project.model_copy(update={"training": {"init_from": rid}})
    return project, rid, report


def export_onnx_bytes(project_json: str, weights: str | os.PathLike | None = None,
                      timeout: float = IMPORT_TIMEOUT_S) -> tuple[bytes, dict]:
    """The project as a verified ONNX file (bytes) and its export report, built in a worker process."""
    with tempfile.TemporaryDirectory(prefix="layerlab-export-") as tmp:
        out = Path(tmp) / "model.onnx"
        rep = run_isolated("_child_export", timeout, project_json=project_json,
                           weights=str(weights) if weights else None, out=str(out))
        return out.read_bytes(), rep


def quantize_run_isolated(workspace: str | os.PathLike, run_id: str, timeout: float = IMPORT_TIMEOUT_S) -> dict:
    """:func:`builder.interchange.onnx_export.quantize_run` in a worker process."""
    return run_isolated("_child_quantize", timeout, workspace=str(workspace), run_id=run_id)


__all__ = ["import_upload", "export_onnx_bytes", "quantize_run_isolated", "run_isolated", "MAX_UPLOAD_BYTES"]
