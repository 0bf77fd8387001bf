"""Checkpoints: one safetensors file holding weights, optimizer, scheduler, RNG and loop state.

Tensors (model weights, optimizer buffers, RNG states, the current epoch's permutation) are stored as
safetensors; everything else (optimizer hyper-parameters, scheduler state, epoch, history) as JSON in the
file's metadata. Nothing is pickled, so loading a checkpoint cannot run code. Files are written to a
temporary name, read back and verified against a SHA-256 of their tensor bytes (stored in the metadata), and
only then renamed over the last checkpoint, whose predecessor is kept as ``<name>.previous.safetensors``.
Loading verifies the checksum and the metadata's types and ranges; a damaged checkpoint falls back to the
previous one with a message, so flipped bytes are never trained on. Example::

    # not a doctest (needs files or training): run by tests/training/test_checkpoint.py::test_round_trip_restores_everything
    save_checkpoint(path, model, optimizer, scheduler, {"epoch": 3})
    state = load_checkpoint(path, model, optimizer, scheduler)
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import safe_open, save_file

from builder.data.disk import on_full_disk
from builder.errors import TrainingError

FORMAT = "layerlab-checkpoint-1"


def _cpu(t: torch.Tensor) -> torch.Tensor:
    return t.detach().to("cpu").contiguous().clone()


def model_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's state dict as contiguous CPU tensors (safe to save with safetensors)."""
    return {k: _cpu(v) for k, v in model.state_dict().items()}


def split_optimizer(sd: dict) -> tuple[dict[str, torch.Tensor], dict]:
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


def join_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    """Inverse of :func:`split_optimizer`. Raises KeyError/TypeError/ValueError on malformed metadata."""
    if not isinstance(meta.get("state"), dict) or not isinstance(meta.get("param_groups"), list):
        raise TypeError("optimizer metadata needs a 'state' dict and a 'param_groups' list")
    state: dict[int, dict[str, Any]] = {}
    for pid, m in meta["state"].items():
        if not isinstance(m, dict):
            raise TypeError(f"optimizer state {pid!r} is {type(m).__name__}, not a dict")
        state[_small_int(pid, "optimizer parameter id")] = dict(m)
    for key, t in tensors.items():
        if key.startswith("optim."):
            _, pid, name = key.split(".", 2)
            state.setdefault(_small_int(pid, "optimizer parameter id"), {})[name] = t
    return {"state": state, "param_groups": meta["param_groups"]}


def _small_int(v: Any, what: str, lo: int = 0, hi: int = 10**9) -> int:
    """``v`` as an int in [lo, hi] (bools, floats, huge and negative numbers refused). Raises ValueError."""
    if isinstance(v, str) and v.isascii() and v.isdigit() and len(v) <= 10:
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise ValueError(f"{what} must be an integer in [{lo}, {hi}]; received: {str(v)[:40]!r}")
    return v


def tensors_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes (sorted by name)."""
    h = hashlib.sha256()
    for k in sorted(tensors):
        t = tensors[k].detach().to("cpu").contiguous()
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}|".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


def read_tensor_file(path: Path, check: Callable[[Any], None] | None = None) -> tuple[dict[str, torch.Tensor],
                                                                                    dict[str, str]]:
    """``(tensors, metadata)`` of a safetensors file, both read through one open handle; ``check`` (given the
    handle, before any tensor is read: its ``keys()`` and ``get_slice(k)`` shapes and dtypes) may refuse it.

    A job renames a new checkpoint or weights file over the old one while pages and tests read it: reading the
    metadata and the tensors through two opens could pair one version's checksum with the next one's tensors,
    and a size checked before opening belongs to another file. One handle holds one version whole, whatever is
    renamed over its name meanwhile.

    Raises:
        SafetensorError, OSError, ValueError, RuntimeError: the file is unreadable (callers word the message);
        whatever ``check`` raises.
    """
    with safe_open(str(path), framework="pt") as f:
        if check is not None:
            check(f)
        return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})  # noqa: SIM118 (not iterable)


def previous_path(path: str | Path) -> Path:
    """Where the checkpoint before ``path`` is kept: ``last.safetensors`` -> ``last.previous.safetensors``."""
    path = Path(path)
    return path.with_name(f"{path.stem}.previous{path.suffix}")


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
                    tensors: dict[str, torch.Tensor] | None = None, *, refer_frozen: bool = True) -> Path:
    """Write a checkpoint atomically (temporary file, then rename).

    Args:
        path: target file (``.safetensors``).
        model: weights to save.
        optimizer, scheduler: saved when given.
        state: JSON-serialisable loop state (epoch, history, ...).
        tensors: extra tensors (e.g. ``perm``, ``gen_state``); the torch CPU (and CUDA) RNG is always saved.
        refer_frozen: keep the parameters that do not train (``requires_grad`` off for the whole run: frozen
            layers, a LoRA run's base) by their content hash instead of copying them. A trainer whose parameters
            only pause (a drawn objective's networks take turns) passes False: every weight is kept.

    Returns:
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    weights = model_tensors(model)
    meta: dict[str, Any] = {"format": FORMAT, "state": state or {}, "python_random": random.getstate()}
    frozen = sorted(k for k, p in model.named_parameters() if not p.requires_grad and k in weights) \
        if refer_frozen else []
    if frozen:  # what does not train is referred to by its content hash, not copied (a LoRA run: megabytes)
        base = {k: weights.pop(k) for k in frozen}
        meta["base"] = {"sha256": tensors_sha256(base), "keys": frozen}
    out = {f"model.{k}": v for k, v in weights.items()}
    if optimizer is not None:
        t, m = split_optimizer(optimizer.state_dict())
        out.update(t)
        meta["optimizer"] = m
    if scheduler is not None:
        meta["scheduler"] = {k: v for k, v in scheduler.state_dict().items() if k != "optimizer"}
    out["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["rng.cuda"] = torch.cuda.get_rng_state()
    for k, v in (tensors or {}).items():
        out[f"extra.{k}"] = _cpu(v)
    meta["sha256"] = tensors_sha256(out)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    need = sum(t.numel() * t.element_size() for t in out.values())
    try:  # a full disk: one line (builder.data.disk), the last good checkpoint kept
        with on_full_disk(path, "the checkpoint", needed=need):
            _write_checkpoint(path, tmp, out, meta)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _write_checkpoint(path: Path, tmp: Path, out: dict[str, torch.Tensor], meta: dict) -> None:
    """Write ``out`` to ``tmp``, verify it, keep the last good checkpoint as the previous one, rename."""
    save_file(out, str(tmp), metadata={"layerlab": _json(meta)})
    read_checkpoint(tmp)  # verify what reached the disk before it replaces anything
    if path.is_file():  # the last good one becomes the previous (a hard link: `path` never goes missing)
        prev = previous_path(path)
        ptmp = prev.with_name(f".{prev.name}.{os.getpid()}.tmp")
        try:
            os.link(path, ptmp)
        except OSError:  # a file system without hard links
            shutil.copyfile(path, ptmp)
        os.replace(ptmp, prev)
    os.replace(tmp, path)


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Return ``(tensors, meta)`` of a checkpoint without applying it, after verifying its checksum.

    Raises:
        TrainingError: the file is missing, unreadable, not a LayerLab checkpoint, its metadata is malformed
            or its tensors do not match the stored SHA-256 (flipped bytes).
    """
    path = Path(path)
    if not path.is_file():
        raise TrainingError(f"checkpoint {path} not found")
    try:
        tensors, metadata = read_tensor_file(path)
        raw = metadata.get("layerlab")
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise TrainingError(f"checkpoint {path} is unreadable ({str(e)[:200]}); it may be corrupt") from None
    if raw is None:
        raise TrainingError(f"{path} is not a LayerLab checkpoint (no layerlab metadata)")
    try:
        meta = json.loads(raw)
    except (ValueError, RecursionError) as e:
        raise TrainingError(f"checkpoint {path} has malformed metadata ({str(e)[:100]}); it may be corrupt") from None
    if not isinstance(meta, dict):
        raise TrainingError(f"checkpoint {path} has malformed metadata (a {type(meta).__name__}, not an object)")
    if meta.get("format") != FORMAT:
        raise TrainingError(f"{path}: unknown checkpoint format {str(meta.get('format'))[:60]!r}")
    for key, kind in (("state", dict), ("optimizer", dict), ("scheduler", dict), ("sha256", str)):
        if key in meta and not isinstance(meta[key], kind):
            raise TrainingError(f"checkpoint {path}: metadata field {key!r} must be a {kind.__name__}; received: "
                                f"{type(meta[key]).__name__}")
    if "sha256" in meta and tensors_sha256(tensors) != meta["sha256"]:
        raise TrainingError(f"checkpoint {path} failed its integrity check (SHA-256 of the tensors differs from "
                            "the one stored); the file was damaged after it was written")
    return tensors, meta


def read_resumable(path: Path) -> tuple[dict[str, torch.Tensor], dict, str]:
    """``(tensors, meta, note)`` of ``path``, or of the previous checkpoint when ``path`` is damaged or missing
    (``note`` then says why). Raises TrainingError when neither is good."""
    try:
        tensors, meta = read_checkpoint(path)
        return tensors, meta, ""
    except TrainingError as e:
        prev = previous_path(path)
        if not prev.is_file():
            raise
        try:
            tensors, meta = read_checkpoint(prev)
        except TrainingError:
            raise e from None
        return tensors, meta, f"{e}; resumed from the previous checkpoint {prev.name} instead"


def load_checkpoint(path: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None,
                    scheduler: Any = None, *, restore_rng: bool = True) -> tuple[dict, dict[str, torch.Tensor]]:
    """Restore a checkpoint into ``model`` (and optimizer, scheduler, RNG).

    A damaged ``path`` falls back to the previous checkpoint; the returned state then carries the reason
    under ``"_fallback"``.

    Returns:
        ``(state, extra_tensors)``: the saved loop state and the extra tensors by their names.

    Raises:
        TrainingError: missing or corrupt file (and no good previous one), weights, optimizer state or RNG
            state that do not fit the model, malformed metadata.
    """
    path = Path(path)
    tensors, meta, note = read_resumable(path)
    weights = checkpoint_weights(tensors, meta, model, path)
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        raise TrainingError(f"checkpoint {path} does not fit this model: {str(e).splitlines()[0]}") from None
    try:
        if optimizer is not None and "optimizer" in meta:
            optimizer.load_state_dict(join_optimizer(tensors, meta["optimizer"]))
            check_optimizer_shapes(optimizer)
            match_param_layout(optimizer)
        if scheduler is not None and "scheduler" in meta:
            scheduler.load_state_dict(meta["scheduler"])
        if restore_rng:
            if "rng.torch" not in tensors:
                raise KeyError("rng.torch")
            torch.set_rng_state(tensors["rng.torch"])
            if "rng.cuda" in tensors and torch.cuda.is_available():
                torch.cuda.set_rng_state(tensors["rng.cuda"])
            if "python_random" in meta:
                st = meta["python_random"]
                random.setstate((st[0], tuple(st[1]), st[2]))
    except (KeyError, TypeError, ValueError, IndexError, RuntimeError, OverflowError) as e:
        what = f"missing key {e}" if isinstance(e, KeyError) else str(e).splitlines()[0][:200] if str(e) else ""
        raise TrainingError(f"checkpoint {path} has malformed optimizer, scheduler or RNG state "
                            f"({type(e).__name__}: {what}); resume from another run or start again") from None
    extra = {k[6:]: v for k, v in tensors.items() if k.startswith("extra.")}
    state = dict(meta.get("state", {}))
    if note:
        state["_fallback"] = note
    return state, extra


def checkpoint_weights(tensors: dict[str, torch.Tensor], meta: dict, model: torch.nn.Module,
                       path: str | Path = "checkpoint") -> dict[str, torch.Tensor]:
    """The model's state dict from a checkpoint: the tensors that trained, plus the frozen base it refers to taken
    from ``model``, which must already hold that very base (its SHA-256 is checked: built from the same seed, or
    initialised from the same run).

    Raises:
        TrainingError: malformed base reference, or a model whose frozen weights are not the base's.
    """
    weights = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    base = meta.get("base")
    if base is None:
        return weights
    keys = base.get("keys") if isinstance(base, dict) else None
    if not (isinstance(keys, list) and all(isinstance(k, str) for k in keys) and isinstance(base.get("sha256"), str)):
        raise TrainingError(f"checkpoint {path} has a malformed base reference; it may be corrupt")
    sd = model.state_dict()
    held = {k: sd[k] for k in keys if k in sd}
    if len(held) != len(keys) or tensors_sha256(held) != base["sha256"]:
        raise TrainingError(f"checkpoint {path} keeps only the weights that train and refers to frozen base weights "
                            f"by content (SHA-256 {base['sha256'][:12]}…); received: a model whose frozen weights "
                            "differ. Fix: load the run it started from (init_from) before the checkpoint")
    return {**{k: v.detach().cpu() for k, v in held.items()}, **weights}


def check_optimizer_shapes(optimizer: torch.optim.Optimizer) -> None:
    """Every optimizer state tensor that is not a scalar must have its parameter's shape. Raises ValueError."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            for k, v in optimizer.state.get(p, {}).items():
                if isinstance(v, torch.Tensor) and v.dim() > 0 and v.shape != p.shape:
                    raise ValueError(f"optimizer state {k!r} has shape {list(v.shape)}, its parameter "
                                     f"{list(p.shape)}")


__all__ = ["save_checkpoint", "load_checkpoint", "read_checkpoint", "checkpoint_weights",
           "model_tensors", "match_param_layout", "tensors_sha256", "read_tensor_file", "previous_path", "read_resumable"]
