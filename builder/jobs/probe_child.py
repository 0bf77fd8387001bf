"""Inside the model probe: the sandboxed process that loads runs and answers the Explain page (see
:mod:`builder.jobs.probe` for the parent's side and the protocol).

It reads a start message (limits, idle time, threads), locks itself down with the import worker's sandbox
(:func:`builder.interchange.worker.lock_down`: address space, CPU time, file size, no core files, no new
processes; the clean environment and private folder came with :func:`~builder.interchange.worker.spawn_sandboxed`),
confines its files to what its page session's actor may read (:func:`_confine`: the runs it may read, its own
uploads, the dataset cache; never ``identity.key``, ``server.json`` or another owner's folder), then answers requests
one at a time: ``{"workspace", "run", "split", "call", "args"}``, where ``call`` is
``hello``, one of :data:`CALLS` (:class:`~builder.interpret.session.ExplainSession`'s methods that read the
model) or one of :data:`RUN_CALLS` (the Runs page's drift check and the Train page's VAE view, about the run
as a whole). Runs are opened from the workspace by id (weights from safetensors, never a pickle) and kept (the last
:data:`MAX_RUNS`). Each request gets its own CPU budget; the process ends when the parent closes the pipe or
after ``idle_s`` without a request.

Example::

    # not a doctest (a child process): run by tests/jobs/test_probe.py
    probe_main()   # started by ModelProbe through spawn_sandboxed("builder.jobs.probe_child:probe_main", ...)
"""

from __future__ import annotations

import gc
import importlib
import os
import select
import sys
import tempfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

from builder.data.access import SYSTEM
from builder.data.cache import keep_own
from builder.errors import ExplainError, LayerLabError
from builder.interchange.worker import WorkerLimits, cpu_budget, lock_down
from builder.jobs.job_sandbox import TEST_CRASH_ENV, crash_hook_for_tests
from builder.process import broker, landlock
from builder.runs import owners
from builder.runs.store import RunStore

CALLS = frozenset({
    "sample", "sample_array", "tokens", "sample_text", "feature_names", "feature_values", "candidate_label", "summary",
    "target_label", "token_positions", "token_targets", "methods", "default_layer", "node_types", "attention_nodes", "activation_nodes",
    "weighted_nodes", "pick", "explain", "global_ranking", "attention", "activation", "weight_histograms", "sanity",
    "completeness", "try_input", "encode_image", "tokenize", "decode_text", "continue_text", "robustness", "flip_view", "calibrate"})
"""The session methods a request may call (nothing else is looked up by name)."""
RUN_CALLS = frozenset({"drift", "reconstruction_probe", "holdout"})
"""Questions about a whole run (no split): ``drift`` (:func:`builder.data.drift.check_drift` of new data with the
run's model, answered as the report's dict), ``reconstruction_probe``
(:func:`builder.interpret.run_views.reconstruction_probe`) and
``holdout`` (:func:`builder.interpret.run_views.evaluate_holdout`: the run scored on a class's held-out set)."""
_RUN_VIEWS = {"reconstruction_probe": "reconstruction_probe", "holdout": "evaluate_holdout"}
"""The :data:`RUN_CALLS` answered by a :mod:`builder.interpret.run_views` function ``(store, run_id, ...)``."""
MAX_RUNS = 3
PRELOAD = ("torch", "numpy", "captum.attr", "builder.interpret.session", "builder.runs.pipeline")


def probe_main() -> None:
    """The probe's entry point: start message, lock down, then answer until the pipe closes or it idles out."""
    from builder.jobs.probe_wire import decode, encode, read_frame, write_frame  # lazy: heavy (numpy)

    out = os.dup(1)  # answers go to the original stdout; anything printed goes to the log (stderr)
    os.dup2(2, 1)
    start = read_frame(0)
    if start is None:
        return
    cfg = decode(*start)
    if cfg.get("crash_on"):  # tests only: the server's LAYERLAB_TEST_CRASH_JOB (the child's environment is clean)
        os.environ[TEST_CRASH_ENV] = str(cfg["crash_on"])
    files = _confine(cfg.get("files") or {})
    lock_down(WorkerLimits(**cfg["limits"]), PRELOAD, who="the model probe", network=False)
    import torch  # lazy: heavy (torch)

    torch.set_num_threads(max(1, int(cfg.get("threads") or 1)))
    if cfg.get("hook"):  # tests only: the parent's ModelProbe.TEST_HOOK, "module:function"

        module, _, name = cfg["hook"].partition(":")
        getattr(importlib.import_module(module), name)()
    runs: OrderedDict[tuple, Any] = OrderedDict()
    write_frame(out, *encode({"status": "ready", "files": files}))
    while True:
        if not select.select([0], [], [], float(cfg["idle_s"]))[0]:
            os._exit(0)  # idle: the parent starts another one when it needs it (no interpreter teardown)
        frame = read_frame(0)
        if frame is None:
            os._exit(0)  # the parent closed the pipe
        cpu_budget(int(cfg["cpu_s"]))
        try:
            answer = {"status": "ok", "result": _handle(decode(*frame), runs)}
        except MemoryError as e:
            gc.collect()
            answer = {"status": "memory", "message": f"MemoryError: {str(e)[:200]}"}
        except BaseException as e:  # noqa: BLE001  one line to the parent; the process goes on
            answer = _failure(e)
        try:
            head, body = encode(answer)
        except (TypeError, ValueError, MemoryError) as e:
            head, body = encode({"status": "crash", "message": f"the answer could not be written ({str(e)[:200]})"})
        write_frame(out, head, body)
        del answer, head, body


def _confine(files: dict) -> str:
    """Confine this process's files to the rules the parent sent (:func:`builder.process.landlock.reader_confinement`
    for the page session's actor), its owners' folder names pinned first (``identity.key`` and ``server.json`` shut
    from then on); one line for the probe's log (what was applied, or why not: the CLI's local user, a kernel
    without Landlock)."""
    rules, person = files.get("rules"), files.get("actor")
    if not isinstance(rules, dict) and isinstance(person, dict):  # unconfined (no Landlock here): the store itself
        # reads as the session's person, never as trusted code
        _STORES[str(files["workspace"])] = RunStore(str(files["workspace"]), actor=broker.actor_of_wire(person),
                                                    mark_interrupted=False)
    if isinstance(rules, dict):
        store = RunStore(str(files["workspace"]), actor=SYSTEM, mark_interrupted=False)
        # its run store: a broker, forked now, reads the runs as the page session's actor (the database is not
        # among its files)
        _STORES[str(files["workspace"])] = broker.start(store.as_actor(broker.actor_of_wire(files.get("actor") or {})))
        for owner in files.get("owners") or ():
            owners.pin(str(files["workspace"]), str(owner))
        rules = landlock.Confinement.of_wire(rules)
    line = landlock.confine(rules if isinstance(rules, landlock.Confinement) else str(rules or "no rules"))
    if isinstance(rules, landlock.Confinement):  # the shared dataset cache is read-only to it: it builds its own
        keep_own(Path(tempfile.gettempdir()) / "cache")  # in its private folder (its TMPDIR)
    print(f"probe: {line}", file=sys.stderr, flush=True)
    return line


_STORES: dict = {}  # workspace -> its run store as the session's person (a broker client when confined)


def _store(workspace: str):
    """The run store of a request (its caller checked the actor's access): as the session's person (the broker's
    in a confined probe, the store's own unconfined); trusted code's without a person."""
    return _STORES.get(workspace) or RunStore(workspace, actor=SYSTEM, mark_interrupted=False)


def _failure(e: BaseException) -> dict:
    text = f"{type(e).__name__}: {str(e)[:300]}"
    if isinstance(e, LayerLabError):
        return {"status": "user", "type": type(e).__name__, "message": str(e)[:2000]}
    if "can't allocate memory" in text or "out of memory" in text.lower():
        return {"status": "memory", "message": text}
    return {"status": "crash", "message": text}


def _handle(req: dict, runs: OrderedDict) -> Any:
    call = req.get("call")
    if call != "hello" and call not in CALLS and call not in RUN_CALLS:
        raise ExplainError(f"the model probe answers the Explain page's questions; received: {str(call)[:60]!r}")
    if call in RUN_CALLS:
        args, kwargs = req.get("args") or ((), {})
        return _run_call(runs, str(call), str(req["workspace"]), str(req["run"]), req.get("version"), *args, **kwargs)
    xs = _session(runs, str(req["workspace"]), str(req["run"]), str(req["split"]), req.get("version"))
    if call == "hello":
        return {"info": xs.info, "modality": xs.modality, "n_samples": xs.n_samples,
                "classification": xs.classification, "has_class_labels": xs.has_class_labels,
                "n_classes": xs.n_classes, "n_outputs": xs.n_outputs, "output_shape": list(xs.output_shape),
                "graph": xs.graph is not None,
                "explained": xs.explained}
    args, kwargs = req.get("args") or ((), {})
    return getattr(xs, call)(*args, **kwargs)


def _run_call(runs: OrderedDict, call: str, workspace: str, run_id: str, version: Any, *args: Any,
              **kwargs: Any) -> Any:
    """One of :data:`RUN_CALLS`: the drift report (as a dict), the VAE probe's arrays or a held-out score."""
    if call == "drift":
        from builder.data.drift import check_drift  # lazy: heavy (numpy)

        entry = _entry(runs, workspace, run_id, version)
        new, alpha = args[0], kwargs.get("alpha", 0.05)
        return check_drift(entry["ds"], str(new), model=entry["model"], alpha=float(alpha)).to_dict()

    from builder.interpret import run_views  # lazy: heavy (torch, safetensors)

    return getattr(run_views, _RUN_VIEWS[call])(_store(workspace), run_id, *args, **kwargs)


def _entry(runs: OrderedDict, workspace: str, run_id: str, version: Any = None) -> dict:
    """A run opened (model, dataset, graph, its sessions by split) on first use of its ``version`` (a token of
    its weights: a new one reads them again); the last :data:`MAX_RUNS` are kept."""
    from builder.runs.pipeline import open_run  # lazy: heavy (torch, safetensors)

    key = (workspace, run_id, str(version))
    if key not in runs:
        while len(runs) >= MAX_RUNS:
            runs.popitem(last=False)
            gc.collect()
        store = _store(workspace)
        run = store.get(run_id)  # one record: its project parsed once for the model and the graph
        crash_hook_for_tests(run.get("name"))  # tests only: a run named with $LAYERLAB_TEST_CRASH_JOB dies here by SIGSEGV
        model, ds = open_run(store, run)
        runs[key] = {"model": model, "ds": ds, "graph": run.project.graph, "splits": {}}
    runs.move_to_end(key)
    return runs[key]


def _session(runs: OrderedDict, workspace: str, run_id: str, split: str, version: Any = None) -> Any:
    """The session of a run and split (the run opened by :func:`_entry`)."""
    from builder.interpret.session import ExplainSession  # lazy: heavy (torch, captum, safetensors)

    entry = _entry(runs, workspace, run_id, version)
    if split not in entry["splits"]:
        entry["splits"][split] = ExplainSession(entry["model"], entry["ds"], split, run_id, entry["graph"])
    return entry["splits"][split]


if __name__ == "__main__":  # pragma: no cover - started by spawn_sandboxed
    sys.exit(probe_main())
