"""A class on one server under load (issue 22): N simulated students each submit a small training job through
builder.jobs.queue (the path the Train page takes) within a short window, with quotas on, while the pages' store
reads are timed server-side.

What it reports:

* queue wait per job (submit returned -> the job seen ``running``; polled every 0.1 s), median with its p10-p90
  over the jobs (bench/results.py) and max; the makespan (first submit -> last job ended: one class, a single
  value); every admitted job ends ``finished`` (none lost);
* quotas under load: some students (``--greedy``) fire three submits at once from three threads with
  ``running=1`` (one live job, queued or running, per student): each must get exactly one admitted and two
  QuotaErrors, and no student ever holds more than one live job;
* per-request latency of the store reads the pages make while the queue drains, each timed as the server
  does it (one call, its own connection): a student's Train page (its run, queue position, new curve points),
  Runs page (its runs), Classes page (its quota line), the teacher's Classes page (every member's runs +
  leaderboard) and the admin's Server page (every job): median with its p10-p90, p95 and max over the requests.

The conditions line (bench/results.py) is printed first.

Usage::

    PYTHONPATH=$PWD python bench/load_class.py [--students 30] [--epochs 3] [--window 30] [--write]

``--write`` replaces the "Class on one server under load" section of bench/RESULTS.md. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SECTION = "## Class on one server under load (bench/load_class.py, issue 22)"
TEACHER = "user:teacher@school.org"


from bench.results import commit, conditions, spread  # noqa: E402
from builder.graph.latency import quantile  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--students", type=int, default=30)
    p.add_argument("--greedy", type=int, default=5, help="students who fire three submits at once")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--window", type=float, default=30.0, help="seconds over which the students submit")
    p.add_argument("--write", action="store_true")
    args = p.parse_args(argv)
    conditions(f"Class on one server: bench/load_class.py --students {args.students} --greedy {args.greedy} "
               f"--epochs {args.epochs} --window {args.window:g}")

    ws = Path(tempfile.mkdtemp(prefix="layerlab-load-"))
    load_before = os.getloadavg()[0]
    os.environ.update({"LAYERLAB_WORKSPACE": str(ws), "LAYERLAB_TEACHERS": TEACHER, "LAYERLAB_ADMINS": "",
                       "LAYERLAB_QUOTA_RUNNING": "1", "LAYERLAB_QUOTA_QUEUED": "",
                       "LAYERLAB_TORCH_THREADS": "1", "LAYERLAB_LAUNCHER_IDLE_S": "30"})
    from builder.admin import housekeeping
    from builder.data.access import SYSTEM
    from builder.graph.templates import load_template
    from builder.jobs import queue as jobs
    from builder.jobs import quotas, warm
    from builder.jobs.queue import JobSpec, submit
    from builder.jobs.quotas import QuotaError
    from builder.runs import classes
    from builder.runs.store import RunStore
    from builder.training.run_status import is_final, is_live

    store = RunStore(ws, actor=SYSTEM)
    project = load_template("mlp")
    students = [f"anon:{i:032x}" for i in range(1, args.students + 1)]
    cls = classes.create_class(ws, TEACHER, "load test", project)
    for s in students:
        classes.join_class(ws, cls["code"], s)
    cls = classes.get_class(ws, cls["id"], SYSTEM)
    spec = project.model_dump(mode="json")
    warm.warm_launcher(ws)  # as the app's warm-up does
    time.sleep(3.0)

    submitted: dict[str, float] = {}  # run id -> when submit returned
    refused: dict[str, int] = {}
    errors: list[str] = []
    lock = threading.Lock()
    t0 = time.monotonic()

    def one(owner: str) -> None:
        try:
            rid = submit(RunStore(ws, actor=SYSTEM), JobSpec(project=spec, dataset="moons", owner=owner, name="net",
                                               config={"epochs": args.epochs, "device": "cpu"}))
            with lock:
                submitted[rid] = time.monotonic()
        except QuotaError:
            with lock:
                refused[owner] = refused.get(owner, 0) + 1
        except Exception as e:  # counted: a lost job
            with lock:
                errors.append(f"{owner}: {type(e).__name__}: {e}")

    def student(owner: str, greedy: bool) -> None:
        time.sleep(random.uniform(0, args.window))
        burst = [threading.Thread(target=one, args=(owner,)) for _ in range(3 if greedy else 1)]
        for t in burst:
            t.start()
        for t in burst:
            t.join()

    random.seed(0)
    greedy = set(random.sample(students, min(args.greedy, len(students))))
    threads = [threading.Thread(target=student, args=(s, s in greedy)) for s in students]
    for t in threads:
        t.start()

    seen_running: dict[str, float] = {}
    seen_final: dict[str, float] = {}
    max_live: dict[str, int] = {}
    lat: dict[str, list[float]] = {k: [] for k in ("train page", "runs page", "quota line", "teacher class page",
                                                   "admin jobs")}
    done = threading.Event()

    def watch() -> None:  # the queue, every 0.1 s: when each job starts; live jobs per owner
        while not done.is_set():
            rows = RunStore(ws, mark_interrupted=False, actor=SYSTEM).list_runs(limit=10_000)
            now = time.monotonic()
            per: dict[str, int] = {}
            for r in rows:
                if r["status"] != "queued" and r["id"] not in seen_running:
                    seen_running[r["id"]] = now
                if is_final(r["status"]) and r["id"] not in seen_final:
                    seen_final[r["id"]] = now
                if is_live(r["status"]):
                    per[r["owner"]] = per.get(r["owner"], 0) + 1
            for o, n in per.items():
                max_live[o] = max(max_live.get(o, 0), n)
            time.sleep(0.1)

    def timed(kind: str, fn) -> None:
        t = time.perf_counter()
        fn()
        lat[kind].append(time.perf_counter() - t)

    def pages() -> None:  # what the open pages read, one request after the other
        after: dict[str, int] = {}
        while not done.is_set():
            with lock:
                ids = list(submitted)
            if ids:
                rid = random.choice(ids)
                s = RunStore(ws, actor=SYSTEM)

                def train_page(rid=rid, s=s) -> None:
                    run = s.get(rid)
                    s.queue_position(rid)
                    _, after[rid] = s.metrics_after(rid, "epoch", after.get(rid, 0))
                    s.metrics_after(rid, "step", 0)
                    return run

                timed("train page", train_page)
                owner = RunStore(ws, actor=SYSTEM).get(rid)["owner"]
                timed("runs page", lambda o=owner: RunStore(ws, actor=SYSTEM).list_runs(owner=o, limit=500))
                timed("quota line", lambda o=owner: quotas.usage(RunStore(ws, actor=SYSTEM), o))
            timed("teacher class page", lambda: classes.leaderboard(RunStore(ws, actor=SYSTEM), cls,
                                                                    classes.class_runs(RunStore(ws, actor=SYSTEM), cls)))
            timed("admin jobs", lambda: housekeeping.server_jobs(RunStore(ws, actor=SYSTEM)))
            time.sleep(0.05)

    watchers = [threading.Thread(target=watch, daemon=True), threading.Thread(target=pages, daemon=True)]
    for t in watchers:
        t.start()
    for t in threads:
        t.join()
    t_last_submit = time.monotonic() - t0
    ids = list(submitted)
    final = jobs.wait(store, ids, timeout=240)
    t_end = time.monotonic()
    done.set()
    for t in watchers:
        t.join(timeout=10)

    statuses = {s: sum(1 for v in final.values() if v == s) for s in set(final.values())}
    waits = [seen_running[r] - submitted[r] for r in ids if r in seen_running]
    runs_s = [seen_final[r] - seen_running[r] for r in ids if r in seen_running and r in seen_final]
    per_owner = {}
    for r in store.list_runs(limit=10_000):
        per_owner[r["owner"]] = per_owner.get(r["owner"], 0) + 1
    bypass = [o for o in students if per_owner.get(o, 0) > 1 or max_live.get(o, 0) > 1]
    greedy_ok = all(per_owner.get(o) == 1 and refused.get(o) == 2 for o in greedy)
    nongreedy_ok = all(per_owner.get(o) == 1 and not refused.get(o) for o in students if o not in greedy)
    all_finished = len(final) == len(ids) and all(is_final(v) for v in final.values()) and \
        statuses.get("finished", 0) == len(ids) and not errors

    cores = os.cpu_count()
    try:
        import torch

        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    except Exception:  # noqa: BLE001 - a description only
        gpu = "no GPU"
    machine = f"{platform.machine()} {platform.system()}, {cores} cores, {gpu}"
    lines = [SECTION, "",
             f"Machine: {machine}; {jobs.max_jobs()} job(s) at a time (`LAYERLAB_MAX_JOBS` unset: cores − 1), one "
             "torch thread per job, the warm launcher. "
             f"{args.students} students joined one class; each submitted one job (MLP template, moons, "
             f"{args.epochs} epochs, CPU) through `builder.jobs.queue.submit` at a random moment within "
             f"{args.window:g} s; {len(greedy)} of them fired three submits at once from three threads. Quotas "
             "`running=1` (one live job each, queued or running). The page reads below run back to back in one "
             f"thread of the submitting process (a core's worth of reads while the jobs train on the other). "
             f"Load average before the run {load_before:.1f} (the machine is shared). Run "
             f"{time.strftime('%Y-%m-%d', time.gmtime())}, commit {commit()}.", "",
             "| figure | value |", "|---|---:|",
             f"| jobs admitted / refused by quota / errors | {len(ids)} / {sum(refused.values())} / {len(errors)} |",
             f"| jobs ended finished | {statuses.get('finished', 0)} of {len(ids)} "
             f"({', '.join(f'{k} {v}' for k, v in sorted(statuses.items()))}) |",
             f"| queue wait (submit → running) over the jobs, median (spread) / max | "
             f"{spread(waits, unit=' s', digits=1)} / {max(waits):.1f} s |" if waits else "| queue wait | — |",
             f"| job run time (running → ended, incl. the process start), median (spread) / max | "
             f"{spread(runs_s, unit=' s', digits=1)} / {max(runs_s):.1f} s |" if runs_s else "| job run time | — |",
             f"| last submit / makespan (first submit → last job ended; one run, single values) | "
             f"{t_last_submit:.1f} s / {t_end - t0:.1f} s |",
             f"| greedy students: exactly 1 admitted + 2 refused each | {'yes' if greedy_ok else 'NO'} |",
             f"| other students: 1 admitted, none refused | {'yes' if nongreedy_ok else 'NO'} |",
             f"| students over 1 recorded or live job (quota bypass) | {len(bypass)} |", "",
             "Server-side latency of the store reads the open pages make while the queue drains (each request on "
             "its own connection, as a page rerun does; milliseconds):", "",
             "| page read | requests | median (spread) | p95 | max |", "|---|---:|---:|---:|---:|"]
    for kind, xs in lat.items():
        if xs:
            lines.append(f"| {kind} | {len(xs)} | {spread(xs, 1e3, digits=1)} | {1e3 * quantile(xs, 0.95):.1f} "
                         f"| {1e3 * max(xs):.1f} |")
    lines += ["", "Train page: the run, its queue position and new curve points; Runs page: the student's runs; "
              "quota line: `quotas.usage` (its runs, their folder sizes, GPU-seconds); teacher: "
              "`classes.class_runs` + `leaderboard` over every member; admin: `housekeeping.server_jobs`. "
              "The quota check and the recording are one step under `<workspace>/quota.lock`, so the three "
              "simultaneous submits of a greedy student are checked one after the other.", ""]
    text = "\n".join(lines)
    print(text)
    if errors:
        print("errors:", *errors[:5], sep="\n  ")
    if args.write:
        from bench.results import write_section

        write_section(SECTION, text + "\n")
    shutil.rmtree(ws, ignore_errors=True)
    ok = all_finished and greedy_ok and nongreedy_ok and not bypass
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
