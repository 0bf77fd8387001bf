"""Job specs for the work that runs as jobs: a prune (:func:`prune_job_spec`) and the folds of a cross-validation
(:func:`crossval_job_specs`), each a :class:`~builder.jobs.queue.JobSpec` that :func:`builder.jobs.queue.submit`
(or :func:`~builder.jobs.queue.submit_group`) runs in its own process. Example::

    # not a doctest (needs a workspace): run by tests/runs/test_crossval.py
    group, specs = crossval_job_specs(load_template("mlp"), "moons", {"epochs": 2}, folds=3, owner="alice")
    run_ids = submit_group(store, specs)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from builder.graph.shrink import channel_plan
from builder.jobs.queue import JobSpec
from builder.runs.crossval import TAG_GROUP, check_request, new_group
from builder.training.prune import check_prune_args, finetune_config, prunable_groups

__all__ = ["prune_job_spec", "crossval_job_specs"]


def prune_job_spec(store: Any, run_id: str, amount: float = 0.5, *, structured: bool = True, criterion: str = "l1",
                   finetune_epochs: int = 5, nodes: Iterable[str] | None = None, config: dict | None = None,
                   owner: str | None = None, name: str | None = None) -> Any:
    """The :class:`~builder.jobs.queue.JobSpec` of a prune job (``kind="prune"``): :func:`builder.jobs.queue.submit`
    records the pruned run (queued, the parent's graph and data until the job prunes it, ``parent_id`` and the
    prune tags set) and its own process runs :func:`prune_run` into it, so it is quota-checked, shown on Runs
    with its status and curves, and stoppable like training. The arguments are :func:`prune_run`'s (checked
    here, before anything is recorded); ``owner`` defaults to who prunes (the store's actor; the parent's owner for
    the system), whose run the pruned one is: the Runs page's Prune on another person's run (shared mode) made a job
    of that person's, refused as "a job runs for the actor of the run store".

    Raises:
        RunStoreError: unknown run. LayerLabError: bad amount, criterion or epochs.
    """
    check_prune_args(amount, structured, criterion, finetune_epochs)
    run = store.get(run_id)
    project = run.project
    if structured:
        prunable_groups(channel_plan(project.graph), nodes)
    method = "structured" if structured else "unstructured"
    tags: dict[str, Any] = {"pruned_from": run["id"], "prune": method}
    if not structured:
        tags.update(prune_amount=float(amount), prune_nodes=",".join(nodes or ()))
    label = name or f"{run.get('name') or project.name} pruned {float(amount):.0%} ({method})"
    args = {"parent": run["id"], "amount": float(amount), "structured": bool(structured), "criterion": criterion,
            "finetune_epochs": int(finetune_epochs), "nodes": list(nodes) if nodes is not None else None,
            "config": dict(config or {})}
    return JobSpec(project=project.model_dump(mode="json"), dataset=run["dataset_name"],
                   dataset_options=dict(run.get("dataset_options") or {}),
                   config=(finetune_config(run.get("config") or {}, finetune_epochs, config) if finetune_epochs
                           else run.config.model_dump()),  # 0: the pruned weights as they are, nothing trains
                   owner=owner or _pruner(store) or run.get("owner") or "local", name=label, tags=tags, kind="prune",
                   prune=args)


def _pruner(store: Any) -> str | None:
    """Who prunes: the store's actor (a person's store), None for the system (the parent's owner then)."""
    actor = getattr(store, "actor", None)
    return None if actor is None or actor.system else actor.owner


def crossval_job_specs(project: Any, dataset: str, config: dict | None = None, *, folds: int = 5,
                       dataset_options: dict | None = None, owner: str = "local", name: str | None = None,
                       group: str | None = None) -> tuple[str, list[Any]]:
    """The group name and the :class:`~builder.jobs.queue.JobSpec` of each fold: a training job whose test split is
    fold k (dataset options ``fold``/``folds``), tagged with the group. :func:`builder.jobs.queue.submit_group`
    submits them all or none, so each fold is a job like any run (its own sandboxed process with limits, the
    owner's quotas counting every fold, stop/resume on the Runs page) and nothing trains in the caller's process.
    The fold runs are those :func:`cross_validate` trains in the caller's own process (the CLI's terminal).

    Raises:
        TrainingError: a loaded Dataset instead of a name, fold options given, or folds outside 2..50.
    """
    opts = dict(dataset_options or {})
    check_request(dataset, folds, opts)
    k_all, group = int(folds), group or new_group()
    data = project.model_dump(mode="json") if hasattr(project, "model_dump") else dict(project)
    base = name or data.get("name") or "cross-validation"
    return group, [JobSpec(project=data, dataset=dataset, dataset_options={**opts, "fold": k, "folds": k_all},
                           config=dict(config or {}), owner=owner, name=f"{base} fold {k + 1}/{k_all}",
                           tags={TAG_GROUP: group, "fold": k, "folds": k_all}) for k in range(k_all)]
