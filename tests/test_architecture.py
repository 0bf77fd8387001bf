"""The layering rules, checked on the source (AST, nothing imported):

(a) a page module (app_pages/) imports no torch, neither itself nor through a builder module it imports at
    module level; runs no model; opens no run file (it asks the library);
(b) builder/ imports streamlit only in builder/canvas/;
(c) tests never ``pytest.importorskip`` our own modules;
(d) builder/ has no ``assert`` statements (``python -O`` strips them; user input gets a LayerLabError);
(e) no module of builder/ or app_pages/ is over 800 lines;
(f) builder/'s docstring examples run as doctests: no ``doctest: +SKIP`` (an example that needs files or
    training is plain code naming the test in tests/ that runs it);
(g) data flows one way: each builder module imports only its own package and the layers below it (the order of
    pyproject.toml's import-linter ``layers`` contract), imports inside functions included; no import cycle; no old
    module path (builder/_moved.py); an import inside a function of builder/ or app_pages/ (ours, third-party or
    standard library) says why it is there (``# lazy: heavy (torch)``; tools/mark_lazy.py reports and mends them);
(h) processes start only in builder/process/ (the launcher and the sandbox's zygote), allow-listed sites aside.

Known violations are listed in allow-lists, each entry naming the file and why. The lists must shrink: a new
violation fails, and so does an entry that is no longer a violation (delete it from the list).
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest's own dependency on 3.10
    import tomli as tomllib

import pytest

from tools.archmap import is_type_checking, module_name, resolve_from, typing_only
from tools.mark_lazy import LAZY_MARK, fix, unmarked

ROOT = Path(__file__).resolve().parents[1]
BUILDER = ROOT / "builder"
PAGES = ROOT / "app_pages"
MAX_LINES = 800

#: imports that bring in torch (~1.3 s): a page must not pay for them at module level
TORCH_MODULES = ("torch", "captum", "torchvision", "safetensors.torch")
#: a path into a run folder comes from these (the store's named paths; a run record's ``*_path`` fields)
RUN_PATH_ATTRS = ("run_dir",)
#: reading calls on a path
READ_METHODS = {"read_text", "read_bytes", "open"}
#: calls that load tensors/weights from a file
LOAD_CALLS = {"safe_open", "load_file", "load_weights", "load_checkpoint"}
#: library calls that build, train, trace or run a user's model in the calling process: a page hands the work to a
#: job (builder.runs.jobs), the sandboxed model probe (builder.interpret.probe) or a worker (builder.interchange.worker)
IN_PROCESS_MODEL_CALLS = {"compile_graph", "build_model", "run_training", "cross_validate", "prune_run",
                          "resume_run", "resume_pruned", "load_run", "open_run", "ExplainSession", "evaluate",
                          "evaluate_holdout", "network_model", "export_network", "export_onnx", "quantize_run",
                          "node_latency", "module_latency", "check_drift", "drift_run", "reconstruction_probe"}

# ---------------------------------------------------------------------------------------------------------
# Allow-lists of known violations: each entry is (file, kind) -> why it is still there. Shrink only.
# ---------------------------------------------------------------------------------------------------------

#: (a) pages: file -> {violation kind: reason}
PAGE_ALLOWED: dict[str, dict[str, str]] = {}

#: (e) modules over MAX_LINES lines -> reason
LONG_ALLOWED: dict[str, str] = {
}


#: (f) modules whose docstring examples are still skipped -> reason
SKIP_ALLOWED: dict[str, str] = {}


# ---------------------------------------------------------------------------------------------------------
# source helpers
# ---------------------------------------------------------------------------------------------------------


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _py_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "assets" not in p.relative_to(folder).parts)


@cache
def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _module_name(path: Path) -> str:
    return module_name(path, ROOT)


def _toplevel_imports(tree: ast.Module, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, module) imported when ``module`` is imported: statements outside functions and TYPE_CHECKING
    blocks; ``from pkg import name`` gives ``pkg`` and ``pkg.name`` (which may be a submodule)."""
    out: list[tuple[int, str]] = []

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.Import):
                out.extend((node.lineno, a.name) for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                prefix = resolve_from(module, is_package, node)
                out.append((node.lineno, prefix))
                out.extend((node.lineno, f"{prefix}.{a.name}") for a in node.names)
            elif isinstance(node, ast.If):
                if not is_type_checking(node):
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for h in node.handlers:
                    visit(h.body)
                visit(node.orelse)
                visit(node.finalbody)
            elif isinstance(node, ast.With):
                visit(node.body)

    visit(tree.body)
    return out


def _builder_file(module: str) -> Path | None:
    """The file of a builder module (``builder.a.b``), or None for a name that is no module (a function)."""
    base = ROOT.joinpath(*module.split("."))
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def _with_parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


@cache
def _builder_imports(module: str) -> tuple[str, ...]:
    """What importing builder ``module`` imports at module level (parent packages included)."""
    path = _builder_file(module)
    if path is None:
        return ()
    out: list[str] = []
    for _, imported in _toplevel_imports(_tree(path), module, path.name == "__init__.py"):
        out += _with_parents(imported) if imported.split(".")[0] == "builder" else [imported]
    return tuple(m for m in out if m != module)


@cache
def _torch_chain(module: str) -> tuple[str, ...] | None:
    """The chain of module-level imports by which importing builder ``module`` imports torch, or None."""
    torch_roots = {m.split(".")[0] for m in TORCH_MODULES}
    parent: dict[str, str | None] = {module: None}
    queue = [module]
    while queue:  # breadth first: the shortest chain
        current = queue.pop(0)
        for imported in _builder_imports(current):
            if imported.split(".")[0] in torch_roots and imported.startswith(TORCH_MODULES):
                chain = [imported, current]
                while parent[chain[-1]] is not None:
                    chain.append(parent[chain[-1]])
                return tuple(reversed(chain))
            if imported.split(".")[0] == "builder" and imported not in parent:
                parent[imported] = current
                queue.append(imported)
    return None


# ---------------------------------------------------------------------------------------------------------
# (a) pages
# ---------------------------------------------------------------------------------------------------------


def _mentions(node: ast.AST, names: set[str]) -> bool:
    """Whether ``node`` refers to a run path: a run_dir / *_path attribute or string, or a tainted name."""
    for n in ast.walk(node):
        if isinstance(n, ast.Attribute) and (n.attr in RUN_PATH_ATTRS or n.attr.endswith("_path")):
            return True
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value.endswith("_path"):
            return True
        if isinstance(n, ast.Name) and n.id in names:
            return True
    return False


def _run_path_names(tree: ast.AST) -> set[str]:
    """Names bound (to a fixed point) to a run path: variables assigned from an expression that mentions one,
    and functions of the module that return one."""
    assigns = [(t, n.value) for n in ast.walk(tree) if isinstance(n, ast.Assign) for t in n.targets]
    assigns += [(n.target, n.value) for n in ast.walk(tree)
                if isinstance(n, (ast.AnnAssign, ast.NamedExpr)) and n.value is not None]
    funcs = [f for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))]
    names: set[str] = set()
    while True:
        found = {t.id for t, value in assigns if isinstance(t, ast.Name) and _mentions(value, names)}
        found |= {f.name for f in funcs if any(isinstance(r, ast.Return) and r.value is not None
                                               and _mentions(r.value, names) for r in ast.walk(f))}
        if found <= names:
            return names
        names |= found


def _call_name(call: ast.Call) -> str:
    f = call.func
    return f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""


@dataclass(frozen=True)
class Violation:
    kind: str
    line: int
    what: str


def page_violations(path: Path) -> list[Violation]:
    """Every breach of "a page imports no torch, runs no model, opens no run file" in one page module."""
    tree = _tree(path)
    module = _module_name(path) if path.is_relative_to(ROOT) else path.stem
    out: list[Violation] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] in {"torch", "captum", "torchvision"}:
                    out.append(Violation("imports torch", node.lineno, f"import {a.name}"))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in {"torch", "captum",
                                                                                       "torchvision"}:
            out.append(Violation("imports torch", node.lineno, f"from {node.module} import ..."))
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "torch":
            out.append(Violation("torch use", node.lineno, f"torch.{node.attr}"))
    for line, imported in _toplevel_imports(tree, module, False):
        chain = _torch_chain(imported) if imported.split(".")[0] == "builder" else None
        if chain:
            out.append(Violation("imports torch", line, " -> ".join(chain)))
    tainted = _run_path_names(tree)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _call_name(node)
        f = node.func
        if name == "eval" and isinstance(f, ast.Attribute) and not node.args:
            out.append(Violation("runs a model", node.lineno, ".eval()"))
        elif name == "eval_mode" or (isinstance(f, ast.Name) and f.id == "model") or (
                isinstance(f, ast.Attribute) and f.attr == "model"):
            out.append(Violation("runs a model", node.lineno, f"{ast.unparse(f)}(...)"))
        elif name in IN_PROCESS_MODEL_CALLS:
            out.append(Violation("runs a model", node.lineno, f"{ast.unparse(f)}(...) in the server's process"))
        else:
            opens = (name == "open" and isinstance(f, ast.Name) and node.args and _mentions(node.args[0], tainted))
            reads = name in READ_METHODS and isinstance(f, ast.Attribute) and _mentions(f.value, tainted)
            if opens or reads or name in LOAD_CALLS:
                out.append(Violation("opens a run file", node.lineno, ast.unparse(node)[:80]))
    return out


def _page_report() -> dict[str, dict[str, list[Violation]]]:
    report: dict[str, dict[str, list[Violation]]] = {}
    for path in _py_files(PAGES):
        for v in page_violations(path):
            report.setdefault(_rel(path), {}).setdefault(v.kind, []).append(v)
    return report


def test_pages_import_no_torch_run_no_model_open_no_run_file():
    report = _page_report()
    new = {f"{file}: {kind}: " + "; ".join(f"line {v.line} {v.what}" for v in vs[:5])
           for file, kinds in report.items() for kind, vs in kinds.items()
           if kind not in PAGE_ALLOWED.get(file, {})}
    assert not new, ("a page module must ask the library (builder) instead:\n" + "\n".join(sorted(new)))
    stale = {f"{file}: {kind}" for file, kinds in PAGE_ALLOWED.items() for kind in kinds
             if kind not in report.get(file, {})}
    assert not stale, ("fixed, delete from PAGE_ALLOWED in tests/test_architecture.py:\n" + "\n".join(sorted(stale)))


def test_page_checks_catch_each_kind(tmp_path: Path):
    """The page checker itself: each kind of breach in a small page is found, and clean code is not flagged."""
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import json\nimport torch\nimport builder.interpret.attributions\n"
        "def f(rs, rid, ctx):\n"
        "    p = rs.run_dir(rid) / 'job.json'\n"
        "    a = json.loads(p.read_text())\n"
        "    w = rs.weights_path(rid)\n"
        "    data = w.read_bytes()\n"
        "    with open(rs.run_dir(rid) / 'x') as fh:\n"
        "        pass\n"
        "    ctx.model.eval()\n"
        "    return ctx.model(torch.zeros(1))\n"
        "def g(project, store):\n"
        "    return cross_validate(project, 'moons', {}, store, folds=5)\n")
    kinds = {(v.kind, v.line) for v in page_violations(bad)}
    assert ("imports torch", 2) in kinds
    assert ("torch use", 12) in kinds
    assert {("opens a run file", 6), ("opens a run file", 8), ("opens a run file", 9)} <= kinds
    assert {("runs a model", 11), ("runs a model", 12), ("runs a model", 14)} <= kinds
    good = tmp_path / "good.py"
    good.write_text("import json\nfrom pathlib import Path\n"
                    "def f(up):\n    p = Path(up.name)\n    return json.loads(p.read_text())\n")
    assert page_violations(good) == []


def test_torch_chain_follows_module_level_imports_only():
    """builder/__init__ imports torch lazily (PEP 562): `import builder` is torch-free; the compiler is not."""
    assert _torch_chain("builder") is None
    assert _torch_chain("builder.graph.shapes") is None
    chain = _torch_chain("builder.graph.compile")
    assert chain and chain[0] == "builder.graph.compile" and chain[-1].startswith("torch")


# ---------------------------------------------------------------------------------------------------------
# (b)-(e)
# ---------------------------------------------------------------------------------------------------------


def _imports_anywhere(tree: ast.AST) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            out.append((node.lineno, node.module or ""))
        elif isinstance(node, ast.Call) and _call_name(node) in {"import_module", "__import__"} and node.args \
                and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
            out.append((node.lineno, node.args[0].value))
    return out


def test_builder_imports_streamlit_only_in_canvas():
    bad = [f"{_rel(p)}:{line} imports {name}" for p in _py_files(BUILDER)
           if "canvas" not in p.relative_to(BUILDER).parts
           for line, name in _imports_anywhere(_tree(p)) if name.split(".")[0] == "streamlit"]
    assert not bad, "Streamlit lives only in builder/canvas/:\n" + "\n".join(bad)


def test_tests_never_importorskip_our_modules():
    bad = []
    for p in sorted((ROOT / "tests").rglob("*.py")):
        for node in ast.walk(_tree(p)):
            if isinstance(node, ast.Call) and _call_name(node) == "importorskip" and node.args:
                arg = node.args[0]
                name = arg.value if isinstance(arg, ast.Constant) and isinstance(arg.value, str) else ""
                if name.split(".")[0] in {"builder", "app_pages", "app"} or not name:
                    bad.append(f"{_rel(p)}:{node.lineno} {ast.unparse(node)}")
    assert not bad, "import our own modules plainly (a broken import must fail, not skip):\n" + "\n".join(bad)


def test_builder_has_no_assert_statements():
    bad = [f"{_rel(p)}:{n.lineno} assert {ast.unparse(n.test)[:60]}" for p in _py_files(BUILDER)
           for n in ast.walk(_tree(p)) if isinstance(n, ast.Assert)]
    assert not bad, "raise a LayerLabError (builder/errors.py) instead of assert:\n" + "\n".join(bad)


def test_no_module_imports_another_modules_private_names():
    """A name another module needs is that module's public name (one home, named as shared): ``from x import
    _helper`` across modules hid 40 such names (a message formatter, a registry, the per-owner study settings,
    the pruning measurements). A private module (``_common``) is its package's own."""
    bad = []
    for p in [*_py_files(BUILDER), *_py_files(PAGES), ROOT / "app.py"]:
        for node in ast.walk(_tree(p)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in {"builder", "app_pages"}:
                if node.module.split(".")[-1].startswith("_"):
                    continue
                bad += [f"{_rel(p)}:{node.lineno} {node.module}.{a.name}" for a in node.names
                        if a.name.startswith("_") and not a.name.startswith("__")]
    assert not bad, "make the name public in its module (no leading underscore):\n" + "\n".join(bad)


#: the calls that start a process (``subprocess.run``, ``os.fork``, ...), by their last name
PROCESS_CALLS = {"Popen", "run", "call", "check_call", "check_output", "getoutput", "getstatusoutput", "fork",
                 "forkpty", "system", "popen", "posix_spawn", "posix_spawnp", "spawnv", "spawnve", "spawnl",
                 "spawnle", "execv", "execve", "execvp", "execl", "execlp"}
#: where LayerLab starts processes outside builder/process/ (the one launcher: spawn_detached, run_attached,
#: spawn_sandboxed and the sandbox's zygote); each names why. Shrink only: a new site goes through the launcher
PROCESS_SITES = {
    "builder/jobs/warm.py": "the warm launcher (itself started by spawn_detached) forks each job, which locks "
                            "itself down (job_sandbox.enter) before it builds the model",
    "builder/training/gpus.py": "nvidia-smi reads the GPUs' free memory: a fixed command, no user content",
}


def _process_calls(path: Path) -> list[str]:
    """``subprocess.X`` / ``os.X`` calls of :data:`PROCESS_CALLS` in ``path`` (``line name``)."""
    out = []
    for node in ast.walk(_tree(path)):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in PROCESS_CALLS
                and isinstance(node.func.value, ast.Name) and node.func.value.id in ("subprocess", "os", "pty")):
            out.append(f"{node.lineno} {node.func.value.id}.{node.func.attr}")
    return out


def test_processes_start_only_through_the_launcher():
    """(h) One home for starting a process: builder/process/ (the launcher and the sandbox's zygote), whose
    children get the limits, the clean environment and the private folder; the allow-listed sites say why. A page
    never starts one."""
    found = {_rel(p): calls for p in [*_py_files(BUILDER), *_py_files(PAGES), ROOT / "app.py"]
             if not _rel(p).startswith("builder/process/") and (calls := _process_calls(p))}
    bad = [f"{f}: {', '.join(c)}" for f, c in found.items() if f not in PROCESS_SITES]
    stale = [f for f in PROCESS_SITES if f not in found]
    assert not bad, "start it through builder/process/launcher.py:\n" + "\n".join(bad)
    assert not stale, f"no longer starts a process: delete it from PROCESS_SITES: {stale}"


@pytest.mark.parametrize("folder", [BUILDER, PAGES], ids=["builder", "app_pages"])
def test_no_module_over_800_lines(folder: Path):
    lengths = {_rel(p): len(p.read_text(encoding="utf-8").splitlines()) for p in _py_files(folder)}
    long = {f: n for f, n in lengths.items() if n > MAX_LINES}
    new = [f"{f}: {n} lines" for f, n in sorted(long.items()) if f not in LONG_ALLOWED]
    assert not new, f"split along the module's own sections (at most {MAX_LINES} lines):\n" + "\n".join(new)
    stale = [f for f in LONG_ALLOWED if f.startswith(_rel(folder) + "/") and f not in long]
    assert not stale, "now short enough, delete from LONG_ALLOWED in tests/test_architecture.py: " + ", ".join(stale)


def test_builder_doctests_are_not_skipped():
    skipped = {_rel(p) for p in _py_files(BUILDER) if "doctest: +SKIP" in p.read_text(encoding="utf-8")}
    new = sorted(skipped - set(SKIP_ALLOWED))
    assert not new, ("make the example runnable, or plain code naming the test that runs it (see "
                     "builder/runs/jobs.py):\n" + "\n".join(new))
    stale = sorted(set(SKIP_ALLOWED) - skipped)
    assert not stale, "no longer skipped, delete from SKIP_ALLOWED in tests/test_architecture.py: " + ", ".join(stale)


# tests/ mirrors builder/: one folder per package (plus the pages' AppTests, the canvas and the browser
# tests); only checks of the whole repository stay at the top
TOP_LEVEL_TESTS = {"test_architecture", "test_escape", "test_public_api", "test_readme_layout", "test_access", "test_docs",
                   "test_tracking", "test_tracking_destinations", "test_tracking_outage"}  # builder/<module>.py
TEST_FOLDERS_BESIDE_PACKAGES = {"app", "canvas", "e2e"}


def test_tests_mirror_the_library_packages():
    packages = {p.parent.name for p in BUILDER.glob("*/__init__.py")}
    stray = sorted(p.stem for p in (ROOT / "tests").glob("test_*.py") if p.stem not in TOP_LEVEL_TESTS)
    assert not stray, "move into tests/<package>/ (the package the test exercises): " + ", ".join(stray)
    folders = {p.name for p in (ROOT / "tests").iterdir() if p.is_dir() and any(p.glob("test_*.py"))}
    unknown = sorted(folders - packages - TEST_FOLDERS_BESIDE_PACKAGES)
    assert not unknown, "test folders are named after builder's packages: " + ", ".join(unknown)


# ---------------------------------------------------------------------------------------------------------
# (g) data flows one way
# ---------------------------------------------------------------------------------------------------------

def _layers() -> list[list[str]]:
    """The import-linter ``layers`` contract of pyproject.toml, lowest layer first; each layer its packages."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]
    (contract,) = [c for c in config["contracts"] if c["id"] == "layers"]
    return [[m.strip() for m in layer.replace("|", ":").split(":")] for layer in reversed(contract["layers"])]


@dataclass(frozen=True)
class _Import:
    module: str  # the importing module
    target: str  # the builder module imported (``from pkg import submodule`` imports the submodule)
    line: int
    lazy: bool  # inside a function
    text: str  # the statement's source lines


@cache
def _builder_modules() -> dict[str, Path]:
    return {_module_name(p): p for p in _py_files(BUILDER)}


def _all_imports() -> list[_Import]:
    """Every import of a builder module by a builder module, at any depth (functions too); TYPE_CHECKING blocks are
    left out (annotations, never run). A name that is no module of ours (an old path) is kept as written."""
    modules = _builder_modules()
    return [imp for module, path in modules.items() for imp in _imports_of(module, path, modules)]


def _imports_of(module: str, path: Path, modules: dict[str, Path]) -> list[_Import]:
    tree, lines = _tree(path), path.read_text(encoding="utf-8").splitlines()
    skip = typing_only(tree)
    out: list[_Import] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)) and id(child) not in skip:
                if isinstance(child, ast.Import):
                    names = [a.name for a in child.names]
                else:
                    base = resolve_from(module, path.name == "__init__.py", child)
                    names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in child.names]
                for name in dict.fromkeys(n for n in names if n.split(".")[0] == "builder"):
                    text = "\n".join(lines[child.lineno - 1:child.end_lineno])  # the whole statement
                    out.append(_Import(module, name, child.lineno, in_function, text))
            visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    visit(tree, False)
    return out


def _rank(module: str, layers: list[list[str]]) -> tuple[int, str] | None:
    """(layer index, package) of a builder module; None for the root package's own modules (the public façade)."""
    for i, layer in enumerate(layers):
        for package in layer:
            if module == package or module.startswith(package + "."):
                return i, package
    return None


def _upward(imports: list[_Import], layers: list[list[str]]) -> list[str]:
    """Imports of a later layer, or of a sibling package of the same layer (the leaves may import each other)."""
    bad = []
    for imp in imports:
        src, dst = _rank(imp.module, layers), _rank(imp.target, layers)
        if src is None or dst is None:
            continue
        if dst[0] > src[0] or (dst[0] == src[0] and dst[1] != src[1] and src[0] != 0):
            bad.append(f"{imp.module}:{imp.line} imports {imp.target} ({'inside a function' if imp.lazy else 'module level'})")
    return bad


def _cycles(imports: list[_Import]) -> list[list[str]]:
    import networkx as nx

    g = nx.DiGraph((i.module, i.target) for i in imports if i.module != i.target)
    return [sorted(c) for c in nx.strongly_connected_components(g) if len(c) > 1]


def test_every_builder_module_is_in_a_layer():
    layers = _layers()
    missing = sorted(m for m in _builder_modules() if _rank(m, layers) is None and m not in ("builder", "builder.__main__"))
    assert not missing, "add the package to the layers contract in pyproject.toml: " + ", ".join(missing)


def test_data_flows_one_way():
    bad = _upward(_all_imports(), _layers())
    assert not bad, ("an import against graph -> data -> training -> runs -> interpret -> edges (pyproject.toml's "
                     "layers); move the code to the stage its imports put it in, or hand it what it needs:\n"
                     + "\n".join(bad))


def test_no_import_cycles_even_inside_functions():
    cycles = _cycles(_all_imports())
    assert not cycles, "import cycles (an import inside a function hides none):\n" + "\n".join(map(str, cycles))


def test_builder_imports_no_old_module_path():
    modules = _builder_modules()
    old = [f"{i.module}:{i.line} imports {i.target}" for i in _all_imports()
           if i.target not in modules and i.target.split(".")[0] == "builder"]
    assert not old, "import the module at its new place (builder/_moved.py):\n" + "\n".join(old)


def test_imports_inside_functions_say_why():
    """Ours, third-party and standard library alike, in builder/ and app_pages/: an import inside a function keeps
    a heavy module off a fast path and says so on its line, or it belongs at module level."""
    found = unmarked(ROOT)
    assert not found, (f"import at module level, or say why on the line ({LAZY_MARK} heavy (torch), ...); "
                       "python tools/mark_lazy.py --fix does it:\n" + "\n".join(map(str, found)))


_LAZY_CASE = '''"""A module with every kind of import inside functions."""

from __future__ import annotations

import os


def dump():
    import json

    return json.dumps(os.sep)


def heavy():
    import torch
    from builder.heavy import T
    from builder.light import X
    from builder import exported
    try:
        import fcntl
    except ImportError:
        fcntl = None
    return torch, T, X, exported, fcntl


def kept():
    import re  # lazy: a reason given
    return re
'''


def test_mark_lazy_reports_marks_and_hoists_each_kind(tmp_path: Path):
    (tmp_path / "builder").mkdir()
    (tmp_path / "app_pages").mkdir()
    (tmp_path / "builder" / "__init__.py").write_text("def __getattr__(name):  # exported: a module on first use\n"
                                                      "    raise AttributeError(name)\n")
    (tmp_path / "builder" / "heavy.py").write_text("import torch\n\nT = torch\n")
    (tmp_path / "builder" / "light.py").write_text("X = 1\n")
    (tmp_path / "builder" / "case.py").write_text(_LAZY_CASE)
    found = {f.module: (f.kind, f.reason, f.movable) for f in unmarked(tmp_path)}
    assert found == {"json": ("stdlib", None, True), "torch": ("third-party", "heavy (torch)", True),
                     "builder.heavy": ("ours", "heavy (torch)", True), "builder.light": ("ours", None, True),
                     "builder": ("ours", "heavy (loaded on first use: exported)", True),
                     "fcntl": ("stdlib", "POSIX only (fcntl)", False)}
    assert fix(tmp_path) == [] and unmarked(tmp_path) == []
    text = (tmp_path / "builder" / "case.py").read_text()
    tree = ast.parse(text)
    assert {ast.unparse(n) for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))} >= {
        "import json", "from builder.light import X"}  # hoisted to the module's imports
    assert "    import torch  # lazy: heavy (torch)\n" in text and "import fcntl  # lazy: POSIX only (fcntl)" in text
    assert "    import re  # lazy: a reason given\n" in text and text.index("import json") < text.index("def dump")


def test_layer_checks_catch_upward_imports_cycles_and_siblings():
    layers = [["builder.errors", "builder.escape"], ["builder.graph"], ["builder.runs"], ["builder.cli", "builder.canvas"]]
    imports = [_Import("builder.graph.a", "builder.runs.store", 3, True, "from builder.runs.store import X"),
               _Import("builder.runs.store", "builder.graph.a", 1, False, "from builder.graph.a import Y"),
               _Import("builder.cli.main", "builder.canvas", 2, False, "import builder.canvas"),
               _Import("builder.escape", "builder.errors", 1, False, "from builder.errors import E"),
               _Import("builder.cli.main", "builder.graph.a", 4, True, "from builder.graph.a import Y  # lazy: heavy")]
    assert _upward(imports, layers) == ["builder.graph.a:3 imports builder.runs.store (inside a function)",
                                        "builder.cli.main:2 imports builder.canvas (module level)"]
    assert _cycles(imports) == [["builder.graph.a", "builder.runs.store"]]


def test_the_import_linter_contract_is_kept():
    from importlinter.cli import lint_imports

    assert lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True) == 0
