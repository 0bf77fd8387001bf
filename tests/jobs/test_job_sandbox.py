"""Training jobs run under limits (builder.runs.job_sandbox): private memory, file size, CPU time, no new
processes, a clean environment; a limit met or a crash is a failed run whose message names it (real job
processes, cold and forked from the warm launcher, in one workspace so the launcher serves most of them)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
import torch

from builder.data.access import SYSTEM
from builder.graph.templates import load_template
from builder.jobs import queue as jobs
from builder.jobs import warm
from builder.jobs.job_sandbox import host_memory_mb
from builder.jobs.queue import JobSpec, submit, wait
from builder.process.launcher import child_env
from builder.runs.store import RunStore
from tests.helpers import SECCOMP, until

TIMEOUT = 180
# Long enough to still be training when a test acts on it (a crash sent, a CPU limit reached) on a fast, idle
# machine: every test ends it (30 epochs ran in under 1 CPU-s there, so the CPU limit never struck)
LONG = {"epochs": 3000, "batch_size": 8, "seed": 3, "early_stopping": None}
SECRET = "hunter2-not-for-jobs"
# the server's own secrets: none may reach a job (cold, forked from the warm launcher, a study runner's)
SERVER_SECRETS = {"LAYERLAB_ADMINS": f"user:{SECRET}", "LAYERLAB_TEACHERS": f"anon:{SECRET}",
                  "MLFLOW_TRACKING_PASSWORD": SECRET, "MLFLOW_TRACKING_TOKEN": SECRET, "LAYERLAB_SECRET_X": SECRET}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LAYERLAB_TORCH_THREADS", "1")
        mp.setenv("LAYERLAB_MAX_JOBS", "2")
        mp.setenv("LAYERLAB_LAUNCHER_IDLE_S", "60")
        mp.delenv("LAYERLAB_LAUNCHER_DIR", raising=False)  # the workspace's own launcher: its files are read below
        s = RunStore(tmp_path_factory.mktemp("jobs") / "ws", actor=SYSTEM)
        yield s
    with contextlib.suppress(OSError, ValueError):
        os.kill(int((s.workspace / warm.LAUNCHER_PID).read_text()), signal.SIGTERM)


def _mlp(width: int = 32) -> dict:
    project = load_template("mlp").model_dump()
    for node in project["graph"]["nodes"]:
        if node["id"] in ("fc1", "fc2"):
            node["params"]["out_features"] = width
    return project


def _spec(width: int = 32, **config) -> JobSpec:
    return JobSpec(project=_mlp(width), dataset="moons", dataset_options={"n_samples": 1000},
                   config={"epochs": 3, **config}, owner="alice")


def _proc(pid: int, name: str) -> str:
    return Path(f"/proc/{pid}/{name}").read_bytes().decode(errors="replace")


# child code: ``tried(name, call)`` records in ``out`` whether ``call`` ran or the errno it failed with
TRIED = """out = {}
def tried(name, call):
    try:
        call()
        out[name] = "ran"
    except OSError as e:
        out[name] = e.errno"""


def _brokered_job(ws: Path, tracker: str) -> str:
    """Code for a child process: an anonymous owner's new run in ``ws``, its confinement with ``tracker``
    (``rules``) and its store through a broker (``store``, ``mine`` the run id), as a job has them."""
    return f"""
import json
from pathlib import Path
from builder.data.access import SYSTEM, Actor
from builder.graph.templates import load_template
from builder.jobs import job_sandbox
from builder.runs.store import RunStore
store = RunStore(Path({str(ws)!r}), actor=SYSTEM)
a = "anon:" + "a" * 32
mine = store.create_run(load_template("mlp"), "moons", {{}}, {{}}, owner=a)
rules = job_sandbox.confinement(store, mine, a, {tracker!r})
store = job_sandbox.brokered(store.as_actor(Actor.of_job(a)))
"""


def _confined_job(ws: Path) -> str:
    """The start of a child's script (:func:`_run_python`): a web owner's run in workspace ``ws``, the job's rules
    (``job_sandbox.confinement``) applied, ``out["line"]`` their line and ``tried`` at hand (:data:`TRIED`)."""
    return f"""import json
from pathlib import Path
from builder.data.access import SYSTEM
from builder.graph.templates import load_template
from builder.jobs import job_sandbox
from builder.process import landlock
from builder.runs.store import RunStore
store = RunStore(Path({str(ws)!r}), actor=SYSTEM)
a = "anon:" + "a" * 32
mine = store.create_run(load_template("mlp"), "moons", {{}}, {{}}, owner=a)
rules = job_sandbox.confinement(store, mine, a)
{TRIED}
out["line"] = landlock.confine(rules)"""


def _run_python(code: str, env: dict | None = None) -> dict:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env=env or child_env())
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_rlimit_data_caps_private_memory_but_not_read_only_file_maps(tmp_path):
    """The job memory cap is RLIMIT_DATA because a read-only map of a large file (an image cache) is not
    counted, while an allocation is."""
    big = tmp_path / "cache.u8"
    with open(big, "wb") as f:
        f.truncate(512 * 2**20)
    seen = _run_python(f"""
import json, mmap, resource
import numpy as np
data = [int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmData:')][0] * 1024
resource.setrlimit(resource.RLIMIT_DATA, (data + 64 * 2**20, resource.RLIM_INFINITY))
with open({str(big)!r}, 'rb') as f:
    m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
touched = sum(m[i] for i in range(0, len(m), 4096))
arr = np.memmap({str(big)!r}, mode='r', dtype=np.uint8)
try:
    block = bytearray(256 * 2**20)
    refused = False
except MemoryError:
    refused = True
print(json.dumps({{"mapped": len(m), "memmap": int(arr.shape[0]), "touched": touched, "refused": refused}}))
""")
    assert seen == {"mapped": 512 * 2**20, "memmap": 512 * 2**20, "touched": 0, "refused": True}


_HELD = """
import json, os, resource
def raised(which):
    soft, hard = resource.getrlimit(which)
    try:
        resource.setrlimit(which, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    except (ValueError, OSError):
        return False
    return True
def took(call):
    try:
        call()
    except OSError:
        return False
    return True
status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
print(json.dumps({"raised": {n: raised(getattr(resource, n)) for n in WHICH},
                  "uid": os.geteuid(), "setuid": took(lambda: os.setuid(4242)) if os.geteuid() == 0 else None,
                  "caps": {k: int(status[k], 16) for k in ("CapEff", "CapPrm", "CapInh", "CapAmb", "CapBnd")}}))
"""


@pytest.mark.parametrize("who", ["job", "worker"])
def test_a_sandboxed_process_cannot_lift_its_limits_or_use_roots_powers(tmp_path, who):
    """A sandboxed process's limits were soft only, its hard ones the server's (unlimited): a model that took a job,
    the exchange worker or the probe over raised them again (memory, CPU, file size, core files). And a server run as
    root (a container's default) gave them all of root's capabilities, which Landlock and the seccomp filter do not
    govern: change the user id, raise hard limits, load modules, reboot. Now the hard limits are the limits and every
    capability is given up (as root: the bounding set too)."""
    if who == "job":
        head = (f"from builder.jobs import job_sandbox\njob_sandbox.enter({str(tmp_path / 'tmp')!r})\n"
                "WHICH = ('RLIMIT_CORE', 'RLIMIT_FSIZE', 'RLIMIT_DATA', 'RLIMIT_CPU')\n")
        env = {**child_env(), "LAYERLAB_JOB_MEMORY_MB": "4096", "LAYERLAB_JOB_CPU_S": "600"}
    else:
        head = ("from builder.process.sandbox import WorkerLimits, lock_down\n"
                "lock_down(WorkerLimits(memory_mb=4096, cpu_s=600, file_mb=8), network=False)\n"
                "WHICH = ('RLIMIT_CORE', 'RLIMIT_FSIZE', 'RLIMIT_AS', 'RLIMIT_CPU')\n")
        env = child_env()
    seen = _run_python(head + _HELD, env)
    assert not any(seen["raised"].values()), seen["raised"]
    assert seen["caps"]["CapEff"] == seen["caps"]["CapPrm"] == seen["caps"]["CapInh"] == seen["caps"]["CapAmb"] == 0
    if seen["uid"] == 0:  # root: the bounding set is given up too, and the user id stays
        assert seen["caps"]["CapBnd"] == 0 and seen["setuid"] is False


def test_a_locked_down_job_process_sees_a_clean_environment_and_starts_no_process(tmp_path):
    roles = {k: v for k, v in SERVER_SECRETS.items() if not k.startswith("MLFLOW_")}  # MLflow's: its starter's choice
    env = {**child_env(), "AWS_SECRET_ACCESS_KEY": SECRET, "LAYERLAB_JOB_FILE_MB": "8", "MLFLOW_TRACKING_URI": "x",
           **roles}
    seen = _run_python(f"""
import ctypes, json, os, resource, subprocess, tempfile
from builder.jobs import job_sandbox
job_sandbox.enter({str(tmp_path / 'tmp')!r})
tried = {{}}
for name, call in (("subprocess", lambda: subprocess.run(["true"])), ("system", lambda: os.system("true")),
                   ("fork", os.fork)):
    try:
        call()
        tried[name] = "ran"
    except PermissionError as e:
        tried[name] = str(e)
libc = ctypes.CDLL(None, use_errno=True)
pid = libc.syscall(57 if os.uname().machine == "x86_64" else 220, 17, 0, 0, 0, 0)  # fork / clone(SIGCHLD)
if pid == 0:
    os._exit(0)
print(json.dumps({{"env": dict(os.environ), "tmp": tempfile.gettempdir(), "tried": tried,
                  "native": [pid, ctypes.get_errno()],
                  "core": resource.getrlimit(resource.RLIMIT_CORE)[0],
                  "fsize": resource.getrlimit(resource.RLIMIT_FSIZE)[0]}}))
""", env)
    assert SECRET not in json.dumps(seen["env"]) and "AWS_SECRET_ACCESS_KEY" not in seen["env"]
    assert seen["env"]["HOME"] == seen["env"]["TMPDIR"] == seen["tmp"] == str(tmp_path / "tmp")
    assert not set(roles) & set(seen["env"]), "the server's roles reached the job"
    assert "MLFLOW_TRACKING_URI" not in seen["env"] and seen["env"]["TORCHINDUCTOR_COMPILE_THREADS"] == "1"
    assert seen["env"]["LAYERLAB_JOB_FILE_MB"] == "8"
    assert all("the training job may not start processes" in v for v in seen["tried"].values()), seen["tried"]
    if SECCOMP:
        assert seen["native"] == [-1, 1]  # EPERM from the seccomp filter
    assert seen["core"] == 0 and seen["fsize"] == 8 * 2**20


@pytest.mark.skipif(not SECCOMP, reason="the seccomp filter is installed on Linux x86-64 and aarch64")
@pytest.mark.parametrize("compiles", [False, True], ids=["job", "job that compiles"])
def test_a_locked_down_job_reaches_no_other_process(tmp_path, compiles):
    """A job runs a person's model with the server's user id: locked down, it may not trace another process of
    that user (the server, another person's job), read or write its memory, or signal it (it could end the server
    or a classmate's run); it may still ask whether a process lives (signal 0) and signal itself. A job that
    compiles starts its compilers, and may signal them, but traces no process either. It makes no UNIX socket,
    so it connects to no named one (a PostgreSQL server's local socket, the warm launcher's: Landlock does not
    cover them), and no io_uring (whose requests pass no seccomp filter); a socket pair it still makes."""
    victim = subprocess.Popen(["sleep", "60"])
    named = socket.socket(socket.AF_UNIX)
    named.bind(str(tmp_path / "service.sock"))
    named.listen(1)
    try:
        seen = _run_python(f"""
import ctypes, json, os, signal, socket, threading
from builder.jobs import job_sandbox
job_sandbox.enter({str(tmp_path / 'tmp')!r}, processes={compiles!r})
libc = ctypes.CDLL(None, use_errno=True)
{TRIED}
def native(name, *args):
    ctypes.set_errno(0)
    out[name] = [libc.syscall(*args), ctypes.get_errno()]
x86 = os.uname().machine == "x86_64"
tried("kill", lambda: os.kill({victim.pid}, signal.SIGCONT))  # harmless, but a signal all the same
tried("probe", lambda: os.kill({victim.pid}, 0))
tried("self", lambda: os.kill(os.getpid(), 0))
tried("thread", lambda: signal.pthread_kill(threading.main_thread().ident, 0))
native("ptrace", 101 if x86 else 117, 16, {victim.pid}, 0, 0)  # PTRACE_ATTACH
iov = (ctypes.c_char * 8)()
vec = (ctypes.c_void_p * 2)(ctypes.addressof(iov), 8)
native("vm_read", 310 if x86 else 270, {victim.pid}, ctypes.byref(vec), 1, ctypes.byref(vec), 1, 0)
native("tgkill", 234 if x86 else 131, {victim.pid}, {victim.pid}, signal.SIGCONT)
if x86:  # the same call in the x32 convention (its number with bit 30 set) is no way around the filter
    native("x32_ptrace", 0x40000000 | 101, 16, {victim.pid}, 0, 0)
tried("unix", lambda: socket.socket(socket.AF_UNIX).connect({str(tmp_path / "service.sock")!r}))
tried("pair", lambda: [s.close() for s in socket.socketpair()])
params = (ctypes.c_char * 120)()
native("io_uring", 425, 8, ctypes.byref(params))
print(json.dumps(out))
""", child_env())
        assert victim.poll() is None, "the job ended another process"
    finally:
        victim.kill()
        victim.wait()
        named.close()
    assert seen["ptrace"] == [-1, 1] and seen["vm_read"] == [-1, 1], seen  # EPERM
    assert seen.get("x32_ptrace", [-1, 1]) == [-1, 1], seen
    assert seen["probe"] == seen["self"] == seen["thread"] == seen["pair"] == "ran", seen
    assert seen["unix"] == 1 and seen["io_uring"] == [-1, 1], seen
    if compiles:
        assert seen["kill"] == "ran", seen  # its compilers are processes it may signal
    else:
        assert seen["kill"] == 1 and seen["tgkill"] == [-1, 1], seen


@pytest.mark.skipif(not SECCOMP, reason="the seccomp filter is installed on Linux x86-64 and aarch64")
@pytest.mark.parametrize("tracker", [None, "http://127.0.0.1:9", "http://ml.school.org:9"],
                         ids=["no tracker", "a tracker by address", "a tracker by name"])
def test_a_confined_job_without_a_tracker_makes_no_network_socket(tmp_path, tracker):
    """A confined job whose owner set no tracker needs no network: it makes no TCP or UDP socket. Landlock's
    network rules cover TCP only (a job sent UDP datagrams to any service of the host, a DNS server or a
    memcached, say), and on a kernel before 6.7 nothing covered TCP either. A job with a tracker still makes its
    TCP sockets (Landlock lets them reach the tracker's port only), and UDP ones only to look up a tracker's host
    name."""
    from builder.tracking_destinations import names_a_host, tcp_ports

    ports, udp = tcp_ports(tracker), names_a_host(tracker)
    private = tmp_path / "tmp"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as service:
        service.bind(("127.0.0.1", 0))
        service.setblocking(False)
        seen = _run_python(f"""
import json, socket
from builder.jobs import job_sandbox
from builder.process.landlock import Confinement, system_read_paths
job_sandbox.enter({str(private)!r}, rules=Confinement(system_read_paths(), [{str(private)!r}], ports={ports!r},
                                                       udp={udp!r}))
{TRIED}
tried("udp", lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"hi", {service.getsockname()!r}))
tried("udp6", lambda: socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).close())
tried("tcp", lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM).close())
tried("pair", lambda: [s.close() for s in socket.socketpair()])
print(json.dumps(out))
""")
        try:
            got = service.recv(16)
        except BlockingIOError:
            got = None
    assert seen["pair"] == "ran", seen  # the broker's kind of socket stays
    if udp:  # its tracker's name to look up (TCP: Landlock)
        assert seen["tcp"] == seen["udp"] == seen["udp6"] == "ran" and got == b"hi", seen
    elif ports:  # its tracker by address: TCP (Landlock: that port), no UDP
        assert seen["tcp"] == "ran" and seen["udp"] == seen["udp6"] == 1 and got is None, (seen, got)
    else:
        assert seen["udp"] == seen["udp6"] == seen["tcp"] == 1 and got is None, (seen, got)  # EPERM


def _failed_with(store, rid: str, prefix: str) -> str:
    """The run's message once it failed with ``prefix`` (the job names the limit just after the trainer recorded
    the failure, and a death by signal is recorded by its starter just after a reader may mark it interrupted)."""
    end = time.monotonic() + TIMEOUT
    while time.monotonic() < end:
        run = store.get(rid)
        if run["status"] == "failed" and run["message"].startswith(prefix):
            assert "\n" not in run["message"] and "the app is unaffected" in run["message"]
            return run["message"]
        time.sleep(0.05)
    log = store.folder(rid).job_log
    pytest.fail(f"run {rid} did not fail with {prefix!r}: {store.get(rid)['status']}, {store.get(rid)['message']!r}; "
                f"its log ends: {log.read_text(errors='replace')[-3000:] if log.exists() else '(none)'}")


def _running(store, rid: str) -> int:
    until(lambda: (store.get(rid)["epochs_done"] or 0) >= 1, f"run {rid} to train", TIMEOUT)
    return store.get(rid)["pid"]


def test_jobs_cold_and_forked_are_locked_down_and_a_crash_is_a_failed_run(store, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    for k, v in SERVER_SECRETS.items():  # in the server when it starts the job and the warm launcher
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("LAYERLAB_JOB_FILE_MB", "64")
    cold = submit(store, _spec(**LONG))  # no launcher yet: launched, and the launcher started for later
    until(lambda: warm._launcher_running(store.workspace), "launcher", TIMEOUT)
    launcher = int((store.workspace / warm.LAUNCHER_PID).read_text())
    forked_rid = submit(store, _spec(**LONG))
    for rid, forked in ((cold, False), (forked_rid, True)):
        pid = _running(store, rid)
        assert (int(_proc(pid, "stat").rsplit(")", 1)[1].split()[1]) == launcher) is forked
        assert SECRET not in _proc(pid, "environ")  # what it started with (a forked job: its launcher's)
        assert SECRET not in _proc(launcher, "environ")
        status = dict(line.split(":", 1) for line in _proc(pid, "status").splitlines() if ":" in line)
        assert status["NoNewPrivs"].strip() == "1" and (status["Seccomp"].strip() == "2" or not SECCOMP)
        limits = _proc(pid, "limits")
        assert any(line.startswith("Max core file size") and line.split()[4] == "0" for line in limits.splitlines())
        assert any(line.startswith("Max file size") and line.split()[3] == str(64 * 2**20)
                   for line in limits.splitlines())
        if not torch.cuda.is_available():  # a CPU host: private memory capped by default (a share of the host's)
            assert any(line.startswith("Max data size") and line.split()[3] == str(host_memory_mb() * 2**20)
                       for line in limits.splitlines())
        assert store.folder(rid).tmp.is_dir()  # its private HOME and TMPDIR
        os.kill(pid, signal.SIGSEGV)  # a crash in native code: seen by whoever started it
    for rid in (cold, forked_rid):  # the first final status a reader sees is failed: its starter records the
        assert wait(store, [rid], TIMEOUT) == {rid: "failed"}  # death before it reaps (never 'interrupted' first)
        _failed_with(store, rid, "the training job died from SIGSEGV: a crash in native code")


def test_a_job_over_its_memory_limit_fails_naming_the_limit(store, monkeypatch):
    monkeypatch.setenv("LAYERLAB_JOB_MEMORY_MB", "1200")
    rid = submit(store, _spec(width=12_000, device="cpu"))  # 144 M parameters: 576 MB of weights, 2.3 GB with Adam
    # (on a CUDA host a forked job holds ~1.2 GiB at its start: refused there at once, "raise ... to at least N")
    _failed_with(store, rid, "the training job stopped: it ran out of memory (limit 1200 MiB; raise "
                 "LAYERLAB_JOB_MEMORY_MB")
    until(lambda: not store.folder(rid).tmp.exists(), "its private folder to be removed", TIMEOUT)
    ok = submit(store, _spec())  # the same limit leaves a small model alone
    assert wait(store, [ok], TIMEOUT) == {ok: "finished"}


def test_a_memory_limit_at_what_a_forked_job_already_holds_fails_it_at_once(store, monkeypatch):
    """A job forked from the warm launcher holds the launcher's Python and torch (~0.5 GiB here, ~1.2 GiB with
    CUDA's torch). Under a limit at or just above that, a thread's start met the limit inside CPython's thread
    set-up and the job waited for that thread for ever: its run stayed ``running`` with no message (found on a
    lent H200 with a 1200 MiB limit). Now it fails at once, naming the limit and the number that would do.

    What a forked job holds is read from its own refusal, not from the launcher: on a 16-core CUDA host (a lent
    H200) a forked job held 65 MiB or more under its launcher's ``VmData``, so a limit just under the launcher's
    left it room, and it trained (which is right). Each limit tried must end the run, never leave it running."""
    first = submit(store, _spec())
    assert wait(store, [first], TIMEOUT) == {first: "finished"}
    pid_file = store.workspace / warm.LAUNCHER_PID  # the first (cold) job started the launcher: up once it says
    until(lambda: pid_file.is_file() and pid_file.read_text().strip(), "the launcher's pid", TIMEOUT)
    launcher = int(pid_file.read_text())
    below = int(next(line for line in _proc(launcher, "status").splitlines() if line.startswith("VmData")).split()[1])
    prefix = "the training job stopped: it ran out of memory (limit {} MiB; raise LAYERLAB_JOB_MEMORY_MB to at least "
    held = None
    for limit in (below // 1024 - 1, below // 1024 - 129, below // 1024 - 257):  # until one is under what it holds
        monkeypatch.setenv("LAYERLAB_JOB_MEMORY_MB", str(limit))
        rid = submit(store, _spec(device="cpu"))
        if wait(store, [rid], TIMEOUT)[rid] == "finished":
            continue  # room enough over what this job held (a run left running fails in _failed_with below)
        message = _failed_with(store, rid, prefix.format(limit))
        assert "forked by the warm launcher" in store.folder(rid).job_log.read_text(), "not a forked job"
        held = int(re.search(r"the job holds (\d+) MiB \(Python, torch\) before it loads the data", message)[1])
        break
    assert held is not None, f"no limit down to 256 MiB under the launcher's {below // 1024} MiB failed the job"
    monkeypatch.setenv("LAYERLAB_JOB_MEMORY_MB", str(held + 8))  # just over what it holds: at once, not a hang
    message = _failed_with(store, submit(store, _spec(device="cpu")), prefix.format(held + 8))
    need = int(re.search(r"to at least (\d+):", message)[1])
    assert held + 48 <= need <= held + 80, message  # what it held then (give or take) and the 64 MiB headroom


def test_a_job_over_its_file_size_limit_fails_writing_its_checkpoint(store, monkeypatch, tmp_path):
    small = RunStore(tmp_path / "ws", actor=SYSTEM)  # a new run database, far under the limit (see below)
    monkeypatch.setenv("LAYERLAB_JOB_FILE_MB", "2")
    rid = submit(small, _spec(width=1000))  # 1 M parameters: a 4 MB checkpoint
    message = _failed_with(small, rid, "the training job stopped: it wrote a file over the size limit (2 MiB; raise "
                           "LAYERLAB_JOB_FILE_MB).")
    assert "run database" not in message


def test_a_job_that_outgrows_its_owners_storage_quota_is_stopped_and_its_run_says_why(store, monkeypatch, tmp_path):
    """The storage quota was checked when a job was admitted only: a job then wrote checkpoints, curves and logs
    without bound. Its broker now holds it to what its owner may still store (builder.process.broker.Room)."""
    small = RunStore(tmp_path / "ws", actor=SYSTEM)
    monkeypatch.setenv("LAYERLAB_QUOTA_STORAGE_MB", "3")
    rid = submit(small, _spec(width=1000))  # 1 M parameters: a 4 MB checkpoint, on top of its data
    message = _failed_with(small, rid, "the training job stopped: it outgrew its owner's storage (one person's "
                           "runs, uploads and studies may take at most 3 MiB; received: 0.")
    taken = float(re.search(r"and ([\d.]+) MiB more written by it; limit set by LAYERLAB_QUOTA_STORAGE_MB\)",
                            message)[1])
    assert taken > 2.9, message  # past its room (how far: what it writes between two measurements, test_broker)
    env = small.get(rid)["environment"]
    assert env["storage_room"]["cap_mb"] == 3 and 0 < env["storage_room"]["left"] <= 3 * 2**20  # its admission's
    monkeypatch.setenv("LAYERLAB_QUOTA_STORAGE_MB", "50")  # the same job within its room trains to its end
    ok = submit(small, _spec(width=1000))
    assert wait(small, [ok], TIMEOUT) == {ok: "finished"}, small.get(ok)["message"]


def test_a_job_that_spends_its_owners_gpu_time_while_it_runs_is_stopped_and_says_by_what(store, monkeypatch):
    """The GPU-time quota was checked when a job was admitted only: a job admitted with a second left trained on a
    GPU for as long as it liked. Its broker now checks the limit its admission recorded while it runs
    (job_sandbox.job_room: quotas.gpu_spent) and asks it to stop, resumable. No GPU here: the run is placed on
    GPU 0 in its record, as the packing does (on_gpu reads it), so its time counts as GPU time."""
    monkeypatch.setenv("LAYERLAB_QUOTA_GPU_SECONDS", "1")
    rid = submit(store, _spec(**LONG, device="cpu"))  # a CPU job is admitted whatever its owner's GPU time
    until(lambda: store.get(rid)["status"] == "running", "the job running", TIMEOUT)
    store.set_environment(rid, gpu=0)  # the system's record of a GPU placement
    assert wait(store, [rid], TIMEOUT) == {rid: "stopped"}, store.get(rid)["message"]
    run = store.get(rid)
    assert run.stopped_by.startswith("the GPU-time quota (one person may use at most 1 GPU-seconds in 24 hours; "
                                     "received: ") and run.stopped_by.endswith("limit set by LAYERLAB_QUOTA_GPU_SECONDS)")
    assert (run["epochs_done"] or 0) < LONG["epochs"] and store.folder(rid).has_checkpoint  # stopped, resumable


def test_a_file_size_limit_under_the_run_databases_size_holds_no_job_back(store, monkeypatch):
    """The file size limit is on every file a job writes. The job wrote the SQLite run database itself, so a
    database past the limit refused its every write (its failure included: "run database error: disk I/O error"),
    and such a limit then failed the job before it started. Its broker writes the database now, outside its
    limits (builder.process.broker): the job trains under a limit smaller than the database."""
    store._write("CREATE TABLE IF NOT EXISTS test_padding (x BLOB)")
    store._write("INSERT INTO test_padding VALUES (?)", (b"\0" * 1_500_000,))  # a database of over 1.5 MB
    monkeypatch.setenv("LAYERLAB_JOB_FILE_MB", "1")  # under the database
    rid = submit(store, _spec())
    assert wait(store, [rid], TIMEOUT) == {rid: "finished"}, store.get(rid)["message"]


def test_a_job_over_its_cpu_time_fails_naming_the_limit(store, monkeypatch):
    monkeypatch.setenv("LAYERLAB_JOB_CPU_S", "1")
    rid = submit(store, _spec(**LONG))
    _failed_with(store, rid, "the training job stopped: its CPU time ran out (limit 1 s; raise LAYERLAB_JOB_CPU_S)")
    assert (store.get(rid)["epochs_done"] or 0) < LONG["epochs"]


def test_a_cpu_limit_met_inside_code_that_swallows_errors_is_still_known(tmp_path):
    """SIGXCPU raises wherever the main thread is: in a measurement or model card that swallows errors (the end
    of a short run), the error is lost, yet the job reads :func:`limit_met` and fails the run (it used to be
    recorded 'finished' when the limit struck after the last epoch)."""
    env = {**child_env(), "LAYERLAB_JOB_CPU_S": "1"}
    seen = _run_python(f"""
import json, time
from builder.jobs import job_sandbox
before = job_sandbox.limit_met()
job_sandbox.enter({str(tmp_path / 'tmp')!r})
swallowed = []
end = time.monotonic() + 60
while not swallowed and time.monotonic() < end:
    try:
        sum(i * i for i in range(100_000))  # CPU time, until the kernel's SIGXCPU
    except Exception as e:  # noqa: BLE001 - as a measurement at the end of a run does
        swallowed.append(type(e).__name__)
print(json.dumps({{"before": before, "swallowed": swallowed, "met": job_sandbox.limit_met()}}))
""", env)
    assert seen["before"] is None and seen["swallowed"] == ["JobLimitError"]
    assert seen["met"].startswith("the training job stopped: its CPU time ran out (limit 1 s; raise LAYERLAB_JOB_CPU_S)")


def test_a_study_runner_starts_with_a_clean_environment_and_the_jobs_limits(tmp_path, monkeypatch):
    from builder.search.runner import launch_study
    from builder.search.settings import StudySettings

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    for k, v in SERVER_SECRETS.items():  # the teachers pass (its trials' quotas exempt them), nothing else
        monkeypatch.setenv(k, v if k != "LAYERLAB_TEACHERS" else "anon-k7x2qd4mzt")
    monkeypatch.setenv("LAYERLAB_JOB_MEMORY_MB", "3000")
    proc = launch_study(tmp_path, load_template("mlp"), "moons", ["lr=1e-3..1e-1:log"],
                        StudySettings(name="box", n_trials=1, workers=1, pruner="none"), config={"epochs": 1})

    def data_cap() -> int | None:  # set by the runner itself once torch is imported
        line = next(ln for ln in _proc(proc.pid, "limits").splitlines() if ln.startswith("Max data size"))
        return None if line.split()[3] == "unlimited" else int(line.split()[3])

    try:
        until(lambda: data_cap() is not None, "the runner's memory limit", TIMEOUT)
        environ, limits, cap = _proc(proc.pid, "environ"), _proc(proc.pid, "limits").splitlines(), data_cap()
        held = int(next(ln for ln in _proc(proc.pid, "status").splitlines() if ln.startswith("VmData:")).split()[1])
    finally:
        proc.kill()
        proc.wait(30)
    assert SECRET not in environ and f"HOME={tmp_path / 'studies' / 'box.tmp'}" in environ.split("\0")
    # 3000 MiB over what it held with torch imported (torch for CUDA alone holds over 1.2 GiB)
    assert 3000 * 2**20 + 50 * 2**20 < cap <= 3000 * 2**20 + held * 1024
    assert any(line.startswith("Max core file size") and line.split()[4] == "0" for line in limits)


def test_failure_message_names_a_limit_only_where_one_was_met():
    import errno

    from builder.errors import TrainingError
    from builder.jobs.job_sandbox import failure_message, job_limits

    capped, free = job_limits({"LAYERLAB_JOB_MEMORY_MB": "512"}), replace(job_limits({}), memory_mb=0)

    def chained(cause: BaseException) -> TrainingError:
        try:
            raise TrainingError(f"training failed: {cause}") from cause
        except TrainingError as e:
            return e

    oom = chained(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 8 bytes"))
    assert "ran out of memory (limit 512 MiB; raise LAYERLAB_JOB_MEMORY_MB)" in failure_message(oom, capped)
    assert failure_message(oom, free) is None  # no cap: the machine's memory, not a limit of ours
    assert failure_message(chained(RuntimeError("CUDA out of memory. Tried to allocate")), capped) is None
    big = chained(OSError(errno.EFBIG, "File too large"))
    assert "over the size limit (16384 MiB; raise LAYERLAB_JOB_FILE_MB)" in failure_message(big, free)
    assert failure_message(chained(ValueError("shapes do not match")), capped) is None


def test_a_job_that_compiles_may_start_the_compiler(store):
    """torch.compile runs the C++ compiler (inductor on CPU; Triton's ptxas on CUDA): a run with torch_compile is
    the one job whose process filter is left off (its other limits stay). The tiniest graph (one Linear) and one
    batch per epoch: one forward and one backward graph to compile, not a recompile for a short last batch."""
    project = load_template("mlp").model_dump()
    project["graph"]["nodes"] = [n for n in project["graph"]["nodes"] if n["id"] in ("input", "head")]
    project["graph"]["edges"] = [{"source": "input", "target": "head"}]
    spec = JobSpec(project=project, dataset="moons", dataset_options={"n_samples": 64}, owner="alice",
                   config={"epochs": 1, "batch_size": 64, "early_stopping": None, "torch_compile": True})
    rid = submit(store, spec)
    assert wait(store, [rid], TIMEOUT) == {rid: "finished"}, store.get(rid)["message"]


def _run_in_process(store: RunStore, rid: str) -> int:
    """The job body (run_job) in this process, its SIGTERM handler and thread count restored after."""
    handler, threads = signal.getsignal(signal.SIGTERM), torch.get_num_threads()
    try:
        return jobs.run_job(store.workspace, rid)
    finally:
        signal.signal(signal.SIGTERM, handler)
        torch.set_num_threads(threads)


def test_a_limit_met_before_training_starts_is_recorded_with_the_run(tmp_path, monkeypatch):
    """A cold job met its CPU limit while importing its callbacks' libraries and died with a traceback, its run left
    `running`; everything after the sandbox is entered is now inside the job's failure record."""
    from builder.jobs.job_sandbox import JobLimitError

    monkeypatch.setattr(jobs, "launch_warm", lambda *a: os.getpid())  # recorded, not launched: run in process
    def over(*_a):
        raise JobLimitError("the training job stopped: its CPU time ran out (limit 1 s; raise LAYERLAB_JOB_CPU_S)")

    monkeypatch.setattr(jobs, "_callbacks", over)
    store = RunStore(tmp_path / "ws", actor=SYSTEM)
    rid = submit(store, _spec())
    assert _run_in_process(store, rid) == 1
    run = store.get(rid)
    assert run["status"] == "failed" and run["message"].startswith("the training job stopped: its CPU time ran out")


@pytest.mark.parametrize("memory_mb, error, expect", [
    ("", RuntimeError("CUDA error: CUDA-capable device(s) is/are busy or unavailable"),
     "CUDA error: CUDA-capable device(s) is/are busy or unavailable"),
    ("1200", RuntimeError("std::bad_alloc"), "the training job stopped: it ran out of memory (limit 1200 MiB;"),
])
def test_a_gpu_that_cannot_start_is_a_failed_run_that_says_why(tmp_path, monkeypatch, memory_mb, error, expect):
    """On an H100 host a job under LAYERLAB_JOB_MEMORY_MB=1200 could not start CUDA (its runtime takes ~1.7 GiB of
    host memory) and died before its failure record: the run was left `interrupted`, "ended unexpectedly". Every
    step after the job reads its spec is now inside the record, and C++'s refused allocation names the limit."""
    from builder.jobs import job_sandbox
    from builder.training.gpus import Gpu

    monkeypatch.setenv("LAYERLAB_JOB_MEMORY_MB", memory_mb)
    monkeypatch.setattr(jobs, "launch_warm", lambda *a: os.getpid())  # recorded, not launched: run in process
    monkeypatch.setattr(jobs, "GPU_QUERY", lambda: [Gpu(0, free=80 * 2**30, total=80 * 2**30)])
    monkeypatch.setattr(jobs, "_wait_for_slot", lambda *a, **k: (True, 0))  # placed on GPU 0

    def start(index, lim):
        raise error

    monkeypatch.setattr(job_sandbox, "on_gpu", start)
    store = RunStore(tmp_path / "ws", actor=SYSTEM)
    rid = submit(store, _spec())
    assert _run_in_process(store, rid) == 1
    run = store.get(rid)
    assert run["status"] == "failed" and run["message"].startswith(expect), run["message"]


def test_a_gpu_jobs_cuda_runtime_is_allowed_on_top_of_its_memory_limit(monkeypatch):
    """A GPU job's limit is on resident memory (torch for CUDA alone held 1.7 GiB of writable mappings on an H100
    host, and a 3-epoch MLP needed over 1.2 GiB more of them, untouched): what it holds once its GPU has started
    is added to the limit and named in its message; without a limit nothing is added."""
    from builder.jobs import job_sandbox
    from builder.process import sandbox
    from builder.training import gpus

    kept = []
    monkeypatch.setattr(gpus, "start_runtime", lambda index: kept.append(bytearray(b"\1") * (300 * 2**20)))
    before = sandbox.resident_size() // 2**20
    lim = job_sandbox.on_gpu(0, job_sandbox.job_limits({"LAYERLAB_JOB_MEMORY_MB": "1200"}))
    assert lim.runtime_mb >= before + 290 and lim.memory_mb == 1200 and lim.memory == "resident"
    assert (f"limit 1200 MiB of resident memory over the {lim.runtime_mb} MiB torch and its CUDA runtime held at "
            "its start" in sandbox.limit_why("memory", lim))
    assert job_sandbox.on_gpu(0, replace(job_sandbox.job_limits({}), memory_mb=0)).runtime_mb == 0
    unset = job_sandbox.on_gpu(0, job_sandbox.job_limits({}))  # unset: a share of the host's memory, on top of it
    assert unset.memory_mb == job_sandbox.host_memory_mb() > 0 and unset.memory == "resident" and unset.runtime_mb


def test_a_job_over_its_resident_memory_limit_is_stopped_by_its_watch():
    """The watch a GPU job's memory limit uses, on any host: a job that touches more memory than its limit allows
    gets the limit's error in its main thread, soon after it crosses it."""
    out = _run_python("""
import json, os, tempfile, time
from builder.jobs import job_sandbox
from builder.process.sandbox import WorkerLimits, resident_size
lim = WorkerLimits(memory_mb=64, cpu_s=0, file_mb=64, memory="resident", runtime_mb=resident_size() // 2**20,
                   prefix="LAYERLAB_JOB")
job_sandbox.enter(tempfile.mkdtemp(), lim)
held = []
try:
    for _ in range(64):
        held.append(bytearray(b"\\1") * 2**24)
        time.sleep(0.05)
    print(json.dumps({"held": len(held) * 16}))
except job_sandbox.JobLimitError as e:
    print(json.dumps({"held": len(held) * 16, "error": str(e), "met": job_sandbox.limit_met()}))
""")
    assert out.get("error", "").startswith("the training job stopped: it ran out of memory (limit 64 MiB of resident "
                                           "memory over the "), out
    assert out["met"] == out["error"] and 64 <= out["held"] <= 64 + 256, out


def test_a_study_runner_on_a_host_without_cuda_gets_the_jobs_default_memory_cap(tmp_path):
    """A study runner loads its dataset and checks every trial's graph: on a host without CUDA, with no
    LAYERLAB_JOB_MEMORY_MB, it is capped as a job there is (a share of the host's memory over what it holds) instead
    of not at all (a runaway runner swapped the server)."""
    env = {k: v for k, v in child_env().items() if k != "LAYERLAB_JOB_MEMORY_MB"}
    seen = _run_python("""
import json, torch
from builder.jobs import job_sandbox
print(json.dumps({"cap": job_sandbox.limit_study_memory(), "cuda": torch.cuda.is_available()}))
""", env)
    assert seen["cap"] > host_memory_mb() * 2**20 or seen["cuda"]


def test_mlflow_credentials_go_only_to_a_job_that_logs_to_the_admins_tracker(tmp_path, monkeypatch):
    from builder.jobs.job_sandbox import job_env
    from builder.tracking_destinations import SERVER_DEFAULT

    for k, v in SERVER_SECRETS.items():
        monkeypatch.setenv(k, v)
    for recorded, expect in ((SERVER_DEFAULT, True), ("https://ml.example.org", False), (None, False)):
        (tmp_path / "job.json").write_text(json.dumps({"tracking": recorded}))
        credentials = jobs._credentials(tmp_path / "job.json")
        assert credentials is expect
        for env in (warm._launcher_env(tmp_path, credentials), job_env(tmp_path, credentials=credentials)):
            assert ("MLFLOW_TRACKING_PASSWORD" in env) is expect and ("MLFLOW_TRACKING_TOKEN" in env) is expect
            assert not {"LAYERLAB_ADMINS", "LAYERLAB_TEACHERS", "LAYERLAB_SECRET_X"} & set(env)
    assert jobs._credentials(tmp_path / "missing.json") is False


def test_a_confined_job_reads_no_secret_nor_another_owners_run_but_uses_its_own(tmp_path):
    """Landlock (where the kernel has it): a web owner's job process reads and writes its run folder, reads its own
    owner folder and the runs it may read, and cannot read the workspace's identity.key, server.json or another
    owner's run folder (it ran as the server's user and could read them all). The run database is not among its
    files either: its store is its broker (builder.process.broker), which writes its own run's row and refuses
    another owner's, while the database file itself (every owner id, an anonymous one being a browser's cookie)
    cannot be opened, read or written with plain SQL (it could, and any row could be rewritten)."""
    from builder.process import landlock

    seen = _run_python(f"""
import json, sqlite3
from pathlib import Path
from builder.data.access import SYSTEM, Actor
from builder.errors import AccessDenied
from builder.graph.templates import load_template
from builder.jobs import job_sandbox
from builder.process import landlock
from builder.runs import owners
from builder.runs.store import RunStore
ws = Path({str(tmp_path / 'ws')!r})
store = RunStore(ws, actor=SYSTEM)
owners.set_server_config(ws, admins=["user:root@x"])
a, b = "anon:" + "a" * 32, "anon:" + "b" * 32
mine = store.create_run(load_template("mlp"), "moons", {{}}, {{}}, owner=a)
theirs = store.create_run(load_template("mlp"), "moons", {{}}, {{}}, owner=b)
folder = owners.owner_path(ws, a)
rules = job_sandbox.confinement(store, mine, a)
store = job_sandbox.brokered(store.as_actor(Actor.of_job(a)))
line = landlock.confine(rules)
out = {{"line": line}}
for name, path in (("key", ws / "identity.key"), ("config", ws / "server.json"), ("database", ws / "layerlab.db"),
                   ("theirs", ws / "runs" / theirs / "project.json"),
                   ("mine", store.folder(mine).project)):
    try:
        out[name] = len(path.read_bytes())
    except PermissionError:
        out[name] = "denied"
try:
    out["sql"] = sqlite3.connect(ws / "layerlab.db").execute("SELECT owner FROM runs").fetchall()
except sqlite3.Error as e:
    out["sql"] = "refused"
for name, call in (("their_row", lambda: store.get(theirs)), ("rewrite", lambda: store.update_run(theirs, owner=a)),
                   ("as_system", lambda: store.get(theirs, actor=SYSTEM))):
    try:
        call()
        out[name] = "done"
    except AccessDenied:
        out[name] = "refused"
store.folder(mine).export("x.txt").parent.mkdir(exist_ok=True)
store.folder(mine).export("x.txt").write_text("ok")
store.update_run(mine, message="still writes its run")
out["db"] = store.get(mine)["message"]
out["folder"] = owners.owner_path(ws, a) == folder and owners.server_config(ws)["admins"] == ["user:root@x"]
store.close()
print(json.dumps(out))
""")
    assert seen["their_row"] == seen["rewrite"] == seen["as_system"] == "refused", seen  # the broker's policy
    assert seen["db"] == "still writes its run" and seen["folder"] is True, seen
    if landlock.abi() == 0:
        assert seen["line"].startswith("files not confined: this kernel has no Landlock")
        return
    assert seen["line"].startswith("files confined by Landlock"), seen["line"]
    assert seen["key"] == seen["config"] == seen["theirs"] == seen["database"] == "denied", seen
    assert seen["sql"] == "refused" and isinstance(seen["mine"], int), seen


def test_a_shared_mode_job_reads_another_owners_weights_but_never_its_job_spec(tmp_path):
    """Shared mode: a job may read every run (an init_from, a teacher of another person), and Landlock opened their
    folders whole, job.json included: each names its owner by id (an anonymous owner's is its browser's cookie)
    and its tracker with any credentials. Another owner's run is now opened entry by entry, but its job spec and
    its log."""
    from builder.process import landlock

    seen = _run_python(f"""
import json, os
from pathlib import Path
os.environ["LAYERLAB_SHARED_RUNS"] = "1"
from builder.data.access import SYSTEM, Actor
from builder.graph.templates import load_template
from builder.jobs import job_sandbox
from builder.process import landlock
from builder.runs.store import RunStore
ws = Path({str(tmp_path / 'ws')!r})
store = RunStore(ws, actor=SYSTEM)
a, b = "anon:" + "a" * 32, "anon:" + "b" * 32
mine = store.create_run(load_template("mlp"), "moons", {{}}, {{}}, owner=a, job_spec={{"owner": a}})
theirs = store.create_run(load_template("mlp"), "moons", {{}}, {{}}, owner=b, job_spec={{"owner": b}})
store.folder(theirs).weights.write_bytes(b"weights")
rules = job_sandbox.confinement(store, mine, a)
store = job_sandbox.brokered(store.as_actor(Actor.of_job(a)))
out = {{"line": landlock.confine(rules)}}
for name, path in (("their_weights", ws / "runs" / theirs / "model.safetensors"),
                   ("their_spec", ws / "runs" / theirs / "job.json"), ("my_spec", ws / "runs" / mine / "job.json")):
    try:
        out[name] = path.read_text()
    except (PermissionError, FileNotFoundError) as e:
        out[name] = type(e).__name__
store.close()
print(json.dumps(out))
""")
    if landlock.abi() == 0:
        assert seen["line"].startswith("files not confined: this kernel has no Landlock")
        return
    assert seen["their_weights"] == "weights", seen  # what an init_from reads
    assert seen["their_spec"] == "PermissionError", seen
    assert "a" * 32 in seen["my_spec"], seen


def test_a_confined_job_reaches_no_database_server_with_the_address_it_started_with_but_its_tracker(tmp_path,
                                                                                                    pg_url):
    """With the run database on PostgreSQL, a job starts with its address (and any password) in its environment,
    and ``/proc/self/environ`` keeps it after the environment is cleared: a job connected to the database with it
    and read every owner id (an anonymous one is a browser's cookie). Confined, it connects to no TCP port but its
    MLflow tracker's (Landlock's network rules, Linux 6.7+): the database server is out of reach, while its
    store, its broker, still writes its own row."""
    from builder.process import landlock

    with socket.socket() as tracker:
        tracker.bind(("127.0.0.1", 0))
        tracker.listen(1)
        port = tracker.getsockname()[1]
        seen = _run_python(_brokered_job(tmp_path / "ws", f"http://127.0.0.1:{port}") + f"""
import psycopg, socket
from builder.process import landlock
out = {{"line": landlock.confine(rules), "ports": rules.ports}}
try:
    with psycopg.connect({pg_url.replace("+psycopg", "")!r}, connect_timeout=10) as c:
        out["sql"] = c.execute("SELECT count(owner) FROM runs").fetchall()[0][0]
except psycopg.OperationalError as e:
    out["sql"] = "refused" if "Permission denied" in str(e) else str(e)
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=10).close()
    out["tracker"] = "connected"
except PermissionError:
    out["tracker"] = "refused"
store.update_run(mine, message="still writes its run")
out["db"] = store.get(mine)["message"]
print(json.dumps(out))
""", env={**child_env(), "LAYERLAB_DB_URL": pg_url})
    assert seen["ports"] == [port] and seen["tracker"] == "connected", seen
    assert seen["db"] == "still writes its run", seen
    if not landlock.net_abi():
        assert seen["sql"] == 1, seen  # no network rules on this kernel: the other walls stand
        return
    assert "TCP: connects to port(s)" in seen["line"] and seen["sql"] == "refused", seen


def test_a_confined_job_holds_no_database_address_and_no_tracker_opens_the_databases_port(tmp_path, pg_url,
                                                                                           monkeypatch):
    """A job needs the run database's address only until its broker holds the database: as it confines itself,
    the address (with its password) leaves its environment and the block it started with (``/proc/self/environ``
    kept it), and the cluster's address too. A tracker on the database's port is refused where it is chosen, and
    a job's rules never open that port: Landlock opens a port to every host, the database's included."""
    from builder.errors import LayerLabError
    from builder.tracking_destinations import check_destination

    db_port = urlsplit(pg_url).port or 5432
    seen = _run_python(_brokered_job(tmp_path / "ws", f"postgresql://mlflow@tracker.example:{db_port}/mlflow") + f"""
import os
job_sandbox.enter({str(tmp_path / 'private')!r}, rules=rules)
store.update_run(mine, message="still writes its run")
print(json.dumps({{"ports": rules.ports, "env": dict(os.environ), "db": store.get(mine)["message"],
                  "proc": open("/proc/self/environ", "rb").read().decode("latin-1")}}))
""", env={**child_env(), "LAYERLAB_DB_URL": pg_url, "LAYERLAB_RAY_ADDRESS": "10.0.0.9:6379"})
    assert seen["db"] == "still writes its run" and seen["ports"] == [], seen["ports"]
    assert not any(k in seen["env"] for k in ("LAYERLAB_DB_URL", "LAYERLAB_RAY_ADDRESS")), sorted(seen["env"])
    assert pg_url not in seen["proc"] and "10.0.0.9" not in seen["proc"] and "LAYERLAB_DB_URL" not in seen["proc"]
    monkeypatch.setenv("LAYERLAB_DB_URL", pg_url)
    with pytest.raises(LayerLabError, match=f"may not use port {db_port}"):
        check_destination(f"postgresql://mlflow@tracker.example:{db_port}/mlflow", tmp_path / "ws", "local")
    monkeypatch.setenv("LAYERLAB_RAY_ADDRESS", "10.0.0.9:6379")
    with pytest.raises(LayerLabError, match="may not use port 6379"):
        check_destination("http://tracker.example:6379", tmp_path / "ws", "local")
    assert check_destination("http://tracker.example:5000", tmp_path / "ws", "local")


def test_a_confined_job_makes_no_link_for_the_server_to_follow(tmp_path):
    """A confined job cannot read identity.key or another owner's run, but it wrote its run folder, and the server
    reads that folder for its owner (the Runs page's Weights download, the model card, reports): a symbolic link
    planted there as ``weights.safetensors`` handed the key's (or another owner's run's) bytes to the job's owner
    through the server. A confined process makes no symbolic link (Landlock: MAKE_SYM is handled and granted
    nowhere); a hard link to a file outside what it may write was refused already (a link across folders)."""
    from builder.data.access import Actor
    from builder.process import landlock

    seen = _run_python(f"""
import json, os
from pathlib import Path
from builder.data.access import SYSTEM
from builder.graph.templates import load_template
from builder.jobs import job_sandbox
from builder.process import landlock
from builder.runs.store import RunStore
ws = Path({str(tmp_path / 'ws')!r})
store = RunStore(ws, actor=SYSTEM)
a, b = "anon:" + "a" * 32, "anon:" + "b" * 32
mine = store.create_run(load_template("mlp"), "moons", {{}}, {{}}, owner=a)
theirs = store.create_run(load_template("mlp"), "moons", {{}}, {{}}, owner=b)
store.folder(theirs).weights.write_bytes(b"their weights")
line = landlock.confine(job_sandbox.confinement(store, mine, a))
out = {{"line": line, "mine": mine}}
for name, target, at in (("symlink", ws / "identity.key", store.folder(mine).weights),
                         ("hardlink", store.folder(theirs).weights, store.folder(mine).model_card),
                         ("folder", store.folder(theirs).exports.parent, store.folder(mine).exports)):
    try:
        (os.link if name == "hardlink" else os.symlink)(target, at)
        out[name] = "made"
    except OSError as e:
        out[name] = e.errno
print(json.dumps(out))
""")
    if landlock.abi() == 0:
        assert seen["line"].startswith("files not confined: this kernel has no Landlock")
        return
    assert seen["line"].startswith("files confined by Landlock"), seen["line"]
    assert "made" not in (seen["symlink"], seen["hardlink"], seen["folder"]), seen
    owner = RunStore(tmp_path / "ws", actor=Actor("anon:" + "a" * 32))
    got = owner.folder(seen["mine"]).read_weights()  # what the Runs page's Weights download hands its owner
    assert got is None or (tmp_path / "ws" / "identity.key").read_bytes() not in got


def test_a_confined_job_makes_no_named_pipe_for_a_page_to_wait_on(tmp_path):
    """The pages read what a job wrote in its run folder (its reports through ``read_json_file``, its weights and
    checkpoints): a named pipe renamed over ``report.json`` kept whoever opened it waiting for a writer for ever,
    and a UNIX socket or device node there is no report either. A confined process makes none of them (Landlock:
    MAKE_FIFO, MAKE_SOCK, MAKE_CHAR and MAKE_BLOCK are handled and granted nowhere)."""
    from builder.process import landlock

    seen = _run_python(f"""
import json, os, socket
from pathlib import Path
from builder.data.access import SYSTEM
from builder.graph.templates import load_template
from builder.jobs import job_sandbox
from builder.process import landlock
from builder.runs.store import RunStore
ws = Path({str(tmp_path / 'ws')!r})
store = RunStore(ws, actor=SYSTEM)
a = "anon:" + "a" * 32
mine = store.create_run(load_template("mlp"), "moons", {{}}, {{}}, owner=a)
folder = Path(store.folder(mine))
line = landlock.confine(job_sandbox.confinement(store, mine, a))
out = {{"line": line}}
try:
    os.mkfifo(folder / "pipe")
    out["fifo"] = "made"
except OSError as e:
    out["fifo"] = e.errno
try:
    (folder / "file").write_text("{{}}")
    out["file"] = "made"
except OSError as e:
    out["file"] = e.errno
print(json.dumps(out))
""")
    if landlock.abi() == 0:
        assert seen["line"].startswith("files not confined: this kernel has no Landlock")
        return
    assert seen["line"].startswith("files confined by Landlock"), seen["line"]
    assert seen["file"] == "made", seen  # the folder is the job's to write
    assert seen["fifo"] != "made", seen


def test_a_confined_job_reads_the_shared_dataset_cache_and_writes_only_its_own(tmp_path):
    """The decoded-image and parsed-table caches are shared by every owner (an entry per file content), and a
    confined job could write them: one that a person's model turned against the process could rewrite the pixels
    of an entry another owner's job then trained on. A confined job reads the shared cache; an entry it lacks is
    built in its private folder (``cache.keep_own``, set by ``job_sandbox.enter``), which nobody else reads. It
    cannot list the shared cache either: it opens an entry by its name, the SHA-256 of data it already has."""
    from builder.process import landlock

    seen = _run_python(f"""
import json
from pathlib import Path
import numpy as np
from builder.data import cache, table_cache
from builder.data.access import SYSTEM
from builder.graph.templates import load_template
from builder.jobs import job_sandbox
from builder.runs.store import RunStore
ws = Path({str(tmp_path / 'ws')!r})
store = RunStore(ws, actor=SYSTEM)
a = "anon:" + "a" * 32
mine = store.create_run(load_template("mlp"), "moons", {{}}, {{}}, owner=a)
with cache.use_cache_dir(ws):  # the server's page decoded an upload: a shared entry
    cache.build_pixel_cache("shared", [0, 1], (2, 2, 1), lambda i: np.full((2, 2, 1), 7 + i, np.uint8))
private = store.folder(mine, write=True).tmp
lim = job_sandbox.enter(private, rules=job_sandbox.confinement(store, mine, a))
out = {{}}
with cache.use_cache_dir(ws):  # as the pipeline loads a dataset
    px, _ = cache.build_pixel_cache("shared", [0, 1], (2, 2, 1), None)  # read: nothing decoded
    out["read"] = int(px[1, 0, 0, 0])
    try:
        with open(cache.entry_dir("shared") / "pixels.u8", "r+b") as f:
            f.write(bytes(8))
        out["rewrite"] = "written"
    except PermissionError:
        out["rewrite"] = "denied"
    try:  # which entries exist, other owners' among them: not for it to list (it opens those of data it has)
        out["listed"] = sorted(p.name for p in (ws / "cache" / "images").iterdir())
    except PermissionError:
        out["listed"] = "denied"
    cache.build_pixel_cache("new", [0], (2, 2, 1), lambda i: np.full((2, 2, 1), 3, np.uint8))
    out["new"] = str(cache.entry_dir("new"))
    import pandas as pd
    def frames(text=(), only=None):  # a CSV's chunks as the reader gives them (the target read as text)
        df = pd.DataFrame({{"x": [1.0, 2.0, 3.0, 4.0], "y": ["0", "1", "0", "1"]}})
        yield df if only is None else df[list(only)]
    table_cache.load_table("tab", frames, "y", None, "t.csv")
    out["table"] = str(cache.entry_dir("tab", "tables"))
print(json.dumps(out))
""")
    shared = tmp_path / "ws" / "cache"
    assert seen["read"] == 8, seen
    assert not (shared / "images" / "new").exists() and not (shared / "tables" / "tab").exists(), seen
    assert "/tmp/cache/images/new" in seen["new"] and "/tmp/cache/tables/tab" in seen["table"], seen
    assert np.fromfile(shared / "images" / "shared" / "pixels.u8", np.uint8).tolist() == [7] * 4 + [8] * 4
    if landlock.abi():
        assert seen["rewrite"] == seen["listed"] == "denied", seen


def test_a_workspace_inside_a_folder_the_job_reads_stays_shut(tmp_path):
    """Landlock only adds rights: a workspace in a folder every job reads (a server's ``/var/lib/layerlab`` under
    the readable ``/var/lib``, a checkout, a tracker's folder beside it) was opened whole by that folder's rule;
    the rules now go around it (:func:`builder.process.landlock.beside`)."""
    from builder.process import landlock

    seen = _run_python(f"""
import json
from pathlib import Path
from builder.data.access import SYSTEM
from builder.graph.templates import load_template
from builder.process import landlock
from builder.runs.store import RunStore
srv = Path({str(tmp_path / 'srv')!r})
ws = srv / "layerlab"
store = RunStore(ws, actor=SYSTEM)
a, b = "anon:" + "a" * 32, "anon:" + "b" * 32
mine = store.create_run(load_template("mlp"), "moons", {{}}, {{}}, owner=a)
theirs = store.create_run(load_template("mlp"), "moons", {{}}, {{}}, owner=b)
(srv / "library").mkdir()
(srv / "library" / "model.txt").write_text("weights")
held = landlock.confinement(store, mine, a, write=[srv])  # a tracker's folder holding it: said, not confined
line = landlock.confine(landlock.confinement(store, mine, a, read=[srv]))
out = {{"line": line, "held": held}}
for name, path in (("key", ws / "identity.key"), ("theirs", store.folder(theirs).project),
                   ("mine", store.folder(mine).project), ("library", srv / "library" / "model.txt")):
    try:
        out[name] = len(path.read_bytes())
    except PermissionError:
        out[name] = "denied"
print(json.dumps(out))
""")
    if landlock.abi() == 0:
        assert seen["line"].startswith("files not confined: this kernel has no Landlock")
        return
    assert seen["line"].startswith("files confined by Landlock"), seen["line"]
    assert seen["key"] == seen["theirs"] == "denied", seen
    assert isinstance(seen["mine"], int) and seen["library"] == 7, seen
    # a folder it must create files in cannot go around it (a journal is a new file each write): said so
    assert seen["held"].startswith("a folder it writes holds the workspace"), seen


def test_the_clis_local_user_is_not_confined(tmp_path):
    from builder.data.access import LOCAL_OWNER
    from builder.jobs.job_sandbox import confinement

    store = RunStore(tmp_path / "ws", actor=SYSTEM)
    rid = store.create_run(load_template("mlp"), "moons", {}, {}, owner=LOCAL_OWNER)
    assert "local user" in confinement(store, rid, LOCAL_OWNER)


def test_a_confined_job_reads_no_other_process_in_proc_but_its_own(tmp_path):
    """Landlock (where the kernel has it): /proc of the server's other processes stays shut to a job, which runs a
    person's model as the server's user. A study runner keeps its owner's id in its environment (an anonymous id is
    the browser's cookie), and any job maps the dataset cache's entries it trains on, whose names (their content's
    SHA-256) are what lets a confined process open one: a job read both from /proc/<pid>/environ and
    /proc/<pid>/maps, then opened another owner's decoded images by the name it found. Its own /proc/self and
    the system's files in /proc (meminfo, cpuinfo) it still reads."""
    from builder.process import landlock

    ws = tmp_path / "ws"
    entry = ws / "cache" / "images" / ("c" * 64)
    entry.mkdir(parents=True)
    np.save(entry / "x.npy", np.arange(4096, dtype=np.uint8))  # another owner's pixels, mapped by their job
    victim = subprocess.Popen(
        [sys.executable, "-c", f"import numpy, sys, time; x = numpy.load({str(entry / 'x.npy')!r}, mmap_mode='r'); "
         "print('ready', flush=True); time.sleep(120)"],
        stdout=subprocess.PIPE, text=True, env={**child_env(), "LAYERLAB_STUDY_OWNER": "anon:" + "b" * 32})
    try:
        assert victim.stdout.readline().strip() == "ready"
        seen = _run_python(f"""
import json, re
from pathlib import Path
from builder.data.access import SYSTEM
from builder.graph.templates import load_template
from builder.jobs import job_sandbox
from builder.process import landlock
from builder.runs.store import RunStore
ws = Path({str(ws)!r})
store = RunStore(ws, actor=SYSTEM)
a = "anon:" + "a" * 32
mine = store.create_run(load_template("mlp"), "moons", {{}}, {{}}, owner=a)
rules = job_sandbox.confinement(store, mine, a)
out = {{"line": landlock.confine(rules)}}
def read(name, path):
    try:
        out[name] = Path(path).read_bytes().decode(errors="replace")
    except OSError as e:
        out[name] = e.errno
for name in ("environ", "maps", "cmdline", "status"):
    read(name, f"/proc/{victim.pid}/{{name}}")
read("own", "/proc/self/status")
read("meminfo", "/proc/meminfo")
found = re.findall(r"\\S*/cache/images/\\S+", out["maps"]) if isinstance(out["maps"], str) else []
if found:
    read("pixels", found[0])
print(json.dumps(out))
""")
    finally:
        victim.kill()
        victim.wait()
    if landlock.abi() == 0:
        assert seen["line"].startswith("files not confined: this kernel has no Landlock")
        return
    assert seen["line"].startswith("files confined by Landlock"), seen["line"]
    leaked = {k: str(seen[k])[:120] for k in ("environ", "maps", "cmdline", "status", "pixels")
              if isinstance(seen.get(k), str)}
    assert not leaked, leaked
    assert "VmRSS" in seen["own"] and "MemTotal" in seen["meminfo"], seen


def test_a_confined_job_reads_none_of_the_servers_secrets_kept_outside_the_workspace(tmp_path):
    """Landlock: the server's secrets stay shut wherever they are kept, not only inside the workspace. The app's
    folder is on every process's path (this package's, the working folder) and a job read it whole, with
    Streamlit's ``.streamlit/secrets.toml`` (``st.login``'s cookie_secret signs every signed-in person's identity
    cookie); a config file named by LAYERLAB_SERVER_CONFIG and an SQLite run database outside the workspace were
    read as well wherever a folder the job reads held them (/etc, /var/lib, the app's folder), and so were
    Streamlit's config (server.cookieSecret) and the secrets file it names instead of secrets.toml
    (``[secrets] files``). The rest of the app's folder it still reads."""
    from builder.process import landlock

    app = tmp_path / "app"
    for name, text in ((".streamlit/secrets.toml", '[auth]\ncookie_secret = "sign-anyone-in"\n'),
                       (".streamlit/config.toml", f'[secrets]\nfiles = ["{app}/conf/auth.toml"]\n'
                                                  '[server]\ncookieSecret = "signs-cookies"\n'),
                       ("conf/auth.toml", '[auth]\ncookie_secret = "sign-anyone-in"\n'),
                       ("conf/server.json", '{"admins": ["user:root@x"]}'), ("app.py", "")):
        (app / name).parent.mkdir(parents=True, exist_ok=True)
        (app / name).write_text(text)
    (app / "db").mkdir()
    env = {**child_env(), "LAYERLAB_SERVER_CONFIG": str(app / "conf" / "server.json"),
           "LAYERLAB_DB_URL": f"sqlite:///{app / 'db' / 'runs.db'}"}
    env["PYTHONPATH"] = os.pathsep.join([env["PYTHONPATH"], str(app)])  # the app's folder, as the server's is
    code = f"""
import json, os
from pathlib import Path
from builder.data.access import SYSTEM
from builder.graph.templates import load_template
from builder.jobs import job_sandbox
from builder.process import landlock
from builder.runs.store import RunStore
store = RunStore(Path({str(tmp_path / 'ws')!r}), actor=SYSTEM)
a = "anon:" + "a" * 32
mine = store.create_run(load_template("mlp"), "moons", {{}}, {{}}, owner=a)
rules = job_sandbox.confinement(store, mine, a)
out = {{"line": landlock.confine(rules) if not isinstance(rules, str) else rules}}
for name in (".streamlit/secrets.toml", "conf/server.json", "db/runs.db", ".streamlit/config.toml", "conf/auth.toml",
             "app.py"):
    try:
        out[name] = len(Path({str(app)!r}, name).read_bytes())
    except OSError as e:
        out[name] = "denied" if e.errno == 13 else e.errno
print(json.dumps(out))
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env, cwd=app)
    assert run.returncode == 0, run.stderr[-2000:]
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    if landlock.abi() == 0:
        assert seen["line"].startswith("files not confined: this kernel has no Landlock")
        return
    assert seen["line"].startswith("files confined by Landlock"), seen
    assert seen[".streamlit/secrets.toml"] == seen["conf/server.json"] == seen["db/runs.db"] == "denied", seen
    assert seen[".streamlit/config.toml"] == seen["conf/auth.toml"] == "denied", seen
    assert isinstance(seen["app.py"], int), seen


def test_a_confined_job_reads_none_of_the_secrets_the_server_found_from_its_own_folder_and_arguments(tmp_path):
    """Streamlit's secrets where only the server process finds them: ``.streamlit/secrets.toml`` and ``config.toml``
    in the server's working folder (``cd /opt/site && streamlit run /opt/layerlab/app.py``) and a file named by
    ``STREAMLIT_SECRETS_FILES`` or ``--secrets.files``. A job starts in the package's folder with its private home and
    none of the server's ``STREAMLIT_`` variables or arguments (``queue._launch``: ``job_env`` + ``process_env``),
    and it read all three where a folder it reads held them, mode 0644 (measured: /opt/site's secrets.toml and
    config.toml and /etc's auth file, whole). The server now records them (``LAYERLAB_SERVER_SECRETS``, set by
    app.py from Streamlit's settings) and the job shuts them; the variable is gone from its environment once
    confined. Here the site folder is on the job's path, as /opt and /etc are among what every job reads."""
    from builder.jobs.job_sandbox import job_env
    from builder.process import landlock
    from builder.process.launcher import package_root
    from builder.runs.db import process_env

    site = tmp_path / "site"
    files = {".streamlit/secrets.toml": '[auth]\ncookie_secret = "sign-anyone-in"\n',
             ".streamlit/config.toml": '[server]\ncookieSecret = "signs-cookies"\n',
             "conf/auth.toml": '[auth]\nclient_secret = "idp"\n', "app_data.txt": "public"}
    for name, text in files.items():
        (site / name).parent.mkdir(parents=True, exist_ok=True)
        (site / name).write_text(text)
        (site / name).chmod(0o644)
    ws, private = tmp_path / "ws", tmp_path / "private"
    private.mkdir()
    server = {**os.environ, "LAYERLAB_SERVER_SECRETS": os.pathsep.join(  # what app.py records from Streamlit's settings
        str(site / n) for n in (".streamlit/secrets.toml", "conf/auth.toml", ".streamlit/config.toml"))}
    env = child_env({**job_env(private, server), **process_env(ws)})
    env["PYTHONPATH"] = os.pathsep.join([env["PYTHONPATH"], str(site)])  # a folder the job reads, as /opt is
    code = f"""
import json, os
from pathlib import Path
from builder.data.access import SYSTEM
from builder.graph.templates import load_template
from builder.jobs import job_sandbox
from builder.process import landlock
from builder.runs.store import RunStore
store = RunStore(Path({str(ws)!r}), actor=SYSTEM)
a = "anon:" + "a" * 32
mine = store.create_run(load_template("mlp"), "moons", {{}}, {{}}, owner=a)
rules = job_sandbox.confinement(store, mine, a)
job_sandbox.enter({str(private)!r}, rules=rules)
out = {{"env": os.environ.get("LAYERLAB_SERVER_SECRETS"), "abi": landlock.abi()}}
for name in {sorted(files)!r}:
    try:
        out[name] = len(Path({str(site)!r}, name).read_bytes())
    except OSError as e:
        out[name] = "denied" if e.errno == 13 else e.errno
print(json.dumps(out))
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env,
                         cwd=package_root())
    assert run.returncode == 0, run.stderr[-2000:]
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    assert seen["env"] is None, seen  # taken out as it confined itself (job_sandbox.BROKERED_ENV)
    assert seen["app_data.txt"] == len("public"), seen  # the rest of the folder it still reads
    if landlock.abi() == 0:
        return
    assert {n: seen[n] for n in files if n != "app_data.txt"} == dict.fromkeys(
        [".streamlit/secrets.toml", ".streamlit/config.toml", "conf/auth.toml"], "denied"), seen


def test_confined_jobs_of_two_owners_share_no_file_in_the_hosts_shared_memory(tmp_path):
    """/dev is among what a confined process writes (its devices), and /dev/shm with it: a confined process of one
    owner left a file there that a confined process of another owner then read (a model explained in another
    person's probe hands that person's upload to its owner's job), and a database server of the same user keeps its
    shared memory segments there. Now neither writes nor reads there; /dev/null still takes writes."""
    from builder.process import landlock

    left = Path("/dev/shm") / f"layerlab-test-{os.getpid()}"
    if not left.parent.is_dir():
        pytest.skip("this host has no /dev/shm")
    left.write_text("another owner's upload")
    try:
        seen = _run_python(f"""
{_confined_job(tmp_path / 'ws')}
tried("write", lambda: Path({str(left)!r} + "-drop").write_text("mine"))
tried("read", lambda: Path({str(left)!r}).read_text())
tried("null", lambda: Path("/dev/null").write_text("x"))
print(json.dumps(out))
""")
    finally:
        left.unlink()
        Path(f"{left}-drop").unlink(missing_ok=True)
    if landlock.abi() == 0:
        assert seen["line"].startswith("files not confined: this kernel has no Landlock")
        return
    assert seen["line"].startswith("files confined by Landlock"), seen["line"]
    assert seen["write"] == seen["read"] == 13 and seen["null"] == "ran", seen


def test_a_confined_job_opens_no_file_through_the_links_in_dev(tmp_path):
    """/dev is opened entry by entry around /dev/shm, and its links gave their targets a rule each: /dev/stderr is
    the process's fd 2, so a job whose output went to a log outside the workspace read that log by its path and
    rewrote it (another job's lines, the server's). Opened around something shut, a folder's links are left out, as
    its own rule never opened what they name; the job still writes its output and /dev/null."""
    from builder.process import landlock

    log = tmp_path / "logs" / "server.log"
    log.parent.mkdir()
    log.write_text("another owner's job: its lines\n")
    code = f"""
import sys
{_confined_job(tmp_path / 'ws')}
tried("read", lambda: Path({str(log)!r}).read_text())
tried("rewrite", lambda: Path({str(log)!r}).write_text("gone"))
tried("null", lambda: Path("/dev/null").write_text("x"))
tried("output", lambda: print("the job's own line", file=sys.stderr, flush=True))
print(json.dumps(out))
"""
    with open(log, "a") as err:
        run = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=err, text=True, timeout=120,
                             env=child_env())
    assert run.returncode == 0, log.read_text()[-2000:]
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    if landlock.abi() == 0:
        assert seen["line"].startswith("files not confined: this kernel has no Landlock")
        return
    assert seen["line"].startswith("files confined by Landlock"), seen["line"]
    assert seen["read"] == seen["rewrite"] == 13 and seen["null"] == seen["output"] == "ran", seen
    assert log.read_text().startswith("another owner's job: its lines\n") and "the job's own line" in log.read_text()


def test_a_confined_job_opens_its_device_files_and_no_terminal(tmp_path):
    """A confined process wrote all of /dev but shared memory: it opened a terminal the server's user held (an
    admin's shell, /dev/pts/<n>), read the password typed there and wrote escape sequences to the screen, and two
    owners' jobs talked through a terminal pair one made (/dev/ptmx). Now it opens its device files by name (null,
    urandom; an accelerator's), never a terminal nor a file of its own in /dev; its standard streams still work."""
    import pty

    from builder.process import landlock

    master, slave = pty.openpty()
    try:
        os.write(master, b"hunter2\n")  # typed at the admin's prompt
        seen = _run_python(f"""
import os
{_confined_job(tmp_path / 'ws')}
tried("terminal", lambda: os.read(os.open({os.ttyname(slave)!r}, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK), 64))
tried("pair", lambda: os.openpty())
tried("null", lambda: Path("/dev/null").write_text("x"))
tried("urandom", lambda: Path("/dev/urandom").open("rb").read(8))
tried("stderr", lambda: open("/dev/stderr", "w").write(""))
print(json.dumps(out))
""")
        os.set_blocking(master, False)
        try:
            screen = os.read(master, 256)
        except BlockingIOError:
            screen = b""
    finally:
        os.close(master)
        os.close(slave)
    if landlock.abi() == 0:
        assert seen["line"].startswith("files not confined: this kernel has no Landlock")
        return
    assert seen["line"].startswith("files confined by Landlock"), seen["line"]
    assert seen["terminal"] == seen["pair"] == 13, seen
    assert seen["null"] == seen["urandom"] == seen["stderr"] == "ran", seen
    assert screen == b"hunter2\r\n"  # nothing was written to the admin's screen


@pytest.mark.skipif(not SECCOMP, reason="the seccomp filter is installed on Linux x86-64 and aarch64")
@pytest.mark.parametrize("compiles", [False, True], ids=["job", "job that compiles"])
def test_a_locked_down_job_changes_no_files_mode_times_or_extended_attributes(tmp_path, compiles):
    """Landlock handles no metadata call: a confined job set the run database's mode to 000 (no process of the
    server's user opens it again), dated another owner's weights 1970 and left a note in the workspace folder's
    extended attributes for another owner's job to read, on files it could not open. Locked down, each such call
    answers "done" (libraries that set a mode on the files they make carry on) and changes nothing."""
    theirs = tmp_path / "theirs.safetensors"
    theirs.write_bytes(b"their weights")
    theirs.chmod(0o640)
    before = os.stat(theirs)
    seen = _run_python(f"""
import json, os
from pathlib import Path
from builder.jobs import job_sandbox
job_sandbox.enter({str(tmp_path / 'tmp')!r}, processes={compiles!r})
theirs = {str(theirs)!r}
{TRIED}
tried("chmod", lambda: os.chmod(theirs, 0))
tried("fchmod", lambda: os.fchmod(os.open(theirs, os.O_RDONLY), 0))
tried("utime", lambda: os.utime(theirs, (0, 0)))
tried("setxattr", lambda: os.setxattr({str(tmp_path)!r}, "user.note", b"from owner a"))
tried("chown", lambda: os.chown(theirs, os.getuid(), os.getgid()))
print(json.dumps(out))
""", child_env())
    after = os.stat(theirs)
    assert (after.st_mode, after.st_mtime_ns) == (before.st_mode, before.st_mtime_ns), (oct(after.st_mode), seen)
    with pytest.raises(OSError):  # no such attribute (or none on this file system)
        os.getxattr(tmp_path, "user.note")
    assert set(seen.values()) == {"ran"}, seen  # answered "done": the libraries that set modes carry on


def test_a_confined_job_reads_of_run_only_where_etcs_links_lead(tmp_path):
    """/run was readable whole: a confined job read the server user's runtime folder (/run/user/<uid>: podman's
    registry login in containers/auth.json, a keyring's). Now its rules name of /run only the files /etc's links
    lead to there (resolv.conf, for a tracker's host name), and a file left in the runtime folder stays shut."""
    from builder.jobs import job_sandbox
    from builder.process import landlock

    store = RunStore(tmp_path / "ws", actor=SYSTEM)
    me = "anon:" + "a" * 32
    mine = store.create_run(load_template("mlp"), "moons", {}, {}, owner=me)
    rules = job_sandbox.confinement(store, mine, me)
    run = Path(os.path.realpath("/run"))
    under_run = [Path(p) for p in rules.read if run in (real := Path(os.path.realpath(p)), *real.parents)]
    assert all(p in landlock.run_read_paths() for p in under_run), under_run
    runtime = Path(f"/run/user/{os.getuid()}")
    try:
        runtime.mkdir(parents=True, exist_ok=True)
        left = runtime / f"layerlab-test-{os.getpid()}.json"
        left.write_text('{"auths": {"registry": {"auth": "c2VjcmV0"}}}')
    except OSError:  # this user cannot make it: the rules above are the check
        return
    try:
        seen = _run_python(f"""
{_confined_job(tmp_path / 'ws2')}
tried("runtime", lambda: Path({str(left)!r}).read_text())
tried("resolv", lambda: Path("/etc/resolv.conf").read_text() if Path("/etc/resolv.conf").exists() else None)
print(json.dumps(out))
""")
    finally:
        left.unlink()
    if landlock.abi() == 0:
        assert seen["line"].startswith("files not confined: this kernel has no Landlock")
        return
    assert seen["runtime"] == 13 and seen["resolv"] == "ran", seen


def test_a_confined_job_reads_of_the_system_only_what_every_user_may_read(tmp_path):
    """A confined job read what of /etc, /opt and /var/lib only the server's user may read: run as root (a
    container's default) /etc/shadow, PostgreSQL's pg_hba.conf and data folder (every owner's id in the run
    database), as any user a private folder it keeps there (an admin's local MLflow store). Now a file others may
    not read, or a folder they may not enter, stays shut; the rest of the folder reads as before."""
    system = tmp_path / "sys"
    for name, mode in (("hosts", 0o644), ("shadow", 0o600), ("pg/main/PG_VERSION", 0o600)):
        (system / name).parent.mkdir(parents=True, exist_ok=True)
        (system / name).write_text("15\n")
        (system / name).chmod(mode)
    (system / "pg" / "main").chmod(0o700)
    seen = _run_python(f"""
import json, os
from pathlib import Path
from builder.data.access import SYSTEM
from builder.graph.templates import load_template
from builder.process import landlock
from builder.runs.store import RunStore
system, read_before = Path({str(system)!r}), landlock.system_read_paths  # a system folder of the test's own
landlock.PRIVATE_SCAN = (*getattr(landlock, "PRIVATE_SCAN", ()), system)
landlock.system_read_paths = lambda: [*read_before(), system]
store = RunStore(Path({str(tmp_path / 'ws')!r}), actor=SYSTEM)
a = "anon:" + "a" * 32
mine = store.create_run(load_template("mlp"), "moons", {{}}, {{}}, owner=a)
rules = landlock.confinement(store, mine, a, database=False)
shadow = os.access("/etc/shadow", os.R_OK)  # this user reads the machine's (root)
{TRIED}
out["line"] = landlock.confine(rules)
for name in ("hosts", "shadow", "pg/main/PG_VERSION"):
    tried(name, lambda: Path({str(system)!r}, name).read_text())
if shadow:
    tried("/etc/shadow", lambda: Path("/etc/shadow").read_text())
print(json.dumps(out))
""")
    if landlock_abi() == 0:
        assert seen["line"].startswith("files not confined: this kernel has no Landlock")
        return
    assert seen["hosts"] == "ran" and seen["shadow"] == seen["pg/main/PG_VERSION"] == 13, seen
    assert seen.get("/etc/shadow", 13) == 13, seen


def landlock_abi() -> int:
    from builder.process import landlock

    return landlock.abi()


def test_a_confined_job_reads_of_procs_system_entries_only_those_every_user_may_read(tmp_path):
    """Of /proc a confined job read every system entry: run as root it read (and so took from the system's log)
    /proc/kmsg, every task's pid and name in /proc/timer_list, /proc/slabinfo and /proc/vmallocinfo (mode 0400).
    Now its rules name only the entries every user may read."""
    from builder.jobs import job_sandbox

    store = RunStore(tmp_path / "ws", actor=SYSTEM)
    me = "anon:" + "a" * 32
    rules = job_sandbox.confinement(store, store.create_run(load_template("mlp"), "moons", {}, {}, owner=me), me)
    proc = [Path(p) for p in rules.read if Path(p).parent == Path("/proc") and Path(p).name != "self"]
    assert proc, "no /proc entry in the rules"
    root_only = [p for p in proc if not p.is_symlink() and not os.lstat(p).st_mode & 0o004]
    assert root_only == [], root_only
    if os.access("/proc/kmsg", os.R_OK):  # this user reads it (root): the confined process may not
        seen = _run_python(f"""
import json
from pathlib import Path
from builder.data.access import SYSTEM
from builder.graph.templates import load_template
from builder.jobs import job_sandbox
from builder.process import landlock
from builder.runs.store import RunStore
store = RunStore(Path({str(tmp_path / 'ws2')!r}), actor=SYSTEM)
a = "anon:" + "a" * 32
rules = job_sandbox.confinement(store, store.create_run(load_template("mlp"), "moons", {{}}, {{}}, owner=a), a)
{TRIED}
out["line"] = landlock.confine(rules)
tried("slabinfo", lambda: Path("/proc/slabinfo").read_text()[:10])
tried("meminfo", lambda: Path("/proc/meminfo").read_text()[:10])
print(json.dumps(out))
""")
        if landlock_abi():
            assert seen["slabinfo"] == 13 and seen["meminfo"] == "ran", seen
