"""What crosses the pipe between the Explain page and its model probe (:mod:`builder.jobs.probe`): framed
JSON plus an ``.npz`` of arrays, both capped; never a pickle.

A message is ``(head, body)``: ``head`` is JSON (numbers, strings, lists and tagged forms: ``{"$t": key}`` a
tensor and ``{"$n": key}`` a numpy array stored under ``key`` in ``body``, ``{"$tuple": [...]}``,
``{"$dict": [[key, value], ...]}`` and ``{"$dc": name, "f": {...}}`` a result dataclass). Only the dataclasses
named in :data:`DATACLASSES` are rebuilt; arrays are read with ``allow_pickle=False``, so an answer is data
whatever the child wrote. A frame is two little-endian 8-byte lengths, then ``head`` and ``body``; a reader
refuses lengths over :data:`MAX_HEAD_BYTES` / :func:`max_body_bytes` before reading them. Example::

    >>> head, body = encode({"x": (1, 2.5), "a": np.arange(3)})
    >>> decode(head, body)["x"], decode(head, body)["a"].tolist()
    ((1, 2.5), [0, 1, 2])
"""

from __future__ import annotations

import dataclasses
import importlib
import io
import json
import os
import select
import struct
import time
from typing import Any

import numpy as np

from builder.data.npz import read_npz
from builder.errors import ExplainError

FRAME = struct.Struct("<QQ")
MAX_HEAD_BYTES = 16 * 2**20
BODY_ENV = "LAYERLAB_PROBE_ANSWER_MB"  # the largest array payload of one message (default 256)
DEFAULT_BODY_MB = 256

# the result dataclasses an answer may hold: module -> class names (nothing else is rebuilt)
DATACLASSES: dict[str, tuple[str, ...]] = {
    "builder.data.splits": ("DatasetInfo",),
    "builder.interpret.attributions": ("Explanation", "MethodInfo"),
    "builder.interpret.session": ("MethodChoices", "SampleSummary", "SanityReport"),
    "builder.interpret.sanity": ("SanityResult", "CompletenessResult"),
    "builder.interpret.activations": ("WeightHistogram",),
    "builder.interpret.tryit": ("TryResult", "TryForm"),
    "builder.interpret.robustness": ("RobustnessReport", "FlipView"),
    "builder.interpret.calibration": ("CalibrationReport", "Reliability", "CoverageCurve"),
}


def max_body_bytes() -> int:
    """The cap on a message's arrays: ``LAYERLAB_PROBE_ANSWER_MB`` MiB (default 256)."""
    try:
        mb = int(os.environ.get(BODY_ENV, ""))
    except ValueError:
        mb = 0
    return (mb if mb > 0 else DEFAULT_BODY_MB) * 2**20


def _classes() -> dict[str, type]:
    out = {}
    for module, names in DATACLASSES.items():
        m = importlib.import_module(module)
        out.update({f"{module}.{n}": getattr(m, n) for n in names})
    return out


def encode(obj: Any) -> tuple[bytes, bytes]:
    """``obj`` as ``(head, body)``: tensors and arrays go to the body; a dataclass not in :data:`DATACLASSES`
    or another object is written as its type name (``{"$unknown": ...}``), which reads back as None."""
    import torch  # lazy: heavy (torch)

    arrays: dict[str, np.ndarray] = {}
    known = {v: k for k, v in _classes().items()}

    def put(a: np.ndarray, tag: str) -> dict:
        if a.dtype == object:
            return {"$unknown": "object array"}
        key = f"a{len(arrays)}"
        arrays[key] = np.ascontiguousarray(a)
        return {tag: key}

    def enc(o: Any) -> Any:
        if o is None or isinstance(o, (bool, int, float, str)):
            return o
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, torch.Tensor):
            t = o.detach().cpu()
            if t.dtype in (torch.bfloat16, torch.float16):
                t = t.float()
            return put(t.numpy(), "$t")
        if isinstance(o, np.ndarray):
            return put(o, "$n")
        if isinstance(o, torch.device):
            return str(o)
        if isinstance(o, tuple):  # torch.Size and named tuples too
            return {"$tuple": [enc(v) for v in o]}
        if isinstance(o, list):
            return [enc(v) for v in o]
        if isinstance(o, dict):
            return {"$dict": [[enc(k), enc(v)] for k, v in o.items()]}
        if dataclasses.is_dataclass(o) and type(o) in known:
            return {"$dc": known[type(o)], "f": {f.name: enc(getattr(o, f.name)) for f in dataclasses.fields(o)}}
        return {"$unknown": type(o).__name__}

    head = json.dumps(enc(obj)).encode()
    if not arrays:
        return head, b""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return head, buf.getvalue()


def decode(head: bytes, body: bytes) -> Any:
    """The object :func:`encode` wrote (tensors as CPU tensors); only :data:`DATACLASSES` are rebuilt.

    Raises:
        ExplainError: a message that is not what :func:`encode` writes.
    """
    import torch  # lazy: heavy (torch)

    try:
        tree = json.loads(head)
        arrays = read_npz(body, limit=len(body)) if body else {}  # never more than the bytes on hand
    except (ValueError, OSError, EOFError) as e:
        raise ExplainError(f"the model probe's answer is not readable ({str(e)[:200]})") from None
    classes = _classes()

    def dec(o: Any) -> Any:
        if isinstance(o, list):
            return [dec(v) for v in o]
        if not isinstance(o, dict):
            return o
        if "$t" in o:
            return torch.from_numpy(np.array(arrays[o["$t"]]))
        if "$n" in o:
            return np.array(arrays[o["$n"]])
        if "$tuple" in o:
            return tuple(dec(v) for v in o["$tuple"])
        if "$dict" in o:
            return {_key(dec(k)): dec(v) for k, v in o["$dict"]}
        if "$dc" in o:
            cls = classes.get(o["$dc"])
            if cls is None:
                raise ExplainError(f"the model probe answered with an unknown type; received: {str(o['$dc'])[:80]!r}")
            names = {f.name for f in dataclasses.fields(cls)}
            return cls(**{k: dec(v) for k, v in o["f"].items() if k in names})
        return None  # $unknown

    try:
        return dec(tree)
    except (KeyError, TypeError, ValueError) as e:
        raise ExplainError(f"the model probe's answer is not readable ({type(e).__name__}: {str(e)[:200]})") from None


def _key(k: Any) -> Any:
    return k if isinstance(k, (str, int, float, bool, tuple)) or k is None else str(k)


def write_frame(fd: int, head: bytes, body: bytes) -> None:
    """Write one frame to the file descriptor ``fd`` (blocking)."""
    data = memoryview(FRAME.pack(len(head), len(body)) + head + body)
    while data:
        data = data[os.write(fd, data):]


def read_exact(fd: int, n: int, deadline: float | None = None) -> bytes | None:
    """``n`` bytes from ``fd``; None at end of file. Raises TimeoutError past ``deadline`` (``time.monotonic``)."""

    chunks, left = [], n
    while left:
        if deadline is not None:
            wait = deadline - time.monotonic()
            if wait <= 0 or not select.select([fd], [], [], wait)[0]:
                raise TimeoutError
        chunk = os.read(fd, min(left, 2**20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_frame(fd: int, deadline: float | None = None) -> tuple[bytes, bytes] | None:
    """One frame from ``fd`` as ``(head, body)``; None at end of file.

    Raises:
        TimeoutError: past ``deadline``. ExplainError: a length over the caps (nothing more is read).
    """
    raw = read_exact(fd, FRAME.size, deadline)
    if raw is None:
        return None
    n_head, n_body = FRAME.unpack(raw)
    if n_head > MAX_HEAD_BYTES or n_body > max_body_bytes():
        raise ExplainError(f"the model probe's message is over the size limit; received: {n_head:,} + {n_body:,} "
                           f"bytes. Fix: ask for fewer samples, or raise {BODY_ENV}")
    head = read_exact(fd, n_head, deadline)
    body = read_exact(fd, n_body, deadline) if n_body else b""
    if head is None or body is None:
        return None
    return head, body


__all__ = ["encode", "decode", "write_frame", "read_frame", "max_body_bytes", "DATACLASSES"]
