"""builder.interchange.worker: an uploaded model is parsed in a worker process and recorded as a run (the
example in the module's docstring, which needs files and processes, run as a test); the worker's sandbox holds
against tasks that crash, allocate, loop, start processes, write large files or read the environment."""

from __future__ import annotations

import errno
import json
import os
import platform
import sys
from pathlib import Path

import pytest

from builder.data.access import SYSTEM
from builder.graph.templates import load_template
from builder.interchange.errors import ModelImportError
from builder.interchange.worker import export_onnx_bytes, import_upload
from builder.runs.store import RunStore


def test_import_upload_records_the_weights_as_a_run(tmp_path):
    data, _ = export_onnx_bytes(load_template("mlp").to_json())
    store = RunStore(tmp_path, actor=SYSTEM)
    project, run_id, report = import_upload(data, "net.onnx", store)
    assert project.name == "net" and project.training == {"init_from": run_id}
    assert store.get(run_id)["status"] == "imported"
    assert report["source"] == "net.onnx" and report["max_abs_diff"] <= 1e-5


def test_an_imported_models_weights_are_copied_from_the_worker_never_loaded_by_the_server(tmp_path, monkeypatch):
    """The server read every tensor of an imported model (safetensors load_file) to write it again: a model's
    size in the server's memory for each import. The worker's file is now copied as it is, and still names the
    uploaded file and matches the model's parameters."""
    import safetensors.torch
    from safetensors import safe_open

    def refuse(*a, **k):
        raise AssertionError("the server loaded the imported weights")

    data, _ = export_onnx_bytes(load_template("mlp").to_json())
    store = RunStore(tmp_path, actor=SYSTEM)
    monkeypatch.setattr(safetensors.torch, "load_file", refuse)
    monkeypatch.setattr(safetensors.torch, "load", refuse)
    _, run_id, _ = import_upload(data, "net.onnx", store)
    with safe_open(str(store.folder(run_id).weights), "pt") as f:
        assert f.metadata()["imported_from"] == "net.onnx" and "layerlab_names" in f.metadata()
        shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118  (no __iter__)
    from builder.graph.compile import compile_graph

    model = compile_graph(load_template("mlp").graph)
    assert sorted(shapes.values()) == sorted(tuple(p.shape) for p in model.state_dict().values())
    (tmp_path / "bad.safetensors").write_bytes(b"\x00" * 64)
    from builder.interchange.worker import _weights_file

    with pytest.raises(ModelImportError, match="not a safetensors file"):
        _weights_file(tmp_path / "bad.safetensors")


@pytest.mark.parametrize(("name", "size", "match"), [("net.py", 10, "imports .onnx and .pt2"),
                                                     ("m.pt", 10, r"a pickle .* Fix: export the model from Python"),
                                                     ("net.onnx", 11, "larger than the upload limit")])
def test_import_upload_refuses_before_parsing(tmp_path, name: str, size: int, match: str):
    with pytest.raises(ModelImportError, match=match):
        import_upload(b"x" * size, name, RunStore(tmp_path, actor=SYSTEM), max_bytes=10)


# ------------------------------------------------------------------ the sandbox (issue 21): hostile worker tasks
# Tasks run inside the worker through the explicit test hook ``worker.TEST_TASKS`` (the child imports this
# module to find them); the app registers none, so its workers run only the module's own tasks.


def _task_segfault() -> None:
    import ctypes

    ctypes.string_at(0)  # reads address 0: SIGSEGV


def _task_allocate(mb: int) -> int:
    return len(bytearray(mb * 2**20))


def _task_loop() -> None:
    while True:
        pass


def _task_spawn() -> str:
    import subprocess

    return subprocess.run(["true"], check=False).returncode


def _task_system() -> int:
    import os

    return os.system("true")


def _task_native_fork() -> dict:
    import ctypes
    import os

    libc = ctypes.CDLL(None, use_errno=True)
    pid = libc.fork()
    if pid == 0:  # only if the filter failed: the copy leaves at once
        os._exit(0)
    return {"pid": pid, "errno": ctypes.get_errno()}


def _task_write(out: str, mb: int) -> int:
    with open(out, "wb") as f:  # its output: the one place outside its private folder it may write
        f.write(bytes(mb * 2**20))
    return mb


def _task_environment() -> dict:
    import os
    import tempfile

    return {"env": dict(os.environ), "cwd": os.getcwd(), "tmp": tempfile.gettempdir()}


@pytest.fixture
def hostile(monkeypatch):
    """Register this module's tasks with the worker's test hook; returns ``run(name, **kw)``."""
    from builder.interchange import worker

    for name in ("segfault", "allocate", "loop", "spawn", "system", "native_fork", "write", "environment", "peek"):
        monkeypatch.setitem(worker.TEST_TASKS, name, f"{__name__}:_task_{name}")
    return worker.run_isolated


def _one_line_error(run, *args, **kwargs) -> str:
    with pytest.raises(ModelImportError) as e:
        run(*args, **kwargs)
    msg = str(e.value)
    assert "\n" not in msg and "Traceback" not in msg, msg
    return msg


def test_a_crashing_worker_is_an_error_message_and_the_caller_lives(hostile):
    msg = _one_line_error(hostile, "segfault", 60)
    assert "SIGSEGV" in msg and "segmentation fault" in msg


def test_a_worker_that_allocates_too_much_runs_out_of_its_own_memory(hostile, monkeypatch):
    monkeypatch.setenv("LAYERLAB_WORKER_MEMORY_MB", "256")
    msg = _one_line_error(hostile, "allocate", 60, mb=4096)
    assert "ran out of memory (limit 256 MiB" in msg and "LAYERLAB_WORKER_MEMORY_MB" in msg
    assert hostile("allocate", 60, mb=64) == 64 * 2**20  # within the limit: fine


def test_a_worker_that_loops_is_stopped_at_the_timeout(hostile):
    assert "did not answer within 2 s" in _one_line_error(hostile, "loop", 2)


def test_a_worker_that_loops_runs_out_of_cpu_time(hostile, monkeypatch):
    monkeypatch.setenv("LAYERLAB_WORKER_CPU_S", "1")
    assert "CPU time ran out (limit 1 s" in _one_line_error(hostile, "loop", 120)


@pytest.mark.parametrize("task", ["spawn", "system"])
def test_a_worker_may_not_start_processes(hostile, task):
    assert "may not start processes" in _one_line_error(hostile, task, 60)


@pytest.mark.skipif(sys.platform != "linux" or platform.machine() not in ("x86_64", "aarch64"),
                    reason="the seccomp filter is installed on Linux x86-64 and aarch64")
def test_a_worker_may_not_fork_from_native_code(hostile):
    assert hostile("native_fork", 60) == {"pid": -1, "errno": errno.EPERM}


def test_a_worker_writes_no_file_over_the_size_limit(hostile, monkeypatch, tmp_path):
    monkeypatch.setenv("LAYERLAB_WORKER_FILE_MB", "1")
    assert "File too large" in _one_line_error(hostile, "write", 60, out=str(tmp_path / "big"), mb=2)
    assert hostile("write", 60, out=str(tmp_path / "small"), mb=0) == 0


def test_a_worker_sees_a_clean_environment_and_a_private_folder(hostile, monkeypatch):
    monkeypatch.setenv("LAYERLAB_TEST_SECRET", "hunter2")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "hunter2")
    seen = hostile("environment", 60)
    env = seen["env"]
    assert "hunter2" not in json.dumps(env)
    assert set(env) <= {"PATH", "HOME", "TMPDIR", "TMP", "TEMP", "PYTHONPATH", "PYTHONDONTWRITEBYTECODE",
                        "PYTHONNOUSERSITE", "CUDA_VISIBLE_DEVICES", "MALLOC_ARENA_MAX", "OPENBLAS_NUM_THREADS", "LANG",
                        "LC_ALL", "LC_CTYPE"}
    private = Path(seen["cwd"])
    assert env["HOME"] == env["TMPDIR"] == seen["tmp"] == str(private)
    assert private.name.startswith("layerlab-worker-") and not private.exists()  # removed afterwards


def test_only_registered_tasks_run_in_a_worker():
    from builder.interchange.worker import run_isolated

    for name in ("os.system", "_entry", "segfault", "__import__"):
        assert "no worker task" in _one_line_error(run_isolated, name, 10)


def test_a_model_that_crashes_torch_in_export_or_quantize_is_one_line_and_the_caller_lives(tmp_path, monkeypatch):
    """Runs › Export ONNX and Quantize int8 run the user's model in the worker: the crash hook the browser test
    sends through every door (``LAYERLAB_TEST_CRASH_JOB``, tests only) reaches the worker, whose environment is
    clean, and the crash comes back as one line; another project exports."""
    from builder.interchange.worker import quantize_run_isolated
    from builder.process.sandbox import TEST_CRASH_ENV
    from builder.runs.pipeline import run_training

    store = RunStore(tmp_path, actor=SYSTEM)
    crashing = load_template("mlp").model_copy(update={"name": "CRASHES net"})
    rid = run_training(crashing, "moons", {"epochs": 1, "seed": 0}, store=store, name="CRASHES run").run_id
    monkeypatch.setenv(TEST_CRASH_ENV, "CRASHES")
    for door, outcome in ((lambda: export_onnx_bytes(crashing.to_json(), store.weights_path(rid)), "exported"),
                          (lambda: quantize_run_isolated(store, rid), "quantized")):
        msg = _one_line_error(door)
        assert "SIGSEGV" in msg and f"Nothing was {outcome}; the app is unaffected" in msg, msg  # not "imported"
    data, _ = export_onnx_bytes(load_template("mlp").to_json())  # a project of another name: exported
    assert data


def test_a_model_that_crashes_torch_in_one_networks_weights_is_one_line_and_the_caller_lives(tmp_path, monkeypatch):
    """Runs › Download › network: the network is built with the run's weights in the worker
    (``network_downloads`` → ``_child_network_weights``): a model that crashes torch there (the crash hook, tests
    only) is one line naming the signal; the calling process lives on and its next request (another project's
    network from the same run's weights) is answered with that network's weights."""
    import torch
    from safetensors.torch import load as load_safetensors
    from safetensors.torch import load_file

    from builder.interchange.network_export import network_downloads, network_state
    from builder.process.sandbox import TEST_CRASH_ENV
    from builder.runs.pipeline import run_training

    store = RunStore(tmp_path, actor=SYSTEM)
    gan = load_template("gan")
    rid = run_training(gan, "digits", {"epochs": 1, "seed": 0}, store=store).run_id
    weights = store.weights_path(rid)
    monkeypatch.setenv(TEST_CRASH_ENV, "CRASHES")
    caller = os.getpid()
    crashing = gan.model_copy(update={"name": "CRASHES gan"})
    msg = _one_line_error(network_downloads, crashing, "generator", weights)
    assert "died from SIGSEGV" in msg and "segmentation fault" in msg and "Fix:" in msg
    assert "The network's weights were not taken from the run; the app is unaffected" in msg, msg
    assert os.getpid() == caller  # the worker died, not the caller
    got = load_safetensors(network_downloads(gan, "generator", weights)["weights"])
    want = network_state(gan, "generator", load_file(str(weights)))
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)


def test_a_worker_reads_and_writes_only_what_its_request_names(hostile, monkeypatch, tmp_path):
    """Landlock (where the kernel has it): a worker writes its output's folder, and neither writes nor reads
    beside it (a workspace's identity.key, another person's folder): it ran as the server's user."""
    from builder.process import landlock

    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "identity.key").write_text("0" * 64)
    (tmp_path / "out").mkdir()
    key = list((tmp_path / "ws" / "identity.key").parts)  # not named as a path: the request does not grant it
    seen = hostile("peek", 60, key=key, out=str(tmp_path / "out" / "o"))
    if landlock.abi() == 0:
        return
    assert seen == {"key": "denied", "out": "written", "beside": "denied"}


def test_a_worker_reads_no_workspace_inside_a_folder_it_may_read(hostile, monkeypatch, tmp_path):
    """Landlock only adds rights: a worker reads the folders its request names and the system's (``/var/lib``, a
    checkout on ``sys.path``), and a server's workspace inside one of them (``/var/lib/layerlab``) was opened
    whole: a hostile file that took over a parser read ``identity.key`` and every owner's runs, and could hand them
    back in what it imported (or, decoding images, in the pixels). The server's workspace stays shut, as for jobs
    and probes (:func:`builder.process.landlock.beside`)."""
    from builder.process import landlock

    ws = tmp_path / "srv" / "ws"
    ws.mkdir(parents=True)
    (ws / "identity.key").write_text("0" * 64)
    (tmp_path / "srv" / "data.bin").write_bytes(b"x")
    monkeypatch.setenv("LAYERLAB_WORKSPACE", str(ws))
    monkeypatch.setitem(worker_mod().TEST_TASKS, "read", f"{__name__}:_task_read")
    seen = hostile("read", 60, key=list((ws / "identity.key").parts), near=str(tmp_path / "srv" / "data.bin"))
    if landlock.abi() == 0:
        return
    assert seen == {"key": "denied", "near": "read"}, seen


def test_a_worker_reads_no_server_secret_kept_outside_the_workspace(hostile, monkeypatch, tmp_path):
    """The server's secrets kept beside the workspace stay shut to a worker as to jobs
    (:func:`builder.process.landlock.server_secrets`): a config file named by LAYERLAB_SERVER_CONFIG in a folder the
    worker reads (here the one its request names) was read whole (a database password); the request's own file
    still reads."""
    from builder.process import landlock

    srv = tmp_path / "srv"
    (srv / "conf").mkdir(parents=True)
    (srv / "conf" / "server.json").write_text('{"database_url": "postgresql://u:pw@db/x"}')
    (srv / "data.bin").write_bytes(b"x")
    monkeypatch.setenv("LAYERLAB_WORKSPACE", str(tmp_path / "ws"))
    monkeypatch.setenv("LAYERLAB_SERVER_CONFIG", str(srv / "conf" / "server.json"))
    monkeypatch.setitem(worker_mod().TEST_TASKS, "read", f"{__name__}:_task_read")
    seen = hostile("read", 60, key=list((srv / "conf" / "server.json").parts), near=str(srv / "data.bin"))
    if landlock.abi() == 0:
        return
    assert seen == {"key": "denied", "near": "read"}, seen


def worker_mod():
    from builder.interchange import worker

    return worker


def _task_read(key: list, near: str) -> dict:
    seen = {}
    for name, path in (("key", Path(*key)), ("near", Path(near))):
        try:
            path.read_bytes()
            seen[name] = "read"
        except PermissionError:
            seen[name] = "denied"
    return seen


def _task_peek(key: list, out: str) -> dict:
    seen = {}
    for name, act in (("key", lambda: Path(*key).read_bytes()), ("out", lambda: Path(out).write_text("x")),
                      ("beside", lambda: (Path(out).parent.parent / "x").write_text("x"))):
        try:
            act()
            seen[name] = "written" if name == "out" else "read"
        except PermissionError:
            seen[name] = "denied"
    return seen


def test_a_run_is_quantized_only_by_whoever_controls_it(tmp_path, monkeypatch):
    """int8 export writes model.int8.onnx, exports/quantization.json and a model card section into the run's
    folder: a teacher reading a student's class run, or anyone in shared mode, wrote them into another owner's
    run (and storage quota); only its owner does, before any worker starts."""
    from builder.data.access import Actor
    from builder.errors import AccessDenied
    from builder.interchange.onnx_export import quantize_run
    from builder.interchange.worker import quantize_run_isolated

    monkeypatch.delenv("LAYERLAB_SHARED_RUNS", raising=False)
    store = RunStore(tmp_path, actor=SYSTEM)
    rid = store.create_run(load_template("mlp"), "moons", {}, {"epochs": 1}, owner="user:ann", class_id="c-1")
    folder = store.folder(rid)
    files = sorted(p.relative_to(folder.path) for p in folder.path.rglob("*"))
    for who in (Actor("user:bob", shared=True),
                Actor("user:t", students=frozenset({"user:ann"}), teaching=frozenset({"c-1"}))):
        reader = store.as_actor(who)
        assert reader.get(rid)["id"] == rid
        for call in (quantize_run, quantize_run_isolated):
            with pytest.raises(AccessDenied, match=f"no run '{rid}' of yours"):
                call(reader, rid)
    assert sorted(p.relative_to(folder.path) for p in folder.path.rglob("*")) == files


def test_the_workers_rules_open_its_device_files_not_all_of_dev(tmp_path):
    """The import worker wrote all of /dev (its terminals too: another process's, an admin's shell); now it reads
    and writes its device files by name (builder.process.landlock.device_paths) and no folder of /dev."""
    from builder.interchange import worker
    from builder.process import landlock

    upload = tmp_path / "up" / "m.onnx"
    upload.parent.mkdir()
    upload.write_bytes(b"x")
    rules = worker._rules("_child_import", {"path": str(upload), "out": str(tmp_path / "out" / "a.json")},
                          tmp_path / "private", worker._workspaces())
    assert isinstance(rules, landlock.Confinement)
    under_dev = [p for p in [*rules.read, *rules.write] if Path(p) == Path("/dev") or Path("/dev") in Path(p).parents]
    assert under_dev == [], under_dev
    assert Path("/dev/null") in [Path(p) for p in rules.files] or not Path("/dev/null").exists()
    assert not any(Path(p).name in ("ptmx", "pts", "shm") for p in rules.files), rules.files


def test_the_workers_rules_leave_out_what_of_the_system_not_every_user_may_read(tmp_path, monkeypatch):
    """The import worker read what of /etc, /opt and /var/lib only the server's user may read (run as root:
    /etc/shadow, PostgreSQL's data folder); now those entries are left out of its rules, the rest stays."""
    from builder.interchange import worker
    from builder.process import landlock

    system = tmp_path / "sys"
    (system / "pg" / "main").mkdir(parents=True)
    for name, mode in (("hosts", 0o644), ("shadow", 0o600)):
        (system / name).write_text("x")
        (system / name).chmod(mode)
    (system / "pg" / "main").chmod(0o700)
    read_before = landlock.system_read_paths
    monkeypatch.setattr(landlock, "PRIVATE_SCAN", (*getattr(landlock, "PRIVATE_SCAN", ()), system), raising=False)
    monkeypatch.setattr(landlock, "system_read_paths", lambda: [*read_before(), system])
    upload = tmp_path / "up" / "m.onnx"
    upload.parent.mkdir()
    upload.write_bytes(b"x")
    rules = worker._rules("_child_import", {"path": str(upload)}, tmp_path / "private", worker._workspaces())

    def covered(p: Path) -> bool:
        return any(Path(r) == p or Path(r) in p.parents for r in rules.read)

    assert covered(system / "hosts") and covered(upload)
    assert not covered(system / "shadow") and not covered(system / "pg" / "main" / "PG_VERSION"), rules.read
