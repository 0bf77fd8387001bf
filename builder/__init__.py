"""LayerLab's library: project files, layer registry, validation, shape inference, compile and export.

Public API::

    builder.load_project(path_or_dict) -> Project
    builder.validate(graph) -> list[Problem]
    builder.infer_shapes(graph) -> ShapeReport
    builder.compile_graph(graph) -> torch.fx.GraphModule
    builder.export_python(graph) -> str
"""

from importlib import import_module as _import_module

from builder._moved import install as _install_moved
from builder.errors import (
    BudgetError,
    DatasetError,
    ExplainError,
    GraphError,
    LayerLabError,
    Problem,
    ProjectFormatError,
    RunStoreError,
    TrainingError,
)
from builder.graph.layout import auto_layout
from builder.graph.project import Edge, Graph, Node, Project, as_graph, load_project
from builder.graph.registry import all_specs, get_spec, palette
from builder.graph.shapes import Budget, ShapeReport, infer_shapes, validate
from builder.graph.templates import list_templates, load_template

__version__ = "0.1.0"
_install_moved()

__all__ = ["BudgetError", "DatasetError", "ExplainError",
           "GraphError", "LayerLabError", "Problem", "ProjectFormatError", "RunStoreError", "TrainingError",
           "auto_layout", "Edge", "Graph", "Node", "Project",
           "as_graph", "load_project", "all_specs", "get_spec", "palette", "Budget", "ShapeReport",
           "infer_shapes", "validate", "list_templates", "load_template"]


# torch is not imported by the names above: the Build page validates and infers shapes without it (a cold
# first visit does not wait ~1.3 s for torch). Compile, export, training and explainability import it.
# Explainability loads Captum, matplotlib and scipy (~2 s) and datasets scikit-learn, so these parts are
# imported on first use (PEP 562).
_LAZY = {
    "compile_graph": "graph.compile", "example_inputs": "graph.compile", "module_names": "graph.compile",
    "export_python": "interchange.python_export", "load_weights": "training.weights",
    "save_weights": "training.weights", "read_weights": "training.weights",
    "explain": "interpret.attributions", "explain_all": "interpret.attributions",
    "available_methods": "interpret.attributions", "make_baseline": "interpret.attributions",
    "pick_samples": "interpret.attributions", "MethodInfo": "interpret.attributions",
    "Explanation": "interpret.attributions", "METHODS": "interpret.attributions",
    "capture_attention": "interpret.attention", "attention_rollout": "interpret.attention",
    "capture_activations": "interpret.activations", "weight_histograms": "interpret.activations",
    "randomisation_check": "interpret.sanity", "ig_completeness": "interpret.sanity",
    "LiveAttributions": "interpret.live",
    # training engine (datasets load scikit-learn on first use)
    "DatasetInfo": "data", "Dataset": "data", "Split": "data",
    "list_datasets": "data", "load_dataset": "data", "load_csv": "data",
    "load_image_folder": "data", "check_compat": "data.compat", "adapt_graph": "data.compat",
    "TrainConfig": "training.trainer", "Trainer": "training.trainer", "TrainingJob": "training.trainer",
    "TrainResult": "training.trainer", "Callback": "training.trainer", "Channel": "training.trainer",
    "evaluate": "training.trainer", "run_training": "runs.pipeline", "resume_run": "runs.pipeline",
    "RunStore": "runs.store", "default_workspace": "runs.store", "model_card": "runs.modelcard",
    # model exchange (onnx, onnxruntime, onnxscript load on first use)
    "import_model": "interchange.importer", "ImportResult": "interchange.importer",
    "save_import": "interchange.importer", "export_onnx": "interchange.onnx_export",
    "quantize_int8": "interchange.onnx_export", "quantize_run": "interchange.onnx_export",
    "ModelImportError": "interchange.errors", "UnsupportedOpsError": "interchange.errors",
}
__all__ += list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        module = _import_module(f".{_LAZY[name]}", __name__)
        # `builder.explain` is the module builder.interpret.attributions, which is callable as the function
        return module if name == "explain" else getattr(module, name)
    raise AttributeError(f"module 'builder' has no attribute {name!r}")
