import json
import os

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from builder import Graph, Project, ProjectFormatError, load_project
from builder.graph.project import as_graph
from tests.fuzz_budget import budget

json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
                           lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=6), c, max_size=4),
                           max_leaves=20)


def test_hand_written_example_loads(example_project):
    p = load_project(example_project)
    assert [n.id for n in p.graph.nodes] == ["x", "c1", "r1", "sum", "f", "fc"]
    assert p.graph.node("c1").params == {"out_channels": 16, "kernel_size": 3, "padding": 1}
    assert p.graph.node("r1").params == {}


def test_load_from_path_string_and_bytes(tmp_path, example_project):
    path = tmp_path / "p.json"
    path.write_text(json.dumps(example_project))
    assert load_project(path) == load_project(str(path)) == load_project(path.read_bytes()) \
        == load_project(json.dumps(example_project))


def test_json_round_trip_is_lossless(example_project):
    p = load_project(example_project)
    p.graph.nodes[0].label = "pixels"
    p.training = {"epochs": 3}
    again = load_project(p.to_json())
    assert again == p


def test_networkx_node_link_round_trip(example_project):
    g = load_project(example_project).graph
    g.edges[0].target_port = None
    g.edges[2].source_port = None
    data = g.to_node_link()
    json.dumps(data)  # serialisable
    assert Graph.from_node_link(data) == g
    assert isinstance(g.to_networkx(), nx.MultiDiGraph)
    assert Graph.from_networkx(g.to_networkx()) == g


@pytest.mark.parametrize("bad, words", [
    ({"format": "keras", "version": 1, "graph": {}}, "unknown format"),
    ({"format": "layerlab", "version": 99, "graph": {}}, "unsupported project version 99"),
    ({"format": "layerlab", "version": "1", "graph": {}}, "unsupported project version"),
    ({"format": "layerlab", "version": 1, "graph": {"nodes": "abc"}}, "graph.nodes"),
    ({"format": "layerlab", "version": 1, "graph": {"nodes": [{"id": 3, "type": "ReLU"}]}},
     r"graph.nodes.0.id is text; received: 3\. Fix: correct these fields"),  # what was wrong, and where the format is
    ({"format": "layerlab", "version": 1, "graph": {"nodes": []}, "dataset": "abc"},
     r"dataset is an object .*; received: 'abc'\. Fix: correct these fields \(the format: docs/reference/project-file.md\)"),
    ({"format": "layerlab", "version": 1, "graph": {"nodes": [{"type": "ReLU"}]}}, "id"),
    ([1, 2], "must be a JSON object"),
])
def test_clear_errors(bad, words):
    with pytest.raises(ProjectFormatError, match=words):
        load_project(bad)


@pytest.mark.parametrize("text, words", [("{", "not valid JSON"), ('{"format": "layerlab", "ver', "not valid JSON"),
                                         ("[" * 100000, "not valid JSON")])
def test_truncated_json(text, words):
    with pytest.raises(ProjectFormatError, match=words):
        load_project(text.encode())


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ProjectFormatError, match="no such file"):
        load_project(tmp_path / "nope.json")
    with pytest.raises(ProjectFormatError, match="directory"):
        load_project(tmp_path)
    (tmp_path / "bin.json").write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(ProjectFormatError, match="UTF-8"):
        load_project(tmp_path / "bin.json")


@settings(max_examples=budget(300))
@given(json_values)
def test_garbage_never_crashes(value):
    try:
        p = load_project({"format": "layerlab", "version": 1, "graph": value})
    except ProjectFormatError:
        return
    assert isinstance(p, Project)


def test_bare_graph_accepted(example_project):
    assert as_graph(example_project["graph"]) == load_project(example_project).graph


# ------------------------------------------------------------------------------------------- issue 9 regressions

def test_devices_and_pipes_are_refused_without_reading(tmp_path):
    """Regression: /dev/zero reports size 0, passed the size cap and was read until memory ran out."""
    with pytest.raises(ProjectFormatError, match="not a regular file"):
        load_project("/dev/zero")
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    with pytest.raises(ProjectFormatError, match="not a regular file"):
        load_project(fifo)  # would block forever on open()


def test_duplicate_keys_are_refused():
    with pytest.raises(ProjectFormatError, match='repeats the key "id"'):
        load_project('{"graph": {"nodes": [{"id": "a", "id": "b", "type": "Input"}], "edges": []}}')


def test_huge_integer_literals_cost_nothing():
    """A 20,000-digit literal is read as inf (no bignum conversion, no ValueError from int())."""
    p = load_project('{"version": 1, "graph": {"nodes": [{"id": "x", "type": "Input", "params": {"shape": [%s]}}], '
                     '"edges": []}}' % ("9" * 20000))
    assert p.graph.nodes[0].params["shape"] == [float("inf")]
    with pytest.raises(ProjectFormatError, match="unsupported project version inf"):
        load_project('{"version": %s}' % ("1" * 5000))


def test_bom_and_edge_lengths():
    assert load_project(b'\xef\xbb\xbf{"graph": {"nodes": [], "edges": []}}').graph.nodes == []
    with pytest.raises(ProjectFormatError, match="target_port"):
        load_project({"graph": {"nodes": [], "edges": [{"source": "a", "target": "b", "target_port": "1" * 100}]}})
