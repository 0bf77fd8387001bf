"""What of a project's data goes to another person (a link, a class's starter): built-in data only, never the
sender's upload or a path (builder.data.sources.travels / for_link)."""

from __future__ import annotations

import pytest

import builder
from builder.data.sources import for_link, travels
from builder.graph.share import decode_project, encode_project
from builder.runs import classes
from builder.runs.classes import ClassError

UPLOAD = "upload:" + "ab" * 32
CSV_UPLOAD = {"kind": "builtin", "name": "csv", "options": {"upload": UPLOAD, "target": "y"}}
IMAGES_UPLOAD = {"kind": "builtin", "name": "image_folder", "options": {"upload": UPLOAD}}
PATH = {"kind": "builtin", "name": "csv", "options": {"path": "/etc/passwd", "target": "y"}}


@pytest.mark.parametrize("spec", [CSV_UPLOAD, IMAGES_UPLOAD, PATH, {"kind": "csv", "name": "x.csv"}, None, "moons"])
def test_a_users_file_does_not_travel(spec):
    assert not travels(spec)


def test_a_builtin_travels_with_its_options():
    assert travels({"kind": "builtin", "name": "moons", "options": {"noise": 0.2}})


@pytest.mark.parametrize("spec", [CSV_UPLOAD, IMAGES_UPLOAD])
def test_a_link_leaves_the_senders_upload_out_and_opens(spec):
    proj = builder.load_template("mlp").model_copy(update={"dataset": spec})
    sent, left = for_link(proj)
    assert sent.dataset is None and any("dataset" in x for x in left)
    got = decode_project(encode_project(sent))  # the visitor's side: it opens (an upload id was refused there)
    assert got.dataset is None and [n.id for n in got.graph.nodes] == [n.id for n in proj.graph.nodes]


def test_a_class_starter_with_the_teachers_upload_is_refused(workspace, monkeypatch):
    monkeypatch.setenv("LAYERLAB_TEACHERS", "user:t")
    proj = builder.load_template("mlp").model_copy(update={"dataset": CSV_UPLOAD})
    with pytest.raises(ClassError, match="built-in dataset"):
        classes.create_class(workspace, "user:t", "ML", proj)
