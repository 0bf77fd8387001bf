"""The detached study runner: a study in its own OS process (``python -m builder tune``) that outlives the page.

:func:`launch_study` checks the space and the settings, then starts the runner through
:func:`builder.process.launcher.spawn_detached` with its output in ``<workspace>/studies/<name>.log``, in a jobs'
clean environment and under their memory and file limits (:mod:`builder.jobs.job_sandbox`);
:func:`resume_study` starts it again with the settings the study was created with.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from pathlib import Path

from builder.errors import LayerLabError
from builder.graph.project import Project, load_project
from builder.jobs.job_sandbox import limit_study, study_env
from builder.process.launcher import spawn_detached
from builder.search.results import study_settings
from builder.search.settings import StudySettings
from builder.search.space import parse_space
from builder.search.storage import _check_owner, default_storage, load_study, study_owner

ENV_STUDY_OWNER = "LAYERLAB_STUDY_OWNER"  # the runner's owner: in its environment, never on its command line


def launch_study(workspace: str | Path, project: Project | dict, dataset: str, specs: Sequence[str],
                 settings: StudySettings, *, config: dict | None = None,
                 dataset_options: dict | None = None) -> subprocess.Popen:
    """Run a study in its own OS process (``python -m builder tune``), detached, so that it outlives the page
    that started it; its output goes to ``<workspace>/studies/<name>.log``.

    The space and settings are checked here first, so mistakes are reported before anything starts.

    Raises:
        SearchSpaceError, LayerLabError: a bad space or settings.
    """
    project = load_project(project)
    settings.check()
    parse_space(specs, project)
    workspace = Path(workspace).expanduser().resolve()  # the runner's HOME and working folder are not ours
    owner = study_owner(settings.storage or default_storage(workspace), settings.name)
    if owner is not None:  # resuming: only the study's own owner may (checked before anything starts)
        _check_owner(settings.name, owner, settings.owner)
    d = workspace / "studies"
    d.mkdir(parents=True, exist_ok=True)
    pfile = d / f"{settings.name}.project.json"
    pfile.write_text(project.to_json(), encoding="utf-8")
    cmd = ["-m", "builder", "tune", str(pfile), "--dataset", dataset, "--trials",
           str(settings.n_trials), "--study", settings.name, "--sampler", settings.sampler, "--pruner",
           settings.pruner, "--metric", settings.objective, "--workspace", str(workspace), "--json"]
    for k, v in (dataset_options or {}).items():
        cmd += ["--dataset-option", f"{k}={json.dumps(v)}"]
    for sp in specs:
        cmd += ["--search", sp]
    if settings.storage:
        cmd += ["--storage", settings.storage]
    if settings.timeout:
        cmd += ["--timeout", str(settings.timeout)]
    if settings.seed is not None:
        cmd += ["--sampler-seed", str(settings.seed)]
    if settings.workers:
        cmd += ["--workers", str(settings.workers)]
    if settings.max_params:
        cmd += ["--max-params", str(settings.max_params)]
    if settings.max_macs:
        cmd += ["--max-macs", str(settings.max_macs)]
    flags = {"epochs": "--epochs", "batch_size": "--batch-size", "lr": "--lr", "optimizer": "--optimizer",
             "weight_decay": "--weight-decay", "momentum": "--momentum", "seed": "--seed", "device": "--device",
             "scheduler": "--scheduler"}
    for k, v in (config or {}).items():
        if k in flags and v is not None:
            cmd += [flags[k], str(v)]
    private = d / f"{settings.name}.tmp"  # its HOME and TMPDIR; the clean environment passes on to its trials
    private.mkdir(exist_ok=True)
    env = {**study_env(private), ENV_STUDY_OWNER: settings.owner}  # a command line is public (ps); an id is a key
    proc = spawn_detached(cmd, d / f"{settings.name}.log", env=env,
                          name=f"layerlab-reap-study-{settings.name}")
    limit_study(proc.pid)  # no core files, the jobs' file size and memory limits (it starts its trials' jobs)
    return proc


def resume_study(workspace: str | Path, storage: str, name: str, n_trials: int | None = None, *,
                 owner: str | None = None) -> subprocess.Popen:
    """Start a study's runner again with the settings it was created with (``n_trials`` may grow it); with
    ``owner``, only when the study is that owner's."""
    study = load_study(storage, name, owner=owner)  # another person's study answers as an unknown name
    sig = study_settings(study)
    if not sig:
        raise LayerLabError(f"study {name!r} was not created by LayerLab; received: no settings. Fix: resume it "
                            "with `layerlab tune`")
    if owner is not None:
        _check_owner(name, sig.get("owner") or "local", owner)
    settings = StudySettings(name=name, storage=storage, n_trials=int(n_trials or sig.get("n_trials") or 20),
                             objective=sig["objective"], sampler=sig.get("sampler", "tpe"),
                             pruner=sig.get("pruner", "median"), timeout=sig.get("timeout"),
                             owner=sig.get("owner", "local"))
    return launch_study(workspace, sig["project"], sig["dataset"], sig["space"], settings,
                        config=sig.get("config"), dataset_options=sig.get("dataset_options"))


__all__ = ["ENV_STUDY_OWNER", "launch_study", "resume_study"]
