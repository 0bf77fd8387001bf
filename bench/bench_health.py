"""Training-health overhead (builder.training.health) side by side, and the doctor's flags (builder.interpret.doctor).

Overhead: per template, runs of ``--epochs`` epochs with ``health_every=0`` and with the default interval are
interleaved (``--repeats`` pairs, the order alternating), each writing into a fresh run folder as a real run does
(checkpoint every epoch, health.json every epoch); prints the conditions it ran under, the median seconds per
epoch of each and the median of the per-pair ratios, each with its spread (p10-p90; min-max below 5 pairs).
With ``--doctor``: every template's default run (its own epochs and early stopping) and the two broken networks
of tests/training/test_health.py, with the findings' count (false alarms on the templates). Never asserts a time.

    python bench/bench_health.py [--templates mlp cnn] [--epochs 3] [--repeats 5] [--device cpu] [--doctor]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

import builder  # noqa: E402
from bench.results import conditions, spread  # noqa: E402
from builder.interpret.doctor import diagnose  # noqa: E402
from builder.runs.pipeline import build_model, prepare  # noqa: E402
from builder.training.config import HEALTH_EVERY  # noqa: E402
from builder.training.health import HealthMonitor  # noqa: E402
from builder.training.trainer import Trainer  # noqa: E402


def epoch_seconds(project, ds, cfg, health_every: int, epochs: int, device: str) -> float:
    """Seconds per epoch of one fresh run (setup excluded: timed from the first to the last epoch event)."""
    model = build_model(project.graph, cfg.seed)
    stamps: list[float] = []
    conf = {**cfg.model_dump(), "epochs": epochs, "early_stopping": None, "health_every": health_every,
            "device": device}
    with tempfile.TemporaryDirectory() as d:
        t = Trainer(model, ds, conf, run_dir=d, on_event=lambda ev: ev["type"] in ("epoch", "status")
                    and stamps.append(time.perf_counter()))
        t.fit()
    # stamps: running status, one per epoch, finished status
    return (stamps[-2] - stamps[0]) / epochs


def overhead(names: list[str], epochs: int, repeats: int, device: str) -> None:
    conditions(f"Training doctor overhead: bench/bench_health.py --templates {' '.join(names)} --epochs {epochs} "
               f"--repeats {repeats} --device {device}")
    print(f"health_every {HEALTH_EVERY} vs 0; {epochs} epochs per run, {repeats} interleaved pairs, device {device}; "
          "median (spread)")
    print("| template | steps/epoch | off, s/epoch | on, s/epoch | on ÷ off, per pair |\n|---|---:|---:|---:|---:|")
    for name in names:
        project, ds, cfg = prepare(builder.load_template(name), None)
        off, on = [], []
        epoch_seconds(project, ds, cfg, HEALTH_EVERY, 1, device)  # warm-up
        for r in range(repeats):
            order = (0, HEALTH_EVERY) if r % 2 == 0 else (HEALTH_EVERY, 0)
            for every in order:
                (on if every else off).append(epoch_seconds(project, ds, cfg, every, epochs, device))
        steps = -(-len(ds.train) // cfg.batch_size)
        print(f"| {name} | {steps} | {spread(off, digits=4)} | {spread(on, digits=4)} | "
              f"{spread([b / a for a, b in zip(off, on)], digits=3)} |", flush=True)


def broken_networks() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "training"))
    from test_health import stack  # the networks of the test

    cases = {"8 x Linear+Sigmoid, Adam lr 0.5": (stack("Sigmoid", 8), {"lr": 0.5}, None),
             "3 x Linear+ReLU, fc1 bias -5": (stack("ReLU", 3), {}, "fc1")}
    for title, (proj, over, bias_node) in cases.items():
        project, ds, cfg, report = prepare(proj, "moons", {"epochs": 2, "early_stopping": None, **over},
                                           with_report=True)
        model = build_model(project.graph, cfg.seed, report)
        if bias_node:
            with torch.no_grad():
                model.get_submodule(model.layerlab_names[bias_node]).bias.fill_(-5.0)
        t = Trainer(model, ds, cfg)
        t.fit()
        log = next(cb for cb in t.callbacks if isinstance(cb, HealthMonitor)).log
        found = diagnose(log, cfg.model_dump())
        print(f"{title}: {len(found)} findings in 2 epochs: "
              + ", ".join(f"{f.node} {f.rule} ({f.level})" for f in found))


def false_alarms() -> None:
    total = 0
    for t in builder.list_templates():
        project, ds, cfg = prepare(builder.load_template(t["name"]), None)
        trainer = Trainer(build_model(project.graph, cfg.seed), ds, cfg)
        t0 = time.perf_counter()
        res = trainer.fit()
        log = next(cb for cb in trainer.callbacks if isinstance(cb, HealthMonitor)).log
        found = diagnose(log, cfg.model_dump())
        total += len(found)
        print(f"{t['name']:<12} {res.epochs_completed:>3} epochs {len(log.samples):>4} samples "
              f"{time.perf_counter() - t0:6.1f} s  findings: {[f'{f.node} {f.rule}' for f in found] or 'none'}",
              flush=True)
    print(f"false alarms over {len(builder.list_templates())} templates' default runs: {total}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--templates", nargs="*", default=["mlp", "cnn", "resnet", "transformer"])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--doctor", action="store_true", help="also the broken networks and the templates' false alarms")
    a = ap.parse_args(argv)
    overhead(a.templates, a.epochs, a.repeats, a.device)
    if a.doctor:
        broken_networks()
        false_alarms()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
