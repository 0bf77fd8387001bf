"""The detached study runner: a study in its own OS process (``python -m builder tune``) that outlives the page.

:func:`launch_study` checks the space and the settings, claims the study for its owner in the storage
(:func:`builder.search.storage.claim_study`), then starts the runner through
:func:`builder.process.launcher.spawn_detached` with its output in the study's log
(:func:`builder.search.storage.study_files`: per owner), in a jobs' clean environment and under their memory
and file limits (:mod:`builder.jobs.job_sandbox`);
:func:`resume_study` starts it again with the settings the study was created with.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from pathlib import Path

from builder.data.access import SYSTEM
from builder.data.disk import write_atomic
from builder.errors import LayerLabError
from builder.graph.project import Project, load_project
from builder.jobs.job_sandbox import check_store_room, job_limits, limit_study, study_env
from builder.jobs.quotas import admit, check_study
from builder.process.launcher import process_token, spawn_detached, token_alive
from builder.runs.store import RunStore
from builder.search.results import study_settings
from builder.search.settings import StudySettings, objective_direction
from builder.search.space import parse_space
from builder.search.storage import (
    claim_study,
    default_storage,
    load_study,
    runner_records,
    study_display_name,
    study_files,
)
from builder.tracking_destinations import is_server_default, resolve_tracking

ENV_STUDY_OWNER = "LAYERLAB_STUDY_OWNER"  # the runner's owner: in its environment, never on its command line


def launch_study(workspace: str | Path, project: Project | dict, dataset: str, specs: Sequence[str],
                 settings: StudySettings, *, config: dict | None = None,
                 dataset_options: dict | None = None) -> subprocess.Popen:
    """Run a study in its own OS process (``python -m builder tune``), detached, so that it outlives the page
    that started it; its output goes to the study's log (:func:`builder.search.storage.study_files`).

    The space and settings are checked here first, so mistakes are reported before anything starts. The study is
    then claimed for ``settings.owner`` in the storage before any of its files is written: ``settings.name`` is
    that owner's name (another person's study of that name is never touched or named).

    A runner counts against its owner's quotas (:func:`builder.jobs.quotas.check_study`: live runners up to its
    ``running`` limit, room for one more job), checked with the runner recorded as one step.

    Raises:
        SearchSpaceError, LayerLabError: a bad space or settings.
        QuotaError: the owner's quotas admit no further study now (nothing claimed, written or started).
    """
    project = load_project(project)
    settings.check()
    parse_space(specs, project)
    workspace = Path(workspace).expanduser().resolve()  # the runner's HOME and working folder are not ours
    store = RunStore(workspace, actor=SYSTEM, mark_interrupted=False)
    check_store_room(store, job_limits())  # its file size limit must leave the run database room (as a job's)
    with admit(store):  # the owner's quotas and the runner it admits, as one step (builder.jobs.quotas)
        check_study(store, settings.owner, studies=live_runners(workspace, settings.owner),
                    device=str((config or {}).get("device") or "auto"))
        return _launch(workspace, project, dataset, specs, settings, config, dataset_options)


def live_runners(workspace: str | Path, owner: str) -> int:
    """How many study runners of ``owner`` run now: the runner files of its studies
    (:func:`builder.search.storage.study_files`) that name a live process (a reused pid does not count)."""
    try:
        return sum(token_alive(f.read_text(encoding="utf-8").strip()) for f in runner_records(workspace, owner))
    except OSError:
        return 0


def _admins_tracker(workspace: Path, settings: StudySettings) -> bool:
    """Whether the study logs to the admin's default tracker (its runner and trials then get the admin's MLflow
    credentials, :func:`builder.jobs.job_sandbox.job_env`); False for a destination its owner may not use."""
    try:
        return is_server_default(resolve_tracking(workspace, settings.owner, settings.tracking), workspace)
    except LayerLabError:
        return False


def _launch(workspace: Path, project: Project, dataset: str, specs: Sequence[str], settings: StudySettings,
            config: dict | None, dataset_options: dict | None) -> subprocess.Popen:
    """:func:`launch_study` once its quotas admitted it: claim the study, write its files, start its runner and
    record it (:func:`live_runners` counts it while it lives)."""
    claim_study(settings.storage or default_storage(workspace), settings.name, owner=settings.owner,
                workspace=workspace, direction=objective_direction(settings.objective))  # before any file
    files = study_files(workspace, settings.owner, settings.name)  # this owner's, whatever others named theirs
    files["log"].parent.mkdir(parents=True, exist_ok=True)
    pfile = files["project"]
    write_atomic(pfile, project.to_json(), "the study's project")
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
    private = files["tmp"]  # its HOME and TMPDIR; the clean environment passes on to its trials
    private.mkdir(exist_ok=True)
    env = {**study_env(private, credentials=_admins_tracker(workspace, settings)),  # MLflow's, for the admin's only
           ENV_STUDY_OWNER: settings.owner}  # a command line is public (ps); an id is a key
    proc = spawn_detached(cmd, files["log"], env=env, name=f"layerlab-reap-study-{settings.name}")
    limit_study(proc.pid)  # no core files, the jobs' file size and memory limits (it starts its trials' jobs)
    if token := process_token(proc.pid):
        write_atomic(files["runner"], token, "the study's runner record")
    return proc


def resume_study(workspace: str | Path, storage: str, name: str, n_trials: int | None = None, *,
                 owner: str | None = None) -> subprocess.Popen:
    """Start a study's runner again with the settings it was created with (``n_trials`` may grow it); with
    ``owner``, ``name`` is that owner's display name and only its study is found; without (trusted code), a
    storage name."""
    study = load_study(storage, name, owner=owner, workspace=workspace)  # another's answers as an unknown name
    sig = study_settings(study)
    display = study_display_name(study.study_name)
    if "project" not in sig:  # not LayerLab's, or claimed by a start whose runner never began
        raise LayerLabError(f"study {display!r} has no LayerLab settings yet; received: none. Fix: start it again "
                            "from the Search form or with `layerlab tune`")
    settings = StudySettings(name=display, storage=storage, n_trials=int(n_trials or sig.get("n_trials") or 20),
                             objective=sig["objective"], sampler=sig.get("sampler", "tpe"),
                             pruner=sig.get("pruner", "median"), timeout=sig.get("timeout"),
                             owner=owner if owner is not None else sig.get("owner", "local"))
    return launch_study(workspace, sig["project"], sig["dataset"], sig["space"], settings,
                        config=sig.get("config"), dataset_options=sig.get("dataset_options"))


__all__ = ["ENV_STUDY_OWNER", "launch_study", "resume_study", "live_runners"]
