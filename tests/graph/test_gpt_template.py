"""The decoder-only (GPT-style) language model template: logits per step over the vocabulary, causal, trainable.

Its training settings name the text helper's corpus and task (``text_corpus``, ``next_token``); here it runs on
random token ids with a next-token loss written out."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from builder import compile_graph, infer_shapes, load_template


def _model():
    torch.manual_seed(0)
    return compile_graph(load_template("gpt").graph)


def test_gpt_template_predicts_every_next_token():
    project = load_template("gpt")
    report = infer_shapes(project.graph)
    assert report.ok, report.problems
    tokens = report.nodes["tokens"].type_out
    blocks = [n for n in project.graph.nodes if n.type == "TransformerEncoderLayer"]
    assert len(blocks) >= 2 and all(n.params["causal"] for n in blocks)
    assert report.nodes[report.output_nodes[0]].shape == (tokens.shape[0], tokens.vocab)  # (T, vocab) per sample
    assert project.training["dataset"] == "text_corpus" and project.training["task"] == "next_token"
    model = _model().eval()
    x = torch.randint(0, tokens.vocab, (3, tokens.shape[0]))
    y = x.clone()
    y[:, 10:] = (y[:, 10:] + 1) % tokens.vocab
    with torch.no_grad():
        a, b = model(x), model(y)
    assert a.shape == (3, tokens.shape[0], tokens.vocab)
    torch.testing.assert_close(a[:, :10], b[:, :10])  # step t never sees a later token


def test_gpt_template_learns_a_repeating_sequence():
    model = _model().train()
    vocab = model.layerlab_vocab["tokens"]
    steps = model.layerlab_input_shapes["tokens"][0]
    gen = torch.Generator().manual_seed(1)
    starts = torch.randint(0, vocab, (16, 1), generator=gen)
    seq = (starts + torch.arange(steps + 1)) % vocab  # each next token is the previous plus one
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)

    def loss() -> torch.Tensor:
        logits = model(seq[:, :-1])
        return F.cross_entropy(logits.reshape(-1, vocab), seq[:, 1:].reshape(-1))

    first = loss().item()
    for _ in range(30):
        opt.zero_grad()
        value = loss()
        value.backward()
        opt.step()
    assert value.item() < 0.5 * first
