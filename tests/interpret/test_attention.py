"""builder.interpret.attention: per-head weights from MultiheadAttention / TransformerEncoderLayer nodes, rollout."""

from __future__ import annotations

import importlib

import pytest
import torch
from torch import nn

from builder.errors import ExplainError
from builder.interpret.attention import attention_nodes, attention_rollout, capture_attention, mean_over_heads


class Encoder(nn.Module):
    """Embedding + TransformerEncoderLayer + Linear (self_attn is called with need_weights=False)."""

    def __init__(self, vocab: int = 12, d: int = 8) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.enc = nn.TransformerEncoderLayer(d, 2, 16, dropout=0.1, batch_first=True)
        self.fc = nn.Linear(d, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.enc(self.emb(x)).mean(1))


class TwoAttention(nn.Module):
    """Two residual self-attention layers, as compiled graphs call them."""

    def __init__(self, vocab: int = 12, d: int = 8) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.a1 = nn.MultiheadAttention(d, 2, batch_first=True)
        self.a2 = nn.MultiheadAttention(d, 4, batch_first=True)
        self.fc = nn.Linear(d, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.emb(x)
        h = h + self.a1(h, h, h, need_weights=False)[0]
        h = h + self.a2(h, h, h, None, False)[0]  # positional need_weights
        return self.fc(h.mean(1))


@pytest.fixture
def ids() -> torch.Tensor:
    return torch.randint(0, 12, (3, 5), generator=torch.Generator().manual_seed(0))


def test_nodes_in_module_order():
    torch.manual_seed(0)
    assert attention_nodes(Encoder()) == ["enc"]
    assert attention_nodes(TwoAttention()) == ["a1", "a2"]
    assert attention_nodes(nn.Linear(2, 2)) == []


def test_per_head_maps_rows_sum_to_one_and_match_a_direct_call(ids):
    torch.manual_seed(0)
    model = TwoAttention().eval()
    maps = capture_attention(model, ids)
    assert list(maps) == ["a1", "a2"]
    assert maps["a1"].shape == (3, 2, 5, 5) and maps["a2"].shape == (3, 4, 5, 5)
    for w in maps.values():
        torch.testing.assert_close(w.sum(-1), torch.ones(w.shape[:-1]))
    with torch.no_grad():
        h = model.emb(ids)
        _, ref = model.a1(h, h, h, need_weights=True, average_attn_weights=False)
    torch.testing.assert_close(maps["a1"], ref)


def test_encoder_fast_path_is_bypassed_even_without_grad(ids):
    torch.manual_seed(0)
    model = Encoder().eval()
    for p in model.parameters():  # frozen weights + no_grad + eval: the conditions of the fused fast path
        p.requires_grad_(False)
    with torch.no_grad():
        before = model(ids)
        maps = capture_attention(model, ids)
        after = model(ids)
    assert maps["enc"].shape == (3, 2, 5, 5)
    torch.testing.assert_close(maps["enc"].sum(-1), torch.ones(3, 2, 5))
    torch.testing.assert_close(before, after)
    assert torch.backends.mha.get_fastpath_enabled()  # restored
    with torch.no_grad():  # the maps are those of self_attn on the encoder's input
        h = model.emb(ids)
        _, ref = model.enc.self_attn(h, h, h, need_weights=True, average_attn_weights=False)
    torch.testing.assert_close(maps["enc"], ref)


def test_capture_restores_training_mode_and_removes_hooks(ids):
    torch.manual_seed(0)
    model = Encoder().train()
    capture_attention(model, ids)
    assert model.training and model.enc.training
    assert not model.enc.self_attn._forward_pre_hooks and not model.enc.self_attn._forward_hooks


def test_capture_without_attention_raises():
    with pytest.raises(ExplainError, match="MultiheadAttention or TransformerEncoderLayer"):
        capture_attention(nn.Linear(3, 2), torch.zeros(1, 3))
    with pytest.raises(ExplainError, match="not a MultiheadAttention"):
        capture_attention(TwoAttention(), torch.zeros(1, 3, dtype=torch.long), ["fc"])


def test_rollout_rows_sum_to_one_and_multiply_layers(ids):
    torch.manual_seed(0)
    maps = capture_attention(TwoAttention(), ids)
    roll = attention_rollout(maps)
    assert roll.shape == (3, 5, 5)
    torch.testing.assert_close(roll.sum(-1), torch.ones(3, 5))
    eye = torch.eye(5)
    a1 = 0.5 * eye + 0.5 * mean_over_heads(maps["a1"])
    a2 = 0.5 * eye + 0.5 * mean_over_heads(maps["a2"])
    torch.testing.assert_close(roll, a2 @ a1)
    # without the residual term one layer's rollout is its mean over heads
    torch.testing.assert_close(attention_rollout([maps["a1"]], residual=0.0), mean_over_heads(maps["a1"]))


def test_rollout_errors():
    with pytest.raises(ExplainError, match="at least one"):
        attention_rollout([])
    with pytest.raises(ExplainError, match="residual"):
        attention_rollout([torch.ones(1, 1, 2, 2) / 2], residual=2.0)
    with pytest.raises(ExplainError, match="T x T"):
        attention_rollout([torch.ones(1, 1, 2, 3) / 3])
    with pytest.raises(ExplainError, match=r"\(B, heads, T, T\)"):
        mean_over_heads(torch.ones(2, 2))


def test_transformer_template_maps():
    compile_mod = importlib.import_module("builder.graph.compile")
    templates = importlib.import_module("builder.graph.templates")
    torch.manual_seed(0)
    gm = compile_mod.compile_graph(templates.load_template("transformer").graph)
    x = compile_mod.example_inputs(gm, 2, seed=0)[0]
    maps = capture_attention(gm, x)
    assert list(maps) == ["encoder1", "encoder2"]
    for w in maps.values():
        assert w.shape == (2, 4, x.shape[1], x.shape[1])
        torch.testing.assert_close(w.sum(-1), torch.ones(w.shape[:-1]))
    torch.testing.assert_close(attention_rollout(maps).sum(-1), torch.ones(2, x.shape[1]))


def test_a_padded_sentence_shows_its_real_tokens_only_and_a_decoder_is_read():
    """The text encoder masks its padding (derived from id 0): the maps and the rollout cover the real tokens,
    labelled with them on both axes; a decoder-only block built from a TransformerDecoderLayer is listed too."""
    import builder
    from builder.interpret.attention import drop_padding
    from builder.interpret.figures import attention_map_figure

    model = builder.compile_graph(builder.load_template("text_encoder").graph)
    ids = torch.tensor([[5, 9, 7, 5] + [0] * 16])
    maps = drop_padding(capture_attention(model, ids), ids)
    assert maps["encoder"].shape == (1, 4, 4, 4)
    words = ["the", "plot", "was", "the"]
    fig = attention_map_figure(attention_rollout(maps)[0], words)
    assert list(fig.data[0].x) == list(fig.data[0].y) == ["the (0)", "plot", "was", "the (3)"]
    # a model that reads its padding keeps it on the map (worth seeing)
    unmasked = builder.load_template("text_encoder")
    unmasked.graph.edges = [e for e in unmasked.graph.edges if e.source_port != "padding_mask"]
    plain = builder.compile_graph(unmasked.graph)
    assert drop_padding(capture_attention(plain, ids), ids)["encoder"].shape == (1, 4, 20, 20)

    graph = {"nodes": [{"id": "x", "type": "Input", "params": {"shape": [6], "modality": "tokens", "vocab_size": 9}},
                       {"id": "emb", "type": "Embedding", "params": {"embedding_dim": 8}},
                       {"id": "dec", "type": "TransformerDecoderLayer",
                        "params": {"nhead": 2, "dim_feedforward": 16, "dropout": 0.0}}],
             "edges": [{"source": "x", "target": "emb"}, {"source": "emb", "target": "dec", "target_port": "tgt"},
                       {"source": "emb", "target": "dec", "target_port": "memory"}]}
    dec = builder.compile_graph(graph)
    assert attention_nodes(dec) == ["dec"]
    w = capture_attention(dec, torch.randint(1, 9, (1, 6)))["dec"]  # causal self-attention over the target
    assert w.shape == (1, 2, 6, 6) and float(w[0, :, 0, 1:].abs().sum()) == 0.0
