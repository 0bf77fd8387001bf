"""Layer specs of the palette group Recurrent: Embedding, RNN, LSTM and GRU."""

from __future__ import annotations

import operator

from builder.graph.layers._common import (
    _args,
    _float,
    _int,
    _mask_check,
    _torch,
)
from builder.graph.spec import (
    MAX_SIZE,
    PADDING_MASK,
    TOKENS,
    Cost,
    LayerSpec,
    Param,
    ShapeError,
    TensorType,
    by_port,
    register,
)

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
    a = by_port(_RNN, ins)
    t = a["in"]
    _float(t)
    if len(t.shape) != 2:
        raise ShapeError(f"expects a sequence (B, T, F); received: {t}. Fix: feed an Embedding, a sequence Input, "
                         "or Permute a (B, C, L) tensor with dims [0, 2, 1]")
    _mask_check(a.get(PADDING_MASK), t, PADDING_MASK, "input")
    h = p["hidden_size"] * (2 if p["bidirectional"] else 1)
    last = TensorType((h,))
    out = TensorType((t.shape[0], h)) if p["output_mode"] == "all" else last
    return {"out": out, "h_n": last}


def _rnn_ctor(cls: str):
    def ctor(p, ins):
        kw = {"input_size": by_port(_RNN, ins)["in"].shape[-1], "hidden_size": p["hidden_size"], "num_layers": p["num_layers"]}
        if cls == "RNN":
            kw["nonlinearity"] = p["nonlinearity"]
        kw.update(batch_first=True, dropout=p["dropout"], bidirectional=p["bidirectional"])
        return cls, kw
    return ctor


def _final_state(e, cls: str, p, res):
    """The last layer's final hidden state (B, H·D) of a recurrent module's result ``(steps, state)``."""
    h = e.fn(operator.getitem, res, 1, as_="state")
    if cls == "LSTM":
        h = e.fn(operator.getitem, h, 0, as_="hidden")  # (layers*D, B, H)
    if p["bidirectional"]:
        return e.fn(_torch().cat, [e.fn(operator.getitem, h, -2, as_="fwd"),
                                   e.fn(operator.getitem, h, -1, as_="bwd")], dim=-1)
    return e.fn(operator.getitem, h, -1)  # (B, H)


def _last_real(e, mask):
    """``(B, T)`` masks of each row's last real (unpadded) step and of the padded steps after it: where the
    running count of real steps equals its total (none for a row without real steps)."""
    real = e.method("logical_not", mask, as_="real")  # (B, T)
    count = e.method("cumsum", e.method("long", real, as_="real_ids"), 1, as_="real_count")
    total = e.fn(operator.getitem, count, (slice(None), slice(-1, None)), as_="real_total")  # (B, 1)
    done = e.method("eq", count, total, as_="no_more_real")
    return e.method("logical_and", real, done, as_="last_step"), e.method("logical_and", mask, done, as_="after_last")


def _masked_emit(e, cls: str, attr, p, x, mask, steps: int):
    """The recurrent layer on rows padded at the end: one direction runs over the whole row (a padded step after
    the real ones changes none of their outputs) and each row's state is read at its last real step; two
    directions pack the rows (the backward one must start at the last real step), which ONNX cannot express.
    Steps after the last real one are zeros in the sequence output (a padded step between real ones is read)."""
    last, after = _last_real(e, mask)
    if p["bidirectional"]:
        rnn = _torch().nn.utils.rnn
        lengths = e.method("add", e.method("argmax", e.method("long", last, as_="last_ids"), 1, as_="last_index"), 1,
                           as_="lengths")
        packed = e.fn(rnn.pack_padded_sequence, x, e.method("cpu", lengths, as_="lengths_cpu"), batch_first=True,
                      enforce_sorted=False, as_="packed")
        res = e.module(attr, packed, as_="result")
        seq = e.fn(operator.getitem, e.fn(rnn.pad_packed_sequence, e.fn(operator.getitem, res, 0, as_="packed_steps"),
                                          batch_first=True, total_length=steps, as_="unpacked"), 0, as_="steps")
        final = _final_state(e, cls, p, res)
    else:
        res = e.module(attr, x, as_="result")
        seq = e.fn(operator.getitem, res, 0, as_="steps")  # (B, T, H)
        pick = e.method("to", e.method("unsqueeze", last, -1, as_="pick_step"), e.fn(getattr, seq, "dtype"),
                        as_="pick")  # (B, T, 1): 1 at the last real step (a sum, not a gather: ONNX imports it)
        final = e.method("sum", e.method("mul", seq, pick, as_="picked"), 1)  # (B, H)
    seq = e.method("masked_fill", seq, e.method("unsqueeze", after, -1, as_="pad_steps"), 0.0)  # zeros at padding
    return {"out": seq if p["output_mode"] == "all" else final, "h_n": final}


def _rnn_emit(cls: str):
    def emit(e, attr, p, ins, types):
        a = _args(_RNN, ins, types)
        if PADDING_MASK in a:
            return _masked_emit(e, cls, attr, p, a["in"], a[PADDING_MASK], by_port(_RNN, types)["in"].shape[0])
        res = e.module(attr, a["in"], as_="result")
        seq = e.fn(operator.getitem, res, 0, as_="steps")  # (B, T, H*D)
        last = _final_state(e, cls, p, res)
        return {"out": seq if p["output_mode"] == "all" else last, "h_n": last}
    return emit


def _rnn_params(cls: str) -> list[Param]:
    ps = [_int("hidden_size", 64, "Size of the hidden state.", hi=65536),
          _int("num_layers", 1, "Stacked recurrent layers.", hi=16)]
    if cls == "RNN":
        ps.append(Param("nonlinearity", "choice", "tanh", "Activation inside the cell.", choices=("tanh", "relu")))
    ps += [Param("bidirectional", "bool", False, "Also read the sequence backwards (doubles the output size)."),
           Param("dropout", "float", 0.0, "Dropout between stacked layers.", min=0.0, max=1.0),
           Param("output_mode", "choice", "last", "'last': the final hidden state (B, H); 'all': every step (B, T, H). "
                 "With a padding_mask: the state at each row's last real step, and zeros at the padded steps after it.",
                 choices=("last", "all"))]
    return ps


def _rnn_lint(p, ins) -> list[str]:
    out = []
    if p["dropout"] > 0 and p["num_layers"] == 1:
        out.append(f"dropout only acts between stacked layers; received: dropout={p['dropout']:g} with "
                   "num_layers=1. Fix: set num_layers ≥ 2 or add a Dropout node after this layer")
    if p["bidirectional"] and PADDING_MASK in by_port(_RNN, ins):
        out.append(f"{ONNX_REFUSAL}; received: bidirectional=True with a padding_mask. Fix: for an ONNX file "
                   "set bidirectional off or disconnect the padding_mask (.py export and training work)")
    return out


#: why a bidirectional recurrent layer with a padding mask has no ONNX export: its validation warning, which
#: onnx_export's no_onnx_nodes reads (the marker ``has no ONNX form``) to refuse it by name before exporting
ONNX_REFUSAL = ("a bidirectional recurrent layer with a padding mask has no ONNX form: ONNX export cannot express its "
                "backward direction, which starts at each row's last real step (packed sequences, which torch.onnx "
                "cannot export)")


def _rnn_cost(cls: str):
    # values kept per layer, direction, step and hidden unit: gate pre-activations, states and the kernels'
    # workspace (measured with saved-tensor hooks on torch's CPU kernels: 1.5-1.8, 7.5-7.8, 17-20.5)
    # and on CUDA by cuDNN's reserve space (2, 6 and 7 after the forward pass on an H100) plus its backward workspace
    # (the LSTM's measured training peak needs 10; RNN and GRU scaled alike)
    kept = {"RNN": 2, "LSTM": 20, "GRU": 8}[cls]
    kept_cuda = {"RNN": 3, "LSTM": 10, "GRU": 11}[cls]

    def cost(p, ins, outs) -> Cost:
        """Per layer and direction: the gate pre-activations and hidden states of every step, kept for backward."""
        a = by_port(_RNN, ins)
        t, f = a["in"].shape
        h, dirs = p["hidden_size"], 2 if p["bidirectional"] else 1
        steps = p["num_layers"] * dirs * t * h
        packed = t * f if PADDING_MASK in a else 0  # with a padding mask: the packed copy of the input, kept (measured:
        # a GRU or RNN with a mask kept twice its input where the estimate counted it once)
        if cls != "LSTM":
            return Cost(work=steps * kept + packed, cuda_work=steps * kept_cuda + packed)
        # the CPU LSTM (oneDNN) keeps a workspace whose rows are at least 8 units wide and as wide as the layer's
        # input: per step, 20·max(H, 8) + 8·(input width − max(H, 16)) where the input is wider (measured with
        # saved-tensor hooks per sample, 1 to 3 layers, F 1-256, H 1-256: 138 values at F=1, H=1 and 1,944 at
        # F=256, H=1, where 20·H counted 20; measured is 0.78-1.2 times this formula with the kept input)
        widths = [f] + [dirs * h] * (p["num_layers"] - 1)
        cpu = sum(dirs * t * (20 * max(h, 8) + 8 * max(0, w - max(h, 16))) for w in widths)
        return Cost(work=cpu + packed, cuda_work=steps * kept_cuda + packed)
    return cost


for _cls in ("RNN", "LSTM", "GRU"):
    _RNN = register(LayerSpec(
        _cls, "Recurrent", f"{_cls} over a sequence (B, T, F). Ports: out (per output_mode), h_n (final state). "
        "An optional padding_mask port (from a token or sequence Input, padded at the end) reads each row's state "
        "at its last real step and gives zeros at padded steps, so short padded texts are read as they are "
        "(bidirectional: the backward direction starts at the last real step; no ONNX export then).",
        params=_rnn_params(_cls), shape=_rnn_shape, ctor=_rnn_ctor(_cls), lint=_rnn_lint, cost=_rnn_cost(_cls),
        inferred=("input_size",), inputs=("in", PADDING_MASK), optional_inputs=(PADDING_MASK,),
        mask_inputs=(PADDING_MASK,), outputs=("out", "h_n"), emit=_rnn_emit(_cls),
        strides="any"))  # batch_first outputs are transposes
