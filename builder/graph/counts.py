"""Parameter and buffer counts of the torch.nn modules LayerLab builds, computed without importing torch.

Validating a graph and inferring its shapes (the Build page on every edit) needs each node's parameter count
but no tensors; importing torch for it cost a cold first visit ~1.3 s. :func:`module_counts` computes the
counts from the constructor arguments for every class a registered layer builds, with torch's defaults, and
falls back to building the module on torch's meta device for any other class. ``tests/graph/test_counts.py`` checks
every registered layer against the real module.

Example::

    >>> module_counts("Linear", {"in_features": 4, "out_features": 3, "bias": True})
    (15, 0)
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

__all__ = ["module_counts", "COUNTED"]

Counts = tuple[int, int]  # (parameter values, buffer values)


def _taps(k: Any, dims: int) -> int:
    return math.prod(k) if isinstance(k, (list, tuple)) else int(k) ** dims


def _dense(i: int, o: int, bias: bool) -> int:
    """The values of an ``i``-to-``o`` weight matrix and its bias."""
    return i * o + (o if bias else 0)


def _linear(kw: dict) -> Counts:
    return _dense(kw["in_features"], kw["out_features"], kw.get("bias", True)), 0


def _conv(dims: int, transposed: bool = False) -> Callable[[dict], Counts]:
    def count(kw: dict) -> Counts:
        i, o, g = kw["in_channels"], kw["out_channels"], kw.get("groups", 1)
        w = (i * (o // g) if transposed else o * (i // g)) * _taps(kw["kernel_size"], dims)
        return w + (o if kw.get("bias", True) else 0), 0
    return count


def _running_norm(affine: bool, track: bool) -> Callable[[dict], Counts]:
    """BatchNorm (affine, running statistics by default) and InstanceNorm (neither by default): a scale and a
    shift per channel, and a running mean, a running variance and a batch count."""
    def count(kw: dict) -> Counts:
        c = kw["num_features"]
        return (2 * c if kw.get("affine", affine) else 0), (2 * c + 1 if kw.get("track_running_stats", track) else 0)
    return count


def _layernorm(kw: dict) -> Counts:
    shape = kw["normalized_shape"]
    n = math.prod(shape) if isinstance(shape, (list, tuple)) else int(shape)
    if not kw.get("elementwise_affine", True):
        return 0, 0
    return n * (2 if kw.get("bias", True) else 1), 0


def _groupnorm(kw: dict) -> Counts:
    return (2 * kw["num_channels"] if kw.get("affine", True) else 0), 0


def _prelu(kw: dict) -> Counts:
    return kw.get("num_parameters", 1), 0


def _embedding(kw: dict) -> Counts:
    return kw["num_embeddings"] * kw["embedding_dim"], 0


def _rnn(gates: int) -> Callable[[dict], Counts]:
    def count(kw: dict) -> Counts:
        h, layers = kw["hidden_size"], kw.get("num_layers", 1)
        dirs = 2 if kw.get("bidirectional", False) else 1
        bias = kw.get("bias", True)
        total = 0
        for layer in range(layers):
            i = kw["input_size"] if layer == 0 else h * dirs
            total += dirs * (gates * h * (i + h) + (2 * gates * h if bias else 0))
        return total, 0
    return count


def _attention(e: int, bias: bool) -> int:
    """Multi-head attention of width ``e``: the query, key and value projections and the output projection."""
    return 4 * _dense(e, e, bias)


def _mha(kw: dict) -> Counts:
    e = kw["embed_dim"]
    if kw.get("kdim", e) != e or kw.get("vdim", e) != e or kw.get("add_bias_kv", False):
        raise KeyError("kdim/vdim/add_bias_kv")  # not built by any registered layer: counted by torch
    return _attention(e, kw.get("bias", True)), 0


def _transformer_layer(attentions: int, norms: int) -> Callable[[dict], Counts]:
    """A Transformer layer: its attention blocks (the encoder's self-attention; the decoder's also attends to the
    memory), the feed-forward block (two Linear) and a LayerNorm after each of them."""
    def count(kw: dict) -> Counts:
        e, f, b = kw["d_model"], kw.get("dim_feedforward", 2048), kw.get("bias", True)
        norm, _ = _layernorm({"normalized_shape": e, "bias": b})
        return attentions * _attention(e, b) + _dense(e, f, b) + _dense(f, e, b) + norms * norm, 0
    return count


def _none(kw: dict) -> Counts:
    return 0, 0


_COUNTERS: dict[str, Callable[[dict], Counts]] = {
    "Linear": _linear, "Conv1d": _conv(1), "Conv2d": _conv(2), "ConvTranspose2d": _conv(2, transposed=True),
    "ConvTranspose1d": _conv(1, transposed=True), "BatchNorm1d": _running_norm(True, True), "BatchNorm2d": _running_norm(True, True), "LayerNorm": _layernorm, "GroupNorm": _groupnorm,
    "Embedding": _embedding, "RNN": _rnn(1), "LSTM": _rnn(4), "GRU": _rnn(3), "MultiheadAttention": _mha,
    "TransformerEncoderLayer": _transformer_layer(1, 2), "TransformerDecoderLayer": _transformer_layer(2, 3),
    "InstanceNorm1d": _running_norm(False, False), "InstanceNorm2d": _running_norm(False, False),
    "PReLU": _prelu,
    **dict.fromkeys(("ReLU6", "Hardtanh", "Hardsigmoid", "Hardswish", "Mish", "SELU", "CELU", "Softplus", "Softsign",
                     "Tanhshrink", "LocalResponseNorm", "PixelShuffle", "PixelUnshuffle", "Upsample"), _none),
    **dict.fromkeys(("MaxPool1d", "MaxPool2d", "AvgPool1d", "AvgPool2d", "AdaptiveAvgPool1d", "AdaptiveAvgPool2d",
                     "Dropout", "Dropout2d", "ReLU", "LeakyReLU", "ELU", "GELU", "SiLU", "Sigmoid", "Tanh",
                     "Softmax", "LogSoftmax", "Flatten", "Unflatten", "Identity"), _none),
}
COUNTED = frozenset(_COUNTERS)


def _meta_counts(cls: str, kwargs: dict) -> Counts:
    """Build ``nn.<cls>(**kwargs)`` on torch's meta device (nothing allocated) and count."""

    import torch  # lazy: heavy (torch)
    from torch import nn  # lazy: heavy (torch)

    with torch.device("meta"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's own warnings are reported as lint problems
        module = getattr(nn, cls)(**kwargs)
    return sum(p.numel() for p in module.parameters()), sum(b.numel() for b in module.buffers())


def module_counts(cls: str, kwargs: dict) -> Counts:
    """(parameter values, buffer values) of ``torch.nn.<cls>(**kwargs)``.

    Computed from the arguments for the classes in :data:`COUNTED`; any other class is built on the meta
    device. Raises what torch's constructor raises for arguments it rejects (TypeError, ValueError, ...).
    """
    count = _COUNTERS.get(cls)
    if count is not None:
        try:
            return count(kwargs)
        except KeyError:  # an argument this table does not model: let torch count
            pass
    return _meta_counts(cls, kwargs)
