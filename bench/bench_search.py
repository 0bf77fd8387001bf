"""Search benchmarks (issue 12). Run: ``python bench/bench_search.py [--repeats 3] [--trials 8] [--write]``.

1. Overhead per trial: wall time of a one-trial study (``StudyRunner.run``: study in SQLite, ask, the trial's
   job, polling the run store for per-epoch values, tell) ÷ wall time of the same run submitted alone as a
   job (``jobs.submit`` + ``jobs.wait``), same project, data and settings. Target <= 1.05. Interleaved
   repeats (alone, trial, alone, trial, ...); medians with their spread (p10-p90; min-max below 5 repeats)
   and the median of the paired ratios.
2. Throughput: trials per minute of an n-trial study with 1 worker and with the job limit
   (``jobs.max_jobs()``, or ``--workers``), random sampler, no pruning, so both do the same work. One study
   each: single values, said so in the table.

``--write`` replaces the section "## Search (issue 12)" of bench/RESULTS.md. Timing is never asserted in tests.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from results import commit, conditions, spread, write_section  # noqa: E402  (bench/results.py)

from builder.data.access import SYSTEM  # noqa: E402
from builder.graph.templates import load_template  # noqa: E402
from builder.jobs import queue as jobs  # noqa: E402
from builder.runs.store import RunStore  # noqa: E402
from builder.search import StudyRunner, StudySettings  # noqa: E402

SECTION = "## Search (issue 12)"
DATA = {"n_samples": 2000}


def alone(store: RunStore, config: dict) -> float:
    """Submit the run as a job and wait for it: the user's wall time."""
    t0 = time.perf_counter()
    rid = jobs.submit(store, jobs.JobSpec(project=load_template("mlp").model_dump(mode="json"), dataset="moons",
                                          dataset_options=dict(DATA), config=dict(config)))
    status = jobs.wait(store, [rid], timeout=900)[rid]
    assert status == "finished", status
    return time.perf_counter() - t0


def as_trial(store: RunStore, config: dict, name: str) -> tuple[float, float]:
    """The same run as the single trial of a study (one fixed value searched).

    Returns (the trial's wall time from ask to tell, the whole call including opening the study).
    """
    t0 = time.perf_counter()
    runner = StudyRunner(store, load_template("mlp"), "moons", config, space=[f"lr={{{config['lr']}}}"],
                         dataset_options=dict(DATA), settings=StudySettings(name=name, n_trials=1, pruner="none"))
    res = runner.run()
    assert res.states == {"complete": 1}, res.states
    t = runner.study.trials[0]
    return (t.datetime_complete - t.datetime_start).total_seconds(), time.perf_counter() - t0


def throughput(store: RunStore, config: dict, trials: int, workers: int, name: str) -> float:
    t0 = time.perf_counter()
    runner = StudyRunner(store, load_template("mlp"), "moons", config, space=["lr=1e-3..1e-1:log"],
                         dataset_options=dict(DATA),
                         settings=StudySettings(name=name, n_trials=trials, workers=workers, sampler="random",
                                                pruner="none"))
    res = runner.run()
    assert res.states.get("complete") == trials, res.states
    return trials / ((time.perf_counter() - t0) / 60)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--workers", type=int, default=None, help="the many-worker setting (default: jobs.max_jobs())")
    ap.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    a = ap.parse_args()
    config = {"epochs": a.epochs, "lr": 0.01, "batch_size": 32, "device": "cpu"}
    many = a.workers or jobs.max_jobs()
    conditions(f"Search: bench/bench_search.py --repeats {a.repeats} --epochs {a.epochs} --trials {a.trials}")
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="layerlab-bench-search-") as tmp:
        store = RunStore(tmp, actor=SYSTEM)
        t_alone, t_trial, t_call = [], [], []
        alone(store, config)  # warm-up, untimed: the first job also starts the workspace's warm launcher
        for i in range(a.repeats):
            t_alone.append(alone(store, config))
            tt, tc = as_trial(store, config, f"overhead-{i}")
            t_trial.append(tt)
            t_call.append(tc)
            print(f"repeat {i + 1}: alone {t_alone[-1]:.2f} s, as a trial {tt:.2f} s (whole call {tc:.2f} s)",
                  flush=True)
        ma, mt, mc = statistics.median(t_alone), statistics.median(t_trial), statistics.median(t_call)
        paired = [t / a_ for t, a_ in zip(t_trial, t_alone)]
        tpm1 = throughput(store, config, a.trials, 1, "tput-1")
        print(f"1 worker: {tpm1:.2f} trials/min", flush=True)
        tpmn = throughput(store, config, a.trials, many, f"tput-many-{many}")  # its own study, also when many == 1
        print(f"{many} workers: {tpmn:.2f} trials/min", flush=True)
    load1 = os.getloadavg()
    lines = [SECTION, "",
             f"`python bench/bench_search.py --repeats {a.repeats} --epochs {a.epochs} --trials {a.trials}"
             + (f" --workers {a.workers}" if a.workers else "") + "`; "
             f"{time.strftime('%Y-%m-%d', time.gmtime())}, commit {commit()}; {platform.processor() or platform.machine()}, {os.cpu_count()} cores, job limit {jobs.max_jobs()}, "
             f"load average {load0[0]:.1f} before / {load1[0]:.1f} after. MLP on moons (2000 samples), "
             f"{a.epochs} epochs, batch 32, CPU; each trial and each run is its own job process.", "",
             "| measure | value |", "|---|---|",
             f"| run alone as a job (wall time, median and spread) | {spread(t_alone, unit=' s')} |",
             f"| same run as a trial (wall time, ask to tell) | {spread(t_trial, unit=' s')} |",
             f"| **trial ÷ alone** (target ≤ 1.05), paired ratios | **{spread(paired, digits=3)}** |",
             f"| trial ÷ alone, ratio of the medians | {mt / ma:.3f} |",
             f"| one-trial study, whole call incl. opening the study and loading the data to check graphs | "
             f"{spread(t_call, unit=' s')}; ratio of medians to alone {mc / ma:.3f}× |",
             f"| trials per minute, 1 worker ({a.trials} trials; one study, a single value) | {tpm1:.2f} |",
             f"| trials per minute, {many} workers ({a.trials} trials; one study, a single value) | {tpmn:.2f} |",
             f"| speed-up (ratio of the two single values) | {tpmn / tpm1:.2f}× |", ""]
    text = "\n".join(lines)
    print(text)
    if a.write:
        write_section(SECTION, text)


if __name__ == "__main__":
    main()
