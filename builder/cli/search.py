"""Search and tracking commands: ``layerlab tune``, ``layerlab runs export-mlflow`` and ``--mlflow URI``.

:func:`register` adds them to the main CLI (``tune`` as a command, ``export-mlflow`` under ``runs``, and
``--mlflow`` on ``train``, ``runs resume`` and ``tune``). Example::

    layerlab tune mlp --dataset moons --trials 20 --search "lr=1e-4..1e-1:log" --search "fc1.out_features=8..128:log"
    layerlab tune mlp --dataset moons --trials 50 --study s1 --storage postgresql://host/optuna   # on N machines
    layerlab runs export-mlflow --mlflow sqlite:///mlflow.db
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time

from builder.cli.common import cli_store, load_project_arg, say, say_json
from builder.cli.train import add_train_args, config_overrides, dataset_option
from builder.errors import LayerLabError
from builder.runs.classes import actor_for  # are that owner's jobs (the command line's privilege)
from builder.search import OBJECTIVES, PRUNERS, SAMPLERS, StudyRunner, StudySettings
from builder.search.runner import ENV_STUDY_OWNER


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction | None:
    return next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``tune`` and ``runs export-mlflow``; add ``--mlflow`` to ``train`` and ``runs resume``."""
    p = sub.add_parser("tune", help="search hyper-parameters and node parameters with Optuna (trials run as jobs)",
                       description="Search FILE's training settings and node parameters. Each trial is a LayerLab "
                       "run. Several processes (also on several machines) given the same --study and --storage "
                       "share one study.", conflict_handler="resolve")
    add_train_args(p)  # base settings; tune's own --metric (the objective) replaces the trainer's below
    p.add_argument("file", help="project file, or a template name such as mlp")
    p.add_argument("--dataset", help="dataset name (see `layerlab datasets`); default: the project's")
    p.add_argument("--dataset-option", action="append", default=[], metavar="KEY=VALUE", dest="dataset_option")
    p.add_argument("--data-path", dest="data_path", help="file or folder for --dataset csv / image_folder (the local "
                   "user's own; a study started for an app owner names its upload with --dataset-option upload=ID)")
    p.add_argument("--trials", type=int, default=20, help="trials the study should hold in all (default 20)")
    p.add_argument("--timeout", type=float, help="seconds after which no new trial starts")
    p.add_argument("--search", action="append", default=[], metavar="SPEC",
                   help="a searched value: NAME=LOW..HIGH[:log] or NAME={A,B,...}; NAME is a training setting "
                   "(lr, batch_size, weight_decay, epochs, momentum, optimizer, scheduler, dropout) or node_id.param")
    p.add_argument("--storage", help="Optuna storage URL (default: sqlite:///<workspace>/studies.db)")
    p.add_argument("--study", help="study name (default: a new one); your existing study of that name is resumed "
                   "(names are per owner: the local user's are its own)")
    p.add_argument("--sampler", choices=SAMPLERS, default="tpe")
    p.add_argument("--sampler-seed", type=int, default=None, dest="sampler_seed", help="seed of the sampler")
    p.add_argument("--pruner", choices=PRUNERS, default="median")
    p.add_argument("--metric", choices=[*OBJECTIVES, *(o[4:] for o in OBJECTIVES)], default="val_loss",
                   help="the objective on the validation split (loss is minimised, metrics maximised)")
    p.add_argument("--workers", type=int, help="trials at once (default: the job limit, LAYERLAB_MAX_JOBS)")
    p.add_argument("--max-params", type=int, dest="max_params",
                   help="trials whose graph has more parameters fail before training")
    p.add_argument("--max-macs", type=int, dest="max_macs",
                   help="trials whose graph needs more multiply-adds per sample fail before training")
    p.add_argument("--mlflow", metavar="URI", help="also log every trial to this MLflow tracker")
    p.add_argument("--owner", default=None, help=argparse.SUPPRESS)  # the owner (default: $LAYERLAB_STUDY_OWNER)
    p.set_defaults(func=cmd_tune)

    for name in ("train",):
        if name in sub.choices:
            t = sub.choices[name]
            t.add_argument("--mlflow", metavar="URI", help="also log the run to this MLflow tracker "
                           "(default: $MLFLOW_TRACKING_URI)")
    runs = sub.choices.get("runs")
    rs = _subparsers(runs) if runs is not None else None
    if rs is None:
        return
    if "resume" in rs.choices:
        q = rs.choices["resume"]
        q.add_argument("--mlflow", metavar="URI", help="also log the run to this MLflow tracker")
    q = rs.add_parser("export-mlflow", help="copy runs (default: all) to an MLflow tracker; a run it holds in part "
                      "(after an outage) is repaired")
    q.add_argument("run_ids", nargs="*", metavar="ID")
    q.add_argument("--mlflow", metavar="URI", help="tracking URI (default: $MLFLOW_TRACKING_URI)")
    q.add_argument("--force", action="store_true", help="replace runs already exported instead of repairing them")
    q.add_argument("--workspace")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_export_mlflow)


def _default_study(project) -> str:
    base = re.sub(r"[^\w.\-]+", "-", (project.name or "study").lower()).strip("-")[:40] or "study"
    return f"{base}-{time.strftime('%Y%m%d-%H%M%S')}"


def cmd_tune(args: argparse.Namespace) -> int:
    """``layerlab tune FILE --dataset NAME --trials N --search SPEC ...``."""
    project = load_project_arg(args.file)
    cfg = config_overrides(args)
    cfg.pop("metric", None)  # --metric is the objective here; the trainer's metric follows from it
    opts = dict(dataset_option(o) for o in args.dataset_option)
    owner = args.owner or os.environ.get(ENV_STUDY_OWNER, "").strip() or "local"  # resolved once, at the door
    if args.data_path:  # the command line's file: the local user's privilege, never an app owner's study's
        if owner != "local":
            raise LayerLabError("--data-path names a file of the local user; received: a study of another owner. "
                                "Fix: name the owner's upload with --dataset-option upload=ID")
        opts["path"] = args.data_path
    if not args.search:
        raise LayerLabError("tune needs at least one --search; received: none. Fix: e.g. --search "
                            "'lr=1e-4..1e-1:log' --search 'fc1.out_features=16..256:log'")
    if os.environ.get(ENV_STUDY_OWNER):  # a study runner the app started: its memory limit, over its imports
        from builder.jobs.job_sandbox import limit_study_memory  # lazy: heavy (torch)

        limit_study_memory()
    store = cli_store(args.workspace)
    if owner != store.actor.owner:  # a study the app started for a session (builder.search.runner): its trials

        store = store.as_actor(actor_for(store.workspace, owner))
    objective = args.metric if args.metric.startswith("val_") else f"val_{args.metric}"
    settings = StudySettings(name=args.study or _default_study(project), storage=args.storage, n_trials=args.trials,
                             timeout=args.timeout, objective=objective, sampler=args.sampler,
                             seed=args.sampler_seed, pruner=args.pruner, workers=args.workers,
                             owner=owner, max_params=args.max_params, max_macs=args.max_macs,
                             tracking=args.mlflow)
    quiet = args.quiet or args.json

    def show(ev: dict) -> None:
        if quiet or ev["type"] == "study_done":
            return
        params = ", ".join(f"{k}={_short(v)}" for k, v in ev.get("params", {}).items())
        if ev["type"] == "trial_started":
            say(f"trial {ev['trial']} started: {params} (run {ev['run_id']})", max_len=400, file=sys.stderr)
        else:
            val = f" {objective} {ev['value']:.4g}" if ev.get("value") is not None and ev["state"] == "complete" else ""
            msg = f" - {ev['message']}" if ev.get("message") else ""
            say(f"trial {ev['trial']} {ev['state']}{val}{msg}", max_len=400, file=sys.stderr)

    runner = StudyRunner(store, project, args.dataset, cfg, space=args.search, settings=settings,
                         dataset_options=opts, on_update=show)
    if not quiet:
        say(f"study {settings.name} ({runner.study.direction.name.lower()} {objective}) in {runner.result().storage}",
              file=sys.stderr)
    res = runner.run()  # Ctrl-C stops the study cleanly (running trials are stopped and marked failed)
    if args.json:
        say_json(res.to_dict(), default=str)
        return 0
    if res.best_value is None:
        say(f"study {res.study}: no trial completed ({res.states})")
        return 1
    say(f"best {res.objective} {res.best_value:.4g} (trial {res.best_trial}, run id {res.best_run_id})")
    say("best params " + ", ".join(f"{k}={_short(v)}" for k, v in res.best_params.items()))
    say(f"trials {res.n_trials}: " + ", ".join(f"{k} {v}" for k, v in sorted(res.states.items())))
    if len(res.pareto) > 1:
        say(f"{objective} vs multiply-adds, the trials no other beats on both (Pareto front):")
        for t in res.pareto:
            say(f"  trial {t['trial']}: {objective} {t['value']:.4g}, {t['macs']:,} MACs, {t['params']:,} params "
                  f"(run id {t['run_id']})")
    return 0


def _short(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def cmd_export_mlflow(args: argparse.Namespace) -> int:
    """``layerlab runs export-mlflow [ID...] [--mlflow URI]``."""
    from builder.tracking import export_runs  # lazy: heavy (torch)

    out = export_runs(cli_store(args.workspace), args.run_ids, args.mlflow, force=args.force)  # the local user's
    if args.json:
        say_json(out)
        return 0
    for r in out:
        what = {"exported": "exported as", "repaired": "repaired (what MLflow missed was written) in",
                "complete": "already complete in MLflow as", "live": "still live; not exported"}
        say(f"{r['run_id']}: {what[r['status']]} {r['mlflow_run_id'] or ''}".rstrip())
    return 0
