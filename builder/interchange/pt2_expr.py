"""Torch's symbolic size expressions read by a small grammar: the text of a ``.pt2`` size never reaches
``sympy.sympify`` (which evaluates Python) or any other parser; the sympy objects are built here.

Accepted: integers (at most 19 digits), size symbols as torch names them (``s0``, ``u3``, ``zf1``, ``zuf2``),
``+ - * // %``, unary minus, parentheses, and the calls torch 2.13 writes with ``sympy.srepr``:
``Integer(n)``, ``Symbol('s0', integer=True, positive=True)``, ``Add``, ``Mul``, ``Max``, ``Min``,
``FloorDiv``, ``Mod``, ``PythonMod``, ``CeilDiv``, ``CleanDiv``, ``Pow`` (a symbol to the 0..4th), the
comparisons ``Eq``/``Ne``/``StrictLessThan``/``LessThan``/``StrictGreaterThan``/``GreaterThan`` and
``And``/``Or``/``Not``. Anything else is a one-line :class:`ModelImportError`. Example::

    >>> parse_size_expr("Mul(Integer(2), Symbol('s0', positive=True, integer=True))")
    2*s0
    >>> parse_size_expr("__import__('os')")
    Traceback (most recent call last):
    ...
    builder.interchange.errors.ModelImportError: the archive's size expression is not a plain size formula (the function `__import__` is not allowed); received: __import__('os'). Fix: export the model again with torch.export; size expressions may only use integers, size symbols (s0, u0), + - * // % and Min/Max/FloorDiv/Mod/CeilDiv
"""

from __future__ import annotations

import re
from typing import Any

from builder.escape import visible
from builder.interchange.errors import ModelImportError

MAX_EXPR_CHARS = 2000              # one size expression
MAX_EXPR_DEPTH = 32                # its nesting
SYMBOL = re.compile(r"(s|u|zf|zuf)[0-9]{1,9}\Z")
_FIX = "Fix: save a plain model again with torch.export.save(torch.export.export(model, args), 'model.pt2')"

_TOKEN = re.compile(r"\s*(?:(\d+)|([A-Za-z_][A-Za-z0-9_]*)|'([A-Za-z0-9_]*)'|(//|[-+*%(),=]))")
_ASSUMPTIONS = {"integer", "positive", "nonnegative", "negative", "nonpositive", "real", "finite", "nonzero",
                "zero", "commutative"}


def functions() -> dict[str, tuple[Any, int, int]]:
    import sympy  # lazy: heavy (sympy)
    from torch.utils._sympy import functions as f  # lazy: heavy (torch)

    return {"Add": (sympy.Add, 2, 64), "Mul": (sympy.Mul, 2, 64), "Max": (sympy.Max, 1, 64),
            "Min": (sympy.Min, 1, 64), "FloorDiv": (f.FloorDiv, 2, 2), "Mod": (f.Mod, 2, 2),
            "PythonMod": (f.PythonMod, 2, 2), "CeilDiv": (f.CeilDiv, 2, 2), "CleanDiv": (f.CleanDiv, 2, 2),
            "Eq": (sympy.Eq, 2, 2), "Ne": (sympy.Ne, 2, 2), "StrictLessThan": (sympy.StrictLessThan, 2, 2),
            "LessThan": (sympy.LessThan, 2, 2), "StrictGreaterThan": (sympy.StrictGreaterThan, 2, 2),
            "GreaterThan": (sympy.GreaterThan, 2, 2), "And": (sympy.And, 2, 64), "Or": (sympy.Or, 2, 64),
            "Not": (sympy.Not, 1, 1)}


class _ExprParser:
    """Recursive descent over tokens; builds sympy objects directly (never sympify, parse_expr or eval)."""

    def __init__(self, text: str, funcs: dict):
        import sympy  # lazy: heavy (sympy)

        self.text, self.funcs, self.sp, self.toks, self.i, self.depth, pos = text, funcs, sympy, [], 0, 0, 0
        while text[pos:].strip():
            m = _TOKEN.match(text, pos)
            if not m:
                self.refuse(f"unexpected character {text[len(text[pos:]) - len(text[pos:].lstrip()) + pos]!r}")
            kind = next(i for i in range(1, 5) if m.group(i) is not None)
            self.toks.append((kind, m.group(kind)))
            pos = m.end()

    def refuse(self, why: str):
        raise ModelImportError(f"the archive's size expression is not a plain size formula ({why}); received: "
                               f"{visible(self.text, 80)}. Fix: export the model again with torch.export; size "
                               "expressions may only use integers, size symbols (s0, u0), + - * // % and "
                               "Min/Max/FloorDiv/Mod/CeilDiv")

    def peek(self, *values: str) -> bool:
        t = self.toks[self.i] if self.i < len(self.toks) else (0, "")
        return t[0] == 4 and t[1] in values

    def take(self, value: str | None = None, kind: int = 4) -> str:
        t = self.toks[self.i] if self.i < len(self.toks) else (0, "")
        if t[0] != kind or value is not None and t[1] != value:
            self.refuse(f"expected {value or ('an integer', 'a name', 'a quoted name', 'an operator')[kind - 1]}"
                        f" at token {self.i + 1}")
        self.i += 1
        return t[1]

    def parse(self):
        e = self.expr()
        if self.i != len(self.toks):
            self.refuse(f"unexpected {self.toks[self.i][1]!r}")
        return e

    def expr(self):
        self.depth += 1
        if self.depth > MAX_EXPR_DEPTH:
            self.refuse("nested too deeply")
        e = self.term()
        while self.peek("+", "-"):
            e = e + self.term() if self.take() == "+" else e - self.term()
        self.depth -= 1
        return e

    def term(self):
        e = self.unary()
        while self.peek("*", "//", "%"):
            op, rhs = self.take(), self.unary()
            e = e * rhs if op == "*" else e // rhs if op == "//" else e % rhs
        return e

    def unary(self):
        if self.peek("-"):
            self.take()
            return -self.expr_in(self.unary)
        return self.atom()

    def expr_in(self, fn):
        self.depth += 1
        if self.depth > MAX_EXPR_DEPTH:
            self.refuse("nested too deeply")
        e = fn()
        self.depth -= 1
        return e

    def integer(self):
        neg = self.peek("-") and self.take() == "-"
        digits = self.take(kind=1)
        if len(digits) > 19:
            self.refuse("an integer of more than 19 digits")
        return self.sp.Integer(-int(digits) if neg else int(digits))

    def atom(self):
        sp = self.sp
        if self.i < len(self.toks) and self.toks[self.i][0] == 1:
            return self.integer()
        if self.peek("("):
            self.take("(")
            e = self.expr()
            self.take(")")
            return e
        name = self.take(kind=2)
        if not self.peek("("):
            if SYMBOL.match(name):
                return sp.Symbol(name)
            if name in ("true", "false", "True", "False"):
                return sp.true if name.lower() == "true" else sp.false
            self.refuse(f"`{name}` is not a size symbol")
        self.take("(")
        if name == "Integer":
            e = self.integer()
        elif name == "Symbol":
            sym, kw = self.take(kind=3), {}
            if not SYMBOL.match(sym):
                self.refuse(f"`{sym}` is not a size symbol name")
            while self.peek(","):
                self.take(",")
                key, _, val = self.take(kind=2), self.take("="), self.take(kind=2)
                if key not in _ASSUMPTIONS or val not in ("True", "False") or key in kw:
                    self.refuse(f"`{key}={val}` is not a size assumption")
                kw[key] = val == "True"
            e = sp.Symbol(sym, **kw)
        elif name == "Pow":  # only a symbol to a small power: no huge integer arithmetic
            base, _, exp = self.expr(), self.take(","), self.integer()
            if not isinstance(base, sp.Symbol) or not 0 <= int(exp) <= 4:
                self.refuse("a power other than a size symbol to the 0..4th")
            e = sp.Pow(base, exp)
        elif name in self.funcs:
            fn, lo, hi = self.funcs[name]
            args = [self.expr()]
            while self.peek(","):
                self.take(",")
                args.append(self.expr())
            if not lo <= len(args) <= hi:
                self.refuse(f"`{name}` with {len(args)} argument(s)")
            e = fn(*args)
        else:
            self.refuse(f"the function `{name}` is not allowed")
        self.take(")")
        return e


def parse_size_expr(text: Any, funcs: dict | None = None):
    """A sympy expression for a torch size expression (``Mul(Integer(2), Symbol('s0', integer=True))`` or
    ``2*s0 + 1``), or a one-line ModelImportError for anything else."""
    if not isinstance(text, str) or len(text) > MAX_EXPR_CHARS:
        raise ModelImportError(f"the archive's size expression is not a plain size formula (not a string or "
                               f"longer than {MAX_EXPR_CHARS} characters); received: {visible(text, 80)}. {_FIX}")
    try:
        return _ExprParser(text, funcs or functions()).parse()
    except ModelImportError:
        raise
    except Exception as e:  # sympy's own refusals (division by zero, inconsistent assumptions, ...)
        raise ModelImportError(f"the archive's size expression cannot be built ({type(e).__name__}); received: "
                               f"{visible(text, 80)}. {_FIX}") from None


__all__ = ["parse_size_expr", "functions", "SYMBOL", "MAX_EXPR_CHARS", "MAX_EXPR_DEPTH"]
