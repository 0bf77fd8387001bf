"""Read an uploaded torch.export archive (``.pt2``) as data: nothing in it is run, unpickled, evaluated or imported.

What an uploaded .pt2 can do: describe one program (``models/model.json``) made of allow-listed operators
(:data:`ALLOWED_OPS`: ATen ops of ordinary models, a few ``prims``, ``_operator`` and ``torch.sym_*``
arithmetic) over tensors whose weights are raw little-endian bytes, with symbolic sizes written as plain size
formulas (integers, size symbols such as ``s0``/``u3``, ``+ - * // %``, ``Min``/``Max``/``FloorDiv``/``Mod``/
``CeilDiv`` and comparisons). LayerLab converts that program for import; nothing else is read.

What it cannot do (each is a one-line :class:`ModelImportError` before torch sees the program):

* run code through pickles (weights, constants, custom/opaque objects; the sample-inputs pickle is never
  read), native libraries, Python files, AOTInductor payloads;
* name a call target outside the allow-list (torch resolves targets by attribute lookup), higher-order ops,
  subgraphs, operators passed as values, script/custom objects or effect tokens;
* carry guard code (torch would ``exec`` it) beyond equal batch sizes of its inputs and bounds on the batch
  (:mod:`builder.interchange.pt2_guards`; the accepted lines are dropped, never run), size expressions that
  are not plain formulas (torch hands them to ``sympy.sympify``, which evaluates Python), pytree specs that name enums (torch imports their module)
  or types outside tuple/list/dict, names that are not identifiers (torch.fx writes them into Python source);
* exceed the limits below: zip members, unpacked bytes and compression ratio (read from the central
  directory first), the program's JSON size and nesting (checked before it is parsed), string lengths,
  integers, tensor ranks, member names (no absolute paths, ``..`` or backslashes).

Free-text node metadata (stack traces, source functions, custom JSON) is dropped. Torch's deserialiser then
runs with its module's ``sympy.sympify`` replaced by a lookup of the expressions parsed here: any string not
parsed here is refused, so no string from the file reaches sympy's parser.
"""

from __future__ import annotations

import io
import json
import logging
import operator
import os
import re
import threading
import zipfile
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from builder.data.files import ZIP_ERRORS, check_zip_directory
from builder.errors import DatasetError
from builder.escape import visible
from builder.interchange.errors import ModelImportError
from builder.interchange.pt2_expr import SYMBOL, functions, parse_size_expr
from builder.interchange.pt2_guards import check_guards

MAX_PT2_BYTES = 1 << 30            # the archive file
MAX_ENTRIES = 10_000               # zip members
MAX_UNPACKED = 2 << 30             # all members unpacked
MAX_RATIO = 100                    # unpacked / packed bytes of a compressed member
MAX_PROGRAM_BYTES = 32 << 20       # models/model.json
MAX_CONFIG_BYTES = 16 << 20        # weights / constants configs
MAX_JSON_DEPTH = 64                # nesting of any JSON read from the archive
MAX_STRING = 4096                  # any string kept from the program
MAX_RANK = 32
MAX_INT = (1 << 63) - 1          # int64: its bounds are sentinels torch writes (a slice to the end, an unbounded dimension)

from builder.graph.op_allow import ALLOWED_OPS, PROGRAM_INPLACE_OPS  # noqa: E402  (the graph layer owns the list)

_PROGRAM_OPS = ALLOWED_OPS | PROGRAM_INPLACE_OPS  # what a program may call: the in-place twins too

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}\Z")
_FQN = re.compile(r"[A-Za-z0-9_]{1,255}(\.[A-Za-z0-9_]{1,255}){0,63}\Z")
_MEMBER = re.compile(r"[^/\\:\x00-\x1f\x7f]{1,255}(/[^/\\:\x00-\x1f\x7f]{1,255}){0,15}/?\Z")
_EXECUTABLE = re.compile(r"(\.pt|\.pkl|\.pickle|\.so|\.dll|\.dylib|\.cpp|\.py|\.pyc)\Z")
_MODULE_STACK = re.compile(r"[A-Za-z0-9_.,;:'\[\]()<> -]{0,4096}\Z")
_TREESPEC_TYPES = {None, "builtins.tuple", "builtins.list", "builtins.dict", "collections.OrderedDict",
                   "torch.fx.immutable_collections.immutable_list", "torch.fx.immutable_collections.immutable_dict"}
_NUMBER_KEYS = {"as_int", "as_float", "as_bool", "min_val", "max_val", "dtype", "layout", "kind", "index",
                "as_scalar_type", "as_memory_format", "as_layout", "major", "minor", "real", "imag", "as_ints",
                "as_floats", "as_bools", "as_int_lists", "as_float_lists"}
_LIST_KEYS = _NUMBER_KEYS | {"as_strings", "forward_arg_names", "verifiers"}  # their items are checked as the key
_FQN_KEYS = {"parameter_name", "buffer_name", "tensor_constant_name", "user_input_name"}
_REFUSED = {"as_custom_obj": "a custom (script) object", "custom_obj": "a custom (script) object",
            "class_fqn": "a custom (script) object", "as_graph": "a subgraph (higher-order operator)",
            "as_operator": "an operator passed as a value", "token": "an effect token",
            "as_string_to_argument": "a dictionary argument", "custom_obj_values": "a custom (script) object"}
_FIX = "Fix: save a plain model again with torch.export.save(torch.export.export(model, args), 'model.pt2')"


def _fail(what: str, received: Any, fix: str = _FIX) -> ModelImportError:
    return ModelImportError(f"{what}; received: {visible(received, 80)}. {fix}")


def open_zip(source: str | os.PathLike | bytes) -> zipfile.ZipFile:
    if isinstance(source, bytes | bytearray):
        if len(source) > MAX_PT2_BYTES:
            raise _fail("the .pt2 archive is larger than the limit", f"{len(source):,} bytes")
        src: Any = io.BytesIO(bytes(source))
    else:
        p = Path(source)
        if not p.is_file():
            raise ModelImportError(f"{visible(str(p), 200)}: no such file")
        if p.stat().st_size > MAX_PT2_BYTES:
            raise _fail(f"{visible(p.name, 80)}: the file is larger than {MAX_PT2_BYTES:,} bytes",
                        f"{p.stat().st_size:,} bytes")
        src = str(p)
    try:  # the directory bounded before ZipFile builds one object per entry (check_members counts them again)
        check_zip_directory(src, "the .pt2 archive", MAX_ENTRIES)
    except DatasetError as e:
        raise _fail(f"the .pt2 archive has more than {MAX_ENTRIES:,} members or a directory too large",
                    str(e).split(": ", 1)[-1].split(". Fix")[0]) from None
    try:
        return zipfile.ZipFile(src)
    except ZIP_ERRORS:
        raise ModelImportError("not a torch.export archive (.pt2 files are zip archives); received: another "
                               "format, e.g. a pickle from torch.save, which LayerLab never loads because "
                               "unpickling can run code. Fix: save with torch.export.save(torch.export.export("
                               "model, args), 'model.pt2')") from None


def check_members(zf: zipfile.ZipFile) -> str:
    """Check the central directory (before any member is read); return the archive's folder prefix."""
    infos = zf.infolist()
    if len(infos) > MAX_ENTRIES:
        raise _fail(f"the .pt2 archive has more than {MAX_ENTRIES:,} members", f"{len(infos):,} members")
    names = [i.filename for i in infos]
    if len(set(names)) != len(names):
        raise _fail("the .pt2 archive repeats a member name", next(n for n in names if names.count(n) > 1))
    total = 0
    for i in infos:
        n = i.filename
        if not _MEMBER.match(n) or n.startswith("/") or any(part in (".", "..") for part in n.split("/")):
            raise _fail("the .pt2 archive has a member name that is not a plain relative path", n)
        if i.flag_bits & 0x1 or i.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise _fail("the .pt2 archive has an encrypted or unusually compressed member", n)
        if i.file_size > MAX_PT2_BYTES or (i.compress_type != zipfile.ZIP_STORED and i.file_size > 1 << 20
                                           and i.file_size > MAX_RATIO * max(i.compress_size, 1)):
            raise _fail("the .pt2 archive is too large once unpacked (a member's size or compression ratio)",
                        f"{n}: {i.file_size:,} bytes from {i.compress_size:,}")
        total += i.file_size
    if total > MAX_UNPACKED:
        raise _fail("the .pt2 archive is too large once unpacked", f"{total:,} bytes")
    programs = [n for n in names if re.fullmatch(r"[^/]+/models/model\.json", n)]
    if len(programs) != 1:
        raise ModelImportError("the archive holds no serialized torch.export program (models/model.json); "
                               "older or other formats are refused because they are loaded with pickle")
    prefix = programs[0][: -len("models/model.json")]
    bad = [n for n in names if not n.startswith(prefix) or (
        not re.search(r"/data/sample_inputs/[^/]+\.pt\Z", n) and (
            _EXECUTABLE.search(n) or "custom_obj" in n or "opaque" in n or "/aotinductor/" in n))]
    if bad:
        raise ModelImportError(f"the archive holds entries that loading would unpickle or execute; received: "
                               f"{visible(', '.join(bad[:3]), 200)}. Fix: export a plain torch.export program")
    if prefix + "byteorder" in names and _read(zf, prefix + "byteorder", 16).strip() not in (b"little", b""):
        raise _fail("the archive stores big-endian tensors, which LayerLab does not read", "byteorder")
    return prefix


def _read(zf: zipfile.ZipFile, name: str, limit: int) -> bytes:
    info = zf.getinfo(name)
    if info.file_size > limit:
        raise _fail(f"the archive member {visible(name, 80)} is larger than {limit:,} bytes",
                    f"{info.file_size:,} bytes")
    with zf.open(info) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise _fail(f"the archive member {visible(name, 80)} is larger than {limit:,} bytes", "more")
    return data


_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def json_depth(raw: bytes) -> int:
    """The deepest nesting of ``[`` / ``{`` in JSON text, counted without parsing it (strings removed)."""
    br = _JSON_STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    depth = peak = 0
    for start in range(0, len(br), 1 << 20):
        a = np.frombuffer(br, np.uint8, count=min(1 << 20, len(br) - start), offset=start)
        c = np.cumsum(np.where((a == 0x5B) | (a == 0x7B), 1, -1), dtype=np.int64) + depth
        peak, depth = max(peak, int(c.max())), int(c[-1])
    return peak


def _int_or_refuse(text: str) -> int:
    if len(text.lstrip("-")) > 19:
        raise _fail("the archive holds an integer too large for a tensor program", text)
    return int(text)


def load_json(raw: bytes | str, what: str) -> Any:
    """Parse JSON from the archive after checking its nesting; integers above 19 digits are refused."""
    data = raw.encode() if isinstance(raw, str) else raw
    if json_depth(data) > MAX_JSON_DEPTH:
        raise _fail(f"the archive's {what} is nested too deeply (limit {MAX_JSON_DEPTH})", "deeper nesting")
    try:
        return json.loads(data, parse_int=_int_or_refuse)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise _fail(f"the archive's {what} is not valid JSON", str(e)) from None


# ----------------------------------------------------------------------------------------- the program


def resolve_target(target: Any):
    """The operator object for an allow-listed target string (``torch.ops.aten.linear.default``,
    ``_operator.getitem``, ``torch.sym_max``); a one-line ModelImportError for anything else."""

    import torch  # lazy: heavy (torch)

    refuse = _fail(f"the archive calls `{visible(target, 80)}`, which LayerLab does not import",
                   target, "Fix: export a model made of standard layers (torch.nn modules and tensor math)")
    if not isinstance(target, str) or len(target) > 200:
        raise refuse
    parts = target.split(".")
    if parts[:2] == ["torch", "ops"] and len(parts) == 5 and parts[2] in ("aten", "prims"):
        ns, name, overload = parts[2:]
        if f"{ns}.{name}" not in _PROGRAM_OPS or not _IDENT.match(overload) or overload.startswith("_"):
            raise refuse
        packet = getattr(getattr(torch.ops, ns), name, None)  # allow-listed names only
        if packet is None or overload not in packet.overloads():
            raise refuse
        return getattr(packet, overload)
    if len(parts) == 2 and ".".join(parts) in ALLOWED_OPS:
        return getattr(operator if parts[0] == "_operator" else torch, parts[1])
    raise refuse


def _check_treespec(text: Any) -> None:
    if not isinstance(text, str) or len(text) > 1 << 20:
        raise _fail("the archive's input/output structure (pytree spec) is not readable", text)
    spec = load_json(text, "input/output structure")
    stack = [spec[1] if isinstance(spec, list) and len(spec) == 2 and spec[0] == 1 else None]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict) or node.get("type") not in _TREESPEC_TYPES:
            raise _fail("the archive's inputs or outputs use a structure other than tuples, lists and dicts",
                        node.get("type") if isinstance(node, dict) else node)
        ctx = node.get("context")
        if ctx is not None:
            if not isinstance(ctx, str):
                raise _fail("the archive's pytree spec is malformed", ctx)
            inner = [load_json(ctx, "pytree context")]
            while inner:  # torch imports the module named by any {"__enum__": ...} here
                v = inner.pop()
                if isinstance(v, dict) and "__enum__" in v:
                    raise _fail("the archive's pytree context names a Python type to import", ctx)
                inner.extend(v.values() if isinstance(v, dict) else v if isinstance(v, list) else [])
        children = node.get("children_spec")
        if not isinstance(children, list):
            raise _fail("the archive's pytree spec is malformed", text)
        stack.extend(children)


def _sanitize_node_metadata(meta: Any) -> dict:
    """Keep only ``nn_module_stack`` (module scopes for the import), validated; drop free text."""
    stack = meta.get("nn_module_stack") if isinstance(meta, dict) else None
    return {"nn_module_stack": stack} if isinstance(stack, str) and _MODULE_STACK.match(stack) else {}


#: How torch's serializer writes an infinite float (a causal mask's ``masked_fill(-inf)``); NaN stays refused.
_INFINITIES = ("Infinity", "-Infinity")


class _Checker:
    """Walks the whole program once: refuses what torch would run or look up, collects size expressions."""

    def __init__(self):
        self.exprs: dict[str, Any] = {}
        self.funcs = functions()

    def check(self, obj: Any, key: str = "", depth: int = 0) -> None:
        if depth > MAX_JSON_DEPTH:
            raise _fail("the archive's program is nested too deeply", key)
        if key in _REFUSED and obj not in (None, [], {}):
            raise _fail(f"the archive uses {_REFUSED[key]}, which LayerLab does not import", key)
        if key in _NUMBER_KEYS and not isinstance(obj, int | float | bool | list | type(None)) \
                and not (key == "as_float" and obj in _INFINITIES):
            raise _fail(f"the archive's `{key}` is not a number", obj)
        if isinstance(obj, str):
            self.check_string(obj, key)
        elif isinstance(obj, int) and not isinstance(obj, bool) and abs(obj) > MAX_INT:
            raise _fail("the archive holds an integer too large for a tensor program", obj)
        elif isinstance(obj, list):
            if key in ("sizes", "strides") and len(obj) > MAX_RANK:
                raise _fail(f"the archive has a tensor of rank above {MAX_RANK}", len(obj))
            for v in obj:
                self.check(v, key if key in _LIST_KEYS else "", depth + 1)
        elif isinstance(obj, dict):
            self.check_dict(obj, key, depth)

    def check_string(self, s: str, key: str) -> None:
        if len(s) > MAX_STRING and key not in ("in_spec", "out_spec"):
            raise _fail(f"the archive's `{key or 'string'}` is longer than {MAX_STRING} characters", s)
        if key in ("name", "as_name", "forward_arg_names") and not _IDENT.match(s):
            raise _fail(f"the archive has a name that is not an identifier (`{key}`)", s)
        if key in _FQN_KEYS and not _FQN.match(s) or key == "fqn" and s and not _FQN.match(s):
            raise _fail(f"the archive has a module path that is not dotted identifiers (`{key}`)", s)
        if key == "target":
            resolve_target(s)
        elif key == "expr_str":
            if s not in self.exprs:
                self.exprs[s] = parse_size_expr(s, self.funcs)
        elif key in ("in_spec", "out_spec"):
            _check_treespec(s)
        elif key == "verifiers" and s not in ("", "ATEN", "TRAINING"):
            raise _fail("the archive names an unknown verifier", s)
        elif key == "type" and s not in ("cpu", "cuda", "meta"):
            raise _fail("the archive places tensors on an unknown device", s)
        elif key == "torch_version" and not re.fullmatch(r"[0-9A-Za-z.+_<=-]{0,64}", s):
            raise _fail("the archive's torch version is not a version number", s)

    def check_dict(self, d: dict, key: str, depth: int) -> None:
        if key in ("tensor_values", "sym_int_values", "sym_bool_values", "sym_float_values", "opset_version"):
            for name in d:
                self.check_string(name, "name")
        if key == "range_constraints":
            for name, rng in d.items():
                if not SYMBOL.match(name) or not isinstance(rng, dict):
                    raise _fail("the archive constrains something that is not a size symbol", name)
        if "as_expr" in d and not (isinstance(d["as_expr"], dict) and isinstance(d["as_expr"].get("expr_str"), str)):
            raise _fail("the archive has a symbolic size without an expression", d["as_expr"])
        if "target" in d and "metadata" in d:  # a graph node
            d["metadata"] = _sanitize_node_metadata(d["metadata"])
        for k, v in d.items():
            if not isinstance(k, str) or len(k) > 1024:
                raise _fail("the archive has an overlong key", k)
            self.check(v, k, depth + 1)


def _input_names(gm: dict) -> set[str]:
    """The names guard code may give the program's inputs: the root call's argument names and the user inputs'
    placeholder names (strings only; the walk below checks them)."""
    calls = gm.get("module_call_graph")
    roots = [c.get("signature") for c in calls if isinstance(c, dict) and c.get("fqn") == ""] \
        if isinstance(calls, list) else []
    args = [a for r in roots if isinstance(r, dict) and isinstance(r.get("forward_arg_names"), list)
            for a in r["forward_arg_names"]]
    specs = gm.get("signature", {}).get("input_specs") if isinstance(gm.get("signature"), dict) else None
    for spec in specs if isinstance(specs, list) else []:
        tensor = ((spec.get("user_input") or {}).get("arg") or {}).get("as_tensor") if isinstance(spec, dict) else None
        args.append(tensor.get("name") if isinstance(tensor, dict) else None)
    return {a for a in args if isinstance(a, str)}


def check_program(program: Any) -> dict[str, Any]:
    """Validate (and strip free-text metadata from) a parsed ``models/model.json``; return the parsed size
    expressions keyed by their exact text."""
    if not isinstance(program, dict) or not isinstance(program.get("graph_module"), dict):
        raise _fail("the archive's program is not a torch.export program", type(program).__name__)
    gm = program["graph_module"]
    if program.get("guards_code"):  # only the canvas's one batch, then dropped: nothing is left to exec
        check_guards(program["guards_code"], _input_names(gm))
        program["guards_code"] = []
    if gm.get("treespec_namedtuple_fields"):
        raise _fail("the archive's inputs or outputs use named tuples, which LayerLab does not import",
                    list(gm["treespec_namedtuple_fields"])[:1])
    gm["metadata"] = {}
    checker = _Checker()
    checker.check(program)
    return checker.exprs


def _read_payloads(zf: zipfile.ZipFile, prefix: str, kind: str) -> dict:
    """``data/weights`` or ``data/constants``: raw tensor bytes laid out by their tensor metadata."""
    import torch  # lazy: heavy (torch)
    from torch._export.serde.schema import ScalarType  # lazy: heavy (torch)
    from torch._export.serde.serialize import _SERIALIZE_TO_TORCH_DTYPE  # lazy: heavy (torch)

    folder = f"{prefix}data/{kind}/"
    cfg_name = f"{folder}model_{kind}_config.json"
    names = set(zf.namelist())
    if cfg_name not in names:
        raise _fail(f"the archive has no {kind} description", cfg_name)
    cfg = load_json(_read(zf, cfg_name, MAX_CONFIG_BYTES), f"{kind} description")
    entries = cfg.get("config") if isinstance(cfg, dict) else None
    if not isinstance(entries, dict):
        raise _fail(f"the archive's {kind} description is malformed", cfg_name)
    files: dict[str, Any] = {}
    out = {}
    for fqn, meta in entries.items():
        if not isinstance(meta, dict) or meta.get("use_pickle") or \
                not re.fullmatch(r"(weight|tensor|constant)_[0-9]{1,9}", str(meta.get("path_name", ""))):
            raise _fail(f"the archive stores `{visible(fqn, 60)}` as a pickle or custom object", "an entry "
                        "loading would unpickle", "Fix: export plain tensors")
        if not isinstance(fqn, str) or not _FQN.match(fqn):
            raise _fail("the archive names a tensor with something other than a module path", fqn)
        tm = meta.get("tensor_meta")
        _Checker().check(tm, "tensor_meta")
        try:
            dtype = _SERIALIZE_TO_TORCH_DTYPE[ScalarType(tm["dtype"])]
            sizes, strides = [s["as_int"] for s in tm["sizes"]], [s["as_int"] for s in tm["strides"]]
            offset = tm["storage_offset"]["as_int"]
            if not all(isinstance(v, int) and v >= 0 for v in [*sizes, *strides, offset]) or \
                    len(sizes) != len(strides):
                raise ValueError
        except (KeyError, TypeError, ValueError):
            raise _fail(f"the archive's tensor `{visible(fqn, 60)}` has no plain shape", tm) from None
        path = folder + meta["path_name"]
        if path not in files:
            if path not in names:
                raise _fail(f"the archive lacks the data of `{visible(fqn, 60)}`", path)
            info = zf.getinfo(path)
            esize = torch.empty((), dtype=dtype).element_size()
            if info.file_size % esize:
                raise _fail(f"the data of `{visible(fqn, 60)}` is not a whole number of elements", path)
            buf = bytearray(info.file_size)
            with zf.open(info) as f:
                if f.readinto(buf) != info.file_size:
                    raise _fail(f"the data of `{visible(fqn, 60)}` is truncated", path)
            files[path] = torch.frombuffer(buf, dtype=dtype) if buf else torch.empty(0, dtype=dtype)
        flat = files[path]
        if flat.dtype != dtype:
            raise _fail(f"the archive reads one data file as two dtypes (`{visible(fqn, 60)}`)", path)
        need = offset + sum((n - 1) * s for n, s in zip(sizes, strides)) + 1 if all(sizes) else 0
        if need > flat.numel():
            raise _fail(f"the shape of `{visible(fqn, 60)}` needs more data than the archive holds",
                        f"{need:,} elements, {flat.numel():,} stored")
        t = torch.as_strided(flat, sizes, strides, offset) if all(sizes) else torch.empty(sizes, dtype=dtype)
        out[fqn] = torch.nn.Parameter(t, requires_grad=bool(tm.get("requires_grad"))) if meta.get("is_param") \
            else t
    return out


# ----------------------------------------------------------------------------------------- loading

_PATCH_LOCK = threading.Lock()


class _SympyView:
    """Stands in for the ``sympy`` module inside torch's serializer: ``sympify`` only returns expressions
    parsed by :func:`parse_size_expr` (or sympy objects torch passes back); everything else is refused."""

    def __init__(self, exprs: dict[str, Any]):
        import sympy  # lazy: heavy (sympy)

        self._sympy, self._exprs = sympy, exprs

    def __getattr__(self, name: str):
        return getattr(self._sympy, name)

    def sympify(self, a, *args, **kwargs):
        if isinstance(a, self._sympy.Basic):
            return a
        if isinstance(a, str) and a in self._exprs:
            return self._exprs[a]
        raise _fail("the archive's size expression was not checked before loading", a)


@contextmanager
def safe_sympify(exprs: dict[str, Any]):
    """Within the block, torch's serializer module sees :class:`_SympyView` as ``sympy`` (its one
    ``sympy.sympify`` call, in ``GraphModuleDeserializer._parse_sym_expr``, goes through it)."""
    from torch._export.serde import serialize  # lazy: heavy (torch)

    with _PATCH_LOCK:
        real = serialize.sympy
        serialize.sympy = _SympyView(exprs)
        try:
            yield
        finally:
            serialize.sympy = real


def read_pt2(source: str | os.PathLike | bytes) -> tuple[dict, dict, dict, dict]:
    """The archive's checked program (JSON), its size expressions, weights and constants."""

    with open_zip(source) as zf:
        try:
            prefix = check_members(zf)
            program = load_json(_read(zf, prefix + "models/model.json", MAX_PROGRAM_BYTES), "program")
            exprs = check_program(program)
            return program, exprs, _read_payloads(zf, prefix, "weights"), _read_payloads(zf, prefix, "constants")
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError, NotImplementedError) as e:
            raise _fail("the .pt2 archive is corrupt", f"{type(e).__name__}: {e}") from None


def load_program(source: str | os.PathLike | bytes):
    """A ``torch.export.ExportedProgram`` from an uploaded .pt2, read as data (see the module docstring)."""

    from torch._export.serde import schema  # lazy: heavy (torch)
    from torch._export.serde.serialize import (  # lazy: heavy (torch)
        ExportedProgramDeserializer,
        _dict_to_dataclass,
    )

    program, exprs, weights, constants = read_pt2(source)
    prev = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with safe_sympify(exprs):
            prog = _dict_to_dataclass(schema.ExportedProgram, program)
            return ExportedProgramDeserializer().deserialize(prog, weights, constants, b"")
    except ModelImportError:
        raise
    except Exception as e:  # torch's own refusals of a malformed program
        cause = e.__cause__ if isinstance(e.__cause__, ModelImportError) else None
        if cause is not None:
            raise cause from None
        raise _fail("the .pt2 archive could not be read", f"{type(e).__name__}: {str(e)[:200]}") from None
    finally:
        logging.disable(prev)


__all__ = ["ALLOWED_OPS", "load_program", "read_pt2", "check_members", "check_program", "resolve_target",
           "safe_sympify", "json_depth", "load_json", "MAX_PT2_BYTES"]
