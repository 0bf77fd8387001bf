"""Export a graph as standalone PyTorch source, and weights as safetensors.

The generated file imports only torch and holds one ``nn.Module`` class: ``__init__`` builds the layers
with their (inferred) sizes written out, ``forward`` is the compiled torch.fx code, cleaned up.
"""

from __future__ import annotations

import inspect
import re

import torch
from torch import nn

from builder.errors import GraphError, LayerLabError
from builder.escape import docstring_text, is_code_name, py_comment, py_string
from builder.graph.compile import checked_report, compile_graph, module_names, padding_mask_inputs
from builder.graph.project import Graph, Project, as_graph, load_project
from builder.graph.registry import format_shape, get_spec
from builder.graph.shapes import Budget, module_ctor
from builder.training.weights import load_weights, save_weights  # re-exported: the .py file's weights


def _literal(v) -> str:
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, list):
        return "(" + ", ".join(_literal(x) for x in v) + ("," if len(v) == 1 else "") + ")"
    return repr(v)


def render_ctor(cls: str, kwargs: dict) -> str:
    """``nn.Conv2d(1, 16, kernel_size=3, padding=1)``: required args positional, defaults omitted."""
    init = getattr(nn, cls).__init__
    params = inspect.signature(init).parameters
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params.values()):  # RNN, LSTM, GRU
        params = dict(inspect.signature(nn.RNNBase.__init__).parameters)
        params.pop("mode", None)
        params["nonlinearity"] = inspect.Parameter("nonlinearity", inspect.Parameter.KEYWORD_ONLY, default="tanh")
    pos, kw = [], []
    for name, p in params.items():
        if name == "self" or name not in kwargs:
            continue
        v = kwargs[name]
        if p.default is inspect.Parameter.empty:
            pos.append(_literal(v))
        elif not _equal(v, p.default):
            kw.append(f"{name}={_literal(v)}")
    return f"nn.{cls}({', '.join(pos + kw)})"


def _equal(a, b) -> bool:
    if isinstance(a, list | tuple) and not isinstance(b, list | tuple):
        return len(set(a)) == 1 and a[0] == b
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return list(a) == list(b)
    return type(a) is type(b) and a == b or (isinstance(a, float) and isinstance(b, float) and a == b)


def _clean_forward(code: str) -> str:
    lines = []
    for line in code.strip("\n").splitlines():
        line = re.sub(r";\s+[\w\s=]+= None$", "", line.rstrip())
        line = re.sub(r"\[slice\(None, (\w+), None\)\]", r"[:\1]", line)
        if line.strip():
            lines.append(line)
    return "\n".join(lines)


def export_python(graph, class_name: str = "Model", budget: Budget | None = None, *,
                  temperature: float | None = None) -> str:
    """Standalone, runnable PyTorch source for a graph (imports only torch).

    With ``temperature`` (a calibrated classifier's, :mod:`builder.interpret.calibration`) ``forward`` returns
    the single output divided by it; the generated graph code becomes ``logits`` (state-dict keys unchanged).

    The state-dict keys of the exported class equal the compiled module's, so weights saved with
    :func:`~builder.training.weights.save_weights` load into it with ``load_state_dict``. The project name and every other user
    string are escaped for the place they land (docstring, comment), so the file always compiles.

    Raises:
        GraphError / BudgetError: the graph has problems or is over the budget (checked before any allocation).
    """
    if not is_code_name(class_name):
        raise LayerLabError(f"the class name must be an ASCII Python identifier; received: {py_string(class_name)}. "
                            "Fix: use e.g. 'Model'")
    project = graph if isinstance(graph, Project) else None
    graph = as_graph(graph)
    report = checked_report(graph, budget)
    with torch.device("meta"):  # only the generated code is read: parameters and buffers allocate nothing
        model = compile_graph(graph, report=report)
    names = module_names(graph)
    init: list[str] = []
    for nid in report.order:
        info = report.nodes[nid]
        if info.type == "Input" or info.shares:  # a tied node calls the module of the node it shares
            continue
        spec = get_spec(info.type)
        ctor = module_ctor(spec, info.params, info.inputs)
        shape = f"  # -> {info.shape_str}" if info.shape is not None else ""
        if ctor is not None:
            init.append(f"self.{names[nid]} = {render_ctor(*ctor)}{shape}")
        elif spec.export_init is not None:
            init.extend(spec.export_init(names[nid], info.params, info.inputs))
    if not init:
        init.append("pass")
    fwd = _clean_forward(model.code)
    fwd = re.sub(r"^def forward\(self, ", "def forward(self, ", fwd)
    if temperature is not None:
        from builder.interchange.onnx_export import check_temperature  # lazy: heavy (numpy)

        if len(report.output_nodes) != 1:
            raise LayerLabError(f"a temperature divides one output (the logits); received a graph with "
                                f"{len(report.output_nodes)} outputs. Fix: export without the temperature")
        init.append(f"self.temperature = {check_temperature(temperature)!r}  # logits / T (LayerLab calibration)")
        fwd = re.sub(r"^def forward\(self, ", "def logits(self, ", fwd)
        fwd += ("\n\ndef forward(self, *inputs):\n"
                "    return self.logits(*inputs) / self.temperature  # calibrated logits\n")
    inputs = ", ".join(f"{names[n]}: {format_shape(report.nodes[n].shape)}"
                       + (" token ids" if report.nodes[n].type_out.kind == "tokens" else "")
                       for n in report.input_nodes)
    outputs = ", ".join(f"{names[n]}: {report.nodes[n].shape_str}" for n in report.output_nodes)
    title = docstring_text(project.name, 200) if project else "LayerLab model"
    uses_math = any("math." in line for line in init)
    # torch.fx writes non-finite literals (an Op's fill value) as the names inf and nan, which it imports itself
    non_finite = sorted(set(re.findall(r"(?<![\w.'\"])(inf|nan)(?![\w'\"])", fwd)))
    body_init = "\n".join("        " + line for line in init)
    body_fwd = "\n".join("    " + line for line in fwd.splitlines())
    examples = []
    for n in report.input_nodes:
        info = report.nodes[n]
        shape = ", ".join(str(s) for s in (2, *info.shape))
        if info.type_out.kind == "tokens":
            examples.append(f"torch.randint(0, {info.type_out.vocab}, ({shape}))")
        else:
            examples.append(f"torch.randn({shape})")
    for n in padding_mask_inputs(report):  # derived inside forward, from the values
        pad = "token id 0" if report.nodes[n].type_out.kind == "tokens" else "a step of all-zero features"
        inputs += f" ({names[n]}'s padding: {pad})"
    return f'''"""{title}: generated by LayerLab.

Inputs:  {inputs}
Outputs: {outputs}
Parameters: {report.total_params:,}

Load trained weights (a run's Weights download on the Runs page, or builder.save_weights) with:
    from safetensors.torch import load_file
    model.load_state_dict(load_file("path/to/the-run.safetensors"))
"""
{"import math" + chr(10) if uses_math else ""}{"from math import " + ", ".join(non_finite) + chr(10) if non_finite else ""}
import torch
from torch import nn


class {class_name}(nn.Module):
    def __init__(self):
        super().__init__()
{body_init}

{body_fwd}


if __name__ == "__main__":
    model = {class_name}().eval()
    out = model({", ".join(examples)})
    print(tuple(o.shape for o in out) if isinstance(out, tuple) else tuple(out.shape))
'''


def failed_export_source(error: BaseException | str) -> str:
    """A ``.py`` file that says why a graph could not be exported (every line escaped) and exits 1 when run.

    Used where a download must deliver a file even when the graph is broken (the Build and Runs pages).
    """
    lines = [str(p) for p in error.problems] if isinstance(error, GraphError) else [str(error)]
    comments = "\n".join(f"# {py_comment(line)}" for line in lines[:50])
    summary = f"LayerLab could not export this graph: {lines[0] if lines else 'unknown error'}"
    return ("# -*- coding: utf-8 -*-\n"  # fixed first line: no comment below can declare another encoding
            "# LayerLab could not export this graph; the problems:\n"
            f"{comments}\n"
            "import sys\n\n"
            f"sys.exit({py_string(summary[:500])})\n")


def python_source(project) -> str:
    """What a ``.py`` download delivers: :func:`export_python`'s code for a project (a Project, a graph, or a
    stored run's project dict), or, when it cannot be exported, :func:`failed_export_source` naming every
    problem (the Build and Runs pages' downloads)."""
    try:
        if not isinstance(project, Project | Graph):
            project = load_project(project)
        return export_python(project)
    except LayerLabError as e:
        return failed_export_source(e)


__all__ = ["export_python", "python_source", "failed_export_source", "save_weights", "load_weights", "render_ctor"]
