"""Errors of model import/export (part of the one hierarchy in :mod:`builder.errors`), and what a model file the
app does not open is (:func:`foreign_model_advice`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from builder.errors import LayerLabError


class ModelImportError(LayerLabError):
    """A model file cannot be read or imported (malformed, hostile, too large, or unsafe)."""


@dataclass(frozen=True)
class Unsupported:
    """One operator (or module) that has no LayerLab layer, with the nodes that use it and a fix."""

    op: str
    nodes: tuple[str, ...]
    fix: str

    def __str__(self) -> str:
        shown = ", ".join(self.nodes[:5]) + (f" (+{len(self.nodes) - 5} more)" if len(self.nodes) > 5 else "")
        return f"op `{self.op}` has no LayerLab layer; received: node(s) {shown}. Fix: {self.fix}"


class UnsupportedOpsError(ModelImportError):
    """Some operators do not map to LayerLab layers; ``unsupported`` lists every one (per operator)."""

    def __init__(self, unsupported: list[Unsupported]):
        self.unsupported = list(unsupported)
        lines = "; ".join(str(u) for u in self.unsupported)
        super().__init__(f"{len(self.unsupported)} unsupported operator(s), nothing was imported: {lines}")


#: Files a torch model is often kept in that the app does not open, what each is, and (:func:`foreign_model_advice`)
#: what to do instead. The Import box and the sidebar's Open project accept them to say so: Streamlit's own refusal
#: read "Error: files are not allowed." for a .pt and "text/x-python files are not allowed." for a .py.
_WEIGHTS = "weights without the network's structure, or a pickle (loading one runs code)"
FOREIGN_MODEL_FILES = {".pt": _WEIGHTS, ".pth": _WEIGHTS, ".ckpt": _WEIGHTS, ".bin": _WEIGHTS, ".pkl": _WEIGHTS,
                       ".safetensors": "weights without the network's structure",
                       ".py": "Python code, which the app never runs"}
EXPORT_ADVICE = ("export the model from Python, with an example input x: torch.onnx.export(model, (x,), "
                 "\"model.onnx\", external_data=False) or torch.export.save(torch.export.export(model, (x,)), "
                 "\"model.pt2\"), and import that file")


def foreign_model_advice(filename: str) -> str | None:
    """What a torch model file the app does not open is, and how to make one it opens; None for any other file.

    >>> foreign_model_advice("net.PT").split(". Fix")[0]
    "the app imports .onnx and .pt2 files; received: 'net.PT', weights without the network's structure, or a pickle (loading one runs code)"
    >>> foreign_model_advice("m.onnx") is None
    True
    """
    what = FOREIGN_MODEL_FILES.get(Path(filename).suffix.lower())
    if what is None:
        return None
    cli = (" On your own machine, the command layerlab import file.py:Class imports it (it runs the code)."
           if filename.lower().endswith(".py") else "")
    return f"the app imports .onnx and .pt2 files; received: {filename!r}, {what}. Fix: {EXPORT_ADVICE}.{cli}"


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def converter_refusal(e: BaseException) -> str:
    """What torch's ONNX converter refused, in one line: the operator it failed on and the root cause from its
    "Exception summary". Its message opens with a banner in terminal colours that ends in "Next steps:", which
    an import showed as the whole reason ("Failed to convert the exported program to an ONNX model. \\x1b[96mThis
    is step 3/3\\x1b[0m ... Next steps:"); a message of another form gives its first line, colours removed.

    >>> converter_refusal(RuntimeError("Failed. \\x1b[96mstep\\x1b[0m Next steps:\\n## Exception summary\\n\\n"
    ...     "<class 'AssertionError'>: only 4D query\\n...call_function[target=torch.ops.aten.sdpa.default](args"))
    'aten.sdpa: AssertionError: only 4D query'
    """
    text = _ANSI.sub("", str(e))
    root = re.search(r"## Exception summary\s+<class '(?:[\w.]+\.)?(\w+)'>: ([^\n]*)", text)
    if root is None:
        return f"{type(e).__name__}: {text.strip().splitlines()[0] if text.strip() else ''}"
    op = re.findall(r"target=torch\.ops\.([\w.]+)\]", text)
    where = f"{op[-1].removesuffix('.default')}: " if op else ""
    return f"{where}{root.group(1)}: {root.group(2).strip()}"


__all__ = ["ModelImportError", "UnsupportedOpsError", "Unsupported", "FOREIGN_MODEL_FILES", "EXPORT_ADVICE",
           "foreign_model_advice", "converter_refusal"]
