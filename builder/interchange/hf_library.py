"""The model library: a folder of Hugging Face model folders the admin configures, listed with their size.

The library's folder is the admin's configuration, never content: ``LAYERLAB_MODEL_LIBRARY`` or the server config's
``model_library`` (:func:`builder.runs.owners.server_config`; the Server page sets it, admins only). Content (a
project, a page's form) names a library model by its folder name (:func:`library_model`), resolved here to a
folder inside the library; a name is never a path.

Each entry carries what the palette shows before anything is placed: parameters and multiply-adds per sample
counted from ``config.json`` (:func:`builder.interchange.hf_import.config_params`) and the training memory of one
step on the current device (:func:`builder.graph.memory.counted_memory`).

Example::

    # not a doctest (needs files): run by tests/interchange/test_hf_library.py::test_entries_show_the_size
    for e in library_entries(workspace):
        print(e["name"], e["params"], e["memory_text"])
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from builder.data.access import CONFIGURE, SERVER, check
from builder.errors import LayerLabError
from builder.escape import add_server_folder, resolves_inside, visible
from builder.graph.memory import counted_memory, device_memory
from builder.graph.report import human_bytes, human_count
from builder.interchange.errors import ModelImportError
from builder.interchange.hf_import import ARCHITECTURES, config_int, inspect_folder
from builder.interchange.worker import import_hf_isolated
from builder.runs.classes import actor_for
from builder.runs.owners import server_config, set_server_config

LIBRARY_ENV = "LAYERLAB_MODEL_LIBRARY"
CONFIG_KEY = "model_library"
MAX_ENTRIES = 200
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]{0,99}")


def _in_workspace(folder: Path, workspace: str | os.PathLike) -> bool:
    """Whether ``folder`` is LayerLab's own workspace, inside it or holds it: its folders (runs, owners' folders)
    would be listed to every visitor as models and read as one."""
    return resolves_inside(folder, workspace) or resolves_inside(workspace, folder)


def library_folder(workspace: str | os.PathLike) -> Path | None:
    """The configured library folder (the variable wins over the server config), or None; None too for a folder
    that is the workspace, inside it or holding it (:func:`set_library_folder` refuses one; a variable or a config
    edited by hand may still name it)."""

    value = os.environ.get(LIBRARY_ENV, "").strip() or str(server_config(workspace).get(CONFIG_KEY) or "").strip()
    folder = Path(value).expanduser() if value else None
    if folder is None or _in_workspace(folder, workspace):
        return None
    add_server_folder(folder)  # a model's error names it: hidden, spaces and all (builder.escape.hide_paths)
    return folder


def set_library_folder(workspace: str | os.PathLike, owner: str, folder: str) -> None:
    """Write the server config's ``model_library`` (empty: none). Admins only (:data:`~builder.data.access.CONFIGURE`
    of the server, asked of :func:`builder.data.access.check`).

    Raises:
        AccessDenied: ``owner`` is not an admin; LayerLabError: not an existing folder, or LayerLab's own workspace
            (the workspace, a folder in it or one holding it: its runs and owners' folders would be listed to everyone
            as models).
    """
    check(actor_for(workspace, owner), CONFIGURE, SERVER)
    folder = str(folder or "").strip()
    if folder and not Path(folder).expanduser().is_dir():
        raise LayerLabError(f"the model library is a folder on the server; received: {folder[:200]!r}, which is "
                            "not one. Fix: give an existing folder")
    if folder and _in_workspace(Path(folder).expanduser(), workspace):
        raise LayerLabError("the model library is a folder of its own, never LayerLab's own workspace (its runs and "
                            "owners' folders would be listed to everyone as models); received: the workspace, a "
                            "folder inside it or one holding it. Fix: give a folder beside the workspace")
    set_server_config(workspace, **{CONFIG_KEY: folder or None})  # 0600, as the config may hold a DB password


def _reaches_workspace(folder: Path, workspace: str | os.PathLike) -> bool:
    """Whether a model folder of the library, or a file in it, is a link into LayerLab's workspace (or to a folder
    holding it): read as a model, it would read another owner's run or upload, as a library set to the workspace
    would (:func:`_in_workspace`, the same rule one level down)."""
    try:
        return _in_workspace(folder, workspace) or any(_in_workspace(f, workspace) for f in folder.iterdir())
    except OSError:
        return True


def _folders(root: Path, workspace: str | os.PathLike) -> list[Path]:
    if not root.is_dir():
        return []
    found = sorted(p for p in root.iterdir() if p.is_dir() and _NAME.fullmatch(p.name))[:MAX_ENTRIES]
    return [p for p in found if not _reaches_workspace(p, workspace)]


def library_entries(workspace: str | os.PathLike, *, device: str = "cpu", batch_size: int = 32,
                    optimizer: str = "adam") -> list[dict[str, Any]]:
    """One entry per model folder of the library: ``name``, ``architecture``, ``params``, ``macs``,
    ``memory`` (bytes of one training step at ``batch_size`` on ``device``), ``memory_text``, ``input_shape``,
    ``tokenizer``, ``fits`` (within the device's memory) and ``problem`` (one line; the other figures are then
    None). Nothing but the folders' ``config.json`` is read."""

    root = library_folder(workspace)
    out = []
    limit = device_memory(device)
    for folder in _folders(root, workspace) if root else []:
        entry: dict[str, Any] = {"name": folder.name, "architecture": None, "params": None, "macs": None,
                                 "memory": None, "memory_text": None, "input_shape": None, "tokenizer": False,
                                 "fits": None, "problem": None}
        try:
            info = inspect_folder(folder)
        except ModelImportError as e:
            entry["problem"] = str(e)
            out.append(entry)
            continue
        est = counted_memory(info.params, activation_values(info), batch_size, optimizer, device, buffers=info.buffers)
        entry.update(architecture=info.model_type, params=info.params, macs=info.macs, memory=est.peak,
                     memory_text=human_bytes(est.peak), input_shape=list(info.input_shape),
                     tokenizer=info.tokenizer, fits=est.peak <= limit)
        out.append(entry)
    return out


PALETTE_CATEGORY = "Pretrained"
PALETTE_PREFIX = "library:"


def library_palette(workspace: str | os.PathLike, *, device: str = "cpu", batch_size: int = 32) -> list[dict]:
    """The library's models as canvas palette entries (:func:`builder.canvas.graph_canvas`'s ``palette``), each
    showing its size before it is placed: ``type`` ``library:NAME`` (never a layer's type), ``label`` NAME,
    category ``Pretrained``, a ``description`` and ``library``: ``{"name", "architecture", "params", "macs",
    "memory", "size" (one line), "fits", "device"}``. Models with a problem are left out (the Server page lists
    them). ``device`` ``auto`` is resolved as the trainer resolves it. Dropping one on the canvas sends ``{"type": "library", "name"}``; the page imports it by that name
    (:func:`import_library_model`)."""

    if device == "auto":  # as the trainer resolves it
        from builder.training.config import resolve_device  # lazy: heavy (torch)

        device = resolve_device("auto").type
    out = []
    for e in library_entries(workspace, device=device, batch_size=batch_size):
        if e["problem"]:
            continue
        size = (f"{human_count(e['params'])} params · {human_count(e['macs'])} MACs · {e['memory_text']} to train "
                f"on {device} (batch {batch_size})" + ("" if e["fits"] else " — more than this device has"))
        out.append({"type": PALETTE_PREFIX + e["name"], "label": e["name"], "category": PALETTE_CATEGORY,
                    "description": f"{e['architecture']} model from the library: {size}", "inputs": [],
                    "outputs": [], "variadic": False, "params": [], "inferred": [],
                    "library": {"name": e["name"], "architecture": e["architecture"], "params": e["params"],
                                "macs": e["macs"], "memory": e["memory"], "size": size, "fits": e["fits"],
                                "device": device}})
    return out


def activation_values(info) -> int:
    """Values one sample keeps for the backward pass of a transformer of this config (per layer: the inputs of
    its four projections, the feed-forward pair, the norms and the (heads, T, T) attention weights twice)."""

    cfg, d = info.config, ARCHITECTURES[info.model_type][2]
    pick = {"bert": ("hidden_size", "num_hidden_layers", "intermediate_size", "num_attention_heads"),
            "vit": ("hidden_size", "num_hidden_layers", "intermediate_size", "num_attention_heads"),
            "distilbert": ("dim", "n_layers", "hidden_dim", "n_heads"),
            "gpt2": ("n_embd", "n_layer", "n_inner", "n_head")}[info.model_type]
    h, n, heads = (config_int(cfg, k, d) for k in (pick[0], pick[1], pick[3]))  # checked by inspect_folder
    i = config_int(cfg, pick[2], {pick[2]: 4 * h, **d}) if cfg.get(pick[2]) is not None else d.get(pick[2], 4 * h)
    t = info.seq_len
    return n * t * (8 * h + 2 * i) + n * 2 * heads * t * t


def library_model(workspace: str | os.PathLike, name: str) -> Path:
    """The folder of the library model called ``name`` (its folder name, exactly).

    Raises:
        LayerLabError: no library configured, or no model of that name (the message lists the names).
    """
    root = library_folder(workspace)
    if root is None:
        raise LayerLabError(f"no model library is configured. Fix: an admin sets {LIBRARY_ENV} or the Server page's "
                            "model library")
    names = {p.name: p for p in _folders(root, workspace)}
    if not isinstance(name, str) or name not in names:

        shown = ", ".join(sorted(names)[:10]) or "none"
        raise LayerLabError(f"no model {visible(str(name), 80)!r} in the model library. Fix: use one of: {shown}")
    return names[name]


def import_library_model(store, workspace: str | os.PathLike, name: str, *, seq_len: int | None = None):
    """Import the library model ``name`` for the store's actor (in the sandboxed worker) and record it as a run of
    theirs: ``(project, run_id, report)`` (:func:`builder.interchange.worker.import_hf_isolated`)."""

    return import_hf_isolated(library_model(workspace, name), store, seq_len=seq_len, name=name)


__all__ = ["LIBRARY_ENV", "PALETTE_CATEGORY", "library_palette", "library_folder", "set_library_folder", "library_entries", "library_model",
           "import_library_model", "activation_values"]
