"""What an explanation reads off a model and its inputs: modality, layer nodes, target classes, eval mode, seeds.

Shared by the attribution methods (:mod:`builder.interpret.methods`), attention, activations and the sanity checks.
Example::

    >>> import torch
    >>> infer_modality(torch.zeros(2, 1, 8, 8)), infer_modality(torch.zeros(2, 5, dtype=torch.long))
    ('image', 'tokens')
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from builder.data.predictions import predict as predict_outputs
from builder.errors import ExplainError

MODALITIES = ("image", "tabular", "points2d", "sequence", "tokens")
CONV_TYPES = frozenset({"Conv1d", "Conv2d"})
# layers whose forward returns a tuple; Captum's layer methods need a single tensor
TUPLE_OUTPUT_TYPES = frozenset({"MultiheadAttention", "LSTM", "GRU", "RNN"})
_CONTAINER_TYPES = frozenset({"Sequential", "ModuleList", "ModuleDict", "GraphModule"})


def infer_modality(inputs: Tensor) -> str:
    """Guess the modality from a batch: int ids -> tokens, 4-D -> image, 3-D -> sequence, else tabular."""
    if not isinstance(inputs, Tensor):
        raise ExplainError(f"inputs must be a torch.Tensor; received {type(inputs).__name__}")
    if not inputs.is_floating_point():
        return "tokens"
    return {4: "image", 3: "sequence"}.get(inputs.dim(), "tabular")


def model_modality(model: nn.Module) -> str | None:
    """Modality of a compiled graph's single Input node; None for a plain module or several inputs."""
    inputs = getattr(model, "layerlab_inputs", None)
    if not inputs or len(inputs) != 1:
        return None
    nid = inputs[0]
    if getattr(model, "layerlab_input_dtypes", {}).get(nid) == torch.long:
        return "tokens"
    shape = getattr(model, "layerlab_input_shapes", {}).get(nid)
    if shape is None:
        return None
    return {3: "image", 2: "sequence"}.get(len(shape), "tabular")


def norm_modality(modality: str | None, inputs: Tensor | None = None) -> str:
    if modality is None:
        if inputs is None:
            raise ExplainError("modality is required when no inputs are given")
        return infer_modality(inputs)
    if modality not in MODALITIES:
        raise ExplainError(f"unknown modality {modality!r}; expected one of {', '.join(MODALITIES)}")
    return "tabular" if modality == "points2d" else modality


def layer_nodes(model: nn.Module) -> dict[str, str]:
    """Map node id -> layer type for every node that owns a module.

    Uses ``model.layerlab_names``/``layerlab_types`` for compiled graphs; for a plain ``nn.Module``
    the node ids are submodule names and the types their class names.
    """
    names = getattr(model, "layerlab_names", None)
    if names is not None:
        types = getattr(model, "layerlab_types", {}) or {}
        return {nid: types.get(nid, type(model.get_submodule(m)).__name__) for nid, m in names.items()}
    return {n: type(m).__name__ for n, m in model.named_modules()
            if n and type(m).__name__ not in _CONTAINER_TYPES}


def resolve_layer(model: nn.Module, layer: str | nn.Module) -> tuple[str, nn.Module]:
    """Return ``(node_id, module)`` for a node id, a submodule name or a module of ``model``."""
    if isinstance(layer, nn.Module):
        for n, m in model.named_modules():
            if m is layer:
                return n, m
        raise ExplainError("layer: the module given is not part of this model")
    names = getattr(model, "layerlab_names", None) or {}
    if layer in names:
        return layer, model.get_submodule(names[layer])
    try:
        return layer, model.get_submodule(layer)
    except AttributeError:
        known = ", ".join(list(layer_nodes(model))[:20])
        raise ExplainError(f"layer: no node {layer!r} in this model; known nodes: {known}") from None


def module_name(model: nn.Module, node: str) -> str:
    return (getattr(model, "layerlab_names", None) or {}).get(node, node)


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put every submodule in eval mode and restore each one's previous ``training`` flag."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, flag in flags:
            m.training = flag


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed torch's CPU RNG and numpy's global RNG (Captum draws from both) and restore them after."""
    state = np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        try:
            yield
        finally:
            np.random.set_state(state)


class Flat(nn.Module):
    """Wraps a model whose output has more than 2 dims so Captum sees (B, N) scores."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, *xs: Tensor) -> Tensor:
        out = self.model(*xs)
        return out.flatten(1) if out.dim() > 2 else out


def predict(model: nn.Module, inputs: Tensor, batch_size: int = 256) -> tuple[Tensor, Tensor]:
    """Predicted class and its probability for each sample: ``(pred (N,), confidence (N,))``.

    :func:`builder.data.predict` read for classification: several outputs give the argmax of the softmax, one
    output (binary with BCE) class 1 when sigmoid(logit) > 0.5.
    """
    return predict_outputs(model, inputs, "multiclass", batch_size=batch_size).pair()


def resolve_target(model: nn.Module, inputs: Tensor, target: Any = None) -> Tensor | None:
    """Target class per sample: the predicted class when ``target`` is None, else ``target`` checked.

    Returns None for single-output models (regression), where Captum needs no target.

    Raises:
        ExplainError: a class out of range, or a count that is neither 1 nor one per sample.
    """
    with torch.no_grad(), eval_mode(model):
        out = model(inputs)
    return target_from_output(out, target)


def target_from_output(out: Tensor, target: Any) -> Tensor | None:
    n_out = out[0].numel() if out.dim() > 1 else 1
    if n_out == 1:
        return None
    if target is None:
        return out.flatten(1).argmax(1)
    t = torch.as_tensor(target).long().flatten().to(out.device)
    if t.numel() == 1:
        t = t.expand(len(out)).clone()
    if t.numel() != len(out):
        raise ExplainError(f"target: expected one class or {len(out)} (one per sample); received {t.numel()}")
    if int(t.min()) < 0 or int(t.max()) >= n_out:
        raise ExplainError(f"target: class must be in [0, {n_out - 1}]; received {t.tolist()}")
    return t


def has_weights(model: nn.Module, node: str) -> bool:
    """Whether the module behind ``node`` has parameters."""
    return any(True for _ in model.get_submodule(module_name(model, node)).parameters())


def n_inputs_outputs(model: nn.Module) -> tuple[int, int]:
    """Input and output node counts of a compiled graph ((1, 1) for a plain module)."""
    return (len(getattr(model, "layerlab_inputs", None) or [None]),
            len(getattr(model, "layerlab_outputs", None) or [None]))


__all__ = ["MODALITIES", "CONV_TYPES", "TUPLE_OUTPUT_TYPES", "infer_modality", "model_modality", "norm_modality",
           "layer_nodes", "resolve_layer", "module_name", "has_weights", "n_inputs_outputs", "eval_mode", "seeded",
           "Flat", "predict", "resolve_target", "target_from_output"]
