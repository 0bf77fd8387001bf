"""Checkpoints: one safetensors file holding weights, optimizer, scheduler, RNG and loop state.

Tensors (model weights, optimizer buffers, RNG states, the current epoch's permutation) are stored as
safetensors; everything else (optimizer hyper-parameters, scheduler state, epoch, history) as JSON in the
file's metadata. Nothing is pickled, so loading a checkpoint cannot run code. Files are written to a
temporary name and renamed, so a crash never leaves a half-written checkpoint. Example::

    >>> save_checkpoint(path, model, optimizer, scheduler, {"epoch": 3})   # doctest: +SKIP
    >>> state = load_checkpoint(path, model, optimizer, scheduler)          # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from .errors import TrainingError

FORMAT = "layerlab-checkpoint-1"


def _cpu(t: torch.Tensor) -> torch.Tensor:
    return t.detach().to("cpu").contiguous().clone()


def model_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's state dict as contiguous CPU tensors (safe to save with safetensors)."""
    return {k: _cpu(v) for k, v in model.state_dict().items()}


def _split_optimizer(sd: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors, state_meta = {}, {}
    for pid, st in sd["state"].items():
        meta = {}
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"optim.{pid}.{k}"] = _cpu(v)
            else:
                meta[k] = v
        state_meta[str(pid)] = meta
    return tensors, {"state": state_meta, "param_groups": sd["param_groups"]}


def _join_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict[str, Any]] = {int(pid): dict(m) for pid, m in meta["state"].items()}
    for key, t in tensors.items():
        if key.startswith("optim."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = t
    return {"state": state, "param_groups": meta["param_groups"]}


def match_param_layout(optimizer: torch.optim.Optimizer) -> None:
    """Give every optimizer state tensor shaped like its parameter that parameter's strides and device.

    Checkpoints store tensors contiguous; ``Optimizer.load_state_dict`` casts dtype and device but keeps
    that layout, so the moments of a channels_last parameter would come back contiguous and a fused
    kernel (which walks both as flat memory) would pair the wrong elements. ``empty_like`` keeps the
    parameter's exact strides, so the resumed step sees the same memory as an uninterrupted one.
    """
    for group in optimizer.param_groups:
        for p in group["params"]:
            st = optimizer.state.get(p)
            if not st:
                continue
            for k, v in st.items():
                if isinstance(v, torch.Tensor) and v.shape == p.shape and v.dim() > 0 and (
                        v.stride() != p.stride() or v.device != p.device):
                    st[k] = torch.empty_like(p, dtype=v.dtype).copy_(v)


def _json(obj: Any) -> str:
    def default(o):
        if isinstance(o, torch.Tensor) and o.numel() == 1:
            return o.item()
        if isinstance(o, tuple):
            return list(o)
        raise TypeError(f"cannot store {type(o).__name__} in a checkpoint")
    return json.dumps(obj, default=default)


def save_checkpoint(path: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None,
                    scheduler: Any = None, state: dict | None = None,
                    tensors: dict[str, torch.Tensor] | None = None) -> Path:
    """Write a checkpoint atomically (temporary file, then rename).

    Args:
        path: target file (``.safetensors``).
        model: weights to save.
        optimizer, scheduler: saved when given.
        state: JSON-serialisable loop state (epoch, history, ...).
        tensors: extra tensors (e.g. ``perm``, ``gen_state``); the torch CPU (and CUDA) RNG is always saved.

    Returns:
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = {f"model.{k}": v for k, v in model_tensors(model).items()}
    meta: dict[str, Any] = {"format": FORMAT, "state": state or {}, "python_random": random.getstate()}
    if optimizer is not None:
        t, m = _split_optimizer(optimizer.state_dict())
        out.update(t)
        meta["optimizer"] = m
    if scheduler is not None:
        meta["scheduler"] = {k: v for k, v in scheduler.state_dict().items() if k != "optimizer"}
    out["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["rng.cuda"] = torch.cuda.get_rng_state()
    for k, v in (tensors or {}).items():
        out[f"extra.{k}"] = _cpu(v)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    save_file(out, str(tmp), metadata={"layerlab": _json(meta)})
    os.replace(tmp, path)
    return path


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Return ``(tensors, meta)`` of a checkpoint without applying it.

    Raises:
        TrainingError: the file is missing or not a LayerLab checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise TrainingError(f"checkpoint {path} not found")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get("layerlab")
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise TrainingError(f"checkpoint {path} is unreadable ({e}); it may be corrupt") from None
    if raw is None:
        raise TrainingError(f"{path} is not a LayerLab checkpoint (no layerlab metadata)")
    meta = json.loads(raw)
    if meta.get("format") != FORMAT:
        raise TrainingError(f"{path}: unknown checkpoint format {meta.get('format')!r}")
    return tensors, meta


def load_checkpoint(path: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None,
                    scheduler: Any = None, *, restore_rng: bool = True) -> tuple[dict, dict[str, torch.Tensor]]:
    """Restore a checkpoint into ``model`` (and optimizer, scheduler, RNG).

    Returns:
        ``(state, extra_tensors)``: the saved loop state and the extra tensors by their names.

    Raises:
        TrainingError: missing or corrupt file, weights that do not fit the model.
    """
    tensors, meta = read_checkpoint(path)
    weights = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        raise TrainingError(f"checkpoint {path} does not fit this model: {str(e).splitlines()[0]}") from None
    if optimizer is not None and "optimizer" in meta:
        optimizer.load_state_dict(_join_optimizer(tensors, meta["optimizer"]))
        match_param_layout(optimizer)
    if scheduler is not None and "scheduler" in meta:
        scheduler.load_state_dict(meta["scheduler"])
    if restore_rng:
        torch.set_rng_state(tensors["rng.torch"])
        if "rng.cuda" in tensors and torch.cuda.is_available():
            torch.cuda.set_rng_state(tensors["rng.cuda"])
        if "python_random" in meta:
            st = meta["python_random"]
            random.setstate((st[0], tuple(st[1]), st[2]))
    extra = {k[6:]: v for k, v in tensors.items() if k.startswith("extra.")}
    return meta.get("state", {}), extra


def save_weights(path: str | Path, model: torch.nn.Module, metadata: dict[str, str] | None = None) -> Path:
    """Write only the model weights as safetensors (atomically), with string metadata."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    md = dict(metadata or {})
    names = getattr(model, "layerlab_names", None)
    if names and "layerlab_names" not in md:
        md["layerlab_names"] = json.dumps(dict(names))
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    save_file(model_tensors(model), str(tmp), metadata=md or None)
    os.replace(tmp, path)
    return path


def load_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read a weights file: ``(state_dict, metadata)``. Raises TrainingError when missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise TrainingError(f"weights file {path} not found")
    try:
        with safe_open(str(path), framework="pt") as f:
            md = dict(f.metadata() or {})
        return load_file(str(path)), md
    except (SafetensorError, OSError, ValueError) as e:
        raise TrainingError(f"weights file {path} is unreadable ({e})") from None


__all__ = ["save_checkpoint", "load_checkpoint", "read_checkpoint", "save_weights", "load_weights",
           "model_tensors"]
