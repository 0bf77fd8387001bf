"""builder.data.predictions.forward_reduced / token_losses: a language model's evaluation reduces each batch's
logits at once. ``evaluate`` and the trainer's per-epoch check kept every logit of a split (N × T × vocabulary
floats: 1.1 GiB for a 0.9 MB corpus's validation split at vocabulary 20,000, ~300 GB at the caps)."""

from __future__ import annotations

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from builder.data.predictions import forward_reduced, token_losses
from builder.training.metrics import evaluate
from tests.fuzz_budget import budget


class _TinyLM(torch.nn.Module):
    """Embedding → Linear: (N, T) ids to (N, T, V) logits; records the largest batch of logits it gave."""

    def __init__(self, vocab: int, width: int = 8):
        super().__init__()
        torch.manual_seed(0)
        self.emb, self.out = torch.nn.Embedding(vocab, width), torch.nn.Linear(width, vocab)
        self.largest = 0

    def forward(self, x):
        logits = self.out(self.emb(x))
        self.largest = max(self.largest, logits.numel())
        return logits


@settings(max_examples=budget(25), deadline=None)
@given(n=st.integers(1, 40), t=st.integers(1, 12), vocab=st.integers(2, 60), cells=st.integers(1, 5000))
def test_the_token_loss_batch_by_batch_is_the_whole_splits_and_no_batch_exceeds_its_cells(n, t, vocab, cells):
    model = _TinyLM(vocab)
    x = torch.randint(0, vocab, (n, t), generator=torch.Generator().manual_seed(n))
    y = torch.roll(x, -1, 1)
    whole = torch.nn.functional.cross_entropy(model(x).reshape(-1, vocab), y.reshape(-1)).item()
    model.largest = 0
    mean = float(token_losses(model, x, y, max_cells=cells).sum() / y.numel())
    assert math.isclose(mean, whole, rel_tol=1e-5, abs_tol=1e-6)
    assert model.largest <= max(cells, t * vocab)  # one sample at least
    assert math.isclose(evaluate(model, x, y, "next_token")["perplexity"], math.exp(whole), rel_tol=1e-4)


def test_a_split_whose_logits_are_large_is_evaluated_in_bounded_batches():
    """256 samples × 64 tokens × 4,096 words are 268 million logits (1 GiB); each batch holds at most 2^24."""
    model = _TinyLM(4096, width=4)
    x = torch.randint(0, 4096, (256, 64), generator=torch.Generator().manual_seed(1))
    res = evaluate(model, x, torch.roll(x, -1, 1), "next_token")
    assert res["tokens"] == 256 * 64 and math.isfinite(res["loss"])
    assert model.largest <= 1 << 24


def test_forward_reduced_keeps_the_reductions_in_order():
    lin = torch.nn.Linear(2, 3)
    x = torch.randn(7, 2)
    got = forward_reduced(lin, x, lambda out, rows: out[:, :1], max_cells=6)
    assert torch.allclose(got, lin(x).detach()[:, :1])
