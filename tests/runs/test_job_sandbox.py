"""Training jobs run under limits (builder.runs.job_sandbox): private memory, file size, CPU time, no new
processes, a clean environment; a limit met or a crash is a failed run whose message names it (real job
processes, cold and forked from the warm launcher, in one workspace so the launcher serves most of them)."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from builder.graph.templates import load_template
from builder.runs import jobs
from builder.runs.jobs import JobSpec, submit, wait
from builder.runs.launcher import child_env
from builder.runs.store import RunStore

TIMEOUT = 180
LONG = {"epochs": 30, "batch_size": 8, "seed": 3, "early_stopping": None}
SECRET = "hunter2-not-for-jobs"
SECCOMP = sys.platform == "linux" and platform.machine() in ("x86_64", "aarch64")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LAYERLAB_TORCH_THREADS", "1")
        mp.setenv("LAYERLAB_MAX_JOBS", "2")
        mp.setenv("LAYERLAB_LAUNCHER_IDLE_S", "60")
        s = RunStore(tmp_path_factory.mktemp("jobs") / "ws")
        yield s
    with contextlib.suppress(OSError, ValueError):
        os.kill(int((s.workspace / jobs.LAUNCHER_PID).read_text()), signal.SIGTERM)


def _until(pred, what: str, timeout: float = TIMEOUT):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if value := pred():
            return value
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


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


def test_a_locked_down_job_process_sees_a_clean_environment_and_starts_no_process(tmp_path):
    env = {**child_env(), "AWS_SECRET_ACCESS_KEY": SECRET, "LAYERLAB_JOB_FILE_MB": "8", "MLFLOW_TRACKING_URI": "x"}
    seen = _run_python(f"""
import ctypes, json, os, resource, subprocess, tempfile
from builder.runs import job_sandbox
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
    assert seen["env"]["MLFLOW_TRACKING_URI"] == "x" and seen["env"]["TORCHINDUCTOR_COMPILE_THREADS"] == "1"
    assert all("the training job may not start processes" in v for v in seen["tried"].values()), seen["tried"]
    if SECCOMP:
        assert seen["native"] == [-1, 1]  # EPERM from the seccomp filter
    assert seen["core"] == 0 and seen["fsize"] == 8 * 2**20


def _running(store, rid: str) -> int:
    _until(lambda: (store.get(rid)["epochs_done"] or 0) >= 1, f"run {rid} to train")
    return store.get(rid)["pid"]


def test_jobs_cold_and_forked_are_locked_down_and_a_crash_is_a_failed_run(store, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("LAYERLAB_JOB_FILE_MB", "64")
    cold = submit(store, _spec(**LONG))  # no launcher yet: launched, and the launcher started for later
    _until(lambda: jobs._launcher_up(store.workspace) and not jobs._launcher_starting(store.workspace), "launcher")
    launcher = int((store.workspace / jobs.LAUNCHER_PID).read_text())
    warm = submit(store, _spec(**LONG))
    for rid, forked in ((cold, False), (warm, True)):
        pid = _running(store, rid)
        assert (int(_proc(pid, "stat").rsplit(")", 1)[1].split()[1]) == launcher) is forked
        assert SECRET not in _proc(pid, "environ")
        status = dict(line.split(":", 1) for line in _proc(pid, "status").splitlines() if ":" in line)
        assert status["NoNewPrivs"].strip() == "1" and (status["Seccomp"].strip() == "2" or not SECCOMP)
        limits = _proc(pid, "limits")
        assert any(line.startswith("Max core file size") and line.split()[4] == "0" for line in limits.splitlines())
        assert any(line.startswith("Max file size") and line.split()[3] == str(64 * 2**20)
                   for line in limits.splitlines())
        assert store.folder(rid).tmp.is_dir()  # its private HOME and TMPDIR
        os.kill(pid, signal.SIGSEGV)  # a crash in native code: seen by whoever started it
    assert wait(store, [cold, warm], TIMEOUT) == {cold: "failed", warm: "failed"}
    for rid in (cold, warm):
        msg = _until(lambda rid=rid: "SIGSEGV" in store.get(rid)["message"] and store.get(rid)["message"], "message")
        assert msg.startswith("the training job died from SIGSEGV: a crash in native code") and "\n" not in msg
        assert "the app is unaffected" in msg


def test_a_job_over_its_memory_limit_fails_naming_the_limit(store, monkeypatch):
    monkeypatch.setenv("LAYERLAB_JOB_MEMORY_MB", "1200")
    rid = submit(store, _spec(width=12_000))  # 144 M parameters: 576 MB of weights, 2.3 GB with Adam
    assert wait(store, [rid], TIMEOUT) == {rid: "failed"}
    msg = store.get(rid)["message"]
    assert msg.startswith("the training job stopped: it ran out of memory (limit 1200 MiB; raise "
                          "LAYERLAB_JOB_MEMORY_MB)"), msg
    assert not store.folder(rid).tmp.exists()  # removed at the end
    ok = submit(store, _spec())  # the same limit leaves a small model alone
    assert wait(store, [ok], TIMEOUT) == {ok: "finished"}


def test_a_job_over_its_file_size_limit_fails_writing_its_checkpoint(store, monkeypatch):
    monkeypatch.setenv("LAYERLAB_JOB_FILE_MB", "1")
    rid = submit(store, _spec(width=1000))  # 1 M parameters: a 4 MB checkpoint
    assert wait(store, [rid], TIMEOUT) == {rid: "failed"}
    msg = store.get(rid)["message"]
    assert msg.startswith("the training job stopped: it wrote a file over the size limit (1 MiB; raise "
                          "LAYERLAB_JOB_FILE_MB)"), msg


def test_a_job_over_its_cpu_time_fails_naming_the_limit(store, monkeypatch):
    monkeypatch.setenv("LAYERLAB_JOB_CPU_S", "1")
    rid = submit(store, _spec(**LONG))
    assert wait(store, [rid], TIMEOUT) == {rid: "failed"}
    msg = store.get(rid)["message"]
    assert msg.startswith("the training job stopped: its CPU time ran out (limit 1 s; raise LAYERLAB_JOB_CPU_S)"), msg
    assert (store.get(rid)["epochs_done"] or 0) < LONG["epochs"]

