"""A project that loads also saves: a description (or a training note) holding a lone surrogate (the JSON escape
``"\\udee5"``, which the loader accepts there) made ``Project.to_json`` raise pydantic's 'surrogates not allowed'
(the graph fuzzer's project-file round trip, seed 91002, graph 785). Such a project is written with ASCII escapes
and loads back equal."""

from __future__ import annotations

import json

from builder import load_project

TEXT = json.dumps({"format": "layerlab", "version": 1, "description": "\udee5a 日本", "training": {"note": "\ud800"},
                   "graph": {"nodes": [{"id": "x", "type": "Input", "params": {"shape": [3]}},
                                       {"id": "l", "type": "Linear", "params": {"out_features": 2}}],
                             "edges": [{"source": "x", "target": "l"}]}})


def test_a_project_with_a_lone_surrogate_saves_and_loads_back_equal(tmp_path):
    project = load_project(TEXT)
    text = project.to_json()
    again = load_project(text)
    assert again.to_json() == text
    assert again.description == "\udee5a 日本" and again.training == {"note": "\ud800"}
    project.save(tmp_path / "p.json")
    assert load_project(tmp_path / "p.json").description == project.description


def test_an_ordinary_project_is_written_as_before():
    project = load_project(TEXT.replace("\\udee5", "").replace("\\ud800", ""))
    assert project.to_json() == project.model_dump_json(indent=2, exclude_none=True)
    assert "日本" in project.to_json()
