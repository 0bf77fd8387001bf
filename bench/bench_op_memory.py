"""Operator nodes' training memory: the estimate per sample ÷ a training step's measured peak per sample.

An Op node's estimate is what autograd saves when its call runs on meta tensors (``builder.graph.layers.op_meta``),
plus its backward's gradients of those (``Cost.backward``). For attention the CPU's choice of kernel is asked
(fused or math); on CUDA torch may take another kernel (flash, memory-efficient, cuDNN), so the CUDA figure is
measured here: one training step (forward, backward, Adam) at two batch sizes, the peak's difference per sample
(the weights and fixed workspaces cancel out).

- CPU: the allocator's peak as torch's profiler records it;
- CUDA: ``torch.cuda.max_memory_allocated`` around the step.

    python bench/bench_op_memory.py [--device cuda] [--steps 128,512]
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from bench.bench_memory import _cpu_peak  # noqa: E402
from builder.graph.compile import compile_graph, example_inputs  # noqa: E402
from builder.graph.memory import training_memory  # noqa: E402
from builder.graph.shapes import infer_shapes  # noqa: E402

SDPA = {"op": "aten.scaled_dot_product_attention", "args": '[{"t": 0}, {"t": 1}, {"t": 2}]'}
CAUSAL = {"op": "aten.scaled_dot_product_attention", "args": '[{"t": 0}, {"t": 1}, {"t": 2}]',
          "kwargs": '{"is_causal": true}'}
SOFTMAX = {"op": "aten._softmax", "args": '[{"t": 0}, -1, false]'}
ERF = {"op": "aten.erf", "args": '[{"t": 0}]'}  # its backward formula's temporaries (op_meta._backward_peak)


def attention(shape: list[int], params: dict) -> dict:
    """A Linear, then the operator on its output as query, key and value (a step that has weights)."""
    return {"nodes": [{"id": "x", "type": "Input", "params": {"shape": shape}},
                      {"id": "lin", "type": "Linear", "params": {"out_features": shape[-1]}},
                      {"id": "att", "type": "Op", "params": params}],
            "edges": [{"source": "x", "target": "lin"},
                      *({"source": "lin", "target": "att", "target_port": str(i)} for i in range(3))]}


def unary(shape: list[int], params: dict) -> dict:
    return {"nodes": [{"id": "x", "type": "Input", "params": {"shape": shape}},
                      {"id": "lin", "type": "Linear", "params": {"out_features": shape[-1]}},
                      {"id": "op", "type": "Op", "params": params}],
            "edges": [{"source": "x", "target": "lin"}, {"source": "lin", "target": "op"}]}


def cases(steps: list[int]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for t in steps:
        out[f"sdpa 3-d T={t} d=64"] = attention([t, 64], SDPA)
        out[f"sdpa 4-d 4 heads T={t} d=64"] = attention([4, t, 64], SDPA)
        out[f"sdpa 4-d causal T={t} d=64"] = attention([4, t, 64], CAUSAL)
        out[f"softmax (4, T={t}, T)"] = unary([4, t, t], SOFTMAX)
        out[f"erf (T={t}, 64)"] = unary([t, 64], ERF)
    return out


def _step(model, xs, opt) -> None:
    model(*xs).float().square().mean().backward()
    opt.step()


def peak(graph: dict, report, batch: int, device: str) -> int:
    torch.manual_seed(0)
    model = compile_graph(graph, report=report).to(device).train()
    xs = [x.to(device) for x in example_inputs(model, batch)]
    opt = torch.optim.Adam([*model.parameters(), torch.nn.Parameter(torch.zeros(1, device=device))])
    if device != "cuda":
        return _cpu_peak(lambda: _step(model, xs, opt))
    _step(model, xs, opt)  # first step: the libraries' workspaces and Adam's state
    model.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    _step(model, xs, opt)
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - before


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--steps", default="128,512")
    ap.add_argument("--batches", default="8,16")
    a = ap.parse_args(argv)
    small, large = (int(b) for b in a.batches.split(","))
    name = torch.cuda.get_device_name() if a.device == "cuda" else platform.processor() or platform.machine()
    print(f"# {a.device} ({name}), torch {torch.__version__}, batches {small} and {large}")
    print("| case | estimate per sample | measured per sample | measured ÷ estimate |")
    print("|---|---:|---:|---:|")
    for label, graph in cases([int(s) for s in a.steps.split(",")]).items():
        report = infer_shapes(graph)
        if not report.ok:
            print(f"| {label} | refused: {report.problems[0].message} | | |")
            continue
        est = training_memory(report, 1, device=a.device, loss="reg").per_sample
        p = [peak(graph, report, b, a.device) for b in (small, large)]
        if a.device == "cuda":
            torch.cuda.empty_cache()
        per = (p[1] - p[0]) / (large - small)
        print(f"| {label} | {est / 2**20:.2f} MiB | {per / 2**20:.2f} MiB | {per / est:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
