"""Model exchange: ONNX export (verified against onnxruntime), int8 quantization, and import of ONNX,
``torch.export`` (.pt2) and Python-defined models onto the canvas.

onnx, onnxruntime and onnxscript are imported on first use (~1 s).
"""

from __future__ import annotations

from importlib import import_module as _import_module

from builder.interchange.errors import ModelImportError, UnsupportedOpsError

__all__ = ["ModelImportError", "UnsupportedOpsError", "python_source", "export_onnx", "ExportReport", "quantize_int8",
           "quantize_run", "export_run_onnx", "import_model", "ImportResult", "save_import"]

_LAZY = {"python_source": "python_export", "export_onnx": "onnx_export", "ExportReport": "onnx_export", "quantize_int8": "onnx_export",
         "quantize_run": "onnx_export", "export_run_onnx": "onnx_export",
         "import_model": "importer", "ImportResult": "importer", "save_import": "importer"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(_import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'builder.interchange' has no attribute {name!r}")
