"""Old module paths (LayerLab 0.1's flat ``builder/``) kept importable for one release, with a DeprecationWarning.

``builder.train``, ``builder.explain``, ``builder.jobs`` ... moved into the stage packages (``builder.training``,
``builder.interpret``, ``builder.runs`` ...). A finder on ``sys.meta_path`` answers an old name with the module
object at its new place, so ``import builder.train`` and ``monkeypatch.setattr("builder.train.X", ...)`` reach the
real module, and ``python -m builder.jobs`` still runs (``get_code`` hands runpy the new module's code).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import types
import warnings

#: old module path -> new module path (packages that kept their name re-export their old names instead)
MOVED: dict[str, str] = {
    "builder.project": "builder.graph.project",
    "builder.registry": "builder.graph.registry",
    "builder.layers": "builder.graph.layers",
    "builder.counts": "builder.graph.counts",
    "builder.shapes": "builder.graph.shapes",
    "builder.compile": "builder.graph.compile",
    "builder.layout": "builder.graph.layout",
    "builder.templates": "builder.graph.templates",
    "builder.export": "builder.interchange.python_export",
    "builder.compat": "builder.data.compat",
    "builder.data.datasets": "builder.data",  # split by concept into builder/data/{sources,builtin,tabular,...}.py
    "builder.train": "builder.training.trainer",
    "builder.checkpoint": "builder.training.checkpoint",
    "builder.distributed": "builder.training.distributed",
    "builder.pipeline": "builder.training.pipeline",
    "builder.jobs": "builder.runs.jobs",
    "builder.owners": "builder.runs.owners",
    "builder.modelcard": "builder.runs.modelcard",
    "builder.tracking": "builder.runs.tracking",
    "builder.summary": "builder.runs.summary",
    "builder.explain": "builder.interpret.attributions",
    "builder.attention": "builder.interpret.attention",
    "builder.activations": "builder.interpret.activations",
    "builder.sanity": "builder.interpret.sanity",
    "builder.live": "builder.interpret.live",
    "builder.boundary": "builder.interpret.boundary",
    "builder.figures": "builder.interpret.figures",
    "builder.cli_train": "builder.cli.train",
    "builder.cli_search": "builder.cli.search",
}


class _OldPathFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old module path and loads it as the module at its new place."""

    def find_spec(self, fullname: str, path=None, target=None):  # noqa: ARG002
        if fullname in MOVED:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):  # a throwaway: exec_module puts the real module in its place
        return types.ModuleType(spec.name)

    def exec_module(self, module: types.ModuleType) -> None:
        old = module.__name__
        new = MOVED[old]
        warnings.warn(f"{old} moved to {new}; the old path is kept for one release", DeprecationWarning,
                      stacklevel=3)
        sys.modules[old] = importlib.import_module(new)

    def get_code(self, fullname: str):
        """For ``python -m OLD``: the code of the module at its new place."""
        new = MOVED[fullname]
        return importlib.util.find_spec(new).loader.get_code(new)


def install() -> None:
    """Put the finder on ``sys.meta_path`` once (idempotent)."""
    if not any(isinstance(f, _OldPathFinder) for f in sys.meta_path):
        sys.meta_path.append(_OldPathFinder())
