"""Path methods (Integrated Gradients, layer IG, conductance) run samples × steps rows forward and backward: Captum's
``internal_batch_size`` is set from the compiled model's per-sample estimate (builder.interpret.attributions.path_rows),
so one chunk's activations stay within PATH_BATCH_BYTES whatever the steps, with the unbatched numbers."""

from __future__ import annotations

import pytest
import torch
from captum.attr import IntegratedGradients, LayerIntegratedGradients
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import builder
import builder.interpret.attributions as attributions
from builder.interpret.attributions import explain
from tests.fuzz_budget import budget

pytestmark = pytest.mark.filterwarnings("ignore:.*require gradients:UserWarning")


def _text(seq: int):
    g = builder.load_template("text_encoder").graph
    for n in g.nodes:
        if n.id == "tokens":
            n.params["shape"] = [seq]
    torch.manual_seed(0)
    return builder.compile_graph(g).eval()


@pytest.fixture(scope="module")
def text():
    return _text(20)


@pytest.fixture(scope="module")
def mlp():
    torch.manual_seed(0)
    return builder.compile_graph(builder.load_template("mlp").graph).eval()


def _chunks(model, fn):
    """(rows of each forward, bytes autograd saved in each forward beyond the weights) while ``fn`` runs."""
    rows, saved = [], []
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}

    def pre(_m, args):
        rows.append(len(args[0]))
        saved.append(0)

    def pack(t):
        if saved and t.untyped_storage().data_ptr() not in weights:
            saved[-1] += t.numel() * t.element_size()
        return t

    hook = model.register_forward_pre_hook(pre)
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = fn()
    finally:
        hook.remove()
    return rows, saved, out


@settings(max_examples=budget(15), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(samples=st.integers(1, 6), steps=st.integers(2, 80), room=st.integers(2, 40))
def test_layer_ig_chunks_fit_the_bytes_and_match_the_unbatched_result(text, monkeypatch, samples, steps, room):
    """At 256 tokens, 8 samples, 500 steps the page's IG ran 4,000 rows at once (+1,922 MiB measured, 0.48 MiB a row;
    the estimate says 0.47): now chunks of PATH_BATCH_BYTES (+259 MiB)."""
    per = text.layerlab_sample_bytes["cpu"]
    monkeypatch.setattr(attributions, "PATH_BATCH_BYTES", room * per)
    ids = torch.randint(1, 500, (samples, 20), generator=torch.Generator().manual_seed(steps))
    rows, saved, exp = _chunks(text, lambda: explain(text, ids, "layer_integrated_gradients", target=0,
                                                     n_steps=steps))
    bound = max(room, 2 * samples)
    assert max(rows[1:]) <= bound  # the first forward picks the target (no gradient)
    assert max(saved) <= max(room * per, 2 * samples * per)  # the estimate bounds what autograd keeps
    attr, delta = LayerIntegratedGradients(text, text.embed).attribute(
        ids, baselines=torch.zeros_like(ids), target=0, n_steps=steps, return_convergence_delta=True)
    torch.testing.assert_close(exp.layer_attributions, attr, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(exp.delta, delta, atol=1e-5, rtol=1e-4)


def test_completeness_runs_in_chunks(mlp, monkeypatch):
    """The Explain page's completeness check (up to 64 samples × 500 steps) goes through the same chunks."""
    from builder.interpret.sanity import ig_completeness

    per = mlp.layerlab_sample_bytes["cpu"]
    monkeypatch.setattr(attributions, "PATH_BATCH_BYTES", 30 * per)
    x = torch.rand(8, 2, generator=torch.Generator().manual_seed(0))
    rows, _, res = _chunks(mlp, lambda: ig_completeness(mlp, x, 0, n_steps=500))
    assert max(rows) <= 30 < 8 * 500
    attr, delta = IntegratedGradients(mlp).attribute(x, baselines=torch.zeros_like(x), target=0, n_steps=500,
                                                     return_convergence_delta=True)
    assert res.delta == pytest.approx(delta.numpy(), abs=1e-5)
    assert res.attribution_sum == pytest.approx(attr.sum(1).numpy(), abs=1e-5)


def test_few_rows_run_unbatched_and_a_given_internal_batch_is_kept(mlp):
    assert attributions.path_rows(mlp, 8, 50) is None  # a small model: every row at once, as before
    x = torch.rand(4, 2)
    rows, _, _ = _chunks(mlp, lambda: explain(mlp, x, "integrated_gradients", target=0, n_steps=10,
                                              internal_batch_size=8))
    assert max(rows) == 8
