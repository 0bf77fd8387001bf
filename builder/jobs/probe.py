"""The model probe: a trained run's model runs in a sandboxed child process, never in the server's.

A user's model may crash torch (a segfault in native code), allocate without bound or loop. The Runs page's drift
check (:meth:`ModelProbe.drift`), the Train page's reconstructions (:meth:`ModelProbe.reconstructions`) and the class leaderboard's
held-out scores (:meth:`ModelProbe.holdout`) ask the probe for their model outputs; the Explain page asks a :class:`ProbeSession` (the same questions, methods and answers as
:class:`~builder.interpret.session.ExplainSession`) which forwards each question that reads the model to a
:class:`ModelProbe`: one child process per page session, started on the first question, restarted on the next
question after it died, ended by :meth:`ModelProbe.close`, when the probe is garbage-collected (the session
ended) or by itself after ``LAYERLAB_PROBE_IDLE_S`` seconds without a question (default 600). A child runs one
person's models: a question about another owner's run (a teacher scoring each student's) ends it and starts one
whose rules open that owner's runs alone, so a model that took its child over answers for no one else.

The child (:mod:`builder.jobs.probe_child`) is the import worker's sandbox
(:mod:`builder.interchange.worker`): a fresh interpreter with a clean environment and a private temporary folder,
limits on address space (``LAYERLAB_WORKER_MEMORY_MB`` over its start-up footprint), CPU time per question
(``LAYERLAB_WORKER_CPU_S``), file size, no core files and no new processes. Its files are confined (Landlock:
:func:`builder.process.landlock.reader_confinement`, listed as the page session's actor when it starts) to the runs
that actor may read, its own owner folder (uploads), the dataset cache and its private folder: never
``identity.key``, ``server.json`` or another owner's folder (the CLI's local user's child is not confined; a kernel
without Landlock is said in its log, :attr:`ModelProbe.files`). Landlock cannot widen a process's rules, so a
question about a run made after the child started (or from another actor's store) ends it and starts a fresh
one first, as after an idle exit. It loads runs by id (weights from safetensors). Questions and answers are framed JSON and ``.npz`` arrays with caps (:mod:`.probe_wire`), never
pickles. A crash, a question over ``LAYERLAB_PROBE_TIMEOUT_S`` (default 300 s), running out of memory or CPU
time is a one-line :class:`~builder.errors.ExplainError`; the next question starts a fresh child. Example::

    # not a doctest (a child process; a trained run): run by tests/jobs/test_probe.py
    probe = ModelProbe()
    xs = ProbeSession(probe, store, run_id, "test")   # opens the run in the child
    xs.explain(0, "saliency").attributions.shape                # the answer, read back as data
    probe.close()
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import subprocess
import tempfile
import threading
import time
import weakref
from pathlib import Path
from typing import Any

import numpy as np
import torch

from builder import errors
from builder.data import records
from builder.data.access import owner_of
from builder.errors import ExplainError
from builder.interchange.worker import (
    MEMORY_ENV,
    death_message,
    env_positive,
    kill_group,
    spawn_sandboxed,
    worker_limits,
)
from builder.interpret.session import ExplainSession
from builder.jobs.job_sandbox import TEST_CRASH_ENV
from builder.jobs.probe_wire import decode, encode, read_frame, write_frame
from builder.process import broker, landlock
from builder.process.launcher import counted_owner, evictable
from builder.runs.store import RunStore, workspace_of
from builder.training.threads import ENV_TORCH_THREADS

TIMEOUT_ENV = "LAYERLAB_PROBE_TIMEOUT_S"  # seconds one question may take (default 300)
IDLE_ENV = "LAYERLAB_PROBE_IDLE_S"  # seconds without a question before the child ends (default 600)
DEFAULT_TIMEOUT_S = 300.0
DEFAULT_IDLE_S = 600.0
START_TIMEOUT_S = 120.0  # importing torch and Captum in a fresh interpreter
WHAT = "the model probe (the process that runs your model for this page)"
OUTCOME = "Nothing was computed"
_ERRORS = {name: getattr(errors, name) for name in ("DatasetError", "ExplainError", "RunStoreError",
                                                    "TrainingError", "LayerLabError")}


def model_owner(store: RunStore, run_id: str) -> str:
    """Whose model run ``run_id`` holds, for a store whose actor may read it (a child runs one person's models).

    Raises:
        AccessDenied: not a run of the store's actor (:func:`~builder.runs.store.workspace_of`).
    """
    workspace_of(store, run_id)
    return owner_of(store.get(run_id))


def _threads() -> int:
    try:
        return max(1, int(os.environ.get(ENV_TORCH_THREADS, "")))
    except ValueError:
        return max(1, min(4, torch.get_num_threads()))


class _Child:
    """One running child: its process, private folder and the pipe ends."""

    def __init__(self, hook: str | None, timeout: float, owner: str | None, store: RunStore, model_owner: str):
        self.limits = worker_limits(timeout)
        self.private = tempfile.mkdtemp(prefix="layerlab-probe-")
        self.workspace, self.actor = str(store.workspace), store.actor  # whose runs it opens: bound for its life
        self.model_owner = model_owner  # whose models it runs: one person's (a teacher scores each student apart)
        self.files = ""  # its log's line about its files (confined, or why not)
        try:
            # what it may read, listed as its actor now: Landlock cannot widen the rules once applied
            self.grant = landlock.reader_confinement(store, self.private, model_owner=model_owner)
            with open(Path(self.private) / "probe.log", "wb") as log:
                self.proc = spawn_sandboxed("builder.jobs.probe_child:probe_main", self.private,
                                            stdout=subprocess.PIPE, stderr=log, owner=owner)
        except BaseException:  # refused (one person's cap) or not started: its folder goes
            shutil.rmtree(self.private, ignore_errors=True)
            raise
        cfg = {"limits": self.limits.__dict__, "idle_s": env_positive(IDLE_ENV, DEFAULT_IDLE_S, float),
               "cpu_s": self.limits.cpu_s, "threads": _threads(), "hook": hook,
               "crash_on": os.environ.get(TEST_CRASH_ENV) or None,  # tests only: unset in production
               # its run store answers as the session's actor narrowed to the model's owner: a teacher's child
               # scoring one student read every student's runs (rows, owner ids) through its broker
               "files": _wire_rules(self.grant, self.workspace, self.actor if self.actor is None or
                                    getattr(self.actor, "system", False) or self.actor.owner == model_owner
                                    else self.actor.only_of(model_owner))}
        try:
            self.send(cfg)
            ready = self.receive(time.monotonic() + START_TIMEOUT_S)
            if not (isinstance(ready, dict) and ready.get("status") == "ready"):
                raise ExplainError(self.death())
            self.files = str(ready.get("files") or "")
        except BaseException:
            self.close()
            raise

    def send(self, obj: Any) -> None:
        write_frame(self.proc.stdin.fileno(), *encode(obj))

    def receive(self, deadline: float) -> Any:
        frame = read_frame(self.proc.stdout.fileno(), deadline)
        return None if frame is None else decode(*frame)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def opens(self, store: RunStore, run_id: str, model_owner: str) -> bool:
        """Whether this child may open ``run_id`` (a model of ``model_owner``'s) for ``store``'s actor: the same
        workspace, actor and model owner, and the run among those its rules opened (a run made after it started is
        not: a fresh child gets fresh rules)."""
        if self.workspace != str(store.workspace) or self.actor != store.actor or self.model_owner != model_owner:
            return False
        if self.grant.opens(run_id):
            return True
        try:  # a run without a folder: a fresh child could not open it either; this one answers the error
            return not store.folder(run_id).path.is_dir()  # as the session's actor
        except errors.LayerLabError:
            return True

    def death(self) -> str:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        return death_message(self.proc.returncode, self.limits, what=WHAT, outcome=OUTCOME)

    def close(self) -> None:
        for f in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(OSError):
                f.close()
        kill_group(self.proc)
        shutil.rmtree(self.private, ignore_errors=True)


class ModelProbe:
    """One sandboxed child that runs models for one page session (see the module docstring).

    Args:
        timeout: seconds one question may take (default ``LAYERLAB_PROBE_TIMEOUT_S``, 300).
    """

    TEST_HOOK: str | None = None
    """Tests only: ``"module:function"`` the child calls after locking down (to make a model crash there)."""

    def __init__(self, timeout: float | None = None):
        self.timeout = timeout or env_positive(TIMEOUT_ENV, DEFAULT_TIMEOUT_S, float)
        self._child: _Child | None = None
        self._lock = threading.Lock()
        self.starts = 0  # children started (a restart after a crash counts)
        self.owner: str | None = None  # whose child it starts (launcher.counted_owner): set by the first request
        self._files = ""
        self._holder: list = [None]  # the child, for the finalizer (which must not hold the probe)
        weakref.finalize(self, _close_box, self._holder)

    @property
    def files(self) -> str:
        """The running (or last) child's log line about its files: confined by Landlock to what its actor may
        read, or why not (the CLI's local user, a kernel without Landlock)."""
        return self._files

    @property
    def running(self) -> bool:
        """Whether a child is running now."""
        return self._child is not None and self._child.alive()

    def pid(self) -> int | None:
        """The running child's process id, or None."""
        return self._child.proc.pid if self.running else None

    def request(self, store: RunStore, run_id: str, split: str, call: str, *args: Any,
                version: str | None = None, **kwargs: Any) -> Any:
        """Ask the child ``call(*args, **kwargs)`` of the session of a run the store's actor may read (the child
        trusts this check); the answer read back as data. ``version``: a token of the run's weights (a new one
        makes the child open the run again).

        Raises:
            AccessDenied: no such run of the store's actor ("no run X of yours").
            LayerLabError: the session's own error (its class kept for the common ones), or one line
                (ExplainError) naming a crash, a timeout, running out of memory or CPU time.
        """
        return self._request(store, run_id, split, call, *args, version=version, model_owner=model_owner(store, run_id),
                             **kwargs)

    def _request(self, store: RunStore, run_id: str, split: str, call: str, *args: Any,
                 version: str | None = None, model_owner: str, **kwargs: Any) -> Any:
        """Ask the child about a run ``store``'s actor may read (checked by the caller: :func:`model_owner`), in a
        child that runs ``model_owner``'s models alone."""
        self.owner = self.owner or counted_owner(store.actor)
        msg = {"workspace": str(store.workspace), "run": run_id, "split": split, "call": call,
               "args": (args, kwargs), "version": version}
        with self._lock:
            for attempt in (1, 2):
                child = self._ensure(store, run_id, model_owner)
                answer = self._exchange(child, msg)
                if answer is not None:
                    break
                why = child.death()
                self._stop()
                if child.proc.returncode != 0 or attempt == 2:  # it died while answering
                    raise ExplainError(why)
                # exit code 0: it had just ended itself (idle) as the question went out; ask a fresh one
        return _result(answer, child.limits)

    def drift(self, store: RunStore, run_id: str, new: str | os.PathLike, alpha: float = 0.05,
              version: str | None = None) -> dict:
        """:func:`builder.interpret.run_views.drift_run` in the child: new data (a CSV, or an image folder/.zip at ``new``)
        against the run's training data and model; the report's :meth:`~builder.data.drift.DriftReport.to_dict`.

        Raises:
            LayerLabError: as drift_run (DatasetError kept), or one line (ExplainError) for a crash of the child.
        """
        return self.request(store, run_id, "", "drift", str(Path(new).resolve()), alpha=float(alpha),
                            version=version)

    def reconstructions(self, store: RunStore, run_id: str, count: int = 500, shown: int = 16) -> dict:
        """:func:`builder.interpret.run_views.reconstruction_probe` in the child: an autoencoder's or a VAE's
        inputs and reconstructions, a VAE's latent means and labels (numpy arrays).

        Raises:
            LayerLabError: as reconstruction_probe (TrainingError and RunStoreError kept), or one line for a crash.
        """
        return self.request(store, run_id, "", "reconstruction_probe", count=int(count), shown=int(shown))

    def holdout(self, store: RunStore, run_id: str, holdout: dict, metric: str) -> float | None:
        """:func:`builder.interpret.run_views.evaluate_holdout` in the child: the run's ``metric`` on a class's held-out
        test split (None when its model does not fit the data); the class leaderboard's
        :data:`~builder.runs.classes.HoldoutScorer`.

        Raises:
            LayerLabError: one line (ExplainError) for a crash, a timeout or running out of memory in the child.
        """
        value = self.request(store, run_id, "", "holdout", dict(holdout), str(metric))
        return None if (n := records.number(value)) is None else float(n)

    def _exchange(self, child: _Child, msg: dict) -> Any:
        """Send one question and read its answer; None when the child is gone."""
        try:
            child.send(msg)
            return child.receive(time.monotonic() + self.timeout)
        except TimeoutError:
            self._stop()
            raise ExplainError(f"{WHAT} did not answer within {self.timeout:.0f} s and was stopped; the next "
                               f"question starts a fresh one. Fix: ask for fewer samples or steps, or raise "
                               f"{TIMEOUT_ENV}") from None
        except (BrokenPipeError, ConnectionResetError):
            return None
        except ExplainError:
            self._stop()
            raise

    def _ensure(self, store: RunStore, run_id: str, model_owner: str) -> _Child:
        if self._child is not None and not self._child.alive():
            self._stop()  # it ended (idle, or a crash already reported): start another
        if self._child is not None and not self._child.opens(store, run_id, model_owner):
            self._stop()  # a run its files' rules do not open (made since it started), another actor's store or
            # another person's model (a model that took its child over must not answer for anyone else's): Landlock
            # cannot widen a process's rules, so a fresh child gets rules listed now
        if self._child is None:
            self.starts += 1
            try:
                self._child = _Child(self.TEST_HOOK, self.timeout, self.owner, store, model_owner)
            except ExplainError:
                raise
            except errors.LayerLabError as e:  # one person's cap of live model processes (builder.process.launcher)
                raise ExplainError(str(e)) from None
            except (OSError, TimeoutError, BrokenPipeError) as e:
                raise ExplainError(f"{WHAT} could not start ({type(e).__name__}: {str(e)[:200]}). Fix: try again; "
                                   "if it persists, check the server's memory") from None
            self._holder[0] = self._child
            self._files = self._child.files
            me, child = weakref.ref(self), self._child
            # between questions another page of the same person may end it for a child of its own (the cap)
            evictable(child.proc, functools.partial(_end_if_idle, me, child))
        return self._child

    def _end_if_idle(self, child: _Child) -> bool:
        """End ``child`` if it is this probe's and is waiting for a question (True: it has ended); False while it
        answers one. The next question starts a fresh child, as after an idle exit."""
        if not self._lock.acquire(blocking=False):
            return False  # answering a question now
        try:
            if self._child is child:
                self._stop()
            return not child.alive()
        finally:
            self._lock.release()

    def _stop(self) -> None:
        if self._child is not None:
            self._child.close()
        self._child = None
        self._holder[0] = None

    def close(self) -> None:
        """End the child now (the next question starts another)."""
        with self._lock:
            self._stop()


def _end_if_idle(probe: Any, child: _Child) -> bool:
    """:func:`builder.process.launcher.evictable`'s call for a probe's child: ``probe`` a weak reference (a session
    that ended has let its probe go: its child is ended here)."""
    owner = probe()
    if owner is None:
        child.close()
        return True
    return owner._end_if_idle(child)


def _wire_rules(grant: landlock.ReaderRules, workspace: str, actor: Any = None) -> dict:
    """The child's file rules as plain data for its start message (:func:`builder.jobs.probe_child._confine`),
    with the person its run store answers as (a broker when it is confined, :mod:`builder.process.broker`; the
    store itself when it is not, as on a kernel without Landlock); none for trusted code."""
    rules = grant.rules
    who = broker.wire_actor(actor) if actor is not None and not getattr(actor, "system", False) else None
    if isinstance(rules, landlock.Confinement):
        rules = rules.to_wire()
    return {"rules": rules, "owners": list(grant.owners), "workspace": workspace, "actor": who}


def _close_box(box: list) -> None:
    if box[0] is not None:
        box[0].close()


def _result(answer: Any, limits: Any) -> Any:
    if not isinstance(answer, dict):
        raise ExplainError(f"{WHAT} answered something unexpected")
    status = answer.get("status")
    if status == "ok":
        return answer.get("result")
    text = " ".join(str(answer.get("message", "")).split())
    if status == "user":
        cls = _ERRORS.get(str(answer.get("type")), ExplainError)
        raise cls(text[:2000])
    if status == "memory":
        raise ExplainError(f"{WHAT} ran out of memory (limit {limits.memory_mb} MiB over its start-up footprint; "
                           f"{text[:200]}). Fix: ask for fewer samples, or raise {MEMORY_ENV}")
    raise ExplainError(f"{WHAT} failed ({text[:300]}). {OUTCOME}; the app is unaffected")


class ProbeSession:
    """:class:`~builder.interpret.session.ExplainSession`'s questions about a finished run, answered by a
    :class:`ModelProbe` child: the same methods and answers, nothing of the model in this process.

    Args:
        probe: the page session's probe; ``workspace``: the run store's folder; ``run_id``: the run (owner
            already checked); ``split``: test, val or train; ``version``: a token of the weights to read (e.g.
            the newest checkpoint's time while the run trains): another token opens the run again in the same
            child (tens of milliseconds) instead of starting a child (seconds).
    Raises:
        LayerLabError: as :func:`~builder.interpret.session.open_run`, or a crash of the child (one line).
    """

    MAX_MEMO = 2048
    sandboxed = True  # builder.interpret.tryit.try_input hands your input to try_input below

    # pure helpers of ExplainSession that need only what the hello answer holds
    class_name = ExplainSession.class_name
    describe = ExplainSession.describe
    shown_modality = ExplainSession.shown_modality
    picture = ExplainSession.picture
    axis_names = ExplainSession.axis_names
    forecast_text = ExplainSession.forecast_text
    _forecast_label = ExplainSession._forecast_label
    pick_modes = ExplainSession.pick_modes
    window = ExplainSession.window
    baselines = ExplainSession.baselines
    pad_tokens = ExplainSession.pad_tokens
    about = ExplainSession.about
    target_kind = ExplainSession.target_kind
    target_choices = ExplainSession.target_choices
    unit_name = ExplainSession.unit_name
    # static ones
    method_label = staticmethod(ExplainSession.method_label)
    pick_label = staticmethod(ExplainSession.pick_label)
    none_found = staticmethod(ExplainSession.none_found)
    baseline_label = staticmethod(ExplainSession.baseline_label)
    layer_help = staticmethod(ExplainSession.layer_help)
    title = staticmethod(ExplainSession.title)
    in_input_space = staticmethod(ExplainSession.in_input_space)
    in_layer_space = staticmethod(ExplainSession.in_layer_space)
    caption = staticmethod(ExplainSession.caption)
    rows = staticmethod(ExplainSession.rows)
    deltas = staticmethod(ExplainSession.deltas)
    default_activation_node = staticmethod(ExplainSession.default_activation_node)

    def __init__(self, probe: ModelProbe, store: RunStore, run_id: str, split: str = "test", *,
                 version: str | None = None):
        """A session of a run the store's actor may read. Raises AccessDenied for another person's run."""
        self.model_owner = model_owner(store, run_id)  # AccessDenied for a run the store's actor may not read
        self.probe, self.workspace, self.run_id, self.split = probe, str(store.workspace), run_id, split
        self.store = store  # its actor: the child's rules are the runs this actor may read
        probe.owner = probe.owner or counted_owner(store.actor)
        self.version = version
        self._memo: dict[tuple, Any] = {}
        hello = self._ask("hello")
        self.info = hello["info"]
        self.modality: str = hello["modality"]
        self.n_samples: int = int(hello["n_samples"])
        self.classification: bool = bool(hello["classification"])
        self.has_class_labels: bool = bool(hello["has_class_labels"])
        self.n_classes: int = int(hello["n_classes"])
        self.n_outputs: int = int(hello["n_outputs"])
        self.output_shape: tuple[int, ...] = tuple(int(d) for d in hello["output_shape"])
        self.explained: str | None = hello.get("explained")  # a drawn objective: the network explained
        self.device = torch.device("cpu")  # inputs built here (Try it) are sent to the child's device there

    def _ask(self, call: str, *args: Any, **kwargs: Any) -> Any:
        return self.probe._request(self.store, self.run_id, self.split, call, *args, version=self.version,
                                   model_owner=self.model_owner, **kwargs)

    def _memo_ask(self, call: str, *args: Any, **kwargs: Any) -> Any:
        """A question whose answer depends on its arguments only: asked once (errors are not kept)."""
        key = (call, repr(args), repr(sorted(kwargs.items())))
        if key not in self._memo:
            if len(self._memo) >= self.MAX_MEMO:
                self._memo.pop(next(iter(self._memo)))
            self._memo[key] = self._ask(call, *args, **kwargs)
        return self._memo[key]

    # ------------------------------------------------------------------- data and choices (memoised)
    def sample(self, i: int) -> torch.Tensor:
        """Sample ``i`` as a batch of one (1, ...)."""
        return self._memo_ask("sample", i)

    def sample_array(self, i: int) -> Any:
        """Sample ``i`` as a float numpy array."""
        return self._memo_ask("sample_array", i)

    def tokens(self, i: int) -> list[str]:
        """Sample ``i``'s token ids as words."""
        return self._memo_ask("tokens", i)

    def sample_text(self, i: int) -> str:
        """Sample ``i`` as text, decoded in the child."""
        return self._memo_ask("sample_text", i)

    def feature_names(self) -> list[str] | None:
        """The dataset's feature names, one per input value, or None."""
        return self._memo_ask("feature_names")

    def feature_values(self, i: int) -> tuple[list[str], list[float]]:
        """Sample ``i`` as (feature names, values)."""
        return self._memo_ask("feature_values", i)

    def candidate_label(self, i: int) -> str:
        """``#i · true A · predicted B (93%)``."""
        return self._memo_ask("candidate_label", i)

    def summary(self, i: int, runners_up: int = 2, position: int | None = None) -> Any:
        """True label, prediction, confidence and runners-up of sample ``i`` (a language model's: after
        ``position``)."""
        return self._memo_ask("summary", i, runners_up, position)

    def target_label(self, t: int, i: int) -> str:
        """How a target choice reads for sample ``i``."""
        return self._memo_ask("target_label", t, i)

    def token_positions(self, i: int) -> tuple[list[str], int]:
        """A language model's positions of sample ``i`` as menu labels, and the default one."""
        return self._memo_ask("token_positions", i)

    def token_targets(self, i: int, position: int) -> list[tuple[int, str]]:
        """A language model's next tokens to explain at ``position`` of sample ``i``: ``(target, label)``."""
        return self._memo_ask("token_targets", i, position)

    def methods(self) -> Any:
        """The methods for this model (a ``MethodChoices``)."""
        return self._memo_ask("methods")

    def default_layer(self, method: str, layers: tuple[str, ...] | list[str]) -> str:
        """The node a layer method uses unless another is chosen."""
        return self._memo_ask("default_layer", method, list(layers))

    def node_types(self) -> dict[str, str]:
        """Node id -> layer type."""
        return self._memo_ask("node_types")

    def attention_nodes(self) -> Any:
        """The attention nodes of the model."""
        return self._memo_ask("attention_nodes")

    def activation_nodes(self) -> dict[str, str]:
        """Nodes whose output can be shown, with their type."""
        return self._memo_ask("activation_nodes")

    def weighted_nodes(self) -> list[str]:
        """Nodes with weights."""
        return self._memo_ask("weighted_nodes")

    def pick(self, by: str, label: int | None = None, k: int = 50) -> list[int]:
        """Indices of up to ``k`` samples picked ``by``."""
        return self._memo_ask("pick", by, label, k)

    # ------------------------------------------------------------------- model questions (the page caches them)
    def explain(self, i: int, method: str, target: int | None = None, **kw: Any) -> Any:
        """Attribute sample ``i`` with one method (see ``ExplainSession.explain``)."""
        return self._ask("explain", i, method, target, **kw)

    def global_ranking(self, method: str, baseline: str, pad_token: int | None = None) -> Any:
        """Attributions of every sample of the split, one flat row each (N, F)."""
        return self._ask("global_ranking", method, baseline, pad_token)

    def attention(self, i: int) -> dict[str, torch.Tensor]:
        """Attention maps of sample ``i`` per node."""
        return self._ask("attention", i)

    def activation(self, i: int, node: str, kind: str = "auto") -> Any:
        """Node ``node``'s output for sample ``i`` as ``(array, figure kind, stats line)``, or None."""
        return self._ask("activation", i, node, kind)

    def weight_histograms(self, nodes: list[str]) -> Any:
        """Weight histograms of ``nodes``."""
        return self._ask("weight_histograms", list(nodes))

    def sanity(self, i: int, n: int, methods: list[str], target: int | None, **kw: Any) -> Any:
        """The randomisation check (a ``SanityReport``)."""
        return self._ask("sanity", i, n, list(methods), target, **kw)

    def completeness(self, i: int, n: int, target: int | None, **kw: Any) -> Any:
        """Integrated Gradients completeness (a ``CompletenessResult``)."""
        return self._ask("completeness", i, n, target, **kw)

    def try_input(self, x: torch.Tensor, method: str | None = None, *, baseline: str = "zeros") -> Any:
        """Your own input ``x`` predicted and explained (a ``TryResult``)."""
        return self._ask("try_input", x, method, baseline=baseline)

    def encode_image(self, data: bytes, *, invert: bool = False, name: str = "image") -> torch.Tensor:
        """An uploaded image (its bytes) as the model's input, decoded by Pillow in the child: a file that
        crashes a native decoder ends the child (one error line), not the server."""
        return self._ask("encode_image", np.frombuffer(bytes(data), dtype=np.uint8), invert=invert, name=name)

    def tokenize(self, text: str) -> tuple[torch.Tensor, int]:
        """A typed text tokenized in the child (the run's tokenizer is a file its job wrote, never run here): the
        model's ids and how many tokens were cut."""
        return self._memo_ask("tokenize", str(text))

    def decode_text(self, ids: list[int]) -> str:
        """Token ids as text, decoded in the child."""
        return self._memo_ask("decode_text", [int(i) for i in ids])

    def continue_text(self, x: torch.Tensor, steps: int = 40, temperature: float = 0.8, top_k: int = 20,
                      seed: int = 0) -> dict:
        """A language model's continuation of prompt ids ``x`` (``{"prompt", "continuation"}``)."""
        return self._ask("continue_text", x, steps, temperature, top_k, seed)

    def robustness(self, eps: list[float], method: str = "fgsm", steps: int = 10) -> Any:
        """Accuracy against ε on the split (a ``RobustnessReport``)."""
        return self._ask("robustness", list(eps), method, steps)

    def flip_view(self, index: int, eps: float, **kw: Any) -> Any:
        """A flipped sample beside its adversarial version (a ``FlipView``)."""
        return self._ask("flip_view", index, eps, **kw)

    def calibrate(self, bins: int = 15) -> Any:
        """Temperature scaling, reliability and coverage (a ``CalibrationReport``)."""
        return self._ask("calibrate", bins)


__all__ = ["ModelProbe", "ProbeSession"]
