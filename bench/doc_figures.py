"""The figures the README's prose used to state (issue 34), measured through the product's own code paths.

Each part prints the conditions it ran under (UTC time, machine, CPU count, torch version and threads, the load
average before and after) and a median with its spread: p10-p90 over interleaved repeats, min-max where there are
fewer than 5. Deterministic figures (link lengths, an imported model's largest difference) are printed as they
are. Never asserts a time.

* ``csv``: a CSV whose header has 1,000,000 columns (``y`` and 999,999 commas, a 1 MB line) and one of 1,000,000
  named columns (a 6.9 MB line) refused by :func:`builder.data.load_csv` and by the Data page's
  :func:`builder.data.tabular.preview_csv`: seconds, the peak traced by ``tracemalloc``, and the growth of the
  resident peak (``VmHWM`` after ``clear_refs``) in a fresh process that has numpy and pandas imported already
  (C allocations included);
* ``probe``: the model probe (:class:`builder.jobs.probe.ModelProbe`) for the Runs page's drift check (an MLP on
  moons) and the Train page's VAE view (the vae template on digits): the child's start, the first question of a
  fresh child (start, open the run, answer), then warm questions through the child against the same call in
  process (:func:`builder.interpret.run_views.drift_run`, :func:`~builder.interpret.run_views.vae_probe`);
* ``sandbox``: :func:`builder.jobs.job_sandbox.enter` (limits, clean environment, the process lock) timed in fresh
  processes, and the same small trainings (``run_training``, mlp on moons: a first one of 1 epoch that pays the
  imports and the data, then a longer one) in fresh processes with and without it, interleaved;
* ``memory``: small CPU jobs submitted as the server submits them (:func:`builder.jobs.queue.submit`, a cold job
  process: launchers off), their ``/proc/<pid>`` sampled every 20 ms: the peak of ``VmData`` (what
  ``LAYERLAB_JOB_MEMORY_MB``'s ``RLIMIT_DATA`` counts), of ``RssAnon`` and of private memory (``smaps_rollup``);
* ``links``: the share link of every built-in template (:func:`builder.graph.share.encode_project`, the value
  after ``?p=``, which the 8,000-character limit counts);
* ``mha``: ``nn.MultiheadAttention`` with ``kdim``/``vdim`` ≠ ``embed_dim`` (the zoo's ``mha_separate_qkv``)
  imported from the three sources by ``bench/import_coverage.py``'s :func:`coverage`: the largest difference;
* ``compile`` (only with ``--compile``, it compiles for a minute or more per template, less when torch's
  inductor cache already holds the graph): a plain training step (batch 64 of the template's input shape,
  forward, cross-entropy, backward, Adam) of the cnn template (``--compile-templates cnn,resnet``: more) with the
  forward through ``torch.compile``, as ``torch_compile`` makes the trainer do, against eager, on the threads
  the trainer would pick, interleaved blocks of 20 steps after the compile.

    python bench/doc_figures.py [--quick] [--only csv,links,...] [--repeats 11] [--compile]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.results import conditions, spread  # noqa: E402

PARTS = ("csv", "probe", "sandbox", "memory", "links", "mha")
BLOCK = 20  # training steps timed together in the compile part (one step is a few ms: too short to time alone)


def _after() -> None:
    print(f"load average {os.getloadavg()[0]:.1f} after", flush=True)


def _interleaved(calls: dict[str, Callable[[], Any]], repeats: int) -> dict[str, list[float]]:
    """Seconds of each call, ``repeats`` rounds, the order reversed every other round."""
    out: dict[str, list[float]] = {k: [] for k in calls}
    names = list(calls)
    for r in range(repeats):
        for k in (names if r % 2 == 0 else names[::-1]):
            t = time.perf_counter()
            calls[k]()
            out[k].append(time.perf_counter() - t)
    return out


def _refused(fn: Callable[[], Any]) -> Callable[[], str]:
    """``fn`` expected to raise DatasetError: returns its message (a figure of a refusal that did not happen is
    no figure: anything else is raised)."""
    from builder.errors import DatasetError

    def call() -> str:
        try:
            fn()
        except DatasetError as e:
            return str(e)
        raise RuntimeError("the file was not refused")
    return call


# ---- csv -------------------------------------------------------------------------------------------------------

_FRESH_CSV = """
import sys
import numpy, pandas
from builder.data import load_csv
from builder.data.tabular import preview_csv
from builder.errors import DatasetError
def kib(key):
    return next(int(v.split()[0]) for k, _, v in (line.partition(":") for line in open("/proc/self/status")) if k == key)
open("/proc/self/clear_refs", "w").write("5")  # VmHWM back to the resident size: the peak from here on
base = kib("VmRSS")
try:
    (preview_csv(sys.argv[1]) if sys.argv[2] == "preview" else load_csv(sys.argv[1], sys.argv[3]))
except DatasetError:
    pass
print((kib("VmHWM") - base) / 1024)
"""


def csv_header(repeats: int, fresh: int) -> None:
    """A 1,000,000-column header refused: seconds, traced peak, resident growth in a fresh process."""
    from builder.data import load_csv
    from builder.data.tabular import preview_csv

    conditions("csv: a header of 1,000,000 columns (builder.data.load_csv, preview_csv)")
    with tempfile.TemporaryDirectory() as d:
        million, named = Path(d) / "million.csv", Path(d) / "named.csv"
        million.write_bytes(b"y" + b"," * 999_999 + b"\n1" + b"," * 999_999 + b"\n")
        named.write_bytes(b",".join(b"c%d" % k for k in range(1_000_000)) + b"\n")
        cases = {"1,000,000 columns (`y` and 999,999 commas: a 1.0 MB header), load_csv":
                 (_refused(lambda: load_csv(million, "y")), [million, "load", "y"]),
                 "the same, preview_csv (Data page)": (_refused(lambda: preview_csv(million)), [million, "preview", ""]),
                 f"1,000,000 named columns (a {named.stat().st_size / 1e6:.1f} MB header), load_csv":
                 (_refused(lambda: load_csv(named, "c0")), [named, "load", "c0"])}
        for fn, _ in cases.values():  # warm-up: pandas and the lazy imports
            fn()
        times = _interleaved({k: v[0] for k, v in cases.items()}, repeats)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        print("| case | seconds | traced peak MiB | resident peak growth MiB (fresh process) | message |\n"
              "|---|---|---|---|---|")
        for name, (fn, args) in cases.items():
            tracemalloc.start()
            msg = fn()
            peak = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
            grow = [float(subprocess.run([sys.executable, "-c", _FRESH_CSV, *map(str, args)], env=env, check=True,
                                         capture_output=True, text=True).stdout.split()[-1]) for _ in range(fresh)]
            print(f"| {name} | {spread(times[name], 1.0, ' s', 3)} | {peak:.1f} | {spread(grow, 1.0, '', 1)} | "
                  f"{msg[:70]}... |", flush=True)
    _after()


# ---- probe -----------------------------------------------------------------------------------------------------

def probe(repeats: int, starts: int) -> None:
    """The model probe for the drift check and the VAE view: start, first question, warm questions."""
    import torch

    import builder
    from builder.data.access import SYSTEM
    from builder.data.drift import reference_table
    from builder.interpret.run_views import drift_run, vae_probe
    from builder.jobs.probe import ModelProbe
    from builder.runs.pipeline import load_run_dataset, run_training
    from builder.runs.store import RunStore

    os.environ.setdefault("LAYERLAB_TORCH_THREADS", "1")  # as bench/bench_probe.py: one torch thread on both sides
    torch.set_num_threads(1)
    conditions("probe: the drift check and the VAE view through the model probe (builder.jobs.probe)")
    with tempfile.TemporaryDirectory() as ws:
        store = RunStore(ws, actor=SYSTEM)
        mlp = run_training(builder.load_template("mlp"), "moons", {"epochs": 2, "seed": 0}, store=store).run_id
        vae = run_training(builder.load_template("vae"), "digits", {"epochs": 1, "seed": 0}, store=store).run_id
        ref, _ = reference_table(load_run_dataset(store, store.get(mlp)))
        new = ref.copy()
        new[ref.columns[0]] = new[ref.columns[0]] * 2.0 + 1.5
        path = Path(ws) / "new.csv"
        new.to_csv(path, index=False)

        start, first = [], []
        for _ in range(starts):
            p = ModelProbe()
            t = time.perf_counter()
            p._ensure()  # the child: interpreter, torch + Captum, limits
            start.append(time.perf_counter() - t)
            p.close()
            p = ModelProbe()
            t = time.perf_counter()
            p.drift(store, mlp, path)  # what a page session's first drift check waits for
            first.append(time.perf_counter() - t)
            p.close()
        p = ModelProbe()
        try:
            calls = {"drift, in process": lambda: drift_run(store, mlp, path),
                     "drift, probe": lambda: p.drift(store, mlp, path),
                     "VAE view, in process": lambda: vae_probe(store, vae),
                     "VAE view, probe": lambda: p.vae(store, vae)}
            for c in calls.values():  # warm-up: the child opens both runs
                c()
            times = _interleaved(calls, repeats)
        finally:
            p.close()
    print(f"child start (interpreter, torch + Captum, limits): {spread(start, 1.0, ' s')}")
    print(f"first drift check of a fresh child (start + open the run + answer): {spread(first, 1.0, ' s')}")
    print("| warm question | ms |\n|---|---|")
    for k, v in times.items():
        print(f"| {k} | {spread(v, 1e3, '', 1)} |")
    for what in ("drift", "VAE view"):
        added = [b - a for a, b in zip(times[f"{what}, in process"], times[f"{what}, probe"])]
        print(f"| {what}, added by the probe (per round) | {spread(added, 1e3, '', 1)} |")
    _after()


# ---- sandbox ---------------------------------------------------------------------------------------------------

_ENTER = """
import sys, time
from builder.jobs import job_sandbox
lim = job_sandbox.job_limits(cuda=False)
t = time.perf_counter()
job_sandbox.enter(sys.argv[1], lim)
print(time.perf_counter() - t)
"""

_TRAIN = """
import sys, time, warnings
warnings.filterwarnings("ignore")
import torch
import builder
from builder.data.access import SYSTEM
from builder.jobs import job_sandbox
from builder.runs.pipeline import run_training
from builder.runs.store import RunStore
torch.set_num_threads(1)
store = RunStore(sys.argv[1], actor=SYSTEM)
project = builder.load_template("mlp")
if sys.argv[2] == "sandboxed":
    job_sandbox.enter(sys.argv[1] + "/tmp", job_sandbox.job_limits(cuda=False))
t = time.perf_counter()
run_training(project, "moons", {"epochs": 1, "seed": 0}, store=store)  # the first: imports, data, first compile
first = time.perf_counter() - t
t = time.perf_counter()
run_training(project, "moons", {"epochs": int(sys.argv[3]), "seed": 0, "early_stopping": 0}, store=store)
print(first, time.perf_counter() - t)
"""


def sandbox(repeats: int, train_repeats: int, epochs: int) -> None:
    """job_sandbox.enter in fresh processes; a small training with and without it."""
    conditions("sandbox: builder.jobs.job_sandbox.enter at a job's start")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def child(code: str, *args: str) -> list[float]:
        out = subprocess.run([sys.executable, "-c", code, *args], env=env, check=True, capture_output=True,
                             text=True).stdout
        return [float(v) for v in out.split()]

    with tempfile.TemporaryDirectory() as d:
        enter = [child(_ENTER, f"{d}/e{i}")[-1] for i in range(repeats)]
        print(f"enter() (limits, clean environment, seccomp filter and audit hook), fresh processes: "
              f"{spread(enter, 1e3, ' ms', 2)}")
        runs: dict[str, list[list[float]]] = {"plain": [], "sandboxed": []}
        for r in range(train_repeats):
            for k in (("plain", "sandboxed") if r % 2 == 0 else ("sandboxed", "plain")):
                runs[k].append(child(_TRAIN, f"{d}/w{r}{k}", k, str(epochs)))
    for i, what in enumerate(("first run_training, 1 epoch (imports, data, compile)",
                              f"second run_training, {epochs} epochs")):
        plain, boxed = [v[i] for v in runs["plain"]], [v[i] for v in runs["sandboxed"]]
        ratio = [b / p for b, p in zip(boxed, plain)]
        print(f"{what}, mlp on moons, one torch thread, fresh processes: without the sandbox "
              f"{spread(plain, 1.0, ' s')}, inside it {spread(boxed, 1.0, ' s')}; ratio per round "
              f"{spread(ratio, 1.0, '', 3)}")
    _after()


# ---- memory ----------------------------------------------------------------------------------------------------

def _sample(pid: int, peaks: dict[str, int], stop: threading.Event) -> None:
    """Peaks (KiB) of VmData, RssAnon, VmHWM from /proc/<pid>/status and Private_* from smaps_rollup."""
    while not stop.is_set():
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            return
        vals: dict[str, int] = {}
        for line in (status + rollup).splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmData", "RssAnon", "VmHWM", "Private_Clean", "Private_Dirty") and rest.strip():
                vals[key] = int(rest.split()[0])
        vals["Private"] = vals.get("Private_Clean", 0) + vals.get("Private_Dirty", 0)
        for k in ("VmData", "RssAnon", "VmHWM", "Private"):
            peaks[k] = max(peaks.get(k, 0), vals.get(k, 0))
        stop.wait(0.02)


def memory(repeats: int) -> None:
    """Small CPU jobs submitted through the queue (cold job processes): peaks of their private memory."""
    import builder
    from builder.data.access import SYSTEM
    from builder.jobs import job_sandbox
    from builder.jobs.queue import JobSpec, submit, wait
    from builder.runs.store import RunStore

    conditions("memory: a small CPU job's private memory (builder.jobs.queue.submit, cold job processes)")
    os.environ["LAYERLAB_LAUNCHER_IDLE_S"] = "0"  # no warm launcher left behind: every job a fresh process
    print(f"the job's cap on this host unless set: {job_sandbox.job_limits(cuda=False).memory_mb} MiB "
          f"(LAYERLAB_JOB_MEMORY_MB, RLIMIT_DATA)")
    jobs = {"mlp on moons, 5 epochs": ("mlp", "moons", 5), "cnn on digits, 3 epochs": ("cnn", "digits", 3)}
    got: dict[str, dict[str, list[float]]] = {k: {} for k in jobs}
    with tempfile.TemporaryDirectory() as ws:
        store = RunStore(ws, actor=SYSTEM)
        for r in range(repeats):
            for name in (list(jobs) if r % 2 == 0 else list(jobs)[::-1]):
                template, dataset, epochs = jobs[name]
                rid = submit(store, JobSpec(project=builder.load_template(template).model_dump(mode="json"),
                                            dataset=dataset, config={"epochs": epochs, "seed": r}, owner="local"))
                pid = store.get(rid)["pid"]
                peaks: dict[str, int] = {}
                stop = threading.Event()
                th = threading.Thread(target=_sample, args=(pid, peaks, stop), daemon=True)
                th.start()
                status = wait(store, [rid], timeout=300)[rid]
                th.join(60)  # the sampler ends with the process (it removes its tmp/ after recording the end)
                stop.set()
                if status != "finished":
                    raise RuntimeError(f"job {rid} ended {status}: {store.get(rid).get('message')}")
                for k, v in peaks.items():
                    got[name].setdefault(k, []).append(v / 2**20)
    print("| job | VmData peak GiB (what RLIMIT_DATA counts) | RssAnon peak GiB | private (smaps_rollup) peak GiB | "
          "VmHWM GiB |\n|---|---|---|---|---|")
    for name, g in got.items():
        print(f"| {name} | {spread(g['VmData'])} | {spread(g['RssAnon'])} | {spread(g['Private'])} | "
              f"{spread(g['VmHWM'])} |")
    _after()


# ---- links -----------------------------------------------------------------------------------------------------

def links() -> None:
    """Share link length of every built-in template."""
    import builder
    from builder.graph.share import MAX_LINK_CHARS, encode_project

    conditions("links: share links of the built-in templates (builder.graph.share.encode_project)")
    lengths = {t["name"]: len(encode_project(builder.load_template(t["name"]), limit=None))
               for t in builder.list_templates()}
    print(" ".join(f"{k} {v:,}" for k, v in lengths.items()))
    print(f"{min(lengths.values()):,}-{max(lengths.values()):,} characters over {len(lengths)} templates "
          f"(limit {MAX_LINK_CHARS:,})")
    _after()


# ---- mha -------------------------------------------------------------------------------------------------------

def mha() -> None:
    """Cross-attention with kdim/vdim != embed_dim imported from the three sources: the largest difference."""
    import logging

    from bench.import_coverage import coverage

    conditions("mha: nn.MultiheadAttention(8, 2, kdim=6, vdim=6) imported (bench/import_coverage.py coverage)")
    logging.disable(logging.WARNING)
    for row in coverage(["mha_separate_qkv"]):
        print(f"{row['source']}: max |imported - original| {row.get('diff', float('nan')):.2g} "
              f"({row.get('layers')} layers, {row.get('ops')} Op nodes){'' if row['ok'] else ' FAIL'}")
    _after()


# ---- compile ---------------------------------------------------------------------------------------------------

def compile_step(repeats: int, template: str = "cnn") -> None:
    """A training step of ``template`` (batch 64, digits-sized input) eager and through torch.compile."""
    import torch

    import builder
    from builder.graph.compile import compile_graph
    from builder.graph.cost import node_costs, total_macs
    from builder.training.threads import torch_threads

    project = builder.load_template(template)
    torch.set_num_threads(torch_threads(total_macs(node_costs(project.graph)) * 64, cap=torch.get_num_threads()))
    conditions(f"compile: {template} training step, batch 64, eager vs torch.compile (what torch_compile turns on; "
               "threads as the trainer picks them)")
    torch.manual_seed(0)
    model = compile_graph(project.graph)
    shape = next(n.params["shape"] for n in project.graph.nodes if n.type == "Input")
    x, y = torch.randn(64, *shape), torch.randint(0, 10, (64,))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    fwd = {"eager": model, "compiled": torch.compile(model)}

    def step(f: torch.nn.Module) -> None:
        opt.zero_grad()
        out = f(x)
        torch.nn.functional.cross_entropy(out[0] if isinstance(out, tuple) else out, y).backward()
        opt.step()

    fwd["eager"].train()
    t = time.perf_counter()
    step(fwd["compiled"])
    compile_s = time.perf_counter() - t
    for _ in range(5):
        step(fwd["eager"])
        step(fwd["compiled"])

    def block(f: torch.nn.Module) -> None:
        for _ in range(BLOCK):
            step(f)

    times = _interleaved({k: (lambda f=f: block(f)) for k, f in fwd.items()}, repeats)
    ratio = [c / e for c, e in zip(times["compiled"], times["eager"])]
    print(f"{template}: first compiled step (the compile) {compile_s:.1f} s; a step (mean of {BLOCK} per round) eager "
          f"{spread(times['eager'], 1e3 / BLOCK, ' ms')}, compiled {spread(times['compiled'], 1e3 / BLOCK, ' ms')}; "
          f"compiled / eager per round {spread(ratio)}")
    _after()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts of {', '.join(PARTS)}")
    ap.add_argument("--repeats", type=int, default=11, help="interleaved repeats of the quick measurements")
    ap.add_argument("--quick", action="store_true", help="few repeats of everything (a smoke run, not figures)")
    ap.add_argument("--pairs", type=int, default=5, help="interleaved pairs of trainings in the sandbox part")
    ap.add_argument("--compile", action="store_true", help="also the torch.compile step (a minute or more a template)")
    ap.add_argument("--compile-templates", default="cnn", help="templates of the compile part, comma-separated")
    a = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    parts = [p.strip() for p in a.only.split(",") if p.strip()]
    if unknown := set(parts) - set(PARTS) - {"compile"}:
        ap.error(f"unknown part(s) {sorted(unknown)}; choose from {', '.join(PARTS)}, compile")
    n = 3 if a.quick else a.repeats
    if "csv" in parts:
        csv_header(n, 2 if a.quick else 3)
    if "probe" in parts:
        probe(n, 1 if a.quick else 3)
    if "sandbox" in parts:
        sandbox(n, 2 if a.quick else a.pairs, 3 if a.quick else 20)
    if "memory" in parts:
        memory(1 if a.quick else 3)
    if "links" in parts:
        links()
    if "mha" in parts:
        mha()
    if a.compile or "compile" in parts:
        for template in a.compile_templates.split(","):
            compile_step(n, template.strip())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
