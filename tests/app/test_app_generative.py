"""AppTest: the Train page's parts for drawn objectives (issue 18): loss terms overlaid, a GAN's sample grid per
epoch (slider once the run ended), a VAE's reconstructions and 2-D latent space; the teacher control."""

from __future__ import annotations

import numpy as np
import pytest

import builder
from builder.data.access import SYSTEM
from builder.runs.pipeline import run_training
from builder.runs.store import RunStore
from tests.helpers import ME, assert_no_exception, open_app


@pytest.fixture(scope="module")
def gen_runs(tmp_path_factory):
    """``(workspace, gan run, vae run, mlp run, autoencoder run)``: the gan and vae templates trained 2 epochs in
    process, the mlp template 1 epoch on moons (a classifier: a teacher), the autoencoder 1 epoch, owner ME."""
    ws = tmp_path_factory.mktemp("gen_ws")
    store = RunStore(ws, actor=SYSTEM)
    gan = run_training(builder.load_template("gan"), "digits", {"epochs": 2, "seed": 0}, store, owner=ME).run_id
    vae = run_training(builder.load_template("vae"), "digits", {"epochs": 2, "seed": 0}, store, owner=ME).run_id
    mlp = run_training(builder.load_template("mlp"), "moons", {"epochs": 1, "seed": 0}, store, owner=ME).run_id
    auto = run_training(builder.load_template("autoencoder"), "digits", {"epochs": 1, "seed": 0}, store,
                        owner=ME).run_id
    return ws, gan, vae, mlp, auto


@pytest.fixture
def gen_ws(gen_runs, monkeypatch):
    monkeypatch.setenv("LAYERLAB_WORKSPACE", str(gen_runs[0]))
    monkeypatch.delenv("LAYERLAB_SHARED_RUNS", raising=False)
    monkeypatch.setenv("LAYERLAB_TORCH_THREADS", "1")
    return gen_runs





def _open(template: str):
    """The Train page with ``template`` on the canvas."""
    at = open_app("app_pages/train.py", owner=ME)
    at.session_state["ll_project"] = builder.load_template(template)
    at.run()
    assert_no_exception(at)
    return at


def _has_chart(at, key: str) -> bool:
    return any(key in str(c.proto.id) for c in at.get("plotly_chart"))


def _grid_spec(at) -> str:
    return str(next(c.proto.spec for c in at.get("plotly_chart") if "ll_fig_samples" in c.proto.id))


def _grid_epoch(at) -> int:
    """The epoch named in the sample grid's title."""
    import re

    spec = str(next(c.proto.spec for c in at.get("plotly_chart") if "ll_fig_samples" in c.proto.id))
    return int(re.search(r"after epoch (\d+) ", spec).group(1))


def test_gan_run_shows_terms_and_sample_grid_per_epoch(gen_ws):
    """The sample grid follows the page's one epoch slider and its Replay: the grid had a slider of its own, so
    "Replaying the run: epoch 1 of 2" played over a grid that stayed at epoch 2 (issue 29, item 15)."""
    at = _open("gan")
    rid = gen_ws[1]
    assert at.session_state["ll_train_run"] == rid
    assert _has_chart(at, "ll_fig_terms") and _has_chart(at, "ll_fig_samples")
    sliders = [s for s in at.select_slider]
    assert [s.key for s in sliders] == [f"ll_replay_epoch_{rid}"]  # one epoch slider on the page
    slider = sliders[0]
    assert list(slider.options) == ["1", "2"] and str(slider.value) == "2" and _grid_epoch(at) == 2
    # the grid comes first, the slider below it (above it, the slider pushed the grid's images below a 900 px
    # window once the run ended)
    keyed = [str(getattr(n, "key", None) or getattr(getattr(n, "proto", None), "id", "")) for n in at.main]
    grid = next(i for i, k in enumerate(keyed) if "ll_fig_samples" in k)
    assert grid < keyed.index(f"ll_replay_epoch_{rid}"), keyed
    slider.set_value(1).run()
    assert_no_exception(at)
    assert _grid_epoch(at) == 1
    # an earlier epoch says so above the fold: under "Finished" the grid read "after epoch 2" of 8 at 900x900, the
    # replay's bar below the window
    assert "after epoch 1 of 2" in _grid_spec(at)
    assert any("An earlier epoch: epoch 1 of 2" in c.value for c in at.caption), [c.value for c in at.caption]
    assert not _has_chart(at, "ll_fig_latent")
    at.button(key="ll_replay_play").click().run()  # Replay: the grid plays along, and the replay ends
    seen = [_grid_epoch(at)]
    assert any("Replaying the run: epoch 1 of 2" in c.value for c in at.caption), [c.value for c in at.caption]
    while at.session_state["ll_replay"] is not None and len(seen) < 6:
        at.run()
        assert_no_exception(at)
        seen.append(_grid_epoch(at))
    assert seen == [1, 2] and at.session_state["ll_replay"] is None


def test_vae_run_shows_reconstructions_and_latent_space(gen_ws):
    at = _open("vae")
    assert at.session_state["ll_train_run"] == gen_ws[2]
    assert _has_chart(at, "ll_fig_terms") and _has_chart(at, "ll_fig_recon") and _has_chart(at, "ll_fig_latent")
    assert not _has_chart(at, "ll_fig_samples")
    probe = at.session_state["ll_xp_probe"]  # the VAE ran in the session's sandboxed probe, not in the server
    assert probe.starts == 1 and probe.running
    at.run()
    assert _has_chart(at, "ll_fig_recon") and probe.starts == 1  # asked once per session, not per rerun
    probe.close()


def test_an_autoencoder_run_shows_its_reconstructions_first(gen_ws):
    """An autoencoder's finished run showed loss, metric and learning-rate curves and nothing it made (a VAE's
    run showed its reconstructions): its test inputs and reconstructions come first, with how far they are apart,
    computed in the session's sandboxed probe; no latent space (no Reparameterize node)."""
    at = _open("autoencoder")
    assert at.session_state["ll_train_run"] == gen_ws[4]
    order = _chart_order(at)
    recon = next(i for i, c in enumerate(order) if "ll_fig_recon" in c)
    assert all(recon < i for i, c in enumerate(order) if "ll_fig_loss" in c or "ll_fig_metric" in c), order
    assert not _has_chart(at, "ll_fig_latent") and not _has_chart(at, "ll_fig_samples")
    err = next(m for m in at.metric if m.label == "Reconstruction error of these samples")
    assert 0 < float(err.value) < 1  # digits in [0, 1]: a mean squared error of a model that learnt a little
    probe = at.session_state["ll_xp_probe"]
    assert probe.starts == 1
    probe.close()


def test_teacher_control_offers_finished_classifier_runs_only(gen_ws):
    at = _open("cnn")
    box = at.selectbox(key="ll_hp_teacher")
    assert box.value == "" and len(box.options) == 2 and box.options[1].endswith(gen_ws[3][-6:])  # no GAN/VAE


@pytest.mark.parametrize("template", ["gan", "vae"])
def test_a_canvas_with_its_own_objective_is_offered_no_fine_tuning_or_teacher(gen_ws, template):
    """Linear probe, LoRA and a distillation teacher concern a network trained on labels: a GAN's or a VAE's Train
    form offered them (a teacher would have added a classifier's losses to a GAN)."""
    at = _open(template)
    keys = {w.key for w in [*at.radio, *at.selectbox]}
    assert "ll_hp_finetune" not in keys and "ll_hp_teacher" not in keys, keys
    assert {"ll_hp_finetune", "ll_hp_teacher"} <= {w.key for w in [*_open("mlp").radio, *_open("mlp").selectbox]}


def test_mosaic_tiles_images_with_blank_padding():
    from app_pages.generative_view import mosaic

    m = mosaic(np.ones((10, 1, 8, 8)), cols=4)
    assert m.shape == (3 * 9 - 1, 4 * 9 - 1)
    assert np.isnan(m[8]).all() and np.nansum(m) == 10 * 64


def _walk(node):
    """The page's elements in the order they are drawn."""
    children = getattr(node, "children", None)
    if isinstance(children, dict):
        for k in sorted(children):
            yield from _walk(children[k])
    else:
        yield node


def _kind_key(node) -> tuple[str, str]:
    key = str(getattr(getattr(node, "proto", None), "id", "") or "")
    return node.type, ("ll_fig_samples" if "ll_fig_samples" in key else "ll_fig_terms" if "ll_fig_terms" in key
                       else key)


def _chart_order(at) -> list[str]:
    return [str(c.proto.id) for c in at.get("plotly_chart")]


def test_a_gan_run_view_puts_its_samples_first_and_says_no_classifier_things(gen_ws):
    """Issue 29, item 13: GAN/VAE runs said "Task multiclass" and "Test samples —", showed two identical Loss
    charts (the loss is their metric) and put the sample grid two screens below the fold."""
    at = _open("gan")
    task = next(m for m in at.metric if m.label == "Task")
    assert task.value == "GAN: its drawn losses"  # (it said "drawn objective": jargon, a usability review)
    order = _chart_order(at)
    assert not _has_chart(at, "ll_fig_metric")  # no second Loss chart
    first = next(i for i, c in enumerate(order) if "ll_fig_samples" in c)
    assert all(first < i for i, c in enumerate(order) if "ll_fig_loss" in c or "ll_fig_terms" in c), order
    assert not any(m.label == "Test samples" and m.value in ("—", None) for m in at.metric)
    counted = [m.value for m in at.metric if m.label == "Test samples"]  # how many the test loss is over
    assert counted and int(str(counted[0]).replace(",", "")) > 0, [(m.label, m.value) for m in at.metric]
    # the replay's slider sits right under the grid it moves, above the loss terms (it was under the terms chart:
    # at 900 px the grid scrolled out of view while scrubbing)
    seen = [_kind_key(n) for n in _walk(at.main)]
    at_grid, at_slider = seen.index(("plotly_chart", "ll_fig_samples")), \
        next(i for i, k in enumerate(seen) if k[0] == "select_slider")
    assert at_grid < at_slider < seen.index(("plotly_chart", "ll_fig_terms")), seen
    vae = _open("vae")
    order = _chart_order(vae)
    recon = next(i for i, c in enumerate(order) if "ll_fig_recon" in c)
    assert all(recon < i for i, c in enumerate(order) if "ll_fig_loss" in c or "ll_fig_terms" in c), order
    vae.session_state["ll_xp_probe"].close()


def _chart_title(at, key: str) -> str:
    import json

    spec = json.loads(next(c.proto.spec for c in at.get("plotly_chart") if key in str(c.proto.id)))
    return spec["layout"]["title"]["text"]


def test_a_gan_run_says_its_summed_loss_is_no_score(gen_ws):
    """Issue 29 (a GAN run's honest metrics): the GAN's Train view titled its summed loss "Loss", told students under
    it that train and validation loss "both should fall" and warned of overfitting, and its test results showed
    "Loss 1.99" as a classifier's would: its networks play against each other, so their summed loss need not fall."""
    at = _open("gan")
    text = " ".join(c.value for c in at.caption)
    assert "Both should fall" not in text and "Overfitting" not in text, text
    assert "Two networks against each other" in text
    assert _chart_title(at, "ll_fig_loss") == "Summed loss (all terms)"
    loss = next(m for m in at.metric if m.label.startswith("Summed loss"))
    assert "not a score of the samples" in loss.proto.help
    assert not [m for m in at.metric if m.label == "Loss"]
    vae = _open("vae")  # a VAE's summed loss is its negative ELBO: it falls, and it is called Loss
    assert "Both should fall" in " ".join(c.value for c in vae.caption)
    assert _chart_title(vae, "ll_fig_loss") == "Loss" and [m for m in vae.metric if m.label == "Loss"]


def test_a_gan_run_on_the_runs_page_shows_what_it_made(gen_ws):
    """Issue 29: the Runs page of a GAN run showed its status, buttons and loss curves, no sample it made; its newest
    grid comes with its details, before the buttons."""
    ws, gan, _vae, mlp, _auto = gen_ws
    at = open_app("app_pages/runs.py", owner=ME, query={"run": gan})
    assert _has_chart(at, f"ll_run_samples_{gan}")
    at = open_app("app_pages/runs.py", owner=ME, query={"run": mlp})
    assert not any("ll_run_samples_" in str(c.proto.id) for c in at.get("plotly_chart"))


def test_a_drawn_objectives_loss_terms_share_the_epoch_axis_of_the_charts_below(gen_ws):
    """Review of issue 29: a 5-epoch GAN run's Loss terms chart ran from epoch 1 to 5 above a summed-loss and a
    learning-rate chart from 0 to 5 (dd51937 gave those one axis; the terms chart ranged over its own points)."""
    import json

    at = _open("gan")
    axes = {c.proto.id: json.loads(c.proto.spec)["layout"]["xaxis"].get("range") for c in at.get("plotly_chart")
            if any(k in c.proto.id for k in ("ll_fig_terms", "ll_fig_loss", "ll_fig_lr"))}
    assert len(axes) == 3 and len({json.dumps(r) for r in axes.values()}) == 1, axes
    assert next(iter(axes.values()))[0] == 0, axes
