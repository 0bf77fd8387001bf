"""Several servers (issue 33): the run store on SQLite and PostgreSQL under concurrent writers, the cost of jobs'
control polling on PostgreSQL, and 200 jobs of 50 owners through LayerLab's queue onto a local Ray cluster of 4
fake GPU nodes (makespan against the ideal, waiting time per owner).

1. Store writes/s: N writers (8 processes; 64 = 8 processes of 8 threads) each append epoch rows to its own run
   (``RunStore.log_metrics``, one transaction each, as a training job does) for a fixed time; SQLite (WAL, a local disk) and PostgreSQL 15
   (a server started here: tests/postgres.py; fsync off as in the tests: an upper bound for a real disk).
2. Control polls/s: N writers read their run's control row (``RunStore.take_control``) as fast as they can;
   how many jobs one PostgreSQL server serves at a poll every 0.2 s / 1 s.
3. Scheduling: 200 jobs (1-8 per owner, 50 owners, sleeping 0.5-1.5 s: the queue and Ray are measured, not
   training) submitted through :func:`builder.jobs.queue.submit` (quotas, records) to the Ray executor; makespan
   ÷ ideal (GPU-seconds of work ÷ GPUs), and waits (start - submit): max ÷ median, and the spread of owners' mean
   waits.

The store rates are measured ``--rounds`` times (the stores alternating within a round) and printed as the median
with its spread (p10-p90; min-max below 5 rounds; bench/results.py); the scheduling run is one run (its makespan a
single value; the waits' median with their p10-p90 over the jobs). The conditions line comes first.

Usage::

    PYTHONPATH=$PWD python bench/bench_cluster.py [--seconds 5] [--rounds 3] [--jobs 200] [--write]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.results import commit, conditions, spread  # noqa: E402

SECTION = "## Several servers: PostgreSQL store and Ray jobs (issue 33)"


def _worker(url: str | None, ws: str, mode: str, seconds: float, threads: int, barrier, out) -> None:
    """One process of ``threads`` writers, each on its own run (rows inserted directly: no torch imported)."""
    import threading

    if url:
        os.environ["LAYERLAB_DB_URL"] = url
    from builder.data.access import SYSTEM
    from builder.runs.store import RunStore, _new_id

    store = RunStore(ws, actor=SYSTEM, mark_interrupted=False)
    counts = [0] * threads

    def write(i: int) -> None:
        rid = _new_id()
        store._write("INSERT INTO runs (id, name, status, owner) VALUES (?, 'bench', 'running', 'local')", (rid,))
        store.hold()  # a job's logger holds its connection (RunLogger)
        barrier.wait()
        n, end = 0, time.monotonic() + seconds
        while time.monotonic() < end:
            if mode == "write":
                store.log_metrics(rid, {"type": "epoch", "epoch": n, "step": n, "train_loss": 1.0 / (n + 1)})
            else:
                store.take_control(rid)
            n += 1
        counts[i] = n
        store.release()

    ts = [threading.Thread(target=write, args=(i,)) for i in range(threads)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    out.put(sum(counts))


def store_rate(url: str | None, writers: int, mode: str, seconds: float) -> float:
    """Operations per second of ``writers`` processes on one store (``mode``: write or poll)."""
    ws = tempfile.mkdtemp(prefix="bench-cluster-")
    if url:
        os.environ["LAYERLAB_DB_URL"] = url
    else:
        os.environ.pop("LAYERLAB_DB_URL", None)
    from builder.data.access import SYSTEM
    from builder.runs.store import RunStore

    RunStore(ws, actor=SYSTEM)  # schema made once, before the writers start
    ctx = mp.get_context("spawn")
    nproc = min(writers, 8)  # 64 writers: 8 processes of 8 threads (64 Python processes would not fit in memory)
    barrier, out = ctx.Barrier(writers), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(url, ws, mode, seconds, writers // nproc, barrier, out))
             for _ in range(nproc)]
    [p.start() for p in procs]
    total = sum(out.get(timeout=600) for _ in procs)
    [p.join() for p in procs]
    return total / seconds


def _bench_task(workspace: str, run_id: str, env: dict) -> int:
    """Stands in for a training job on a node: running, sleep its tagged seconds, finished (store writes as a
    job makes them at its start and end)."""
    os.environ.update(env)
    from builder.data.access import SYSTEM
    from builder.runs.store import RunStore

    store = RunStore(workspace, actor=SYSTEM, mark_interrupted=False)
    store.update_status(run_id, "running")
    time.sleep(float(store.get(run_id)["tags"]["seconds"]))
    store.update_status(run_id, "finished")
    return 0


def schedule(url: str, n_jobs: int, owners: int, gpu_nodes: int) -> dict:
    """200 jobs of 50 owners through jobs.submit and the Ray executor on ``gpu_nodes`` fake GPU nodes."""
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # every Ray process on 127.0.0.1
    os.environ["PYTHONPATH"] = str(ROOT)
    import ray
    from ray.cluster_utils import Cluster

    from builder.data.access import SYSTEM
    from builder.graph.templates import load_template
    from builder.jobs import executors
    from builder.jobs import queue as jobs
    from builder.runs.store import RunStore

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False,
                                                            "object_store_memory": 80 * 2**20,
                                                            "node_ip_address": "127.0.0.1"})
    for _ in range(gpu_nodes):
        cluster.add_node(num_cpus=4, num_gpus=1, object_store_memory=80 * 2**20, node_ip_address="127.0.0.1")
    cluster.wait_for_nodes()
    ws = tempfile.mkdtemp(prefix="bench-ray-")
    os.environ.update({"LAYERLAB_DB_URL": url, executors.ENV_RAY_ADDRESS: cluster.address,
                       executors.ENV_GPU_MEMORY: "2.5"})
    store = RunStore(ws, actor=SYSTEM)
    ex = executors.executor_for(ws)
    ex._remote = ray.remote(max_retries=0)(_bench_task)
    rng = random.Random(0)
    counts = [1] * owners  # 1-8 jobs per owner, n_jobs in all
    while sum(counts) < n_jobs:
        i = rng.randrange(owners)
        counts[i] += counts[i] < 8
    order = [f"user:o{i}" for i, c in enumerate(counts) for _ in range(c)]
    rng.shuffle(order)
    project = load_template("mlp").model_dump()
    submitted, ids, t0 = {}, [], time.monotonic()
    for owner in order:
        secs = round(rng.uniform(0.5, 1.5), 2)
        rid = jobs.submit(store, jobs.JobSpec(project=project, dataset="moons", owner=owner,
                                              config={"epochs": 1}, tags={"seconds": str(secs)}))
        submitted[rid] = time.time()
        ids.append(rid)
    assert ex.wait_idle(3600)
    makespan = time.monotonic() - t0
    runs = {r["id"]: r for r in store.list_runs(limit=10_000)}
    frac = runs[ids[0]] and store.get(ids[0])["environment"]["resources"]["num_gpus"]
    work = sum(float(runs[r]["tags"]["seconds"]) * frac for r in ids)
    from datetime import datetime

    waits: dict[str, list[float]] = {}
    for rid in ids:
        started = datetime.fromisoformat(runs[rid]["started_at"]).timestamp()
        waits.setdefault(runs[rid]["owner"], []).append(max(0.0, started - submitted[rid]))
    flat = [w for ws_ in waits.values() for w in ws_]
    means = [statistics.mean(w) for w in waits.values()]
    executors.close_all()
    ray.shutdown()
    cluster.shutdown()
    return {"jobs": len(ids), "owners": owners, "statuses": sorted({r["status"] for r in runs.values()}),
            "gpu_fraction": frac, "makespan_s": makespan, "ideal_s": work / gpu_nodes,
            "wait_max_over_median": max(flat) / max(statistics.median(flat), 1e-9),
            "owner_mean_wait_max_over_median": max(means) / max(statistics.median(means), 1e-9),
            "wait_median_s": statistics.median(flat), "wait_max_s": max(flat), "waits": spread(flat, unit=" s", digits=1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=3, help="rounds of the store rates, the stores alternating")
    ap.add_argument("--jobs", type=int, default=200)
    ap.add_argument("--owners", type=int, default=50)
    ap.add_argument("--skip-ray", action="store_true")
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    conditions(f"Several servers: bench/bench_cluster.py --seconds {args.seconds:g} --rounds {args.rounds} --jobs "
               f"{args.jobs} --owners {args.owners}" + (" --skip-ray" if args.skip_ray else ""))
    from tests.postgres import PostgresServer, bin_dir

    pg = PostgresServer(bin_dir())
    lines = []
    try:
        rows = []
        for writers in (8, 64):
            got: dict[str, tuple[list[float], list[float]]] = {}
            for r in range(args.rounds):
                stores = [("SQLite (WAL)", lambda: None), ("PostgreSQL 15", pg.database)]
                for name, url_of in (stores if r % 2 == 0 else stores[::-1]):
                    w, p = got.setdefault(name, ([], []))
                    w.append(store_rate(url_of(), writers, "write", args.seconds))
                    if name.startswith("Postgre"):
                        p.append(store_rate(url_of(), writers, "poll", args.seconds))
                    print(name, writers, f"writes/s {w[-1]:.0f}", f"polls/s {p[-1]:.0f}" if p else "", flush=True)
            for name in ("SQLite (WAL)", "PostgreSQL 15"):
                rows.append((name, writers, *got[name]))
        lines += [f"`bench/bench_cluster.py --seconds {args.seconds:g} --rounds {args.rounds}` "
                  f"({time.strftime('%Y-%m-%d', time.gmtime())}, commit {commit()}, load average "
                  f"{os.getloadavg()[0]:.1f} at the end); rates: median (spread) of the rounds.", "",
                  "| store | writers | epoch writes/s | control polls/s | jobs at 1 poll / 0.2 s | at 1 poll / 1 s |",
                  "|---|---|---|---|---|---|"]
        for name, writers, w, p in rows:
            if p:
                m = statistics.median(p)
                lines.append(f"| {name} | {writers} | {spread(w, digits=0)} | {spread(p, digits=0)} | {m * 0.2:.0f} | "
                             f"{m:.0f} |")
            else:
                lines.append(f"| {name} | {writers} | {spread(w, digits=0)} | - | - | - |")
        if not args.skip_ray:
            r = schedule(pg.database(), args.jobs, args.owners, 4)
            print(r, flush=True)
            lines += ["", f"{r['jobs']} jobs of {r['owners']} owners (1-8 each), 0.5-1.5 s each, GPU share "
                      f"{r['gpu_fraction']} each, on 4 fake GPU nodes (4 CPUs, 1 GPU each; Ray 2.60, one machine of 2 "
                      "cores):", "",
                      "| makespan s (one run) | ideal s | makespan ÷ ideal | wait over the jobs, median (spread) | "
                      "wait max s | max ÷ median wait | owners' mean wait max ÷ median |", "|---|---|---|---|---|---|---|",
                      f"| {r['makespan_s']:.1f} | {r['ideal_s']:.1f} | **{r['makespan_s'] / r['ideal_s']:.2f}** | "
                      f"{r['waits']} | {r['wait_max_s']:.1f} | {r['wait_max_over_median']:.2f} | "
                      f"{r['owner_mean_wait_max_over_median']:.2f} |"]
    finally:
        pg.stop()
    text = "\n".join(lines)
    print(text)
    if args.write:
        from bench.results import write_section

        write_section(SECTION, f"{SECTION}\n\n{text}\n")


if __name__ == "__main__":
    main()
