"""Pruning and adversarial robustness figures for the CNN template on digits (issue 19).

1. Per seed (default 0, 1, 2): train the CNN template on digits (its own settings), prune 50 % of the channels
   of every convolution (structured, L1) and fine-tune 5 epochs as a new run (prune_run's fine-tune defaults:
   cosine schedule from 3x the learning rate, no early stopping): test accuracy before/after, parameters,
   weights-file size and CPU latency (batch 32, median of 50 passes) before/after; the median change over the
   seeds. The first seed's pruned graph is exported to .py and to ONNX (onnxruntime's outputs vs PyTorch's).
2. Per seed: FGSM accuracy at ε = 0, 0.05, 0.1, 0.2 on the test split (inputs clamped per channel to the training
   range), checked against the plain sign attack written out here; PGD (10 steps) at the same ε; then the median
   (min-max) over the seeds, and the conditions (threads, cores, load average at the start and the end).

    python bench/prune_robustness.py [--seeds 0,1,2] [--workspace DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402


def _spread(values: list[float]) -> str:
    """``median (min-max)`` of a few seeds' values (too few for percentiles)."""
    fmt = "{:.4f}" if any(isinstance(v, float) for v in values) else "{}"
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def main(argv: list[str] | None = None) -> int:
    from builder.data.access import SYSTEM
    from builder.graph.project import load_project
    from builder.graph.templates import load_template
    from builder.interchange.onnx_export import export_onnx
    from builder.interchange.python_export import export_python
    from builder.interpret.robustness import input_bounds, robustness_run
    from builder.runs.pipeline import load_run, run_training
    from builder.runs.prune_run import prune_run
    from builder.runs.store import RunStore
    from builder.training.prune import latency_text

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (the first one also for robustness)")
    ap.add_argument("--workspace", default=None)
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    store = RunStore(a.workspace or tempfile.mkdtemp(prefix="prune-bench-"), actor=SYSTEM)

    seeds = [int(v) for v in a.seeds.split(",") if v.strip()]
    deltas, first, base_ids = [], None, []
    load0 = os.getloadavg()
    for seed in seeds:
        base = run_training(load_template("cnn"), "digits", {"seed": seed}, store)
        print(f"seed {seed}: trained {base.run_id}: {base.epochs_completed} epochs, test accuracy "
              f"{base.test['accuracy']:.4f}")
        rep = prune_run(store, base.run_id, 0.5, nodes=["conv1", "conv2"], finetune_epochs=5, latency_repeats=50)
        for line in rep.lines():
            print("  " + line)
        b, f = rep.before, rep.after
        deltas.append((f["test"]["accuracy"] - b["test"]["accuracy"]) * 100)
        print(f"FIGURE pruning seed {seed}: accuracy {b['test']['accuracy']:.4f} -> {f['test']['accuracy']:.4f} "
              f"(delta {deltas[-1]:+.2f} points), params {b['params']:,} -> {f['params']:,} "
              f"({f['params'] / b['params']:.3f}x), weights {b['weights_bytes']:,} -> {f['weights_bytes']:,} bytes, "
              f"CPU latency {latency_text(rep.to_dict())}")
        first = first or (base, rep)
        base_ids.append(base.run_id)
    med = statistics.median(deltas)
    print(f"FIGURE pruning median over seeds {seeds}: {med:+.2f} points (min {min(deltas):+.2f}, max "
          f"{max(deltas):+.2f}; within 1 point: {med >= -1.0}); per seed {', '.join(f'{d:+.2f}' for d in deltas)}")
    base, rep = first

    pruned = load_project(store.get(rep.run_id)["project"])
    model, ds = load_run(store, rep.run_id)
    ns: dict = {}
    exec(compile(export_python(pruned), "<pruned>", "exec"), ns)  # noqa: S102
    exported = ns["Model"]().eval()
    exported.load_state_dict(model.state_dict())
    with torch.no_grad():
        py_diff = float((exported(ds.test.X) - model(ds.test.X)).abs().max())
    onnx = export_onnx(pruned, Path(store.workspace) / "pruned.onnx", model.state_dict())
    print(f"FIGURE export: .py max |diff| {py_diff:.2e}; ONNX vs onnxruntime max |diff| {onnx.max_abs_diff:.2e}")

    eps = [0, 0.05, 0.1, 0.2]
    per_seed = {"fgsm": [], "plain": [], "pgd": [], "flips": []}  # one row per seed, one value per eps
    for seed, run_id in zip(seeds, base_ids, strict=True):
        fg = robustness_run(store, run_id, eps, method="fgsm")
        pgd = robustness_run(store, run_id, eps, method="pgd", steps=10, save=False)
        model, ds = load_run(store, run_id)
        lo, hi = input_bounds(ds.train.X)
        direct = []  # the plain sign attack written out here: no gradient threshold, clamped per channel
        for e in eps:
            x = ds.test.X.clone().requires_grad_()
            loss = torch.nn.functional.cross_entropy(model(x), ds.test.y, reduction="sum")
            (g,) = torch.autograd.grad(loss, x)
            adv = torch.clamp(ds.test.X + e * g.sign(), lo, hi)
            with torch.no_grad():
                direct.append(float((model(adv).argmax(1) == ds.test.y).float().mean()))
        print(f"FIGURE robustness seed {seed} (n={fg.n}, bounds per channel [{float(lo.min()):g}, "
              f"{float(hi.max()):g}]):")
        for e, acc_f, acc_d, acc_p, fl in zip(eps, fg.accuracy, direct, pgd.accuracy, fg.flips):
            print(f"  eps {e:<5g} FGSM {acc_f:.4f} (plain sign attack {acc_d:.4f}, |diff| {abs(acc_f - acc_d):.1e})  "
                  f"PGD-10 {acc_p:.4f}  flipped {fl['count']}")
        per_seed["fgsm"].append(fg.accuracy)
        per_seed["plain"].append(direct)
        per_seed["pgd"].append(pgd.accuracy)
        per_seed["flips"].append([fl["count"] for fl in fg.flips])
    print(f"FIGURE robustness median (min-max) over seeds {seeds}:")
    for k, e in enumerate(eps):
        cols = {name: _spread([row[k] for row in rows]) for name, rows in per_seed.items()}
        print(f"  eps {e:<5g} FGSM {cols['fgsm']}  plain sign attack {cols['plain']}  PGD-10 {cols['pgd']}  "
              f"flipped {cols['flips']}")
    print(f"FIGURE conditions: {torch.get_num_threads()} torch thread, {os.cpu_count()} cores, load average "
          f"{load0[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
