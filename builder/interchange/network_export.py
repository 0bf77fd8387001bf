"""One network of a project with a drawn objective, exported on its own (``layerlab export --run RUN --network
NAME``, the Runs page's Network choice): the network's project (:func:`builder.training.networks.network_project`)
with the run's weights renamed to it (:func:`~builder.training.networks.network_state`), then the ``.py`` and ONNX
exporters as for any project. The graph surgery's names stay importable from here. Example::

    # not a doctest (needs a trained run): run by tests/interchange/test_network_export.py
    export_network(project, "generator", store.weights_path(run_id), "generator.onnx")
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from builder.graph.compile import module_names
from builder.graph.shapes import infer_shapes
from builder.interchange.python_export import export_python, python_source
from builder.interchange.worker import network_weights_bytes
from builder.training.networks import (
    TRAINING_ONLY,
    NetworkError,
    as_project,
    explain_view,
    network_model,
    network_names,
    network_project,
    network_state,
)
from builder.training.weights import save_weights

__all__ = ["network_names", "network_project", "explain_view", "network_state", "network_model", "export_network",
           "network_downloads", "NetworkError", "TRAINING_ONLY"]


def export_network(project: Any, network: str, weights: str | os.PathLike | dict | None, output: str | os.PathLike,
                   fmt: str = "py") -> dict:
    """Write ``network`` as ``fmt`` ``"py"`` (``OUTPUT`` and its weights at ``OUTPUT`` with ``.safetensors``) or
    ``"onnx"`` (verified against onnxruntime). Returns ``{"files": [...], "inputs", "outputs", "max_abs_diff"}``
    (the difference for ONNX only). Raises NetworkError, ExportError, GraphError."""
    project = as_project(project)
    output = Path(output)
    sub = network_project(project, network)
    model = network_model(project, network, weights)
    report = infer_shapes(sub.graph)
    names = module_names(sub.graph)
    info = {"inputs": [names[n] for n in report.input_nodes], "outputs": [names[n] for n in report.output_nodes]}
    if fmt == "onnx":
        from builder.interchange.onnx_export import export_onnx  # lazy: heavy (numpy)

        rep = export_onnx(sub, output, model.state_dict())
        return {**info, "files": [str(output)], "max_abs_diff": rep.max_abs_diff}
    if fmt != "py":
        raise NetworkError(f"a network exports as py or onnx; received: {str(fmt)[:20]!r}. Fix: use --format py "
                           "or onnx (--run without --network writes the whole run's weights)")

    source = export_python(sub)
    wpath = output.with_suffix(".safetensors")
    output.write_text(source, encoding="utf-8")
    save_weights(model, wpath)
    return {**info, "files": [str(output), str(wpath)], "max_abs_diff": None}


def network_downloads(project: Any, network: str, weights: str | os.PathLike | None) -> dict[str, Any]:
    """What the Runs page offers for one network: ``"py"`` (source text), ``"weights"`` (safetensors bytes, or
    None without ``weights``) and ``"project"`` (the network's project JSON, for the ONNX worker). The network
    is built with its weights in a worker process (:func:`builder.interchange.worker.network_weights_bytes`),
    never in the caller's (the server's)."""
    project = as_project(project)
    sub = network_project(project, network)
    data = None if weights is None else network_weights_bytes(project.to_json(), network, weights)
    return {"py": python_source(sub), "weights": data, "project": sub.to_json()}
