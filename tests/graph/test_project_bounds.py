"""A project's JSON (a file, a link, the canvas's graph) is counted before it is parsed or validated: the values it
holds (``MAX_JSON_ITEMS``) and how deep it nests (``MAX_JSON_DEPTH``), so the server grows by about what an honest
project of that size takes, never by 470 MB for 20 MiB of ``{},``."""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import builder.graph.project as project
from builder import ProjectFormatError, load_project
from builder.graph.share import decode_project, encode_project

ROOT = Path(__file__).resolve().parents[2]


def _measuring(body: str) -> str:
    """A program printing the MiB its fresh process's peak (VmHWM) grew while it ran ``body`` (``raw``: the file's
    bytes, already read)."""
    code = textwrap.dedent("""
        import json, re, sys
        import numpy
        from builder.graph.project import load_project
        from builder.errors import ProjectFormatError
        raw = open(sys.argv[1], "rb").read()
        def peak():
            return int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1))
        before = peak()
    """) + textwrap.dedent(body) + "\nprint(json.dumps({'grew_mib': (peak() - before) / 1024}))\n"
    return code


def _grew_mib(code: str, path: Path) -> float:
    out = subprocess.run([sys.executable, "-c", code, str(path)], cwd=ROOT, capture_output=True, text=True,
                         timeout=300, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.splitlines()[-1])["grew_mib"]


REFUSED = """
    try:
        load_project(raw)
    except ProjectFormatError as e:
        assert "JSON values" in str(e), e
    else:
        raise SystemExit("accepted")
"""


@pytest.mark.parametrize("item", ["{}", "[]", '{"a":1}', "1.5"])
def test_20_mib_of_small_values_is_refused_before_it_is_parsed(tmp_path, item):
    """20 MiB of ``{},`` under a field grew the server by 468 MB (7 million dicts) before pydantic refused the
    field; ``{"a":1},`` by 483 MB. Now the values are counted over the text first."""
    path = tmp_path / "p.json"
    n = (project.MAX_FILE_BYTES - 100) // (len(item) + 1)
    path.write_text('{"graph":{"nodes":[],"edges":[]},"blocks":[' + ",".join([item] * n) + "]}")
    assert _grew_mib(_measuring(REFUSED), path) < 60  # the text's bytes once more and numpy: ~16-30 MiB


def test_an_accepted_project_at_the_limit_grows_the_server_in_proportion(tmp_path):
    """At MAX_JSON_ITEMS the server holds about what 5,000 nodes and 20,000 edges take (49 MiB measured)."""
    path = tmp_path / "p.json"
    n = (project.MAX_JSON_ITEMS - 10) // 2
    path.write_text('{"graph":{"nodes":[],"edges":[]},"training":{"x":[' + ",".join(['{"k":"abcdefgh"}'] * n) + "]}}")
    grew = _grew_mib(_measuring(f"assert len(load_project(raw).training['x']) == {n}"), path)
    assert grew < 160  # ~109 MiB; the same 8 MiB file twice as long was accepted at ~220


def _big_honest_project() -> dict:
    nodes = [{"id": f"node_{i}", "type": "Conv2d", "label": f"conv layer {i}",
              "params": {"in_channels": 64, "out_channels": 64, "kernel_size": [3, 3], "stride": [1, 1],
                         "padding": [1, 1], "bias": True, "padding_mode": "zeros"},
              "position": {"x": 100.5 * i, "y": 200.25}} for i in range(project.MAX_NODES)]
    edges = [{"source": f"node_{i % 5000}", "target": f"node_{(i + 1) % 5000}", "source_port": "out",
              "target_port": "in", "id": f"e{i}"} for i in range(project.MAX_EDGES)]
    return {"name": "big", "graph": {"nodes": nodes, "edges": edges}}


def test_the_largest_graph_a_project_may_hold_still_opens():
    p = load_project(json.dumps(_big_honest_project(), indent=2))
    assert len(p.graph.nodes) == project.MAX_NODES and len(p.graph.edges) == project.MAX_EDGES


def test_commas_and_brackets_inside_strings_are_not_counted():
    """An Op node's call is JSON text: its commas and brackets pass the quick bound, not the count."""
    call = json.dumps({"args": [[1, 64]] * 200, "note": 'a "quoted" \\ text, [with] {brackets}'})
    nodes = [{"id": f"op_{i}", "type": "Op", "params": {"op": "aten.relu", "call": call}} for i in range(1000)]
    text = json.dumps({"graph": {"nodes": nodes, "edges": []}})
    assert text.count(",") + text.count("[") > project.MAX_JSON_ITEMS  # the quick bound alone would refuse it
    assert len(load_project(text).graph.nodes) == 1000


def test_the_structural_count_agrees_with_a_parser_across_chunks(monkeypatch):
    monkeypatch.setattr(project, "_SCAN_BYTES", 7)  # strings and escapes split across chunks
    rnd = random.Random(0)
    letters = ["a", ",", "{", "[", '"', "\\", "é", "😀", "]", "}", ":"]

    def word() -> str:
        return "".join(rnd.choice(letters) for _ in range(rnd.randint(0, 6)))

    def value(depth: int = 0):
        r = rnd.random()
        if depth > 4 or r < 0.4:
            return word()
        if r < 0.6:
            return rnd.randint(-5, 5)
        if r < 0.8:
            return [value(depth + 1) for _ in range(rnd.randint(0, 4))]
        return {word(): value(depth + 1) for _ in range(rnd.randint(0, 4))}

    string = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
    for _ in range(2000):
        text = json.dumps(value(), ensure_ascii=rnd.random() < 0.5)
        bare = string.sub("", text)
        assert project._structural_items(text) == bare.count(",") + bare.count("{") + bare.count("["), text


@pytest.mark.parametrize("depth", [200, 900])
def test_deep_nesting_is_refused_before_it_breaks_saving(depth):
    """A parameter nested 900 deep loaded, then saving the project raised "Maximum serialization depth exceeded"
    and a deep copy a RecursionError (the sidebar's Save builds the file on every page)."""
    text = ('{"graph":{"nodes":[{"id":"x","type":"Input","params":{"shape":[4],"junk":' + "[" * depth
            + "]" * depth + "}}],\"edges\":[]}}")
    with pytest.raises(ProjectFormatError, match=f"at most {project.MAX_JSON_DEPTH} deep"):
        load_project(text)
    with pytest.raises(ProjectFormatError, match="deep"):
        load_project(json.loads(text))  # a dict handed over is checked the same way


def test_nesting_a_project_uses_loads_and_saves():
    nested: list = []
    for _ in range(30):
        nested = [nested]
    p = load_project({"graph": {"nodes": [{"id": "x", "type": "Input", "params": {"shape": [4], "n": nested}}],
                                "edges": []}})
    assert load_project(p.to_json()) == p


def test_a_link_is_counted_like_a_file():
    p = load_project({"graph": {"nodes": [{"id": "x", "type": "Input", "params": {"shape": [4]}}], "edges": []},
                      "blocks": [{"n": [[[]]]}]})
    assert decode_project(encode_project(p)).blocks == p.blocks
    bomb = load_project({"graph": {"nodes": [], "edges": []}})
    bomb = bomb.model_copy(update={"blocks": [{}] * (project.MAX_JSON_ITEMS + 1)})
    with pytest.raises(ProjectFormatError, match="JSON values"):
        decode_project(encode_project(bomb, limit=None))


def test_a_project_file_holds_at_most_max_blocks_small_blocks():
    block = {"name": "b", "nodes": [{"id": "r", "type": "ReLU"}], "edges": []}
    ok = {"graph": {"nodes": [], "edges": []}, "blocks": [block] * project.MAX_BLOCKS}
    assert len(load_project(ok).blocks) == project.MAX_BLOCKS
    with pytest.raises(ProjectFormatError, match=f"at most {project.MAX_BLOCKS} items"):
        load_project({**ok, "blocks": [block] * (project.MAX_BLOCKS + 1)})
    wide = {"name": "w", "nodes": [{"id": f"r{i}", "type": "ReLU"} for i in range(project.MAX_BLOCK_NODES + 1)]}
    with pytest.raises(ProjectFormatError, match=f"at most {project.MAX_BLOCK_NODES} nodes"):
        load_project({**ok, "blocks": [wide]})


def test_a_densely_wired_part_is_grouped_only_when_its_project_reads_it_back():
    """block_of counted nodes only: grouping 82 layers with 901 connections between them (each Concat fed by every
    layer before it; validate finds nothing wrong) made a block the project's own check refused, so its file, its
    runs (Run.project) and its jobs (the queue's load_project) could no longer be read. Every block block_of makes
    reads back; one over the limit is refused before anything is copied."""
    from builder.graph.edit import block_of, with_block
    from builder.graph.project import Graph, Project, parse_json, parse_project

    def dense(layers: int) -> Graph:
        nodes, edges, prev = [{"id": "in", "type": "Input", "params": {"shape": [4]}}], [], ["in"]
        for i in range(layers):
            nodes.append({"id": f"c{i}", "type": "Concat", "params": {}})
            edges += [{"source": p, "target": f"c{i}"} for p in prev]
            nodes.append({"id": f"l{i}", "type": "Linear", "params": {"out_features": 4}})
            edges.append({"source": f"c{i}", "target": f"l{i}"})
            prev.append(f"l{i}")
        return Graph(nodes=nodes, edges=edges)

    for layers in (20, 26, 41):
        g = dense(layers)
        inner = len(g.edges)
        try:
            b = block_of(g, [n.id for n in g.nodes], "dense")
        except ProjectFormatError as e:
            assert inner > project.MAX_BLOCK_EDGES and "connections" in str(e)
            continue
        p = Project(name="x", graph=g)
        p = p.model_copy(update={"blocks": with_block(p.blocks, b)})
        assert len(parse_project(parse_json(p.to_json())).blocks) == 1, inner
    assert len(dense(41).edges) > project.MAX_BLOCK_EDGES  # the case that broke is among them
