"""Per-head attention maps of every MultiheadAttention / TransformerEncoderLayer / TransformerDecoderLayer node
(a decoder's self-attention), and rollout.

Graph nodes call attention with ``need_weights=False``; :func:`capture_attention` flips that with
forward pre-hooks for one forward pass and reads the weights from the output. Example::

    >>> import builder, torch
    >>> model = builder.compile_graph(builder.load_template("transformer").graph)  # 4 heads, 16 tokens
    >>> maps = capture_attention(model, torch.randint(0, 12, (1, 16)))
    >>> {k: tuple(v.shape) for k, v in maps.items()}  # (B, heads, T, T)
    {'encoder1': (1, 4, 16, 16), 'encoder2': (1, 4, 16, 16)}
    >>> attention_rollout(maps).shape
    torch.Size([1, 16, 16])
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from builder.errors import ExplainError
from builder.graph.registry import PAD_ID
from builder.interpret.model import eval_mode, layer_nodes, resolve_layer

ATTENTION_TYPES = ("MultiheadAttention", "TransformerEncoderLayer", "TransformerDecoderLayer")
# nn.MultiheadAttention.forward(query, key, value, key_padding_mask, need_weights, attn_mask,
#                               average_attn_weights, is_causal)
_MHA_ARGS = ("query", "key", "value", "key_padding_mask", "need_weights", "attn_mask",
             "average_attn_weights", "is_causal")


def attention_nodes(model: nn.Module) -> list[str]:
    """Node ids of the attention nodes (:data:`ATTENTION_TYPES`), in module order.

    For a plain ``nn.Module`` an encoder or decoder layer's inner attention modules are not listed separately.
    """
    nodes = [n for n, t in layer_nodes(model).items() if t in ATTENTION_TYPES]
    encoders = [n for n in nodes if layer_nodes(model)[n] != "MultiheadAttention"]
    if getattr(model, "layerlab_names", None) is None:
        nodes = [n for n in nodes if not any(n.startswith(e + ".") for e in encoders)]
    return nodes


def _mha_of(module: nn.Module, node: str) -> nn.MultiheadAttention:
    if isinstance(module, nn.MultiheadAttention):
        return module
    attn = getattr(module, "self_attn", None)
    if isinstance(attn, nn.MultiheadAttention):
        return attn
    raise ExplainError(f"node {node}: not a MultiheadAttention, TransformerEncoderLayer or TransformerDecoderLayer "
                       f"(it is {type(module).__name__})")


def _want_weights(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    kwargs = dict(kwargs)
    for name, value in zip(_MHA_ARGS[3:], args[3:]):
        kwargs[name] = value
    kwargs["need_weights"] = True
    kwargs["average_attn_weights"] = False
    return args[:3], kwargs


@contextlib.contextmanager
def _no_fastpath() -> Iterator[None]:
    """Disable the fused MHA/encoder fast path, which skips ``self_attn`` in eval mode under no_grad.

    Recent torch already leaves the fast path when hooks are attached; this covers versions that don't.
    """
    mha = getattr(torch.backends, "mha", None)
    if mha is None or not hasattr(mha, "set_fastpath_enabled"):
        yield
        return
    before = mha.get_fastpath_enabled()
    mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        mha.set_fastpath_enabled(before)


def capture_attention(model: nn.Module, inputs: Tensor, nodes: Sequence[str] | None = None,
                      ) -> dict[str, Tensor]:
    """Run the model once and return each attention node's weights (B, heads, T_q, T_k).

    Keys follow execution order (the order rollout needs). Each row sums to 1.

    Raises:
        ExplainError: the model has no attention node, or a node given is not one.
    """
    nodes = attention_nodes(model) if nodes is None else list(nodes)
    if not nodes:
        raise ExplainError("attention: needs a MultiheadAttention or TransformerEncoderLayer node; "
                           "this graph has none")
    captured: dict[str, Tensor] = {}
    handles: list[Any] = []

    def reader(node: str):
        def hook(module: nn.Module, args: tuple, output: Any) -> None:
            if isinstance(output, tuple) and len(output) > 1 and output[1] is not None:
                captured[node] = output[1].detach()  # (B, heads, T, T)
        return hook

    try:
        for node in nodes:
            mha = _mha_of(resolve_layer(model, node)[1], node)
            handles.append(mha.register_forward_pre_hook(_want_weights, with_kwargs=True))
            handles.append(mha.register_forward_hook(reader(node)))
        with _no_fastpath(), torch.no_grad(), eval_mode(model):
            model(inputs)
    finally:
        for h in handles:
            h.remove()
    missing = [n for n in nodes if n not in captured]
    if missing:
        raise ExplainError(f"attention: nodes {', '.join(missing)} were not run by the forward pass")
    return captured


def drop_padding(maps: Mapping[str, Tensor], ids: Tensor) -> dict[str, Tensor]:
    """The maps of one sample of token ids ``ids`` (1, T) cut to its real tokens (those before the trailing
    :data:`~builder.graph.registry.PAD_ID` padding), when no real token attends to the padding (the model masks
    it): the padding's rows and columns say nothing then. Unchanged otherwise (float inputs, no padding, or a
    model that reads the padding: worth seeing).

    >>> w = torch.tensor([[[[1.0, 0, 0], [0.5, 0.5, 0], [0.3, 0.3, 0.4]]]])  # (1, heads, T, T)
    >>> drop_padding({"a": w}, torch.tensor([[5, 7, 0]]))["a"].shape
    torch.Size([1, 1, 2, 2])
    """
    steps = ids.reshape(-1)
    if steps.dtype != torch.long or ids.shape[0] != 1:
        return dict(maps)
    real = (steps != PAD_ID).nonzero()
    n = int(real[-1]) + 1 if len(real) else 0
    if n in (0, len(steps)) or any(float(w[..., :n, n:].abs().sum()) > 1e-6 for w in maps.values()):
        return dict(maps)
    return {k: w[..., :n, :n] for k, w in maps.items()}  # (1, heads, n, n)


def mean_over_heads(weights: Tensor) -> Tensor:
    """Average (B, heads, T, T) attention over heads -> (B, T, T)."""
    if weights.dim() != 4:
        raise ExplainError(f"attention weights must be (B, heads, T, T); received {tuple(weights.shape)}")
    return weights.mean(1)


def attention_rollout(maps: Mapping[str, Tensor] | Sequence[Tensor], residual: float = 0.5) -> Tensor:
    """Attention rollout (Abnar & Zuidema, 2020) across layers in execution order -> (B, T, T).

    Each layer's head-averaged map is mixed with the identity for the residual connection,
    ``A' = residual * I + (1 - residual) * A``, row-normalised, and the layers multiplied
    bottom-up: ``R = A'_L ... A'_1``. Row i says how much output token i draws on each input token.
    """
    layers = list(maps.values()) if isinstance(maps, Mapping) else list(maps)
    if not layers:
        raise ExplainError("attention rollout needs at least one attention layer")
    if not 0.0 <= residual <= 1.0:
        raise ExplainError(f"residual must be in [0, 1]; received {residual}")
    rollout = None
    for w in layers:
        a = mean_over_heads(w) if w.dim() == 4 else w  # (B, T, T)
        if a.shape[-1] != a.shape[-2]:
            raise ExplainError(f"attention rollout needs self-attention (T x T) maps; received {tuple(a.shape)}")
        eye = torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
        a = residual * eye + (1 - residual) * a
        a = a / a.sum(-1, keepdim=True)
        if rollout is not None and rollout.shape != a.shape:
            raise ExplainError(f"attention rollout: layer shapes differ ({tuple(rollout.shape)} vs "
                               f"{tuple(a.shape)})")
        rollout = a if rollout is None else a @ rollout
    return rollout


__all__ = ["ATTENTION_TYPES", "attention_nodes", "capture_attention", "drop_padding", "mean_over_heads",
           "attention_rollout"]
