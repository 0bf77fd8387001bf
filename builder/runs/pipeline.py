"""The training pipeline: project + dataset + settings -> trained model, and back.

One module serves the CLI, the job processes and the pages: :func:`prepare` resolves and checks the inputs,
:func:`run_training` and :func:`resume_run` train (recording into a :class:`~builder.runs.store.RunStore` when one
is given), :func:`transfer_weights` and :func:`freeze_nodes` do transfer learning.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import torch

from builder.data import Dataset, DatasetSource, fit_dataset, load_dataset, load_saved_dataset, save_dataset
from builder.data.access import check_acting, controlled_run
from builder.data.cache import use_cache_dir
from builder.data.compat import adapt_graph, check_compat
from builder.data.disk import write_atomic
from builder.data.sources import project_source, project_task
from builder.data.uploads import UploadFolder
from builder.errors import (
    AccessDenied,
    BudgetError,
    ExplainError,
    GraphError,
    LayerLabError,
    RunStoreError,
    TrainingError,
)
from builder.graph.compile import compile_graph
from builder.graph.cost import node_costs, total_macs
from builder.graph.lora import trainable_params
from builder.graph.project import Project, load_project
from builder.graph.report import DEFAULT_BUDGET, Budget
from builder.graph.shapes import ShapeReport, infer_shapes, memory_problem
from builder.runs.classes import class_for
from builder.runs.owners import owner_of, upload_dir
from builder.runs.run_logger import RunLogger
from builder.runs.store import Run, RunStore
from builder.runs.summary import run_data
from builder.training.callbacks import Callback, RecordLatency, freeze_nodes
from builder.training.checkpoint import previous_path, read_checkpoint, read_resumable
from builder.training.config import TrainConfig, resolve_device
from builder.training.finetune import apply_finetune, settings_problems
from builder.training.forecasts import KeepForecasts
from builder.training.lineage import (
    INIT_KEY,
    inherit_split,
    inherit_tokenizer,
    init_record,
    parents,
    pretrained_of,
)
from builder.training.metrics import loss_kind
from builder.training.multi import ObjectiveTrainer
from builder.training.networks import NetworkError, explain_view, network_state
from builder.training.objectives import has_objective, objective_compat
from builder.training.run_folder import RunFolder
from builder.training.run_status import resume_refusal
from builder.training.text_samples import TextSamples
from builder.training.trainer import Trainer, TrainingJob, TrainResult
from builder.training.weights import read_weights


def acting_owner(store: RunStore | None, owner: str) -> str:
    """The owner a training call records a new run for and whose uploads it reads: the store's actor's. Trusted
    code (:data:`~builder.data.access.SYSTEM`, no store) names any owner; anyone else only itself, so a caller
    holding one owner's store cannot read another's uploads or record runs in another's name.

    Raises:
        AccessDenied: ``owner`` is not the store's actor.
    """
    return check_acting(store.who() if store is not None else None, owner)


@contextlib.contextmanager
def fails_run(store: RunStore | None, run_id: str | None) -> Iterator[None]:
    """A step of starting a run whose error fails the run (its message recorded) before it propagates."""
    try:
        yield
    except Exception as e:
        if run_id is not None and store is not None:
            store.finish(run_id, "failed", message=str(e))
        raise


def build_model(graph, seed: int = 0, report: ShapeReport | None = None) -> torch.nn.Module:
    """Compile a graph into a module with seeded initialisation (``report``: its analysis, when known)."""
    torch.manual_seed(seed)
    return compile_graph(graph, report=report)


def transfer_weights(model: torch.nn.Module, weights: dict[str, torch.Tensor], source_names: dict[str, str],
                     nodes: Iterable[str] | None = None) -> dict[str, list[str]]:
    """Copy weights into ``model`` by node id and shape.

    Args:
        model: a compiled model with ``layerlab_names`` (node id -> module name).
        weights: a past run's state dict; ``source_names`` its node id -> module name map.
        nodes: node ids to initialise (default: every node present in both).

    Returns:
        ``{"loaded": [node ids], "skipped": ["node: reason"], "not_loaded": [the skipped node ids], "fresh": [node
        ids with weights that were not asked for: not in the source run, or not among ``nodes``]}``.
    """
    dst_names = dict(getattr(model, "layerlab_names", {}) or {})
    sd = model.state_dict()
    wanted = list(nodes) if nodes is not None else [n for n in dst_names if n in source_names]
    loaded, skipped, not_loaded = [], [], []

    def skip(nid: str, why: str) -> None:
        skipped.append(f"{nid}: {why}")
        not_loaded.append(nid)

    new = {}
    for nid in wanted:
        if nid not in dst_names:
            skip(nid, "not a node with weights in this graph")
            continue
        if nid not in source_names:
            skip(nid, "not in the source run")
            continue
        src, dst = source_names[nid] + ".", dst_names[nid] + "."
        pairs = [(k, _into(sd, dst, k[len(src):])) for k in weights if k.startswith(src)]
        if not pairs:
            continue
        bad = [d for s, d in pairs if d not in sd or sd[d].shape != weights[s].shape]
        if bad:
            skip(nid, f"shapes differ ({', '.join(b.rsplit('.', 1)[-1] for b in bad)})")
            continue
        new.update({d: weights[s] for s, d in pairs})
        loaded.append(nid)
    if new:
        model.load_state_dict({**sd, **new})
    fresh = [n for n, m in dst_names.items() if n not in wanted and any(k.startswith(m + ".") for k in sd)]
    return {"loaded": loaded, "skipped": skipped, "not_loaded": not_loaded, "fresh": fresh}


def _into(sd: dict, dst: str, rest: str) -> str:
    """The key a source tensor goes to: the same name, or the ``base_layer`` of a LoRA node that wraps the source's
    Linear (:mod:`builder.graph.layers.lora`)."""
    return dst + rest if dst + rest in sd or dst + "base_layer." + rest not in sd else dst + "base_layer." + rest


def prepare(project, dataset: str | Dataset | None, config: TrainConfig | dict | None = None, *,
            dataset_options: dict | None = None, adapt: bool = False, with_report: bool = False,
            store: RunStore | None = None, uploads: UploadFolder | None = None
            ) -> tuple[Project, Dataset, TrainConfig]:
    """Resolve project, dataset and settings and check that the graph fits the data.

    The graph is analysed once (:func:`~builder.graph.shapes.infer_shapes`) and its training memory checked at the
    run's own settings (:func:`run_budget`: refused when not even one sample fits); with ``with_report`` that
    :class:`ShapeReport` is returned as a fourth item so compiling reuses it.

    Settings resolve as :meth:`TrainConfig.resolve` does, lowest first: the defaults for the dataset's task and
    training-split size < the project's ``training`` dict (also ``dataset`` and ``task``) < ``config``. With ``adapt`` the Input shape and output width are set to fit the dataset.
    A run with a teacher or ``init_from`` loads its parent's split from ``store``
    (:func:`builder.training.lineage.inherit_split`). An upload (option ``upload``) resolves only inside
    ``uploads``, the owner's folder (:func:`builder.data.load_dataset`).

    Raises:
        GraphError: the graph does not fit the dataset (each problem names the node and the fix).
        DatasetError, TrainingError: bad dataset or settings.
    """
    project = load_project(project).model_copy(deep=True)
    ds, cfg = _data_and_settings(project, dataset, config, dataset_options, store, uploads)
    report, drawn = infer_shapes(project.graph), project.graph
    if wrong := settings_problems(project.graph, cfg, report=report):  # before a run is recorded, as `layerlab
        raise TrainingError("; ".join(str(p) for p in wrong))  # validate` says them
    project.graph, cfg = apply_finetune(project.graph, cfg)  # linear probe / LoRA: what trains
    if project.graph is not drawn:  # LoRA added: the graph that trains has its own analysis (else it is this one)
        report = infer_shapes(project.graph)
    if adapt:  # adapting reads the structure only; a changed graph's shapes need their own analysis
        adapted = adapt_graph(project.graph, ds.info, report)
        if adapted.model_dump() != project.graph.model_dump():
            project.graph, report = adapted, infer_shapes(adapted)
    if not report.ok:  # the graph's own problems first (compiling with this report would skip them)
        errors = [p for p in report.problems if p.severity == "error"]
        raise (BudgetError if all(p.code == "budget" for p in errors) else GraphError)(errors)
    problems = check_compat(project.graph, ds.info, report)
    if problems:
        raise GraphError(problems)
    memory = memory_problem(report, run_budget(cfg, ds.info.task, drawn_loss=has_objective(project)))  # its own
    if memory is not None and memory.severity == "error":  # over it at this batch only: a warning, as validation's
        raise BudgetError([memory])
    return (project, ds, cfg, report) if with_report else (project, ds, cfg)


def run_budget(cfg: TrainConfig, task: str | None, *, drawn_loss: bool = False) -> Budget:
    """The graph budget a run is checked at (:func:`prepare`, a job's admission, ``layerlab validate``): its batch
    size, optimizer and device, and its task's loss on the outputs (binary counted as cross-entropy: one logit or two,
    the same within a value a sample; a task not known yet as cross-entropy, the largest but the token loss; none
    for a graph whose loss nodes are drawn, ``drawn_loss``, as they are nodes of the graph).

    >>> b = run_budget(TrainConfig(batch_size=8, optimizer="sgd", device="cpu"), "next_token")
    >>> (b.batch_size, b.optimizer, b.device, b.loss)
    (8, 'sgd', 'cpu', 'tok')
    >>> run_budget(TrainConfig(device="cpu"), None).loss, run_budget(TrainConfig(device="cpu"), None, drawn_loss=True).loss
    ('ce', None)
    """
    device = resolve_device("auto").type if cfg.device == "auto" else cfg.device
    loss = None if drawn_loss else loss_kind(task, 2) if task else "ce"
    return dataclasses.replace(DEFAULT_BUDGET, batch_size=cfg.batch_size, optimizer=cfg.optimizer, device=device,
                               loss=loss)


def dataset_of(project: Project, dataset: str | Dataset | None) -> str | Dataset:
    """The dataset a project trains on: ``dataset`` when given, else the one the project names
    (:func:`builder.data.sources.project_source`: its Data page choice, else its training settings').

    Raises:
        TrainingError: neither names one.

    Example::

        >>> from builder.graph.templates import load_template
        >>> dataset_of(load_template("mlp"), "digits"), dataset_of(load_template("mlp"), None)
        ('digits', 'moons')
    """
    if dataset is None:
        dataset = src.name if (src := project_source(project)) is not None else None
    if not isinstance(dataset, Dataset) and not dataset:  # None or an empty name
        raise TrainingError("no dataset given and the project names none; received: none. Fix: pass a dataset name")
    return dataset


def _upload_label(project: Project, opts: dict) -> str | None:
    """The name people gave the upload ``opts`` names, from the project's Data page spec (a job's options carry
    only the upload's id): a text run on ``my_reviews.csv`` was shown everywhere as ``text: upload:23bdceb4...csv``
    (the Train page's progress line, the Runs table, Explain's model picker)."""
    spec = project.dataset or {}
    ref, name = spec.get("file"), spec.get("name")
    if not ref or ref != opts.get("upload") or not isinstance(name, str) or not name.strip():
        return None
    return Path(name).name or None


def _data_and_settings(project: Project, dataset: str | Dataset | None, config: TrainConfig | dict | None,
                       dataset_options: dict | None, store: RunStore | None,
                       uploads: UploadFolder | None) -> tuple[Dataset, TrainConfig]:
    """The dataset (fitted to the graph's Input) and the settings a project trains with, as :func:`prepare`
    documents them; shared by :func:`prepare` and :func:`run_objective`."""
    tr = dict(project.training or {})
    cfg = TrainConfig.resolve(tr.get("task"), None, tr, config)  # bad settings fail before the data loads
    if dataset is None and (src := project_source(project)) is not None:  # the project's own choice, with its
        dataset_options = {**src.options, **(dataset_options or {})}  # options (an upload: its id, target, ...)
    dataset = dataset_of(project, dataset)
    dataset_options, split_note = inherit_split(store, parents(tr, cfg), dataset, dataset_options)
    dataset_options = inherit_tokenizer(store, cfg.init_from, dataset, dataset_options)  # a model folder's own
    if isinstance(dataset, str):
        opts = {**project_task(tr), **(dataset_options or {})}
        opts.setdefault("seed", cfg.seed)
        ds = load_dataset(DatasetSource(dataset, {}, _upload_label(project, opts)), uploads=uploads, **opts)
    else:
        ds = dataset
    if split_note and split_note not in ds.info.notes:  # the model card says which split the run used
        ds.info.notes.append(split_note)
    cfg = TrainConfig.resolve(ds.info.task, len(ds.train), tr, config)
    return fit_dataset(project.graph, ds), cfg  # a vector Input of the flattened size (MLP autoencoder on digits)


def open_run_row(store: RunStore, run_id: str | None, project: Project, ds: Dataset, cfg: TrainConfig, *,
                 name: str | None, owner: str, tags: dict | None) -> tuple[str, RunFolder]:
    """Create the run row for a prepared project, dataset and config (or, for a job's queued row, record what
    preparation resolved: the adapted graph, the dataset's reload arguments); keep an upload's data in the run
    folder so the run can be resumed. Returns ``(run_id, folder)``, the run's folder opened to write (the actor
    controls the run); shared by every trainer's entry point."""
    src_name, src_opts = ds.info.reload_args()
    if run_id is None:
        class_id = class_for(store.workspace, store.who(), project)  # AccessDenied: not the actor's class
        run_id = store.create_run(project, src_name, src_opts, cfg, name=name, dataset_info=ds.info.to_dict(),
                                  owner=owner, tags=tags, class_id=class_id)
    else:
        store.update_run(run_id, project=project, dataset_name=src_name, dataset_options=src_opts,
                         dataset_info=ds.info.to_dict(), config=cfg.model_dump())
    folder = store.folder(run_id, write=True)  # the run this call records: the actor's (a queued one: checked)
    if not DatasetSource.of(ds.info).reloadable():
        save_dataset(ds, folder.dataset)
    if ds.info.tokenizer:  # Try it, drift, predict and export read the run's own tokenizer
        write_atomic(folder.tokenizer, ds.info.tokenizer.encode("utf-8"), "the tokenizer")
    return run_id, folder


def record_environment(store: RunStore, run_id: str, trainer: Any, report: ShapeReport, world_size: int = 1,
                       graph: Any = None, **more: Any) -> None:
    """Record where a run trains (device, precision, processes) and its size (parameters, multiply-adds; with
    ``graph``, the parameters that train and the fine-tuning mode), so the model card and the Runs page read them
    instead of analysing the graph again; ``more`` in the same write (a fine-tuned run's init record)."""

    counts = trainable_params(graph, trainer.config.freeze, report=report) if graph is not None else {}
    store.set_environment(run_id, device=str(trainer.device), precision=trainer.precision, world_size=world_size,
                          params=int(report.total_params), macs=total_macs(node_costs(report)),
                          trainable=counts.get("trainable"), finetune=trainer.config.finetune, **more)


def _load_init(store: RunStore | None, model: torch.nn.Module, cfg: TrainConfig) -> dict | None:
    report = None
    if cfg.init_from:
        if store is None:
            raise TrainingError("init_from needs a run store to find the source run")
        src = store.get(cfg.init_from)  # exact id, a run the store's actor may read (else "no run X of yours")
        weights, md = read_weights(store.weights_path(src.id))
        names = json.loads(md.get("layerlab_names", "{}"))
        report = transfer_weights(model, weights, names, cfg.init_nodes)
        if not report["loaded"]:
            raise TrainingError(f"no weights of run {src.id} fit this graph: {'; '.join(report['skipped'][:5])}")
        frozen = set(cfg.freeze)
        random = [why for nid, why in zip(report["not_loaded"], report["skipped"]) if nid in frozen]
        if random:  # a layer kept fixed at its random start: a pretrained embedding replaced, then frozen
            raise TrainingError(
                f"{len(random)} frozen layer(s) would keep random weights, not loaded from run {src.id}: "
                f"{'; '.join(random[:3])}. Fix: give them the sizes they have in that run (a text model: the "
                "model's own tokenizer, or its Input's vocab_size), or fine-tune them too (finetune 'full')")
    return report  # cfg.freeze is applied by the trainer (builder.training.callbacks.Freeze)


def run_training(project, dataset: str | Dataset | None = None, config: TrainConfig | dict | None = None,
                 store: RunStore | None = None, callbacks: Iterable[Callback] = (), *,
                 dataset_options: dict | None = None, on_event: Callable[[dict], None] | None = None,
                 background: bool = False, adapt: bool = False, dist: Any = None,
                 name: str | None = None, run_id: str | None = None, owner: str = "local",
                 tags: dict | None = None, tracking: Tracker | None = None) -> TrainResult | TrainingJob:
    """Train a project on a dataset: the single entry point of the CLI and the UI.

    Args:
        project: a Project, a path, JSON or a dict.
        dataset: a registered dataset name or a loaded :class:`Dataset` (default: the project's).
        config: TrainConfig or dict overriding the project's ``training`` settings.
        store: a :class:`RunStore`; when given the run, its curves, checkpoints and model card are kept.
        callbacks: :class:`Callback` instances.
        on_event: an extra listener for every event.
        background: return a started :class:`TrainingJob` instead of training synchronously.
        adapt: adapt the graph's Input shape and output width to the dataset.
        dist: a :class:`builder.training.distributed.DistContext` (torchrun); only rank 0 writes to the store.
        run_id: record into this existing (queued) run of ``store`` instead of creating one (job processes).
        owner: recorded with a new run (its owner).
        tags: recorded with a new run.
        tracking: what logs the stored run elsewhere, attached by the caller (as Lightning's ``logger=``): called
            with the store and run id, it returns the callbacks to add (:func:`builder.tracking.tracker` of a job's
            or the CLI's MLflow destination; None: nothing is tracked beyond the run store).

    Returns:
        A :class:`TrainResult` (``run_id`` set when a store is used), or a started TrainingJob.

    Raises:
        LayerLabError: a ``GraphError``, ``DatasetError`` or ``TrainingError`` (a failed run is recorded as
            ``failed`` first).
    """
    owner = acting_owner(store, owner)
    if run_id is not None and store is not None:  # a job's queued run: the actor's own (never another's)
        run_id = controlled_run(store, run_id).id
    project = load_project(project)  # parsed once here; every step below takes the Project
    if has_objective(project):  # drawn losses (GAN, VAE, distillation): builder.training.multi
        with use_cache_dir(store.workspace if store is not None else None):
            return run_objective(project, dataset, config, store, callbacks, dataset_options=dataset_options,
                                 on_event=on_event, background=background, name=name, run_id=run_id, owner=owner,
                                 tags=tags)
    # decoded images: the store's cache
    with fails_run(store, run_id), use_cache_dir(store.workspace if store is not None else None):
        project, ds, cfg, report = prepare(project, dataset, config, dataset_options=dataset_options,
                                           adapt=adapt, with_report=True, store=store,
                                           uploads=owner_uploads(store, owner))
    main = dist is None or getattr(dist, "rank", 0) == 0
    run_dir, folder, listeners = None, None, []
    if store is not None and main:
        run_id, folder = open_run_row(store, run_id, project, ds, cfg, name=name, owner=owner, tags=tags)
        run_dir = folder.path
        listeners.append(RunLogger(store, run_id, project=project))  # the project open_run_row recorded
    if on_event is not None and main:
        listeners.append(on_event)
    callbacks = [*callbacks, *_tracked(tracking, store, run_id)]  # MLflow, when the caller attached a tracker
    if run_id is not None:  # time per node of the trained model, for the canvas's cost overlay
        callbacks.append(RecordLatency(total_macs(node_costs(report)), cfg.batch_size))
    if ds.info.task == "forecast" and folder is not None:  # forecast vs actual for the Runs page
        callbacks.append(KeepForecasts(folder.forecasts))
    if ds.info.task == "next_token" and main:  # a language model writes a sample after every epoch
        callbacks.append(TextSamples(folder.text_samples if folder is not None else None,
                                     seed=cfg.seed))
    with fails_run(store, run_id):
        model = build_model(project.graph, cfg.seed, report)
        init = _load_init(store, model, cfg)
        trainer = Trainer(model, ds, cfg, callbacks, run_dir, on_event=listeners, dist=dist)
    trainer.run_id = run_id
    if run_id is not None:
        # with, when fine-tuned, which layers came from the source run and which started random (shown, carded)
        more = {} if init is None else {INIT_KEY: init_record(str(cfg.init_from), init, asked=cfg.init_nodes is not None)}
        record_environment(store, run_id, trainer, report, graph=project.graph, **more,
                           world_size=getattr(dist, "world_size", 1) if dist is not None else 1)
    return _launch(trainer, background, run_id)


#: what the caller attaches to log a stored run elsewhere: (store, run id) -> the callbacks that do it
#: (:func:`builder.tracking.tracker`: MLflow); the pipeline imports no tracker
Tracker = Callable[[Any, "str | None"], list[Callback]]


def _tracked(tracking: Tracker | None, store: Any, run_id: str | None) -> list[Callback]:
    """The callbacks the caller's tracker adds for this run (none without a tracker, a store or a run id).

    Raises:
        TrainingError: ``tracking`` is not callable (a URI: LayerLab 0.1's form).
    """
    if tracking is None or store is None or run_id is None:
        return []
    if not callable(tracking):
        raise TrainingError(f"tracking is a tracker the caller attaches; received: {tracking!r}. Fix: pass "
                            "builder.tracking.tracker(uri)")
    return list(tracking(store, run_id))


def student_alone(project, teacher: str, dataset: str | Dataset | None = None,
                  config: TrainConfig | dict | None = None, store: RunStore | None = None, **kwargs: Any) -> TrainResult:
    """A distillation's baseline: ``project`` (the student, without a teacher) trained with the same settings and
    seed on the teacher's split (``training.split_of``), recorded as its own run; ``kwargs`` go to
    :func:`run_training`. Record its figures with the distilled run (:func:`builder.training.lineage.baseline_tag`).

    Raises:
        as :func:`run_training`.
    """
    p = load_project(project).model_copy(deep=True)
    p.training = {**{k: v for k, v in (p.training or {}).items() if k != "teacher"}, "split_of": teacher}
    tags = {**(kwargs.pop("tags", None) or {}), "baseline_of_teacher": teacher}
    return run_training(p, dataset, config, store, tags=tags, **kwargs)


def _launch(trainer: Trainer, background: bool, run_id: str | None):
    if background:
        job = TrainingJob(trainer).start()
        job.run_id = run_id
        return job
    result = trainer.fit()
    result.run_id = run_id
    return result


def resume_run(run_id: str, store: RunStore, callbacks: Iterable[Callback] = (), *,
               on_event: Callable[[dict], None] | None = None, background: bool = False,
               overrides: dict | None = None, dist: Any = None, claimed: bool = False,
               tracking: Tracker | None = None) -> TrainResult | TrainingJob:
    """Continue an interrupted, stopped, paused or failed run from its last checkpoint.

    ``overrides`` may change settings such as ``epochs`` or ``lr`` (e.g. after a NaN loss). ``claimed``: this
    process holds the run's job slot (:mod:`builder.jobs.queue`), so its live status is its own. ``tracking``: as
    for :func:`run_training`.

    Raises:
        RunStoreError: unknown run, a run still live or finished, or no checkpoint.
    """
    store.mark_interrupted()
    run = store.get(run_id)
    folder = store.folder(run.id, write=True)  # resuming writes into the run: its owner's alone, not a reader's
    run_id = run.id
    own = claimed and run.info.pid == os.getpid()  # this process holds the run's job slot: its live status is its own
    if why := resume_refusal(run, more_epochs=bool((overrides or {}).get("epochs")), own_process=own):
        raise RunStoreError(why)
    ckpt = folder.checkpoint
    if not ckpt.is_file() and not previous_path(ckpt).is_file():
        raise RunStoreError(f"run {run_id} has no checkpoint to resume from (it stopped before its first one was "
                            "written). Fix: start a new run from its project")
    cfg = TrainConfig.from_dict(run.config, **overrides) if overrides else run.config
    project = run.project
    ds = fit_dataset(project.graph, load_run_dataset(store, run))
    main = dist is None or getattr(dist, "rank", 0) == 0
    listeners: list = [RunLogger(store, run_id, project=project)] if main else []
    if on_event is not None and main:
        listeners.append(on_event)
    if overrides and main:
        store.update_status(run_id, run.status, "settings changed on resume", config=cfg.model_dump())
    callbacks = [*callbacks, *(_tracked(tracking, store, run_id) if main else [])]
    if has_objective(project):  # a drawn objective trains in builder.training.multi
        return resume_objective(run, store, project, ds, cfg, callbacks, listeners, ckpt, background)
    model = build_model(project.graph, cfg.seed)
    _load_init(store, model, cfg)  # the frozen base a checkpoint refers to by content (checkpoint_weights)
    trainer = Trainer(model, ds, cfg, callbacks, folder.path, on_event=listeners,
                      resume_from=ckpt, dist=dist)
    _, meta, _ = read_resumable(ckpt)
    step = meta.get("state", {}).get("global_step", 0)
    if main and isinstance(step, int) and not isinstance(step, bool) and step >= 0:
        store.truncate_metrics(run_id, step)
    trainer.run_id = run_id
    if main:
        store.set_environment(run_id, device=str(trainer.device), precision=trainer.precision)
    return _launch(trainer, background, run_id)


def owner_uploads(store: RunStore | None, owner: str) -> UploadFolder | None:
    """The folder ``owner``'s upload ids resolve in (:func:`builder.runs.owners.upload_dir` of the store's
    workspace); None without a store (no upload resolves)."""
    return UploadFolder(upload_dir(store.workspace, owner)) if store is not None else None


def load_run_dataset(store: RunStore, run: Run) -> Dataset:
    """The dataset a run trained on: its saved snapshot, or its source reloaded as its owner's
    (:func:`builder.runs.summary.run_data`: an upload inside the owner's folder, a built-in).

    Only ``run``'s id counts: the owner and the dataset are those the store holds for it, read as the store's actor
    (a caller's copy of the record, edited or made up, names no other owner's upload and no file)."""
    run = store.get(run.id)
    data = run_data(store, run)
    if isinstance(data, Path):
        return load_saved_dataset(data)
    with use_cache_dir(store.workspace):
        return load_dataset(data, uploads=owner_uploads(store, owner_of(run)), **pretrained_of(store, run))


def load_run(store: RunStore, run_id: str | Run, *, weights: str = "final",
             report: ShapeReport | None = None) -> tuple[torch.nn.Module, Dataset]:
    """A run's trained model (eval mode, on CPU) and the dataset it trained on, for explanations.

    Args:
        run_id: a run id, or the record the caller already read from ``store`` (its parsed project is reused;
            its files are still read through ``store``, which checks the actor).
        weights: ``final`` (the finished run's weights, else its last checkpoint) or ``checkpoint``.
        report: the analysis of the run's graph, when the caller made it (compiling reuses it).

    Raises:
        RunStoreError: unknown run, or a run with neither weights nor checkpoint yet.
    """
    from builder.training.checkpoint import checkpoint_weights  # lazy: heavy (torch, safetensors)

    run = run_id if isinstance(run_id, Run) else store.get(run_id)
    ds = fit_dataset(run.project.graph, load_run_dataset(store, run))
    model = build_model(run.project.graph, run.config.seed, report)
    wpath, ckpt = store.weights_path(run.id), store.checkpoint_path(run.id)
    if weights == "final" and not wpath.is_file():  # a run in progress or stopped: its newest epoch's weights
        wpath = _epoch_weights(store, run.id, ckpt) or wpath
    if not (weights == "final" and wpath.is_file()) and not ckpt.is_file():
        raise RunStoreError(f"run {run.id} ({run.status}) has no trained weights yet")
    try:
        if weights == "final" and wpath.is_file():
            state, _ = read_weights(wpath)
        else:
            tensors, meta = read_checkpoint(ckpt)
            if meta.get("base"):  # the frozen base comes from the run it started from
                _load_init(store, model, TrainConfig.from_dict(run.get("config") or {}, stored=True))
            state = checkpoint_weights(tensors, meta, model, ckpt)
        model.load_state_dict(state)
    except Exception as e:  # a damaged file, or weights of another graph
        raise RunStoreError(f"the weights of run {run.id} do not fit its project: {e}") from None
    return model.eval(), ds


# ------------------------------------------------------- projects with a drawn objective (builder.training.multi)
def _teacher_model(store: Any, run_id: str | None) -> torch.nn.Module | None:
    """The frozen model of a finished run (``training.teacher``), or None."""
    if not run_id:
        return None
    if store is None:
        raise TrainingError(f"a teacher run needs the run store to load it from; received: teacher={run_id!r} and "
                            "no store. Fix: train through the CLI or the app (they pass the workspace's store)")
    try:
        model, _ = load_run(store, run_id)  # exact id, a run the store's actor may read (builder.data.access)
    except AccessDenied:
        raise
    except RunStoreError as e:
        raise TrainingError(f"the teacher run cannot be loaded; received: teacher={run_id!r} ({e}). Fix: pass the "
                            "id of a finished run") from None
    return model


def run_objective(project: Any, dataset: Any = None, config: TrainConfig | dict | None = None, store: Any = None,
                  callbacks: Iterable[Any] = (), *, dataset_options: dict | None = None,
                  on_event: Callable[[dict], None] | None = None, background: bool = False,
                  name: str | None = None, run_id: str | None = None, owner: str = "local",
                  tags: dict | None = None) -> Any:
    """:func:`~builder.runs.pipeline.run_training` for a project with a drawn objective (same arguments and
    result; the graph's Input must fit the dataset, its outputs are the loss nodes). ``training.teacher`` names
    the finished run whose model feeds ``Target(source="teacher")``."""
    owner = acting_owner(store, owner)
    if run_id is not None and store is not None:  # as run_training: a queued run the actor controls
        run_id = controlled_run(store, run_id).id
    with fails_run(store, run_id):
        project = load_project(project).model_copy(deep=True)
        tr = dict(project.training or {})
        ds, cfg = _data_and_settings(project, dataset, config, dataset_options, store, owner_uploads(store, owner))
        report = infer_shapes(project.graph)
        problems = [p for p in report.problems if p.severity == "error"]
        problems += objective_compat(project.graph, ds, report)
        if problems:
            raise GraphError(problems)
        teacher = _teacher_model(store, tr.get("teacher"))
    run_dir, listeners = None, []
    if store is not None:
        run_id, folder = open_run_row(store, run_id, project, ds, cfg, name=name, owner=owner, tags=tags)
        run_dir = folder.path
        listeners.append(RunLogger(store, run_id, project=project))  # the project open_run_row recorded
    if on_event is not None:
        listeners.append(on_event)
    with fails_run(store, run_id):
        trainer = ObjectiveTrainer(project, ds, cfg, callbacks, run_dir, on_event=listeners, teacher=teacher)
    trainer.run_id = run_id
    if run_id is not None:
        record_environment(store, run_id, trainer, report)
    return _launch(trainer, background, run_id)


def resume_objective(run: dict, store: Any, project: Project, ds: Dataset, cfg: TrainConfig,
                     callbacks: Iterable[Any], listeners: list, ckpt: Path, background: bool = False) -> Any:
    """:func:`~builder.runs.pipeline.resume_run`'s second half for a project with a drawn objective."""
    teacher = _teacher_model(store, (project.training or {}).get("teacher"))
    trainer = ObjectiveTrainer(project, ds, cfg, callbacks, store.run_dir(run["id"], write=True), on_event=listeners,
                               resume_from=ckpt, teacher=teacher)
    _, meta, _ = read_resumable(ckpt)
    step = meta.get("state", {}).get("global_step", 0)
    if isinstance(step, int) and not isinstance(step, bool) and step >= 0:
        store.truncate_metrics(run["id"], step)
    trainer.run_id = run["id"]
    store.set_environment(run["id"], device=str(trainer.device), precision=trainer.precision)
    return _launch(trainer, background, run["id"])


# ------------------------------------------------------- a finished run opened for the questions asked of it
def _epoch_weights(store: RunStore, run_id: str, ckpt: Path) -> Path | None:
    """The run's newest epoch's weights (:attr:`RunFolder.epoch_weights`) when they are at least as new as its last
    checkpoint ``ckpt``, else None (read the checkpoint)."""
    path = store.folder(run_id).epoch_weights
    try:
        t = path.stat().st_mtime_ns
    except OSError:
        return None
    try:
        return path if t >= ckpt.stat().st_mtime_ns else None
    except OSError:
        return path


def open_run(store: Any, run: Run) -> tuple[torch.nn.Module, Any]:
    """A finished run's model and dataset (:func:`load_run`), the graph first checked against the memory budget.

    Args:
        store: the :class:`~builder.runs.store.RunStore`; ``run``: its record (owner already checked; its project
            is parsed and analysed once here, the analysis handed on to compiling).
    Raises:
        LayerLabError: missing or incompatible weights (``RunStoreError``), a graph over the budget (``BudgetError``).
    """
    run = Run.of(run)
    project = run.project
    report = infer_shapes(project.graph)  # raises nothing; the budget is in the report
    if not report.ok and any(p.code == "budget" for p in report.problems):
        raise BudgetError([p for p in report.problems if p.code == "budget"])
    try:
        model, ds = load_run(store, run, report=report)
        return _objective_view(project, model, ds) if has_objective(project) else (model, ds)
    except LayerLabError:
        raise
    except Exception as e:  # noqa: BLE001 - torch's and safetensors' errors for a file that does not fit
        raise RunStoreError(f"the weights of run {run.id} do not fit its project: {e}") from e


def _objective_view(project: Any, model: torch.nn.Module, ds: Any) -> tuple[torch.nn.Module, Any]:
    """A run with a drawn objective explained through the network that reads its samples
    (:func:`builder.training.networks.explain_view`: a VAE's encoder, μ as its output), with the run's
    weights; its outputs are values, not the dataset's classes, so the data is read as a regression's.

    Raises:
        ExplainError: no network reads the dataset's samples (a GAN).
    """
    try:
        name, view = explain_view(project)
    except NetworkError as e:
        raise ExplainError(str(e)) from None
    sub = compile_graph(view.graph)
    sub.load_state_dict(network_state(project, name, model.state_dict()), strict=False)
    sub.layerlab_explained = name  # what the page names
    info = dataclasses.replace(ds.info, task="regression", class_names=[], num_classes=None)
    ds = dataclasses.replace(ds, info=info)
    return sub.eval(), fit_dataset(sub, ds)


__all__ = ["run_training", "fails_run", "student_alone", "resume_run", "prepare", "build_model", "transfer_weights", "freeze_nodes",
           "load_run", "load_run_dataset", "owner_uploads", "acting_owner", "run_objective", "dataset_of", "resume_objective", "Tracker",
           "open_run"]
