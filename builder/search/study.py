"""Studies whose trials are jobs: :class:`StudyRunner` drives one Optuna study, :class:`JobLauncher` starts
its trials as LayerLab jobs.

:class:`StudyRunner` uses Optuna's ask-and-tell interface: it asks for parameters, submits each trial as a job
(:func:`builder.jobs.queue.submit`, tagged with the study and the trial number), reads the job's per-epoch
validation metrics from the run store to report intermediate values to the median pruner, stops pruned jobs,
and tells Optuna the result; the trial agrees with its run (pruned: the run was stopped; a run that finished
before its stop took effect makes a complete trial with its final value). A trial whose graph is invalid fails with the graph's problems recorded; a job
whose process dies fails its trial; the study goes on either way. Trials left running by a dead runner on
this host are adopted. Example::

    # not a doctest (needs files or training): run by tests/search/test_search.py
    store = RunStore(tmp_path, actor=Actor.local())
    space = parse_space(["lr=1e-3..1e-1:log", "fc1.out_features={8,32}"], project)
    runner = StudyRunner(store, project, "moons", space=space,
                         settings=StudySettings(name="s1", n_trials=8))
    runner.run().best_params
    # -> {'lr': 0.031, 'fc1.out_features': 32}
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from builder.data.access import LOCAL_OWNER, check_acting
from builder.errors import LayerLabError, Problem, TrainingError
from builder.escape import shown_error
from builder.graph.cost import node_costs, total_macs
from builder.graph.project import Project, load_project
from builder.graph.shapes import infer_shapes
from builder.search.results import StudyResult, study_result
from builder.search.settings import (
    StudySettings,
    objective_direction,
    objective_metric,
    objective_value,
    objectives_for,
)
from builder.search.space import SearchSpace, parse_space
from builder.search.storage import (
    SETTINGS_ATTR,
    STOP_ATTR,
    claim_study,
    default_storage,
    open_storage,
    quiet_optuna,
)
from builder.training.config import TrainConfig
from builder.training.run_status import RunStatus, is_final, pid_alive

if TYPE_CHECKING:
    from builder.data.images import ImageDecoder


class JobLauncher:
    """How trials become jobs: the one place that talks to :mod:`builder.jobs.queue` (tests pass a stand-in)."""

    def __init__(self, jobs: Any = None):
        if jobs is None:
            from builder.jobs import queue as jobs  # lazy: heavy (torch)
        self.jobs = jobs

    def slots(self) -> int:
        """How many trials may run at once (the job limit)."""
        return int(self.jobs.max_jobs())

    def submit(self, store, spec: dict) -> str:
        """Start a job for one trial; returns its run id."""
        job_spec = getattr(self.jobs, "JobSpec", None)  # builder.jobs.queue takes a JobSpec, stand-ins a dict
        return self.jobs.submit(store, job_spec(**spec) if job_spec else spec)

    def stop(self, store, run_id: str) -> None:
        """Ask a job to stop (it keeps a resumable checkpoint); a job that already ended is left alone."""
        with contextlib.suppress(LayerLabError):
            self.jobs.request(store, run_id, "stop")

    def poll(self) -> None:
        """Housekeeping between polls (a launcher may reap finished processes)."""
        if hasattr(self.jobs, "reap"):
            self.jobs.reap()


@dataclass
class _Active:
    trial: Any
    run_id: str
    reported: int = 0
    last: float | None = None
    pruned_at: int | None = None
    interrupted_at: float | None = None  # when the run was first seen interrupted (time.monotonic)


DEATH_GRACE_S = 15.0
"""How long a trial waits on a run a reader marked interrupted (its job's process was gone) for the process that
started the job to record how it died (:func:`builder.jobs.job_sandbox.record_death`: failed, with the signal,
e.g. SIGSEGV), before the trial takes the run's status and message as final."""


def _make_sampler(name: str, seed: int | None):
    import optuna  # lazy: heavy (optuna)

    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def _make_pruner(s: StudySettings):
    import optuna  # lazy: heavy (optuna)

    if s.pruner == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=s.prune_startup, n_warmup_steps=s.prune_warmup)


def _image_decoder(owner: str | None) -> ImageDecoder | None:
    """Where a study runner working for ``owner`` decodes uploaded images: a sandboxed worker
    (:func:`builder.interchange.worker.decode_images_isolated`) for an app owner, here (None) for the CLI's local
    user."""
    if not owner or owner == LOCAL_OWNER:
        return None
    from builder.interchange.worker import decode_images_isolated  # lazy: heavy (onnx, torch)

    return lambda *a: decode_images_isolated(*a, owner=owner)


class StudyRunner:
    """Runs (or resumes, or joins) one Optuna study whose trials are LayerLab jobs.

    Args:
        store: the :class:`~builder.runs.store.RunStore` the trial jobs write to.
        project: the base project (a Project, path, JSON or dict).
        dataset: a registered dataset name (or ``csv`` / ``image_folder`` with ``dataset_options``).
        config: base training settings (the project's ``training`` supplies defaults).
        space: a :class:`SearchSpace` or spec strings.
        settings: :class:`StudySettings`.
        on_update: called with an event dict (``trial_started``, ``trial_done``, ``study_done``).
        launcher: a :class:`JobLauncher` (tests and the benchmark pass their own).

    Raises:
        SearchSpaceError, LayerLabError: bad space or settings, an unreadable storage, or a study of that
            name created with another search space, objective or dataset.
    """

    def __init__(self, store, project, dataset: str | None, config: dict | None = None, *,
                 space: SearchSpace | Sequence[str], settings: StudySettings | None = None,
                 dataset_options: dict | None = None, on_update: Callable[[dict], None] | None = None,
                 launcher: JobLauncher | None = None):
        from builder.data import load_dataset  # lazy: heavy (numpy)
        from builder.data.images import decode_elsewhere  # lazy: heavy (numpy, PIL)
        from builder.data.sources import project_source  # lazy: heavy (numpy)
        from builder.runs.pipeline import dataset_of, owner_uploads  # lazy: heavy (torch, safetensors)

        self.store = store
        self.settings = settings or StudySettings()
        self.settings.check()
        check_acting(getattr(store, "actor", None), self.settings.owner)  # a study runs for the store's actor
        self.project = load_project(project)
        self.space = space if isinstance(space, SearchSpace) else parse_space(space, self.project)
        tr = dict(self.project.training or {})
        self.dataset = dataset_of(self.project, dataset or None)
        own = project_source(self.project) if not dataset else None  # the project's data: with its options
        self.dataset_options = {**(own.options if own is not None else {}), **dict(dataset_options or {})}
        base = {k: v for k, v in tr.items() if k in TrainConfig.model_fields}
        self.config = {**base, **dict(config or {})}
        metric = objective_metric(self.settings.objective)
        if metric:
            self.config["metric"] = metric
        TrainConfig.from_dict(self.config)  # bad base settings fail here, before any trial
        opts = dict(self.dataset_options)
        if "task" in tr and "task" not in opts:
            opts["task"] = tr["task"]
        opts.setdefault("seed", int(self.config.get("seed", 0) or 0))
        # loaded once to check every trial's graph against it; an upload resolves in the study owner's folder. The
        # runner is not sandboxed (it starts its trials' jobs): an app owner's images are decoded in a sandboxed
        # worker, never here (the CLI's local user decodes its own files)
        with decode_elsewhere(_image_decoder(self.settings.owner)):
            self._ds = load_dataset(self.dataset, uploads=owner_uploads(store, self.settings.owner), **opts)
        self._check_objective()
        self.on_update = on_update
        self.launcher = launcher or JobLauncher()
        self.storage_url = self.settings.storage or default_storage(store.workspace)
        from builder.tracking_destinations import resolve_tracking  # lazy: heavy (sqlalchemy)

        self.tracking = resolve_tracking(store.workspace, self.settings.owner, self.settings.tracking,
                                         also=[self.storage_url])
        self._stop = threading.Event()
        self.study = self._open_study()
        self._mlflow_parent()

    def _mlflow_parent(self, result: StudyResult | None = None) -> None:
        """With MLflow tracking on, the study's parent run (trials nest under it); at the end, its best value."""
        from builder.tracking import Tracker, TrackingWarning  # lazy: heavy (torch)

        if not self.tracking:
            return
        try:
            tr = Tracker(self.tracking, workspace=self.store.workspace)
            rid = tr.study_parent(self.settings.name, self.settings.owner)  # the owner's own study of that name
            if result is not None and result.best_value is not None:
                tr.log_metrics(rid, {f"best_{self.settings.objective}": result.best_value}, step=result.n_trials)
                for k, v in result.best_params.items():
                    tr.client.set_tag(rid, f"best.{k}", str(v))
                tr.client.set_tag(rid, "best.run_id", str(result.best_run_id))
        except Exception as e:  # tracking never stops a study

            # MLflow quotes the request's URL, the admin's password included
            warnings.warn(f"MLflow study run not written: {shown_error(e)}", TrackingWarning, stacklevel=2)

    # ---- setup
    def _check_objective(self) -> None:
        task, o = self._ds.info.task, self.settings.objective
        if o not in (fits := objectives_for(task)):
            raise LayerLabError(f"the objective must suit the dataset's task; received: {o} on a {task} dataset. "
                                f"Fix: use {' or '.join(fits)}")

    def _signature(self) -> dict:
        return {"space": self.space.to_specs(), "objective": self.settings.objective, "dataset": self.dataset,
                "dataset_options": self.dataset_options, "config": self.config,
                "project": self.project.model_dump(mode="json"), "workspace": str(self.store.workspace),
                "n_trials": self.settings.n_trials, "sampler": self.settings.sampler, "pruner": self.settings.pruner,
                "timeout": self.settings.timeout, "owner": self.settings.owner,
                "max_params": self.settings.max_params, "max_macs": self.settings.max_macs}

    def _open_study(self):
        """The owner's study ``settings.name`` (claimed in the storage first: another person's study of that name
        is never opened), created with this runner's settings or checked against the ones it was created with."""
        import optuna  # lazy: heavy (optuna)

        quiet_optuna()
        s = self.settings
        self.storage_name = claim_study(self.storage_url, s.name, owner=s.owner, workspace=self.store.workspace,
                                        direction=objective_direction(s.objective))
        study = optuna.create_study(study_name=self.storage_name, storage=open_storage(self.storage_url),
                                    direction=objective_direction(s.objective), sampler=_make_sampler(s.sampler, s.seed),
                                    pruner=_make_pruner(s), load_if_exists=True)
        sig = self._signature()
        old = study.user_attrs.get(SETTINGS_ATTR)
        if not isinstance(old, dict) or "space" not in old:  # new, or claimed by launch_study and not yet signed
            study.set_user_attr(SETTINGS_ATTR, sig)
        else:
            diff = [k for k in ("space", "objective", "dataset") if old.get(k) != sig[k]]
            if diff:
                k = diff[0]
                raise LayerLabError(f"study {s.name!r} was created with another {k}; received: {sig[k]!r}, the study "
                                    f"has {old.get(k)!r}. Fix: resume it with the same settings or pick a new --study name")
        return study

    # ---- control
    def stop(self) -> None:
        """Stop this runner (thread-safe): no new trials; running trial jobs are stopped and fail."""
        self._stop.set()

    def _emit(self, ev: dict) -> None:
        if self.on_update is not None:
            self.on_update(ev)

    # ---- main loop
    def run(self) -> StudyResult:
        """Run trials until the study holds ``n_trials``, the time budget ends, or a stop is requested.

        Ctrl-C (KeyboardInterrupt) stops cleanly: running jobs are stopped and their trials told.
        """
        s = self.settings
        if self.study.user_attrs.get(STOP_ATTR):
            self.study.set_user_attr(STOP_ATTR, 0)  # a new run of the study clears an earlier stop request
        self._workers = max(1, int(s.workers or self.launcher.slots()))
        self._deadline = time.monotonic() + s.timeout if s.timeout else None
        self._stopping, self._last_check = False, 0.0
        active: dict[int, _Active] = {}
        self._adopt_orphans(active)
        while True:
            try:
                if self._step(active):
                    break
            except KeyboardInterrupt:
                self._stop.set()
            time.sleep(s.poll_s)
        res = self.result(stopped=self._stopping)
        self._mlflow_parent(res)
        self._emit({"type": "study_done", **res.to_dict()})
        return res

    def _step(self, active: dict[int, _Active]) -> bool:
        """One poll: stop requests, new trials into free slots, running trials polled. True when over."""
        now = time.monotonic()
        if not self._stopping and now - self._last_check > 1.0:
            self._last_check = now
            if self._stop_requested():
                self._stop.set()
        if self._stop.is_set() and not self._stopping:
            self._stopping = True
            for a in active.values():
                self.launcher.stop(self.store, a.run_id)
        out_of_time = self._deadline is not None and now >= self._deadline
        if not self._stopping and not out_of_time:
            while len(active) < self._workers and self._remaining() > 0:
                a = self._start_trial()
                if a is not None:
                    active[a.trial.number] = a
        self.launcher.poll()
        self.store.mark_interrupted()
        for num in list(active):
            if self._poll(active[num], self._stopping):
                del active[num]
        return not active and (self._stopping or out_of_time or self._remaining() <= 0)

    def _stop_requested(self) -> bool:
        try:  # a fresh read of shared state, by the study's id (its name may have moved: storage._move_aside)
            attrs = self.study._storage.get_study_user_attrs(self.study._study_id)
        except Exception:  # storage briefly unavailable: keep going
            return False
        return bool(attrs.get(STOP_ATTR))

    def _remaining(self) -> int:
        return self.settings.n_trials - len(self.study.get_trials(deepcopy=False))

    def _owner(self) -> str:
        return f"{socket.gethostname()}:{os.getpid()}"

    def _start_trial(self) -> _Active | None:
        from optuna.trial import TrialState  # lazy: heavy (optuna)

        study = self.study
        trial = study.ask(self.space.distributions())
        n = trial.number
        if n >= self.settings.n_trials:  # another process asked at the same moment: this one is surplus
            trial.set_user_attr("message", f"not run: the study already holds {self.settings.n_trials} trials")
            study.tell(trial, state=TrialState.FAIL)
            return None
        trial.set_user_attr("runner", self._owner())
        project, cfg = self.space.apply(self.project, self.config, trial.params)
        problems = self._check_trial(project, cfg, trial)
        if problems:
            trial.set_user_attr("problems", [str(p) for p in problems])
            trial.set_user_attr("message", "invalid graph or settings: " + "; ".join(str(p) for p in problems[:3]))
            study.tell(trial, state=TrialState.FAIL)
            self._emit({"type": "trial_done", "trial": n, "state": "fail", "params": trial.params,
                        "message": trial.user_attrs["message"]})
            return None
        spec = {"project": project.model_dump(mode="json"), "dataset": self.dataset,
                "dataset_options": dict(self.dataset_options), "config": cfg,
                "tags": {"study": self.settings.name, "trial": n}, "name": f"{project.name} · trial {n} of {self.settings.name}",
                "owner": self.settings.owner, **({"tracking": self.tracking} if self.tracking else {})}
        try:
            run_id = self.launcher.submit(self.store, spec)
        except LayerLabError as e:
            trial.set_user_attr("message", f"could not start: {e}")
            study.tell(trial, state=TrialState.FAIL)
            self._emit({"type": "trial_done", "trial": n, "state": "fail", "params": trial.params, "message": str(e)})
            return None
        trial.set_user_attr("run_id", run_id)
        self._emit({"type": "trial_started", "trial": n, "run_id": run_id, "params": trial.params})
        return _Active(trial, run_id)

    def _check_trial(self, project: Project, cfg: dict, trial: Any = None) -> list[Problem]:
        """The graph's, the cost limits' and the settings' problems for one trial (empty when it can train);
        the trial records its graph's parameters and multiply-adds."""
        from builder.data import fit_dataset  # lazy: heavy (numpy)
        from builder.data.compat import check_compat  # lazy: heavy (numpy)

        report = infer_shapes(project.graph)
        problems = [p for p in report.problems if p.severity == "error"]
        if not problems:
            problems = check_compat(project.graph, fit_dataset(project.graph, self._ds).info)
        if not problems:
            problems = self._check_cost(report, trial)
        try:
            TrainConfig.from_dict(cfg)
        except TrainingError as e:
            problems.append(Problem("bad_settings", str(e)))
        return problems

    def _check_cost(self, report: Any, trial: Any) -> list[Problem]:
        """Record the trial's parameters and multiply-adds; a problem for each cost limit it exceeds."""
        params, macs = int(report.total_params), total_macs(node_costs(report))
        if trial is not None:
            trial.set_user_attr("params", params)
            trial.set_user_attr("macs", macs)
        s, out = self.settings, []
        for name, value, limit in (("parameters", params, s.max_params), ("multiply-adds", macs, s.max_macs)):
            if limit is not None and value > limit:
                out.append(Problem("cost_limit", f"the graph's {name} must be at most {limit:,}; received: "
                                                 f"{value:,}. Fix: narrow the searched ranges or raise the limit"))
        return out

    def _poll(self, a: _Active, stopping: bool) -> bool:
        """Report new epochs of one trial, prune it if due, tell Optuna when its job ends. True when done."""
        from optuna.trial import TrialState  # lazy: heavy (optuna)

        s, study = self.settings, self.study
        epochs = self.store.metrics(a.run_id, "epoch")
        for ev in epochs[a.reported:]:
            a.reported += 1
            v = objective_value(ev, s.objective)
            if v is None:
                continue
            a.last = v  # kept after a prune too: a run that finished before its stop took effect is judged by it
            if a.pruned_at is not None:
                continue
            step = int(ev.get("epoch", a.reported))
            a.trial.report(v, step)
            if a.trial.should_prune():
                a.pruned_at = step
                a.trial.set_user_attr("message", f"pruned at epoch {step}")
                self.launcher.stop(self.store, a.run_id)
        run = self.store.get(a.run_id)
        status = run["status"]
        if not is_final(status):
            return False
        if status == RunStatus.INTERRUPTED and a.pruned_at is None:  # the job's starter may still say how it died
            a.interrupted_at = a.interrupted_at or time.monotonic()
            if time.monotonic() - a.interrupted_at < DEATH_GRACE_S:
                return False
        if a.reported < len(self.store.metrics(a.run_id, "epoch")):
            return self._poll(a, stopping)  # epochs written just before the end: report them first
        n = a.trial.number
        # the trial and its run agree: pruned <-> the run was stopped by the prune; a run that finished before
        # the stop took effect is a complete trial with its final value (never "pruned" beside a finished run)
        if a.pruned_at is not None and status != RunStatus.FINISHED:
            study.tell(a.trial, state=TrialState.PRUNED)
            state = "pruned"
        elif status == RunStatus.FINISHED and a.last is not None:
            if a.pruned_at is not None:
                a.trial.set_user_attr("message", f"the pruner asked to stop at epoch {a.pruned_at}, but the run had "
                                                 "finished first: recorded complete with its final value")
            study.tell(a.trial, a.last)
            state = "complete"
        else:
            why = {RunStatus.STOPPED: "stopped with the study" if stopping else "its job was stopped",
                   RunStatus.INTERRUPTED: "its job process ended unexpectedly"}.get(status, "training failed")
            msg = f"{why}: {run.get('message') or ''}".rstrip(": ")
            a.trial.set_user_attr("message", msg[:1000])
            study.tell(a.trial, state=TrialState.FAIL)
            state = "fail"
        self._emit({"type": "trial_done", "trial": n, "state": state, "value": a.last, "run_id": a.run_id,
                    "params": a.trial.params, "message": a.trial.user_attrs.get("message", "")})
        return True

    def _adopt_orphans(self, active: dict[int, _Active]) -> None:
        """Trials left running by a dead runner on this host: follow their jobs (or close them) again."""
        import optuna  # lazy: heavy (optuna)
        from optuna.trial import TrialState  # lazy: heavy (optuna)

        host = socket.gethostname()
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            owner = str(t.user_attrs.get("runner", ""))
            h, _, pid = owner.rpartition(":")
            if h != host or not pid.isdigit() or pid_alive(int(pid)):
                continue
            trial = optuna.trial.Trial(self.study, t._trial_id)
            run_id = t.user_attrs.get("run_id")
            if not run_id:
                trial.set_user_attr("message", "its runner ended before the job started")
                self.study.tell(trial, state=TrialState.FAIL)
                continue
            trial.set_user_attr("runner", self._owner())
            a = _Active(trial, run_id, reported=len(t.intermediate_values))
            vals = t.intermediate_values
            a.last = vals[max(vals)] if vals else None
            try:
                self.store.get(run_id)
            except LayerLabError:
                trial.set_user_attr("message", "its run is not in this workspace")
                self.study.tell(trial, state=TrialState.FAIL)
                continue
            active[t.number] = a

    # ---- results
    def result(self, stopped: bool = False) -> StudyResult:
        """The study's best trial and counts so far."""
        return study_result(self.study, self.storage_url, stopped=stopped)


__all__ = ["StudyRunner", "JobLauncher"]
