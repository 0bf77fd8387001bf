"""Train › training doctor under AppTest: findings with Apply (undoable), curve anomalies linking to their nodes."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import builder
from builder.data.access import SYSTEM
from builder.runs.pipeline import run_training
from builder.runs.store import RunStore
from builder.training.health import HealthLog, write_health

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::UserWarning"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]


def _sick_run(workspace: Path) -> str:
    """A finished run of the starting CNN whose health log shows relu1 dead and whose loss stayed flat."""
    store = RunStore(workspace, actor=SYSTEM)
    res = run_training(builder.load_template("cnn"), "digits", {"epochs": 1, "seed": 0}, store=store)
    loss = store.metrics(res.run_id, "epoch")[-1]["train_loss"]
    store.log_metrics(res.run_id, [{"type": "epoch", "epoch": e, "train_loss": loss} for e in range(2, 6)])
    nodes = [{"id": "relu1", "type": "ReLU", "kind": "relu"}]
    samples = [{"step": 10 * i, "epoch": 1, "nodes": {"relu1": {"dead": 0.97}}} for i in range(4)]
    write_health(HealthLog(10, nodes, samples), store.folder(res.run_id).path / "health.json")
    return res.run_id


def _train_page() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.session_state["ll_owner"] = "local"  # the owner of runs recorded by run_training
    at.run()
    at.switch_page("app_pages/train.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _texts(at: AppTest) -> str:
    return "\n".join(str(x.value) for x in [*at.markdown, *at.warning, *at.caption]).replace("\\", "")


def test_doctor_lists_findings_with_apply_and_links_anomalies_to_nodes(job_workspace):
    workspace = job_workspace  # tests/conftest.py: one torch thread per job, no warm launcher
    _sick_run(workspace)
    at = _train_page()
    text = _texts(at)
    assert "Training doctor" in text and "dead ReLU" in text and "loss plateau" in text
    link = next(b for b in at.button if b.key == "ll_doc_node_0_relu1")  # the plateau names relu1
    link.click().run()
    assert at.session_state["ll_selected"] == "relu1"  # the Build page opens with relu1 selected
    assert not at.exception, [e.value for e in at.exception]

    at = _train_page()
    apply = next(b for b in at.button if b.key == "ll_doc_fix_0")
    apply.click().run()
    assert not at.exception, [e.value for e in at.exception]
    types = {n.id: n.type for n in at.session_state["ll_project"].graph.nodes}
    assert types["relu1"] == "LeakyReLU"  # the dead ReLU's fix
    shown = "\n".join(str(x.value) for x in at.success).replace("\\", "")
    assert "relu1: ReLU → LeakyReLU" in shown  # the Train page says what changed on the canvas ...
    undo = next(b for b in at.button if b.key == "ll_doc_undo")  # ... with Undo beside it
    undo.click().run()
    assert not at.exception, [e.value for e in at.exception]
    types = {n.id: n.type for n in at.session_state["ll_project"].graph.nodes}
    assert types["relu1"] == "ReLU"
    assert not any("LeakyReLU" in str(x.value) for x in at.success)  # the notice went with the fix
    next(b for b in at.button if b.key == "ll_doc_fix_0").click().run()
    next(b for b in at.button if b.key == "ll_undo_replace").click().run()  # the sidebar's Undo replace too
    types = {n.id: n.type for n in at.session_state["ll_project"].graph.nodes}
    assert types["relu1"] == "ReLU"


def test_a_gans_steady_summed_loss_is_not_called_a_plateau(job_workspace):
    """Issue 29: a GAN drawing good digits after 270 epochs was told "loss plateau: ... the model is not learning"
    (its generator and discriminator losses, summed, stay level as they learn against each other). The doctor
    reads no plateau, divergence or overfitting into an adversarial run's summed loss (one network's flat loss is
    still a plateau: the test above)."""
    from tests.helpers import open_app

    store = RunStore(job_workspace, actor=SYSTEM)
    gan = builder.load_template("gan")
    rid = store.create_run(gan, "digits", {}, {"epochs": 6}, owner="local")
    store.log_metrics(rid, [{"type": "epoch", "epoch": e, "train_loss": 2.13, "val_loss": 2.1 + 0.3 * e}
                            for e in range(1, 7)])
    store.finish(rid, "finished")
    at = open_app("app_pages/train.py", owner="local", template="gan")
    text = _texts(at)
    assert "GAN (MLP, digits)" in text and "loss plateau" not in text and "overfitting" not in text, text


def test_a_healthy_run_says_what_was_looked_at_in_words_a_newcomer_reads(job_workspace):
    """No finding: the box said "no problem found in 8 health samples", words of the code (a newcomer's review
    asked what a health sample is). It says what was looked at, and how often."""
    store = RunStore(job_workspace, actor=SYSTEM)
    res = run_training(builder.load_template("cnn"), "digits", {"epochs": 1, "seed": 0}, store=store)
    nodes = [{"id": "relu1", "type": "ReLU", "kind": "relu"}]
    samples = [{"step": 10 * i, "epoch": 1, "nodes": {"relu1": {"dead": 0.0}}} for i in range(3)]
    write_health(HealthLog(10, nodes, samples), store.folder(res.run_id).path / "health.json")
    text = _texts(_train_page())
    assert "Training doctor" in text and "no problem found" in text, text
    assert "activations and gradients were looked at 3 times during training" in text and "health samples" not in text
