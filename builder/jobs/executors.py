"""Where jobs run: the executor interface and its backends. A job is recorded by :func:`builder.jobs.queue.submit`
(owner, quotas and the queue decide first: :mod:`builder.jobs.quotas`); an executor then starts it:

- :class:`LocalExecutor` (the default): a process on this server (the warm fork server of
  :mod:`builder.jobs.queue`, GPU placement by memory estimate: :mod:`builder.training.gpus`).
- :class:`RayExecutor` (``LAYERLAB_RAY_ADDRESS=host:port``): a Ray task on the cluster with CPU, memory and a
  fraction of a GPU computed from LayerLab's own estimate (:func:`job_resources`). LayerLab's queue stays in front
  of Ray: a job goes to Ray only when the cluster has room for it, the owner with the fewest jobs on the cluster
  first (one owner's 50 jobs do not hold back everyone else's). The task (:mod:`builder.jobs.ray_task`) runs the
  same job process as a local server (``python -m builder.jobs.queue run``, sandboxed) on the node, with the
  store's database URL (PostgreSQL, shared), so pause, resume and stop go through the run's control row as on one
  machine. A job whose node dies, or whose server dies (Ray ends a dead driver's tasks), is marked ``interrupted``
  (resume continues from its last checkpoint on another node, from any server); a cluster that cannot be reached
  is a :class:`~builder.errors.RunStoreError` within :data:`CONNECT_TIMEOUT_S`, never a hang.

A Slurm backend (submitit) fits the same interface: ``start`` would ``sbatch`` the same job command with
``--gres=gpu`` and ``--mem`` from :func:`job_resources`, and its monitor would read ``sacct`` states (NODE_FAIL,
PREEMPTED: interrupted) where this one reads Ray's (docs/scale-out.md). Example::

    >>> Resources.for_need(3 * 2**30, gpu_bytes=8 * 2**30, ram=2**30)
    Resources(num_cpus=1.0, num_gpus=0.38, memory=1073741824)
    >>> Resources.for_need(0, gpu_bytes=8 * 2**30, ram=2**30).num_gpus
    0.0
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from builder.data.access import SYSTEM, Actor
from builder.errors import RunStoreError
from builder.graph.shapes import one_analysis_per_graph
from builder.jobs.job_sandbox import PASSED_ENV
from builder.jobs.queue import JobSpec, gpu_device, job_memory, job_need, start_local
from builder.jobs.quotas import limits
from builder.jobs.ray_task import ENV_PLACED, run_on_node
from builder.process.sandbox import passes
from builder.runs import db as _db
from builder.runs.owners import owner_of
from builder.runs.store import RunStore
from builder.training.run_status import ENV_HOST, RunStatus, beat_s, is_final

ENV_RAY_ADDRESS = "LAYERLAB_RAY_ADDRESS"
ENV_GPU_MEMORY = "LAYERLAB_RAY_GPU_MEMORY_GB"  # the memory of one GPU of the pool (what a fraction is of)
CONNECT_TIMEOUT_S = 20.0
DISPATCH_S = 0.25  # how often the queue in front of Ray looks for room, finished tasks and stop requests
RAM_BASE = 768 * 2**20  # a job process's own memory (Python, torch, the data loader) besides its model


class Executor(Protocol):
    """Starts a recorded (queued) job somewhere; the job records its own progress in the store."""

    def start(self, store: RunStore, run_id: str) -> None:
        """Start the job of ``run_id`` (already recorded and admitted). Raises RunStoreError."""


class LocalExecutor:
    """A process on this server: :func:`builder.jobs.queue.start_local` (warm fork server, else a new process)."""

    def start(self, store: RunStore, run_id: str) -> None:
        """Launch the job's process and record its pid."""
        start_local(store, run_id)


@dataclass(frozen=True)
class Resources:
    """What one job asks Ray for: CPUs, a fraction of one GPU, bytes of host memory."""

    num_cpus: float
    num_gpus: float
    memory: int

    @classmethod
    def for_need(cls, gpu_need: int, *, gpu_bytes: int, ram: int, cpus: float = 1.0) -> Resources:
        """A job that needs ``gpu_need`` bytes on a GPU of ``gpu_bytes`` (0: a CPU job), ``ram`` bytes of RAM; the
        GPU fraction rounded up to a hundredth (Ray's granularity is 1/10000) and at most one GPU."""
        frac = 0.0 if gpu_need <= 0 else min(1.0, math.ceil(100 * gpu_need / max(gpu_bytes, 1)) / 100)
        return cls(float(cpus), frac, int(ram))


def gpu_bytes() -> int:
    """The memory of one GPU of the cluster (``LAYERLAB_RAY_GPU_MEMORY_GB``, default 16 GiB)."""
    try:
        return int(float(os.environ.get(ENV_GPU_MEMORY) or 16) * 2**30)
    except ValueError:
        raise RunStoreError(f"{ENV_GPU_MEMORY} is the GiB of one GPU; received: "
                            f"{os.environ.get(ENV_GPU_MEMORY)!r}. Fix: write a number such as 24") from None


def job_resources(store: RunStore, run_id: str) -> Resources:
    """A recorded job's resources from LayerLab's estimates: its training memory (:func:`builder.jobs.queue.job_memory`:
    batch size, loss, teacher) on CUDA (:func:`builder.jobs.queue.job_need`) as a share of one GPU when the job may use one, the same on CPU
    plus :data:`RAM_BASE` as host memory."""
    data = store.folder(run_id, actor=SYSTEM).job_spec_to_run()
    origin = data.pop("origin", None)
    spec = JobSpec(**{**(origin or data), "owner": "local"})
    run = store.get(run_id, actor=SYSTEM)
    owner = store.as_actor(Actor.of_job(owner_of(run)))  # its teacher is read as the job reads it
    with one_analysis_per_graph():  # the GPU estimate reuses the host-memory estimate's analysis
        ram = job_memory(spec, "cpu", owner).peak + RAM_BASE
        gpu = job_need(spec, owner) if gpu_device(JobSpec(**{**data, "owner": "local"}), origin,
                                                  run.get("config")) else 0
    return Resources.for_need(gpu, gpu_bytes=gpu_bytes(), ram=ram)


# ----------------------------------------------------------------------------------------------- Ray
@dataclass
class _Job:
    run_id: str
    owner: str
    res: Resources
    queued: float
    ref: Any = None


class RayExecutor:
    """Jobs as Ray tasks on the cluster at ``address``, behind LayerLab's own queue (one per workspace and
    process: :func:`executor_for`)."""

    def __init__(self, workspace: str | Path, address: str, *, background: bool = True):
        self.workspace, self.address = Path(workspace), address
        self._ray = _connect(address)
        self.store = RunStore(workspace, actor=SYSTEM, mark_interrupted=False)  # its database, as when it started
        self._pending: list[_Job] = []
        self._running: dict[str, _Job] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._beat = 0.0  # when this server last wrote the heartbeat of the jobs it holds
        self._remote = self._ray.remote(max_retries=0, max_calls=1)(run_on_node)
        self._thread = threading.Thread(target=self._loop, name="layerlab-ray-queue", daemon=True)
        if background:  # else the caller calls dispatch() (tests, benches)
            self._thread.start()

    def start(self, store: RunStore, run_id: str) -> None:
        """Queue the job in front of Ray (it goes to Ray when the cluster has room: :meth:`dispatch`)."""
        run = store.get(run_id, actor=SYSTEM)
        job = _Job(run_id, str(run.get("owner")), job_resources(store, run_id), float(run.get("queued_at") or time.time()))
        # LayerLab's record of where the job runs (run_time.SYSTEM_KEYS), whoever submitted it
        store.as_actor(SYSTEM).set_environment(run_id, executor="ray", ray_address=self.address,
                                               resources=job.res.__dict__)
        with self._lock:
            self._pending.append(job)
        self._wake.set()

    # ---- the queue in front of Ray
    def close(self) -> None:
        """Stop the queue's thread (the jobs already on the cluster go on while this process lives; they end
        with it: Ray ends the tasks of a driver that exits)."""
        self._closed = True
        self._wake.set()

    def _loop(self) -> None:
        while not self._closed:
            self._wake.wait(DISPATCH_S)
            self._wake.clear()
            if self._closed or not self._ray.is_initialized():
                return
            try:
                self.dispatch()
            except Exception as e:  # noqa: BLE001 - the queue keeps going; the message is in the server log
                print(f"layerlab ray queue: {e}", flush=True)

    def dispatch(self) -> None:
        """One round: collect finished tasks (a lost node: the run is interrupted), write the heartbeat of the
        jobs this server holds, drop pending jobs asked to stop, then hand to Ray the pending jobs
        :func:`place_jobs` admits (decided against the store, so servers sharing it share the cluster's room,
        the owners' running caps and one fair order)."""
        store = self.store
        self._collect(store)
        with self._lock:
            held = [j.run_id for j in (*self._pending, *self._running.values())]
            if held and time.monotonic() - self._beat >= beat_s():  # one statement for every job held here
                self._beat = time.monotonic()
                store.beat(held)
            if not self._pending:
                return
            controls = _controls(store, [j.run_id for j in self._pending])  # one query for every waiting job
            for job in [j for j in self._pending if controls.get(j.run_id) == "stop"]:
                self._pending.remove(job)
                store.take_control(job.run_id)
                store.update_status(job.run_id, RunStatus.STOPPED, "stopped while queued; resume to start it")
            total = self._ray.cluster_resources()
            for job in place_jobs(store, self._pending, {"num_cpus": total.get("CPU", 0.0),
                                                         "num_gpus": total.get("GPU", 0.0)}):
                self._pending.remove(job)
                try:
                    self._submit(job)
                except Exception as e:  # noqa: BLE001 - the run says why and can be resumed
                    store.update_status(job.run_id, RunStatus.INTERRUPTED, f"not started on the Ray cluster: "
                                        f"{str(e).splitlines()[0][:200] if str(e) else type(e).__name__}; resume "
                                        f"with `layerlab runs resume {job.run_id}`")
                    continue
                self._running[job.run_id] = job

    def _submit(self, job: _Job) -> None:
        env = {**{k: v for k, v in os.environ.items()  # the settings a job reads, by name (not the server's roles)
                  if passes(k, PASSED_ENV) and k.startswith("LAYERLAB_") and k not in (ENV_RAY_ADDRESS, ENV_HOST)},
               **_db.process_env(self.workspace)}  # the server's database, wherever its URL came from
        opts = {"num_cpus": job.res.num_cpus, "num_gpus": job.res.num_gpus, "memory": job.res.memory}
        job.ref = self._remote.options(**opts).remote(str(self.workspace), job.run_id, env)

    def _collect(self, store: RunStore) -> None:
        with self._lock:
            refs = {j.ref: j for j in self._running.values() if j.ref is not None}
        if not refs:
            return
        done, _ = self._ray.wait(list(refs), num_returns=len(refs), timeout=0)
        for ref in done:
            job = refs[ref]
            try:
                self._ray.get(ref)
                lost = None
            except Exception as e:  # noqa: BLE001 - a worker or node lost, or the task could not run
                lost = type(e).__name__
            with self._lock:
                self._running.pop(job.run_id, None)
            run = store.get(job.run_id, actor=SYSTEM)
            if not is_final(run["status"]):
                why = f"its node left the Ray cluster ({lost})" if lost else "its process ended without recording it"
                store.update_status(job.run_id, RunStatus.INTERRUPTED, f"the training process ended unexpectedly: "
                                    f"{why}; resume with `layerlab runs resume {job.run_id}` (another node takes it)")

    def wait_idle(self, timeout: float) -> bool:
        """Whether every job this executor took has left it (tests and benches)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self._pending and not self._running:
                    return True
            time.sleep(DISPATCH_S)
        return False


def fair_order(pending: list, running_per_owner: dict[str, int]) -> list:
    """Waiting jobs in the order they go to the cluster: the owner with the fewest jobs on it first, then the
    oldest; as jobs are taken each owner's count grows, so owners take turns.

    >>> jobs = [_Job("a1", "ann", None, 1), _Job("a2", "ann", None, 2), _Job("b1", "bob", None, 3)]
    >>> [j.run_id for j in fair_order(jobs, {"ann": 1})]
    ['b1', 'a1', 'a2']
    """
    counts, left, out = dict(running_per_owner), list(pending), []
    while left:
        job = min(left, key=lambda j: (counts.get(j.owner, 0), j.queued))
        out.append(job)
        left.remove(job)
        counts[job.owner] = counts.get(job.owner, 0) + 1
    return out


CLUSTER_LOCK = "cluster.lock"  # one server at a time decides what goes to the cluster (db.workspace_lock)


def place_jobs(store: RunStore, mine: list[_Job], capacity: dict[str, float]) -> list[_Job]:
    """Which of this server's waiting jobs ``mine`` go to the cluster now, decided against the store under one
    lock for every server sharing it (an advisory lock in PostgreSQL, a lock file beside an SQLite store:
    :func:`builder.runs.db.workspace_lock`). The live jobs any server placed (``runs.placed_at``) count against
    ``capacity`` (``num_cpus``, ``num_gpus`` of the cluster) and their owners' running caps
    (:func:`running_cap`); the waiting jobs of every server take turns in one :func:`fair_order`, and a job of
    another server that comes first keeps its room for that server's next round (a server that died stops
    beating: its jobs are interrupted after :func:`~builder.training.run_status.stale_s` and free their room).
    The jobs returned are marked placed before the lock is released. Raises RunStoreError."""
    mine_by_id = {j.run_id: j for j in mine}
    with _db.workspace_lock(store.workspace, CLUSTER_LOCK):
        store.mark_interrupted()  # a dead server's or node's jobs hold no room
        rows = store.live_jobs()
        used = {"num_cpus": 0.0, "num_gpus": 0.0}
        per_owner: dict[str, int] = {}
        waiting: list[_Job] = []
        for r in rows:
            env = json.loads(r["environment"] or "{}")
            if env.get("executor") != "ray":
                continue
            res = env.get("resources") or {}
            job = mine_by_id.get(r["id"]) or _Job(r["id"], str(r["owner"]), Resources(
                float(res.get("num_cpus") or 0), float(res.get("num_gpus") or 0), int(res.get("memory") or 0)),
                float(r["queued_at"] or 0))
            if r["placed_at"] is not None:
                per_owner[job.owner] = per_owner.get(job.owner, 0) + 1
                for k in used:
                    used[k] += getattr(job.res, k)
            elif r["status"] == RunStatus.QUEUED:
                waiting.append(job)
        caps = {o: running_cap(store.workspace, o) for o in {j.owner for j in waiting}}
        chosen: list[_Job] = []
        for job in fair_order(waiting, per_owner):
            fits = all(used[k] + getattr(job.res, k) <= capacity.get(k, 0.0) + 1e-9 for k in used)
            if not fits or per_owner.get(job.owner, 0) >= caps[job.owner]:
                continue
            if job.run_id in mine_by_id:
                chosen.append(job)
            per_owner[job.owner] = per_owner.get(job.owner, 0) + 1  # another server's job keeps its room too
            for k in used:
                used[k] += getattr(job.res, k)
        store.mark_placed([j.run_id for j in chosen])
    return chosen


def running_cap(workspace: str | Path, owner: str) -> float:
    """How many of ``owner``'s jobs may run at once on the cluster: its ``running`` quota
    (:func:`builder.jobs.quotas.limits`), else no limit."""
    cap = limits(workspace, owner).get("running")
    return float("inf") if cap is None else cap


def _controls(store: RunStore, run_ids: list[str]) -> dict[str, str]:
    """The pending control actions of many runs in one query (the queue reads every waiting job's at once)."""
    if not run_ids:
        return {}
    rows = store._read(f"SELECT id, control FROM runs WHERE control IS NOT NULL AND id IN "
                       f"({', '.join('?' * len(run_ids))})", run_ids)
    return {r["id"]: r["control"] for r in rows}


_CONNECTED: dict[str, str] = {}


def _connect(address: str) -> Any:
    """The ``ray`` module connected to ``address``; RunStoreError when it cannot be reached in time."""
    try:
        import ray  # lazy: heavy (ray)
    except ImportError:
        raise RunStoreError(f"{ENV_RAY_ADDRESS} is set but Ray is not installed. Fix: pip install "
                            "'layerlab[cluster]' on this server and every node") from None
    if ray.is_initialized():
        if _CONNECTED.get("address") not in (None, address):
            raise RunStoreError(f"this server is connected to the Ray cluster at {_CONNECTED['address']}; "
                                f"received: {ENV_RAY_ADDRESS}={address}. Fix: restart the server with one address")
        return ray
    box: dict[str, Any] = {}

    def connect() -> None:
        try:
            ray.init(address=address, namespace="layerlab", log_to_driver=False, ignore_reinit_error=True,
                     configure_logging=False)
        except Exception as e:  # noqa: BLE001 - said below as the store's error
            box["error"] = e

    _CONNECTED["address"] = address
    t = threading.Thread(target=connect, daemon=True)
    t.start()
    t.join(CONNECT_TIMEOUT_S)
    if t.is_alive() or "error" in box:
        _CONNECTED.clear()
        why = f"no answer in {CONNECT_TIMEOUT_S:.0f} s" if t.is_alive() else str(box["error"]).splitlines()[0][:200]
        raise RunStoreError(f"cannot reach the Ray cluster at {address}; received: {why}. Fix: start it (`ray start "
                            f"--head` on the head node), or unset {ENV_RAY_ADDRESS} to train on this server")
    return ray


_EXECUTORS: dict[tuple[str, str, int], RayExecutor] = {}
_EX_LOCK = threading.Lock()


def close_all() -> None:
    """Stop every Ray executor's queue thread of this process (before ``ray.shutdown()``)."""
    with _EX_LOCK:
        for ex in _EXECUTORS.values():
            ex.close()
        _EXECUTORS.clear()
        _CONNECTED.clear()


def executor_for(workspace: str | Path) -> Executor:
    """The executor of this server: :class:`RayExecutor` when ``LAYERLAB_RAY_ADDRESS`` is set (one per workspace
    and process), else :class:`LocalExecutor`. Raises RunStoreError for a cluster that cannot be reached."""
    address = os.environ.get(ENV_RAY_ADDRESS, "").strip()
    if not address:
        return LocalExecutor()
    if _db.is_sqlite(_db.database_url(workspace)) and address not in ("local", "auto"):
        raise RunStoreError(f"jobs on a Ray cluster ({ENV_RAY_ADDRESS}={address}) record their runs in a database "
                            f"every node reaches; received: the workspace's SQLite file. Fix: set {_db.ENV_DB_URL} "
                            "to a PostgreSQL database (docs/scale-out.md)")
    key = (str(Path(workspace).resolve()), address, os.getpid())
    with _EX_LOCK:
        if key not in _EXECUTORS:
            _EXECUTORS[key] = RayExecutor(workspace, address)
        return _EXECUTORS[key]


__all__ = ["Executor", "LocalExecutor", "RayExecutor", "Resources", "job_resources", "executor_for",
           "fair_order", "place_jobs", "running_cap", "close_all", "ENV_RAY_ADDRESS", "ENV_GPU_MEMORY", "ENV_PLACED", "CONNECT_TIMEOUT_S"]
