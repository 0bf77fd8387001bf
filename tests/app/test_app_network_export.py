"""AppTest: Runs › Download: one network of a multi-network run (the GAN's generator) exported as ONNX."""

from __future__ import annotations

import builder
from builder.access import SYSTEM
from builder.interchange.onnx_export import ort_session
from builder.runs.store import RunStore
from builder.training.pipeline import run_training
from tests.helpers import open_app


def test_runs_page_exports_the_gans_generator_alone(workspace):
    rid = run_training(builder.load_template("gan"), "digits", {"epochs": 1, "seed": 0}, RunStore(workspace, actor=SYSTEM)).run_id
    at = open_app("app_pages/runs.py", owner="local", timeout=300)
    pick = at.selectbox(key=f"ll_net_{rid}")
    assert pick.options == ["whole run", "network: generator", "network: discriminator"]
    pick.set_value("generator").run()
    at.button(key=f"ll_onnx_{rid}").click().run()
    assert not at.exception, [e.value for e in at.exception]
    got = at.session_state["ll_run_onnx"]
    assert got["run"] == rid and got["network"] == "generator" and got["diff"] < 1e-5
    sess = ort_session(got["data"])
    assert [i.name for i in sess.get_inputs()] == ["z"] and sess.get_inputs()[0].shape[1:] == [32]
    assert [o.name for o in sess.get_outputs()] == ["fake"]
