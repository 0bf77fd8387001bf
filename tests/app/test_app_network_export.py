"""AppTest: Runs › Download: one network of a multi-network run (the GAN's generator) exported as ONNX."""

from __future__ import annotations

import builder
from builder.data.access import SYSTEM
from builder.interchange.onnx_export import ort_session
from builder.runs.pipeline import run_training
from builder.runs.store import RunStore
from tests.helpers import open_app


def _gan_runs_one_crashing(workspace, monkeypatch) -> tuple[RunStore, str, str]:
    """Two trained GAN runs (store, ok, crash): the crash hook (tests only) kills the worker that builds the
    second one's networks."""
    from builder.process.sandbox import TEST_CRASH_ENV

    store = RunStore(workspace, actor=SYSTEM)
    gan = builder.load_template("gan")
    crash = run_training(gan.model_copy(update={"name": "CRASHES gan"}), "digits", {"epochs": 1, "seed": 0},
                         store).run_id
    ok = run_training(gan, "digits", {"epochs": 1, "seed": 0}, store).run_id
    monkeypatch.setenv(TEST_CRASH_ENV, "CRASHES")
    return store, ok, crash


def _click_for_generator(at, rid: str, button: str) -> None:
    """Runs: inspect run ``rid``, pick its generator in Download, click the button keyed ``button`` + ``rid``."""
    at.multiselect(key="ll_runs_pick").set_value([rid]).run()
    at.selectbox(key=f"ll_net_{rid}").set_value("generator").run()
    at.button(key=f"{button}{rid}").click().run()


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


def test_a_network_that_crashes_torch_is_one_error_line_and_the_next_export_works(workspace, monkeypatch):
    """Runs › Download › network: Export ONNX builds the network with the run's weights in a worker first; a model
    that crashes torch there (the crash hook, tests only) is one error line naming the signal and what did not
    happen (it was an empty weights file handed on to the exporter), and the page then exports another run."""
    _, ok, crash = _gan_runs_one_crashing(workspace, monkeypatch)
    at = open_app("app_pages/runs.py", owner="local", timeout=300)
    _click_for_generator(at, crash, "ll_onnx_")
    assert not at.exception, [e.value for e in at.exception]
    errors = [e.value for e in at.error if "SIGSEGV" in e.value]
    assert len(errors) == 1 and "\n" not in errors[0], [e.value for e in at.error]
    assert "died from SIGSEGV" in errors[0] and "The network's weights were not taken from the run" in errors[0]
    assert "ll_run_onnx" not in at.session_state
    _click_for_generator(at, ok, "ll_onnx_")
    assert not at.exception, [e.value for e in at.exception]
    got = at.session_state["ll_run_onnx"]
    assert got["run"] == ok and got["network"] == "generator" and got["diff"] < 1e-5


def test_one_networks_weights_download_is_built_in_a_worker_and_a_crash_is_one_error_not_an_empty_file(
        workspace, monkeypatch):
    """Runs › Download › network › Weights: the button builds the network's safetensors from the run's weights in
    a worker and offers them for download (the generator's own tensors, nothing of the discriminator); a worker
    that crashes is one error line and no download (it was an empty file, the error swallowed)."""
    import torch
    from safetensors.torch import load

    store, ok, crash = _gan_runs_one_crashing(workspace, monkeypatch)
    at = open_app("app_pages/runs.py", owner="local", timeout=300)
    _click_for_generator(at, ok, "ll_w_")
    assert not at.exception, [e.value for e in at.exception]
    got = at.session_state["ll_run_netw"]
    assert (got["run"], got["network"]) == (ok, "generator")
    tensors, whole = load(got["data"]), load(store.weights_path(ok).read_bytes())
    assert sorted(tensors) == sorted(k for k in whole if k.startswith("g_"))  # the generator's, equal to the run's
    assert all(torch.equal(v, whole[k]) for k, v in tensors.items())
    assert not [e.value for e in at.error]
    _click_for_generator(at, crash, "ll_w_")
    assert not at.exception, [e.value for e in at.exception]
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "died from SIGSEGV" in errors[0] and "\n" not in errors[0], errors
    assert "data" not in at.session_state["ll_run_netw"]
