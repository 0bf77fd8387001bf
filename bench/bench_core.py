"""Core benchmarks (issue 2), printed as ratios measured side by side in one run.

1. Training step (forward, backward, optimizer step) of a compiled template ÷ a hand-written nn.Module of
   the same architecture, MLP and CNN, on CPU: medians of interleaved repeats. Target ≤ 1.02.
2. validate + infer_shapes + compile_graph time for 10-, 100- and 1000-node graphs. Targets: < 50 ms at
   100 nodes, < 500 ms at 1000, growing linearly.

Every timing is printed as its median with the spread of the repeats (p10-p90) and the conditions it ran under
(threads, load before and after).

Run: python bench/bench_core.py [--repeats N]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path

import torch
from torch import nn

from builder import compile_graph, infer_shapes, load_template, validate
from builder.graph.shapes import _count_params

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.results import conditions, spread  # noqa: E402


class HandMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.act1 = nn.Linear(2, 32), nn.ReLU()
        self.fc2, self.act2 = nn.Linear(32, 32), nn.ReLU()
        self.head = nn.Linear(32, 2)

    def forward(self, x):
        return self.head(self.act2(self.fc2(self.act1(self.fc1(x)))))


class HandCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.relu1, self.pool1 = nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)
        self.conv2, self.relu2, self.pool2 = nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)
        self.flatten, self.fc, self.relu3 = nn.Flatten(), nn.Linear(128, 64), nn.ReLU()
        self.dropout, self.head = nn.Dropout(0.2), nn.Linear(64, 10)

    def forward(self, x):
        x = self.pool1(self.relu1(self.conv1(x)))
        x = self.pool2(self.relu2(self.conv2(x)))
        return self.head(self.dropout(self.relu3(self.fc(self.flatten(x)))))


def _stepper(model: nn.Module, x: torch.Tensor, y: torch.Tensor):
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
    return step


def _time(fn, n: int) -> float:
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n


def bench_step(repeats: int) -> list[tuple[str, list[float], list[float], list[float]]]:
    rows = []
    for name, hand_cls, x, y in (("MLP", HandMLP, torch.randn(64, 2), torch.randint(0, 2, (64,))),
                                 ("CNN", HandCNN, torch.randn(64, 1, 8, 8), torch.randint(0, 10, (64,)))):
        torch.manual_seed(0)
        compiled = compile_graph(load_template(name.lower()).graph)
        hand = hand_cls()
        hand.load_state_dict(compiled.state_dict())  # same weights, same work
        steps = {"compiled": _stepper(compiled, x, y), "hand": _stepper(hand, x, y)}
        for s in steps.values():
            _time(s, 20)  # warm-up
        times = {"compiled": [], "hand": []}
        inner = 50 if name == "MLP" else 20
        for r in range(repeats):  # interleaved, alternating which goes first
            order = ("compiled", "hand") if r % 2 == 0 else ("hand", "compiled")
            for k in order:
                times[k].append(_time(steps[k], inner))
        ratios = [a / b for a, b in zip(times["compiled"], times["hand"])]
        rows.append((name, times["compiled"], times["hand"], ratios))
    return rows


def chain_graph(n: int) -> dict:
    """An n-node graph of residual MLP blocks (Linear, ReLU, Add), the kind a big canvas holds."""
    nodes = [{"id": "x", "type": "Input", "params": {"shape": [32]}}]
    edges = []
    prev, i = "x", 1
    while len(nodes) < n:
        block = [(f"fc{i}", "Linear", {"out_features": 32}), (f"act{i}", "ReLU", {}), (f"add{i}", "Add", {})]
        for nid, typ, params in block[: n - len(nodes)]:
            nodes.append({"id": nid, "type": typ, "params": params})
        ids = [b[0] for b in block[: len(nodes)]]
        if f"fc{i}" in ids:
            edges.append({"source": prev, "target": f"fc{i}"})
        if any(nd["id"] == f"act{i}" for nd in nodes):
            edges.append({"source": f"fc{i}", "target": f"act{i}"})
        if any(nd["id"] == f"add{i}" for nd in nodes):
            edges += [{"source": f"act{i}", "target": f"add{i}"}, {"source": prev, "target": f"add{i}"}]
            prev = f"add{i}"
        else:
            prev = nodes[-1]["id"]
        i += 1
    return {"nodes": nodes, "edges": edges}


def bench_pipeline(repeats: int) -> list[tuple[int, list[float], list[float], list[float], list[float]]]:
    rows = []
    for n in (10, 100, 1000):
        g = chain_graph(n)
        assert not [p for p in validate(g) if p.severity == "error"]
        tv, ti, tc = [], [], []
        for _ in range(repeats):
            _count_params.cache_clear()
            t0 = time.perf_counter()
            validate(g)
            t1 = time.perf_counter()
            rep = infer_shapes(g)
            t2 = time.perf_counter()
            compile_graph(g, report=rep)
            t3 = time.perf_counter()
            tv.append(t1 - t0)
            ti.append(t2 - t1)
            tc.append(t3 - t2)
        rows.append((n, tv, ti, tc, [a + b + c for a, b, c in zip(tv, ti, tc)]))
    return rows


def bench_huge(n: int = 100_000) -> tuple[float, float]:
    """Seconds to refuse a 10^5-node graph: as a dict to validate(), and as JSON text to load_project()."""
    import json

    from builder import ProjectFormatError, load_project

    nodes = [{"id": f"n{i}", "type": "ReLU"} for i in range(n)]
    t = time.perf_counter()
    probs = validate({"nodes": nodes, "edges": []})
    dt = time.perf_counter() - t
    assert probs[0].code == "too_many_nodes"
    text = json.dumps({"format": "layerlab", "version": 1, "graph": {"nodes": nodes, "edges": []}})
    t = time.perf_counter()
    with contextlib.suppress(ProjectFormatError):
        load_project(text)
    return dt, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args()
    torch.set_num_threads(1)
    conditions(f"Core library: bench/bench_core.py --repeats {args.repeats}")
    print("\n1. training step, compiled template ÷ hand-written module (batch 64, Adam, CPU); µs per step")
    print("| model | compiled µs | hand-written µs | ratio (per pair) |\n|---|---|---|---|")
    for name, c, h, r in bench_step(args.repeats):
        print(f"| {name} | {spread(c, 1e6, digits=1)} | {spread(h, 1e6, digits=1)} | {spread(r, digits=3)} |")
    print("\n2. validate + infer_shapes + compile_graph (ms)")
    print("| nodes | validate | infer | compile | total | ms / node (median) |\n|---|---|---|---|---|---|")
    for n, v, i, c, tot in bench_pipeline(max(5, args.repeats // 3)):
        med = sorted(tot)[len(tot) // 2]
        print(f"| {n} | {spread(v, 1e3, digits=1)} | {spread(i, 1e3, digits=1)} | {spread(c, 1e3, digits=1)} "
              f"| {spread(tot, 1e3, digits=1)} | {med * 1e3 / n:.3f} |")
    a, b = bench_huge()
    print(f"\n3. a 100,000-node graph is refused in {a * 1e3:.1f} ms (validate on a dict), "
          f"{b * 1e3:.0f} ms (load_project on JSON text incl. parsing)")
    print(f"load average {os.getloadavg()[0]:.1f} after")

if __name__ == "__main__":
    main()
