"""builder.graph.latency: every node that builds a module is timed; the CLI reports it (no timing is asserted)."""

from __future__ import annotations

import json

import pytest

import builder
from builder.cli.main import main as cli_main
from builder.errors import LayerLabError
from builder.graph.compile import compile_graph, module_names
from builder.graph.latency import node_latency


@pytest.mark.parametrize("name", ["cnn", "resnet", "transformer"])
def test_every_module_node_is_timed(name):
    graph = builder.load_template(name).graph
    lat = node_latency(graph, batch_size=4, repeats=2, warmup=1)
    model = compile_graph(graph)
    called = {n.target for n in model.graph.nodes if n.op == "call_module"}  # a position table is only read
    with_module = {nid for nid, attr in module_names(graph).items() if attr in called}
    assert set(lat.per_node) == with_module
    assert all(s > 0 for s in lat.per_node.values()) and lat.total_s > 0
    rows = lat.rows()
    assert [r["ms"] for r in rows] == sorted((r["ms"] for r in rows), reverse=True)


def test_counts_are_checked_before_running():
    with pytest.raises(LayerLabError, match="repeats"):
        node_latency(builder.load_template("mlp").graph, repeats=0)


def test_summary_latency_column(tmp_path, capsys):
    path = tmp_path / "mlp.json"
    path.write_text(builder.load_template("mlp").model_dump_json())
    assert cli_main(["summary", str(path), "--latency", "--repeats", "2", "--batch-size", "4", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["latency"]["device"] == "cpu" and out["latency"]["batch_size"] == 4
    timed = {n["id"]: n["latency_ms"] for n in out["nodes"]}
    assert timed["fc1"] > 0 and timed["input"] is None  # the Input builds no module
    assert cli_main(["summary", str(path), "--latency", "--repeats", "2"]) == 0
    assert "forward pass:" in capsys.readouterr().out
