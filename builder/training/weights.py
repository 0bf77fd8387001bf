"""Weights files: a model's state dict as one safetensors file, with string metadata and a SHA-256.

The one writer and reader of weights, with one argument order (model first, as ``torch.save(obj, f)``):
:func:`save_weights` ``(model, path, metadata)`` writes atomically and verifies what it wrote,
:func:`read_weights` ``(path) -> (state_dict, metadata)`` verifies the checksum, and :func:`load_weights`
``(model, path, strict)`` loads a file into a model. Training writes a run's ``model.safetensors`` with it;
``builder.save_weights`` / ``builder.load_weights`` (docs/reference/api.md) and the CLI's ``export`` are these
functions. Nothing is pickled. Example::

    >>> import tempfile, torch
    >>> path = save_weights(torch.nn.Linear(2, 1), tempfile.mkdtemp() + "/w.safetensors")
    >>> sorted(read_weights(path)[0])
    ['bias', 'weight']
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import save_file

from builder.data.disk import atomic_file
from builder.errors import TrainingError
from builder.training.checkpoint import model_tensors, read_tensor_file, tensors_sha256

WEIGHTS_SHA_KEY = "layerlab_sha256"


def save_weights(model: torch.nn.Module, path: str | Path, metadata: dict[str, str] | None = None) -> Path:
    """Write a model's weights as safetensors (atomically), with string ``metadata`` and a SHA-256.

    A compiled model's node names (``layerlab_names``) are stored too. The folder must exist (nothing is
    written on failure). Returns the path written.

    Raises:
        OSError: the folder is missing or not writable.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"cannot write {path}: no folder {path.parent}")
    md = dict(metadata or {})
    names = getattr(model, "layerlab_names", None)
    if names and "layerlab_names" not in md:
        md["layerlab_names"] = json.dumps(dict(names))
    tensors = model_tensors(model)
    md[WEIGHTS_SHA_KEY] = tensors_sha256(tensors)
    # a full disk: one line (builder.data.disk), the weights there before kept
    with atomic_file(path, "the weights", needed=sum(t.numel() * t.element_size() for t in tensors.values())) as tmp:
        save_file(tensors, str(tmp), metadata=md)
        read_weights(tmp)
    return path


def read_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read a weights file: ``(state_dict, metadata)``; the SHA-256 is verified when the file carries one.

    Raises:
        TrainingError: missing, unreadable or damaged (checksum mismatch) file.
    """
    path = Path(path)
    if not path.is_file():
        raise TrainingError(f"weights file {path} not found")
    try:
        sd, md = read_tensor_file(path)
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise TrainingError(f"weights file {path} is unreadable ({str(e)[:200]})") from None
    if WEIGHTS_SHA_KEY in md and tensors_sha256(sd) != md[WEIGHTS_SHA_KEY]:
        raise TrainingError(f"weights file {path} failed its integrity check (SHA-256 differs from the one "
                            "stored); the file was damaged after it was written")
    return sd, md


def load_weights(model: torch.nn.Module, path: str | Path, strict: bool = True) -> torch.nn.Module:
    """Load a weights file into ``model`` (``load_state_dict`` with ``strict``) and return the model.

    Raises:
        TrainingError: missing, unreadable or damaged file.
        RuntimeError: weights that do not fit the model (torch's message names the keys).
    """
    state, _ = read_weights(path)
    model.load_state_dict(state, strict=strict)
    return model


__all__ = ["save_weights", "read_weights", "load_weights", "WEIGHTS_SHA_KEY"]
