"""Issues 28 and 29: a language model (task next_token, T × V logits per sample) on the Explain page.

The session kept the split's N × T × V logits (42.7 MB for the gpt template's 334 test samples at V = 1,000; the
probe child's memory limit at the caps) and offered T × V + 1 "output units" (32,001 menu entries, ``output 20200``)
as targets, the default the largest logit anywhere in the sequence; the summary said nothing. Now the target is a
(position, next token) pair, the split's predictions are per position, and the summary says what comes next.
"""

from __future__ import annotations

import math

import pytest
import torch
from captum.attr import LayerIntegratedGradients
from hypothesis import given, settings
from hypothesis import strategies as st

from builder.data.predictions import next_token_predictions
from builder.data.splits import Dataset, DatasetInfo, Split
from builder.interpret.next_token import TOP_TOKENS, flat_target, split_target, token_word
from builder.interpret.session import ExplainSession
from tests.fuzz_budget import budget


class _TinyLM(torch.nn.Module):
    """Embedding → a causal running mean → Linear: (N, T) ids to (N, T, V) logits."""

    def __init__(self, vocab: int, width: int = 6, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.emb, self.out = torch.nn.Embedding(vocab, width), torch.nn.Linear(width, vocab)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.emb(x)
        steps = torch.arange(1, x.shape[1] + 1, device=x.device, dtype=h.dtype)[None, :, None]
        return self.out(h.cumsum(1) / steps)


def _corpus(n: int, t: int, vocab: int, seed: int = 0) -> Dataset:
    """``n`` windows of ``t`` ids (no padding) per split, each target the window moved by one token."""
    g = torch.Generator().manual_seed(seed)

    def split() -> Split:
        ids = torch.randint(1, vocab, (n, t + 1), generator=g)
        return Split(ids[:, :-1].contiguous(), ids[:, 1:].contiguous())

    info = DatasetInfo(name="corpus", task="next_token", modality="tokens", input_shape=(t,), input_dtype="int64",
                       out_size=vocab, vocab=["<pad>", *(f"w{k}" for k in range(1, vocab))])
    return Dataset(info, split(), split(), split())


def _tensor_bytes(obj: object, skip: tuple) -> int:
    """Bytes of the tensors an object's attributes hold (one level into dataclasses and plain objects)."""
    total = 0
    for v in vars(obj).values():
        if any(v is s for s in skip):
            continue
        if isinstance(v, torch.Tensor):
            total += v.numel() * v.element_size()
        elif hasattr(v, "__dict__") and not isinstance(v, (torch.nn.Module, type)):
            total += sum(t.numel() * t.element_size() for t in vars(v).values() if isinstance(t, torch.Tensor))
    return total


@settings(max_examples=budget(15), deadline=None)
@given(n=st.integers(1, 12), t=st.integers(1, 10), vocab=st.integers(40, 400), cells=st.integers(1, 3000))
def test_the_split_is_kept_per_position_whatever_the_vocabulary(n, t, vocab, cells):
    """The predictions batch by batch equal the whole split's, and what the session holds grows with N × T, not
    with N × T × V (the old session held every logit: 4 V bytes per token)."""
    model, ds = _TinyLM(vocab), _corpus(n, t, vocab)
    x, y = ds.test.X, ds.test.y
    with torch.no_grad():
        logits = model(x)
    p = next_token_predictions(model, x, y, max_cells=cells)
    prob, ids = logits.softmax(-1).max(-1)
    assert torch.equal(p.ids, ids) and torch.allclose(p.probability, prob, atol=1e-6)
    ce = torch.nn.functional.cross_entropy(logits.reshape(-1, vocab), y.reshape(-1), reduction="none")
    assert torch.allclose(p.loss, ce.reshape(n, t), atol=1e-5) and p.vocab_size == vocab

    xs = ExplainSession(model, ds, "test")
    held = _tensor_bytes(xs, skip=(xs.X, xs.y, xs.ds, xs.model))
    assert held <= 40 * n * t < 4 * n * t * vocab, held  # ids, probability, loss, last position, pred, conf
    assert xs.output_shape == (t, vocab) and xs.n_outputs == t * vocab


@settings(max_examples=budget(10), deadline=None)
@given(t=st.integers(1, 12), vocab=st.integers(3, 2000), i=st.integers(0, 3))
def test_the_targets_offered_are_a_position_then_a_few_tokens(t, vocab, i):
    """T positions, then at most TOP_TOKENS + 1 tokens (the likeliest, the prediction first, and the true one): never
    the T × V + 1 entries of an output-unit menu."""
    model, ds = _TinyLM(vocab), _corpus(4, t, vocab)
    xs = ExplainSession(model, ds, "test")
    assert xs.target_kind() == "token" and len(xs.target_choices()) == 1
    labels, default = xs.token_positions(i)
    assert len(labels) == t and default == t - 1  # no padding: the last position
    with torch.no_grad():
        logits = model(ds.test.X[i:i + 1])[0]
    for pos in {0, default}:
        offered = xs.token_targets(i, pos)
        assert len(offered) <= TOP_TOKENS + 1
        assert offered[0][0] == flat_target(pos, int(logits[pos].argmax()), (t, vocab))
        assert "predicted" in offered[0][1]
        true = int(ds.test.y[i, pos])
        assert flat_target(pos, true, (t, vocab)) in [target for target, _ in offered]
        assert all(split_target(target, (t, vocab))[0] == pos for target, _ in offered)


def test_the_default_target_is_the_next_token_after_the_last_real_one():
    """A padded sample's default target is the token predicted after its last real token, not the largest logit
    anywhere in T × V; the summary says which token that is, beside the true one."""
    vocab, t = 50, 8
    model, ds = _TinyLM(vocab, seed=3), _corpus(3, t, vocab)
    ds.test.X[1, 5:] = 0  # padding after position 4
    xs = ExplainSession(model, ds, "test")
    with torch.no_grad():
        logits = model(ds.test.X[1:2])[0]
    want = flat_target(4, int(logits[4].argmax()), (t, vocab))
    assert xs.token_positions(1)[1] == 4
    exp = xs.explain(1, "layer_integrated_gradients", steps=8)
    assert int(exp.target[0]) == want
    assert xs.about(exp, None) == f"the next token {token_word(ds.info, want % vocab)} at position 4 (the prediction)"
    s = xs.summary(1)
    assert s.kind == "next_token" and s.position == 4
    assert s.predicted == token_word(ds.info, int(logits[4].argmax())) == f"'w{int(logits[4].argmax())}'"
    assert s.true == token_word(ds.info, int(ds.test.y[1, 4]))
    assert math.isclose(s.confidence, float(logits[4].softmax(-1).max()), rel_tol=1e-5)
    assert "perplexity" in s.note


@pytest.mark.parametrize("position, rank", [(0, 0), (3, 1), (7, 4)])
def test_an_attribution_of_a_position_and_token_is_captums_on_that_logit(position, rank):
    """Layer IG of (position, token) equals Captum's on the model's logit of that token at that position."""
    vocab, t = 30, 8
    model, ds = _TinyLM(vocab, seed=1), _corpus(2, t, vocab)
    xs = ExplainSession(model, ds, "test")
    target, _ = xs.token_targets(0, position)[rank]
    pos, tok = split_target(target, (t, vocab))
    assert pos == position
    got = xs.explain(0, "layer_integrated_gradients", target, steps=20)
    x = ds.test.X[:1]
    attr = LayerIntegratedGradients(lambda ids: model(ids)[:, pos, tok], model.emb).attribute(
        x, baselines=torch.zeros_like(x), n_steps=20)
    torch.testing.assert_close(got.attributions, attr.sum(-1), atol=1e-5, rtol=1e-4)
    assert int(got.target[0]) == target
    assert not got.attributions[0, position + 1:].any()  # causal: later tokens do not move it


def test_the_pad_token_menu_is_bounded():
    """Review of issue 29: the pad baseline's menu listed the whole vocabulary (50,000 options for a pretrained
    tokenizer, sent to the browser on every rerun); it offers the special tokens first, then the first ids."""
    from builder.interpret.session import MAX_PAD_CHOICES, pad_choices

    vocab = ["<pad>", "<unk>", *[f"w{i}" for i in range(50_000)], "<|endoftext|>", "[MASK]"]
    got = pad_choices(vocab)
    assert len(got) == MAX_PAD_CHOICES and list(got)[:4] == [0, 1, 50_002, 50_003], list(got)[:5]
    assert got[50_002] == "'<|endoftext|>'" and set(list(got)[4:]) == set(range(2, MAX_PAD_CHOICES - 2))
