"""Estimated training memory (the graph report) ÷ measured peak of one training step, per architecture.

For every template and the full-size architectures (ResNet-18, VGG-11 at 3×224×224, ViT-tiny, a bi-LSTM), one
float32 training step (forward, backward, Adam step) is run on a fresh model and the peak is measured:

- CPU: the allocator's peak during the step as torch's profiler records it (``profile_memory=True``: every tensor
  allocation and free), plus the parameter and buffer bytes allocated before it (the estimate counts them);
- CUDA: ``torch.cuda.max_memory_allocated`` around the step (weights, gradients, Adam state, activations and
  cuDNN workspaces all come from the caching allocator).

Beside it, what autograd keeps: the bytes of the distinct storages the forward pass saves for the backward pass
(``torch.autograd.graph.saved_tensors_hooks``). Prints a table; ``--write`` puts it in bench/RESULTS.md.

    python bench/bench_memory.py [--device cuda] [--only resnet18,vgg11] [--write]
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

import builder  # noqa: E402
from builder.graph.architectures import build  # noqa: E402
from builder.graph.compile import compile_graph, example_inputs  # noqa: E402
from builder.graph.memory import training_memory  # noqa: E402
from builder.graph.report import Budget  # noqa: E402
from builder.graph.shapes import infer_shapes  # noqa: E402

BIG = Budget(max_params=10**10, max_activation_bytes=2**50)


def cases() -> dict[str, tuple]:
    """name -> (graph, batch size on CPU, batch size on CUDA)."""
    out = {t["name"]: (builder.load_template(t["name"]).graph, 64, 64) for t in builder.list_templates()}
    out["resnet18"] = (build("resnet18").graph, 8, 64)
    out["vgg11"] = (build("vgg11").graph, 4, 64)
    out["resnet18@32"] = (build("resnet18", input_shape=(3, 32, 32), classes=10).graph, 64, 256)
    out["vit_tiny"] = (build("vit_tiny").graph, 8, 64)
    out["bilstm"] = (build("lstm").graph, 16, 64)
    return out


AMP = {"on": False}


def _step(model: torch.nn.Module, xs: list[torch.Tensor], opt: torch.optim.Optimizer) -> None:
    with torch.autocast(xs[0].device.type, dtype=torch.bfloat16, enabled=AMP["on"]):
        out = model(*xs)
    outs = out if isinstance(out, tuple | list) else (out,)
    sum(o.float().square().mean() for o in outs if o.is_floating_point()).backward()
    opt.step()


def _cpu_peak(fn) -> int:
    """Peak bytes allocated (beyond what was allocated before) while ``fn`` runs, from the profiler's memory events."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "trace.json"
        prof.export_chrome_trace(str(path))
        events = json.loads(path.read_text())["traceEvents"]
    mem = [e["args"] for e in events if e.get("name") == "[memory]"]
    if not mem:
        return 0
    base = mem[0]["Total Allocated"] - mem[0]["Bytes"]  # the reporter's running total includes earlier tensors
    return max(m["Total Allocated"] for m in mem) - base


def measure(name: str, batch: int, device: str) -> dict:
    """One training step of ``name`` at ``batch``: estimate, saved-tensor bytes, measured peak (bytes)."""
    graph = cases()[name][0]
    report = infer_shapes(graph, BIG)
    gc.collect()  # compiled models hold reference cycles: free the previous case before measuring this one
    before = 0
    if device == "cuda":
        torch.cuda.empty_cache()
        before = torch.cuda.memory_allocated()
    torch.manual_seed(0)
    model = compile_graph(graph, BIG, report).to(device).train()
    xs = [x.to(device) for x in example_inputs(model, batch)]
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    held = sum(p.numel() * p.element_size() for p in model.parameters())
    held += sum(b.numel() * b.element_size() for b in model.buffers())
    seen: dict[int, int] = {}

    params = {p.untyped_storage().data_ptr() for p in model.parameters()}

    def pack(t: torch.Tensor):
        st = t.untyped_storage()
        if st.data_ptr() not in params:  # weights are counted as weights
            seen[st.data_ptr()] = st.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):  # what autograd keeps, counted once
        out = model(*xs)
    saved = sum(seen.values())
    del out
    model.zero_grad(set_to_none=True)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        _step(model, xs, opt)
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - before
    else:
        peak = _cpu_peak(lambda: _step(model, xs, opt)) + held
    return {"name": name, "batch": batch, "device": device, "params": report.total_params,
            "estimate": training_memory(report, batch, device=device).peak, "saved": saved, "peak": int(peak), "held": held,
            "problems": [p.message for p in infer_shapes(graph).problems if p.severity == "error"]}


def run_one(name: str, batch: int, device: str) -> dict:
    """Measure one case; on CUDA in a fresh process, as a training job runs (it pays the libraries' workspaces)."""
    if device != "cuda":
        return measure(name, batch, device)
    cmd = [sys.executable, __file__, "--child", name, "--batch-size", str(batch), "--device", device]
    if AMP["on"]:
        cmd.append("--amp")
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def table(rows: list[dict], title: str) -> str:
    lines = [title, "", "| model | batch | params | estimate | measured peak | estimate ÷ peak | autograd keeps |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['batch']} | {r['params']:,} | {r['estimate'] / 2**20:,.0f} MiB | "
                     f"{r['peak'] / 2**20:,.0f} MiB | {r['estimate'] / r['peak']:.2f} | {r['saved'] / 2**20:,.0f} MiB |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--only", default="")
    ap.add_argument("--batch-size", type=int, default=0, help="override every case's batch size")
    ap.add_argument("--amp", action="store_true", help="bf16 autocast (the trainer's default on CUDA)")
    ap.add_argument("--child", default="", help=argparse.SUPPRESS)
    ap.add_argument("--json", default="", help="also write the rows to this file")
    ap.add_argument("--write", action="store_true", help="put the table in bench/RESULTS.md")
    ap.add_argument("--peaks", default="", help="a --json file measured earlier (e.g. on a lent GPU): recompute "
                    "its estimates with the current code instead of measuring")
    ap.add_argument("--title", default="", help="with --peaks: the device and settings the peaks were measured on")
    a = ap.parse_args(argv)
    AMP["on"] = a.amp
    if a.child:
        print(json.dumps(measure(a.child, a.batch_size, a.device)))
        return 0
    todo = cases()
    if a.peaks:
        rows = [r for r in json.loads(Path(a.peaks).read_text()) if r["name"] in todo]
        for r in rows:
            report = infer_shapes(todo[r["name"]][0], BIG)
            r["estimate"] = training_memory(report, r["batch"], device=r["device"]).peak
        text = table(rows, a.title or f"Measured earlier on {rows[0]['device']}; estimates from the current code.")
        print(text)
        if a.write:
            from results import write_section
            write_section(f"### {a.title or 'peaks'}", f"### {a.title or 'peaks'}\n\n" + text)
        return 0
    names = [n for n in a.only.split(",") if n] or list(todo)
    rows = []
    for name in names:
        batch = a.batch_size or todo[name][2 if a.device == "cuda" else 1]
        r = run_one(name, batch, a.device)
        rows.append(r)
        print(f"{name:<12} batch {batch:>4}  estimate {r['estimate'] / 2**20:9.1f} MiB  peak {r['peak'] / 2**20:9.1f} MiB"
              f"  ratio {r['estimate'] / r['peak']:5.2f}  saved {r['saved'] / 2**20:8.1f} MiB", flush=True)
    dev = torch.cuda.get_device_name() if a.device == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    text = table(rows, f"Device: {dev}; torch {torch.__version__}; {'bf16 autocast' if a.amp else 'float32'}, Adam, one step.")
    print(text)
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))
    if a.write:
        from results import write_section
        write_section("## Training memory: estimate ÷ measured peak", "## Training memory: estimate ÷ measured peak\n\n"
                      + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
