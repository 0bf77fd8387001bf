"""GPU jobs that share, and how close the trainer comes to the compute-only step rate (issue 20).

1. ``share``: ``--jobs`` N (16) digits cnn jobs submitted at once through the real job machinery
   (:func:`builder.jobs.queue.submit`: a workspace, the warm launcher, slots claimed by GPU memory with
   :mod:`builder.training.gpus`), ``--epochs`` each (15); prints the makespan ÷ one job alone, and the GPU of each job.
2. ``rate``: a ResNet-18-like graph (``builder.graph.architectures.build("resnet18")`` when present, else the resnet
   template widened to 3×32×32) on synthetic 32×32 images (``--images``): images/s of ``Trainer.fit``
   end to end (epoch events' samples/s, the first epoch left out) ÷ the compute-only rate (the same model, batch,
   optimizer and autocast stepping on one device-resident batch, synchronised at the end).

Every figure is a median with its spread (p10-p90; min-max below 5 values; bench/results.py), after the
conditions line: the makespan over ``--share-rounds`` rounds (one job alone, N at once, one alone again; the
ratio per round against the mean of the two alone runs around it), the end-to-end rate over the epochs after the
first, the compute-only rate over ``--chunks`` timed chunks of steps.

Runs on CPU too (``--quick``: 3 jobs, 2 epochs, a small image set) to check the machinery; the figures that matter
are the GPU ones. Never asserts a time.

    python bench/gpu_share.py [--quick] [--jobs 16] [--epochs 15] [--share-rounds 1] [--images 20000] [--chunks 5]
        [--owners local,web] [--skip-share] [--skip-rate]
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

from bench.results import conditions, spread  # noqa: E402

OWNERS = {"local": None, "web": "anon:" + "b" * 32}  # the CLI's local user (unconfined), a web visitor (confined)


def _submit_all(ws: Path, n: int, epochs: int, owner: str = "local") -> tuple[float, dict]:
    from builder.data.access import SYSTEM
    from builder.graph.templates import load_template
    from builder.jobs import queue as jobs
    from builder.runs.store import RunStore

    store = RunStore(ws, actor=SYSTEM)
    project = load_template("cnn").model_dump()
    extra = {"owner": OWNERS[owner]} if OWNERS[owner] else {}
    t0 = time.perf_counter()
    ids = [jobs.submit(store, jobs.JobSpec(project=project, dataset="digits",
                                           config={"epochs": epochs, "early_stopping": None}, **extra))
           for _ in range(n)]
    status = jobs.wait(store, ids, timeout=3600)
    dt = time.perf_counter() - t0
    envs = {rid: (status[rid], (store.get(rid).get("environment") or {}).get("gpu"),
                  "files confined by Landlock" in store.folder(rid).job_log.read_text(errors="replace"))
            for rid in ids}
    return dt, envs


def share(n: int, epochs: int, rounds: int = 1, owners: tuple[str, ...] = ("local",)) -> None:
    """Makespan of ``n`` concurrent jobs ÷ one job alone (the launcher warmed first, fresh workspaces), for each
    owner kind in ``owners``, interleaved round by round (``web``: jobs confined by the sandbox; ``local``: not)."""
    from builder.jobs import queue as jobs
    from builder.jobs import warm

    print(f"job limit {jobs.max_jobs()}, GPUs {[(g.index, round(g.free / 2**30, 1)) for g in jobs.GPU_QUERY()]}",
          flush=True)
    ones: dict[str, list[float]] = {o: [] for o in owners}
    manys: dict[str, list[float]] = {o: [] for o in owners}
    envs: dict[str, dict] = {o: {} for o in owners}
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR", "/tmp")) as d:
        ws = Path(d) / "ws"
        ws.mkdir()
        _submit_all(ws, 1, 1)  # starts the warm launcher (its first job is launched cold)
        for _ in range(300):
            if warm._launcher_up(ws) and not warm._launcher_starting(ws):
                break
            time.sleep(0.1)
        for o in owners:
            ones[o].append(_submit_all(ws, 1, epochs, o)[0])
        for _ in range(rounds):
            for o in owners:
                many, got = _submit_all(ws, n, epochs, o)
                manys[o].append(many)
                envs[o].update(got)
                ones[o].append(_submit_all(ws, 1, epochs, o)[0])
    for o in owners:
        alone = [statistics.mean(ones[o][i:i + 2]) for i in range(rounds)]  # the alone runs either side
        done = sum(1 for s, _, _ in envs[o].values() if s == "finished")
        gpus = sorted({g for _, g, _ in envs[o].values()}, key=str)
        confined = sum(1 for _, _, c in envs[o].values() if c)
        print(f"[{o}] one job alone {spread(ones[o], unit=' s', digits=1)}; {n} jobs at once "
              f"{spread(manys[o], unit=' s', digits=1)} ({done}/{n * rounds} finished, {confined} confined by Landlock, GPUs {gpus}); makespan ÷ one "
              f"job, per round {spread([m / a for m, a in zip(manys[o], alone)])} (÷ {n} jobs one after another "
              f"{spread([m / (n * a) for m, a in zip(manys[o], alone)])})", flush=True)
    if len(owners) == 2:
        a, b = owners
        print(f"{b} ÷ {a}, per round: {n} jobs at once {spread([y / x for x, y in zip(manys[a], manys[b])])}; "
              f"one job alone {spread([y / x for x, y in zip(ones[a], ones[b])])}", flush=True)


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


def rate(images: int, batch: int, epochs: int, quick: bool, chunks: int = 5) -> None:
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
    end_to_end = rates[1:] or rates

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
    k = max(10, images // batch // chunks)
    compute = []
    for _ in range(chunks):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(k):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        compute.append(k * batch / (time.perf_counter() - t0))
    print(f"{device} {torch.cuda.get_device_name() if device.type == 'cuda' else ''} precision {t.precision}, "
          f"threads {t.threads}: end to end {spread(end_to_end, digits=0)} images/s (epochs after the first), "
          f"compute-only {spread(compute, digits=0)} images/s ({chunks} chunks of {k} steps), ratio of the medians "
          f"{statistics.median(end_to_end) / statistics.median(compute):.3f} (batch {batch}, {images} images)",
          flush=True)


def main() -> int:
    """Run the share and rate figures."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny settings (CPU check)")
    p.add_argument("--jobs", type=int, default=16)
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--images", type=int, default=20000)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--rate-epochs", type=int, default=4)
    p.add_argument("--share-rounds", type=int, default=1, help="rounds of N jobs at once, each between alone runs")
    p.add_argument("--chunks", type=int, default=5, help="timed chunks of the compute-only steps")
    p.add_argument("--owners", default="local", help="comma-separated: local (the CLI's user, unconfined), web "
                   "(a visitor: Landlock, limits); two give their ratio per round")
    p.add_argument("--skip-share", action="store_true")
    p.add_argument("--skip-rate", action="store_true")
    a = p.parse_args()
    if a.quick:
        a.jobs, a.epochs, a.images, a.batch, a.rate_epochs = 3, 2, 512, 64, 2
    import torch

    conditions(f"GPU jobs that share: bench/gpu_share.py{' --quick' if a.quick else ''} --jobs {a.jobs} --epochs "
               f"{a.epochs} --share-rounds {a.share_rounds} --owners {a.owners} --images {a.images} --chunks {a.chunks}")
    print(f"{torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU'}", flush=True)
    if not a.skip_share:
        share(a.jobs, a.epochs, a.share_rounds, tuple(a.owners.split(",")))
    if not a.skip_rate:
        rate(a.images, a.batch, a.rate_epochs, a.quick, a.chunks)
    return 0


if __name__ == "__main__":
    sys.exit(main())
