"""LayerLab's library: project files, layer registry, validation, shape inference, compile and export.

Public API::

    builder.load_project(path_or_dict) -> Project
    builder.validate(graph) -> list[Problem]
    builder.infer_shapes(graph) -> ShapeReport
    builder.compile_graph(graph) -> torch.fx.GraphModule
    builder.export_python(graph) -> str
"""

from .errors import (
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
from .layout import auto_layout
from .project import Edge, Graph, Node, Project, as_graph, load_project
from .registry import all_specs, get_spec, palette
from .shapes import Budget, ShapeReport, infer_shapes, validate
from .templates import list_templates, load_template

__version__ = "0.1.0"

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
    "compile_graph": "compile", "example_inputs": "compile", "module_names": "compile",
    "export_python": "export", "load_weights": "export", "save_weights": "export",
    "explain": "explain", "explain_all": "explain", "available_methods": "explain", "make_baseline": "explain",
    "pick_samples": "explain", "MethodInfo": "explain", "Explanation": "explain", "METHODS": "explain",
    "capture_attention": "attention", "attention_rollout": "attention", "capture_activations": "activations",
    "weight_histograms": "activations", "randomisation_check": "sanity", "ig_completeness": "sanity",
    "LiveAttributions": "live",
    # training engine (datasets load scikit-learn on first use)
    "DatasetInfo": "data", "Dataset": "data", "Split": "data", "list_datasets": "data", "load_dataset": "data",
    "load_csv": "data", "load_image_folder": "data", "check_compat": "compat", "adapt_graph": "compat",
    "TrainConfig": "train", "Trainer": "train", "TrainingJob": "train", "TrainResult": "train", "Callback": "train",
    "Channel": "train", "evaluate": "train", "RunStore": "runs", "run_training": "pipeline", "resume_run": "pipeline",
    "default_workspace": "runs", "model_card": "modelcard",
    # model exchange (onnx, onnxruntime, onnxscript load on first use)
    "import_model": "interchange.importer", "ImportResult": "interchange.importer",
    "save_import": "interchange.importer", "export_onnx": "interchange.onnx_export",
    "quantize_int8": "interchange.onnx_export", "quantize_run": "interchange.onnx_export",
    "ModelImportError": "interchange.errors", "UnsupportedOpsError": "interchange.errors",
}
__all__ += list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module = importlib.import_module(f".{_LAZY[name]}", __name__)
        # `builder.explain` is the module, which is callable as the function (see builder/explain.py)
        return module if name == "explain" else getattr(module, name)
    raise AttributeError(f"module 'builder' has no attribute {name!r}")
