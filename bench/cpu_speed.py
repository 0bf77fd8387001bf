"""CPU speed of `layerlab train` against the plain PyTorch tutorial script (issue 20), side by side.

The tutorial is what a user writes instead: scikit-learn's digits, a TensorDataset + DataLoader (shuffle,
batch 64), the cnn template's architecture written by hand, Adam 3e-3, 30 epochs, test accuracy at the end
(:func:`tutorial`; ``python bench/cpu_speed.py --tutorial`` runs it alone as a whole process). Measured:

* ``whole``: the CLI ``layerlab train cnn --dataset digits --epochs 30 --early-stopping 0 --quiet`` (a fresh
  workspace per run) ÷ ``python bench/cpu_speed.py --tutorial`` (with torch's threads, and with
  ``OMP_NUM_THREADS=1``), whole processes, interleaved;
* ``loop``: in process, the trainer's 30 epochs (``Trainer.fit`` on the prepared dataset, a run folder as a
  real run has) ÷ the tutorial's 30-epoch loop, and the bare loop over the trainer's own model and choices
  (:func:`bare_seconds`, the floor: what the same steps cost without validation, curves and checkpoints), with
  the thread count each would use (the trainer:
  :func:`builder.jobs.queue.torch_threads`; the tutorial: torch's default, and also one thread), each measured in
  a fresh process after a 2-epoch warm-up (``--one KIND``), interleaved;
* ``--threads-rule``: seconds per training step of the templates (and a wider conv) at 1 and at every core,
  next to their multiply-adds per batch, the measurements behind :data:`builder.jobs.queue.THREADS_MACS_PER_CORE`.

Medians of ``--repeats`` interleaved rounds after a warm-up, each with its p10-p90 spread; a ratio is the median
(and p10-p90) of the per-round ratios. The machine's load average before and after is printed (other processes
share the CPU: the figures are noisy then). Never asserts a time.

    python bench/cpu_speed.py [--repeats 5] [--skip-whole] [--skip-loop] [--threads-rule]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EPOCHS = 30


def tutorial(epochs: int = EPOCHS, verbose: bool = True) -> float:
    """The plain PyTorch tutorial script's body; returns the seconds of its training loop."""
    import torch
    from sklearn.datasets import load_digits
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(0)
    d = load_digits()
    X = torch.tensor(d.data / 16.0, dtype=torch.float32).reshape(-1, 1, 8, 8)
    y = torch.tensor(d.target, dtype=torch.long)
    perm = torch.randperm(len(X))
    n_train = int(0.7 * len(X))
    tr, te = perm[:n_train], perm[n_train:]
    loader = DataLoader(TensorDataset(X[tr], y[tr]), batch_size=64, shuffle=True)
    model = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(128, 64), nn.ReLU(), nn.Dropout(0.2), nn.Linear(64, 10))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    loss_fn = nn.CrossEntropyLoss()
    t0 = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        total = 0.0
        for xb, yb in loader:
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
            total += loss.item()
        if verbose:
            print(f"epoch {epoch + 1}: loss {total / len(loader):.4f}")
    dt = time.perf_counter() - t0
    model.eval()
    with torch.no_grad():
        acc = (model(X[te]).argmax(1) == y[te]).float().mean().item()
    if verbose:
        print(f"test accuracy {acc:.3f}")
    return dt


def _timed(cmd: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=ROOT)
    return time.perf_counter() - t0


def _spread(v: list[float], unit: str = " s") -> str:
    """``median (p10-p90 low-high, n)`` of ``v``: :func:`bench.results.spread` (min-max below 5 values)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from bench.results import spread

    return spread(v, unit=unit)


def _ratio(a: list[float], b: list[float]) -> str:
    """The per-pair ratios a[i] / b[i] of interleaved runs, as :func:`_spread`."""
    return _spread([x / y for x, y in zip(a, b)], "")


def whole(repeats: int) -> tuple[list[float], list[float], list[float]]:
    """Whole-process seconds of the CLI, the tutorial script (torch's threads) and the tutorial script on one
    thread (``OMP_NUM_THREADS=1``), interleaved: one list per kind, index i = round i."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("OMP_NUM_THREADS", None)
    cli = [sys.executable, "-m", "builder", "train", "cnn", "--dataset", "digits", "--epochs", str(EPOCHS),
           "--early-stopping", "0", "--quiet"]
    tut = [sys.executable, str(Path(__file__).resolve()), "--tutorial"]
    runs: dict[str, list[float]] = {"cli": [], "tut": [], "tut1": []}
    kinds = list(runs)
    with tempfile.TemporaryDirectory() as d:
        for r in range(repeats + 1):  # the first round warms the file cache
            for kind in (kinds if r % 2 == 0 else kinds[::-1]):
                e = {**env, "LAYERLAB_WORKSPACE": f"{d}/ws{r}", **({"OMP_NUM_THREADS": "1"} if kind == "tut1" else {})}
                t = _timed(cli if kind == "cli" else tut, e)
                if r:
                    runs[kind].append(t)
    return tuple(runs.values())  # type: ignore[return-value]


def trainer_seconds(epochs: int = EPOCHS, **extra) -> float:
    """Seconds of ``Trainer.fit`` over the cnn template on digits (30 epochs, early stopping off), with a run
    folder as a real run has; the trainer picks its threads (:func:`builder.jobs.queue.torch_threads`)."""
    import builder
    from builder.runs.pipeline import build_model, prepare
    from builder.training.trainer import Trainer

    project, ds, cfg, report = prepare(builder.load_template("cnn"), "digits",
                                       {"epochs": epochs, "early_stopping": None, **extra}, with_report=True)
    model = build_model(project.graph, cfg.seed, report)
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        Trainer(model, ds, cfg, run_dir=d).fit()
        return time.perf_counter() - t0


def bare_seconds(epochs: int = EPOCHS) -> float:
    """Seconds of a bare loop over the trainer's own model and data, with what the trainer chooses (its thread
    count, channels_last, fused Adam, batch 64 by index): the step's compute without the trainer's bookkeeping
    (validation, curves, health, checkpoints), the floor for the trainer on this model."""
    import torch

    import builder
    from builder.jobs.queue import torch_threads
    from builder.runs.pipeline import build_model, prepare
    from builder.training.callbacks import ChannelsLast
    from builder.training.trainer import build_optimizer

    project, ds, cfg, report = prepare(builder.load_template("cnn"), "digits",
                                       {"epochs": epochs, "early_stopping": None}, with_report=True)
    model = build_model(project.graph, cfg.seed, report)
    if ChannelsLast.applies("auto", model, ds, torch.device("cpu")):
        model, ds = model.to(memory_format=torch.channels_last), ChannelsLast.convert(ds)
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc:
        model(ds.train.X[:2])
    torch.set_num_threads(torch_threads(fc.get_total_flops() // 2 * cfg.batch_size // 2, cap=torch.get_num_threads()))
    X, y, n, B = ds.train.X, ds.train.y, len(ds.train), cfg.batch_size
    opt, lossf = build_optimizer(model.parameters(), cfg), torch.nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen)
        for b in range(n // B + (n % B >= 2)):
            idx = perm[b * B:(b + 1) * B]
            loss = lossf(model(X[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return time.perf_counter() - t0


def one_loop(kind: str) -> float:
    """Seconds of one in-process measurement in this (fresh) process after a 2-epoch warm-up: ``trainer``, ``bare``
    (:func:`bare_seconds`), ``tutorial`` (torch's threads) or ``tutorial1`` (one thread)."""
    import torch

    if kind == "tutorial1":
        torch.set_num_threads(1)
    if kind == "trainer":
        trainer_seconds(2)
        return trainer_seconds()
    if kind == "bare":
        bare_seconds(2)
        return bare_seconds()
    tutorial(2, verbose=False)
    return tutorial(verbose=False)


def loop(repeats: int) -> tuple[list[float], list[float], list[float], list[float]]:
    """In-process seconds (one list per kind, index i = round i) of the trainer's 30 epochs, the tutorial loop's with torch's default threads and
    with one thread (the hand-written loop at its best on a small model), and the bare loop over the trainer's model
    (:func:`bare_seconds`: the floor without bookkeeping), interleaved, each in a fresh process:
    changing torch's thread count inside one process makes the next calls on more threads several times slower
    for a while (torch 2.13, OpenMP/oneDNN), which would favour whichever ran on one thread."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    runs: dict[str, list[float]] = {"trainer": [], "tutorial": [], "tutorial1": [], "bare": []}
    kinds = list(runs)
    for r in range(repeats):
        for kind in (kinds if r % 2 == 0 else kinds[::-1]):
            out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--one", kind], check=True,
                                 capture_output=True, text=True, env=env, cwd=ROOT).stdout
            runs[kind].append(float(out.strip().splitlines()[-1]))
    return tuple(runs.values())  # type: ignore[return-value]


def _conv_net(width: int, size: int):
    """A plain conv stack (3 convs of ``width`` channels on ``size``×``size``, 10 classes) for the wide cases."""
    from torch import nn

    return nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, width, 3, padding=1),
                         nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 10))


def _step_ms(model, x, y, threads: list[int], repeats: int) -> dict[int, float]:
    import torch

    opt = torch.optim.Adam(model.parameters(), 1e-3)
    lossf = torch.nn.CrossEntropyLoss()

    def step() -> None:
        out = model(x)
        out = out[0] if isinstance(out, tuple) else out
        opt.zero_grad()
        (lossf(out, y) if out.dim() == 2 and y is not None else out.float().pow(2).mean()).backward()
        opt.step()

    for n in threads:
        torch.set_num_threads(n)
        for _ in range(3):
            step()
    times: dict[int, list[float]] = {n: [] for n in threads}
    k = 10
    for r in range(repeats):
        for n in (threads if r % 2 == 0 else threads[::-1]):
            torch.set_num_threads(n)
            t0 = time.perf_counter()
            for _ in range(k):
                step()
            times[n].append((time.perf_counter() - t0) / k * 1e3)
    return {n: statistics.median(v) for n, v in times.items()}


def threads_rule(repeats: int) -> None:
    """Milliseconds per training step at 1 thread and at every core, per model, with its forward multiply-adds
    per batch (:mod:`builder.graph.cost` for the templates, torch's FLOP counter ÷ 2 for the plain conv stacks)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    import builder
    from builder.graph.cost import node_costs, total_macs
    from builder.runs.pipeline import build_model, prepare

    cores = os.cpu_count() or 1
    threads = [1, cores]
    print(f"{'model':<16} {'batch':>5} {'MACs/batch':>14} {'1 thread ms':>11} {f'{cores} threads ms':>12} "
          f"{'ratio':>6}")

    def show(name: str, batch: int, macs: int, ms: dict[int, float]) -> None:
        print(f"{name:<16} {batch:>5} {macs:>14,} {ms[1]:>11.2f} {ms[cores]:>12.2f} {ms[cores] / ms[1]:>6.2f}",
              flush=True)

    for name, batch in [("mlp", 64), ("autoencoder", 64), ("cnn", 64), ("lstm", 64), ("transformer", 64),
                        ("resnet", 64), ("cnn", 512), ("resnet", 256)]:
        project, ds, cfg, report = prepare(builder.load_template(name), None, {}, with_report=True)
        idx = torch.arange(batch) % len(ds.train)
        x = ds.train.X[idx]
        y = ds.train.y[idx] if ds.info.task == "multiclass" else None
        model = build_model(project.graph, 0, report)
        show(name, batch, total_macs(node_costs(report)) * batch, _step_ms(model, x, y, threads, repeats))
    for width, size, batch in [(32, 16, 64), (32, 32, 64), (64, 32, 64), (128, 32, 64)]:
        model = _conv_net(width, size)
        x, y = torch.randn(batch, 3, size, size), torch.randint(0, 10, (batch,))
        with FlopCounterMode(display=False) as fc:
            model(x)
        show(f"conv{width}@{size}", batch, fc.get_total_flops() // 2, _step_ms(model, x, y, threads, repeats))


def main() -> int:
    """Run the comparisons named by the flags; print ratios."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tutorial", action="store_true", help="run the tutorial script alone (whole process)")
    p.add_argument("--one", choices=("trainer", "bare", "tutorial", "tutorial1"),
                   help="one in-process measurement (seconds)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--skip-whole", action="store_true")
    p.add_argument("--skip-loop", action="store_true")
    p.add_argument("--threads-rule", action="store_true")
    a = p.parse_args()
    if a.tutorial:
        tutorial()
        return 0
    if a.one:
        sys.path.insert(0, str(ROOT))
        print(f"{one_loop(a.one):.4f}")
        return 0
    sys.path.insert(0, str(ROOT))
    import platform

    import torch

    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"load average before {os.getloadavg()[0]:.2f}")
    if a.threads_rule:
        threads_rule(a.repeats)
    if not a.skip_loop:
        t, u, u1, f = loop(a.repeats)
        print(f"in process, 30 epochs, {a.repeats} interleaved rounds: trainer {_spread(t)}, tutorial loop "
              f"{_spread(u)} (torch's threads), ratio {_ratio(t, u)}; tutorial loop on 1 thread {_spread(u1)}, ratio "
              f"{_ratio(t, u1)}; bare loop over the trainer's model {_spread(f)}: trainer / bare {_ratio(t, f)}, "
              f"bare / tutorial {_ratio(f, u)} (the floor of the first ratio)", flush=True)
    if not a.skip_whole:
        c, u, u1 = whole(a.repeats)
        print(f"whole process, {a.repeats} interleaved rounds after one warm-up round: layerlab train {_spread(c)}, "
              f"tutorial script {_spread(u)} (torch's threads), ratio {_ratio(c, u)}; tutorial script on 1 thread "
              f"{_spread(u1)}, ratio {_ratio(c, u1)}", flush=True)
    print(f"load average after {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
