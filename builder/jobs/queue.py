"""Training jobs: each run started from the app (and each resume, each search trial) is its own OS process.

:func:`submit` records the run (``queued``, with its owner and tags) and launches
``python -m builder.jobs.queue run --workspace W RUN_ID`` in a new session, detached from the caller, with its
output in ``runs/<id>/job.log``. The process waits for a slot (at most :func:`max_jobs` running per
workspace and host; the claim is one SQLite transaction), then trains through :mod:`builder.runs.pipeline`,
writing status, curves, checkpoints and live attributions to the run store. Nothing is shared with the
caller but the store: :func:`request` writes ``pause``/``resume``/``stop`` into the run's ``control``
column, which the process polls (:class:`StoreControl`). A stopped job writes a checkpoint and ends
``stopped``; a process that dies (exception outside training, kill -9, out of memory) is marked
``interrupted`` by the next :meth:`RunStore.mark_interrupted` (any reader calls it; :func:`wait` does every
poll), and :func:`submit` with ``resume_run`` continues it from its last checkpoint. A job runs under limits,
in a clean environment, starting no process (:mod:`builder.jobs.job_sandbox`, entered before the model is
built); one that meets a limit or crashes ends ``failed`` with a line naming it. Example::

    # not a doctest (needs files or training): run by tests/jobs/test_queue.py::test_submit_runs_in_its_own_process_to_finished
    store = RunStore(tmp_path, actor=Actor("alice"))
    rid = submit(store, JobSpec(project=load_template("mlp").model_dump(), dataset="moons",
                                config={"epochs": 5}, owner="alice"))
    wait(store, [rid], timeout=120)
    # -> {'20261122-113000-ab12cd': 'finished'}
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import subprocess
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from builder.data.access import CONTROL, LOCAL_OWNER, STOP, SYSTEM, Actor, check, refusal
from builder.errors import (
    AccessDenied,
    DatasetError,
    DiskFullError,
    LayerLabError,
    RunStoreError,
    TrainingError,
)
from builder.graph.memory import training_memory
from builder.graph.project import load_project
from builder.graph.shapes import infer_shapes, one_analysis_per_graph
from builder.interpret.boundary import DecisionBoundary
from builder.jobs import job_sandbox
from builder.jobs.control import POLL_S, SHARED_POLL_S, StoreControl  # noqa: F401 (importable from here as before)
from builder.jobs.quotas import admit, check_quota, gpu_limit, wants_gpu
from builder.jobs.ray_task import ENV_PLACED
from builder.jobs.warm import kept, launch_warm, launcher
from builder.process.launcher import spawn_detached
from builder.runs.classes import class_for
from builder.runs.db import process_env
from builder.runs.owners import owner_of
from builder.runs.record import stopped_tags
from builder.runs.run_time import SPEC_DIGEST
from builder.runs.store import CONTROL_ACTIONS, RunStore
from builder.runs.summary import run_data, run_source
from builder.tracking import tracker  # mlflow itself stays unimported here
from builder.tracking_destinations import (
    check_destination,
    job_destination,
    recorded_destination,
    resolve_tracking,
    scrub_credentials,
)
from builder.training import gpus as _gpus
from builder.training.callbacks import Callback
from builder.training.config import TrainConfig
from builder.training.run_folder import read_json_file
from builder.training.run_status import (
    RunStatus,
    beat_s,
    host_name,
    is_final,
    is_live,
    resume_refusal,
)
from builder.training.threads import (  # noqa: F401  (their home moved; these names stay importable from here)
    ENV_MAX_JOBS,
    ENV_TORCH_THREADS,
    THREADS_MACS_PER_CORE,
    explicit_threads,
    max_jobs,
    torch_threads,
)

GPU_QUERY: _gpus.GpuQuery = _gpus.query_gpus  # what the GPUs have free (tests fake it: builder.training.gpus.Gpu lists)
GPU_USED = _gpus.query_used  # GPU bytes per process id (jobs placed but not allocated yet count at their estimate)
GPU_LOCK = "gpu.lock"  # in the workspace: one job at a time decides its GPU and claims its slot
_CALLBACKS = ("live_attributions", "decision_boundary")


@dataclass
class JobSpec:
    """What a job trains: the arguments of :func:`builder.runs.pipeline.run_training`, as plain JSON data.

    ``callbacks`` names callbacks the job process builds: ``live_attributions`` (or
    ``live_attributions:METHOD``) records attributions each epoch into the run folder
    (:func:`builder.interpret.live.live_frames` reads them); ``decision_boundary`` stores a prediction grid with an epoch's
    metrics for 2-D toy datasets (the first and last epoch and, within 3.5 % of the training time, those between) (:func:`builder.interpret.boundary.latest_boundary` reads it). ``resume_run`` resumes that run instead of creating one; ``config``
    then holds the overrides. ``kind`` ``"prune"``: the job prunes run ``prune["parent"]`` into the recorded run
    and fine-tunes it (:func:`builder.training.prune.run_prune_job`; ``prune`` holds the arguments of
    :func:`~builder.training.prune.prune_run`, the spec is made by :func:`~builder.training.prune.prune_job_spec`).
    A cross-validation fold is a ``"train"`` job whose ``dataset_options`` carry ``fold``/``folds`` and whose tags
    name its group (:func:`builder.runs.crossval.crossval_job_specs`, submitted by :func:`submit_group`).
    ``tracking``: the MLflow tracker the submitter chose for this run (:func:`builder.tracking_destinations.resolve_tracking`
    at submission; checked again by the job), never a setting of the server process; its ``job.json`` names the
    server config's default as :data:`~builder.tracking_destinations.SERVER_DEFAULT` (its URI may carry the admin's
    credentials), which the job process reads from the config (:func:`~builder.tracking_destinations.job_destination`).
    """

    project: dict
    dataset: str
    dataset_options: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    owner: str = "local"
    name: str | None = None
    tags: dict = field(default_factory=dict)
    adapt: bool = False
    resume_run: str | None = None
    callbacks: list[str] = field(default_factory=list)
    kind: Literal["train", "prune"] = "train"
    prune: dict = field(default_factory=dict)
    tracking: str | None = None


JOB_KINDS = ("train", "prune")


def _check_callbacks(names: list[str]) -> None:
    for n in names:
        if str(n).split(":", 1)[0] not in _CALLBACKS:
            raise TrainingError(f"unknown job callback; received: {n!r}. Fix: use one of {', '.join(_CALLBACKS)}")


def submit(store: RunStore, spec: JobSpec) -> str:
    """Record the run (``queued``) and launch its own process; returns the run id.

    A new run is created from ``spec.project``; with ``spec.resume_run`` that run (interrupted, stopped,
    failed, or finished when ``config`` raises ``epochs``) is queued again under its own id. Nothing heavy
    happens here: the dataset is loaded and the graph compiled in the job process.

    Raises:
        RunStoreError: unknown run to resume, a run still live, or another owner's run.
        TrainingError, ProjectFormatError: bad settings or project (checked before anything is recorded).
        QuotaError: the owner is over a quota (:mod:`builder.jobs.quotas`; checked under its lock).
    """
    _check_spec(store, spec)
    with admit(store):  # the quota check and the recording of the run as one step (builder.jobs.quotas)
        run_id = _record(store, spec)
    _start(store, run_id)
    return run_id


def submit_group(store: RunStore, specs: list[JobSpec]) -> list[str]:
    """Submit jobs that belong together (the folds of a cross-validation:
    :func:`builder.runs.crossval.crossval_job_specs`) all or none: the owner's quotas are checked for all of
    them at once (each counts as a job; the storage of each as it grows), then each is recorded and launched as
    :func:`submit` does; their run ids in order.

    Raises:
        TrainingError: an empty group, jobs of more than one owner, or a bad spec (nothing recorded).
        QuotaError: the owner cannot take this many more jobs (nothing recorded).
        RunStoreError, ProjectFormatError: as :func:`submit`.
    """
    owners = {s.owner for s in specs}
    if len(owners) != 1:
        raise TrainingError(f"a group of jobs has one owner; received: {len(specs)} job(s) of {len(owners)} "
                            "owner(s). Fix: submit each owner's jobs on their own")
    for spec in specs:
        _check_spec(store, spec)
    device = str((specs[0].config or {}).get("device")
                 or ((specs[0].project or {}).get("training") or {}).get("device") or "auto")
    with admit(store):
        check_quota(store, specs[0].owner, device=device, jobs=len(specs))
        run_ids = [_record(store, spec, share=len(specs)) for spec in specs]  # the storage left, shared
    for run_id in run_ids:
        _start(store, run_id)
    return run_ids


def _check_spec(store: RunStore, spec: JobSpec) -> None:
    _check_callbacks(list(spec.callbacks))
    if store.actor is None or not (store.actor.system or store.actor.owner == spec.owner):
        if spec.resume_run:  # a job runs for the actor that submits it
            raise refusal(str(spec.resume_run))
        raise AccessDenied("a job runs for the actor of the run store it is submitted to; received: another owner "
                           "than the store's actor. Fix: open the store as that owner (RunStore.as_actor)")
    if spec.kind not in JOB_KINDS or (spec.kind == "prune" and not spec.prune.get("parent")):
        raise TrainingError(f"a job trains or prunes (a prune job names its parent run); received: kind "
                            f"{spec.kind!r}. Fix: make prune jobs with builder.training.prune.prune_job_spec")
    _check_content(store, spec)


def _check_content(store: RunStore, spec: JobSpec) -> None:
    """What a job's spec names, checked for its owner before anything is recorded: a new training job's data is a
    built-in dataset or one of the owner's uploads (a path only for the CLI's local user, whose command line it
    came from) and its project names no file (:func:`builder.data.sources.check_project`); a prune job's parent
    is a run its owner may read (refused as an unknown one). Raises DatasetError or AccessDenied."""
    from builder.data.sources import DatasetSource, check_content, check_project  # lazy: heavy (numpy)

    if spec.kind == "prune":
        parent = store.get(str(spec.prune["parent"]), actor=Actor.of_job(spec.owner))
        data = run_data(store, parent, actor=SYSTEM)  # what the job loads: its snapshot, else its owner's source
        if owner_of(parent) != spec.owner and isinstance(data, DatasetSource) and data.upload is not None:
            # the job measures the parent on its data: another person's upload, which only its owner's jobs read
            # (shared mode: the job failed at its start, 'Permission denied' on the workspace's key)
            raise DatasetError(f"run {parent.id} trained on its owner's uploaded file, which only they can read; "
                               "received: a prune by another person. Fix: ask the run's owner to prune it, or "
                               "train your own run on your data and prune that")
    elif not spec.resume_run and spec.owner != LOCAL_OWNER:
        check_content(DatasetSource(spec.dataset, dict(spec.dataset_options or {})))
        check_project(load_project(spec.project))


def _start(store: RunStore, run_id: str) -> None:
    """Start a recorded job where this server runs jobs (:func:`builder.jobs.executors.executor_for`: here, or on
    a Ray cluster); a cluster that cannot be reached leaves the run interrupted, resumable, and says why."""
    # the executors (this server, a Ray cluster) are backends built on this module (they import it): loaded by
    # name on first start, as SQLAlchemy loads a dialect, so the queue does not import what imports it
    executors = importlib.import_module("builder.jobs.executors")
    try:
        executor = executors.executor_for(store.workspace)
    except RunStoreError as e:
        store.update_status(run_id, RunStatus.INTERRUPTED, f"not started: {e}")
        raise
    executor.start(store, run_id)


def start_local(store: RunStore, run_id: str) -> None:
    """Launch a recorded job's process on this server (warm when the launcher answers) and record its pid."""
    folder = store.folder(run_id, actor=SYSTEM, write=True)  # the run just recorded (its log is written)
    credentials = _credentials(folder.job_spec)
    pid = launch_warm(store.workspace, run_id, folder.job_log, credentials)
    if pid is None:
        pid = _launch(store.workspace, run_id, folder.job_log, credentials).pid
    store.as_actor(SYSTEM).update_run(run_id, pid=pid)  # the process this code started: its record, not a person's


def _record(store: RunStore, spec: JobSpec, share: int = 1) -> str:
    """Check the owner's quotas (QuotaError over a limit; nothing recorded), then record the run as queued with
    its job spec, and its room (the storage its owner has left, divided among the ``share`` jobs admitted together:
    :func:`_room`); its id. :func:`submit` calls it under :func:`builder.jobs.quotas.admit`. A new run's row, folder
    and job spec are written all or none (a full disk: one line, nothing recorded); a resumed run's new spec is
    written before it is queued again (a full disk: it keeps its status)."""
    tracking = _tracking(store, spec)  # a destination the owner may not use is refused before anything is recorded
    data = {k: v for k, v in asdict(spec).items() if k != "owner"}  # an owner id is a key: the run row keeps it
    data["tracking"] = recorded_destination(tracking, store.workspace)  # the admin's default by name: its URI may
    # carry the admin's password, which no run folder keeps (read from the config by the job process)
    if not spec.resume_run:
        project = load_project(spec.project)
        # resolved again in the job once its dataset is loaded (task and training-split size known)
        cfg = TrainConfig.resolve((project.training or {}).get("task"), None, project.training, spec.config)
        class_id = class_for(store.workspace, store.actor, project)  # AccessDenied for a class not the owner's
        room = check_quota(store, spec.owner, device=str(cfg.device))
        run_id = store.create_run(project, spec.dataset, spec.dataset_options, cfg, name=spec.name,
                                  owner=spec.owner, tags=spec.tags, class_id=class_id, job_spec=data,
                                  parent_id=spec.prune.get("parent") if spec.kind == "prune" else None)
        store.requeue(run_id)  # queued at the back, pid = this process until the job process takes over
        store.as_actor(SYSTEM).set_environment(run_id, storage_room=_room(room, share),  # its broker holds it to
                                               gpu_quota=gpu_limit(store, spec.owner))  # them while it runs
        return run_id
    store.mark_interrupted()
    run = store.get(spec.resume_run, actor=Actor.of_job(spec.owner))
    # resuming writes into the run: the owner's alone (not a reader's in shared mode)
    folder = store.folder(run.id, actor=Actor(spec.owner), write=True)
    if why := resume_refusal(run, more_epochs=bool((spec.config or {}).get("epochs"))):
        raise RunStoreError(why)
    cfg = TrainConfig.from_dict(run.config, **dict(spec.config or {}))  # the changed settings, checked
    folder.path.mkdir(parents=True, exist_ok=True)
    # keep what the run was first started with (read bounded: its job wrote this folder and may have left a file
    # of any size there)
    if (recorded := run.environment.get(SPEC_DIGEST)) is not None and folder.job_spec_digest() != recorded:
        raise RunStoreError(f"run {run.id}'s job spec (job.json) was changed after LayerLab wrote it, which only its "
                            "job could do: what it was started with is unknown, so it is not resumed. Fix: start a "
                            "new run from its project (Runs › Open on canvas, then Train)")
    if (old := folder.read_job_spec()) is not None:
        # its tracker is this job's (above): an older spec's resolved one is not kept
        data["origin"] = {k: v for k, v in (old.get("origin") or old).items() if k not in ("owner", "tracking")}
        if not spec.callbacks:
            data["callbacks"] = list(data["origin"].get("callbacks") or [])
    # the quota of the device the job will take: the origin's, which the job itself could have rewritten since,
    # decides it (_device_setting), so a GPU's time is checked whatever the run's settings say
    origin = data.get("origin") if isinstance(data.get("origin"), dict) else None
    devices = [str(cfg.device), _device_setting(spec, origin, run.get("config"))]
    room = check_quota(store, spec.owner, device=next((d for d in devices if wants_gpu(d)), devices[0]))
    digest = folder.write_job_spec(data)
    store.requeue(run.id)  # queued at the back, pid = this process until the job process takes over
    store.as_actor(SYSTEM).set_environment(run.id, storage_room=_room(room, share),  # what its owner has left now
                                           gpu_quota=gpu_limit(store, spec.owner), **{SPEC_DIGEST: digest})
    return run.id


def _room(room: dict | None, share: int) -> dict | None:
    """A job's room of its owner's storage when ``share`` jobs are admitted together (a cross-validation's folds).

    >>> _room({"left": 10, "cap_mb": 1}, 3)
    {'left': 3, 'cap_mb': 1}
    """
    return {**room, "left": room["left"] // max(1, share)} if room else None


def _tracking(store: RunStore, spec: JobSpec) -> str | None:
    """The MLflow tracker of a job: the spec's, else its owner's choice (:func:`builder.tracking_destinations.resolve_tracking`),
    checked for its owner. Raises LayerLabError for a destination the owner may not use."""
    if spec.tracking:
        return check_destination(spec.tracking, store.workspace, spec.owner)
    return resolve_tracking(store.workspace, spec.owner)


def _credentials(job_spec: Path) -> bool:
    """Whether the job of this ``job.json`` gets the admin's MLflow credentials: its tracker is the admin's default
    (:func:`builder.jobs.job_sandbox.tracking_credentials`); False for one that cannot be read."""
    try:
        return job_sandbox.tracking_credentials((read_json_file(job_spec) or {}).get("tracking"))
    except (ValueError, AttributeError):
        return False


def _launch(workspace: Path, run_id: str, log: Path, credentials: bool = False) -> subprocess.Popen:
    """Start the job process detached (own session), output appended to ``log``, in a clean environment
    (:func:`builder.jobs.job_sandbox.job_env`; the admin's MLflow credentials only with ``credentials``); reaped by
    a thread, which records a death by signal."""
    tmp = RunStore(workspace, actor=SYSTEM, mark_interrupted=False).folder(run_id, write=True).tmp
    tmp.mkdir(parents=True, exist_ok=True)

    def died(pid: int, code: int) -> None:
        job_sandbox.record_death(RunStore(workspace, actor=SYSTEM, mark_interrupted=False), run_id, pid, code)

    return spawn_detached(["-m", "builder.jobs.queue", "run", "--workspace", str(workspace), run_id], log,
                          env={**job_sandbox.job_env(tmp, credentials=credentials), **process_env(workspace)}, name=f"layerlab-reap-{run_id}",
                          on_exit=died)


def request(store: RunStore, run_id: str, action: Literal["pause", "resume", "stop"]) -> None:
    """Ask a job to pause, resume or stop on behalf of the store's actor (:func:`builder.data.access.may`: ``stop``
    for stop, ``control`` for pause and resume); its process acts within a step of reading it (~0.2 s;
    ~1 s in a shared PostgreSQL store: :data:`SHARED_POLL_S`).

    Raises:
        AccessDenied: a run the actor may not control, worded as an unknown one.
        RunStoreError: unknown action, or a run that is not queued, running or paused.
    """
    if action not in CONTROL_ACTIONS:
        raise RunStoreError(f"unknown job action; received: {action!r}. Fix: use one of {', '.join(CONTROL_ACTIONS)}")
    who = store.who()
    store.mark_interrupted()
    try:
        run = store.get(run_id, actor=SYSTEM)  # an admin stops jobs it may not read
    except RunStoreError:
        raise refusal(run_id) from None
    check(who, STOP if action == "stop" else CONTROL, run)
    if not is_live(run["status"]):
        raise RunStoreError(f"run {run['id']} is {run['status']}; only a queued, running or paused job can {action}")
    if action == "stop" and (tags := stopped_tags(store.workspace, run, who)) != run.tags:
        store.update_run(run["id"], tags=tags)  # who stopped another's run is written on it (Run.stopped_by)
    store.set_control(run["id"], action)


def queue_position(store: RunStore, run_id: str) -> int | None:
    """1-based place of a queued job (one the store's actor may read) among this host's waiting jobs; None when it
    is not queued. Raises AccessDenied."""
    return store.queue_position(run_id)


def wait(store: RunStore, run_ids: list[str], timeout: float | None = None) -> dict[str, str]:
    """Wait until every run has a final status (finished, stopped, failed, interrupted).

    Returns ``{run id: status}``; when ``timeout`` seconds pass first, the statuses as they stand.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        store.mark_interrupted()
        out = {rid: store.get(rid)["status"] for rid in run_ids}
        if all(is_final(s) for s in out.values()):
            return out
        if deadline is not None and time.monotonic() >= deadline:
            return out
        time.sleep(POLL_S)


# ------------------------------------------------------------------------------------------ the process
def _callbacks(names: list[str], store: RunStore, run_id: str) -> list:
    class _SaveLive(Callback):  # writes the frames to the run folder after every recorded epoch
        def __init__(self, live: Any, path: Path):
            self.live, self.path, self._n = live, path, 0

        def on_epoch_end(self, trainer, epoch, logs):
            if len(self.live.frames) != self._n:
                self._n = len(self.live.frames)
                self.live.save(self.path)

    out: list = [StoreControl(store, run_id)]
    for n in names:
        kind, _, method = str(n).partition(":")
        if kind == "live_attributions":  # Captum (and matplotlib) imported only by a job that records them
            from builder.interpret.live import LiveAttributions  # lazy: heavy (captum)

            live = LiveAttributions(method or "integrated_gradients")
            out += [live, _SaveLive(live, store.folder(run_id, write=True).live_attributions)]
        elif kind == "decision_boundary":  # grid per epoch in the epoch metrics (2-D toy data; else silent)

            out.append(DecisionBoundary())
    return out


# Forward multiply-adds per batch that keep one more core busy: below this a step is too short for a second
# thread to pay for its hand-offs (bench/cpu_speed.py --threads-rule; bench/RESULTS.md "Threads per job").
def job_memory(spec: JobSpec, device: str, store: RunStore | None = None):
    """A job's :func:`builder.graph.memory.training_memory` on ``device``: its graph at the budget its run is checked
    at (:func:`builder.runs.pipeline.run_budget`: its settings' batch size and optimizer, its task's loss), and a
    distillation's teacher (its graph read from ``store``: a teacher it cannot read is left out; the run itself then
    fails)."""
    from builder.runs.pipeline import run_budget  # lazy: heavy (torch)
    from builder.training.objectives import has_objective  # lazy: with the pipeline

    project = load_project(spec.project)
    tr, over = project.training or {}, spec.config or {}
    task = tr.get("task") if isinstance(tr.get("task"), str) else None
    try:
        cfg = TrainConfig.resolve(task, None, tr, over)
    except TrainingError:  # the run refuses its settings with every problem; admission counts the defaults
        cfg = TrainConfig.resolve(task)
    budget = run_budget(cfg, task, drawn_loss=has_objective(project))
    frozen = None
    if tr.get("teacher") and store is not None:
        try:
            frozen = infer_shapes(store.get(str(tr["teacher"])).project.graph)
        except LayerLabError:  # not readable by the job's owner, or gone: the run refuses it with its reason
            frozen = None
    return training_memory(infer_shapes(project.graph), budget.batch_size, budget.optimizer, device,
                           loss=budget.loss, frozen=frozen)


def job_need(spec: JobSpec, store: RunStore | None = None) -> int:
    """GPU bytes a job is estimated to need: :func:`job_memory` on CUDA plus a CUDA context."""
    return job_memory(spec, "cuda", store).peak + _gpus.CUDA_CONTEXT_BYTES


def _placements(store: RunStore) -> list[_gpus.Placed]:
    """The GPUs of this host's running jobs (recorded in their environment when they claimed their slot)."""

    out, used = [], None
    for r in store.list_runs(status=RunStatus.RUNNING, limit=10_000, actor=SYSTEM):  # every job of the host
        run = store.get(r["id"], actor=SYSTEM)
        env = run.get("environment") or {}
        if run.get("host") in (None, host_name()) and isinstance(env.get("gpu"), int):
            used = GPU_USED() if used is None else used
            out.append(_gpus.Placed(run["id"], env["gpu"], int(env.get("gpu_need") or 0), used.get(run.get("pid"), 0)))
    return out


def claim_gpu(store: RunStore, run_id: str, need: int, gpus: list[_gpus.Gpu], limit: int,
              per_gpu: int | None = None) -> int | None:
    """Claim a slot on the GPU where the job fits (:func:`builder.training.gpus.place`); its index, or None when it
    must wait. One job of the workspace decides at a time (a lock file), and its GPU and estimate are recorded
    in its run's environment, where the next job reads them."""
    import fcntl  # lazy: POSIX only (fcntl)

    per_gpu = per_gpu or _gpus.jobs_per_gpu()
    with open(store.workspace / GPU_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            gpu = _gpus.place(need, gpus, _placements(store), per_gpu)
            if gpu is None or not store.claim_slot(run_id, limit):
                return None
            # LayerLab's record, not the job's (run_time.SYSTEM_KEYS): written before anything of the person's runs
            store.as_actor(SYSTEM).set_environment(run_id, gpu=gpu, gpu_need=need)
            return gpu
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _wait_for_slot(store: RunStore, run_id: str, need: int = 0,
                   gpus: list[_gpus.Gpu] | None = None, *, device: str = "auto") -> tuple[bool, int | None]:
    """Claim a slot (with ``gpus``, this host's: on one where the job's ``need`` bytes fit, among those its
    ``device`` setting allows, :func:`placement_gpus`); ``(False, None)`` when a stop was requested while queued (the
    run is then ``stopped``), else ``(True, GPU index or None)``."""
    limit, n, beat = max_jobs(len(gpus) if gpus else None), 0, time.monotonic()
    while True:
        if gpus:
            gpu = claim_gpu(store, run_id, need, placement_gpus(device, gpus), limit)
            if gpu is not None:
                return True, gpu
        elif store.claim_slot(run_id, limit):
            return True, None
        if store.get(run_id).get("control") == "stop":
            store.take_control(run_id)
            store.update_status(run_id, RunStatus.STOPPED, "stopped while queued; resume to start it")
            return False, None
        n += 1
        if time.monotonic() - beat >= beat_s():  # a waiting job is alive too (servers sharing the store read it)
            beat = time.monotonic()
            store.beat([run_id])
        if n % 5 == 0:  # a dead job's slot is freed by marking it; the GPUs are asked again
            store.mark_interrupted()
            if gpus:
                gpus = GPU_QUERY() or gpus
        time.sleep(POLL_S)


GPU_SETTINGS = ("auto", "cuda")  # the device settings with which a job may go to any GPU of this host


def numbered_gpu(dev: str) -> int | None:
    """The GPU a numbered device setting names (``cuda:N``), else None.

    >>> numbered_gpu("cuda:1"), numbered_gpu("cuda"), numbered_gpu("cpu")
    (1, None, None)
    """
    head, _, index = str(dev).partition(":")
    return int(index) if head == "cuda" and index.isdigit() else None


def placement_gpus(dev: str, gpus: list[_gpus.Gpu]) -> list[_gpus.Gpu]:
    """The GPUs of ``gpus`` (this host's) a job with the device setting ``dev`` is placed on by the packer: all of
    them for ``auto`` and ``cuda``; for a numbered GPU the person chose (``cuda:N``, which a project, a link or the
    Train form may set) that one, or the first where this host has no GPU N (where torch then trains it,
    :func:`_cuda_index`); none for the CPU or MPS. A numbered GPU's job was not placed at all: it took a CPU slot,
    recorded no GPU and no estimate, so the packer counted neither its slot nor its memory on that GPU and put
    other people's jobs beside it past ``LAYERLAB_JOBS_PER_GPU`` and the GPU's room.

    >>> from builder.training.gpus import Gpu
    >>> two = [Gpu(0, 8, 8), Gpu(1, 8, 8)]
    >>> [g.index for g in placement_gpus("cuda:1", two)], [g.index for g in placement_gpus("cuda:7", two)]
    ([1], [0])
    >>> len(placement_gpus("auto", two)), placement_gpus("cpu", two)
    (2, [])
    """
    n = numbered_gpu(dev)
    if n is None:
        return list(gpus) if dev in GPU_SETTINGS else []
    return [g for g in gpus if g.index == n] or sorted(gpus, key=lambda g: g.index)[:1]


def _device_setting(spec: JobSpec, origin: dict | None, recorded: dict | None = None) -> str:
    """A job's device setting: its spec's, over the one its run was first started with (``origin``), over the run's
    ``recorded`` config; else its project's; else ``auto``."""
    first = origin or {}
    return str({**(recorded or {}), **(first.get("config") or {}), **(spec.config or {})}.get("device")
               or ((first.get("project") or spec.project or {}).get("training") or {}).get("device") or "auto")


def gpu_device(spec: JobSpec, origin: dict | None, recorded: dict | None = None) -> str | None:
    """The device setting of a job when it may go to a GPU (``auto``, ``cuda`` or a numbered GPU the person chose:
    :func:`placement_gpus`), else None (CPU, MPS)."""
    dev = _device_setting(spec, origin, recorded)
    return dev if dev in GPU_SETTINGS or numbered_gpu(dev) is not None else None


def _cuda_index(dev: str, slot: int | None) -> int | None:
    """The GPU a job with the device setting ``dev`` will train on: the slot's GPU, else (placed by a cluster, or
    a numbered GPU the user chose) the one ``dev`` resolves to on this host; None for a job on the CPU or MPS."""
    import torch  # lazy: heavy (torch)

    if slot is not None:
        return slot
    if not torch.cuda.is_available() or not (dev in GPU_SETTINGS or dev.startswith("cuda:")):
        return None
    index = dev.partition(":")[2]
    return int(index) if index.isdigit() and int(index) < torch.cuda.device_count() else 0


def run_job(workspace: str | Path, run_id: str, *, sandboxed: bool = False) -> int:
    """The job process body: wait for a slot, train, record; returns the exit code. ``sandboxed`` (the job
    processes' entries): once the slot is claimed, enter :mod:`builder.jobs.job_sandbox` for good (limits, clean
    environment, no new processes); a caller that runs a job in its own process leaves it False. The graph is
    analysed once for the GPU estimate and the training (:func:`~builder.graph.shapes.one_analysis_per_graph`)."""
    with one_analysis_per_graph():
        return _run_job(workspace, run_id, sandboxed=sandboxed)


def _run_job(workspace: str | Path, run_id: str, *, sandboxed: bool) -> int:
    import torch  # lazy: heavy (torch)

    from builder.runs.pipeline import run_training  # lazy: heavy (safetensors)

    store = RunStore(workspace, actor=SYSTEM, mark_interrupted=False)
    tmp = store.folder(run_id, write=True).tmp  # its private folder (job_sandbox.enter), removed at the end
    lim = job_sandbox.job_limits()  # private memory capped by default (HOST_SHARE of the host's)
    callbacks: list = []
    held = False
    try:  # from here on a failure (a GPU that cannot start, a limit met while importing, too) is recorded with the run
        data = store.folder(run_id).job_spec_to_run()
        owner = owner_of(store.get(run_id))  # job.json names no owner: the run row does
        origin = data.pop("origin", None)
        origin = {**origin, "owner": owner} if origin else None
        spec = JobSpec(**{**data, "owner": owner})
        store = store.as_actor(Actor.of_job(spec.owner))  # ids in its project (init_from, teacher) are its owner's
        torch.set_num_threads(torch_threads())
        placed = os.environ.get(ENV_PLACED) == run_id  # a cluster's scheduler placed it (executors.py)
        device = _device_setting(spec, origin, store.get(run_id).get("config"))  # before the project is parsed
        gpus = GPU_QUERY() if (device in GPU_SETTINGS or numbered_gpu(device) is not None) and not placed else []
        sized = JobSpec(**origin) if origin else spec
        if gpus:  # parsed once: the GPU estimate and the training read the same Project
            sized.project = load_project(sized.project)  # type: ignore[assignment]
        need = job_need(sized, store) if gpus else 0
        if placed:  # its node and GPU share are the scheduler's: no slot of this host to wait for
            store.update_status(run_id, RunStatus.RUNNING)
        ok, gpu = (True, None) if placed else _wait_for_slot(store, run_id, need, gpus, device=device)
        if not ok:
            return 0
        held = True  # its slot: its private folder is its own until it ends (a run resumed later gets a new one)
        config = {**(store.get(run_id).get("config") or {}), **(origin or {}).get("config", {}), **(spec.config or {})}
        cuda = _cuda_index(device, gpu)
        if cuda is not None:  # the GPU the packing chose (builder.training.gpus) is this process's current device:
            lim = job_sandbox.on_gpu(cuda, lim)  # `auto`/`cuda` resolve to it (the run keeps its settings); its
            # CUDA runtime starts before the limits, which allow the host memory the process then holds on top
        spec.tracking = job_destination(spec.tracking, workspace)  # the server's default, read from its config now
        scrub_credentials(workspace, spec.tracking)  # the admin's MLflow credentials go to the admin's tracker only
        if sandboxed:  # files confined, limits, clean environment, no new processes, before the model is built
            rules = job_sandbox.confinement(store, run_id, spec.owner, spec.tracking)
            store = job_sandbox.brokered(store, run_id)  # the database only through its broker, as its owner (which is
            # not under the job's limits: its file size limit does not hold the database back)
            lim = job_sandbox.enter(tmp, lim, processes=job_sandbox.compiles(config), rules=rules)
            job_sandbox.crash_hook_for_tests(store.get(run_id).get("name"))  # tests only: unset in production
        print(f"job {run_id}: pid {os.getpid()}, {torch.get_num_threads()} torch threads"
              + (f", GPU {gpu} (estimate {need / 2**30:.2f} GiB)" if gpu is not None else "")
              + (f", resident memory limit {lim.memory_mb} MiB over the {lim.runtime_mb} MiB it holds now"
                 if lim.runtime_mb else ""), flush=True)
        callbacks = _callbacks(list(spec.callbacks), store, run_id)
        callbacks[0].start()  # the heartbeat while the data loads and the model is built
        signal.signal(signal.SIGTERM, lambda *_: callbacks[0].trainer and callbacks[0].trainer.stop())
        first = sized if (spec.resume_run and origin) else spec
        if spec.resume_run and store.folder(run_id).has_checkpoint:
            from builder.runs.prune_run import resume_pruned  # lazy: heavy (safetensors)

            # resume_run, and for an unstructured pruned run its mask re-installed first
            result = resume_pruned(store, run_id, callbacks=callbacks, overrides=dict(spec.config or {}) or None,
                                   claimed=True, tracking=tracker(spec.tracking))
        elif first.kind == "prune":  # a prune job (or one stopped before its first checkpoint): prune, fine-tune
            from builder.runs.prune_run import run_prune_job  # lazy: heavy (safetensors)

            rep = run_prune_job(store, run_id, first.prune, callbacks, tracking=tracker(spec.tracking))
            result = f"pruned run {rep.parent_id}, {store.get(run_id)['status']}"
        else:  # a new run, or one stopped before its first checkpoint: train from the start
            config = {**first.config, **spec.config} if first is not spec else dict(spec.config or {})
            # the submitter's uploads resolve in its own folder; a path only in a job of the CLI's local user
            src = run_source(store.workspace, {"dataset_name": first.dataset, "dataset_options": first.dataset_options,
                                    "owner": first.owner})
            result = run_training(first.project, first.dataset, config, store, callbacks,
                                  dataset_options=src.options if src is not None else first.dataset_options,
                                  adapt=first.adapt, run_id=run_id, owner=first.owner, tracking=tracker(spec.tracking))
    except Exception as e:
        if isinstance(e, DiskFullError):  # one line, as everywhere (builder.data.disk)
            print(f"job {run_id}: {e}", flush=True)
        else:
            traceback.print_exc()
        try:
            run, limit = store.get(run_id), job_sandbox.failure_message(e, lim) or job_sandbox.limit_met()
            if not is_final(run["status"]):  # failed before the trainer could record it
                store.finish(run_id, RunStatus.FAILED, message=limit or str(e) or type(e).__name__)
            elif limit and run["status"] == RunStatus.FAILED:  # the trainer recorded it; name the limit it met
                store.update_run(run_id, message=limit)
            elif limit:  # met after the trainer recorded its end: the job ended at its limit all the same
                store.update_status(run_id, RunStatus.FAILED, limit)
        except DiskFullError as full:  # not even the failure fits: the run is marked interrupted, resumable
            print(f"job {run_id}: {full}", flush=True)
        if hasattr(store, "close"):  # its broker ends
            store.close()
        return 1
    finally:
        if callbacks:
            callbacks[0].close()
        if held:
            job_sandbox.leave(tmp)
    try:
        limit = job_sandbox.limit_met()  # met where its error was swallowed (after training: the run ended anyway)
        if limit and store.get(run_id)["status"] != RunStatus.FAILED:
            store.update_status(run_id, RunStatus.FAILED, limit)
            print(f"job {run_id}: {limit}", flush=True)
            return 1
    finally:
        if hasattr(store, "close"):  # its broker ends
            store.close()
    print(f"job {run_id}: {result if isinstance(result, str) else f'{result.status} {result.message}'}", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m builder.jobs.queue run --workspace W RUN_ID``."""
    p = argparse.ArgumentParser(prog="python -m builder.jobs.queue", description="run one LayerLab training job")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run a queued job (started by builder.jobs.queue.submit)")
    r.add_argument("--workspace", required=True)
    r.add_argument("run_id")
    w = sub.add_parser("launcher", help="fork jobs from a process that has torch imported (started by submit)")
    w.add_argument("--workspace", required=True, help="the workspace, or the shared launcher's folder with --shared")
    w.add_argument("--shared", action="store_true", help="fork the jobs of every workspace a request names")
    args = p.parse_args(argv)
    if args.cmd == "launcher":
        return launcher(args.workspace, run_job, shared=args.shared)
    return kept(args.workspace, args.run_id, run_job)  # forked, and reaped with its broker


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["JobSpec", "JOB_KINDS", "submit", "submit_group", "request", "queue_position", "max_jobs", "wait", "run_job",
           "StoreControl", "ENV_MAX_JOBS", "torch_threads", "explicit_threads", "THREADS_MACS_PER_CORE", "claim_gpu",
           "job_need", "job_memory", "GPU_QUERY"]
