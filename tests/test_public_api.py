"""Every public path the README and the documentation site (docs/) document resolves; the old flat module paths (builder/_moved.py) still import,
with a DeprecationWarning, as the very same module objects; the command-line entry points answer --help."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
import warnings
from pathlib import Path
from types import ModuleType

import pytest

import builder
from builder._moved import MOVED, MOVED_NAMES, REMOVED_IN

ROOT = Path(__file__).resolve().parents[1]

#: named in the docs (prose, Python API page, command line); checked even if the docs' wording changes
DOCUMENTED = [
    "builder.load_project", "builder.validate", "builder.infer_shapes", "builder.compile_graph",
    "builder.export_python", "builder.save_weights", "builder.Budget", "builder.import_model",
    "builder.export_onnx", "builder.quantize_int8", "builder.data", "builder.runs", "builder.interpret",
    "builder.runs.jobs", "builder.runs.jobs.submit", "builder.runs.jobs.request", "builder.runs.jobs.queue_position",
    "builder.runs.jobs.wait", "builder.runs.jobs.JobSpec", "builder.interpret.boundary.DecisionBoundary",
    "builder.graph.project.Graph.to_node_link", "builder.graph.project.Graph.from_node_link",
]


def _readme_names() -> list[str]:
    """Dotted ``builder.`` names in the README and docs/ (``builder/...`` file paths are not names)."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    text = "\n".join(p.read_text(encoding="utf-8") for p in pages)
    names = re.findall(r"(?<![\w/.])builder(?:\.[A-Za-z_]\w*)+", text)
    return sorted(set(names))


def _old_prefix(name: str) -> str | None:
    """The old module path ``name`` goes through, if any (``builder.jobs.submit`` -> ``builder.jobs``)."""
    parts = name.split(".")
    return next((".".join(parts[:i]) for i in range(len(parts), 1, -1) if ".".join(parts[:i]) in MOVED), None)


def resolve(name: str) -> object:
    """The object a dotted name documents: the longest importable module prefix, then attributes.

    Raises:
        ModuleNotFoundError, AttributeError: when the name does not resolve.
    """
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        module_name = ".".join(parts[:i])
        try:
            obj: object = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if not e.name or not (module_name + ".").startswith(e.name + "."):
                raise  # the module exists and something it imports is missing
            continue
        break
    for attr in parts[i:]:
        obj = getattr(obj, attr)
    return obj


def _resolve_quietly(name: str) -> object:
    """resolve() where an old path's DeprecationWarning is expected (pyproject turns it into an error)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return resolve(name)


def test_readme_names_are_found():
    """The docs parser finds the documented API (so the test below cannot pass on an empty list)."""
    names = _readme_names()
    assert {"builder.load_project", "builder.validate", "builder.compile_graph", "builder.export_python"} <= set(names)
    assert all(not n.endswith(".") for n in names)


@pytest.mark.parametrize("name", sorted(set(DOCUMENTED) | set(_readme_names())))
def test_documented_name_resolves(name: str):
    obj = _resolve_quietly(name)
    assert obj is not None
    old = _old_prefix(name)
    if old:  # an old path documented: it reaches the same object as the new one
        new_name = MOVED[old] + name[len(old):]
        assert _resolve_quietly(new_name) is obj


@pytest.mark.parametrize("name", builder.__all__)
def test_all_names_resolve(name: str):
    assert getattr(builder, name) is not None


def test_all_has_no_duplicates_and_unknown_names_raise():
    assert len(builder.__all__) == len(set(builder.__all__))
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        builder.no_such_name  # noqa: B018


@pytest.mark.parametrize(("old", "new"), sorted(MOVED.items()))
def test_old_path_warns_and_is_the_new_module(old: str, new: str, monkeypatch: pytest.MonkeyPatch):
    """``import builder.train`` warns once and gives builder.training.trainer itself (not a copy)."""
    new_module = importlib.import_module(new)
    monkeypatch.delitem(sys.modules, old, raising=False)  # a fresh import, restored afterwards
    with pytest.warns(DeprecationWarning, match=rf"{re.escape(old)} moved to {re.escape(new)}"):
        old_module = importlib.import_module(old)
    assert isinstance(old_module, ModuleType)
    assert old_module is new_module
    assert sys.modules[old] is new_module


def test_moved_targets_are_new_paths():
    """No old path points at another old path, and each new path exists where it says."""
    for old, new in MOVED.items():
        assert new not in MOVED, old
        assert importlib.util.find_spec(new) is not None, new


@pytest.mark.parametrize(("old", "name", "new"), sorted((o, n, m) for o, names in MOVED_NAMES.items()
                                                       for n, m in names.items()))
def test_a_name_moved_up_a_stage_warns_and_is_the_new_object(old: str, name: str, new: str):
    """``from builder.training.prune import prune_run`` warns, names the release removing it, and gives the function
    at its new home (its old module may not import the new one: that would be an import against the stages)."""
    with pytest.warns(DeprecationWarning, match=rf"{re.escape(old)}\.{name} moved to .*removed in LayerLab "
                                                rf"{re.escape(REMOVED_IN)}"):
        obj = getattr(importlib.import_module(old), name)
    new, _, renamed = new.partition(":")  # a name renamed on the way: ``module:new name``
    assert obj is getattr(importlib.import_module(new), renamed or name)
    assert name not in getattr(importlib.import_module(old), "__all__", ())


@pytest.mark.parametrize("module", ["builder", "builder.jobs", "builder.jobs.queue", "builder.runs.jobs"])
def test_python_m_help(module: str):
    """``python -m builder --help`` (the CLI), and the job runner under its old and its new name."""
    proc = subprocess.run([sys.executable, "-m", module, "--help"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, f"python -m {module} --help exited {proc.returncode}:\n{proc.stderr[-2000:]}"
    assert "usage:" in proc.stdout
