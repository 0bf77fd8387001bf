"""Checks and changes of a trained run: ``layerlab calibrate``, ``drift``, ``prune`` and ``robustness``.

``calibrate`` fits a temperature on the run's validation split and prints the expected calibration error on
its test split before and after, the temperature, and the share of test decisions that can be automated at a
target accuracy (:mod:`builder.interpret.calibration`; stored as the run's ``calibration.json``). ``drift``
compares a new table with the run's training data, feature by feature, and the model's confidence and class
mix on it (:mod:`builder.data.drift`). ``prune`` removes channels (or zeroes weights) and fine-tunes the result
as a new run (:mod:`builder.training.prune`); ``robustness`` measures accuracy under FGSM/PGD attacks of size ε
(:mod:`builder.interpret.robustness`). Example::

    layerlab calibrate 20261121-104000-ab12cd --target-accuracy 0.95
    layerlab drift 20261121-104000-ab12cd --data-path new.csv --json
    layerlab prune 20261121-104000-ab12cd --amount 0.5 --structured --nodes conv1,conv2 --finetune-epochs 5
    layerlab robustness 20261121-104000-ab12cd --attack pgd --eps 0,0.05,0.1 --steps 10
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from builder.cli.common import cli_store, say, say_json, typed_run


def _report_options(p: argparse.ArgumentParser, func: Callable[[argparse.Namespace], int]) -> None:
    """The options every after-training check shares (where the runs are, JSON output) and its handler."""
    p.add_argument("--workspace", help="workspace folder holding the runs")
    p.add_argument("--json", action="store_true", help="print the whole report as JSON")
    p.set_defaults(func=func)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``calibrate``, ``drift``, ``prune`` and ``robustness`` to a CLI's subparsers."""
    p = subparsers.add_parser("calibrate", help="calibration of a classifier run: ECE before/after temperature "
                              "scaling, and coverage at a target accuracy")
    p.add_argument("run_id", metavar="RUN")
    p.add_argument("--target-accuracy", type=float, default=0.95, dest="target_accuracy",
                   help="accuracy the kept (confident) decisions must reach (default 0.95)")
    p.add_argument("--bins", type=int, default=15, help="reliability diagram bins, 1 to 50 (default 15)")
    _report_options(p, cmd_calibrate)

    p = subparsers.add_parser("drift", help="compare new data with a run's training data (tables): which "
                              "features moved, and the model's confidence and class mix")
    p.add_argument("run_id", metavar="RUN")
    p.add_argument("--data-path", dest="data_path", required=True, help="the new data: a CSV file")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level before the Bonferroni "
                   "correction over the features (default 0.05)")
    _report_options(p, cmd_drift)

    p = subparsers.add_parser("prune", help="prune a run (remove channels, or zero small weights) and fine-tune "
                              "the result as a new run; parameters, size, CPU latency and test metric before/after")
    p.add_argument("run_id", metavar="RUN")
    p.add_argument("--amount", type=float, default=0.5, help="share of channels (structured) or weights "
                   "(unstructured) removed (default 0.5)")
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("--structured", dest="structured", action="store_true", default=True,
                      help="remove output channels/units from the graph (default)")
    kind.add_argument("--unstructured", dest="structured", action="store_false",
                      help="global magnitude pruning: zero the smallest weights, mask kept while fine-tuning")
    p.add_argument("--criterion", choices=("l1", "taylor"), default="l1", help="channel importance: L1 of each "
                   "output filter, or Taylor |weight x grad| over a few training batches (default l1)")
    p.add_argument("--finetune-epochs", type=int, default=5, dest="finetune_epochs",
                   help="fine-tune epochs of the new run (default 5; 0 records the pruned weights as they are)")
    p.add_argument("--nodes", help="comma-separated Conv/Linear node ids (default: every one whose channels can go)")
    _report_options(p, cmd_prune)

    p = subparsers.add_parser("robustness", help="accuracy of a classifier run under adversarial attacks "
                              "(FGSM/PGD, Captum) of size eps, and the test samples that flip")
    p.add_argument("run_id", metavar="RUN")
    p.add_argument("--attack", choices=("fgsm", "pgd"), default="fgsm")
    p.add_argument("--eps", default="0,0.05,0.1,0.2", help="comma-separated L-inf sizes in input units "
                   "(default 0,0.05,0.1,0.2)")
    p.add_argument("--steps", type=int, default=10, help="PGD steps (default 10; step size 2.5 eps / steps)")
    _report_options(p, cmd_robustness)


def cmd_calibrate(args: argparse.Namespace) -> int:
    """``layerlab calibrate RUN``."""
    from builder.interpret.calibration import calibrate_run  # lazy: heavy (torch)

    store = cli_store(args.workspace)
    rep = calibrate_run(store, typed_run(store, args.run_id), target_accuracy=args.target_accuracy, bins=args.bins)
    if args.json:
        say_json(rep.to_dict())
        return 0
    thr = "-" if rep.threshold_at_target is None else f"{rep.threshold_at_target:.4f}"
    say(f"run {rep.run_id} ({rep.task}); temperature fitted on {rep.fit_split}, measured on {rep.split}")
    say(f"temperature            {rep.temperature:.4f}")
    say(f"ECE ({rep.bins} bins)          {rep.ece_before:.4f} -> {rep.ece_after:.4f}")
    say(f"NLL                    {rep.nll_before:.4f} -> {rep.nll_after:.4f}")
    say(f"accuracy               {rep.accuracy:.4f}")
    say(f"coverage at {rep.target_accuracy:.2%} accuracy: {rep.coverage_at_target:.2%} of samples (confidence >= "
          f"{thr}; {rep.coverage_at_target_uncalibrated:.2%} before scaling)")
    say(f"wrote {store.folder(rep.run_id).calibration}")
    return 0


def cmd_drift(args: argparse.Namespace) -> int:
    """``layerlab drift RUN --data-path NEW.csv``."""
    from builder.data.drift import check_drift  # lazy: heavy (numpy)
    from builder.runs.pipeline import open_run  # lazy: heavy (torch, safetensors)

    store = cli_store(args.workspace)
    run = store.get(args.run_id, prefix=True)
    model, ds = open_run(store, run)
    rep = check_drift(ds, args.data_path, model=model, alpha=args.alpha)
    if args.json:
        say_json({"run_id": run.id, **rep.to_dict()}, default=str)
        return 0
    for line in rep.lines():
        say(line, max_len=300)
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    """``layerlab prune RUN --amount 0.5 [--structured | --unstructured]``."""
    from builder.runs.prune_run import prune_run  # lazy: heavy (torch, safetensors)
    from builder.tracking import tracker  # lazy: heavy (torch)

    store = cli_store(args.workspace)
    nodes = [n.strip() for n in args.nodes.split(",") if n.strip()] if args.nodes else None
    rep = prune_run(store, typed_run(store, args.run_id), args.amount, structured=args.structured, criterion=args.criterion,
                    finetune_epochs=args.finetune_epochs, nodes=nodes, tracking=tracker())  # the local user's MLflow
    if args.json:
        say_json(rep.to_dict())
        return 0
    for line in rep.lines():
        say(line, max_len=300)
    say(f"wrote {store.folder(rep.run_id).prune}")
    return 0


def cmd_robustness(args: argparse.Namespace) -> int:
    """``layerlab robustness RUN --attack fgsm|pgd --eps 0,0.05,0.1``."""
    from builder.interpret.robustness import robustness_run  # lazy: heavy (torch)

    store = cli_store(args.workspace)
    rep = robustness_run(store, typed_run(store, args.run_id), args.eps, method=args.attack, steps=args.steps)
    if args.json:
        say_json(rep.to_dict())
        return 0
    for line in rep.lines():
        say(line, max_len=300)
    for f in rep.flips:
        shown = ", ".join(f"#{x['index']} {x['original']}->{x['adversarial']}" for x in f["examples"][:5])
        if shown:
            say(f"  eps {f['eps']:g} flips: {shown}", max_len=300)
    say(f"wrote {store.folder(rep.run_id).robustness}")
    return 0


__all__ = ["register", "cmd_calibrate", "cmd_drift", "cmd_prune", "cmd_robustness"]
