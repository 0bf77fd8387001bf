"""Model exchange in a sandboxed OS process (a fresh interpreter with limits and a timeout), for the app.

An uploaded file is parsed in a fresh process: a malformed or hostile file that crashes a parser, loops or
eats memory takes that process down, not the app. Nothing in an upload is executed (ONNX is protobuf; a
.pt2 is read as data, see :mod:`builder.interchange.importer`); the sandbox is defence in depth for the
case where a parser has a bug:

- a clean environment (``PATH``, ``LANG``, ``PYTHONPATH`` to this package; ``HOME`` and ``TMPDIR`` point at a
  private temporary folder, removed afterwards; no other variable of the server, so no secret, reaches it);
- resource limits set in the child (:func:`worker_limits`): address space (the start-up footprint of torch,
  onnx and onnxruntime plus ``LAYERLAB_WORKER_MEMORY_MB``), CPU seconds, the size of any file it writes, no
  core files;
- no new processes once started: ``fork``/``vfork``/``execve``/process ``clone`` are refused by a seccomp
  filter (Linux x86-64 and aarch64) and every ``subprocess``/``os.system``/``os.exec*``/``os.fork``/
  ``os.posix_spawn`` by an audit hook;
- a crash (signal), timeout, memory error or limit comes back as a one-line :class:`ModelImportError`; the
  answer is JSON read with a cap, never a pickle, so the server never unpickles what the child wrote.

A worker also decodes an uploaded image set for the pages (:func:`decode_images_isolated`): Pillow's decoders are
native code, so the server only memory-maps the finished uint8 cache entry.

The same sandbox (:func:`spawn_sandboxed`, :func:`lock_down`, :func:`cpu_budget`, :func:`death_message`) runs the
Explain page's model probe, a long-lived child per page session (:mod:`builder.jobs.probe`); its limits,
environment and lock-down live in :mod:`builder.process.sandbox`, shared with training jobs.

Example::

    # not a doctest (needs files or training): run by tests/interchange/test_worker.py::test_import_upload_records_the_weights_as_a_run
    project, run_id, report = import_upload(data, "resnet.onnx", store)
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, NamedTuple

from builder.data.access import SYSTEM, Actor, owner_of
from builder.errors import LayerLabError
from builder.graph.project import load_project
from builder.interchange.errors import EXPORT_ADVICE, ModelImportError, foreign_model_advice
from builder.interchange.hf_import import (
    TOKENIZER,
    check_import_memory,
    import_hf_folder,
    inspect_folder,
    offline,
)
from builder.process import broker, landlock, launcher, zygote
from builder.process.sandbox import (
    TEST_CRASH_ENV,
    WorkerLimits,
    cpu_budget,
    crash_hook_for_tests,
    death_message,
    env_positive,
    lock_down,
    sandbox_env,
)
from builder.runs.store import RunStore, default_workspace, workspace_of

MAX_UPLOAD_BYTES = 200 * 1024 * 1024
IMPORT_TIMEOUT_S = 300.0
UPLOAD_SUFFIXES = (".onnx", ".pt2")

MEMORY_ENV = "LAYERLAB_WORKER_MEMORY_MB"  # address space over the start-up footprint (default 4096)
CPU_ENV = "LAYERLAB_WORKER_CPU_S"  # CPU seconds of all its threads (default: 4 x the timeout, at least 60)
FILE_ENV = "LAYERLAB_WORKER_FILE_MB"  # the largest file it may write (default 2048)
DEFAULT_MEMORY_MB = 4096
DEFAULT_FILE_MB = 2048
MAX_ANSWER_BYTES = 16 * 2**20

class _Task(NamedTuple):
    """A task a worker runs: the modules imported before the limits are set, and what the worker's death means
    for the user (the ``outcome`` and ``fix`` of its one-line :func:`death_message`)."""

    preload: tuple[str, ...]
    outcome: str
    fix: str


_EXCHANGE = ("torch", "onnx", "onnxruntime", "safetensors.torch")
_BROKERED: list = []  # in a quantization's worker: its run store, answered by its broker (set by _rules)
_YOUR_MODEL = "check the model's layers, or try a smaller model"
# the tasks a worker runs, by name: a function of this module
_TASKS = {"_child_import": _Task(_EXCHANGE, "Nothing was imported", "check the file, or try a smaller model"),
          "_child_export": _Task(_EXCHANGE, "Nothing was exported", _YOUR_MODEL),
          "_child_quantize": _Task(_EXCHANGE, "Nothing was quantized", _YOUR_MODEL),
          "_child_network_weights": _Task(("torch", "safetensors.torch"),
                                          "The network's weights were not taken from the run", _YOUR_MODEL),
          "_child_decode_images": _Task(("numpy", "PIL.Image", "builder.data.images"), "The images were not decoded",
                                        "check the images (PNG, JPEG, BMP, GIF, WebP, TIFF), or re-save them"),
          "_child_import_hf": _Task(("builder.interchange.hf_import", *_EXCHANGE, "transformers", "tokenizers"),
                                    "Nothing was imported", "check the model folder, or try a smaller model")}
TEST_TASKS: dict[str, str] = {}
"""Test hook: ``{name: "module:function"}`` tasks a test registers (``monkeypatch.setitem``); empty in the
app, so a worker runs nothing but the functions of this module named in ``_TASKS``."""

SANDBOX_PRELOAD = ("torch", "numpy", "onnx", "safetensors.torch", "captum.attr", "builder.interpret.session",
                   "builder.runs.pipeline", "builder.interchange.worker", "builder.jobs.probe_child",
                   "builder.interchange.onnx_export:warm_exporter")
"""What the sandbox's zygote imports before it forks (:mod:`builder.process.zygote`): what the worker's tasks and
the model probe import first, less onnxruntime (its import starts a thread of its own, so a child imports it
after the fork), and one small export (torch's exporter and its tables, built once for every forked export)."""


def worker_limits(timeout: float = IMPORT_TIMEOUT_S) -> WorkerLimits:
    """The limits a worker gets: defaults, or the ``LAYERLAB_WORKER_*`` variables of the server's environment."""
    return WorkerLimits(memory_mb=env_positive(MEMORY_ENV, DEFAULT_MEMORY_MB),
                        cpu_s=env_positive(CPU_ENV, max(60, int(4 * timeout))),
                        file_mb=env_positive(FILE_ENV, DEFAULT_FILE_MB))


def worker_env(private: str | os.PathLike) -> dict[str, str]:
    """The worker's whole environment (:func:`builder.process.sandbox.sandbox_env`): nothing of the server's but
    ``PATH`` and the locale; ``HOME`` and the temporary folder are ``private``; no GPU; this package importable;
    NumPy's OpenBLAS without a thread pool: its threads start when NumPy is imported (again after the zygote's fork),
    before the child confines its files, and Landlock confines only the calling thread and those it starts later."""
    return {**sandbox_env(private), "CUDA_VISIBLE_DEVICES": "", "MALLOC_ARENA_MAX": "2", "OPENBLAS_NUM_THREADS": "1"}


def run_isolated(fn: str, timeout: float = IMPORT_TIMEOUT_S, *, owner: str | None = None,
                 limits: WorkerLimits | None = None, **kwargs: Any) -> Any:
    """Run ``fn(**kwargs)`` (a task of this module: ``_child_import``, ``_child_export``, ``_child_quantize``)
    in a sandboxed interpreter (see the module docstring). Arguments and the answer are JSON. ``owner``: the
    person it works for (:func:`builder.process.launcher.counted_owner`), whose live children are capped.
    ``limits``: other limits than :func:`worker_limits` (a task whose output is larger than a model's).

    Raises:
        ModelImportError: the task's own error, or one line naming a crash (signal), a timeout, running out of
            memory, CPU time or file size, or an attempt to start a process.
    """
    if fn not in _TASKS and fn not in TEST_TASKS:
        raise ModelImportError(f"no worker task {fn!r}")
    lim = limits or worker_limits(timeout)
    private = tempfile.mkdtemp(prefix="layerlab-worker-")
    answer = Path(private) / "answer.json"
    request = json.dumps({"task": fn, "test": TEST_TASKS.get(fn), "kwargs": kwargs, "limits": asdict(lim),
                          "answer": str(answer), "shut": _workspaces(),
                          "crash_on": os.environ.get(TEST_CRASH_ENV) or None})  # tests only: unset in production
    try:
        with open(Path(private) / "worker.log", "wb") as log:
            proc = spawn_sandboxed("builder.interchange.worker:_child_main", private, stdout=log, stderr=log,
                                   owner=owner)
            try:
                proc.communicate(request.encode(), timeout=timeout)
            except subprocess.TimeoutExpired:
                _kill_group(proc)
                raise ModelImportError(f"the worker did not answer within {timeout:.0f} s and was stopped. Fix: try "
                                       "a smaller model") from None
            finally:
                _kill_group(proc)  # anything it left behind in its session
        return _answer(answer, proc.returncode, lim, _TASKS.get(fn, _TASKS["_child_import"]))  # a test task: as an import
    finally:
        shutil.rmtree(private, ignore_errors=True)


def spawn_sandboxed(entry: str, private: str | os.PathLike, *, stdout: Any, stderr: Any,
                    owner: str | None = None) -> subprocess.Popen:
    """Start ``entry`` (``"module:function"`` of this package) through the one launcher
    (:func:`builder.process.launcher.spawn_sandboxed`) with the worker's clean environment (:func:`worker_env`),
    ``private`` as its working, home and temporary folder, in a session of its own (so :func:`kill_group` ends it
    and anything it left), its standard input a pipe: forked from this process's warm zygote, or a fresh
    interpreter when there is none. The entry function reads its request and calls :func:`lock_down` before it
    touches anything untrusted. ``owner``: whose child it is (one person's live children are capped: a
    LayerLabError past the cap). Raises ModelImportError for an entry that is not this package's."""
    try:
        return launcher.spawn_sandboxed(entry, private, worker_env, SANDBOX_PRELOAD, stdout=stdout, stderr=stderr,
                                        owner=owner)
    except (ValueError, LayerLabError) as e:  # another entry, or one person's cap: one line
        raise ModelImportError(str(e)) from None


def warm_sandbox() -> bool:
    """Start the sandbox's zygote now (a server's warm-up), so the first worker or probe is a fork, not a fresh
    interpreter; whether it runs (:func:`builder.process.zygote.warm`)."""
    return zygote.warm(worker_env, SANDBOX_PRELOAD)


def kill_group(proc: subprocess.Popen) -> None:
    """Kill a worker started by :func:`spawn_sandboxed` and every process of its session; reap it."""
    _kill_group(proc)


def _kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)


def _answer(path: Path, code: int | None, lim: WorkerLimits, task: _Task) -> Any:
    """The task's result from the worker's answer file, or a one-line ModelImportError (a death: what it means
    for ``task``)."""
    msg = None
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_ANSWER_BYTES + 1)
        if len(raw) <= MAX_ANSWER_BYTES:
            msg = json.loads(raw)
    except (OSError, ValueError):
        msg = None
    if isinstance(msg, dict) and msg.get("status") == "ok" and code == 0:
        return msg.get("result")
    if isinstance(msg, dict) and msg.get("status") in ("user", "crash") and isinstance(msg.get("message"), str):
        text = " ".join(msg["message"].split())[:500]
        if msg.get("kind") == "memory":
            text = (f"the worker ran out of memory (limit {lim.memory_mb} MiB over its start-up footprint; "
                    f"{text[:200]}). Fix: try a smaller model, or raise {MEMORY_ENV}")
        elif msg.get("status") == "crash":  # not a rule LayerLab words: the file held what the code did not expect
            text = (f"the worker stopped on something it did not expect; received: {text[:300]}. {task.outcome}; "
                    f"the app is unaffected. Fix: {task.fix}")
        raise ModelImportError(text)
    raise ModelImportError(death_message(code, lim, outcome=task.outcome, fix=task.fix))


# ----------------------------------------------------------------------------------------- inside the worker


def _child_main() -> None:
    """The worker's entry point: read the request from stdin, set the limits, lock down, run, answer."""
    req = json.loads(sys.stdin.buffer.read(MAX_ANSWER_BYTES))
    answer = req["answer"]
    lim = WorkerLimits(**req["limits"])
    if req.get("crash_on"):  # tests only: the server's LAYERLAB_TEST_CRASH_JOB (this environment is clean)
        os.environ[TEST_CRASH_ENV] = str(req["crash_on"])
    try:
        fn = _resolve(req["task"], req.get("test"))
        rules = _rules(req["task"], req["kwargs"], Path(answer).parent, req.get("shut") or [])
        print(f"worker: {landlock.confine(rules)}", file=sys.stderr)
        lock_down(lim, _TASKS[req["task"]].preload if req["task"] in _TASKS else (), network=False)
        out = {"status": "ok", "result": fn(**req["kwargs"])}
    except LayerLabError as e:
        out = {"status": "user", "message": f"{type(e).__name__}: {e}" if not isinstance(e, ModelImportError) else str(e)}
    except MemoryError as e:
        out = {"status": "crash", "kind": "memory", "message": f"MemoryError: {str(e)[:200]}"}
    except BaseException as e:  # noqa: BLE001  reported to the parent as one line
        text = f"{type(e).__name__}: {str(e)[:300]}"
        kind = "memory" if "can't allocate memory" in text or "out of memory" in text.lower() else "crash"
        out = {"status": "crash", "kind": kind, "message": text}
    try:
        data = json.dumps(out)
    except (TypeError, ValueError) as e:
        data = json.dumps({"status": "crash", "message": f"the worker's answer is not JSON ({str(e)[:200]})"})
    with open(answer, "w", encoding="utf-8") as f:
        f.write(data)


def _workspaces() -> list[str]:
    """What a worker's rules keep shut: the server's workspaces (its configured one, and the dataset cache's) and
    the secrets it keeps beside them (:func:`builder.process.landlock.server_secrets`: Streamlit's secrets.toml,
    the config file, an SQLite database elsewhere) and the host's shared memory
    (:data:`~builder.process.landlock.SHARED_MEMORY`): the worker's clean environment does not name them."""
    from builder.data.cache import cache_dir  # lazy: light

    spaces = [Path(p).expanduser().absolute() for p in (default_workspace(), cache_dir().parent)]
    return list(dict.fromkeys(str(p) for p in [*spaces, *landlock.server_secrets(spaces[0]), *landlock.SHARED_MEMORY]))


def _rules(task: str, kwargs: dict, private: Path, shut: list[str]) -> landlock.Confinement | str:
    """What the worker may touch on disk (:mod:`builder.process.landlock`): a quantization its run's
    (:func:`builder.process.landlock.confinement`); any other task reads the interpreter, this package and the
    files and folders its request names (a folder, or a file's folder), and writes its private folder and its
    output's folder, and of ``/dev`` its device files only: never the workspace's secrets or another person's
    files. The workspaces ``shut`` stay shut
    where a folder it reads or writes holds one (``/var/lib`` holding ``/var/lib/layerlab``, a checkout on
    ``sys.path``): that folder is opened entry by entry around it (:func:`builder.process.landlock.beside`);
    what it names inside one (an upload, the decoder's folder in the cache) stays named."""
    if task == "_child_quantize":  # its run store is its broker from here on (builder.process.broker): the
        # database is not among its files
        store = RunStore(kwargs["workspace"], actor=SYSTEM)
        owner = owner_of(store.get(kwargs["run_id"]))
        rules = landlock.confinement(store, kwargs["run_id"], owner, database=False)
        _BROKERED.append(broker.start(store.as_actor(Actor.of_job(owner))))
        return replace(rules, write=[*rules.write, private]) if isinstance(rules, landlock.Confinement) else rules
    named = [Path(v) for v in kwargs.values() if isinstance(v, str) and v.startswith("/") and len(v) < 4096]
    read = [p if p.is_dir() else p.parent for p in named if p.exists()]
    out = [Path(kwargs["out"]).parent] if isinstance(kwargs.get("out"), str) else []
    reads, writes = [*landlock.system_read_paths(), launcher.package_root(), *read], [private, *out]
    # what of the system not every user may read stays shut too (landlock.private_paths)
    keep = [*landlock.interpreter_paths(), launcher.package_root(), *read, *writes]
    shut_too = [*shut, *landlock.private_paths(keep=keep, skip=shut)]
    return landlock.Confinement(landlock.shut_out(reads, shut_too), landlock.shut_out(writes, shut_too),
                                landlock.device_paths())  # of /dev, its device files only


def _resolve(task: str, test: str | None):
    if task in _TASKS:
        return globals()[task]
    if not test:
        raise ModelImportError(f"no worker task {task!r}")

    module, _, name = test.partition(":")
    return getattr(importlib.import_module(module), name)


# ----------------------------------------------------------------------------------------- tasks


def _child_import(path: str, out: str, source: str) -> dict:
    from builder.interchange.importer import import_model, save_import  # lazy: heavy (torch)

    res = import_model(path, name=Path(path).stem)
    res.report["source"] = source  # the uploaded file's name: what the weights say they came from
    save_import(res, out)
    return res.report


def _child_import_hf(folder: str, out: str, seq_len: int | None) -> dict:
    from builder.interchange.importer import save_import  # lazy: heavy (torch, numpy)

    offline()
    res = import_hf_folder(folder, seq_len=seq_len)
    save_import(res, out)
    tok = Path(folder) / TOKENIZER
    if tok.is_file():  # read by the tokenizers library here, in the worker: a broken file stops the import
        from tokenizers import Tokenizer  # lazy: heavy (tokenizers)

        try:
            res.report["vocab_size"] = Tokenizer.from_file(str(tok)).get_vocab_size()
        except Exception as e:  # noqa: BLE001  the library raises its own types
            raise ModelImportError(f"the folder's {TOKENIZER} is not a readable tokenizer; received: "
                                   f"{type(e).__name__}. Fix: save it again with tokenizer.save_pretrained") from None
        shutil.copyfile(tok, Path(out).with_name(TOKENIZER))
    return res.report


def _child_decode_images(source: str, size: list[int], channels: int | None, key: str, out: str) -> dict:
    """Decode the image set ``source`` into the cache entry ``key`` of a workspace at ``out`` (the server takes it
    from there: :func:`builder.data.cache.adopt`)."""
    from builder.data.cache import cached, use_cache_dir  # lazy: heavy (numpy)
    from builder.data.images import load_image_folder  # lazy: heavy (numpy, PIL)

    crash_hook_for_tests(Path(source).name)  # tests only: a file named with $LAYERLAB_TEST_CRASH_JOB dies here
    with use_cache_dir(out):
        load_image_folder(source, (int(size[0]), int(size[1])), channels=channels, cache=True)
        return {"decoded": cached(key)}


def _child_export(project_json: str, weights: str | None, out: str) -> dict:
    from builder.interchange.onnx_export import export_onnx  # lazy: heavy (torch)

    project = load_project(project_json)
    crash_hook_for_tests(project.name)  # tests only: a project named with $LAYERLAB_TEST_CRASH_JOB dies here
    return export_onnx(project, out, weights).to_dict()


def _child_quantize(workspace: str, run_id: str) -> dict:
    from builder.interchange.onnx_export import quantize_run  # lazy: heavy (torch)

    store = _BROKERED[-1]  # the run's owner's, through its broker (the run was checked by quantize_run_isolated)
    crash_hook_for_tests(store.get(run_id).get("name"))  # tests only: a run named with $LAYERLAB_TEST_CRASH_JOB
    try:
        return quantize_run(store, run_id)
    finally:
        store.close()


def _child_network_weights(project_json: str, network: str, weights: str, out: str) -> dict:
    from builder.training.networks import network_model  # lazy: heavy (torch, safetensors)
    from builder.training.weights import save_weights  # lazy: heavy (torch, safetensors)

    crash_hook_for_tests(load_project(project_json).name)  # tests only: as _child_export
    save_weights(network_model(project_json, network, weights), out)
    return {"network": network}


# ----------------------------------------------------------------------------------------- app entry points


def _weights_file(path: Path) -> Path:
    """``path``, a worker's weights file, once its header is read (memory-mapped, no tensor loaded)."""
    from safetensors import safe_open  # lazy: heavy (safetensors)

    try:
        with safe_open(str(path), "pt") as f:
            f.keys()
        return path
    except Exception as e:  # noqa: BLE001  the library raises its own types
        raise ModelImportError(f"the import's weights file is not a safetensors file; received: {type(e).__name__}. "
                               "Fix: import the model again") from None


def import_upload(data: bytes, filename: str, store, *, max_bytes: int = MAX_UPLOAD_BYTES,
                  timeout: float = IMPORT_TIMEOUT_S, companions: dict[str, bytes] | None = None):
    """Import an uploaded ``.onnx``/``.pt2`` (or a ``.zip`` of an ``.onnx`` and its external data) in a worker
    process and record its weights as a run. ``companions``: the other files uploaded with the model (its
    external data, ``m.onnx.data``), by file name; the model's external data resolves only to these.

    Returns:
        ``(project, run_id, report)``: the project's ``training`` names the run in ``init_from`` so training
        starts from the imported weights (``freeze`` keeps chosen nodes fixed).

    Raises:
        ModelImportError: wrong type, too large, unsupported operators (all listed), timeout.
    """
    from builder.interchange.importer import (  # lazy: heavy (torch)
        ImportResult,
        register_import,
        unzip_bundle,
        write_bundle,
    )

    suffix = Path(filename).suffix.lower()
    zipped = suffix == ".zip" and not companions
    files = {**(companions or {}), f"model{suffix}": data}  # the model's own name is not the user's to choose
    if not zipped and suffix not in UPLOAD_SUFFIXES:
        raise ModelImportError(foreign_model_advice(filename) or f"the app imports .onnx and .pt2 files; received: "
                               f"{filename!r}. Fix: {EXPORT_ADVICE}")
    if sum(map(len, files.values())) > max_bytes:
        raise ModelImportError(f"the upload is larger than the upload limit; received: {sum(map(len, files.values())):,} "
                               "bytes. Fix: "
                               f"use the CLI (`layerlab import`) for models over {max_bytes // 2**20} MiB")
    with tempfile.TemporaryDirectory(prefix="layerlab-import-") as tmp:
        (Path(tmp) / "upload").mkdir()
        if zipped:  # unpacked to disk a block at a time, within max_bytes (never every file in memory at once)
            src = unzip_bundle(data, Path(tmp) / "upload", max_bytes, model_stem="model")
        else:
            src = write_bundle(files, Path(tmp) / "upload")  # plain names only: external data stays in the set
        del files
        out = Path(tmp) / "imported.json"
        report = run_isolated("_child_import", timeout, path=str(src), out=str(out), source=Path(filename).name,
                              owner=launcher.counted_owner(store.actor))
        stem = Path(filename).stem[:100] or "model"
        project = load_project(out).model_copy(update={"name": stem,
                                                       "description": f"Imported from {Path(filename).name[:150]}."})
        rid = register_import(store, ImportResult(project, {}, report), name=f"imported {stem}",
                              weights_file=_weights_file(out.with_suffix(".safetensors")))  # copied, not loaded
    project = project.model_copy(update={"training": {"init_from": rid}})
    return project, rid, report


def import_hf_isolated(folder: str | os.PathLike, store, *, seq_len: int | None = None,
                       timeout: float = IMPORT_TIMEOUT_S, name: str | None = None):
    """Import a Hugging Face model folder (:mod:`builder.interchange.hf_import`) in a worker process and record
    its weights (and its ``tokenizer.json``) as a run. The folder is checked here first from its ``config.json``
    (complete, supported, within the size budget: one line); ``transformers`` runs only in the worker.

    ``folder`` is a path the caller trusts: the CLI's own argument, or a model library entry resolved by name
    (:func:`builder.interchange.hf_library.library_folder`); never a path taken from content.

    Returns:
        ``(project, run_id, report)`` as :func:`import_upload`.
    """
    from builder.interchange.importer import ImportResult, register_import  # lazy: heavy (torch, numpy)

    info = inspect_folder(folder, seq_len=seq_len)
    lim = worker_limits(timeout)
    check_import_memory(info, lim.memory_mb * 2**20, f"raise {MEMORY_ENV} (now {lim.memory_mb} MiB)")
    with tempfile.TemporaryDirectory(prefix="layerlab-import-") as tmp:
        out = Path(tmp) / "imported.json"
        report = run_isolated("_child_import_hf", timeout, folder=str(Path(folder).resolve()), out=str(out),
                              owner=launcher.counted_owner(store.actor),
                              seq_len=info.seq_len if info.input_shape and len(info.input_shape) == 1 else None)
        project = load_project(out)
        tok = out.with_name(TOKENIZER)
        stem = (name or info.folder.name)[:100] or "model"
        project = project.model_copy(update={"name": stem, "description": f"Imported from the {info.model_type} "
                                                                          f"model folder {stem}."})
        rid = register_import(store, ImportResult(project, {}, report), name=f"imported {stem}",
                              tokenizer=tok if tok.is_file() else None,
                              weights_file=_weights_file(out.with_suffix(".safetensors")))
    project = project.model_copy(update={"training": {"init_from": rid}})
    return project, rid, report


def decode_images_isolated(source: Path, size: tuple[int, int], channels: int | None, key: str, count: int, *,
                           owner: str | None = None) -> None:
    """:data:`builder.data.images.ImageDecoder` for the server: the image set ``source`` (an upload's file) is
    decoded by Pillow in a sandboxed worker into a folder beside the dataset cache's entries, and this process
    takes the finished uint8 entry ``key`` from there (:func:`builder.data.cache.adopt`: plain files only, their
    sizes checked), never decoding an image itself. ``count`` images bound the worker's memory (the pixels are
    memory-mapped); ``owner`` is whose child it is (capped per person).

    Raises:
        ModelImportError: the worker's error (an unreadable image, a limit) or its death (a decoder's crash), one line.
        DatasetError: the worker left no usable entry.
    """
    from builder.data.cache import adopt, check_free_disk, entry_dir  # lazy: heavy (numpy)
    from builder.data.disk import on_full_disk  # lazy: with the cache
    from builder.data.limits import MAX_DECODE_SECONDS  # lazy: light

    d = entry_dir(key)
    nbytes = count * int(size[0]) * int(size[1]) * (channels or 3)
    with on_full_disk(d.parent, "the decoded images in the cache", nbytes):
        d.parent.mkdir(parents=True, exist_ok=True)
        check_free_disk(d.parent, nbytes, "the decoded images")  # the one line, said here before a worker starts
        box = Path(tempfile.mkdtemp(prefix=f"{key}.box.", dir=d.parent))  # the cache's disk: a rename takes it
    try:
        lim = worker_limits(MAX_DECODE_SECONDS)
        pixels_mb = nbytes // 2**20 + 1
        run_isolated("_child_decode_images", MAX_DECODE_SECONDS + 60, owner=owner,
                     limits=replace(lim, memory_mb=lim.memory_mb + pixels_mb), source=str(source),
                     size=[int(size[0]), int(size[1])], channels=channels, key=key, out=str(box / "ws"))
        adopt(key, box / "ws" / "cache" / "images" / key, box)
    finally:
        shutil.rmtree(box, ignore_errors=True)


def export_onnx_bytes(project_json: str, weights: str | os.PathLike | None = None,
                      timeout: float = IMPORT_TIMEOUT_S) -> tuple[bytes, dict]:
    """The project as a verified ONNX file (bytes) and its export report, built in a worker process."""
    with tempfile.TemporaryDirectory(prefix="layerlab-export-") as tmp:
        out = Path(tmp) / "model.onnx"
        rep = run_isolated("_child_export", timeout, project_json=project_json,
                           weights=str(weights) if weights else None, out=str(out))
        return out.read_bytes(), rep


def quantize_run_isolated(store: Any, run_id: str, timeout: float = IMPORT_TIMEOUT_S) -> dict:
    """:func:`builder.interchange.onnx_export.quantize_run` in a worker process, for a run the store's actor
    controls (it writes the int8 file and the card's section into the run: the store's write accessor,
    ``store.folder(run_id, write=True)``; the worker trusts that check). Raises AccessDenied."""
    store.folder(run_id, write=True)
    return run_isolated("_child_quantize", timeout, workspace=workspace_of(store, run_id), run_id=run_id,
                        owner=launcher.counted_owner(store.actor))


def network_weights_bytes(project_json: str, network: str, weights: str | os.PathLike,
                          timeout: float = IMPORT_TIMEOUT_S) -> bytes:
    """One network's weights (safetensors bytes) cut from a run's weights file: the network is built and the
    weights loaded in a worker process (:func:`builder.training.networks.network_model`), not here.

    Raises:
        ModelImportError: the network's own error (weights of another project), or one line for a crash.
    """
    with tempfile.TemporaryDirectory(prefix="layerlab-network-") as tmp:
        out = Path(tmp) / "network.safetensors"
        run_isolated("_child_network_weights", timeout, project_json=project_json, network=network,
                     weights=str(weights), out=str(out))
        return out.read_bytes()


__all__ = ["import_upload", "import_hf_isolated", "decode_images_isolated", "export_onnx_bytes", "quantize_run_isolated", "network_weights_bytes", "run_isolated", "worker_limits", "worker_env",
           "WorkerLimits", "MAX_UPLOAD_BYTES", "TEST_TASKS", "SANDBOX_PRELOAD", "spawn_sandboxed", "warm_sandbox", "kill_group", "lock_down", "cpu_budget",
           "death_message", "env_positive"]
