"""A local Hugging Face model folder (``config.json``, ``model.safetensors``, tokenizer files) onto the canvas.

Two stages, the cheap one first:

* :func:`inspect_folder` reads ``config.json`` only (a bounded JSON read, nothing executed) and returns every
  problem at once as one line: an incomplete folder (no ``config.json``, no ``model.safetensors``, a pickled
  ``pytorch_model.bin`` instead), an architecture without a mapping, or a model over the size budget, whose
  parameters and fixed tables are counted from the config at the chosen sequence length (:func:`config_params`,
  :func:`config_buffers`) before anything heavy is loaded.
* :func:`import_hf_folder` builds the model with ``transformers`` from the folder, offline
  (``HF_HUB_OFFLINE=1``, ``local_files_only=True``), safetensors only, never ``trust_remote_code``; exports it
  with ``torch.export`` and maps it like any other module (:func:`builder.interchange.importer.build_from_onnx`),
  then compares the canvas model with the ``transformers`` module (within 1e-5). The app runs this in the
  sandboxed import worker (:func:`builder.interchange.worker.import_hf_isolated`), never in the server.

The canvas's node ids keep the module path (``encoder_layer_0_attention_self_query``), so the canvas groups
them into collapsible blocks by module hierarchy (``frontend/src/blocks.js``).

What the mapping changes, exactly (outputs stay equal): BERT's token-type row 0 is added to its position table
(one learned ``PositionalEncoding``; the model is fed no token types); GPT-2's ``Conv1D`` layers become
``Linear`` layers with the transposed weight and its causal mask a fixed table for the imported sequence length;
BERT and DistilBERT leave padding (id ``PAD_ID``, as LayerLab pads) out of their attention, computed from the ids
(:func:`padding_bias`), as ``transformers`` does with the ``attention_mask`` of its tokenizer.

Example::

    # not a doctest (needs files): run by tests/interchange/test_hf_import.py::test_import_matches_transformers
    info = inspect_folder("models/tiny-bert")
    result = import_hf_folder("models/tiny-bert", seq_len=16)
    result.report["max_abs_diff"] < 1e-5
    # -> True
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from builder.graph.report import DEFAULT_BUDGET
from builder.graph.spec import PAD_ID
from builder.interchange.errors import ModelImportError
from builder.process.sandbox import env_positive

CONFIG = "config.json"
WEIGHTS = "model.safetensors"  # a Hugging Face folder's file (transformers names it), not a run folder's
TOKENIZER = "tokenizer.json"
PREPROCESSOR = "preprocessor_config.json"  # an image model's pixel scaling (transformers' image processor)
PICKLED = ("pytorch_model.bin", "tf_model.h5", "flax_model.msgpack", "model.ckpt.index")
MAX_CONFIG_BYTES = 1 << 20
DEFAULT_SEQ_LEN = 64

#: model_type -> (transformers class, input kind, config defaults used when a key is missing: transformers')
ARCHITECTURES: dict[str, tuple[str, str, dict[str, int]]] = {
    "bert": ("BertModel", "tokens", {"vocab_size": 30522, "hidden_size": 768, "num_hidden_layers": 12,
                                     "intermediate_size": 3072, "max_position_embeddings": 512,
                                     "type_vocab_size": 2, "num_attention_heads": 12}),
    "distilbert": ("DistilBertModel", "tokens", {"vocab_size": 30522, "dim": 768, "n_layers": 6, "hidden_dim": 3072,
                                                 "max_position_embeddings": 512, "n_heads": 12}),
    "gpt2": ("GPT2Model", "tokens", {"vocab_size": 50257, "n_embd": 768, "n_layer": 12, "n_positions": 1024,
                                     "n_head": 12}),
    "vit": ("ViTModel", "image", {"hidden_size": 768, "num_hidden_layers": 12, "intermediate_size": 3072,
                                  "image_size": 224, "patch_size": 16, "num_channels": 3, "num_attention_heads": 12}),
}


#: the text encoders: every token attends to every other but padding (:func:`padding_bias`), as ``transformers``
#: computes them with the ``attention_mask`` its tokenizer gives (GPT-2 is causal: padding after a token never
#: reaches it)
ENCODERS = ("bert", "distilbert")

#: model_type -> (width key, heads key): the width must be a multiple of the heads
HEADS: dict[str, tuple[str, str]] = {"bert": ("hidden_size", "num_attention_heads"), "distilbert": ("dim", "n_heads"),
                                     "gpt2": ("n_embd", "n_head"), "vit": ("hidden_size", "num_attention_heads")}

#: model_type -> {key: the one value the import supports}: switches of a config that add or change modules (a
#: BERT decoder's cross-attention, relative positions) are refused unless off; the sizes are counted for this model
STRUCTURE: dict[str, dict[str, Any]] = {
    "bert": {"is_decoder": False, "add_cross_attention": False, "position_embedding_type": "absolute"},
    "distilbert": {"sinusoidal_pos_embds": False},
    "gpt2": {"add_cross_attention": False},
    "vit": {},
}


def structure_problems(model_type: str, cfg: dict[str, Any]) -> list[str]:
    """What of ``cfg`` builds another model than the one the import maps and counts (the value is not quoted).

    >>> structure_problems("bert", {"add_cross_attention": True, "is_decoder": False})
    ['add_cross_attention must be False (the import builds the base model only)']
    """
    return [f"{k} must be {v!r} (the import builds the base model only)" for k, v in STRUCTURE[model_type].items()
            if k in cfg and cfg[k] != v]


#: model_type -> {alias: key}: the names ``transformers`` reads as another key of the config (its config class's
#: ``attribute_map``; an alias present wins): sizes are counted from the key it builds
ALIASES: dict[str, dict[str, str]] = {
    "gpt2": {"hidden_size": "n_embd", "max_position_embeddings": "n_positions", "num_attention_heads": "n_head",
             "num_hidden_layers": "n_layer"},
    "distilbert": {"hidden_size": "dim", "num_attention_heads": "n_heads", "num_hidden_layers": "n_layers"},
}


def resolved(model_type: str, cfg: dict[str, Any]) -> dict[str, Any]:
    """The config as ``transformers`` builds it: each alias present (:data:`ALIASES`) set on its key.

    >>> resolved("gpt2", {"n_embd": 4, "hidden_size": 64})["n_embd"]
    64
    """
    out = dict(cfg)
    for alias, key in ALIASES.get(model_type, {}).items():
        if alias in cfg:
            out[key] = cfg[alias]
    return out


@dataclass
class HFFolder:
    """What ``config.json`` says about a model folder (nothing else read)."""

    folder: Path
    model_type: str
    config: dict[str, Any]
    params: int
    macs: int
    seq_len: int
    tokenizer: bool
    input_shape: list[int] = field(default_factory=list)
    buffers: int = 0  # fixed values the import adds at seq_len (GPT-2's causal tables): :func:`config_buffers`
    pixels: tuple[tuple[float, ...], tuple[float, ...]] | None = None  # an image model's (mean, std) for [0, 1]
    # pixels (:func:`pixel_scaling`): the import's first step, so the model reads LayerLab's images as it was trained

    def to_dict(self) -> dict[str, Any]:
        """Plain data for pages and reports (no path)."""
        return {"architecture": self.model_type, "params": self.params, "buffers": self.buffers, "macs": self.macs,
                "seq_len": self.seq_len, "tokenizer": self.tokenizer, "input_shape": list(self.input_shape)}


def config_int(cfg: dict, key: str, defaults: dict[str, int]) -> int:
    """A size of ``config.json`` (``defaults[key]`` when absent): a positive integer, else one ValueError line that
    quotes nothing of the file."""
    v = cfg.get(key, defaults[key])
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:  # the value itself is not quoted: file content
        raise ValueError(f"config.json: {key} must be a positive integer; received: "
                         f"{'a number below 1' if isinstance(v, int) and not isinstance(v, bool) else type(v).__name__}")
    return v


def _encoder_layer(h: int, i: int) -> int:
    """q, k, v, output projections, two LayerNorms and the feed-forward pair of one transformer layer."""
    return 4 * (h * h + h) + 2 * 2 * h + (h * i + i) + (i * h + h)


def _seq(seq_len: int | None, top: int) -> int:
    """The sequence length counted: ``seq_len`` as given (the caller checks it against ``top``), else the default."""
    if seq_len is None:
        return min(top, DEFAULT_SEQ_LEN)
    if isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len < 1:
        raise ValueError(f"sequence length must be a positive integer; received: {seq_len!r}")
    return seq_len


def config_params(model_type: str, cfg: dict[str, Any], seq_len: int | None = None) -> tuple[int, int, int]:
    """(parameters, multiply-adds per sample, sequence length) of the base model a config describes, from the
    config alone (the imported model has no pooler; BERT's token types fold into the position table). Text models
    count their multiply-adds at ``seq_len`` tokens (default: the position table's size, at most 64).

    >>> config_params("gpt2", {"vocab_size": 10, "n_embd": 4, "n_layer": 1, "n_positions": 8, "n_head": 2})
    (324, 2048, 8)
    >>> config_params("gpt2", {"vocab_size": 10, "n_embd": 4, "n_layer": 1, "n_positions": 8, "n_head": 2}, 4)
    (324, 896, 4)
    """
    d = ARCHITECTURES[model_type][2]
    width, heads = HEADS[model_type]
    if config_int(cfg, width, d) % config_int(cfg, heads, d):
        raise ValueError(f"config.json: {width} must be a multiple of {heads}")
    if model_type == "vit":
        h, n, i = config_int(cfg, "hidden_size", d), config_int(cfg, "num_hidden_layers", d), config_int(cfg, "intermediate_size", d)
        p, c, img = config_int(cfg, "patch_size", d), config_int(cfg, "num_channels", d), config_int(cfg, "image_size", d)
        tokens = (img // p) ** 2 + 1
        params = c * p * p * h + h + h + tokens * h + n * _encoder_layer(h, i) + 2 * h
        macs = (tokens - 1) * c * p * p * h + n * tokens * (4 * h * h + 2 * h * i + 2 * tokens * h)
        return params, macs, tokens
    if model_type == "gpt2":
        h, n, v, t = (config_int(cfg, k, d) for k in ("n_embd", "n_layer", "vocab_size", "n_positions"))
        i = config_int(cfg, "n_inner", {"n_inner": 4 * h}) if cfg.get("n_inner") is not None else 4 * h
        layer = 2 * h + (h * 3 * h + 3 * h) + (h * h + h) + 2 * h + (h * i + i) + (i * h + h)
        seq = _seq(seq_len, t)
        return (v + t) * h + n * layer + 2 * h, n * seq * (4 * h * h + 2 * h * i + 2 * seq * h), seq
    if model_type == "bert":
        h, n, i, v, t = (config_int(cfg, k, d) for k in ("hidden_size", "num_hidden_layers", "intermediate_size",
                                                      "vocab_size", "max_position_embeddings"))
        v += config_int(cfg, "type_vocab_size", d)  # token-type rows (the import folds row 0 into the positions)
    else:
        h, n, i, v, t = (config_int(cfg, k, d) for k in ("dim", "n_layers", "hidden_dim", "vocab_size",
                                                      "max_position_embeddings"))
    seq = _seq(seq_len, t)
    return (v + t) * h + 2 * h + n * _encoder_layer(h, i), n * seq * (4 * h * h + 2 * h * i + 2 * seq * h), seq


def config_buffers(model_type: str, cfg: dict[str, Any], seq_len: int) -> int:
    """Fixed values the imported model holds beside its parameters at ``seq_len`` tokens, and the temporary of
    building them: GPT-2's causal mask is one (seq_len, seq_len) table per block (``_Gpt2``), the last one built
    from a full table (two at once). BERT's and DistilBERT's position tables shrink to ``seq_len`` rows (counted
    in full as parameters); ViT adds none.

    >>> config_buffers("gpt2", {"n_layer": 2}, 2048)  # 2 tables + the one being built: 3 x 2048²
    12582912
    >>> config_buffers("bert", {}, 512)
    0
    """
    if model_type != "gpt2":
        return 0
    return (config_int(cfg, "n_layer", ARCHITECTURES["gpt2"][2]) + 1) * seq_len * seq_len


CHECK_BASE_BYTES = 300 * 2**20  # transformers' and the exporter's own working memory and modules (measured)


def import_bytes(info: HFFolder) -> int:
    """Memory the import of ``info``'s folder holds at its sequence length beyond a worker's start-up: ~26 bytes a
    parameter (the reference model, its canonical copy, the ONNX proto, the built model), ~26 bytes per attention
    score of a head (the check compares a batch of 3 with transformers': scores and probabilities, float32), 16 bytes
    a causal-table value (the module's, the export's, the proto's and its parse). Measured with torch 2.13 on
    GPT-2 and BERT configs from 512 to 4,096 tokens and 0.2 to 124 million parameters: within 0.9x to 1.5x of the
    peak (tests/interchange/test_hf_import.py measures one).

    >>> round(import_bytes(HFFolder(Path("."), "gpt2", {"n_head": 12}, 124_439_808, 0, 1024, False, [1024],
    ...                             13 * 1024 * 1024)) / 2**30, 1)
    3.8
    """
    heads = config_int(info.config, HEADS[info.model_type][1], ARCHITECTURES[info.model_type][2])
    return 26 * info.params + 26 * heads * info.seq_len ** 2 + 16 * info.buffers + CHECK_BASE_BYTES


def check_import_memory(info: HFFolder, limit: int, fix: str) -> None:
    """Refuse, before anything is built, an import whose :func:`import_bytes` is above ``limit`` bytes, naming the
    longest sequence that fits (a text model) and ``fix`` (how to raise the limit)."""
    need = import_bytes(info)
    if need <= limit:
        return
    hint = ""
    if info.input_shape and len(info.input_shape) == 1:  # tokens: the attention grows with the square of the length
        lo, hi = 0, info.seq_len
        while lo < hi:  # the longest length whose import fits
            mid = (lo + hi + 1) // 2
            fits = import_bytes(dataclasses.replace(info, seq_len=mid, buffers=config_buffers(
                info.model_type, info.config, mid))) <= limit
            lo, hi = (mid, hi) if fits else (lo, mid - 1)
        hint = f"a sequence length of at most {lo} (--seq-len) or " if lo else ""
    raise ModelImportError(f"importing this model at {info.seq_len} tokens needs about {need / 2**30:.1f} GiB (its "
                           f"weights and the check against transformers' outputs); received: a limit of "
                           f"{limit / 2**30:.1f} GiB. Fix: {hint}{fix}")


def max_params() -> int:
    """The size budget for an imported model: the graph budget's ``max_params``
    (:class:`builder.graph.report.Budget`), or ``LAYERLAB_HF_MAX_PARAMS`` when set."""

    return env_positive("LAYERLAB_HF_MAX_PARAMS", DEFAULT_BUDGET.max_params)


def is_hf_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder with a ``config.json`` (a Hugging Face model folder, complete or not)."""
    p = Path(path)
    return p.is_dir() and (p / CONFIG).is_file()


def inspect_folder(folder: str | os.PathLike, *, budget: int | None = None, seq_len: int | None = None) -> HFFolder:
    """Check a model folder from its file names and ``config.json``: complete, a supported architecture, within
    the size budget. Nothing heavy is read.

    Raises:
        ModelImportError: one line naming every problem found (incomplete, unsupported, too big).
    """
    folder = Path(folder)
    fix_files = f"Fix: save the model with save_pretrained(..., safe_serialization=True) so the folder holds {CONFIG} " \
                f"and {WEIGHTS}"
    if not folder.is_dir():
        raise ModelImportError(f"a model folder must be a folder; received: {folder.name!r}. {fix_files}")
    names = {p.name for p in folder.iterdir() if p.is_file()}
    problems: list[str] = []
    if CONFIG not in names:
        problems.append(f"incomplete folder: no {CONFIG}")
    if WEIGHTS not in names:
        pickled = sorted(names & set(PICKLED))
        problems.append(f"incomplete folder: no {WEIGHTS}" + (f" ({', '.join(pickled)} is not read: pickled or "
                                                              "foreign weights can run code)" if pickled else ""))
    cfg: dict[str, Any] = {}
    if CONFIG in names:
        try:
            cfg = _json_object(folder / CONFIG)
        except (OSError, ValueError, RecursionError) as e:  # RecursionError: nesting deeper than json's stack
            problems.append(f"unreadable {CONFIG} ({type(e).__name__})")
            cfg = {}
    model_type = str(cfg.get("model_type", ""))[:40]
    info = None
    if cfg and model_type not in ARCHITECTURES:
        problems.append(f"unsupported architecture: model_type={model_type!r} (supported: "
                        f"{', '.join(sorted(ARCHITECTURES))})")
    elif cfg:
        if cfg.get("auto_map"):
            problems.append("unsupported architecture: the config asks for custom code (auto_map); remote code is "
                            "never run")
        cfg = resolved(model_type, cfg)  # sizes as transformers builds them (an alias wins)
        problems += structure_problems(model_type, cfg)
        kind = ARCHITECTURES[model_type][1]
        try:
            asked = seq_len if kind == "tokens" else None
            params, macs, seq = config_params(model_type, cfg, asked)  # counted at the length asked for
            buffers = config_buffers(model_type, cfg, seq)
        except ValueError as e:
            problems.append(str(e))
        else:
            if asked is not None:  # the key was checked by config_params
                key = "n_positions" if model_type == "gpt2" else "max_position_embeddings"
                top = cfg.get(key, ARCHITECTURES[model_type][2][key])
                if not 1 <= seq_len <= top:
                    problems.append(f"sequence length {seq_len} outside 1..{top}")
            limit = max_params() if budget is None else budget
            if params + buffers > limit:
                problems.append(f"too big: {params + buffers:,} values" + (
                    f" ({params:,} parameters and {buffers:,} of causal mask tables at {seq:,} tokens)" if buffers
                    else f" ({params:,} parameters)") + f", above the size budget of {limit:,}")
            d = ARCHITECTURES[model_type][2]
            shape = [seq] if kind == "tokens" else [config_int(cfg, "num_channels", d), config_int(cfg, "image_size", d),
                                                    config_int(cfg, "image_size", d)]
            pixels = None
            if kind == "image":
                try:
                    pixels = pixel_scaling(folder / PREPROCESSOR if PREPROCESSOR in names else None, shape[0])
                except ValueError as e:
                    problems.append(str(e))
            buffers += 2 * shape[0] if pixels is not None else 0  # the pixel scaling's mean and std
            info = HFFolder(folder, model_type, cfg, params, macs, seq, TOKENIZER in names, shape, buffers, pixels)
    if problems:
        raise ModelImportError(f"the model folder cannot be imported; received: {'; '.join(problems)}. "
                               + (fix_files if any(p.startswith("incomplete") for p in problems) else
                                  "Fix: use a BERT, DistilBERT, GPT-2 or ViT folder within the size budget "
                                  "(LAYERLAB_HF_MAX_PARAMS)"))
    if info is None:  # no config read and no problem named: cannot happen, refused all the same
        raise ModelImportError(f"the model folder cannot be imported; received: no {CONFIG}. {fix_files}")
    return info


# ----------------------------------------------------------------------------------------- building (worker side)


def offline() -> None:
    """No network for anything transformers or huggingface_hub does in this process."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def _json_object(path: Path) -> dict:
    """A model folder's small JSON file (``config.json``, ``preprocessor_config.json``) as a dict, read within
    :data:`MAX_CONFIG_BYTES`. Raises OSError, ValueError (too large, not JSON, not an object) or RecursionError."""
    with open(path, "rb") as f:
        raw = f.read(MAX_CONFIG_BYTES + 1)
    if len(raw) > MAX_CONFIG_BYTES:
        raise ValueError(f"{Path(path).name} is larger than {MAX_CONFIG_BYTES:,} bytes")
    obj = json.loads(raw)
    if not isinstance(obj, dict):
        raise ValueError(f"{Path(path).name} is not a JSON object")
    return obj


def pixel_scaling(path: Path | None, channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The ``(mean, std)`` per channel that turn LayerLab's pixels (0 to 1) into what an image model was trained on,
    from its folder's ``preprocessor_config.json`` (``do_rescale``/``rescale_factor``, ``do_normalize``,
    ``image_mean``/``image_std``; without the file, transformers' ViT processor's: 1/255, 0.5, 0.5): the model
    reads ``(x - mean) / std``. An imported ViT was fed 0..1 where it was trained on -1..1 (its outputs 3.1 off
    for a scale of 2.6).

    >>> pixel_scaling(None, 3)
    ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))

    Raises:
        ValueError: an unreadable file or values that are no per-channel numbers (one line, for the import's
            problems).
    """
    cfg: Any = {}
    if path is not None:
        try:
            cfg = _json_object(path)
        except (OSError, ValueError, RecursionError):
            raise ValueError(f"unreadable {PREPROCESSOR}") from None

    def number(a: Any) -> bool:
        return isinstance(a, (int, float)) and not isinstance(a, bool) and math.isfinite(a)

    factor = cfg.get("rescale_factor", 1 / 255) if cfg.get("do_rescale", True) else 1.0
    if not (number(factor) and factor > 0):
        raise ValueError(f"{PREPROCESSOR}: rescale_factor must be a number above 0")
    scale = 255.0 * float(factor)  # the model's pixel is (255 x factor - mean) / std for LayerLab's x in [0, 1]
    mean, std = ((cfg.get("image_mean", 0.5), cfg.get("image_std", 0.5)) if cfg.get("do_normalize", True)
                 else (0.0, 1.0))
    out = []
    for name, v in (("image_mean", mean), ("image_std", std)):
        v = [v] * channels if number(v) else v
        if not (isinstance(v, list) and len(v) == channels and all(number(a) for a in v)):
            raise ValueError(f"{PREPROCESSOR}: {name} must be {channels} numbers")
        out.append(tuple(float(a) / scale for a in v))
    if not all(a > 0 for a in out[1]):
        raise ValueError(f"{PREPROCESSOR}: image_std must be above 0")
    return out[0], out[1]


def load_reference(info: HFFolder):
    """The ``transformers`` base model from the folder: offline, safetensors only, no remote code, eager
    attention, eval mode. Runs library code only (nothing in the folder is executed)."""
    offline()
    import transformers  # lazy: heavy (transformers)

    cls = getattr(transformers, ARCHITECTURES[info.model_type][0])
    extra = {"add_pooling_layer": False} if info.model_type in ("bert", "vit") else {}
    try:
        model = cls.from_pretrained(str(info.folder), local_files_only=True, use_safetensors=True,
                                    trust_remote_code=False, attn_implementation="eager", **extra)
    except Exception as e:  # noqa: BLE001  transformers raises many types; the user needs one line
        raise ModelImportError(f"transformers could not build the model from the folder; received: "
                               f"{type(e).__name__}: {str(e).strip().splitlines()[0][:200] if str(e).strip() else ''}. "
                               "Fix: save it again with save_pretrained") from None
    return model.eval()


def canonical_module(reference, info: HFFolder):
    """A module computing the same outputs as ``reference`` (the last hidden state) in a form the importer
    maps layer by layer (see the module docstring for the two exact rewrites)."""

    import torch  # lazy: heavy (torch)

    model = copy.deepcopy(reference)
    if info.model_type == "bert":
        return _Bert(model)
    if info.model_type == "distilbert":
        return _modules()[3](model).eval()
    if info.model_type == "gpt2":
        _conv1d_to_linear(model)
        return _Gpt2(model, info.seq_len)
    return _Plain(model, info.pixels).eval() if isinstance(model, torch.nn.Module) else model


def _conv1d_to_linear(module) -> None:
    """transformers' ``Conv1D`` (y = x W + b, W of shape (in, out)) as ``nn.Linear`` with weight Wᵀ."""
    import torch  # lazy: heavy (torch)
    from transformers.pytorch_utils import Conv1D  # lazy: heavy (transformers)

    for name, child in list(module.named_children()):
        if isinstance(child, Conv1D):
            lin = torch.nn.Linear(child.weight.shape[0], child.weight.shape[1])
            with torch.no_grad():
                lin.weight.copy_(child.weight.T)
                lin.bias.copy_(child.bias)
            setattr(module, name, lin)
        else:
            _conv1d_to_linear(child)


def padding_bias(ids, dtype):
    """What an encoder's attention adds to its scores so that no token attends to padding: the dtype's most
    negative value at the keys whose id is ``PAD_ID`` (the id LayerLab pads with), 0 elsewhere, (B, 1, 1, T); as
    ``transformers`` builds it from an ``attention_mask``. Without it an imported BERT read its padding: a
    sentence's vectors changed with the length it was padded to."""
    import torch  # lazy: heavy (torch)

    return (ids == PAD_ID)[:, None, None, :].to(dtype) * torch.finfo(dtype).min


def _modules():
    import torch  # lazy: heavy (torch)

    class Plain(torch.nn.Module):
        """The model itself, its first output (the last hidden state); an image model's pixels scaled first as
        it was trained (:func:`pixel_scaling`)."""

        def __init__(self, model, pixels):
            super().__init__()
            self.m, self.pixels = model, pixels  # plain numbers: the export's constants, fixed on the canvas

        def forward(self, x):
            if self.pixels is not None:
                return self.m(pixel_values=scaled_pixels(x, self.pixels), return_dict=False)[0]
            return self.m(x, return_dict=False)[0]

    class Bert(torch.nn.Module):
        """BERT's embeddings as word lookup + one position table (token type 0 folded in), then its layers."""

        def __init__(self, model):
            super().__init__()
            self.embeddings, self.encoder = model.embeddings, model.encoder

        def forward(self, ids):  # (B, T) token ids
            e = self.embeddings
            x = e.word_embeddings(ids) + (e.position_embeddings.weight[: ids.shape[1]] + e.token_type_embeddings.weight[0])
            x = e.dropout(e.LayerNorm(x))  # (B, T, H)
            mask = padding_bias(ids, x.dtype)
            for layer in self.encoder.layer:
                x = layer(x, attention_mask=mask)
                x = x[0] if isinstance(x, tuple) else x
            return x

    class DistilBert(torch.nn.Module):
        """DistilBERT's embeddings, then its layers, padding left out of every attention."""

        def __init__(self, model):
            super().__init__()
            self.embeddings, self.transformer = model.embeddings, model.transformer

        def forward(self, ids):  # (B, T) token ids
            x = self.embeddings(ids)  # (B, T, H)
            mask = padding_bias(ids, x.dtype)
            for layer in self.transformer.layer:
                x = layer(x, attention_mask=mask)
                x = x[0] if isinstance(x, tuple) else x
            return x

    class Gpt2(torch.nn.Module):
        """GPT-2 with a fixed causal mask for ``seq_len`` tokens and its ``Conv1D`` layers as ``Linear``."""

        def __init__(self, model, seq_len: int):
            super().__init__()
            self.wte, self.wpe, self.drop, self.h, self.ln_f = model.wte, model.wpe, model.drop, model.h, model.ln_f
            for i in range(len(self.h)):  # one table per block: a shared one would import as tied constants
                self.register_buffer(f"causal_{i}", torch.full((seq_len, seq_len), float("-inf")).triu(1),
                                     persistent=False)

        def forward(self, ids):  # (B, T) token ids
            x = self.drop(self.wte(ids) + self.wpe.weight[: ids.shape[1]])
            for i, block in enumerate(self.h):
                x = block(x, attention_mask=getattr(self, f"causal_{i}"))  # (T, T) added to each (B, heads, T, T)
                x = x[0] if isinstance(x, tuple) else x
            return self.ln_f(x)

    return Plain, Bert, Gpt2, DistilBert


def _Plain(model, pixels):  # noqa: N802  (a class factory kept lazy: torch is imported on use)
    return _modules()[0](model, pixels)


def _Bert(model):  # noqa: N802
    return _modules()[1](model).eval()


def _Gpt2(model, seq_len):  # noqa: N802
    return _modules()[2](model, seq_len).eval()


def _labelled_pixel_scaling(graph):
    """The image model's first steps, ``(x - mean) / std`` (:func:`pixel_scaling`), named as such (their
    constants are fixed by the import's one rule: the export records them as the module's constants, not its
    parameters, ``OnnxImporter.learned``)."""
    first = {e.target for e in graph.edges if graph.node(e.source).type == "Input"}
    nodes, scaling = [], {"aten.sub": "pixel scaling: minus the mean", "aten.div": "pixel scaling: over the std"}
    for n in graph.nodes:
        op = n.params.get("op") if n.type == "Op" else None
        if op in scaling and (n.id in first or any(e.target == n.id and e.source in first for e in graph.edges)):
            n = n.model_copy(update={"label": scaling[op]})
        nodes.append(n)
    return graph.model_copy(update={"nodes": nodes})


def _label_modules(graph, reference):
    """Label each node made from a module of ``reference`` with its dotted module path (``encoder.layer.0.
    attention.self.query``): the canvas groups by it and a PEFT adapter names layers by it."""

    paths = {re.sub(r"\W", "_", p): p for p, _ in reference.named_modules() if p}
    nodes = []
    for n in graph.nodes:
        key = n.id[2:] if n.id.startswith("m_") and n.id[2:] in paths else n.id  # the plain wrapper's ``m.``
        nodes.append(n.model_copy(update={"label": paths[key]}) if key in paths and not n.label else n)
    return graph.model_copy(update={"nodes": nodes})


def scaled_pixels(x, pixels):
    """LayerLab's pixels ``x`` (B, C, H, W) as the model was trained on them: ``(x - mean) / std``
    (:func:`pixel_scaling`)."""
    import torch  # lazy: heavy (torch)

    mean, std = (torch.tensor(v, dtype=x.dtype).reshape(1, -1, 1, 1) for v in pixels)
    return (x - mean) / std


def example_input(info: HFFolder, batch: int = 2, seed: int = 0):
    """A random input batch for the folder's model: token ids below the vocabulary size, or images."""
    import torch  # lazy: heavy (torch)

    g = torch.Generator().manual_seed(seed)
    if ARCHITECTURES[info.model_type][1] == "image":
        return torch.randn(batch, *info.input_shape, generator=g)
    vocab = int(info.config.get("vocab_size", ARCHITECTURES[info.model_type][2]["vocab_size"]))
    return torch.randint(0, vocab, (batch, info.seq_len), generator=g)


def import_hf_folder(folder: str | os.PathLike, *, name: str | None = None, seq_len: int | None = None,
                     verify: bool = True):
    """Import a Hugging Face model folder as a LayerLab project with its weights (see the module docstring).

    Returns:
        :class:`~builder.interchange.importer.ImportResult`; its report adds ``architecture``,
        ``max_abs_diff`` against the ``transformers`` module, ``tokenizer`` (whether the folder has one).

    Raises:
        ModelImportError: from :func:`inspect_folder`, the build, the mapping or the comparison.
    """
    import torch  # lazy: heavy (torch)

    from builder.interchange.importer import (  # lazy: heavy (torch, numpy)
        IMPORT_ATOL,
        build_from_onnx,
        module_to_onnx,
        output_scale,
    )

    info = inspect_folder(folder, seq_len=seq_len)
    reference = load_reference(info)
    module = canonical_module(reference, info)
    proto = module_to_onnx(module, (example_input(info),))
    result = build_from_onnx(proto, name or info.folder.name, "hf", info.folder.name)
    result.project.graph = _label_modules(result.project.graph, reference)
    if info.pixels is not None:
        result.project.graph = _labelled_pixel_scaling(result.project.graph)
    result.report.update(architecture=info.model_type, tokenizer=info.tokenizer, seq_len=info.seq_len,
                         source=info.folder.name)
    if info.pixels is not None:  # said where the import is reported: the model's first step is the data's scaling
        result.report["pixel_scaling"] = {"mean": list(info.pixels[0]), "std": list(info.pixels[1])}
    if verify:
        from builder.graph.compile import compile_graph  # lazy: heavy (torch, numpy)

        model = compile_graph(result.project.graph)
        model.load_state_dict(result.weights)
        model.eval()
        x = example_input(info, batch=3, seed=1)
        with torch.no_grad():
            if info.model_type in ENCODERS:  # a padded row too: transformers told where its padding is
                x[0, x.shape[1] // 2:] = PAD_ID
                want = reference(x, attention_mask=(x != PAD_ID).long(), return_dict=False)[0]
            else:
                want = reference(x, return_dict=False)[0] if info.pixels is None else \
                    reference(pixel_values=scaled_pixels(x, info.pixels), return_dict=False)[0]
            got = model(x)
        diff = float((got - want).abs().max())
        tol = IMPORT_ATOL * output_scale([want.numpy()])
        result.report.update(max_abs_diff=diff, tolerance=tol, verified_against="transformers")
        if not diff <= tol:
            raise ModelImportError(f"the imported model differs from transformers' by up to {diff:.3g}; received: "
                                   f"tolerance {tol:.3g}. Fix: report this model (nothing was written)")
    return result


__all__ = ["HFFolder", "ARCHITECTURES", "ENCODERS", "padding_bias", "ALIASES", "HEADS", "STRUCTURE", "structure_problems", "config_int", "resolved", "inspect_folder", "is_hf_folder", "config_params", "config_buffers", "import_hf_folder",
           "load_reference", "canonical_module", "example_input", "pixel_scaling", "scaled_pixels", "PREPROCESSOR", "max_params", "import_bytes", "check_import_memory"]
