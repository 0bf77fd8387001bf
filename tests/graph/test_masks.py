"""Causal and padding masks on the attention layers: what they hide stays hidden, and masks go only where masks go."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from builder import compile_graph, infer_shapes
from builder.graph.registry import MASK, PAD_ID, PADDING_MASK, get_spec
from tests.fuzz_budget import budget

ATTENTION = ("MultiheadAttention", "TransformerEncoderLayer", "TransformerDecoderLayer")
_HEADS = {"MultiheadAttention": "num_heads"}


def _model(layer: str, steps: int, causal: bool, masked: bool) -> torch.nn.Module:
    """tokens → Embedding(8) → ``layer`` (self-attention; the decoder's memory is the embedding too)."""
    params = {_HEADS.get(layer, "nhead"): 2, "causal": causal}
    if layer != "MultiheadAttention":
        params.update(dim_feedforward=16, dropout=0.0)
    nodes = [{"id": "x", "type": "Input", "params": {"shape": [steps], "modality": "tokens", "vocab_size": 11}},
             {"id": "emb", "type": "Embedding", "params": {"embedding_dim": 8}},
             {"id": "att", "type": layer, "params": params}]
    edges = [{"source": "x", "target": "emb"}, {"source": "emb", "target": "att"}]
    if layer == "TransformerDecoderLayer":
        edges.append({"source": "emb", "target": "att", "target_port": "memory"})
    if masked:
        for port in get_spec(layer).mask_inputs:
            edges.append({"source": "x", "source_port": PADDING_MASK, "target": "att", "target_port": port})
    graph = {"nodes": nodes, "edges": edges}
    assert infer_shapes(graph).ok, infer_shapes(graph).problems
    torch.manual_seed(0)
    return compile_graph(graph).eval()


@pytest.mark.parametrize("layer", ATTENTION)
@settings(max_examples=budget(5), deadline=None)
@given(steps=st.integers(2, 6), cut=st.integers(1, 5), seed=st.integers(0, 99))
def test_causal_output_ignores_later_steps(layer, steps, cut, seed):
    cut = min(cut, steps - 1)
    model = _model(layer, steps, causal=True, masked=False)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 11, (2, steps), generator=gen)
    y = x.clone()
    y[:, cut:] = (y[:, cut:] + 1) % 11  # change every step from `cut` on
    with torch.no_grad():
        a, b = model(x), model(y)
    # the decoder's memory is the whole (changed) sequence: only self-attention is causal, so compare the
    # layers whose every input is causal
    if layer != "TransformerDecoderLayer":
        torch.testing.assert_close(a[:, :cut], b[:, :cut])
    assert not torch.allclose(a[:, cut:], b[:, cut:])


def test_causal_decoder_ignores_later_target_steps():
    """With a fixed memory, a causal decoder's step t depends on target steps ≤ t only."""
    layer = get_spec("TransformerDecoderLayer")
    assert layer.param("causal").default is True
    graph = {"nodes": [{"id": "t", "type": "Input", "params": {"shape": [5, 8]}},
                       {"id": "m", "type": "Input", "params": {"shape": [3, 8]}},
                       {"id": "dec", "type": "TransformerDecoderLayer",
                        "params": {"nhead": 2, "dim_feedforward": 16, "dropout": 0.0}}],
             "edges": [{"source": "t", "target": "dec", "target_port": "tgt"},
                       {"source": "m", "target": "dec", "target_port": "memory"}]}
    torch.manual_seed(0)
    model = compile_graph(graph).eval()
    tgt, mem = torch.randn(2, 5, 8), torch.randn(2, 3, 8)
    changed = tgt.clone()
    changed[:, 3:] += 1.0
    with torch.no_grad():
        a, b = model(tgt, mem), model(changed, mem)
    torch.testing.assert_close(a[:, :3], b[:, :3])
    assert not torch.allclose(a[:, 3:], b[:, 3:])


@pytest.mark.parametrize("layer", ATTENTION)
@settings(max_examples=budget(5), deadline=None)
@given(steps=st.integers(2, 6), data=st.data(), causal=st.booleans())
def test_padded_steps_change_no_real_step(layer, steps, data, causal):
    """The mask is derived from the ids inside the model (id 0 = padding): no caller feeds it."""
    length = data.draw(st.integers(1, steps - 1))
    model = _model(layer, steps, causal=causal, masked=True)
    assert model.layerlab_padding_masks == ["x"]
    x = torch.randint(1, 11, (2, steps))
    padded = x.clone()
    padded[:, length:] = PAD_ID
    with torch.no_grad():
        a, b = model(padded), model(x[:, :length])  # padded to `steps`, and the bare sentence
        c = model(x)  # real tokens where the padding was
    torch.testing.assert_close(a[:, :length], b)
    if not causal:  # unmasked, the real steps see the later tokens
        assert not torch.allclose(c[:, :length], b)


def test_a_row_of_padding_only_attends_to_all_of_it():
    """A row with no real token is not masked (a fully masked attention row would be NaN)."""
    model = _model("TransformerEncoderLayer", 4, causal=False, masked=True)
    with torch.no_grad():
        assert not model(torch.zeros(2, 4, dtype=torch.long)).isnan().any()


def test_a_sequence_input_pads_its_all_zero_steps():
    """A float sequence's padding is a step of all-zero features (Keras ``Masking(0.0)``): derived, not fed."""
    graph = {"nodes": [{"id": "x", "type": "Input", "params": {"shape": [5, 4]}},
                       {"id": "att", "type": "MultiheadAttention", "params": {"num_heads": 2}},
                       {"id": "pool", "type": "Mean", "params": {"dim": 1}}],
             "edges": [{"source": "x", "target": "att"}, {"source": "att", "target": "pool"},
                       {"source": "x", "source_port": PADDING_MASK, "target": "att", "target_port": PADDING_MASK},
                       {"source": "x", "source_port": PADDING_MASK, "target": "pool", "target_port": PADDING_MASK}]}
    torch.manual_seed(0)
    model = compile_graph(graph).eval()
    x = torch.randn(3, 2, 4)
    padded = torch.cat([x, torch.zeros(3, 3, 4)], 1)
    with torch.no_grad():
        torch.testing.assert_close(model(padded), model(x))


def test_input_gives_a_padding_mask_for_sequences_only():
    def outs(params):
        rep = infer_shapes({"nodes": [{"id": "x", "type": "Input", "params": params}], "edges": []})
        return rep.nodes["x"].outputs

    tokens = outs({"shape": [7], "modality": "tokens"})
    assert tokens[PADDING_MASK].shape == (7,) and tokens[PADDING_MASK].kind == MASK
    assert outs({"shape": [7, 3]})[PADDING_MASK].shape == (7,)
    assert PADDING_MASK not in outs({"shape": [4]}) and PADDING_MASK not in outs({"shape": [1, 8, 8]})


def _problems(edges, layer="TransformerEncoderLayer", params=None):
    graph = {"nodes": [{"id": "x", "type": "Input", "params": {"shape": [6, 8]}},
                       {"id": "y", "type": "Input", "params": {"shape": [4, 8]}},
                       {"id": "lin", "type": "Linear", "params": {"out_features": 8}},
                       {"id": "att", "type": layer, "params": params or {"nhead": 2}}],
             "edges": edges}
    rep = infer_shapes(graph)
    return [p for p in rep.problems if p.severity == "error"]


def test_a_mask_goes_into_mask_ports_only():
    # a padding mask into a feature port: refused on that edge, with the port to use
    bad = _problems([{"source": "x", "target": "att"}, {"source": "x", "source_port": PADDING_MASK, "target": "lin"}])
    assert any(p.code == "bad_port" and p.node == "lin" and "Fix" in p.message for p in bad), bad
    # an unported mask edge lands on the next free port of the attention layer (not a mask port): refused
    bad = _problems([{"source": "x", "target": "att", "target_port": "in"},
                     {"source": "x", "source_port": PADDING_MASK, "target": "att"}], "MultiheadAttention",
                    {"num_heads": 2})
    assert any(p.code == "bad_port" and "padding_mask" in p.message for p in bad), bad
    # features into the mask port: refused
    bad = _problems([{"source": "x", "target": "att"}, {"source": "x", "target": "att", "target_port": PADDING_MASK}])
    assert any(p.code == "bad_port" and "takes a padding mask" in p.message for p in bad), bad
    # the mask of another sequence (4 steps for a 6-step input): a shape problem on the node
    bad = _problems([{"source": "x", "target": "att"},
                     {"source": "y", "source_port": PADDING_MASK, "target": "att", "target_port": PADDING_MASK}])
    assert any(p.code == "shape" and p.node == "att" and "(B, 6)" in p.message for p in bad), bad
    # causal cross-attention (queries of 6 steps over keys of 4): refused with the fix
    bad = _problems([{"source": "x", "target": "att"}, {"source": "y", "target": "att", "target_port": "key"}],
                    "MultiheadAttention", {"num_heads": 2, "causal": True})
    assert any("causal" in p.message and "Fix" in p.message for p in bad), bad


def test_a_model_without_masks_keeps_its_signature():
    model = _model("TransformerEncoderLayer", 5, causal=True, masked=False)
    assert model.layerlab_padding_masks == []
    assert model(torch.randint(0, 11, (2, 5))).shape == (2, 5, 8)


def _recurrent(layer: str, steps: int, masked: bool, **params) -> torch.nn.Module:
    """tokens (``steps``) → Embedding(4) → ``layer`` (hidden 3, two stacked layers), masked or not."""
    nodes = [{"id": "x", "type": "Input", "params": {"shape": [steps], "modality": "tokens", "vocab_size": 11}},
             {"id": "emb", "type": "Embedding", "params": {"embedding_dim": 4}},
             {"id": "r", "type": layer, "params": {"hidden_size": 3, "num_layers": 2, **params}}]
    edges = [{"source": "x", "target": "emb"}, {"source": "emb", "target": "r"}]
    if masked:
        edges.append({"source": "x", "source_port": PADDING_MASK, "target": "r", "target_port": PADDING_MASK})
    graph = {"nodes": nodes, "edges": edges}
    assert infer_shapes(graph).ok, infer_shapes(graph).problems
    torch.manual_seed(0)
    return compile_graph(graph).eval()


@pytest.mark.parametrize("layer", ("RNN", "LSTM", "GRU"))
@pytest.mark.parametrize("bidirectional", (False, True))
@pytest.mark.parametrize("mode", ("last", "all"))
def test_a_masked_recurrent_layer_reads_a_padded_row_as_the_bare_row(layer, bidirectional, mode):
    """With the padding mask, a row padded at the end gives what the bare row gives (the last state is read at the
    last real step; a bidirectional layer's backward direction starts there), and zeros at the padded steps.
    Unmasked, 'last' was the state after the trailing pads."""
    padded = _recurrent(layer, 6, True, bidirectional=bidirectional, output_mode=mode)
    bare = _recurrent(layer, 3, False, bidirectional=bidirectional, output_mode=mode)
    bare.load_state_dict(padded.state_dict())
    x = torch.tensor([[3, 4, 5, PAD_ID, PAD_ID, PAD_ID], [1, 2, 3, 4, 5, 6], [7, PAD_ID, 8, PAD_ID, PAD_ID, 9]])
    with torch.no_grad():
        got, want = padded(x), bare(x[:1, :3])
        full = _recurrent(layer, 6, False, bidirectional=bidirectional, output_mode=mode)(x[1:2])
        middle = padded(x[2:])  # padding between real steps is read: no step after the last real one to zero
    if mode == "all":
        torch.testing.assert_close(got[:1, :3], want)
        assert not got[0, 3:].any()  # zeros after the last real step
        assert middle[0, 3].abs().sum() > 0
    else:
        torch.testing.assert_close(got[:1], want)
    torch.testing.assert_close(got[1:2], full)  # a row without padding: as unmasked
    with torch.no_grad():
        unmasked = _recurrent(layer, 6, False, bidirectional=bidirectional, output_mode=mode)(x[:1])
    if mode == "last":
        assert not torch.allclose(unmasked, want)  # what the mask fixes: the state after the pads


def test_a_bidirectional_masked_recurrent_layer_warns_it_has_no_onnx_export():
    graph = {"nodes": [{"id": "x", "type": "Input", "params": {"shape": [5], "modality": "tokens", "vocab_size": 9}},
                       {"id": "emb", "type": "Embedding", "params": {"embedding_dim": 4}},
                       {"id": "r", "type": "GRU", "params": {"hidden_size": 3, "bidirectional": True}}],
             "edges": [{"source": "x", "target": "emb"}, {"source": "emb", "target": "r"},
                       {"source": "x", "source_port": PADDING_MASK, "target": "r", "target_port": PADDING_MASK}]}
    rep = infer_shapes(graph)
    assert rep.ok and any("ONNX export cannot express" in w and "Fix" in w for w in rep.nodes["r"].warnings)
    # a mask of another length: a problem on the node
    graph["nodes"].append({"id": "y", "type": "Input", "params": {"shape": [4], "modality": "tokens",
                                                                  "vocab_size": 9}})
    graph["edges"][-1] = {"source": "y", "source_port": PADDING_MASK, "target": "r", "target_port": PADDING_MASK}
    bad = infer_shapes(graph)
    assert not bad.ok and any(p.node == "r" and "one flag per step" in p.message for p in bad.problems)
