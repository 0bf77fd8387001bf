"""Headless training commands: ``layerlab train``, ``layerlab runs list|show|resume|delete``, ``export --run``.

:func:`register` adds them to the main CLI's subparsers; ``python -m builder.cli.train`` runs the whole CLI
(as ``python -m builder``).
Under ``torchrun`` the ``train`` command trains with DistributedDataParallel (see ``docs/scale-out.md``).
Example::

    layerlab train cnn.json --dataset digits --epochs 20
    layerlab train mlp --dataset iris --adapt --folds 5
    layerlab runs list
    layerlab runs resume 20261121-104000-ab12cd
    layerlab export --run 20261121-104000-ab12cd -o model.safetensors
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from builder.cli.common import (
    check_output_path,
    cli_store,
    infer_format,
    load_project_arg,
    say,
    say_block,
    say_json,
    say_progress,
)
from builder.errors import AccessDenied, LayerLabError, TrainingError
from builder.escape import safe_filename
from builder.escape import terminal_line as tl
from builder.runs.record import Run, shown_time
from builder.runs.summary import dataset_label, shown_dataset_options, shown_record
from builder.training.lineage import baseline_line, baseline_tag, init_line
from builder.training.objectives import DISTILL_ALPHA, DISTILL_TEMPERATURE, with_teacher
from builder.training.run_status import ENDED_CLEANLY, HALTED, RunStatus
from builder.training.threads import ENV_TORCH_THREADS

_CONFIG_ARGS = ("epochs", "batch_size", "lr", "optimizer", "momentum", "weight_decay", "scheduler", "grad_clip",
                "early_stopping", "seed", "device", "loss", "metric", "log_every", "checkpoint_every",
                "init_from")


def key_value(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    k, v = text.split("=", 1)
    try:
        return k.strip(), json.loads(v)
    except json.JSONDecodeError:
        return k.strip(), v


def dataset_option(text: str) -> tuple[str, Any]:
    """``--dataset-option KEY=VALUE``: the value read as JSON (:func:`key_value`), but a column option's
    (:data:`builder.data.sources.COLUMN_KEYS`) stays the text typed when JSON reads it as a number, true/false or
    null, and so does each number of a list of columns: a header's names are text, so ``target=2020`` names the
    column "2020" and ``target=null`` a column "null", never no target (a column option is refused unless it is
    text, :func:`builder.data.sources.column_problems`).

    >>> dataset_option("target=2020"), dataset_option("noise=0.2"), dataset_option('columns=["a", "b"]')
    (('target', '2020'), ('noise', 0.2), ('columns', ['a', 'b']))
    >>> dataset_option("columns=[2020, 2021]"), dataset_option("target=null")
    (('columns', ['2020', '2021']), ('target', 'null'))
    """
    from builder.data.sources import COLUMN_KEYS  # lazy: heavy (numpy)

    k, v = key_value(text)
    if k not in COLUMN_KEYS:
        return k, v
    if v is None or isinstance(v, int | float | bool):
        return k, text.split("=", 1)[1].strip()
    if isinstance(v, list):  # each scalar as JSON writes it (2020 -> "2020"); anything else is refused later
        return k, [x if isinstance(x, str) or not (x is None or isinstance(x, int | float | bool)) else json.dumps(x)
                   for x in v]
    return k, v


def add_train_args(p: argparse.ArgumentParser) -> None:
    """Training settings shared by ``train`` and ``runs resume``."""
    g = p.add_argument_group("training settings (default: the project's, else TrainConfig's)")
    g.add_argument("--epochs", type=int)
    g.add_argument("--batch-size", type=int, dest="batch_size")
    g.add_argument("--lr", type=float, help="learning rate (the peak for --scheduler onecycle)")
    g.add_argument("--optimizer", choices=("sgd", "adam", "adamw", "rmsprop"))
    g.add_argument("--momentum", type=float)
    g.add_argument("--nesterov", action="store_true", default=None)
    g.add_argument("--weight-decay", type=float, dest="weight_decay")
    g.add_argument("--scheduler", choices=("none", "step", "cosine", "onecycle", "plateau"))
    g.add_argument("--scheduler-param", type=key_value, action="append", default=[], metavar="KEY=VALUE",
                   dest="scheduler_param")
    g.add_argument("--grad-clip", type=float, dest="grad_clip")
    g.add_argument("--early-stopping", type=int, dest="early_stopping", metavar="PATIENCE",
                   help="stop after PATIENCE epochs without a better validation loss (on by default; 0 = off)")
    g.add_argument("--seed", type=int)
    g.add_argument("--device", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N, mps")
    g.add_argument("--amp", action="store_true", default=None,
                   help="mixed precision: bfloat16 (or float16) autocast on CUDA, bfloat16 on CPUs with native "
                   "bfloat16; refused elsewhere (default: on for CUDA)")
    g.add_argument("--no-amp", action="store_true", dest="no_amp", help="float32 also on CUDA")
    g.add_argument("--torch-compile", action="store_true", default=None, dest="torch_compile",
                   help="train through torch.compile (compiles for seconds to minutes first; slower on small CPU "
                   "models, can pay on a GPU for long runs)")
    g.add_argument("--loss", choices=("auto", "mse", "l1", "huber"), help="regression loss")
    g.add_argument("--metric", choices=("auto", "accuracy", "f1", "r2"))
    g.add_argument("--log-every", type=int, dest="log_every")
    g.add_argument("--checkpoint-every", type=int, dest="checkpoint_every")
    g.add_argument("--augment", metavar="LIST", help="image augmentation per batch, e.g. flip,crop=4 (of flip, crop, "
                   "affine, brightness, contrast; a name alone takes its default); 'none' turns it off")
    p.add_argument("--threads", type=int, metavar="N", help="torch threads on a CPU (default: from the model's "
                   "multiply-adds per batch, 1 for small models; sets LAYERLAB_TORCH_THREADS)")
    p.add_argument("--workspace", help="workspace folder (default $LAYERLAB_WORKSPACE, else ~/.layerlab)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``train`` and ``runs`` to a CLI's subparsers (``export --run`` calls :func:`export_run`)."""
    p = subparsers.add_parser("train", help="train a project on a dataset headlessly",
                              description="Train FILE (a project file or a template name) on a dataset. "
                              "Under torchrun it trains with DistributedDataParallel.")
    p.add_argument("file", help="project file, or a template name such as cnn")
    p.add_argument("--dataset", help="dataset name (see `layerlab datasets`), csv or image_folder; default: the "
                   "project's")
    p.add_argument("--data-path", dest="data_path", help="file or folder for --dataset csv / image_folder")
    p.add_argument("--target", help="target column for --dataset csv")
    p.add_argument("--task", choices=("multiclass", "binary", "regression", "reconstruction"),
                   help="override the dataset's task")
    p.add_argument("--dataset-option", type=dataset_option, action="append", default=[], metavar="KEY=VALUE",
                   dest="dataset_option", help="e.g. n_samples=2000, noise=0.2")
    p.add_argument("--adapt", action="store_true", help="set the Input shape and last Linear to fit the dataset")
    p.add_argument("--init-from", dest="init_from", metavar="RUN", help="initialise nodes from a past run")
    p.add_argument("--init-nodes", dest="init_nodes", help="comma-separated node ids to initialise")
    p.add_argument("--freeze", help="comma-separated node ids to freeze")
    p.add_argument("--finetune", choices=("full", "linear_probe", "lora"), help="what trains from a pretrained "
                   "model: every layer, only the head, or the head and LoRA adapters (added to the attention "
                   "projections when the graph has none)")
    p.add_argument("--name", help="run name")
    p.add_argument("--teacher", metavar="RUN_ID", help="distillation: train FILE (the student) to mimic this finished "
                   "run's outputs as well as the labels (a DistillationLoss and a CrossEntropyLoss are added unless "
                   "the project draws its own teacher Target)")
    p.add_argument("--distill-temperature", type=float, dest="distill_temperature", default=DISTILL_TEMPERATURE,
                   metavar="T", help=f"softening temperature of the distillation term (default {DISTILL_TEMPERATURE:g}, "
                   "the least harmful on digits: bench/RESULTS.md)")
    p.add_argument("--distill-alpha", type=float, dest="distill_alpha", default=DISTILL_ALPHA, metavar="A",
                   help=f"weight of the distillation term; the label term gets 1 - A (default {DISTILL_ALPHA:g}). The "
                   "student is also trained alone first and shown beside the distilled result")
    p.add_argument("--folds", type=int, metavar="K", help="K-fold cross-validation: K runs, run k tested on fold k "
                   "(stratified for classification), grouped; prints mean ± std of every test metric")
    add_train_args(p)
    p.set_defaults(func=cmd_train)

    r = subparsers.add_parser("runs", help="list, show, resume or delete training runs")
    rs = r.add_subparsers(dest="runs_command", metavar="ACTION")
    q = rs.add_parser("list", help="runs, newest first")
    q.add_argument("--status")
    q.add_argument("--limit", type=int, default=30)
    q.add_argument("--workspace")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_runs_list)
    q = rs.add_parser("show", help="one run: settings, curve summary, test metrics")
    q.add_argument("run_id")
    q.add_argument("--workspace")
    q.add_argument("--json", action="store_true")
    q.add_argument("--card", action="store_true", help="print the model card")
    q.set_defaults(func=cmd_runs_show)
    q = rs.add_parser("resume", help="continue an interrupted, stopped or failed run from its checkpoint")
    q.add_argument("run_id")
    add_train_args(q)
    q.set_defaults(func=cmd_runs_resume)
    q = rs.add_parser("delete", help="delete a run and its folder")
    q.add_argument("run_id")
    q.add_argument("--workspace")
    q.set_defaults(func=cmd_runs_delete)
    r.set_defaults(func=lambda a: (r.print_help(), 2)[1])


# ------------------------------------------------------------------------------------------- progress
class Progress:
    """A text progress bar fed by trainer events (epoch, loss, metric, ETA) on stderr.

    Also a training callback: the trainer tells it the resolved number of epochs when training begins
    (``TrainConfig.resolve``: task defaults < project settings < flags), so the bar needs no guess.
    """

    def __init__(self, epochs: int | None = None, stream=None, enabled: bool = True):
        self.epochs, self.stream, self.enabled = epochs, stream or sys.stderr, enabled
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._last = 0.0
        self._epoch = 0
        self._line = ""

    def on_train_begin(self, trainer) -> None:
        """Take the number of epochs from the trainer's resolved settings."""
        self.epochs = trainer.config.epochs

    def _bar(self, done: float) -> str:
        n = 20
        k = int(round(n * min(max(done, 0.0), 1.0)))
        return "[" + "#" * k + "-" * (n - k) + "]"

    def __call__(self, ev: dict) -> None:
        if not self.enabled:
            return
        t = ev.get("type")
        if t == "step" and self.tty and time.monotonic() - self._last > 0.2:
            self._last = time.monotonic()
            self._write(f"epoch {ev['epoch'] + 1}/{self.epochs} {self._bar(ev['epoch'] / self.epochs)} "
                        f"loss {ev['loss']:.4f}", end="")
        elif t == "epoch":
            eta = ev.get("eta_s") or 0
            m = ev.get("metric_name", "metric")
            self._write(f"epoch {ev['epoch']}/{self.epochs} {self._bar(ev['epoch'] / self.epochs)} "
                        f"loss {ev['train_loss']:.4f} val_loss {ev['val_loss']:.4f} val_{m} {ev['val_metric']:.3f} "
                        f"ETA {int(eta) // 60}:{int(eta) % 60:02d}", end="\n")
        elif t == "status" and ev["status"] in HALTED and ev.get("message"):
            self._write(f"{ev['status']}: {ev['message']}", end="\n")

    def _write(self, text: str, end: str) -> None:
        say_progress(text, self.stream, tty=self.tty, done=end == "\n")


def config_overrides(args: argparse.Namespace) -> dict:
    if getattr(args, "threads", None) is not None:  # read by builder.training.threads.torch_threads (also in job processes)


        if args.threads < 1:
            raise TrainingError(f"--threads must be 1 or more; received: {args.threads}. Fix: pass a positive count")
        os.environ[ENV_TORCH_THREADS] = str(args.threads)
    cfg = {k: getattr(args, k) for k in _CONFIG_ARGS if getattr(args, k, None) is not None}
    for k in ("nesterov", "amp", "torch_compile"):
        if getattr(args, k, None):
            cfg[k] = True
    if getattr(args, "no_amp", False):
        cfg["amp"] = False
    if getattr(args, "scheduler_param", None):
        cfg["scheduler_params"] = dict(args.scheduler_param)
    if getattr(args, "init_nodes", None):
        cfg["init_nodes"] = [s.strip() for s in args.init_nodes.split(",") if s.strip()]
    if getattr(args, "finetune", None):
        cfg["finetune"] = args.finetune
    if getattr(args, "freeze", None):
        cfg["freeze"] = [s.strip() for s in args.freeze.split(",") if s.strip()]
    if getattr(args, "augment", None):
        from builder.data.augment import parse_augment  # lazy: heavy (numpy)

        cfg["augment"] = {} if args.augment.strip().lower() == "none" else parse_augment(args.augment)
    return cfg


def _mlflow(args: argparse.Namespace):
    """The run's MLflow tracker (:func:`builder.tracking.tracker`) of the command's ``--mlflow URI`` (None: the
    local user's ``$MLFLOW_TRACKING_URI`` or the server config's, :func:`builder.tracking_destinations.resolve_tracking`),
    attached to the run, never written into the environment."""
    from builder.tracking import tracker  # lazy: heavy (a command that trains nothing does not import it)

    return tracker((getattr(args, "mlflow", None) or "").strip() or None)


def _print_result(result, args: argparse.Namespace, out=None) -> None:
    out = out or sys.stdout
    if getattr(args, "json", False):
        say_json(result.to_dict(), default=str, file=out)
        return
    if result.status != RunStatus.FINISHED:
        say(f"run {result.status}: {result.message}", max_len=2000, file=out)
    if result.test:
        for k in ("accuracy", "macro_f1", "r2", "mse", "mae", "loss"):
            if k in result.test:
                say(f"test {k} {result.test[k]:.3f}", file=out)
    if result.run_id and hasattr(args, "workspace"):  # started from a run's weights: what came
        run = cli_store(args.workspace).get(result.run_id)  # from it and what started random
        if line := init_line(run.environment):
            say(line, max_len=2000, file=out)
    if result.run_id:
        say(f"run id {result.run_id}", file=out)


def _run_job(start, args: argparse.Namespace) -> int:
    """Run a background job with a progress bar.

    Ctrl-C (SIGINT) asks the trainer to stop at its next step: it writes a checkpoint, the run is marked
    ``stopped``, the command prints how to resume and exits with 130. A second Ctrl-C exits at once (the run
    is then marked ``interrupted`` and resumes from its last checkpoint). SIGINT is handled by a signal
    handler rather than ``KeyboardInterrupt``: an exception raised inside ``Thread.join`` can leave the
    worker looking finished while it still runs.
    """
    progress = Progress(enabled=not args.quiet)
    interrupted = threading.Event()
    holder: dict = {}

    def on_sigint(signum, frame) -> None:
        if interrupted.is_set():
            raise KeyboardInterrupt
        interrupted.set()
        say(file=sys.stderr)
        say("stopping at the next step (a checkpoint is written; Ctrl-C again to quit at once)...", file=sys.stderr)
        if "job" in holder:
            holder["job"].stop()

    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, on_sigint) if in_main else None
    try:
        try:
            job = holder["job"] = start(progress)
            if interrupted.is_set():  # Ctrl-C while the data loaded or the model compiled
                job.stop()
            while not job.wait(0.2):
                pass
        except KeyboardInterrupt:  # the second Ctrl-C
            run_id = getattr(holder.get("job"), "run_id", None)
            say("quit without a final checkpoint" + (f"; resume from the last one with `layerlab runs resume "
                                                        f"{run_id}`" if run_id else ""), file=sys.stderr)
            return 130
    finally:
        if in_main:
            signal.signal(signal.SIGINT, previous)
    try:
        result = job.join()
    except LayerLabError as e:
        say(f"error: {e}", max_len=2000, file=sys.stderr)
        if getattr(job, "run_id", None):
            say(f"run id {job.run_id}")
        return 1
    result.run_id = getattr(job, "run_id", None)
    _print_result(result, args)
    if interrupted.is_set() and result.status == RunStatus.STOPPED:
        if result.run_id:
            say(f"stopped by Ctrl-C; resume with `layerlab runs resume {result.run_id}`", file=sys.stderr)
        return 130
    return 0 if result.status in ENDED_CLEANLY else 1


def cmd_train(args: argparse.Namespace) -> int:
    """``layerlab train FILE --dataset NAME ...``."""
    from builder.runs.pipeline import run_training  # lazy: heavy (torch, safetensors)
    from builder.training.distributed import env_world_size  # lazy: heavy (torch)

    project = load_project_arg(args.file)
    student = project
    if getattr(args, "teacher", None):
        project = with_teacher(project, args.teacher, args.distill_temperature, args.distill_alpha)
    cfg = config_overrides(args)
    opts = dict(args.dataset_option or [])
    if args.data_path:  # the command line's file (builder.cli.common.resolve_paths): the local user's privilege
        opts["path"] = args.data_path
    if args.target:
        opts["target"] = args.target
    if args.task:
        opts["task"] = args.task
    dataset = args.dataset
    if dataset is None and args.data_path:
        from builder.data.sources import kind_for_path  # lazy: heavy (numpy)

        dataset = kind_for_path(args.data_path)
    if getattr(args, "folds", None) is not None:
        if env_world_size() > 1:
            raise TrainingError("--folds does not run under torchrun; run it as a plain command")
        return _train_folds(project, dataset, cfg, opts, args)
    if env_world_size() > 1:
        return _train_distributed(project, dataset, cfg, opts, args)
    store = cli_store(args.workspace)
    tags = None
    if getattr(args, "teacher", None):  # the student alone first: the distilled result is shown beside it
        from builder.runs.pipeline import student_alone  # lazy: heavy (torch, safetensors)

        if not args.quiet:
            say("training the student alone first (same settings, seed and split; the distillation's baseline)",
                  file=sys.stderr)
        base = student_alone(student, args.teacher, dataset, cfg, store, dataset_options=opts, adapt=args.adapt,
                             name=f"{args.name or student.name} (student alone)", tracking=_mlflow(args))
        tags = baseline_tag(base.run_id, base.test)
    jobs: list = []
    rc = _run_job(lambda progress: jobs.append(run_training(
        project, dataset, cfg, store, [progress], dataset_options=opts, on_event=progress, background=True,
        adapt=args.adapt, name=args.name, tags=tags, tracking=_mlflow(args))) or jobs[0], args)
    if tags and not getattr(args, "json", False):
        result = getattr(jobs[0], "result", None) if jobs else None
        say(baseline_line(tags, getattr(result, "test", None)))
    return rc


def _train_folds(project, dataset, cfg, opts, args) -> int:
    """``train ... --folds K``: K runs (builder.runs.crossval), then mean ± std of the test metrics."""
    from builder.runs.crossval import cross_validate, format_summary  # lazy: heavy (numpy)

    progress = Progress(enabled=not args.quiet)

    def on_fold(k: int, result) -> None:
        if not args.json:
            test = ", ".join(f"{m} {v:.4f}" for m, v in (result.test or {}).items()
                             if m != "n" and isinstance(v, (int, float)))
            say(f"fold {k + 1}/{args.folds}: run {result.run_id} {result.status}" + (f"; test {test}" if test else ""))

    res = cross_validate(project, dataset, cfg, cli_store(args.workspace), folds=args.folds, dataset_options=opts,
                         callbacks=[progress], adapt=args.adapt, name=args.name, on_fold=on_fold,
                         on_event=progress, tracking=_mlflow(args))
    if args.json:
        say_json(res.to_dict(), default=str)
    else:
        say(f"cross-validation group {res.group} ({res.folds} folds; list with tag crossval={res.group})")
        for line in format_summary(res.summary):
            say(f"test {line}")
    return 0 if res.ok else 1


def _train_distributed(project, dataset, cfg, opts, args) -> int:
    from builder.runs.pipeline import run_training  # lazy: heavy (torch, safetensors)
    from builder.training.distributed import cleanup, init_distributed  # lazy: heavy (torch)

    ctx = init_distributed(cfg.get("device", "auto"))
    try:
        store = cli_store(args.workspace) if ctx.is_main else None
        progress = Progress(enabled=ctx.is_main and not args.quiet)
        result = run_training(project, dataset, cfg, store, [progress], dataset_options=opts, on_event=progress,
                              adapt=args.adapt, dist=ctx, name=args.name, tracking=_mlflow(args))
        if ctx.is_main:
            _print_result(result, args)
        return 0 if result.status == RunStatus.FINISHED else 1
    finally:
        cleanup(ctx)


def cmd_runs_list(args: argparse.Namespace) -> int:
    """``layerlab runs list``."""
    store = cli_store(args.workspace)
    runs = store.list_runs(args.status, args.limit)
    if args.json:  # shared mode lists every owner's runs: owners by pseudonym, never by id (a cookie)
        say_json([shown_record(store.workspace, r) for r in runs], default=str, indent=2)
        return 0
    if not runs:
        say("no runs yet; start one with `layerlab train FILE --dataset NAME`")
        return 0

    say(f"{'id':<23} {'status':<11} {'dataset':<20} {'epochs':>6} {'test':>14}  {'name'}")
    for r in runs:
        t = r.test_metrics
        k = "accuracy" if "accuracy" in t else "r2" if "r2" in t else None
        test = f"{k[:3]} {t[k]:.3f}" if k else "-"
        say(f"{tl(r.id, 23):<23} {tl(r.status, 11):<11} {tl(dataset_label(r), 20):<20} "
              f"{tl(r.info.epochs_done):>6} {test:>14}  {tl(r.info.name or '', 80)}")
    return 0


def cmd_runs_show(args: argparse.Namespace) -> int:
    """``layerlab runs show ID``."""
    from builder.runs.modelcard import model_card  # lazy: heavy (torch)

    store = cli_store(args.workspace)
    run = store.get(args.run_id, prefix=True)
    curve = store.metrics(run.id)
    if args.json:
        say_json({**shown_record(store.workspace, run), "curve": curve}, default=str, indent=2)
        return 0
    if args.card:
        say_block(model_card(run, curve, store.run_dir(run.id)))
        return 0

    info = run.info
    say(f"run {info.id}  ({info.name})")
    say(f"status      {info.status}" + (f"  - {info.message}" if info.message else ""))
    opts = {k: v for k, v in shown_dataset_options(run).items() if k != "file"}  # the file is in the label
    say(f"dataset     {tl(dataset_label(run), 120)}" + (f" {opts}" if opts else ""))
    say(f"created     {shown_time(info.created_at)}   finished {shown_time(info.finished_at)}")
    cfg = run.get("config") or {}
    say("settings    " + ", ".join(f"{k}={v}" for k, v in cfg.items() if v not in (None, [], {})))
    if curve:
        last = curve[-1]
        m = last.get("metric_name", "metric")
        say(f"epochs      {len(curve)}; last: train_loss {last['train_loss']:.4f} val_loss "
                 f"{last['val_loss']:.4f} val_{m} {last['val_metric']:.4f}")
    for k, v in run.test_metrics.items():
        if isinstance(v, (int, float)):
            say(f"test {k} {v:.4f}")
    say(f"folder      {store.run_dir(run.id)}")
    return 0


def cmd_runs_resume(args: argparse.Namespace) -> int:
    """``layerlab runs resume ID``."""
    from builder.runs.prune_run import resume_pruned  # lazy: heavy (torch, safetensors)

    store = cli_store(args.workspace)
    run = store.get(args.run_id, prefix=True)
    overrides = config_overrides(args)  # a pruned run keeps its mask and completes its report (resume_pruned)
    return _run_job(lambda progress: resume_pruned(store, run.id, callbacks=[progress], on_event=progress,
                                                   background=True, overrides=overrides or None,
                                                   tracking=_mlflow(args)), args)


def cmd_runs_delete(args: argparse.Namespace) -> int:
    """``layerlab runs delete ID``."""
    store = cli_store(args.workspace)
    run = store.get(args.run_id, prefix=True)
    store.delete_run(run.id)
    say(f"deleted run {run.id}")
    return 0


def export_run(args: argparse.Namespace) -> int:
    """``layerlab export --run ID [--format py|safetensors] [-o OUT]``: export a run's trained weights.

    ``safetensors`` writes the weights file; ``py`` writes the model's PyTorch source and the weights next to
    it (same name, ``.safetensors``). Without ``-o`` files go to the run's ``exports/`` folder.
    """
    output = getattr(args, "output", None) or getattr(args, "out", None)
    fmt = infer_format(getattr(args, "format", None), output)  # -o w.safetensors means weights, never code
    if output not in (None, "-"):
        check_output_path(output)
    store = cli_store(getattr(args, "workspace", None))
    run = store.get(args.run, prefix=True)
    # without -o the files go into the run's exports/: a run the local user controls, asked before any work
    into = store.folder(run.id, write=True) if output in (None, "-") else None
    with tempfile.TemporaryDirectory(prefix="layerlab-export-") as scratch:
        return _export_run_weights(store, run, args, _run_weights(store, run, Path(scratch)), output, fmt, into)


def _run_weights(store, run: Run, scratch: Path) -> Path:
    """The weights file to export: the run's final weights, else its last checkpoint's as a weights file, kept in
    the run's ``exports/`` for next time when the actor controls the run, else written into ``scratch`` (a reader,
    e.g. in shared mode, exports without writing into a run that is not theirs)."""
    folder = store.folder(run.id)
    if folder.weights.is_file():
        return folder.weights
    if not folder.checkpoint.is_file():
        raise TrainingError(f"run {run.id} ({run.status}) has no trained weights yet")
    try:
        dest = store.folder(run.id, write=True).export(folder.CHECKPOINT_WEIGHTS)
    except AccessDenied:
        dest = scratch / folder.CHECKPOINT_WEIGHTS
    return _weights_from_checkpoint(store, run.id, dest)


def _export_run_weights(store, run: Run, args: argparse.Namespace, weights: Path, output: str | None, fmt: str,
                        into: Any) -> int:
    """:func:`export_run` once the weights file is known."""
    folder = store.folder(run.id)
    if getattr(args, "network", None):
        return _export_run_network(run, args, weights, output, fmt, into)
    if getattr(args, "temperature", False) and (fmt == "safetensors" or getattr(args, "quantize", None)):
        raise TrainingError("--temperature changes the exported model's output; it applies to --format py or "
                            "onnx (without --quantize); received: --format " + str(fmt))
    if fmt == "onnx" or getattr(args, "quantize", None):
        return _export_run_onnx(store, run, args)
    if into is not None:
        output = into.export(into.PYTHON if fmt == "py" else f"{run.id}.safetensors")
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "py":
        from builder.interchange.python_export import export_python  # lazy: heavy (torch, safetensors)

        temperature = None
        if getattr(args, "temperature", False):
            from builder.interpret.calibration import stored_temperature  # lazy: heavy (torch)

            temperature = stored_temperature(store, run.id)
        from builder.graph.lora import merged_project  # lazy: heavy (torch)
        from builder.training.weights import read_weights  # lazy: heavy (safetensors)

        state, _ = read_weights(weights)
        project, merged = merged_project(run.project, state)  # LoRA adapters folded in: plain Linear layers
        source = export_python(project, temperature=temperature)  # the exporter the Runs page uses too
        output.write_text(source, encoding="utf-8")
        wpath = output.with_suffix(".safetensors")
        if merged is state:
            shutil.copyfile(weights, wpath)
        else:
            from safetensors.torch import save_file  # lazy: heavy (safetensors)

            save_file({k: v.contiguous() for k, v in merged.items()}, str(wpath))
        note = "; LoRA adapters merged into their base layers" if merged is not state else ""
        say(f"wrote {output} and {wpath} (trained weights of run {run.id}{note})")
        _export_tokenizer(folder, output)
    else:
        shutil.copyfile(weights, output)
        say(f"wrote {output} (trained weights of run {run.id}, status {run.status})")
    return 0


def _export_run_network(run: Run, args: argparse.Namespace, weights: Path, output: str | None, fmt: str,
                        folder: Any) -> int:
    """``export --run ID --network NAME [--format py|onnx] [-o OUT]``: one network of a multi-network run (the
    GAN's generator alone, its input the noise); without ``-o`` into the run's ``exports/NAME.py|.onnx``."""
    from builder.interchange.network_export import export_network  # lazy: heavy (torch, safetensors)

    network = args.network
    if getattr(args, "temperature", False) or getattr(args, "quantize", None):
        raise TrainingError("--network exports one network as it is; received: --temperature or --quantize with it. "
                            "Fix: export the network without them")
    if fmt == "safetensors":
        raise TrainingError("--network exports a network as py (with its weights) or onnx; received: --format "
                            "safetensors. Fix: use --format py (writes NAME.py and NAME.safetensors) or onnx")
    out = Path(output) if output not in (None, "-") else folder.export(f"{safe_filename(network, 'network')}.{fmt}")
    out.parent.mkdir(parents=True, exist_ok=True)
    rep = export_network(run.project, network, weights, out, fmt)
    extra = f"; onnxruntime max abs difference {rep['max_abs_diff']:.3g}" if rep["max_abs_diff"] is not None else ""
    say(f"wrote {' and '.join(rep['files'])} (network {network} of run {run.id}: inputs "
                        f"{', '.join(rep['inputs'])}, outputs {', '.join(rep['outputs'])}{extra})")
    return 0


def _export_run_onnx(store, run: dict, args: argparse.Namespace) -> int:
    """``export --run ID --format onnx [-o OUT.onnx] [--quantize int8]`` (int8: test metric before/after)."""
    from builder.graph.latency import comparison_text  # lazy: heavy (torch)
    from builder.interchange.onnx_export import export_run_onnx, quantize_run  # lazy: heavy (torch)

    output = getattr(args, "output", None)
    output = None if output in (None, "-") else Path(output)
    if getattr(args, "quantize", None) == "int8":
        folder = store.folder(run.id, write=True)  # the int8 record and the fp32 file go into the run
        int8 = output.with_suffix(".int8.onnx") if output else folder.onnx_int8
        q = quantize_run(store, run.id, int8)  # its record names the files in the run folder, not the server's paths
        if output is not None:
            shutil.copyfile(folder.onnx, output)
        say(f"wrote {output or folder.onnx} and {int8}: {q['bytes_before']:,} -> {q['bytes_after']:,} "
              f"bytes (ratio {q['ratio']:.2f}); test {q['metric']} {q['test_before']:.4f} -> {q['test_after']:.4f} "
              f"(delta {q['delta']:+.4f}); recorded in the model card")
        say(f"latency (onnxruntime, fp32 -> int8): {comparison_text(q.get('latency') or {})}")
        return 0
    tempered = bool(getattr(args, "temperature", False))
    rep = export_run_onnx(store, run["id"], output, temperature=tempered)
    extra = "; logits divided by the calibrated temperature" if tempered else ""
    say(f"wrote {rep.path} (trained weights of run {run['id']}; dynamic batch; onnxruntime max abs difference "
          f"{rep.max_abs_diff:.3g}{extra})")
    _export_tokenizer(store.folder(run["id"]), Path(rep.path))
    return 0


def _export_tokenizer(folder: Any, model_path: Path) -> None:
    """A text run's tokenizer next to its exported model (``NAME.tokenizer.json``): the model reads token ids."""
    if folder.tokenizer.is_file():
        out = model_path.with_name(model_path.stem + ".tokenizer.json")
        shutil.copyfile(folder.tokenizer, out)
        say(f"wrote {out} (the tokenizer the model's token ids come from; tokenizers.Tokenizer.from_file)")


def _weights_from_checkpoint(store, run_id: str, out: Path) -> Path:
    """A run's last checkpoint as a weights file (the frozen base a slim checkpoint refers to filled in)."""
    from safetensors.torch import save_file  # lazy: heavy (safetensors)

    from builder.runs.pipeline import load_run  # lazy: heavy (torch, safetensors)

    model, _ = load_run(store, run_id, weights="checkpoint")
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(out))
    return out


if __name__ == "__main__":  # ``python -m builder.cli.train`` (and the old ``builder.cli_train``) is ``layerlab``
    import runpy

    runpy.run_module("builder", run_name="__main__", alter_sys=True)
