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


@pytest.mark.parametrize("dataset, training", [
    (None, {"dataset": "csv", "dataset_options": {"upload": UPLOAD, "target": "y"}}),
    ({"kind": "builtin", "name": "moons"}, {"dataset": "csv", "dataset_options": {"upload": UPLOAD}}),
    ({"kind": "builtin", "name": "moons", "options": {"noise": 0.1, "extra": [{"x": UPLOAD}]}}, {}),
    (None, {"dataset": "moons", "dataset_options": {"extra": {"x": UPLOAD}}}),
], ids=["training's csv", "training's csv beside a built-in", "nested in a built-in's options", "nested in training's"])
def test_a_link_carries_no_upload_id_of_the_sender_from_anywhere_in_the_project(dataset, training):
    """A link left out the project's ``dataset`` when it named a file, but an upload id in the training settings'
    ``dataset_options`` (a project made on the command line, or crafted) or nested inside a built-in's options
    travelled in the link: the sender's upload id (their file's SHA-256, the name of its cache entries) reached
    whoever opened it. The network still opens."""
    proj = builder.load_template("mlp")
    proj = proj.model_copy(update={"dataset": dataset, "training": {**(proj.training or {}), **training}})
    sent, left = for_link(proj)
    assert UPLOAD not in sent.to_json() and left, left
    assert UPLOAD not in decode_project(encode_project(sent)).to_json()
    assert [n.id for n in sent.graph.nodes] == [n.id for n in proj.graph.nodes]


def test_a_link_keeps_a_builtins_training_settings():
    proj = builder.load_template("mlp")
    proj = proj.model_copy(update={"training": {**(proj.training or {}), "dataset_options": {"noise": 0.3}}})
    sent, left = for_link(proj)
    assert sent.training["dataset"] == "moons" and sent.training["dataset_options"] == {"noise": 0.3} and not left


def test_a_class_starter_keeps_no_upload_id_of_the_teacher_in_its_training_settings(workspace, monkeypatch):
    """A starter is refused when its dataset is the teacher's file; an upload id in its training settings (a
    project made on the command line) was stored and opened by every student."""
    monkeypatch.setenv("LAYERLAB_TEACHERS", "user:t")
    proj = builder.load_template("mlp")
    proj = proj.model_copy(update={"training": {**(proj.training or {}), "dataset": "csv",
                                                "dataset_options": {"upload": UPLOAD, "target": "y"}}})
    cls = classes.create_class(workspace, "user:t", "ML", proj)
    assert UPLOAD not in str(cls["starter"]) and [n["id"] for n in cls["starter"]["graph"]["nodes"]] == \
        [n.id for n in proj.graph.nodes]
