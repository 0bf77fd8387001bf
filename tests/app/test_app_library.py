"""AppTest: Build › the palette's model library: a model of the admin's library shown with its size and placed on the
canvas by its name when dropped (built by transformers in the worker), its weights kept as the person's run; the Server page lists the library."""

from __future__ import annotations

import pytest

from builder.data.access import SYSTEM
from builder.interchange.hf_library import LIBRARY_ENV
from builder.runs.store import RunStore
from tests.helpers import open_app
from tests.interchange.hf_models import make_folder


@pytest.fixture
def library(tmp_path, monkeypatch):
    root = tmp_path / "library"
    make_folder("distilbert", root / "tiny-distilbert")
    monkeypatch.setenv(LIBRARY_ENV, str(root))
    return root


def test_library_model_goes_on_the_canvas_with_its_weights(workspace, library):
    at = open_app(None, owner="local", timeout=300)
    assert not at.exception, [e.value for e in at.exception]
    pick = at.selectbox(key="ll_library_pick")
    assert pick.options and "tiny-distilbert · distilbert" in pick.options[0]
    # the palette lists it with its size (what the canvas shows before placing) ...
    entry = next(e for e in at.session_state["ll_library_palette"][1] if e["label"] == "tiny-distilbert")
    assert entry["category"] == "Pretrained" and " params · " in entry["library"]["size"]
    # ... and a drop sends its name: the page imports it in the worker and places it
    at.session_state["ll_canvas"] = {"value": {"seq": 1, "events": [
        {"id": 1, "type": "library", "name": "tiny-distilbert", "nonce": 1}]}}
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert "ll_pending" not in at.session_state  # the untouched starter network on the canvas: replaced at once
    assert not at.exception, [e.value for e in at.exception]
    assert not at.session_state["ll_canvas_error"]
    proj = at.session_state["ll_project"]
    ids = {n.id for n in proj.graph.nodes}
    assert "transformer_layer_0_attention_q_lin" in ids  # its module path (transformer.layer.0.attention.q_lin)
    run = RunStore(workspace, actor=SYSTEM).get(proj.training["init_from"])
    assert run["status"] == "imported" and run["owner"] == "local"
    # fine-tuning mode LoRA set on the Train page, no LoRA node drawn: the count includes the adapters the run
    # adds (it counted the head alone, as if only the head trained)
    at.session_state["ll_project"] = proj.model_copy(update={"training": {**proj.training, "finetune": "lora"}})
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("(LoRA adapters the run adds: " in c.value for c in at.caption), [c.value for c in at.caption]
    # LoRA on its attention projections: the layer table says what trains and what stays frozen
    from builder.graph.lora import add_lora

    at.session_state["ll_project"] = proj.model_copy(update={"graph": add_lora(proj.graph, "attention", rank=2)})
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("frozen (LoRA adapters: " in c.value for c in at.caption), [c.value for c in at.caption]
    assert not any("the run adds" in c.value for c in at.caption)  # drawn: none added
