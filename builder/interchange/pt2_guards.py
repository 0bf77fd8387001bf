"""Which guard code an uploaded ``.pt2`` may carry: only what LayerLab's canvas already means by its batch.

torch writes the conditions its tracer assumed about the inputs as Python source (``guards_code``) and would
``exec`` it when the program runs. LayerLab never runs it: it reads each line with one regular expression and
accepts a line only when it states one of these about the inputs' leading (batch) sizes, which every Input on the
canvas shares as the one batch dimension B:

* two inputs' leading sizes are equal: ``L['y'].size()[0] == L['x'].size()[0]`` (two inputs of one batch);
* the batch lies within a bound: ``L['x'].size()[0] >= 2`` (also ``>``, ``<=``, ``<``, the number on either side).

Anything else (another dimension, a size pinned to a number, arithmetic, any other code) is refused, naming the
line and why. Example::

    >>> check_guards(["L['y'].size()[0] == L['x'].size()[0]"], {"x", "y"})
    >>> check_guards(["L['x'].size()[1] == L['y'].size()[1]"], {"x", "y"})
    Traceback (most recent call last):
    ...
    builder.interchange.errors.ModelImportError: the archive carries guard code other than equal batch sizes of its inputs or bounds on the batch, which torch would run and LayerLab never does (it relates dimension 1 of `x`, which is not the batch); received: L['x'].size()[1] == L['y'].size()[1]. Fix: export with one torch.export.Dim for dimension 0 of every input and no other dynamic dimension, or with a fixed batch (no dynamic_shapes), or as ONNX
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from builder.escape import visible
from builder.interchange.errors import ModelImportError

MAX_GUARDS = 1000                  # lines of guard code
MAX_GUARD_CHARS = 400              # one line

#: an input's size: ``L['x'].size()[0]``, or a tensor inside an input (``L['xs'][1]``, ``L['d']['k']``)
_SIZE = r"L\['([A-Za-z_][A-Za-z0-9_]{0,254})'\]((?:\[(?:[0-9]{1,4}|'[A-Za-z0-9_]{1,64}')\]){0,8})\.size\(\)\[([0-9]{1,2})\]"
_SIDE = rf"(?:{_SIZE}|([0-9]{{1,19}}))"
_GUARD = re.compile(rf"\s*{_SIDE}\s*(==|!=|>=|<=|>|<)\s*{_SIDE}\s*\Z")
_FIX = ("Fix: export with one torch.export.Dim for dimension 0 of every input and no other dynamic dimension, or "
        "with a fixed batch (no dynamic_shapes), or as ONNX")


def _problem(line: str, inputs: set[str]) -> str | None:
    """Why ``line`` states more than the canvas's one batch; None when it states only that."""
    m = _GUARD.match(line)
    if not m:
        return "it is not a comparison of input sizes with each other or with a number"
    sides = [m.group(1, 2, 3, 4), m.group(6, 7, 8, 9)]
    sizes = [s for s in sides if s[0] is not None]
    for name, path, dim, _ in sizes:
        if name not in inputs:
            return f"it names `{name}`, which is not an input of the program"
        if dim != "0":
            return f"it relates dimension {dim} of `{name}{path}`, which is not the batch"
    op = m.group(5)
    if len(sizes) == 2:
        return None if op == "==" else f"it compares two batch sizes with `{op}`"
    if len(sizes) == 1:
        return None if op in (">=", "<=", ">", "<") else f"it pins the batch of `{sizes[0][0]}` with `{op}`"
    return "it compares two numbers"


def check_guards(guards: object, inputs: Iterable[str]) -> None:
    """Refuse ``guards`` (a program's ``guards_code``) unless every line only says that the inputs named in
    ``inputs`` share their leading (batch) size or bounds it; one ModelImportError naming the first other line."""
    names = set(inputs)
    if not isinstance(guards, list) or len(guards) > MAX_GUARDS:
        raise ModelImportError(f"the archive's guard code is not a list of at most {MAX_GUARDS} lines; received: "
                               f"{visible(type(guards).__name__, 40)}. {_FIX}")
    for line in guards:
        why = (_problem(line, names) if isinstance(line, str) and len(line) <= MAX_GUARD_CHARS
               else "it is not a short line of text")
        if why is not None:
            raise ModelImportError("the archive carries guard code other than equal batch sizes of its inputs or "
                                   "bounds on the batch, which torch would run and LayerLab never does "
                                   f"({why}); received: {visible(line, 120)}. {_FIX}")


__all__ = ["check_guards", "MAX_GUARDS", "MAX_GUARD_CHARS"]
