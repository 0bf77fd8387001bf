"""GPU jobs that share, and how close the trainer comes to the compute-only step rate (issue 20).

1. ``share``: ``--jobs`` N (16) digits cnn jobs submitted at once through the real job machinery
   (:func:`builder.jobs.queue.submit`: a workspace, the warm launcher, slots claimed by GPU memory with
   :mod:`builder.training.gpus`), ``--epochs`` each (15); prints the makespan ÷ one job alone, and the GPU of each job.
2. ``rate``: a ResNet-18-like graph (``builder.graph.architectures.build("resnet18")`` when present, else the resnet
   template widened to 3×32×32) on synthetic 32×32 images (``--images``): images/s of ``Trainer.fit``
   end to end (epoch events' samples/s, the first epoch left out) ÷ the compute-only rate (the same model, batch,
   optimizer and autocast stepping on one device-resident batch, synchronised at the end).

Runs on CPU too (``--quick``: 3 jobs, 2 epochs, a small image set) to check the machinery; the figures that matter
are the GPU ones. Never asserts a time.

    python bench/gpu_share.py [--quick] [--jobs 16] [--epochs 15] [--images 20000] [--skip-share] [--skip-rate]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _submit_all(ws: Path, n: int, epochs: int) -> tuple[float, dict]:
    from builder.data.access import SYSTEM
    from builder.graph.templates import load_template
    from builder.jobs import queue as jobs
    from builder.runs.store import RunStore

    store = RunStore(ws, actor=SYSTEM)
    project = load_template("cnn").model_dump()
    t0 = time.perf_counter()
    ids = [jobs.submit(store, jobs.JobSpec(project=project, dataset="digits",
                                           config={"epochs": epochs, "early_stopping": None}))
           for _ in range(n)]
    status = jobs.wait(store, ids, timeout=3600)
    dt = time.perf_counter() - t0
    envs = {rid: (status[rid], (store.get(rid).get("environment") or {}).get("gpu")) for rid in ids}
    return dt, envs


def share(n: int, epochs: int) -> None:
    """Makespan of ``n`` concurrent jobs ÷ one job alone (the launcher warmed first, fresh workspaces)."""
    from builder.jobs import queue as jobs
    from builder.jobs import warm

    print(f"job limit {jobs.max_jobs()}, GPUs {[(g.index, round(g.free / 2**30, 1)) for g in jobs.GPU_QUERY()]}",
          flush=True)
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR", "/tmp")) as d:
        ws = Path(d) / "ws"
        ws.mkdir()
        _submit_all(ws, 1, 1)  # starts the warm launcher (its first job is launched cold)
        for _ in range(300):
            if warm._launcher_up(ws) and not warm._launcher_starting(ws):
                break
            time.sleep(0.1)
        one, env1 = _submit_all(ws, 1, epochs)
        many, envs = _submit_all(ws, n, epochs)
        one_b, _ = _submit_all(ws, 1, epochs)
    alone = statistics.mean([one, one_b])
    done = sum(1 for s, _ in envs.values() if s == "finished")
    gpus = sorted({g for _, g in envs.values()}, key=str)
    print(f"one job alone {alone:.1f} s ({one:.1f}, {one_b:.1f}); {n} jobs at once {many:.1f} s "
          f"({done}/{n} finished, GPUs {gpus}); makespan ÷ one job {many / alone:.2f} "
          f"(÷ {n} jobs one after another {many / (n * alone):.2f})", flush=True)


def _resnet_graph(quick: bool):
    import builder

    try:
        # a full-size ResNet-18 graph, where this checkout has it
        from builder.graph.architectures import build

        project = build("resnet18")
    except ImportError:
        project = builder.load_template("resnet")
    from builder.data.compat import adapt_graph
    from builder.data.splits import DatasetInfo

    info = DatasetInfo(name="synthetic32", task="multiclass", modality="image", input_shape=(3, 32, 32),
                       num_classes=10, out_size=10)
    return adapt_graph(project.graph, info, None) if not quick else adapt_graph(
        builder.load_template("resnet").graph, info, None), info


def rate(images: int, batch: int, epochs: int, quick: bool) -> None:
    """Images/s end to end (Trainer.fit) ÷ images/s of bare steps on one resident batch."""
    import torch

    from builder.data.splits import Dataset, Split
    from builder.runs.pipeline import build_model
    from builder.training.config import amp_dtype, resolve_device
    from builder.training.trainer import Trainer, build_optimizer

    graph, info = _resnet_graph(quick)
    device = resolve_device("auto")
    g = torch.Generator().manual_seed(0)

    def split(n: int) -> Split:
        return Split(torch.randn(n, 3, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g))

    ds = Dataset(info, split(images), split(max(batch, images // 10)), split(batch))
    cfg = {"epochs": epochs, "batch_size": batch, "early_stopping": None, "lr": 1e-3, "device": str(device)}
    rates: list[float] = []
    model = build_model(graph, 0)
    t = Trainer(model, ds, cfg, on_event=lambda ev: ev["type"] == "epoch" and rates.append(ev["samples_per_s"]))
    t.fit()
    end_to_end = statistics.median(rates[1:] or rates)

    model = build_model(graph, 0).to(device)
    if device.type in ("cuda", "cpu") and any(isinstance(m, torch.nn.Conv2d) for m in model.modules()):
        model = model.to(memory_format=torch.channels_last)  # as the trainer's MemoryFormat callback does
    opt = build_optimizer(model.parameters(), t.config)
    x = ds.train.X[:batch].to(device)
    if x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    y = ds.train.y[:batch].to(device)
    dtype = amp_dtype(device) if t.config.amp is not False and device.type == "cuda" else None
    lossf = torch.nn.CrossEntropyLoss()

    def step() -> None:
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = lossf(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(5):
        step()
    k = max(10, images // batch)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(k):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    compute = k * batch / (time.perf_counter() - t0)
    print(f"{device} {torch.cuda.get_device_name() if device.type == 'cuda' else ''} precision {t.precision}, "
          f"threads {t.threads}: end to end {end_to_end:,.0f} images/s, compute-only {compute:,.0f} images/s, "
          f"ratio {end_to_end / compute:.3f} (batch {batch}, {images} images)", flush=True)


def main() -> int:
    """Run the share and rate figures."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny settings (CPU check)")
    p.add_argument("--jobs", type=int, default=16)
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--images", type=int, default=20000)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--rate-epochs", type=int, default=4)
    p.add_argument("--skip-share", action="store_true")
    p.add_argument("--skip-rate", action="store_true")
    a = p.parse_args()
    if a.quick:
        a.jobs, a.epochs, a.images, a.batch, a.rate_epochs = 3, 2, 512, 64, 2
    import torch

    print(f"torch {torch.__version__}, {os.cpu_count()} cores, "
          f"{torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU'}, "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    if not a.skip_share:
        share(a.jobs, a.epochs)
    if not a.skip_rate:
        rate(a.images, a.batch, a.rate_epochs, a.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
