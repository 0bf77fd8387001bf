"""Benchmark of the explainability library (issue 5), CPU.

1. Integrated Gradients, 50 steps, one digits image, CNN template (target < 0.2 s).
2. Attention maps (per-head capture + rollout), one sample, transformer template (target < 0.1 s).
3. Live attributions' cost on epoch time: the CNN template trained on digits with and without
   ``LiveAttributions`` (target < 10 %).

Timings are medians of interleaved repeats (A, B, A, B, ...) after a warm-up, each with its spread (p10-p90;
min-max below 5 values), after the conditions they ran under (bench/results.py). Run::

    .venv/bin/python bench/bench_explain.py [--repeats 15] [--epochs 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

from builder.data import load_dataset
from builder.graph.compile import compile_graph, example_inputs
from builder.graph.templates import load_template
from builder.interpret.attention import attention_rollout, capture_attention
from builder.interpret.attributions import explain
from builder.interpret.live import LiveAttributions
from builder.training.trainer import Trainer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.results import conditions, spread  # noqa: E402

warnings.filterwarnings("ignore", message=".*(require gradients|non-linear).*")


def _model(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return compile_graph(load_template(name).graph).eval()


def _time(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench_ig(repeats: int) -> dict:
    """IG with 50 steps on one digits image through ``explain`` and through Captum directly."""
    from captum.attr import IntegratedGradients

    model = _model("cnn")
    x = load_dataset("digits", seed=0).test.X[:1]
    target = int(model(x).argmax(1))
    ig = IntegratedGradients(model)
    runs = {
        "explain": lambda: explain(model, x, "integrated_gradients", n_steps=50),
        "captum": lambda: ig.attribute(x, baselines=torch.zeros_like(x), target=target, n_steps=50,
                                       return_convergence_delta=True),
    }
    times: dict[str, list[float]] = {k: [] for k in runs}
    for fn in runs.values():  # warm-up
        fn()
    for _ in range(repeats):
        for k, fn in runs.items():
            times[k].append(_time(fn))
    return _summary(times)


def bench_attention(repeats: int) -> dict:
    """Per-head maps of both encoder layers plus rollout, one 16-token sample."""
    model = _model("transformer")
    x = example_inputs(model, 1, seed=0)[0]
    runs = {
        "capture": lambda: capture_attention(model, x),
        "capture+rollout": lambda: attention_rollout(capture_attention(model, x)),
    }
    times: dict[str, list[float]] = {k: [] for k in runs}
    for fn in runs.values():
        fn()
    for _ in range(repeats):
        for k, fn in runs.items():
            times[k].append(_time(fn))
    return _summary(times)


def _summary(times: dict[str, list[float]]) -> dict:
    """Per variant: the median seconds and the printed ``median (spread, n)`` in ms."""
    return {k: {"median_s": statistics.median(v), "ms": spread(v, 1e3, " ms", 3)} for k, v in times.items()}


def _fit(live: LiveAttributions | None, epochs: int, ds) -> tuple[list[float], list[float]]:
    """Train the CNN template; returns the seconds between consecutive epoch events and the callback's."""
    torch.manual_seed(0)
    model = compile_graph(load_template("cnn").graph)
    config = {"epochs": epochs, "device": "cpu", "checkpoint_every": 0, "batch_size": 64, "seed": 0}
    stamps: list[float] = []

    def on_event(ev: dict) -> None:
        if ev.get("type") == "epoch":
            stamps.append(time.perf_counter())

    Trainer(model, ds, config, callbacks=[live] if live else [], on_event=on_event).fit()
    # an epoch = training steps + validation + callbacks; the first one also pays the start-up
    return [b - a for a, b in zip(stamps, stamps[1:])], list(live.seconds[1:]) if live else []


def bench_live(repeats: int, epochs: int, settings: dict[str, dict]) -> dict:
    """Cost of live attributions on epoch time, two ways.

    * ``overhead``: median epoch time with the callback over median epoch time without it (fits
      interleaved off, setting 1, setting 2, ...); sensitive to machine load. Its spread is over the
      rounds: each round's median epoch with the callback over the same round's without.
    * ``in_run``: within each epoch of the same fit, callback seconds / (epoch seconds - callback
      seconds); both sides see the same load, so this is the steadier figure.
    """
    ds = load_dataset("digits", seed=0)
    variants: dict[str, dict | None] = {"off": None, **settings}
    per_epoch: dict[str, list[float]] = {k: [] for k in variants}
    callback_s: dict[str, list[float]] = {k: [] for k in variants}
    ratios: dict[str, list[float]] = {k: [] for k in variants}
    per_round: dict[str, list[float]] = {k: [] for k in variants}
    _fit(None, 2, ds)  # warm-up
    for _ in range(repeats):
        for k, opts in variants.items():
            live = LiveAttributions(**opts) if opts is not None else None
            times, secs = _fit(live, epochs, ds)
            per_epoch[k].extend(times)
            per_round[k].append(statistics.median(times))
            callback_s[k].extend(secs)
            ratios[k].extend(c / (t - c) for t, c in zip(times, secs))
    base = statistics.median(per_epoch["off"])
    out: dict = {"off": {"epoch_s": base, "epoch": spread(per_epoch["off"], 1.0, " s", 3)}}
    for k in settings:
        med = statistics.median(per_epoch[k])
        rounds = [a / b - 1 for a, b in zip(per_round[k], per_round["off"])]
        out[k] = {"epoch_s": med, "epoch": spread(per_epoch[k], 1.0, " s", 3), "overhead": med / base - 1,
                  "overhead_per_round": spread(rounds, 100, " %", 1),
                  "callback_s": statistics.median(callback_s[k]), "callback": spread(callback_s[k], 1.0, " s", 3),
                  "in_run": statistics.median(ratios[k]), "in_run_spread": spread(ratios[k], 100, " %", 1)}
    out["train_samples"] = len(ds.train)
    out["val_samples"] = len(ds.val)
    return out


LIVE_SETTINGS = {
    "ig50 x4": {"method": "integrated_gradients", "n_samples": 4, "n_steps": 50},
    "ig16 x4 (default)": {"method": "integrated_gradients", "n_samples": 4},
    "saliency x4": {"method": "saliency", "n_samples": 4},
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--live-repeats", type=int, default=5)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--json", default=None)
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    conditions(f"Explainability: bench/bench_explain.py --repeats {args.repeats} --live-repeats "
               f"{args.live_repeats} --epochs {args.epochs}")
    info = {"torch": torch.__version__, "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
            "cpu": platform.processor() or platform.machine(), "loadavg_start": os.getloadavg()}
    res = {"env": info, "ig": bench_ig(args.repeats), "attention": bench_attention(args.repeats),
           "live": bench_live(args.live_repeats, args.epochs, LIVE_SETTINGS)}
    res["env"]["loadavg_end"] = os.getloadavg()
    print(json.dumps(res, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
