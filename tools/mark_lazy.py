"""Imports inside functions that do not say why: report them, and with ``--fix`` mark or hoist them.

An import stays inside a function only to keep a heavy module (torch, Captum, onnx, ...) off a fast path, or
one that exists on POSIX only off the module level, and says so on its line: ``# lazy: heavy (torch)``. Every
other import belongs at module level. This walks ``builder/`` and ``app_pages/`` (ours, third-party and standard
library imports alike; ``if TYPE_CHECKING:`` blocks left out) and lists each unmarked import with what it should
get: the marker, when the module is heavy (a third-party module of :data:`HEAVY`, or one of ours whose
module-level imports reach one), or a place at module level. ``tests/test_architecture.py`` fails on any.

Usage: ``python tools/mark_lazy.py [--root .] [--fix]``. ``--fix`` appends the marker to heavy ones and moves
the others that are a plain statement of a function's body to the module's imports (then run ``ruff check
--fix --select I`` to sort them); what it cannot move (an import in a ``try``, a name the module binds
otherwise) is listed for a person to decide.
"""

from __future__ import annotations

import argparse
import ast
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

if __package__ in (None, ""):  # run as a script (python tools/mark_lazy.py): the repository root as the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tools.archmap import module_name, resolve_from, typing_only  # noqa: E402

LAZY_MARK = "# lazy:"
FOLDERS = ("builder", "app_pages")
OURS = frozenset(FOLDERS)
#: third-party modules whose import costs a fast path (a page's first render, the CLI's start) noticeable time
HEAVY = frozenset({
    "torch", "torchvision", "captum", "onnx", "onnxruntime", "onnxscript", "transformers", "peft", "mlflow",
    "optuna", "ray", "sqlalchemy", "alembic", "psycopg", "pandas", "plotly", "sklearn", "scipy", "statsmodels",
    "tokenizers", "safetensors", "huggingface_hub", "matplotlib", "sympy", "google", "datasets",
})
#: imported where it runs only (the canvas's own package imports it at module level)
STREAMLIT_OUTSIDE_CANVAS = "streamlit"
#: standard-library modules that exist on POSIX only
POSIX_ONLY = frozenset({"fcntl", "resource", "termios", "pwd", "grp", "posix"})


@dataclass(frozen=True)
class Found:
    """One import inside a function without a ``# lazy:`` reason."""

    path: Path
    line: int
    end: int
    module: str  # the module imported, absolute (``builder.runs.pipeline``, ``torch.nn``)
    kind: str  # "ours", "third-party" or "stdlib"
    text: str  # the statement's source lines
    movable: bool  # a plain statement of a function's body (not in a try, an if or a loop)
    reason: str | None  # what its marker says (heavy, POSIX only); None: it belongs at module level

    def __str__(self) -> str:
        todo = f"mark it  {LAZY_MARK} {self.reason}" if self.reason else "import it at module level"
        return f"{self.path}:{self.line}: {self.text.splitlines()[0].strip()}  ({self.kind}: {todo})"


def _targets(module: str, is_package: bool, node: ast.Import | ast.ImportFrom, files: dict[str, Path]) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = resolve_from(module, is_package, node)
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names]


@cache
def _files(root: Path) -> dict[str, Path]:
    return {module_name(p, root): p for folder in FOLDERS for p in sorted((root / folder).rglob("*.py"))
            if "assets" not in p.parts}


@cache
def _module_level_imports(root: Path, module: str) -> tuple[str, ...]:
    files = _files(root)
    path = files.get(module)
    if path is None:
        return ()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = typing_only(tree)
    out: list[str] = []
    for node in ast.walk(tree):  # module level: not inside a function (a class body runs at import)
        if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in skip and _at_module_level(tree, node):
            out += _targets(module, path.name == "__init__.py", node, files)
    parents = [".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)]  # packages' __init__
    return tuple(dict.fromkeys([*parents, *out]))


def _at_module_level(tree: ast.Module, target: ast.AST) -> bool:
    def walk(node: ast.AST) -> bool | None:
        for child in ast.iter_child_nodes(node):
            if child is target:
                return True
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            if walk(child):
                return True
        return None
    return bool(walk(tree))


@cache
def heavy_reach(root: Path, module: str) -> str | None:
    """The first heavy third-party module that importing our ``module`` imports (module-level imports,
    followed breadth first through our modules), or None."""
    files, seen, queue = _files(root), {module}, [module]
    while queue:
        for imported in _module_level_imports(root, queue.pop(0)):
            top = imported.split(".")[0]
            if top in HEAVY:
                return top
            name = imported
            while name and name not in files:
                name = name.rpartition(".")[0]
            if top in OURS and name and name not in seen:
                seen.add(name)
                queue.append(name)
    return None


@cache
def _bound_names(root: Path, module: str) -> frozenset[str] | None:
    """The names our package ``module`` binds when imported, or None when it has no module ``__getattr__`` (it
    gives no name on first use)."""
    path = _files(root).get(module)
    if path is None:
        return None
    tree = ast.parse(path.read_text(encoding="utf-8"))
    if not any(isinstance(n, ast.FunctionDef) and n.name == "__getattr__" for n in tree.body):
        return None
    return frozenset(_module_names(tree))


def reason_for(root: Path, module: str, importer: str, names: tuple[str, ...] = ()) -> str | None:
    """What the marker of an import of ``module`` (its ``names``, for ``from module import ...``) inside a
    function of ``importer`` says, or None (hoist it)."""
    top = module.split(".")[0]
    bound = _bound_names(root, module) if top in OURS and names else None
    unbound = [n for n in names if bound is not None and n not in bound]
    if unbound:  # the package's __getattr__ imports it on first use: that import is what costs
        return f"heavy (loaded on first use: {unbound[0]})"
    if top in HEAVY:
        return f"heavy ({top})"
    if top == STREAMLIT_OUTSIDE_CANVAS and not importer.startswith("app_pages"):
        return "heavy (streamlit)"
    if top in POSIX_ONLY:
        return f"POSIX only ({top})"
    if top in OURS:
        files = _files(root)
        name = module
        while name and name not in files:
            name = name.rpartition(".")[0]
        reached = heavy_reach(root, name) if name else None
        return f"heavy ({reached})" if reached else None
    return None


def unmarked(root: Path) -> list[Found]:
    """Every import inside a function of ``builder/`` and ``app_pages/`` without a ``# lazy:`` reason."""
    root = root.resolve()
    files, out = _files(root), []
    for module, path in files.items():
        text = path.read_text(encoding="utf-8")
        tree, lines = ast.parse(text), text.splitlines()
        skip = typing_only(tree)

        def visit(node: ast.AST, in_function: bool, body_of_function: bool, module: str = module,
                  path: Path = path, lines: list[str] = lines, skip: set[int] = skip) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, (ast.Import, ast.ImportFrom)) and in_function and id(child) not in skip:
                    stmt = "\n".join(lines[child.lineno - 1:child.end_lineno])
                    if LAZY_MARK not in stmt:
                        target = _targets(module, path.name == "__init__.py", child, files)[0]
                        names = tuple(a.name for a in child.names) if isinstance(child, ast.ImportFrom) else ()
                        top = target.split(".")[0]
                        kind = "ours" if top in OURS else "stdlib" if top in sys.stdlib_module_names else "third-party"
                        out.append(Found(path.relative_to(root), child.lineno, child.end_lineno or child.lineno,
                                         target, kind, stmt, body_of_function, reason_for(root, target, module, names)))
                is_fn = isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
                visit(child, in_function or is_fn, is_fn)

        visit(tree, False, False)
    return out


# ----------------------------------------------------------------------------------------------- --fix
def _bound(node: ast.Import | ast.ImportFrom) -> set[str]:
    return {a.asname or a.name.split(".")[0] for a in node.names}


def _module_names(tree: ast.Module) -> dict[str, str]:
    """Names the module binds at its top level -> the import statement that binds them ("" for any other)."""
    out: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for name in _bound(node):
                out[name] = ast.unparse(node)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out[node.name] = ""
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            for t in node.targets if isinstance(node, ast.Assign) else [node.target]:
                for n in ast.walk(t):
                    if isinstance(n, ast.Name):
                        out[n.id] = ""
    return out


def _hoist(path: Path, found: list[Found]) -> list[Found]:
    """Move the ``found`` imports of one file to its module-level imports; those it could not move (all of a
    package's ``__init__``, where a module-level import would be one more attribute of the package)."""
    if path.name == "__init__.py":
        return list(found)
    text = path.read_text(encoding="utf-8")
    lines, tree = text.splitlines(keepends=True), ast.parse(text)
    names = _module_names(tree)
    stmts = {(n.lineno, n.end_lineno): n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))}
    fn_bodies = {id(s): fn for fn in ast.walk(tree) if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
                 for s in fn.body}
    left, moved, drop = [], [], set()
    for f in sorted(found, key=lambda f: f.line):
        node = stmts[(f.line, f.end)]
        this, fn = ast.unparse(node), fn_bodies.get(id(node))
        clash = any(n in names and not (names[n] and _same_binding(names[n], this, n)) for n in _bound(node))
        only = fn is not None and all(s is node or _is_docstring(s, fn) for s in fn.body)
        if not f.movable or fn is None or clash or only:
            left.append(f)
            continue
        drop.update(range(f.line - 1, f.end))
        j = f.line - 2
        while j in drop:
            j -= 1
        prev = lines[j].rstrip() if j >= 0 else ""
        if f.end < len(lines) and not lines[f.end].strip() and (not prev or prev.endswith(":")):
            drop.add(f.end)  # the blank line that closed the function's imports, right under its header
        if not all(n in names for n in _bound(node)):  # else the module imports it already
            moved.append(this)
            names.update(dict.fromkeys(_bound(node), this))
    if not drop:
        return left
    at = 0  # after the imports the module opens with (a late import of its own stays where it is)
    for i, node in enumerate(tree.body):
        if isinstance(node, (ast.Import, ast.ImportFrom)) or (i == 0 and _is_docstring(node, tree)):
            at = node.end_lineno or at
        else:
            break
    kept = [line for i, line in enumerate(lines[:at]) if i not in drop]
    rest = [line for i, line in enumerate(lines[at:], start=at) if i not in drop]
    new = "".join(kept) + "".join(s + "\n" for s in dict.fromkeys(moved)) + "".join(rest)
    path.write_text(new, encoding="utf-8")
    return left


def _same_binding(a: str, b: str, name: str) -> bool:
    """Whether two import statements bind ``name`` to the same thing (``import x`` and ``import x.y`` do)."""
    def source(stmt: str) -> str:
        node = ast.parse(stmt).body[0]
        for alias in node.names:
            if (alias.asname or alias.name.split(".")[0]) == name:
                if isinstance(node, ast.Import):
                    return alias.name.split(".")[0] if alias.asname is None else alias.name
                return f"{'.' * node.level}{node.module}:{alias.name}"
        return stmt
    return source(a) == source(b)


def _is_docstring(stmt: ast.stmt, owner: ast.AST) -> bool:
    return (stmt is owner.body[0] and isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)
            and isinstance(stmt.value.value, str))


def _mark(path: Path, found: list[Found]) -> None:
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    for f in found:
        i = f.line - 1
        body = lines[i].rstrip("\n")
        lines[i] = f"{body}  {LAZY_MARK} {f.reason}\n"
    path.write_text("".join(lines), encoding="utf-8")


def fix(root: Path) -> list[Found]:
    """Mark the heavy imports, hoist the others that can move; the imports left for a person."""
    root = root.resolve()
    found = unmarked(root)
    by_file: dict[Path, list[Found]] = {}
    for f in found:
        by_file.setdefault(f.path, []).append(f)
    left: list[Found] = []
    for rel, fs in by_file.items():
        _mark(root / rel, [f for f in fs if f.reason])  # appends to lines: the hoisting's line numbers hold
        left += _hoist(root / rel, [f for f in fs if not f.reason])
    _files.cache_clear()
    _bound_names.cache_clear()
    _module_level_imports.cache_clear()
    heavy_reach.cache_clear()
    return left


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    ap.add_argument("--fix", action="store_true", help="mark the heavy ones, hoist the others where they can move")
    a = ap.parse_args(argv)
    todo = fix(a.root) if a.fix else unmarked(a.root)
    for f in todo:
        print(f)
    print(f"{len(todo)} import(s) inside functions without a reason" + (" left for a person" if a.fix else ""))
    return 1 if todo else 0


if __name__ == "__main__":
    sys.exit(main())
