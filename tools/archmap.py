"""Architecture figures for LayerLab: import layers, long files, page imports (issue 16's measures).

Usage: ``python tools/archmap.py [--root .]`` prints the import layers of ``builder/`` (longest chain of
module-level imports between our own modules), the modules of each layer, import cycles, imports against the
stage order (pyproject.toml's import-linter ``layers`` contract; imports inside functions included), and files
over 500 lines. ``from pkg import submodule`` counts as importing the submodule (as grimp, import-linter's
reader, counts it).
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest's own dependency on 3.10
    import tomli as tomllib

import networkx as nx


def module_name(path: Path, root: Path) -> str:
    """Dotted module name of a file under ``root`` (``builder/runs/store.py`` -> ``builder.runs.store``)."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def resolve_from(mod: str, is_pkg: bool, node: ast.ImportFrom) -> str:
    """The absolute module a ``from ... import`` in module ``mod`` (a package's ``__init__`` when ``is_pkg``)
    names: its relative dots resolved."""
    if not node.level:
        return node.module or ""
    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def is_type_checking(node: ast.AST) -> bool:
    """``if TYPE_CHECKING:`` (or ``typing.TYPE_CHECKING``): imports for annotations, not run."""
    if not isinstance(node, ast.If):
        return False
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def typing_only(tree: ast.AST) -> set[int]:
    """Ids of the nodes under ``if TYPE_CHECKING:`` blocks (annotations, never run)."""
    return {id(n) for block in ast.walk(tree) if is_type_checking(block) for stmt in block.body for n in ast.walk(stmt)}


def import_graph(root: Path, package: str = "builder", top_level_only: bool = True) -> nx.DiGraph:
    """Directed graph module -> our modules it imports (module level only unless ``top_level_only=False``;
    imports under ``if TYPE_CHECKING:`` are left out: they serve annotations and never run)."""
    files = {module_name(p, root): p for p in (root / package).rglob("*.py") if "assets" not in p.parts}
    g = nx.DiGraph()
    g.add_nodes_from(files)
    for mod, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = typing_only(tree)  # annotations only, never run
        body = tree.body if top_level_only else list(ast.walk(tree))
        for node in body:
            if id(node) in skip:
                continue
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = resolve_from(mod, path.name == "__init__.py", node)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names]
            for t in targets:
                while t and t not in files:
                    t = t.rpartition(".")[0]
                if t and t != mod and t.startswith(package):
                    # importing a package's submodule also runs the package's __init__; count the submodule only
                    g.add_edge(mod, t)
    return g


def layers(g: nx.DiGraph) -> dict[str, int]:
    """Layer of each module: 0 imports none of ours, else 1 + the highest layer it imports (cycles condensed)."""
    c = nx.condensation(g)
    depth: dict[int, int] = {}
    for n in reversed(list(nx.topological_sort(c))):
        depth[n] = 1 + max((depth[s] for s in c.successors(n)), default=-1)
    return {m: depth[c.graph["mapping"][m]] for m in g}


def contract_layers(root: Path) -> list[list[str]]:
    """The packages of each layer of pyproject.toml's import-linter ``layers`` contract, lowest first."""
    config = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]
    (contract,) = [c for c in config["contracts"] if c.get("id") == "layers"]
    return [[m.strip() for m in layer.replace("|", ":").split(":")] for layer in reversed(contract["layers"])]


def upward_imports(g: nx.DiGraph, layers: list[list[str]]) -> list[tuple[str, str]]:
    """Edges of ``g`` into a later layer, or into a sibling package of the same layer (leaves excepted)."""
    def rank(m: str) -> tuple[int, str] | None:
        for i, layer in enumerate(layers):
            for pkg in layer:
                if m == pkg or m.startswith(pkg + "."):
                    return i, pkg
        return None

    out = []
    for a, b in g.edges():
        ra, rb = rank(a), rank(b)
        if ra and rb and (rb[0] > ra[0] or (rb[0] == ra[0] and rb[1] != ra[1] and ra[0] != 0)):
            out.append((a, b))
    return sorted(out)


def long_files(root: Path, limit: int = 500) -> list[tuple[str, int]]:
    """Python files of builder/, the app and its pages with more than ``limit`` lines, longest first."""
    out = []
    for p in root.rglob("*.py"):
        rel = p.relative_to(root)
        if rel.parts[0] in {"builder", "app_pages", "pages", "app.py"} and "assets" not in rel.parts:
            n = len(p.read_text(encoding="utf-8").splitlines())
            if n > limit:
                out.append((str(rel), n))
    return sorted(out, key=lambda t: -t[1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=str(Path(__file__).resolve().parents[1]))
    ap.add_argument("--list", action="store_true", help="list the modules of every layer")
    a = ap.parse_args(argv)
    root = Path(a.root)
    g = import_graph(root)
    lay = layers(g)
    n_layers = 1 + max(lay.values())
    print(f"modules: {g.number_of_nodes()}   import layers: {n_layers}")
    cycles = [sorted(c) for c in nx.strongly_connected_components(g) if len(c) > 1]
    print(f"import cycles (module level): {len(cycles)} {cycles if cycles else ''}")
    full = import_graph(root, top_level_only=False)
    fcycles = [sorted(c) for c in nx.strongly_connected_components(full) if len(c) > 1]
    print(f"import cycles (any import, also inside functions): {len(fcycles)}")
    for c in fcycles:
        print("   ", " <-> ".join(c))
    up = upward_imports(full, contract_layers(root))
    print(f"imports against the stage order (any import): {len(up)}")
    for src, dst in up:
        print(f"    {src} -> {dst}")
    if a.list:
        for d in range(n_layers):
            print(f"  layer {d:2d}: " + " ".join(sorted(m for m, v in lay.items() if v == d)))
    print("files over 500 lines:")
    for f, n in long_files(root):
        print(f"  {n:5d}  {f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
