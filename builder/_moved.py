"""Old module paths kept importable for one release, with a DeprecationWarning that names the release removing them.

``builder.train``, ``builder.explain`` ... (LayerLab 0.1's flat ``builder/``) moved into the stage packages
(``builder.training``, ``builder.interpret``, ``builder.runs`` ...); then modules moved to the stage their imports
put them in, so data flows one way (``builder.training.pipeline`` -> ``builder.runs.pipeline``,
``builder.runs.jobs`` -> ``builder.jobs.queue`` ...). Every old path works until :data:`REMOVED_IN`. A finder on ``sys.meta_path`` answers an old name with the module
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

#: the release that removes every old path below (Lightning's ``_graveyard`` and networkx's deprecation policy
#: name theirs the same way)
REMOVED_IN = "0.3.0"

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
    "builder.pipeline": "builder.runs.pipeline",
    # "builder.jobs" and "builder.tracking" are real again: the jobs edge package (re-exporting builder.jobs.queue's
    # names) and the MLflow tracking module
    "builder.owners": "builder.runs.owners",
    "builder.modelcard": "builder.runs.modelcard",
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
    # one-way data flow (issue 30): each module in the stage its imports put it in
    "builder.runs.status": "builder.training.run_status",
    "builder.runs.folder": "builder.training.run_folder",
    "builder.runs.launcher": "builder.process.launcher",
    "builder.runs.sandbox": "builder.process.sandbox",
    "builder.runs.threads": "builder.training.threads",
    "builder.runs.gpus": "builder.training.gpus",
    "builder.training.pipeline": "builder.runs.pipeline",
    "builder.training.crossval": "builder.runs.crossval",
    "builder.runs.tracking": "builder.tracking",
    "builder.runs.jobs": "builder.jobs.queue",
    "builder.runs.job_sandbox": "builder.jobs.job_sandbox",
    "builder.runs.quotas": "builder.jobs.quotas",
    "builder.interpret.probe": "builder.jobs.probe",
    "builder.interpret.probe_child": "builder.jobs.probe_child",
    "builder.interpret.probe_wire": "builder.jobs.probe_wire",
    # leaves that only stages read live in the lowest stage that reads them (nothing below a stage but errors/escape)
    "builder.disk": "builder.data.disk",
    "builder.access": "builder.data.access",
    "builder.runs.housekeeping": "builder.admin.housekeeping",
    "builder.runs.owner_migration": "builder.admin.owner_migration",
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
        warnings.warn(f"{old} moved to {new}; the old path is removed in LayerLab {REMOVED_IN}", DeprecationWarning,
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


#: functions and classes moved up a stage, out of a module that may not import their new one: old module ->
#: {name: new module, or ``module:new name`` for one renamed on the way}. The old module's ``__getattr__`` (:func:`moved_name`) finds them until :data:`REMOVED_IN`.
MOVED_NAMES: dict[str, dict[str, str]] = {
    "builder.training.prune": dict.fromkeys(("prune_run", "run_prune_job", "resume_pruned", "CompleteReport"),
                                            "builder.runs.prune_run") | {"prune_job_spec": "builder.jobs.specs"},
    "builder.training.multi": dict.fromkeys(("run_objective", "resume_objective"), "builder.runs.pipeline"),
    "builder.runs.crossval": {"crossval_job_specs": "builder.jobs.specs"},
    "builder.training.generative": {"vae_probe": "builder.interpret.run_views:reconstruction_probe"},
    "builder.data.drift": {"drift_run": "builder.interpret.run_views"},
    "builder.runs.classes": {"evaluate_holdout": "builder.interpret.run_views"},
    "builder.process.launcher": {"pid_alive": "builder.training.run_status"},
}


def moved_name(module: str, name: str):
    """``name`` of ``module`` at its new place (a DeprecationWarning names it and :data:`REMOVED_IN`), for the old
    module's ``__getattr__``; AttributeError for a name that never moved.

    >>> moved_name("builder.data.drift", "no_such_name")
    Traceback (most recent call last):
    AttributeError: module 'builder.data.drift' has no attribute 'no_such_name'
    """
    new = MOVED_NAMES.get(module, {}).get(name)
    if new is None:
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    new, _, renamed = new.partition(":")
    warnings.warn(f"{module}.{name} moved to {new}.{renamed or name}; the old path is removed in LayerLab "
                  f"{REMOVED_IN}", DeprecationWarning, stacklevel=3)
    return getattr(importlib.import_module(new), renamed or name)
