"""The graph fuzzer: drawn projects (tests/fuzz_graphs.py) through load, analysis, compile, forward and export.

For every drawn project file:
- nothing but the LayerLabError hierarchy is ever raised;
- a rejected graph has every problem located (node or edge), on one printable line, and compile refuses it;
- an accepted graph compiles, runs forward on batch 1 and 3 (eval) and 3 (train) with exactly the inferred
  output shapes, batch preserved, and exports to a ``.py`` that compiles and gives the same output.

Examples per run come from the hypothesis profile: ``ci`` (CI=true, ≥ 2,000, derandomised), ``fuzz``
(``make fuzz``), ``dev`` otherwise (tests/conftest.py).
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings

from builder import compile_graph, export_python, infer_shapes, load_project
from builder.errors import GraphError, LayerLabError
from builder.escape import terminal_line
from builder.graph.compile import example_inputs
from builder.graph.shapes import Budget
from tests.fuzz_graphs import project_text

# small enough that every accepted graph builds and runs in milliseconds; larger ones must be refused
BUDGET = Budget(max_params=2_000_000, max_activation_bytes=64 * 2**20, batch_size=3)
GRAPH_LEVEL = {"no_input", "too_many_nodes"}


def _outputs(out) -> tuple:
    return out if isinstance(out, tuple) else (out,)


def _exported_model(source: str):
    code = compile(source, "<exported>", "exec")  # must always compile, whatever the names
    namespace: dict = {"__name__": "exported_by_layerlab"}
    exec(code, namespace)  # noqa: S102 - the generated module, to compare it with the compiled one
    return namespace["Model"]()


def check_project(text: str) -> str:
    """Run one project file through every stage; returns what happened (for hypothesis.event)."""
    try:
        project = load_project(text)
    except LayerLabError as e:
        assert "\n" not in terminal_line(str(e))
        return "unreadable"
    report = infer_shapes(project.graph, BUDGET)  # must never raise
    if not report.ok:
        for p in report.problems:
            assert p.node is not None or p.edge is not None or p.code in GRAPH_LEVEL, p
            assert p.message and "\n" not in terminal_line(str(p))
        try:
            compile_graph(project.graph, BUDGET)
        except GraphError as e:
            assert e.problems
        else:
            raise AssertionError("compile_graph accepted a graph that validation rejects")
        return "budget" if all(p.code == "budget" for p in report.problems if p.severity == "error") else "rejected"

    model = compile_graph(project.graph, report=report)
    model.eval()
    with torch.no_grad():
        for batch in (1, 3):
            outs = _outputs(model(*example_inputs(model, batch_size=batch)))
            assert len(outs) == len(report.output_nodes)
            for o, nid in zip(outs, report.output_nodes, strict=True):
                assert tuple(o.shape) == (batch, *report.nodes[nid].shape), (nid, tuple(o.shape), report.nodes[nid].shape)
        model.train()
        outs = _outputs(model(*example_inputs(model, batch_size=3)))
        assert [tuple(o.shape) for o in outs] == [(3, *report.nodes[n].shape) for n in report.output_nodes]
        model.eval()

        exported = _exported_model(export_python(project, budget=BUDGET))
        exported.load_state_dict(model.state_dict())
        exported.eval()
        xs = example_inputs(model, batch_size=3, seed=1)
        for a, b in zip(_outputs(exported(*xs)), _outputs(model(*xs)), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    return "accepted"


@pytest.mark.filterwarnings("ignore::UserWarning")  # torch: RNN dropout with one layer (validation warns too)
@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                HealthCheck.filter_too_much])
@given(project_text())
def test_drawn_projects_load_validate_compile_run_and_export(text):
    from hypothesis import event

    event(check_project(text))
