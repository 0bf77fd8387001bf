"""Training jobs (train, prune, search trials) and study runners under limits: defence in depth for the processes
that run a user's model for the server, with the import worker's sandbox (:mod:`builder.process.sandbox`).

A job process (cold, or forked from the warm launcher) calls :func:`enter` once it holds its slot and before it
builds the model:

- limits: no core files; files up to ``LAYERLAB_JOB_FILE_MB`` (default 16384 MiB; a larger write fails with
  ``EFBIG``); private writable memory up to ``LAYERLAB_JOB_MEMORY_MB`` (``RLIMIT_DATA``: memory-mapped image
  caches and CUDA's inaccessible address reservations do not count; unset: :data:`HOST_SHARE` of the host's
  memory, with or without CUDA, so one runaway job fails with a message instead of swapping the server; a small
  CPU job's peak is measured by bench/doc_figures.py (in bench/RESULTS.md: at most
  0.5 GiB for the mlp and cnn templates), so 4096 per job suits a class server on CPU; a job on a GPU starts its
  CUDA runtime first and is limited to that much *resident* memory over what it then holds, watched by a thread
  (:func:`on_gpu`: ``RLIMIT_DATA`` cannot cap a CUDA process));
  CPU seconds from then on up to
  ``LAYERLAB_JOB_CPU_S`` (unset = no cap; SIGXCPU ends the run, SIGKILL :data:`CPU_GRACE_S` later);
- the environment: :func:`job_env`, nothing of the submitter's but ``PATH``, the locale and :data:`PASSED_ENV`
  (the LayerLab, GPU, thread and torch settings a job reads, by name; MLflow's credentials only for the admin's
  tracker, passed by its starter); ``HOME`` and ``TMPDIR`` are ``runs/<id>/tmp``,
  removed by :func:`leave` when the job ends; ``TORCHINDUCTOR_COMPILE_THREADS=1`` (no compile worker pool);
- no new processes: the seccomp filter and the audit hook of the import worker (except for a run with
  ``torch_compile``, whose compilers are processes: :func:`compiles`).

A job that meets a limit ends ``failed`` with one line naming it (:func:`failure_message` for what the job
itself sees: an allocation refused, a write too large, SIGXCPU; :func:`record_death` for a death by signal seen
by the process that started it). A study runner (:func:`study_env`, :func:`limit_study`,
:func:`limit_study_memory`) gets the clean environment, the file limit, no core files, and the memory limit over
what it holds once torch is imported; it may start processes (its trials are jobs).

Example::

    >>> lim = job_limits({"LAYERLAB_JOB_MEMORY_MB": "4096"})
    >>> lim.memory_mb, lim.cpu_s, lim.file_mb, lim.memory
    (4096, 0, 16384, 'data')
    >>> sorted(k for k in job_env("/tmp/x", {"AWS_SECRET_ACCESS_KEY": "s", "MLFLOW_TRACKING_PASSWORD": "p",
    ...                                      "LAYERLAB_ADMINS": "a", "LAYERLAB_JOB_CPU_S": "9"})
    ...        if k.startswith(("AWS", "MLFLOW", "LAYERLAB")))
    ['LAYERLAB_JOB_CPU_S']
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from builder.data.cache import keep_own
from builder.errors import LayerLabError
from builder.interchange.hf_library import library_folder
from builder.process import landlock, sandbox
from builder.process.landlock import Confinement
from builder.process.sandbox import TEST_CRASH_ENV, WorkerLimits, crash_hook_for_tests
from builder.tracking_destinations import (
    CREDENTIAL_ENV,
    SERVER_DEFAULT,
    local_paths,
    names_a_host,
    reserved_ports,
    tcp_ports,
)
from builder.training.run_status import RunStatus, is_live

PREFIX = "LAYERLAB_JOB"
MEMORY_ENV = f"{PREFIX}_MEMORY_MB"
CPU_ENV = f"{PREFIX}_CPU_S"
FILE_ENV = f"{PREFIX}_FILE_MB"
DEFAULT_FILE_MB = 16384
HOST_SHARE = 0.75  # a CPU job's private memory by default: this share of the host's physical memory
CPU_GRACE_S = 30
START_HEADROOM_MB = 64
"""The least private memory a job's limit must leave over what the job holds when it enters its sandbox (Python,
torch, a forked job's share of its launcher): its threads' stacks, the data and the model come after. Under less,
a thread's start met the limit inside CPython's thread set-up and the job waited for that thread for ever, its run
``running`` with no message (a job forked on a CUDA host, whose torch holds ~1.2 GiB, under a 1200 MiB limit);
:func:`enter` refuses such a limit at once, naming it and the number that would do."""
PASSED_ENV = ("LAYERLAB_TORCH_THREADS", "LAYERLAB_MAX_JOBS", "LAYERLAB_JOBS_PER_GPU", MEMORY_ENV, CPU_ENV, FILE_ENV,
              "LAYERLAB_DB_URL", "LAYERLAB_WORKSPACE", "LAYERLAB_SERVER_CONFIG", "LAYERLAB_SHARED_RUNS",
              "LAYERLAB_STALE_S", "LAYERLAB_BEAT_S", "LAYERLAB_STOP_GRACE_S", "LAYERLAB_HOST", "LAYERLAB_MLFLOW_EXPERIMENT", "LAYERLAB_QUOTA_",
              "LAYERLAB_LAUNCHER_IDLE_S", "LAYERLAB_LAUNCHER_DIR", "LAYERLAB_JOB_PLACED", "LAYERLAB_RAY_ADDRESS",
              "LAYERLAB_RAY_GPU_MEMORY_GB", "LAYERLAB_HF_MAX_PARAMS", "LAYERLAB_MODEL_LIBRARY", landlock.SECRETS_ENV, TEST_CRASH_ENV,
              "MLFLOW_HTTP_REQUEST_", "CUDA_VISIBLE_DEVICES",
              "OMP_NUM_THREADS", "MKL_NUM_THREADS", "PYTORCH_", "TORCH_", "CUBLAS_WORKSPACE_CONFIG")
"""The variables a job (and the warm launcher, a study runner) gets from the submitter: the settings the job's code
reads, each by its name (``sandbox.passes``: an entry ending in ``_`` is a prefix); nothing else passes. Not the
server's roles (``LAYERLAB_ADMINS``, ``LAYERLAB_TEACHERS``), its other secrets, its ``MLFLOW_TRACKING_URI`` (a job's
tracker is in its spec), nor MLflow's credentials (:data:`~builder.tracking_destinations.CREDENTIAL_ENV`: only to a
job whose tracker is the admin's, :func:`job_env`'s ``credentials``)."""
BROKERED_ENV = ("LAYERLAB_DB_URL", "LAYERLAB_RAY_ADDRESS", landlock.SECRETS_ENV)
"""What a job needs only before :func:`enter` (its run store before :func:`brokered` forks the broker that holds
the database from then on; where the server keeps its secrets, for its rules): taken out of its environment, and
out of the block it started with, as it confines itself, so a model that took its process over reads neither the
run database's address and password nor the cluster's, nor where the server's secrets files are."""
WHAT = "the training job"
OUTCOME = "The run failed; resume it to continue from its last checkpoint"
FIX = "use a smaller batch size or model, or fewer epochs"
class JobLimitError(LayerLabError):
    """A job met one of its limits (raised in the job process on SIGXCPU)."""


def host_memory_mb() -> int:
    """:data:`HOST_SHARE` of this host's physical memory in MiB (0 where the OS does not say)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * HOST_SHARE) >> 20
    except (ValueError, OSError, AttributeError):
        return 0


def job_limits(env: Mapping[str, str] | None = None) -> WorkerLimits:
    """The limits of a job from ``LAYERLAB_JOB_*`` in ``env`` (default: ours); see the module docstring. Memory is
    capped at :func:`host_memory_mb` unless the setting says, on a CUDA host too (there a job on a GPU is held to
    it as resident memory over what its CUDA runtime holds, :func:`on_gpu`; a CPU job there, as anywhere, by
    ``RLIMIT_DATA``): uncapped, one job's runaway host memory could make the kernel's OOM killer pick the server."""
    def positive(name: str, default: int) -> int:
        return sandbox.env_positive(name, default, env=env)

    return WorkerLimits(memory_mb=positive(MEMORY_ENV, host_memory_mb()), cpu_s=positive(CPU_ENV, 0),
                        file_mb=positive(FILE_ENV, DEFAULT_FILE_MB), memory="data", prefix=PREFIX)


def job_env(private: str | os.PathLike, source: Mapping[str, str] | None = None, *,
            credentials: bool = False) -> dict[str, str]:
    """A job's whole environment: :func:`builder.process.sandbox.sandbox_env` with :data:`PASSED_ENV` from
    ``source`` (default: ours), ``private`` as home and temporary folder, one torch compile thread; with
    ``credentials`` (the job logs to the admin's default tracker: :func:`tracking_credentials`) also
    :data:`CREDENTIAL_ENV`.

    >>> src = {"MLFLOW_TRACKING_TOKEN": "t", "LAYERLAB_ADMINS": "a", "LAYERLAB_JOB_CPU_S": "9"}
    >>> sorted(k for k in job_env("/p", src) if k in src), "MLFLOW_TRACKING_TOKEN" in job_env("/p", src, credentials=True)
    (['LAYERLAB_JOB_CPU_S'], True)
    """
    passed = PASSED_ENV + CREDENTIAL_ENV if credentials else PASSED_ENV
    return {**sandbox.sandbox_env(private, passed, source), **compiler_homes(private),
            "TORCHINDUCTOR_COMPILE_THREADS": "1"}


def compiler_homes(private: str | os.PathLike) -> dict[str, str]:
    """Where ``torch_compile``'s compilers keep their files in a job: its private folder, named outright. Triton
    takes its home from ``HOME`` when it is imported, and the warm launcher imports it (with torch._dynamo) before
    it forks a job: a forked job then wrote ``~/.triton`` of the server's home, outside its confinement, and a
    compiling GPU job failed "Permission denied: '.../.triton'" (found on a lent H100).

    >>> sorted(compiler_homes("/p").items())[0]
    ('TORCHINDUCTOR_CACHE_DIR', '/p/inductor')
    """
    home = Path(private)
    return {"TRITON_HOME": str(home), "TRITON_CACHE_DIR": str(home / ".triton" / "cache"),
            "TORCHINDUCTOR_CACHE_DIR": str(home / "inductor")}


def tracking_credentials(recorded: str | None) -> bool:
    """Whether a job whose spec records the tracker ``recorded`` gets the admin's MLflow credentials
    (:data:`CREDENTIAL_ENV`): only one that logs to the server config's default tracker
    (:data:`builder.tracking_destinations.SERVER_DEFAULT`), decided by the process that starts it.

    >>> tracking_credentials("layerlab:server-default"), tracking_credentials("https://ml.example.org")
    (True, False)
    """
    return recorded == SERVER_DEFAULT


def confinement(store, run_id: str, owner: str, tracking: str | None = None) -> Confinement | str:
    """What a job of ``owner`` may touch on disk once :func:`enter` confines it: the run's own
    (:func:`builder.process.landlock.confinement`) but not the run database (its store is its broker:
    :func:`brokered`), the model library (read) and a local tracker's folder (read and write); over TCP, only its
    tracker's port (:func:`builder.tracking_destinations.tcp_ports`: none for a local tracker or none at all), so
    neither a database server's port (PostgreSQL's, whose address its starter's environment named) nor any other
    service of the host or its network; UDP only to look up a tracker's host name
    (:func:`builder.tracking_destinations.names_a_host`)."""
    read, write = [], []
    with contextlib.suppress(Exception):  # a malformed config: no library to read
        if (lib := library_folder(store.workspace)) is not None:
            read.append(lib)
    with contextlib.suppress(Exception):  # a network tracker: nothing on this host
        write += [p if p.is_dir() else p.parent for p in local_paths(tracking or "")]
    rules = landlock.confinement(store, run_id, owner, read=read, write=write, database=False, tracker=tracking)
    ports = [p for p in tcp_ports(tracking) if p not in reserved_ports(store.workspace)]  # never the database's
    return (replace(rules, ports=ports, udp=names_a_host(tracking)) if isinstance(rules, Confinement) else rules)


def brokered(store, run_id: str | None = None):
    """A job's run store from here on, before it confines itself: its broker, forked now
    (:func:`builder.process.broker.start`), answers as the job's actor; this process closes its connections to the
    database, and the files of the database a warm launcher left open in it (:func:`_shut_inherited`). With
    ``run_id`` (the job's run) the broker holds the job to its room (:func:`job_room`)."""
    from builder.process import broker  # lazy: heavy (sqlalchemy)

    files = landlock.db_files(store)
    client = broker.start(store, room=job_room(store, run_id) if run_id is not None else None)
    _shut_inherited([Path(f) for f in files] if isinstance(files, list) else [])
    return client


def job_room(store, run_id: str):
    """What the job of ``run_id`` may take of its owner's quotas while it runs (:class:`builder.process.broker.Room`;
    None: its owner has neither a storage nor a GPU-time limit), held by its broker, which is not confined:
    the storage its owner could still store when it was admitted (recorded by the system,
    :func:`builder.jobs.quotas.room_of`) and its owner's storage as a whole (:func:`builder.jobs.quotas.storage_bytes`)
    under the cap, which jobs of one owner running at once share; and its owner's GPU time under the limit its
    admission recorded (:func:`builder.jobs.quotas.gpu_spent`), which stops it once spent, with the job's own stop
    grace and more."""
    from builder.jobs.control import stop_grace_s  # lazy: with the broker
    from builder.jobs.quotas import gpu_spent, room_refusal, storage_bytes  # lazy: heavy (sqlalchemy)
    from builder.process import broker  # lazy: heavy (sqlalchemy)

    run = store.get(run_id)
    owner = run["owner"]
    recorded = (run.get("environment") or {}).get("storage_room")
    recorded = recorded if isinstance(recorded, dict) and isinstance(recorded.get("left"), int) else None
    gpu = gpu_spent(store, owner, (run.get("environment") or {}).get("gpu_quota"))
    if recorded is None and gpu is None:
        return None
    cap = (recorded or {}).get("cap_mb")
    return broker.Room(run_id, store.folder(run_id).path, recorded["left"] if recorded else None,
                       room_refusal(recorded or {}), total=(lambda: storage_bytes(store, owner)) if recorded else None,
                       cap=int(cap * 2**20) if isinstance(cap, int | float) else None,
                       gpu_spent=gpu, grace_s=stop_grace_s() + 30)


def _shut_inherited(files: list[Path]) -> None:
    """Close this process's descriptors of ``files`` and unmap their mappings (SQLite's WAL index): what a fork
    inherited of its parent's connections, never used again here (:data:`builder.runs.db._FORKED`; the job ends
    with ``os._exit``, so no finaliser closes them later)."""
    names = {os.path.realpath(f) for f in files}
    if not names:
        return
    with contextlib.suppress(OSError):
        for fd in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError, ValueError):
                if os.readlink(f"/proc/self/fd/{fd}") in names:
                    os.close(int(fd))
    with contextlib.suppress(OSError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        for line in Path("/proc/self/maps").read_text().splitlines():
            parts = line.split(maxsplit=5)
            if len(parts) == 6 and parts[5] in names:
                start, end = (int(x, 16) for x in parts[0].split("-"))
                libc.munmap(start, end - start)


def enter(private: str | os.PathLike, lim: WorkerLimits | None = None, *, processes: bool = False,
          rules: Confinement | str | None = None) -> WorkerLimits:
    """Inside a job process, before it builds the model: the clean environment with ``private`` (created) as
    home and temporary folder, its files confined to ``rules`` (:func:`confinement`, applied by
    :func:`builder.process.landlock.confine`), the limits ``lim`` (default :func:`job_limits`), no new processes
    unless ``processes`` (a run with ``torch_compile``: inductor runs the C++ compiler, Triton ``ptxas``).
    Returns the limits in force."""
    lim = lim or job_limits()
    check_headroom(lim)
    Path(private).mkdir(parents=True, exist_ok=True)
    if rules is not None:
        print(f"job: {landlock.confine(rules)}", flush=True)
    if isinstance(rules, landlock.Confinement):  # the shared dataset cache is read-only to it: it builds its own
        keep_own(Path(private) / "cache")
    env = job_env(private, credentials=True)  # the credentials its starter passed (only for the admin's tracker)
    for name in BROKERED_ENV:  # its store is its broker now (brokered): no database address, no cluster's
        env.pop(name, None)
    os.environ.clear()
    sandbox.scrub_initial_environment()  # what the process started with, /proc/self/environ's copy too
    os.environ.update(env)
    tempfile.tempdir = str(private)
    # a confined job without a tracker needs no network: no socket at all (UDP too, which Landlock leaves open);
    # with one, UDP only to look up its tracker's host name
    confined = isinstance(rules, landlock.Confinement)
    sandbox.lock_down(replace(lim, cpu_s=0), who=WHAT, processes=processes,
                      network=not confined or bool(rules.ports), udp=not confined or rules.udp)
    if lim.memory_mb > 0 and lim.memory == "resident":
        _watch_resident(lim)
    if lim.cpu_s > 0:  # from now (a cold job's imports do not count); SIGXCPU raises, SIGKILL after the grace
        def on_xcpu(_sig, _frame) -> None:
            if not _LIMIT_MET:  # kept: the error may land in code that swallows errors (see limit_met)
                _LIMIT_MET.append(sandbox.limit_message("cpu", lim, what=WHAT, outcome=OUTCOME, fix=FIX))
                raise JobLimitError(_LIMIT_MET[0])

        signal.signal(signal.SIGXCPU, on_xcpu)
        sandbox.cpu_budget(lim.cpu_s, grace=CPU_GRACE_S)
    return lim


def check_headroom(lim: WorkerLimits, held_mb: int | None = None) -> None:
    """Raise :class:`JobLimitError` (the run fails naming the limit) where ``lim``'s private memory cap leaves
    less than :data:`START_HEADROOM_MB` over ``held_mb`` (default: what this process holds now), before the cap is
    set: the job cannot train under it, and meeting it this early can hang the job instead of failing it.

    >>> lim = WorkerLimits(memory_mb=1200, cpu_s=0, file_mb=1, memory="data", prefix=PREFIX)
    >>> check_headroom(lim, held_mb=1000)
    >>> check_headroom(lim, held_mb=1180)
    Traceback (most recent call last):
    builder.jobs.job_sandbox.JobLimitError: the training job stopped: it ran out of memory (limit 1200 MiB; raise \
LAYERLAB_JOB_MEMORY_MB to at least 1244: the job holds 1180 MiB (Python, torch) before it loads the data). The run \
failed; resume it to continue from its last checkpoint; the app is unaffected. Fix: raise LAYERLAB_JOB_MEMORY_MB
    """
    if lim.memory != "data" or lim.memory_mb <= 0:
        return
    held = -(-sandbox.data_size() // 2**20) if held_mb is None else held_mb
    if lim.memory_mb + lim.runtime_mb >= held + START_HEADROOM_MB:
        return
    need = held + START_HEADROOM_MB - lim.runtime_mb
    raise JobLimitError(sandbox.limit_message(
        "memory", lim, what=WHAT, outcome=OUTCOME, fix=f"raise {lim.prefix}_MEMORY_MB",
        raise_to=f"{need}: the job holds {held} MiB (Python, torch) before it loads the data"))


def check_store_room(store, lim: WorkerLimits) -> None:
    """Raise :class:`JobLimitError` where ``lim``'s file size limit leaves an SQLite run database (and its WAL
    file) no room to grow by its own size: the limit (``RLIMIT_FSIZE``) is on every file a study runner writes, the
    database included, and a process whose database had passed it could write nothing, not even its failure ("run
    database error: disk I/O error"; its run stayed ``running``). Checked before the limit is set, so the refusal
    is recorded. A database server (PostgreSQL) is not a file of the process's; a job's database is written by its
    broker (:func:`brokered`), outside its limits."""
    from builder.process.landlock import db_files  # lazy: heavy (sqlalchemy)

    files = db_files(store) if lim.file_mb > 0 else []
    size = sum(f.stat().st_size for f in files if isinstance(f, Path) and f.is_file()) if isinstance(files, list) else 0
    need = -(-2 * size // 2**20) + 1
    if size and lim.file_mb < need:
        raise JobLimitError(sandbox.limit_message(
            "file", lim, what=WHAT, outcome=OUTCOME, fix=f"raise {lim.prefix}_FILE_MB",
            raise_to=f"{need}: the run database, which the job writes too, is {size / 2**20:.1f} MiB"))


_LIMIT_MET: list[str] = []  # the line of the limit this job process met (set by its SIGXCPU handler)
WATCH_S = 0.2  # how often a GPU job's resident memory is read (:func:`_watch_resident`)


def _watch_resident(lim: WorkerLimits) -> None:
    """A GPU job's memory limit: a thread reads the resident memory every :data:`WATCH_S`; over
    ``memory_mb + runtime_mb`` it records the limit's line (:func:`limit_met`) and raises it in the main thread
    (SIGUSR2); a job still over the limit :data:`CPU_GRACE_S` later is killed (SIGKILL: left interrupted)."""
    cap = (lim.memory_mb + lim.runtime_mb) * 2**20
    line = sandbox.limit_message("memory", lim, what=WHAT, outcome=OUTCOME, fix=FIX)

    def raise_it(_sig, _frame) -> None:
        raise JobLimitError(line)

    def watch() -> None:
        over_since = None
        while True:
            time.sleep(WATCH_S)
            if sandbox.resident_size() <= cap:
                over_since = None
                continue
            if not _LIMIT_MET:
                _LIMIT_MET.append(line)
            if over_since is None:
                over_since = time.monotonic()
                signal.pthread_kill(threading.main_thread().ident, signal.SIGUSR2)
            elif time.monotonic() - over_since > CPU_GRACE_S:
                os.kill(os.getpid(), signal.SIGKILL)

    signal.signal(signal.SIGUSR2, raise_it)
    threading.Thread(target=watch, name="layerlab-memory-watch", daemon=True).start()


def limit_met() -> str | None:
    """The line naming the limit this job process met (its CPU time), or None. The signal's error is raised
    wherever the main thread is, which may be code that swallows errors (a measurement at the end of a run, a
    model card): the job reads this once training returns, so the run is failed whatever caught the error.

    >>> limit_met() is None  # no limit met in this process
    True
    """
    return _LIMIT_MET[0] if _LIMIT_MET else None


def compiles(config: Mapping | None) -> bool:
    """Whether a job's training config asks for ``torch.compile`` (its job may then start the compilers)."""
    return bool((config or {}).get("torch_compile"))


def on_gpu(index: int, lim: WorkerLimits) -> WorkerLimits:
    """Before :func:`enter`, in a job that trains on GPU ``index``: make it the current device and start the CUDA
    runtime there (:func:`builder.training.gpus.start_runtime`). Under a memory limit the job's *resident*
    memory is watched instead of ``RLIMIT_DATA`` (on an H100 host torch for CUDA alone holds ~1.7 GiB of
    writable mappings, and a 3-epoch MLP needed more than 1.2 GiB beyond that, untouched; the refusals surfaced
    as "CUDA error: out of memory" on an idle GPU), and what the process holds once its runtime has started
    (measured per job) is allowed on top of ``LAYERLAB_JOB_MEMORY_MB`` and named beside it."""
    import resource  # lazy: POSIX only (resource)

    from builder.training.gpus import start_runtime  # lazy: heavy (torch)

    with contextlib.suppress(ValueError, OSError):  # a cap it inherited (a study runner's, which counted the
        _, hard = resource.getrlimit(resource.RLIMIT_DATA)  # runner's own imports) gives way to its own limit
        resource.setrlimit(resource.RLIMIT_DATA, (hard, hard))
    start_runtime(index)
    if lim.memory_mb <= 0:
        return lim
    return replace(lim, memory="resident", runtime_mb=-(-sandbox.resident_size() // 2**20))


def leave(private: str | os.PathLike) -> None:
    """Remove a job's private folder (at its end)."""
    shutil.rmtree(private, ignore_errors=True)


def failure_message(exc: BaseException, lim: WorkerLimits) -> str | None:
    """One line naming the limit behind ``exc`` (or an exception it was raised from): private memory refused
    under ``LAYERLAB_JOB_MEMORY_MB``, a file over ``LAYERLAB_JOB_FILE_MB``, the CPU time; None for another
    error."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        text = str(e)
        if isinstance(e, JobLimitError):
            return text
        if isinstance(e, OSError) and e.errno == errno.EFBIG or "File too large" in text or "os error 27" in text:
            return sandbox.limit_message("file", lim, what=WHAT, outcome=OUTCOME, fix=f"{FIX}, or free space")
        if lim.memory_mb > 0 and ("CUDA" not in text and (isinstance(e, MemoryError) or "can't allocate memory" in text
                                                          or "Cannot allocate memory" in text
                                                          or "can't start new thread" in text)  # a stack is memory
                                  or "std::bad_alloc" in text):  # C++ refused host memory (a CUDA library too)
            return sandbox.limit_message("memory", lim, what=WHAT, outcome=OUTCOME, fix=FIX)
        e = e.__cause__ or e.__context__
    return None


def record_death(store, run_id: str, pid: int, code: int | None) -> bool:
    """A job process ``pid`` ended with ``code`` (negative: killed by that signal), as its starter saw it. A run
    it left live (or that a reader marked interrupted meanwhile) is marked failed with a line naming the signal
    and the limit (SIGXCPU, SIGXFSZ, a crash in native code); killed by SIGKILL (out of memory, past the CPU
    grace, or by hand) it stays interrupted, resumable, with the signal named. Returns whether it marked it."""
    if code is None or code >= 0:
        return False  # an exit: the job recorded its own end (or mark_interrupted does)
    with contextlib.suppress(LayerLabError):
        run = store.get(run_id)
        if run.get("pid") != pid or not (is_live(run["status"]) or run["status"] == RunStatus.INTERRUPTED):
            return False
        lim = job_limits()
        if -code == signal.SIGKILL:
            cpu = f", past its CPU limit ({lim.cpu_s} s of {CPU_ENV}) and grace" if lim.cpu_s else ""
            store.update_status(run_id, RunStatus.INTERRUPTED, f"the training process ended unexpectedly: it was "
                                f"killed (SIGKILL: out of memory{cpu}, or stopped by hand); resume with "
                                f"`layerlab runs resume {run_id}`")
        else:
            store.finish(run_id, RunStatus.FAILED,
                         message=sandbox.death_message(code, lim, what=WHAT, outcome=OUTCOME, fix=FIX))
        return True
    return False


def study_env(private: str | os.PathLike, source: Mapping[str, str] | None = None, *,
              credentials: bool = False) -> dict[str, str]:
    """A study runner's whole environment: that of its jobs (:func:`job_env`), and the teachers (its trials'
    quotas exempt them, :mod:`builder.jobs.quotas`); the jobs it submits take theirs from it."""
    src = os.environ if source is None else source
    teachers = {"LAYERLAB_TEACHERS": src["LAYERLAB_TEACHERS"]} if "LAYERLAB_TEACHERS" in src else {}
    return {**job_env(private, source, credentials=credentials), **teachers}


def limit_study(pid: int, lim: WorkerLimits | None = None) -> None:
    """Set a just-started study runner's limits from outside (``prlimit``): no core files and the file size of
    ``lim`` (default :func:`job_limits`); no CPU cap (it waits on its trials for hours). Its memory limit it sets
    itself once it has imported torch (:func:`limit_study_memory`)."""
    import resource  # lazy: POSIX only (resource)

    lim = lim or job_limits()
    caps = [(resource.RLIMIT_CORE, 0), (resource.RLIMIT_FSIZE, lim.file_mb * 2**20)]
    for which, value in caps:
        with contextlib.suppress(AttributeError, ValueError, OSError):
            _, hard = resource.prlimit(pid, which)
            resource.prlimit(pid, which, (value if hard == resource.RLIM_INFINITY else min(value, hard), hard))


def limit_study_memory(lim: WorkerLimits | None = None) -> int:
    """Inside a study runner, once torch is imported: its private memory (``RLIMIT_DATA``) capped at what it holds
    now plus ``LAYERLAB_JOB_MEMORY_MB`` (of ``lim``, default :func:`job_limits`). A cap set at its start counted
    torch itself: torch built for CUDA alone holds more than 1.2 GiB, so on an H100 host a 1200 MiB limit refused
    the runner's imports. Unset: :data:`HOST_SHARE` of the host's memory, as a job's (the runner loads the dataset
    and checks each trial's graph; uncapped, a runaway one swapped the server). Returns the cap in bytes (0: none)."""
    import resource  # lazy: POSIX only (resource)

    import torch  # noqa: F401  - imported before the cap is measured  # lazy: heavy (torch)

    lim = lim or job_limits()  # capped by default, as its jobs are
    if lim.memory_mb <= 0:
        return 0
    value = sandbox.data_size() + lim.memory_mb * 2**20
    with contextlib.suppress(ValueError, OSError):
        _, hard = resource.getrlimit(resource.RLIMIT_DATA)
        resource.setrlimit(resource.RLIMIT_DATA, (value if hard == resource.RLIM_INFINITY else min(value, hard), hard))
    return value


__all__ = ["job_limits", "host_memory_mb", "HOST_SHARE", "job_env", "enter", "compiles", "leave", "failure_message", "record_death", "study_env", "limit_study",
           "limit_study_memory",
           "JobLimitError", "limit_met", "check_store_room", "job_room", "confinement", "PASSED_ENV", "CREDENTIAL_ENV", "tracking_credentials", "TEST_CRASH_ENV", "crash_hook_for_tests", "MEMORY_ENV", "CPU_ENV", "FILE_ENV", "DEFAULT_FILE_MB"]
