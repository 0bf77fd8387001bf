"""Checks of a trained run: ``layerlab calibrate RUN`` and ``layerlab drift RUN --data-path NEW.csv``.

``calibrate`` fits a temperature on the run's validation split and prints the expected calibration error on
its test split before and after, the temperature, and the share of test decisions that can be automated at a
target accuracy (:mod:`builder.interpret.calibration`; stored as the run's ``calibration.json``). ``drift``
compares a new table with the run's training data, feature by feature, and the model's confidence and class
mix on it (:mod:`builder.data.drift`). Example::

    layerlab calibrate 20261121-104000-ab12cd --target-accuracy 0.95
    layerlab drift 20261121-104000-ab12cd --data-path new.csv --json
"""

from __future__ import annotations

import argparse
import json

from builder.escape import terminal_line as tl


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``calibrate`` and ``drift`` to a CLI's subparsers."""
    p = subparsers.add_parser("calibrate", help="calibration of a classifier run: ECE before/after temperature "
                              "scaling, and coverage at a target accuracy")
    p.add_argument("run_id", metavar="RUN")
    p.add_argument("--target-accuracy", type=float, default=0.95, dest="target_accuracy",
                   help="accuracy the kept (confident) decisions must reach (default 0.95)")
    p.add_argument("--bins", type=int, default=15, help="reliability diagram bins (default 15)")
    p.add_argument("--workspace", help="workspace folder holding the runs")
    p.add_argument("--json", action="store_true", help="print the whole report as JSON")
    p.set_defaults(func=cmd_calibrate)

    p = subparsers.add_parser("drift", help="compare new data with a run's training data (tables): which "
                              "features moved, and the model's confidence and class mix")
    p.add_argument("run_id", metavar="RUN")
    p.add_argument("--data-path", dest="data_path", required=True, help="the new data: a CSV file")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level before the Bonferroni "
                   "correction over the features (default 0.05)")
    p.add_argument("--workspace", help="workspace folder holding the runs")
    p.add_argument("--json", action="store_true", help="print the whole report as JSON")
    p.set_defaults(func=cmd_drift)


def cmd_calibrate(args: argparse.Namespace) -> int:
    """``layerlab calibrate RUN``."""
    from builder.interpret.calibration import calibrate_run
    from builder.runs.store import RunStore

    store = RunStore(args.workspace)
    rep = calibrate_run(store, args.run_id, target_accuracy=args.target_accuracy, bins=args.bins)
    if args.json:
        print(json.dumps(rep.to_dict()))
        return 0
    thr = "-" if rep.threshold_at_target is None else f"{rep.threshold_at_target:.4f}"
    print(tl(f"run {rep.run_id} ({rep.task}); temperature fitted on {rep.fit_split}, measured on {rep.split}"))
    print(f"temperature            {rep.temperature:.4f}")
    print(f"ECE ({rep.bins} bins)          {rep.ece_before:.4f} -> {rep.ece_after:.4f}")
    print(f"NLL                    {rep.nll_before:.4f} -> {rep.nll_after:.4f}")
    print(f"accuracy               {rep.accuracy:.4f}")
    print(f"coverage at {rep.target_accuracy:.2%} accuracy: {rep.coverage_at_target:.2%} of samples (confidence >= "
          f"{thr}; {rep.coverage_at_target_uncalibrated:.2%} before scaling)")
    print(tl(f"wrote {store.folder(rep.run_id).calibration}"))
    return 0


def cmd_drift(args: argparse.Namespace) -> int:
    """``layerlab drift RUN --data-path NEW.csv``."""
    from builder.data.drift import check_drift
    from builder.interpret.session import open_run
    from builder.runs.store import RunStore

    store = RunStore(args.workspace)
    run = store.get(args.run_id)
    model, ds = open_run(store, run)
    rep = check_drift(ds, args.data_path, model=model, alpha=args.alpha)
    if args.json:
        print(json.dumps({"run_id": run["id"], **rep.to_dict()}, default=str))
        return 0
    for line in rep.lines():
        print(tl(line, 300))
    return 0


__all__ = ["register", "cmd_calibrate", "cmd_drift"]
