"""End-to-end, issue 32's canvas steps: a tiny BERT (save_pretrained of a random config) in the server's model
library shows in the palette with its size before it is placed; a click places it through the import worker
(asking first over the starter network). The rest of the journey (head, LoRA and linear-probe runs on a CSV of
sentences, merged exports) is tests/cli/test_cli_hf_journey.py; what trains on the canvas is
tests/graph/test_lora.py (annotations) and frontend/src/training.test.js (badges)."""

from __future__ import annotations

import pytest
from e2e_helpers import open_app, wait_idle
from playwright.sync_api import expect

from tests.interchange.hf_models import make_folder

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_library_model_from_the_palette_onto_the_canvas(page, model_library):
    make_folder("distilbert", model_library / "tiny-distilbert")
    open_app(page)
    size = page.locator("[data-testid=palette-size-tiny-distilbert]")
    expect(size).to_contain_text("params", timeout=60_000)
    expect(size).to_contain_text("to train on")  # the training memory on this server's device, before placing
    page.locator("[data-testid=palette-library\\:tiny-distilbert]").click()
    node = page.locator("[data-testid=node-transformer_layer_0_attention_q_lin]")
    expect(node).to_be_visible(timeout=180_000)  # the import runs in the worker first
    wait_idle(page)
    # the starter network, untouched, is replaced without a question
    expect(page.locator(".st-key-ll_confirm_replace button")).to_have_count(0)
    expect(page.locator(".ll-node.is-frozen")).to_have_count(0)  # nothing frozen: no locks
    assert page.locator("[data-testid=stException]").count() == 0
