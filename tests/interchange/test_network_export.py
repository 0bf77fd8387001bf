"""One network of a multi-network run exported on its own (builder/interchange/network_export.py, ``layerlab export
--run RUN --network NAME``): the GAN's generator as .py and ONNX reproduces the run's own samples; wrong names
are refused naming the networks; every network of every template stands on its own; the model card states the
objective."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from builder import cli, compile_graph, example_inputs, infer_shapes, load_template
from builder.data.access import SYSTEM
from builder.graph.templates import OBJECTIVE_TEMPLATES
from builder.interchange.network_export import (
    NetworkError,
    network_names,
    network_project,
    network_state,
)
from builder.interchange.onnx_export import ort_session
from builder.runs.pipeline import run_training
from builder.runs.store import RunStore
from builder.training.multi import SAMPLE_COUNT, _mix
from builder.training.objectives import add_distillation, training_graph
from builder.training.run_folder import RunFolder

SEED = 5


@pytest.fixture(scope="module")
def gan_run(tmp_path_factory):
    """``(workspace, run id)``: the gan template trained one epoch on digits (about a second on one thread)."""
    ws = tmp_path_factory.mktemp("gan_ws")
    rid = run_training(load_template("gan"), "digits", {"epochs": 1, "seed": SEED}, RunStore(ws, actor=SYSTEM)).run_id
    return ws, rid


def _run_noise(store: RunStore, rid: str) -> torch.Tensor:
    """The fixed noise the trainer fed the generator for the run's sample grid (ObjectiveTrainer.samples)."""
    model = compile_graph(training_graph(store.get(rid)["project"]["graph"]))
    k = model.layerlab_inputs.index("z")
    return torch.randn((SAMPLE_COUNT, 32), generator=torch.Generator().manual_seed(_mix(SEED, 12345, 0, k)))


def _module(path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_exported_generator_reproduces_the_runs_samples_in_py_and_onnx(gan_run, tmp_path, capsys):
    ws, rid = gan_run
    store = RunStore(ws, actor=SYSTEM)
    assert cli.main(["export", "--run", rid, "--network", "generator", "-o", str(tmp_path / "gen.py"),
                     "--workspace", str(ws)]) == 0
    assert "inputs z, outputs fake" in capsys.readouterr().out
    gen = _module(tmp_path / "gen.py").Model().eval()
    from safetensors.torch import load_file

    gen.load_state_dict(load_file(str(tmp_path / "gen.safetensors")))  # as the file's docstring says
    z = _run_noise(store, rid)
    with torch.no_grad():
        got = gen(z)
    with np.load(RunFolder(store.run_dir(rid)).samples) as kept:
        grid = kept["epoch_1"].reshape(SAMPLE_COUNT, -1).astype(np.float32)
    assert got.shape == (SAMPLE_COUNT, 64)
    assert np.abs(got.numpy() - grid).max() < 2e-3  # the grid is kept as float16
    assert grid.std() > 0.01  # not a constant image

    onnx_path = tmp_path / "gen.onnx"
    assert cli.main(["export", "--run", rid, "--network", "generator", "-o", str(onnx_path),
                     "--workspace", str(ws)]) == 0
    sess = ort_session(onnx_path.read_bytes())
    assert [i.name for i in sess.get_inputs()] == ["z"] and [o.name for o in sess.get_outputs()] == ["fake"]
    (ort,) = sess.run(None, {"z": z[:7].numpy()})  # any batch size: the export traced 2
    assert np.abs(ort - got[:7].numpy()).max() < 1e-5


def test_a_wrong_network_name_is_refused_naming_the_networks(gan_run, tmp_path, capsys):
    ws, rid = gan_run
    rc = cli.main(["export", "--run", rid, "--network", "generatr", "-o", str(tmp_path / "g.py"),
                   "--workspace", str(ws)])
    err = capsys.readouterr().err
    assert rc != 0 and "generator, discriminator" in err and "'generatr'" in err
    assert not (tmp_path / "g.py").exists()
    with pytest.raises(NetworkError, match="without one"):
        network_project(load_template("mlp"), "model")  # no drawn objective: the whole graph is the model


def test_model_card_states_the_objective(gan_run):
    ws, rid = gan_run
    text = (RunStore(ws, actor=SYSTEM).run_dir(rid) / "model_card.md").read_text()
    section = text[text.index("## Objective"):text.index("## Dataset")]
    assert "Total loss = 1 · `d_loss_real` + 1 · `d_loss_fake` + 1 · `g_loss`." in section
    assert "| `g_loss` | BCEWithLogitsLoss | 1 | input ← d_fake, target ← ones_fake | - | generator |" in section
    assert "| `generator` | 9 | adam | lr=0.001, beta1=0.5 |" in section
    assert "1 step(s) of `discriminator`, then 1 step(s) of `generator`" in section


def test_a_project_files_network_exports_with_fresh_weights(tmp_path, capsys):
    src = tmp_path / "gan.json"
    src.write_text(load_template("gan").to_json())
    out = tmp_path / "disc.py"
    assert cli.main(["export", str(src), "--network", "discriminator", "-o", str(out)]) == 0
    assert "inputs real_fake, outputs d_real, d_fake" in capsys.readouterr().out
    disc = _module(out).Model().eval()
    from safetensors.torch import load_file

    disc.load_state_dict(load_file(str(out.with_suffix(".safetensors"))))
    with torch.no_grad():
        real, fake = disc(torch.rand(3, 2, 64))  # a real and a generated image per row, as the GAN stacks them
    assert real.shape == fake.shape == (3, 1)


def _with_distillation():
    return add_distillation(load_template("mlp"))


@pytest.mark.parametrize("make", [*(lambda n=n: load_template(n) for n in OBJECTIVE_TEMPLATES), _with_distillation],
                         ids=[*OBJECTIVE_TEMPLATES, "distilled-mlp"])
def test_every_network_stands_on_its_own_with_the_trained_weights(make):
    project = make()
    names = network_names(project)
    assert names
    torch.manual_seed(0)
    trained = compile_graph(training_graph(project.graph)).state_dict()
    taken: set[str] = set()
    for name in names:
        sub = network_project(project, name)
        report = infer_shapes(sub.graph)
        assert report.ok and report.output_nodes, (name, report.problems)
        assert not {n.type for n in sub.graph.nodes} & {"Target", "Noise", "CrossEntropyLoss", "BCEWithLogitsLoss"}
        model = compile_graph(sub.graph)
        state = network_state(project, name, trained)
        model.load_state_dict(state)  # strict: every weight of the network, nothing else
        taken |= {k for k, v in trained.items() for w in state.values() if v is w}
        with torch.no_grad():
            model.eval()(*example_inputs(model, 2))
    assert taken == set(trained)  # the networks together hold every weight of the run


def test_a_vaes_encoder_and_decoder_export_as_parts_and_compose_to_its_model():
    """``training.parts`` names groups exported on their own without training them apart: the VAE's decoder
    takes the latent code as its input, and decoder(encoder(x).mu) is the model's reconstruction in eval mode."""
    from builder.interchange.network_export import network_model

    project = load_template("vae")
    assert network_names(project) == ["model", "encoder", "decoder"]
    torch.manual_seed(0)
    trained = compile_graph(training_graph(project.graph)).state_dict()
    enc, dec, whole = (network_model(project, n, trained) for n in ("encoder", "decoder", "model"))
    assert [n.params["shape"] for n in network_project(project, "decoder").graph.nodes if n.type == "Input"] == [[2]]
    x = torch.rand(4, 64)
    with torch.no_grad():
        mu, logvar = enc(x)
        recon = whole(x)[0]
        assert mu.shape == logvar.shape == (4, 2)
        torch.testing.assert_close(dec(mu), recon)


@pytest.mark.parametrize("parts, match", [({"model": ["enc1"]}, "name of a network"), ({"e": ["nope"]}, "unknown"),
                                          ({"e": []}, "no nodes"), (["enc1"], "maps part names")])
def test_bad_parts_are_refused_with_the_rule(parts, match):
    project = load_template("vae")
    project.training["parts"] = parts
    with pytest.raises(NetworkError, match=match):
        network_names(project)


def test_a_networks_weights_download_is_cut_in_a_worker_and_holds_its_weights(gan_run, monkeypatch):
    """The Runs page's weights of one network: built and loaded in a worker process (building it here fails), the
    bytes hold exactly the network's weights from the run (network_state), under the network graph's own names."""
    from safetensors.torch import load

    from builder.interchange import network_export
    from builder.interchange.network_export import network_downloads
    from builder.training.weights import read_weights

    def not_here(*_a, **_k):
        raise AssertionError("the network was built in the caller's process")

    monkeypatch.setattr(network_export, "network_model", not_here)
    ws, rid = gan_run
    store = RunStore(ws, actor=SYSTEM)
    project = store.get(rid)["project"]
    got = network_downloads(project, "generator", store.weights_path(rid))
    expected = network_state(project, "generator", read_weights(store.weights_path(rid))[0])
    cut = load(got["weights"])
    assert set(cut) == set(expected)
    for k, v in expected.items():
        torch.testing.assert_close(cut[k], v)
    assert network_downloads(project, "generator", None)["weights"] is None
