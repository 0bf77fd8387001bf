"""Measured latency per template (builder.graph.latency) beside the multiply-adds (builder.graph.cost).

Prints, per template: MACs per sample, the whole forward pass's median at batch 32 on CPU (1 and all torch
threads) and the three slowest nodes with their share. Figures go to bench/RESULTS.md with the machine named.

    python bench/bench_latency.py [--device cuda] [--repeats 50]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

import builder  # noqa: E402
from builder.graph.cost import node_costs, total_macs  # noqa: E402
from builder.graph.latency import node_latency  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--batch-size", type=int, default=32)
    a = ap.parse_args(argv)
    threads = torch.get_num_threads()
    print(f"device {a.device}, batch {a.batch_size}, median (p10-p90) of {a.repeats}; torch threads 1 and {threads}")
    print(f"{'template':<14} {'MACs/sample':>12} {'ms, 1 thread':>22} {'ms, ' + str(threads) + ' threads':>22}"
          "  slowest nodes (1 thread)")
    for t in builder.list_templates():
        graph = builder.load_template(t["name"]).graph
        macs = total_macs(node_costs(graph))
        one = node_latency(graph, batch_size=a.batch_size, device=a.device, repeats=a.repeats, threads=1)
        allt = node_latency(graph, batch_size=a.batch_size, device=a.device, repeats=a.repeats, threads=threads)
        slow = ", ".join(f"{r['node']} {r['share']:.0%}" for r in one.rows()[:3])
        cols = [f"{x.total_s * 1e3:.3f} ({x.total_p10_s * 1e3:.3f}-{x.total_p90_s * 1e3:.3f})" for x in (one, allt)]
        print(f"{t['name']:<14} {macs:>12,} {cols[0]:>22} {cols[1]:>22}  {slow}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
