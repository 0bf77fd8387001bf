"""AppTest: the Data page previews datasets and fixes graph/data mismatches."""

from __future__ import annotations

import pytest

from tests.helpers import button, open_app


@pytest.fixture
def at(workspace):
    return open_app("app_pages/data.py", timeout=90)


def test_digits_preview_and_fit(at):
    assert at.title[0].value == "Data"
    labels = {m.label: m.value for m in at.metric}
    assert labels["Task"] == "multiclass"
    assert labels["Input shape"] == "1×8×8"
    assert any("fit this dataset" in s.value for s in at.success)


def test_mismatch_is_shown_and_fixed(at):
    at.selectbox(key="ll_ds_name").set_value("iris").run()
    assert not at.exception
    assert at.session_state["ll_data"]["name"] == "iris"
    assert any("shape" in w.value.lower() for w in at.warning)
    button(at, "Fix the graph for this dataset").click().run()
    g = at.session_state["ll_project"].graph
    assert next(n for n in g.nodes if n.type == "Input").params["shape"] == [4]
    assert any("fit this dataset" in s.value for s in at.success)


def test_csv_dataset_from_a_saved_upload(at, tmp_path):
    csv = tmp_path / "flowers.csv"
    csv.write_text("a,b,label\n" + "".join(f"{i},{i % 3},{'x' if i % 2 else 'y'}\n" for i in range(60)))
    at.session_state["ll_data"] = {"kind": "csv", "name": "flowers.csv", "file": str(csv), "target": "label",
                                   "task": ""}
    at.segmented_control(key="ll_ds_kind").set_value("csv").run()
    assert not at.exception
    labels = {m.label: m.value for m in at.metric}
    assert labels["Task"] == "binary"


def test_bad_csv_shows_a_clear_error(at, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("")
    at.session_state["ll_data"] = {"kind": "csv", "name": "bad.csv", "file": str(bad), "target": "y", "task": ""}
    at.segmented_control(key="ll_ds_kind").set_value("csv").run()
    assert not at.exception
    assert any("empty" in e.value for e in at.error)


def test_image_zip_dataset(at, tmp_path):
    import io
    import zipfile

    from PIL import Image

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for cls, shade in (("dark", 20), ("light", 230)):
            for i in range(12):
                im = Image.new("L", (10, 10), shade + (i % 5))
                b = io.BytesIO()
                im.save(b, format="PNG")
                z.writestr(f"{cls}/{i}.png", b.getvalue())
    path = tmp_path / "shades.zip"
    path.write_bytes(buf.getvalue())
    at.session_state["ll_data"] = {"kind": "images", "name": "shades.zip", "file": str(path), "size": 8}
    at.segmented_control(key="ll_ds_kind").set_value("images").run()
    assert not at.exception, [e.value for e in at.exception]
    labels = {m.label: m.value for m in at.metric}
    assert labels["Classes"] == "2" or labels["Classes"] == 2
