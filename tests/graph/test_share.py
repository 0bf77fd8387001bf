"""Shareable links: round trip node by node, size limit, hostile links refused with worded errors."""

import base64
import json
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import builder
from builder.errors import ProjectFormatError
from builder.graph.project import Edge, Graph, Node, Position, Project
from builder.graph.share import (
    MAX_JSON_BYTES,
    MAX_LINK_CHARS,
    LinkTooLongError,
    decode_project,
    encode_project,
    share_url,
)
from tests.fuzz_budget import budget

_scalars = (st.none() | st.booleans() | st.integers(-10**12, 10**12)
            | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8))
_values = st.recursive(_scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
                       max_leaves=8)
_ids = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12)


@st.composite
def projects(draw) -> Project:
    ids = draw(st.lists(_ids, min_size=1, max_size=8, unique=True))
    nodes = [Node(id=i, type=draw(st.sampled_from(["Input", "Linear", "ReLU", "Conv2d", "Add"])),
                  params=draw(st.dictionaries(st.text(min_size=1, max_size=8), _values, max_size=3)),
                  label=draw(st.none() | st.text(max_size=10)),
                  position=draw(st.none() | st.builds(Position, x=st.floats(-1e4, 1e4), y=st.floats(-1e4, 1e4))))
             for i in ids]
    pairs = draw(st.lists(st.tuples(st.sampled_from(ids), st.sampled_from(ids)), max_size=8))
    edges = [Edge(source=a, target=b) for a, b in pairs]
    return Project(name=draw(st.text(max_size=20)), graph=Graph(nodes=nodes, edges=edges),
                   training=draw(st.none() | st.dictionaries(st.sampled_from(["epochs", "lr", "optimizer", "seed"]), _values, max_size=3)),
                   dataset=draw(st.none() | st.just({"kind": "builtin", "name": "digits", "options": {}})))


@settings(max_examples=budget(40), deadline=None)
@given(projects())
def test_round_trip_node_by_node(p):
    back = decode_project(encode_project(p, limit=None))
    assert len(back.graph.nodes) == len(p.graph.nodes)
    for a, b in zip(p.graph.nodes, back.graph.nodes, strict=True):
        assert a.model_dump() == b.model_dump()
    assert [e.model_dump() for e in back.graph.edges] == [e.model_dump() for e in p.graph.edges]
    assert back == p


@pytest.mark.parametrize("name", [t["name"] for t in builder.list_templates()])
def test_every_template_fits_in_a_link(name):
    p = builder.load_template(name)
    url = share_url("http://host:8501/build", p)
    assert decode_project(url.split("?p=", 1)[1]) == p


def test_too_big_for_a_link_says_use_the_file():
    nodes = [Node(id=f"n{i}", type="Linear", params={"out_features": i * 7919 % 1000}, label=f"layer {i} {i*i}")
             for i in range(2000)]
    with pytest.raises(LinkTooLongError, match="download the project file") as e:
        encode_project(Project(graph=Graph(nodes=nodes)))
    assert e.value.chars > MAX_LINK_CHARS


def _raw(data: bytes) -> str:
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return "1." + base64.urlsafe_b64encode(c.compress(data) + c.flush()).decode().rstrip("=")


@pytest.mark.parametrize("value, words", [
    ("1." + "A" * (MAX_LINK_CHARS + 1), "at most"),
    ("2.abcd", "version"),
    ("no-dot-here", "version"),
    ("1.@@@@", "base64"),
    ("1.aGVsbG8gd29ybGQ", "decompress"),
])
def test_hostile_links_are_refused(value, words):
    with pytest.raises(ProjectFormatError, match=words):
        decode_project(value)


def test_zip_bomb_stops_at_the_limit():
    bomb = _raw(b'{"name":"' + b"a" * (MAX_JSON_BYTES * 2) + b'"}')
    assert len(bomb) < MAX_LINK_CHARS  # small link, huge inflation
    with pytest.raises(ProjectFormatError, match="MiB"):
        decode_project(bomb)


def test_cut_link_and_invalid_project_are_refused():
    good = encode_project(builder.load_template("mlp"))
    with pytest.raises(ProjectFormatError):
        decode_project(good[: len(good) // 2])
    with pytest.raises(ProjectFormatError, match="invalid project"):
        decode_project(_raw(json.dumps({"graph": {"nodes": [{"id": "x"}], "edges": []}}).encode()))
    with pytest.raises(ProjectFormatError, match="repeats the key"):
        decode_project(_raw(b'{"name":"a","name":"b"}'))
    with pytest.raises(ProjectFormatError, match="at most 5000 nodes"):
        decode_project(_raw(json.dumps({"graph": {"nodes": [{"id": "x", "type": "ReLU"}] * 5001}}).encode()))


def test_links_carry_no_weights_or_server_files():
    p = builder.load_template("mlp").model_copy(update={
        "training": {"epochs": 3, "init_from": "run-x", "teacher": "run-y"},
        "dataset": {"kind": "csv", "name": "t.csv", "file": "/srv/owners/a/uploads/t.csv", "target": "y"}})
    back = decode_project(encode_project(p))
    assert back.training == {"epochs": 3} and back.dataset is None
    hostile = _raw(p.to_json(indent=None).encode())  # a hand-made link that carries them anyway
    assert decode_project(hostile).training == {"epochs": 3}
    assert decode_project(hostile).dataset is None
