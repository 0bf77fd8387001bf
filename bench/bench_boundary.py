"""Decision-boundary cost per epoch: training epochs with and without the DecisionBoundary callback, side by
side (interleaved repeats after an untimed warm-up fit, medians), on the 2-D toy datasets with the MLP
template.

    python bench/bench_boundary.py [--rounds 5] [--epochs 20] [--resolution 40]

Prints the conditions it ran under (bench/results.py), then per dataset the median epoch time without the callback, the median grid time per epoch (the
callback's own clock), their ratio against the plain fit (target < 5 % of an epoch), the share within the fit
that drew the grids (grid seconds / that fit's other seconds: what the callback's 5 % budget bounds, free of
the noise between fits), how many epochs got a grid (the callback skips epochs to keep within the budget), the
paired ratio of fit times with/without (noisy: +-10 % between identical fits on a loaded machine) and the size
of one grid as JSON (what the job's run store writes with the epoch). Each timing and timing ratio is the
median over the rounds with its spread (p10-p90; min-max below 5 rounds).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

import builder  # noqa: E402
from bench.results import conditions, spread  # noqa: E402
from builder.data import load_dataset  # noqa: E402
from builder.data.compat import adapt_graph  # noqa: E402
from builder.interpret.boundary import DecisionBoundary  # noqa: E402
from builder.training.trainer import Trainer  # noqa: E402


def epoch_time(graph, ds, epochs: int, cb: DecisionBoundary | None) -> tuple[float, float, int, float]:
    """One fit: (seconds per epoch, grid seconds per epoch, grids drawn, grid share of the fit's other time)."""
    torch.manual_seed(0)
    model = builder.compile_graph(graph)
    cfg = {"epochs": epochs, "early_stopping": None, "checkpoint_every": 0, "lr": 0.01}
    t0 = time.perf_counter()
    Trainer(model, ds, cfg, callbacks=[cb] if cb else []).fit()
    wall = time.perf_counter() - t0
    if cb is None:
        return wall / epochs, 0.0, 0, 0.0
    return wall / epochs, cb.seconds / epochs, cb.drawn, cb.seconds / (wall - cb.seconds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--resolution", type=int, default=40)
    args = ap.parse_args()
    torch.set_num_threads(max(1, int(os.environ.get("LAYERLAB_TORCH_THREADS", "1"))))
    proj = builder.load_template("mlp")
    conditions(f"Decision boundary: bench/bench_boundary.py --rounds {args.rounds} --epochs {args.epochs} "
               f"--resolution {args.resolution}")
    print(f"MLP template, {args.epochs} epochs per fit, grid {args.resolution}x{args.resolution}, "
          f"torch threads {torch.get_num_threads()}, {args.rounds} interleaved rounds: median (spread)")
    for name in ("moons", "circles", "spirals", "xor", "blobs"):
        ds = load_dataset(name)
        graph = adapt_graph(proj.graph, ds.info)  # blobs has 3 classes
        epoch_time(graph, ds, args.epochs, DecisionBoundary(resolution=args.resolution))  # warm-up, untimed
        plain, with_cb, grid, drawn, own = [], [], [], [], []
        for _ in range(args.rounds):
            plain.append(epoch_time(graph, ds, args.epochs, None)[0])
            cb = DecisionBoundary(resolution=args.resolution)
            t, g, n, share = epoch_time(graph, ds, args.epochs, cb)
            with_cb.append(t)
            grid.append(g)
            drawn.append(n)
            own.append(share)
        kb = len(json.dumps(cb.last)) / 1e3
        med = statistics.median
        print(f"{name:8s} train {len(ds.train):5d} · epoch {spread(plain, 1e3, ' ms')} without, "
              f"{spread(with_cb, 1e3, ' ms')} with the boundary · grid {spread(grid, 1e3, ' ms', 3)}/epoch = "
              f"{spread([g / p for g, p in zip(grid, plain)], 100, ' %', 1)} of an epoch · within its fit "
              f"{spread(own, 100, ' %', 1)} · grids drawn {med(drawn):.0f}/{args.epochs} · paired ratio with/without "
              f"{spread([w / p for w, p in zip(with_cb, plain)], digits=3)} · JSON {kb:.1f} KB/grid", flush=True)

if __name__ == "__main__":
    main()
