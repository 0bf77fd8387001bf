"""Layer specs of the palette group Recurrent: Embedding, RNN, LSTM and GRU."""

from __future__ import annotations

import operator

from builder.graph.layers._common import (
    _float,
    _int,
    _torch,
)
from builder.graph.spec import MAX_SIZE, TOKENS, Cost, LayerSpec, Param, ShapeError, TensorType, register

# ----------------------------------------------------------------------------------------- Recurrent


def _embedding_shape(p, ins):
    (t,) = ins
    if t.kind != TOKENS:
        raise ShapeError(f"expects token ids from an Input with modality 'tokens'; received: float tensor {t}. "
                         "Fix: set the Input's modality to 'tokens' or remove the Embedding")
    if t.vocab is None:  # integers from an operator (an imported model): how many ids is not known
        raise ShapeError(f"needs to know how many token ids there are; received: integers {t} without a vocabulary "
                         "(an operator's output). Fix: put a Cast with dtype int64 and vocab_size before the Embedding")
    if p["padding_idx"] is not None and p["padding_idx"] >= t.vocab:
        raise ShapeError(f"padding_idx must be a token id below vocab_size {t.vocab}; received: "
                         f"padding_idx={p['padding_idx']}. Fix: use 0..{t.vocab - 1} or leave it empty")
    return TensorType((*t.shape, p["embedding_dim"]))


register(LayerSpec(
    "Embedding", "Recurrent", "Looks up a learned vector for each token id.",
    params=[_int("embedding_dim", 32, "Size of each token vector.", hi=65536),
            Param("padding_idx", "int", None, "Token id whose vector stays zero (optional).", min=0, max=MAX_SIZE,
                  nullable=True)],
    shape=_embedding_shape, inferred=("num_embeddings",), input_kind=TOKENS,
    ctor=lambda p, ins: ("Embedding", {"num_embeddings": ins[0].vocab, **p})))


def _rnn_shape(p, ins):
    (t,) = ins
    _float(t)
    if len(t.shape) != 2:
        raise ShapeError(f"expects a sequence (B, T, F); received: {t}. Fix: feed an Embedding, a sequence Input, "
                         "or Permute a (B, C, L) tensor with dims [0, 2, 1]")
    h = p["hidden_size"] * (2 if p["bidirectional"] else 1)
    last = TensorType((h,))
    out = TensorType((t.shape[0], h)) if p["output_mode"] == "all" else last
    return {"out": out, "h_n": last}


def _rnn_ctor(cls: str):
    def ctor(p, ins):
        kw = {"input_size": ins[0].shape[-1], "hidden_size": p["hidden_size"], "num_layers": p["num_layers"]}
        if cls == "RNN":
            kw["nonlinearity"] = p["nonlinearity"]
        kw.update(batch_first=True, dropout=p["dropout"], bidirectional=p["bidirectional"])
        return cls, kw
    return ctor


def _rnn_emit(cls: str):
    def emit(e, attr, p, ins, types):
        res = e.module(attr, ins[0], as_="result")
        seq = e.fn(operator.getitem, res, 0, as_="steps")  # (B, T, H*D)
        h = e.fn(operator.getitem, res, 1, as_="state")
        if cls == "LSTM":
            h = e.fn(operator.getitem, h, 0, as_="hidden")  # (layers*D, B, H)
        if p["bidirectional"]:
            last = e.fn(_torch().cat, [e.fn(operator.getitem, h, -2, as_="fwd"),
                                    e.fn(operator.getitem, h, -1, as_="bwd")], dim=-1)
        else:
            last = e.fn(operator.getitem, h, -1)  # (B, H)
        return {"out": seq if p["output_mode"] == "all" else last, "h_n": last}
    return emit


def _rnn_params(cls: str) -> list[Param]:
    ps = [_int("hidden_size", 64, "Size of the hidden state.", hi=65536),
          _int("num_layers", 1, "Stacked recurrent layers.", hi=16)]
    if cls == "RNN":
        ps.append(Param("nonlinearity", "choice", "tanh", "Activation inside the cell.", choices=("tanh", "relu")))
    ps += [Param("bidirectional", "bool", False, "Also read the sequence backwards (doubles the output size)."),
           Param("dropout", "float", 0.0, "Dropout between stacked layers.", min=0.0, max=1.0),
           Param("output_mode", "choice", "last", "'last': the final hidden state (B, H); 'all': every step (B, T, H).",
                 choices=("last", "all"))]
    return ps


def _rnn_lint(p, ins) -> list[str]:
    if p["dropout"] > 0 and p["num_layers"] == 1:
        return [f"dropout only acts between stacked layers; received: dropout={p['dropout']:g} with num_layers=1. "
                "Fix: set num_layers ≥ 2 or add a Dropout node after this layer"]
    return []


def _rnn_cost(cls: str):
    # values kept per layer, direction, step and hidden unit: gate pre-activations, states and the kernels'
    # workspace (measured with saved-tensor hooks on torch's CPU kernels: 1.5-1.8, 7.5-7.8, 17-20.5)
    # and on CUDA by cuDNN's reserve space (2, 6 and 7 after the forward pass on an H100) plus its backward workspace
    # (the LSTM's measured training peak needs 10; RNN and GRU scaled alike)
    kept = {"RNN": 2, "LSTM": 20, "GRU": 8}[cls]
    kept_cuda = {"RNN": 3, "LSTM": 10, "GRU": 11}[cls]

    def cost(p, ins, outs) -> Cost:
        """Per layer and direction: the gate pre-activations and hidden states of every step, kept for backward."""
        steps = p["num_layers"] * (2 if p["bidirectional"] else 1) * ins[0].shape[0] * p["hidden_size"]
        return Cost(work=steps * kept, cuda_work=steps * kept_cuda)
    return cost


for _cls in ("RNN", "LSTM", "GRU"):
    register(LayerSpec(_cls, "Recurrent", f"{_cls} over a sequence (B, T, F). Ports: out (per output_mode), h_n "
                       "(final state).", params=_rnn_params(_cls), shape=_rnn_shape, ctor=_rnn_ctor(_cls), lint=_rnn_lint,
                       cost=_rnn_cost(_cls),
                       inferred=("input_size",), outputs=("out", "h_n"), emit=_rnn_emit(_cls),
                       strides="any"))  # batch_first outputs are transposes
