"""Pruning a finished run into a new run: the run driver of :mod:`builder.training.prune` (whose maths it uses).

:func:`prune_run` prunes a run's model (structured or unstructured), fine-tunes the result as a new run through
the pipeline (:func:`builder.runs.pipeline.run_training`) and keeps the report in the new run's folder;
:func:`run_prune_job` is a prune job's body (:func:`builder.jobs.queue.run_job`), :func:`resume_pruned` the one
resume of the CLI and of jobs (a pruned run's mask re-installed). Example::

    # not a doctest (needs files or training): run by tests/training/test_prune.py
    report = prune_run(store, run_id, 0.5, structured=True, finetune_epochs=2)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from builder.data import DatasetSource, save_dataset
from builder.data.access import controlled_run
from builder.graph.compile import compile_graph, example_inputs
from builder.graph.latency import compare_latency, model_forward
from builder.runs.modelcard import write_model_card
from builder.runs.pipeline import Tracker, fails_run, load_run, resume_run, run_training
from builder.training.callbacks import Callback
from builder.training.metrics import metric_name
from builder.training.prune import (
    KeepMasks,
    PruneReport,
    StartFrom,
    after_test,
    check_prune_args,
    eval_batches,
    finetune_config,
    layer_sparsity,
    magnitude_masks,
    measure_model,
    structured_prune,
)
from builder.training.run_folder import keep_report
from builder.training.weights import save_weights

__all__ = ["prune_run", "run_prune_job", "resume_pruned", "CompleteReport"]


def resume_pruned(store: Any, run_id: str, **kwargs: Any) -> Any:
    """Resume any run (:func:`builder.runs.pipeline.resume_run`; ``kwargs`` go to it), a pruned run's
    fine-tune included: the one resume of the CLI (``runs resume``) and of jobs.

    A structured run needs nothing more for its weights: its graph is the smaller one and its checkpoint holds the
    surviving weights. An unstructured run re-installs its mask: recomputed from the parent's weights with the
    amount and nodes recorded in its tags (global magnitude pruning is deterministic), kept by :class:`KeepMasks`,
    so the zeroed weights stay zero after the resume (a plain resume would let them grow back). A pruned run
    whose report lacks its ``after`` measures (the fine-tune was stopped before) gets them when the resumed
    fine-tune finishes (:class:`CompleteReport`).

    Raises:
        RunStoreError: as resume_run, or the parent run is gone.
    """

    run = store.get(run_id)
    tags = run.get("tags") or {}
    callbacks = list(kwargs.pop("callbacks", ()))
    masks: dict[str, torch.Tensor] = {}
    if tags.get("prune") == "unstructured":
        parent, _ = load_run(store, str(tags["pruned_from"]))
        nodes = [n for n in str(tags.get("prune_nodes") or "").split(",") if n] or None
        masks = magnitude_masks(parent, float(tags["prune_amount"]), nodes)
        callbacks.append(KeepMasks(masks))
    report = store.folder(run["id"]).read_prune() if tags.get("prune") else None
    if report and not report.get("after"):
        callbacks.append(CompleteReport(store, PruneReport(**report), run.project.graph, masks))
    return resume_run(run["id"], store, callbacks, **kwargs)


class CompleteReport(Callback):
    """Measure a pruned run's ``after`` figures when its (resumed) fine-tune finishes: the report and the model
    card are written again with them."""

    def __init__(self, store: Any, report: PruneReport, graph: Any, masks: dict[str, torch.Tensor]):
        self.store, self.report, self.graph, self.masks = store, report, graph, masks

    def on_train_end(self, trainer: Any, result: Any) -> None:
        """After the final weights were saved: measure, keep the report, rewrite the card."""
        if getattr(result, "status", None) != "finished" or getattr(trainer, "rank", 0) != 0:
            return
        _complete(self.store, self.report, trainer.model.cpu().eval(), self.graph, trainer.dataset, self.masks,
                  int(self.report.before.get("latency_batch") or 32))
        write_model_card(self.store, self.report.run_id)


def _complete(store: Any, rep: PruneReport, model: torch.nn.Module, graph: Any, ds: Any,
              masks: dict[str, torch.Tensor], latency_batch: int, latency_repeats: int = 20) -> None:
    """Fill ``rep.after`` (and an unstructured run's sparsity) from the pruned run's final model; keep the report."""
    if masks:
        rep.sparsity = layer_sparsity(model, masks)
    rep.after = measure_model(model, graph, ds, store.weights_path(rep.run_id), latency_repeats, latency_batch)
    parent, _ = load_run(store, rep.parent_id)  # the model before pruning, timed interleaved with the one after
    model = model.cpu().eval()
    xs = example_inputs(model, batch_size=latency_batch)
    cmp = compare_latency(model_forward(parent, xs), model_forward(model, xs), batch_size=latency_batch,
                          repeats=latency_repeats, warmup=2)
    for side, t in ((rep.before, cmp.before), (rep.after, cmp.after)):
        side.update(latency_ms=t.median_s * 1e3, latency_p10_ms=t.p10_s * 1e3, latency_p90_ms=t.p90_s * 1e3,
                    latency_batch=latency_batch)
    rep.latency = cmp.to_dict()
    keep_report(store, rep, "prune")


def run_prune_job(store: Any, run_id: str, args: dict, callbacks: Iterable[Callback] = (),
                  tracking: Tracker | None = None) -> PruneReport:
    """The prune job's body (:func:`builder.jobs.queue.run_job`): :func:`prune_run` of ``args`` (from
    :func:`builder.jobs.specs.prune_job_spec`) into the job's queued run ``run_id``, with the job's ``callbacks``
    (stop/pause) and its ``tracking`` (as :func:`~builder.runs.pipeline.run_training`'s)."""
    a = dict(args)
    return prune_run(store, str(a.pop("parent")), new_run=run_id, callbacks=callbacks, tracking=tracking, **a)


def prune_run(store: Any, run_id: str, amount: float = 0.5, *, structured: bool = True, criterion: str = "l1",
              finetune_epochs: int = 5, nodes: Iterable[str] | None = None, config: dict | None = None,
              taylor_batches: int = 4, latency_repeats: int = 20, latency_batch: int = 32,
              on_event: Callable[[dict], None] | None = None, name: str | None = None,
              new_run: str | None = None, callbacks: Iterable[Callback] = (),
              tracking: Tracker | None = None) -> PruneReport:
    """Prune a finished run and fine-tune the result as a new run (``parent_id`` = ``run_id``): the function both
    ``layerlab prune`` (in its own process) and the app's prune job (:func:`run_prune_job`) run.

    The fine-tune keeps the parent's settings with :data:`FINETUNE` (cosine schedule, no early stopping) and
    :data:`FINETUNE_LR_FACTOR` times its learning rate (``config`` overrides any) and ``epochs = finetune_epochs``;
    ``finetune_epochs = 0`` records the pruned weights as a finished run without training. ``new_run``: record
    into this queued run (a prune job's) instead of creating one; ``callbacks`` join the fine-tune's. A fine-tune
    that ends stopped or failed writes the report without the ``after`` measures. Example::

        # not a doctest (needs a trained run): run by tests/training/test_prune.py
        rep = prune_run(store, run_id, 0.5, finetune_epochs=5, nodes=["conv1", "conv2"])
        rep.before["params"], rep.after["params"], rep.after["test"]["accuracy"]

    Raises:
        RunStoreError: unknown run or no weights. LayerLabError: bad amount, criterion or nodes.
    """

    check_prune_args(amount, structured, criterion, finetune_epochs)
    run = store.get(run_id)
    if new_run is not None:  # a prune job's queued run: the actor's own, checked before any work
        new_run = controlled_run(store, new_run).id
    parent = run.id
    project = run.project
    model, ds = load_run(store, run)
    task = ds.info.task
    cfg = run.config
    rep = PruneReport(parent, None, "structured" if structured else "unstructured", criterion, float(amount),
                      int(finetune_epochs), metric_name(task, cfg.metric))
    rep.before = measure_model(model, project.graph, ds, store.weights_path(parent), latency_repeats, latency_batch)
    masks: dict[str, torch.Tensor] = {}
    if structured:
        batches = eval_batches(ds, taylor_batches) if criterion == "taylor" else ()
        new, state, rep.groups, rep.left_alone = structured_prune(project, model, amount, criterion=criterion,
                                                                  nodes=nodes, batches=batches, task=task)
    else:
        masks = magnitude_masks(model, amount, nodes)
        new = project.model_copy(deep=True)
        state = {k: (v * masks[k] if k in masks else v) for k, v in model.state_dict().items()}
    who = store.who()  # the pruned run is the pruner's (trusted code keeps the parent's owner)
    owner = (run.get("owner") or "local") if who.system else who.owner
    label = name or f"{run.get('name') or project.name} pruned {float(amount):.0%} ({rep.method})"
    tags: dict[str, Any] = {"pruned_from": parent, "prune": rep.method}
    if not structured:  # what resume_pruned needs to rebuild the mask
        tags.update(prune_amount=float(amount), prune_nodes=",".join(nodes or ()))
    if finetune_epochs:
        over = finetune_config(run.get("config") or {}, finetune_epochs, config)
        result = run_training(new, ds, over, store, [StartFrom(state, masks), *callbacks], on_event=on_event,
                              name=label, tags=tags, owner=owner, run_id=new_run, tracking=tracking)
        new_id = result.run_id
    else:
        src_name, src_opts = ds.info.reload_args()
        if new_run is None:
            new_id = store.create_run(new, src_name, src_opts, cfg, name=label, dataset_info=ds.info.to_dict(),
                                      parent_id=parent, tags=tags, owner=owner)
        else:
            new_id = new_run
            store.update_run(new_id, project=new, dataset_name=src_name, dataset_options=src_opts,
                             dataset_info=ds.info.to_dict(), config=cfg.model_dump())
        # a run made here whose files fail (a full disk) is failed, not left queued for ever (a job's is its job's)
        with fails_run(store, new_id if new_run is None else None):
            folder = store.folder(new_id, write=True)  # the pruner's new (or queued) run
            if not DatasetSource.of(ds.info).reloadable():  # an upload: keep the data, as the pipeline does
                save_dataset(ds, folder.dataset)
            pruned_model = compile_graph(new.graph)
            pruned_model.load_state_dict(state)
            save_weights(pruned_model, folder.weights)
    store.update_run(new_id, parent_id=parent)
    rep.run_id = new_id
    if not store.weights_path(new_id).is_file():  # the fine-tune was stopped (or failed): no weights to measure
        keep_report(store, rep, "prune")
        return rep
    after, _ = load_run(store, new_id)
    _complete(store, rep, after, new.graph, ds, masks, latency_batch, latency_repeats)
    if not finetune_epochs:
        store.finish(new_id, "finished", test=after_test(after, ds))
    else:

        write_model_card(store, new_id)  # now with the pruning section
    return rep
