"""Latency the model probe adds to the Explain page (issue 21), CPU.

For a trained run per template (MLP on moons, CNN on digits), the same questions are asked of an in-process
:class:`~builder.interpret.session.ExplainSession` and of a :class:`~builder.jobs.probe.ProbeSession`
(the sandboxed child):

0. a page session's child start, an exchange worker's round trip and Build › ONNX of the cnn template: forked
   from the server process's warm zygote (builder.process.zygote) against a fresh interpreter
   (``LAYERLAB_SANDBOX_ZYGOTE=0``), interleaved rounds with their spread and ratio, and the zygote's own start
   (once per server process);
1. first question: starting the child (torch + Captum imported, limits set) and opening the run there
   (weights, dataset, the split's predictions), against opening it in process;
2. warm questions: a sample (data only), Saliency, Integrated Gradients (50 steps), a node's activations,
   Try it (predict + Saliency): medians of interleaved repeats with their spread (p10-p90; min-max below 5
   repeats), in process vs through the probe; the added latency (framing, JSON + npz both ways, a pipe round
   trip) is the median of the per-repeat differences, with its spread.

The first-question figures are one measurement each per model (single values, printed as such); the spread of
the child's start and of a fresh child's first question over repeats is printed by ``bench/doc_figures.py
--only probe``. The conditions line (bench/results.py) comes first.

Run::

    .venv/bin/python bench/bench_probe.py [--repeats 15] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("LAYERLAB_TORCH_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import builder  # noqa: E402
from bench.results import conditions, spread  # noqa: E402
from builder.data.access import SYSTEM  # noqa: E402
from builder.interpret.session import ExplainSession, open_run, run_graph  # noqa: E402
from builder.jobs.probe import ModelProbe, ProbeSession  # noqa: E402
from builder.runs.pipeline import run_training  # noqa: E402
from builder.runs.store import RunStore  # noqa: E402

warnings.filterwarnings("ignore")

CASES = (("mlp", "moons", 2), ("cnn", "digits", 1))


def _t(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _questions(xs, node: str) -> dict:
    x = xs.sample(3)
    ask = getattr(xs, "_ask", None)  # the probe memoises data questions: ask past the memo for the round trip
    return {"a sample (data only, one round trip)": (lambda: ask("sample_array", 5)) if ask else
            (lambda: xs.sample_array(5)),
            "saliency": lambda: xs.explain(5, "saliency"),
            "integrated gradients, 50 steps": lambda: xs.explain(5, "integrated_gradients", steps=50),
            "activations of a node": lambda: xs.activation(5, node),
            "try it (predict + saliency)": lambda: xs.try_input(x, "saliency")}


def bench(repeats: int) -> list[dict]:
    import torch

    torch.set_num_threads(1)
    out = []
    with tempfile.TemporaryDirectory() as ws:
        store = RunStore(ws, actor=SYSTEM)
        for template, dataset, epochs in CASES:
            rid = run_training(builder.load_template(template), dataset, {"epochs": epochs, "seed": 0},
                               store=store).run_id
            t = time.perf_counter()
            model, ds = open_run(store, store.get(rid))
            local = ExplainSession(model, ds, "test", rid, run_graph(store, rid))
            open_local = time.perf_counter() - t
            probe = ModelProbe()
            t = time.perf_counter()
            probe._ensure()
            start = time.perf_counter() - t
            t = time.perf_counter()
            remote = ProbeSession(probe, store, rid, "test")
            hello = time.perf_counter() - t
            node = local.default_activation_node(local.activation_nodes())
            ql, qr = _questions(local, node), _questions(remote, node)
            rows = {name: ([], []) for name in ql}
            for name in ql:  # warm-up
                ql[name]()
                qr[name]()
            for _ in range(repeats):
                for name in ql:
                    rows[name][0].append(_t(ql[name]))
                    rows[name][1].append(_t(qr[name]))
            t = time.perf_counter()
            ProbeSession(probe, store, rid, "test", version="newer weights")
            reopen = time.perf_counter() - t
            probe.close()
            out.append({"model": f"{template} on {dataset}", "child_start_s": start, "open_run_probe_s": hello,
                        "reopen_same_child_s": reopen,
                        "open_run_in_process_s": open_local,
                        "warm_ms": {n: (1e3 * statistics.median(a), 1e3 * statistics.median(b))
                                    for n, (a, b) in rows.items()},
                        "warm_spread_ms": {n: (spread(a, 1e3), spread(b, 1e3),
                                               spread([y - x for x, y in zip(a, b)], 1e3))
                                           for n, (a, b) in rows.items()}})
    return out


def starts(repeats: int) -> dict:
    """A page session's child start (``ModelProbe._ensure``: the child running, torch and Captum imported, limits
    set), forked from this process's warm zygote vs a fresh interpreter (``LAYERLAB_SANDBOX_ZYGOTE=0``),
    interleaved; and the zygote's own start, once per server process (the first child of a process)."""
    from builder.interchange import worker
    from builder.process import zygote

    zygote.shutdown()
    os.environ.pop(zygote.ENV_ZYGOTE, None)
    first = _t(worker.warm_sandbox)  # the zygote's start (a server's warm-up), once per server process

    worker.TEST_TASKS["noop"] = f"{__name__ if __name__ != '__main__' else 'bench.bench_probe'}:_noop"
    project = builder.load_template("cnn").model_dump_json()
    times: dict[str, list[float]] = {"fork": [], "fresh": [], "worker fork": [], "worker fresh": [],
                                     "export fork": [], "export fresh": []}
    for _ in range(repeats):
        for mode in times:
            os.environ[zygote.ENV_ZYGOTE] = "0" if mode.endswith("fresh") else "1"
            if mode.startswith("worker"):  # an exchange worker's whole round trip for a task that does nothing
                times[mode].append(_t(lambda: worker.run_isolated("noop", 60)))
                continue
            if mode.startswith("export"):  # Build › ONNX: the cnn template exported, checked and compared
                times[mode].append(_t(lambda: worker.export_onnx_bytes(project)))
                continue
            p = ModelProbe()
            times[mode].append(_t(p._ensure))
            p.close()
    os.environ.pop(zygote.ENV_ZYGOTE, None)
    worker.TEST_TASKS.pop("noop")
    return {"first_of_process_s": first, **times}


def _noop() -> None:
    """The exchange worker's task in :func:`starts` (it measures the worker's start and answer, nothing else)."""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--starts", type=int, default=7, help="interleaved child starts, fork vs fresh interpreter")
    ap.add_argument("--json")
    a = ap.parse_args()
    import torch

    torch.set_num_threads(1)  # before the conditions line, which reports it
    conditions(f"Model probe: bench/bench_probe.py --repeats {a.repeats} --starts {a.starts}")
    st = starts(a.starts)
    ratio = [f / c for f, c in zip(st["fork"], st["fresh"])]
    print(f"A page session's child start, {a.starts} interleaved rounds: forked from the warm zygote "
          f"{spread(st['fork'], 1, ' s')}, a fresh interpreter {spread(st['fresh'], 1, ' s')}; fork ÷ fresh per round "
          f"{spread(ratio, 1, '', 3)}. The zygote's own start (once per server process, at its warm-up): "
          f"{st['first_of_process_s']:.2f} s (one measurement)")
    wratio = [f / c for f, c in zip(st["worker fork"], st["worker fresh"])]
    print(f"An exchange worker's round trip (a task that does nothing), the same rounds: forked "
          f"{spread(st['worker fork'], 1, ' s')}, a fresh interpreter {spread(st['worker fresh'], 1, ' s')}; "
          f"fork ÷ fresh per round {spread(wratio, 1, '', 3)}")
    eratio = [f / c for f, c in zip(st["export fork"], st["export fresh"])]
    print(f"Build › ONNX of the cnn template in the exchange worker (export, onnx.checker, onnxruntime comparison), "
          f"the same rounds: forked {spread(st['export fork'], 1, ' s')}, a fresh interpreter "
          f"{spread(st['export fresh'], 1, ' s')}; fork ÷ fresh per round {spread(eratio, 1, '', 3)}")
    res = bench(a.repeats)
    print(f"{platform.machine()} {platform.system()}, {os.cpu_count()} cores, torch threads 1; the first-question "
          "figures are single measurements, the warm ones median (spread) of the repeats")
    for r in res:
        print(f"\n{r['model']}: child start {r['child_start_s']:.2f} s; opening the run there "
              f"{r['open_run_probe_s']:.2f} s (in process {r['open_run_in_process_s']:.2f} s); opening it again (new "
              f"weights) in the same child {r['reopen_same_child_s']:.2f} s")
        print("| question | in process ms | probe ms | added ms, per repeat |\n|---|---:|---:|---:|")
        for n, (a_, b, d) in r["warm_spread_ms"].items():
            print(f"| {n} | {a_} | {b} | {d} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
