"""Hyper-parameter and architecture search with Optuna; every trial is a LayerLab job.

Three parts, no Streamlit:

- **Search space**: :func:`parse_space` reads specs such as ``"lr=1e-4..1e-1:log"``,
  ``"fc1.out_features=16..256:log"``, ``"rnn.num_layers={1,2,3}"`` or ``"optimizer={adam,sgd}"`` and checks
  them against the project (node ids, the layer spec's parameter schema and ranges) before any trial
  starts; every problem is reported at once as "rule; received: value. Fix: ...".
  :meth:`SearchSpace.apply` turns one trial's parameters into a project and training settings.
- **Study runner**: :class:`StudyRunner` drives an Optuna study with the ask-and-tell interface: it asks
  for parameters, submits each trial as a job (:func:`builder.runs.jobs.submit`, tagged with the study and the
  trial number), reads the job's per-epoch validation metrics from the run store to report intermediate
  values to the median pruner, stops pruned jobs, and tells Optuna the result. A trial whose graph is
  invalid fails with the graph's problems recorded; a job whose process dies fails its trial; the study
  goes on either way. Studies live in an RDB storage (``sqlite:///<workspace>/studies.db`` by default, any
  Optuna URL otherwise), so a stopped study resumes and several processes on several machines can share one.
- **Readers** for the app and the CLI: :func:`trials_table`, :func:`best_trial`, :func:`best_project`,
  :func:`study_figures`, :func:`request_stop`.

Example::

    >>> store = RunStore(tmp_path)                                                      # doctest: +SKIP
    >>> space = parse_space(["lr=1e-3..1e-1:log", "fc1.out_features={8,32}"], project)   # doctest: +SKIP
    >>> runner = StudyRunner(store, project, "moons", space=space,
    ...                      settings=StudySettings(name="s1", n_trials=8))               # doctest: +SKIP
    >>> runner.run().best_params                                                        # doctest: +SKIP
    {'lr': 0.031, 'fc1.out_features': 32}
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from builder.errors import GraphError, LayerLabError, Problem, TrainingError
from builder.graph.project import Project, load_project
from builder.graph.registry import Param, get_spec, has_spec

# Optuna (with SQLAlchemy) takes ~0.6 s to import: it is loaded on first use, not with this module.

STUDY_DB = "studies.db"
MAX_TRIALS = 100_000
MAX_CHOICES = 64
OBJECTIVES = ("val_loss", "val_metric", "val_accuracy", "val_f1", "val_r2")
SAMPLERS = ("tpe", "random")
PRUNERS = ("median", "none")
TERMINAL = ("finished", "stopped", "failed", "interrupted")
_ATTR = "layerlab"  # the study's user attribute holding its LayerLab settings
_STOP_ATTR = "layerlab_stop"


# ------------------------------------------------------------------------------------------ problems
@dataclass(frozen=True)
class SearchProblem(Problem):
    """A problem of one search dimension: located at its node, else at its training setting ``key``."""

    key: str = ""

    @property
    def where(self) -> str:
        if self.node is not None:
            return f"node {self.node}"
        return f"search {self.key}" if self.key else "search"

    def to_dict(self) -> dict:
        return {**super().to_dict(), "key": self.key}


class SearchSpaceError(GraphError):
    """The search space has problems (syntax, unknown nodes or parameters, empty or inverted ranges)."""


# --------------------------------------------------------------------------------------- search space
# training settings that may be searched: kind, lower bound, upper bound (inclusive), choices
TRAINING_DIMS: dict[str, tuple[str, float | None, float | None, tuple | None]] = {
    "lr": ("float", 1e-8, 10.0, None),
    "batch_size": ("int", 1, 65_536, None),
    "weight_decay": ("float", 0.0, 1.0, None),
    "epochs": ("int", 1, 10_000, None),
    "momentum": ("float", 0.0, 0.999, None),
    "optimizer": ("choice", None, None, ("sgd", "adam", "adamw", "rmsprop")),
    "scheduler": ("choice", None, None, ("none", "step", "cosine", "onecycle", "plateau")),
    "dropout": ("float", 0.0, 0.95, None),  # every Dropout node's p and every layer's dropout parameter
}
_SPEC_RE = re.compile(r"^\s*([A-Za-z_][\w\-]*(?:\.[A-Za-z_]\w*)?)\s*=\s*(.+?)\s*$")
_RANGE_RE = re.compile(r"^(.+?)\.\.(.+?)(?::(log|linear))?$")


@dataclass(frozen=True)
class Dimension:
    """One searched value.

    Attributes:
        key: ``lr`` (a training setting) or ``node_id.param`` (a node parameter).
        kind: ``float``, ``int`` (a range from ``low`` to ``high``, inclusive, ``log`` scale optional) or
            ``choice`` (``choices``).
    """

    key: str
    kind: Literal["float", "int", "choice"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple = ()

    @property
    def node(self) -> str | None:
        """The node id for a node parameter, else None."""
        return self.key.split(".", 1)[0] if "." in self.key else None

    @property
    def param(self) -> str:
        """The parameter (or training setting) name."""
        return self.key.split(".", 1)[1] if "." in self.key else self.key

    def distribution(self):
        """The Optuna distribution of this dimension."""
        import optuna.distributions as d

        if self.kind == "choice":
            return d.CategoricalDistribution(list(self.choices))
        if self.kind == "int":
            return d.IntDistribution(int(self.low), int(self.high), log=self.log)
        return d.FloatDistribution(float(self.low), float(self.high), log=self.log)

    def to_text(self) -> str:
        """The spec this dimension parses from (``lr=0.0001..0.1:log``)."""
        if self.kind == "choice":
            return f"{self.key}={{{','.join(_fmt_value(c) for c in self.choices)}}}"
        return f"{self.key}={_fmt_value(self.low)}..{_fmt_value(self.high)}" + (":log" if self.log else "")


def _fmt_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return str(int(v)) if abs(v) >= 1 or v == 0 else repr(v)
    if isinstance(v, list | tuple):
        return json.dumps(list(v))
    return str(v)


def _parse_value(text: str) -> Any:
    t = text.strip()
    if len(t) >= 2 and t[0] == t[-1] and t[0] in "'\"":
        return t[1:-1]
    low = t.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("null", "none"):
        return None
    try:
        return int(t)
    except ValueError:
        pass
    try:
        v = float(t)
        return v if math.isfinite(v) else t
    except ValueError:
        pass
    if t.startswith("["):
        with contextlib.suppress(json.JSONDecodeError):
            return json.loads(t)
    return t


def _split_choices(body: str) -> list[str]:
    """Split ``a,b,[1,2]`` at top-level commas (lists such as kernel sizes stay whole)."""
    out, depth, cur = [], 0, ""
    for ch in body:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    out.append(cur)
    return [s.strip() for s in out]


def _syntax(text: str, why: str) -> SearchProblem:
    shown = text if len(text) <= 60 else text[:57] + "..."
    key = text.split("=", 1)[0].strip()[:60] if "=" in text else ""
    return SearchProblem("search_syntax", f"a search spec must read NAME=LOW..HIGH[:log] or NAME={{A,B,...}} "
                         f"({why}); received: {shown!r}. Fix: e.g. lr=1e-4..1e-1:log, fc1.out_features=16..256:log "
                         "or optimizer={adam,sgd}", key=key)


def parse_dimension(text: str) -> Dimension:
    """Parse one spec without looking at a project (syntax only). Raises SearchSpaceError."""
    if not isinstance(text, str) or len(text) > 2000:
        raise SearchSpaceError([_syntax(str(text)[:60], "text of at most 2000 characters")])
    m = _SPEC_RE.match(text)
    if not m:
        raise SearchSpaceError([_syntax(text, "NAME is a training setting or node_id.param")])
    key, body = m.group(1), m.group(2)
    if body.startswith("{"):
        if not body.endswith("}"):
            raise SearchSpaceError([_syntax(text, "a choice list ends with }")])
        inner = body[1:-1].strip()
        items = [_parse_value(s) for s in _split_choices(inner)] if inner else []
        return Dimension(key, "choice", choices=tuple(tuple(v) if isinstance(v, list) else v for v in items))
    r = _RANGE_RE.match(body)
    if not r:
        raise SearchSpaceError([_syntax(text, "a range is LOW..HIGH, a choice list {A,B}")])
    lo, hi = _parse_value(r.group(1)), _parse_value(r.group(2))
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (lo, hi)):
        raise SearchSpaceError([_syntax(text, "range bounds are numbers")])
    kind = "int" if isinstance(lo, int) and isinstance(hi, int) else "float"
    return Dimension(key, kind, low=lo, high=hi, log=r.group(3) == "log")


@dataclass
class SearchSpace:
    """Checked dimensions plus the node ids each ``dropout`` setting reaches."""

    dims: list[Dimension]
    dropout_targets: list[tuple[str, str]] = field(default_factory=list)  # (node id, param)

    def distributions(self) -> dict:
        """``{key: optuna distribution}`` for ``study.ask``."""
        return {d.key: d.distribution() for d in self.dims}

    def to_specs(self) -> list[str]:
        """The specs this space parses from."""
        return [d.to_text() for d in self.dims]

    @property
    def keys(self) -> list[str]:
        return [d.key for d in self.dims]

    def apply(self, project: Project | dict, config: dict | None, params: dict) -> tuple[Project, dict]:
        """One trial's ``params`` applied: a project copy with node parameters set and the settings dict.

        ``dropout`` sets the ``p`` of every Dropout node and the ``dropout`` parameter of every layer that
        has one. Keys outside the space are ignored.
        """
        project = load_project(project).model_copy(deep=True)
        cfg = dict(config or {})
        nodes = {n.id: n for n in project.graph.nodes}
        for d in self.dims:
            if d.key not in params:
                continue
            v = params[d.key]
            v = list(v) if isinstance(v, tuple) else v
            if d.node is not None:
                nodes[d.node].params = {**nodes[d.node].params, d.param: v}
            elif d.key == "dropout":
                for nid, p in self.dropout_targets:
                    nodes[nid].params = {**nodes[nid].params, p: v}
            else:
                cfg[d.key] = v
        return project, cfg


def parse_space(specs: Iterable[str | Dimension], project: Project | dict) -> SearchSpace:
    """Parse and check a search space against a project, reporting every problem at once.

    Args:
        specs: spec strings (``"lr=1e-4..1e-1:log"``, ``"fc1.out_features=16..256:log"``,
            ``"rnn.num_layers={1,2,3}"``) or :class:`Dimension` objects.
        project: the project whose nodes are searched.

    Returns:
        A :class:`SearchSpace`.

    Raises:
        SearchSpaceError: each problem located at its node (or training setting) as "rule; received:
            value. Fix: ...": syntax, unknown nodes or parameters, inferred sizes, empty or inverted
            ranges, bounds outside the layer's schema, log scale with a bound ≤ 0, bad choices, repeats.
    """
    project = load_project(project)
    problems: list[Problem] = []
    dims: list[Dimension] = []
    seen: set[str] = set()
    targets: list[tuple[str, str]] = []
    specs = list(specs)
    if len(specs) > 200:
        raise SearchSpaceError([SearchProblem("search_size", f"a search space may have at most 200 dimensions; "
                                              f"received: {len(specs)}. Fix: search fewer values")])
    for s in specs:
        try:
            d = s if isinstance(s, Dimension) else parse_dimension(s)
        except SearchSpaceError as e:
            problems += e.problems
            continue
        if d.key in seen:
            problems.append(SearchProblem("search_repeat", f"each value may be searched once; received: `{d.key}` "
                                          f"twice. Fix: keep one spec for {d.key}", node=d.node, key=d.key))
            continue
        seen.add(d.key)
        found, d2, extra = _check_dimension(d, project)
        problems += found
        if not found:
            dims.append(d2)
            targets += extra
    if not specs:
        problems.append(SearchProblem("search_empty", "a search needs at least one searched value; received: none. "
                                      "Fix: e.g. --search 'lr=1e-4..1e-1:log'"))
    if problems:
        raise SearchSpaceError(problems)
    return SearchSpace(dims, targets)


def _check_dimension(d: Dimension, project: Project) -> tuple[list[Problem], Dimension, list[tuple[str, str]]]:
    if d.node is None:
        if d.key not in TRAINING_DIMS:
            import difflib

            close = difflib.get_close_matches(d.key, list(TRAINING_DIMS), n=1)
            hint = f"did you mean `{close[0]}`?" if close else (
                "search a training setting (" + ", ".join(TRAINING_DIMS) + ") or a node parameter as node_id.param")
            return [SearchProblem("search_unknown", f"unknown search setting; received: `{d.key}`. Fix: {hint}",
                                  key=d.key)], d, []
        kind, lo, hi, choices = TRAINING_DIMS[d.key]
        param = Param(d.key, kind, None, min=lo, max=hi, choices=choices)
        targets: list[tuple[str, str]] = []
        if d.key == "dropout":
            targets = _dropout_targets(project)
            if not targets:
                return [SearchProblem("search_no_dropout", "`dropout` sets the rate of Dropout nodes and of layers "
                                      "with a dropout parameter; received: a graph with none. Fix: add a Dropout "
                                      "node, or search a node parameter instead", key=d.key)], d, []
        probs, d2 = _check_against(d, param, node=None)
        return probs, d2, targets
    nid, pname = d.node, d.param
    node = next((n for n in project.graph.nodes if n.id == nid), None)
    if node is None:
        import difflib

        ids = [n.id for n in project.graph.nodes]
        close = difflib.get_close_matches(nid, ids, n=1)
        hint = f"did you mean `{close[0]}`?" if close else "node ids are " + ", ".join(ids[:20])
        return [SearchProblem("search_unknown_node", f"a searched parameter must belong to a node of the graph; "
                              f"received: `{d.key}` but there is no node {nid!r}. Fix: {hint}", key=d.key)], d, []
    if not has_spec(node.type):
        return [SearchProblem("search_unknown_node", f"node {nid!r} has an unknown layer type; received: "
                              f"type={node.type!r}. Fix: correct the graph first", node=nid, key=d.key)], d, []
    spec = get_spec(node.type)
    if pname in spec.inferred:
        return [SearchProblem("search_inferred", f"`{pname}` is inferred from the input and cannot be searched; "
                              f"received: {d.key}. Fix: search the size of the layer before it", node=nid,
                              key=d.key)], d, []
    if pname not in spec.param_names:
        import difflib

        close = difflib.get_close_matches(pname, spec.param_names, n=1)
        hint = f"did you mean `{close[0]}`?" if close else (
            "it takes " + ", ".join(spec.param_names) if spec.param_names else f"{spec.type} takes no parameters")
        return [SearchProblem("search_unknown_param", f"unknown parameter `{pname}` for {spec.type}; received: "
                              f"{d.key}. Fix: {hint}", node=nid, key=d.key)], d, []
    probs, d2 = _check_against(d, spec.param(pname), node=nid)
    return probs, d2, []


def _dropout_targets(project: Project) -> list[tuple[str, str]]:
    out = []
    for n in project.graph.nodes:
        if n.type in ("Dropout", "Dropout2d"):
            out.append((n.id, "p"))
        elif has_spec(n.type) and "dropout" in get_spec(n.type).param_names:
            out.append((n.id, "dropout"))
    return out


def _check_against(d: Dimension, p: Param, node: str | None) -> tuple[list[Problem], Dimension]:
    """Check a dimension against a parameter's kind, range and choices; returns (problems, normalised)."""

    def prob(code: str, msg: str) -> list[Problem]:
        return [SearchProblem(code, msg, node=node, key=d.key)]

    if d.kind == "choice":
        if not d.choices:
            return prob("search_empty", f"a choice list needs at least one value; received: {d.key}={{}}. Fix: "
                        f"list values, e.g. {d.key}={{{_fmt_value(p.default) if p.default is not None else 'a,b'}}}"), d
        if len(d.choices) > MAX_CHOICES:
            return prob("search_size", f"a choice list may hold at most {MAX_CHOICES} values; received: "
                        f"{len(d.choices)}. Fix: use a range"), d
        if len(set(map(repr, d.choices))) != len(d.choices):
            return prob("search_repeat", f"choices must differ; received: {d.to_text()}. Fix: list each value once"), d
        out = []
        for c in d.choices:
            v = list(c) if isinstance(c, tuple) else c
            if p.kind == "float" and isinstance(v, int) and not isinstance(v, bool):
                v = float(v)
            norm, err = p.check(v)
            if err:
                return prob("search_choice", f"every choice must be a valid `{d.param}`: {err}"), d
            out.append(tuple(norm) if isinstance(norm, list) else norm)
        return [], Dimension(d.key, "choice", choices=tuple(out))
    if p.kind not in ("int", "float", "int_or_pair"):
        what = f"one of {', '.join(map(repr, p.choices))}" if p.choices else f"a {p.kind}"
        return prob("search_kind", f"a range needs a numeric parameter; received: {d.to_text()} but `{d.param}` is "
                    f"{what}. Fix: list the values as {d.key}={{A,B}}"), d
    lo, hi = d.low, d.high
    kind = "int" if p.kind in ("int", "int_or_pair") else "float"
    if kind == "int" and not (float(lo).is_integer() and float(hi).is_integer()):
        return prob("search_kind", f"`{d.param}` takes integers, so its range needs integer bounds; received: "
                    f"{d.to_text()}. Fix: e.g. {d.key}={math.ceil(lo)}..{math.floor(hi)}"), d
    if lo > hi:
        return prob("search_inverted", f"a range must run from low to high; received: {d.to_text()}. Fix: "
                    f"{d.key}={_fmt_value(hi)}..{_fmt_value(lo)}" + (":log" if d.log else "")), d
    if lo == hi:
        return prob("search_empty", f"a range must hold more than one value; received: {d.to_text()}. Fix: widen it, "
                    f"or set {d.param} to {_fmt_value(lo)} without searching it"), d
    if d.log and lo <= 0:
        return prob("search_log", f"a log-scale range needs bounds > 0; received: {d.to_text()}. Fix: start above 0, "
                    f"e.g. {d.key}={_fmt_value(hi / 1000 if kind == 'float' else 1)}..{_fmt_value(hi)}:log"), d
    for v in (lo, hi):
        norm, err = p.check(int(v) if kind == "int" else float(v))
        if err:
            return prob("search_bounds", f"the range must stay within `{d.param}`'s allowed values: {err}"), d
    return [], Dimension(d.key, kind, low=int(lo) if kind == "int" else float(lo),
                         high=int(hi) if kind == "int" else float(hi), log=d.log)


# ------------------------------------------------------------------------------------------ objective
def objective_direction(objective: str) -> Literal["minimize", "maximize"]:
    """``minimize`` for ``val_loss``, ``maximize`` for a validation metric."""
    return "minimize" if objective == "val_loss" else "maximize"


def objective_metric(objective: str) -> str | None:
    """The TrainConfig ``metric`` an objective needs (``val_f1`` -> ``f1``), or None."""
    return {"val_accuracy": "accuracy", "val_f1": "f1", "val_r2": "r2"}.get(objective)


def objective_value(event: dict, objective: str) -> float | None:
    """The objective's value in one epoch event (``val_loss`` or ``val_metric`` / ``val_<metric>``)."""
    if objective in event and isinstance(event[objective], int | float):
        v = float(event[objective])
    elif objective in ("val_metric", f"val_{event.get('metric_name')}") and event.get("val_metric") is not None:
        v = float(event["val_metric"])
    else:
        return None
    return v if math.isfinite(v) else None


# -------------------------------------------------------------------------------------------- storage
def default_storage(workspace: str | Path) -> str:
    """``sqlite:///<workspace>/studies.db``: the workspace's study database."""
    return f"sqlite:///{Path(workspace).expanduser().resolve() / STUDY_DB}"


def open_storage(url: str):
    """An Optuna RDB storage for ``url`` (SQLite gets a 30 s busy timeout for concurrent processes).

    Raises:
        LayerLabError: the URL cannot be opened.
    """
    import optuna

    kw = {"connect_args": {"timeout": 30}} if url.startswith("sqlite") else {}
    err: Exception | None = None
    for attempt in range(6):
        try:
            with _schema_lock(url):
                return optuna.storages.RDBStorage(url, engine_kwargs=kw)
        except Exception as e:  # SQLAlchemy raises many kinds (bad URL, missing driver, unreachable server)
            err = e
            racing = ("already exists", "locked", "UNIQUE constraint", "duplicate key", "IntegrityError")
            if not any(r in f"{type(e).__name__} {e}" for r in racing):
                break
            time.sleep(0.2 * (attempt + 1))  # another process is creating the same schema right now
    first = str(err).splitlines()[0][:200] if str(err) else ""
    raise LayerLabError(f"cannot open study storage; received: {_redact(url)} ({type(err).__name__}: {first}). "
                        "Fix: give a URL such as sqlite:///studies.db or postgresql://user@host/db")


@contextlib.contextmanager
def _schema_lock(url: str):
    """For a local SQLite file, one process at a time creates or upgrades the schema (a lock file beside it)."""
    path = url[len("sqlite:///"):] if url.startswith("sqlite:///") else ""
    try:
        import fcntl
    except ImportError:  # not POSIX: the retries in open_storage cover the race
        fcntl = None
    if not path or path == ":memory:" or fcntl is None:
        yield
        return
    lock = Path(path).expanduser().with_name(Path(path).name + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _redact(url: str) -> str:
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)


def _quiet_optuna() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)


def list_studies(storage: str) -> list[dict]:
    """Studies in a storage: name, direction, trial count, best value, creation time."""
    import optuna

    _quiet_optuna()
    out = []
    for s in optuna.get_all_study_summaries(open_storage(storage), include_best_trial=True):
        out.append({"name": s.study_name, "direction": s.direction.name.lower() if s.direction else None,
                    "n_trials": s.n_trials, "best_value": s.best_trial.value if s.best_trial else None,
                    "created": str(s.datetime_start) if s.datetime_start else None,
                    "settings": s.user_attrs.get(_ATTR)})
    return out


def study_owner(storage: str, name: str) -> str | None:
    """The owner recorded with the study ``name`` (``local`` when none was), or None when there is no such
    study in ``storage``."""

    _quiet_optuna()
    st = open_storage(storage)
    try:
        sid = st.get_study_id_from_name(name)
    except KeyError:
        return None
    return (st.get_study_user_attrs(sid).get(_ATTR) or {}).get("owner") or "local"


def _check_owner(name: str, owner: str, asking: str) -> None:
    """A study belongs to whoever created it: nobody else resumes it, adds trials to it or reads it by name."""
    if owner != asking:
        raise LayerLabError(f"the study name {name!r} is taken by another person's study; received: study name "
                            f"{name!r}. Fix: pick another study name")


def load_study(storage: str, name: str):
    """Load an existing study. Raises LayerLabError naming the studies present."""
    import optuna

    _quiet_optuna()
    st = open_storage(storage)
    try:
        return optuna.load_study(study_name=name, storage=st)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(st, include_best_trial=False)]
        raise LayerLabError(f"no study named {name!r}; received: --study {name}. Fix: use one of "
                            f"{', '.join(names[:10]) or '(none yet: run `layerlab tune` first)'}") from None


def request_stop(storage: str, name: str) -> None:
    """Ask every runner of a study (in any process, on any machine) to stop: no new trials, live jobs stopped."""
    load_study(storage, name).set_user_attr(_STOP_ATTR, time.time())


# ------------------------------------------------------------------------------------------- launcher
class JobLauncher:
    """How trials become jobs: the one place that talks to :mod:`builder.runs.jobs` (tests pass a stand-in)."""

    def __init__(self, jobs: Any = None):
        if jobs is None:
            from builder.runs import jobs
        self.jobs = jobs

    def slots(self) -> int:
        """How many trials may run at once (the job limit)."""
        return int(self.jobs.max_jobs())

    def submit(self, store, spec: dict) -> str:
        """Start a job for one trial; returns its run id."""
        job_spec = getattr(self.jobs, "JobSpec", None)  # builder.runs.jobs takes a JobSpec, stand-ins a dict
        return self.jobs.submit(store, job_spec(**spec) if job_spec else spec)

    def stop(self, store, run_id: str) -> None:
        """Ask a job to stop (it keeps a resumable checkpoint); a job that already ended is left alone."""
        with contextlib.suppress(LayerLabError):
            self.jobs.request(store, run_id, "stop")

    def poll(self) -> None:
        """Housekeeping between polls (a launcher may reap finished processes)."""
        if hasattr(self.jobs, "reap"):
            self.jobs.reap()


# --------------------------------------------------------------------------------------------- runner
@dataclass
class StudySettings:
    """How a study runs.

    Attributes:
        name: the study name (shared by every process that works on it).
        storage: an Optuna storage URL; default ``sqlite:///<workspace>/studies.db``.
        n_trials: the number of trials the study should hold in all (a resumed or shared study runs until
            it holds this many, counting complete, pruned and failed trials).
        timeout: seconds after which no new trial starts (running ones finish).
        objective: ``val_loss`` (minimised) or a validation metric (maximised): ``val_metric`` (the task's
            default metric), ``val_accuracy``, ``val_f1``, ``val_r2``. The last epoch's value is the result.
        sampler: ``tpe`` (default) or ``random``; ``seed`` seeds it.
        pruner: ``median`` (fed by per-epoch validation values) or ``none``; ``prune_startup`` trials run to
            the end before pruning starts, and no trial is pruned before epoch ``prune_warmup`` + 1.
        workers: trials at once (default: the job limit).
        poll_s: how often the runner reads the run store.
        owner: the owner recorded on every trial's run (the app's session owner; ``local`` on the CLI).
    """

    name: str = "study"
    storage: str | None = None
    n_trials: int = 20
    timeout: float | None = None
    objective: str = "val_loss"
    sampler: str = "tpe"
    seed: int | None = 0
    pruner: str = "median"
    prune_startup: int = 3
    prune_warmup: int = 1
    workers: int | None = None
    poll_s: float = 0.25
    owner: str = "local"

    def check(self) -> None:
        """Raises LayerLabError for a bad setting."""
        bad = []
        if not re.fullmatch(r"[\w.\-]{1,100}", self.name or ""):
            bad.append(f"a study name uses letters, digits, '.', '_' or '-' (at most 100); received: {self.name!r}. "
                       "Fix: e.g. mlp-moons-1")
        if not (1 <= int(self.n_trials) <= MAX_TRIALS):
            bad.append(f"the number of trials must be from 1 to {MAX_TRIALS}; received: {self.n_trials}. Fix: e.g. 20")
        if self.timeout is not None and not (self.timeout > 0):
            bad.append(f"the time budget must be > 0 seconds; received: {self.timeout}. Fix: omit it or give e.g. 600")
        if self.objective not in OBJECTIVES:
            bad.append(f"the objective must be one of {', '.join(OBJECTIVES)}; received: {self.objective!r}. Fix: "
                       "e.g. val_loss")
        if self.sampler not in SAMPLERS:
            bad.append(f"the sampler must be one of {', '.join(SAMPLERS)}; received: {self.sampler!r}. Fix: tpe")
        if self.pruner not in PRUNERS:
            bad.append(f"the pruner must be one of {', '.join(PRUNERS)}; received: {self.pruner!r}. Fix: median")
        if self.workers is not None and not (1 <= int(self.workers) <= 1024):
            bad.append(f"workers must be from 1 to 1024; received: {self.workers}")
        if bad:
            raise LayerLabError("; ".join(bad))


@dataclass
class StudyResult:
    """What :meth:`StudyRunner.run` returns (also the ``layerlab tune --json`` output)."""

    study: str
    storage: str
    direction: str
    objective: str
    best_value: float | None
    best_params: dict
    best_run_id: str | None
    best_trial: int | None
    n_trials: int
    states: dict[str, int]
    stopped: bool = False

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class _Active:
    trial: Any
    run_id: str
    reported: int = 0
    last: float | None = None
    pruned_at: int | None = None


def _make_sampler(name: str, seed: int | None):
    import optuna

    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def _make_pruner(s: StudySettings):
    import optuna

    if s.pruner == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=s.prune_startup, n_warmup_steps=s.prune_warmup)


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
        from builder.data import load_dataset
        from builder.training.trainer import TrainConfig

        self.store = store
        self.settings = settings or StudySettings()
        self.settings.check()
        self.project = load_project(project)
        self.space = space if isinstance(space, SearchSpace) else parse_space(space, self.project)
        tr = dict(self.project.training or {})
        self.dataset = dataset or tr.get("dataset") or (self.project.dataset or {}).get("name")
        if not self.dataset:
            raise TrainingError("no dataset given and the project names none; pass a dataset name")
        self.dataset_options = dict(dataset_options or {})
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
        self._ds = load_dataset(self.dataset, **opts)  # loaded once to check every trial's graph against it
        self._check_objective()
        self.on_update = on_update
        self.launcher = launcher or JobLauncher()
        self.storage_url = self.settings.storage or default_storage(store.workspace)
        self._stop = threading.Event()
        self.study = self._open_study()
        self._mlflow_parent()

    def _mlflow_parent(self, result: StudyResult | None = None) -> None:
        """With MLflow tracking on, the study's parent run (trials nest under it); at the end, its best value."""
        from builder.runs.tracking import Tracker, TrackingWarning, tracking_uri

        uri = tracking_uri()
        if not uri:
            return
        try:
            tr = Tracker(uri)
            rid = tr.study_parent(self.settings.name)
            if result is not None and result.best_value is not None:
                tr.log_metrics(rid, {f"best_{self.settings.objective}": result.best_value}, step=result.n_trials)
                for k, v in result.best_params.items():
                    tr.client.set_tag(rid, f"best.{k}", str(v))
                tr.client.set_tag(rid, "best.run_id", str(result.best_run_id))
        except Exception as e:  # tracking never stops a study
            import warnings

            warnings.warn(f"MLflow study run not written: {type(e).__name__}: {e}", TrackingWarning, stacklevel=2)

    # ---- setup
    def _check_objective(self) -> None:
        task = self._ds.info.task
        classif = task in ("multiclass", "binary")
        o = self.settings.objective
        if (o in ("val_accuracy", "val_f1") and not classif) or (o == "val_r2" and classif):
            raise LayerLabError(f"the objective must suit the dataset's task; received: {o} on a {task} dataset. "
                                f"Fix: use val_loss or {'val_r2' if not classif else 'val_accuracy'}")

    def _signature(self) -> dict:
        return {"space": self.space.to_specs(), "objective": self.settings.objective, "dataset": self.dataset,
                "dataset_options": self.dataset_options, "config": self.config,
                "project": self.project.model_dump(mode="json"), "workspace": str(self.store.workspace),
                "n_trials": self.settings.n_trials, "sampler": self.settings.sampler, "pruner": self.settings.pruner,
                "timeout": self.settings.timeout, "owner": self.settings.owner}

    def _open_study(self):
        import optuna

        _quiet_optuna()
        s = self.settings
        study = optuna.create_study(study_name=s.name, storage=open_storage(self.storage_url),
                                    direction=objective_direction(s.objective), sampler=_make_sampler(s.sampler, s.seed),
                                    pruner=_make_pruner(s), load_if_exists=True)
        sig = self._signature()
        old = study.user_attrs.get(_ATTR)
        if old is None:
            study.set_user_attr(_ATTR, sig)
        else:
            _check_owner(s.name, old.get("owner") or "local", s.owner)
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
        if self.study.user_attrs.get(_STOP_ATTR):
            self.study.set_user_attr(_STOP_ATTR, 0)  # a new run of the study clears an earlier stop request
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
        import optuna

        try:
            attrs = optuna.load_study(study_name=self.settings.name,
                                      storage=self.study._storage).user_attrs  # fresh read of shared state
        except Exception:  # storage briefly unavailable: keep going
            return False
        return bool(attrs.get(_STOP_ATTR))

    def _remaining(self) -> int:
        return self.settings.n_trials - len(self.study.get_trials(deepcopy=False))

    def _owner(self) -> str:
        return f"{socket.gethostname()}:{os.getpid()}"

    def _start_trial(self) -> _Active | None:
        from optuna.trial import TrialState

        study = self.study
        trial = study.ask(self.space.distributions())
        n = trial.number
        if n >= self.settings.n_trials:  # another process asked at the same moment: this one is surplus
            trial.set_user_attr("message", f"not run: the study already holds {self.settings.n_trials} trials")
            study.tell(trial, state=TrialState.FAIL)
            return None
        trial.set_user_attr("runner", self._owner())
        project, cfg = self.space.apply(self.project, self.config, trial.params)
        problems = self._check_trial(project, cfg)
        if problems:
            trial.set_user_attr("problems", [str(p) for p in problems])
            trial.set_user_attr("message", "invalid graph or settings: " + "; ".join(str(p) for p in problems[:3]))
            study.tell(trial, state=TrialState.FAIL)
            self._emit({"type": "trial_done", "trial": n, "state": "fail", "params": trial.params,
                        "message": trial.user_attrs["message"]})
            return None
        spec = {"project": project.model_dump(mode="json"), "dataset": self.dataset,
                "dataset_options": dict(self.dataset_options), "config": cfg,
                "tags": {"study": self.settings.name, "trial": n}, "name": f"{self.settings.name} #{n}",
                "owner": self.settings.owner}
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

    def _check_trial(self, project: Project, cfg: dict) -> list[Problem]:
        """The graph's and the settings' problems for one trial (empty when it can train)."""
        from builder.data import fit_dataset
        from builder.data.compat import check_compat
        from builder.graph.shapes import infer_shapes
        from builder.training.trainer import TrainConfig

        problems = [p for p in infer_shapes(project.graph).problems if p.severity == "error"]
        if not problems:
            problems = check_compat(project.graph, fit_dataset(project.graph, self._ds).info)
        try:
            TrainConfig.from_dict(cfg)
        except TrainingError as e:
            problems.append(Problem("bad_settings", str(e)))
        return problems

    def _poll(self, a: _Active, stopping: bool) -> bool:
        """Report new epochs of one trial, prune it if due, tell Optuna when its job ends. True when done."""
        from optuna.trial import TrialState

        s, study = self.settings, self.study
        epochs = self.store.metrics(a.run_id, "epoch")
        for ev in epochs[a.reported:]:
            a.reported += 1
            v = objective_value(ev, s.objective)
            if v is None or a.pruned_at is not None:
                continue
            a.last = v
            step = int(ev.get("epoch", a.reported))
            a.trial.report(v, step)
            if a.trial.should_prune():
                a.pruned_at = step
                a.trial.set_user_attr("message", f"pruned at epoch {step}")
                self.launcher.stop(self.store, a.run_id)
        run = self.store.get(a.run_id)
        status = run["status"]
        if status not in TERMINAL:
            return False
        if a.reported < len(self.store.metrics(a.run_id, "epoch")):
            return self._poll(a, stopping)  # epochs written just before the end: report them first
        n = a.trial.number
        if a.pruned_at is not None:
            study.tell(a.trial, state=TrialState.PRUNED)
            state = "pruned"
        elif status == "finished" and a.last is not None:
            study.tell(a.trial, a.last)
            state = "complete"
        else:
            why = {"stopped": "stopped with the study" if stopping else "its job was stopped",
                   "interrupted": "its job process ended unexpectedly"}.get(status, "training failed")
            msg = f"{why}: {run.get('message') or ''}".rstrip(": ")
            a.trial.set_user_attr("message", msg[:1000])
            study.tell(a.trial, state=TrialState.FAIL)
            state = "fail"
        self._emit({"type": "trial_done", "trial": n, "state": state, "value": a.last, "run_id": a.run_id,
                    "params": a.trial.params, "message": a.trial.user_attrs.get("message", "")})
        return True

    def _adopt_orphans(self, active: dict[int, _Active]) -> None:
        """Trials left running by a dead runner on this host: follow their jobs (or close them) again."""
        import optuna
        from optuna.trial import TrialState

        host = socket.gethostname()
        from builder.runs.store import _pid_alive

        for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            owner = str(t.user_attrs.get("runner", ""))
            h, _, pid = owner.rpartition(":")
            if h != host or not pid.isdigit() or _pid_alive(int(pid)):
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


def study_result(study, storage: str, stopped: bool = False) -> StudyResult:
    """Best value, params and run id of a study plus trial counts."""
    states: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        states[t.state.name.lower()] = states.get(t.state.name.lower(), 0) + 1
    bt = best_trial(study)
    sig = study.user_attrs.get(_ATTR) or {}
    return StudyResult(study=study.study_name, storage=_redact(storage), direction=study.direction.name.lower(),
                       objective=sig.get("objective", ""), best_value=bt.value if bt else None,
                       best_params=dict(bt.params) if bt else {}, best_run_id=bt.user_attrs.get("run_id") if bt else None,
                       best_trial=bt.number if bt else None, n_trials=len(study.trials), states=states, stopped=stopped)


def best_trial(study):
    """The best complete trial, or None when none completed yet."""
    try:
        return study.best_trial
    except ValueError:
        return None


def trials_table(study) -> list[dict]:
    """One row per trial: number, state, value, params, run id, last epoch reported, message, duration."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        dur = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete and t.datetime_start \
            else None
        rows.append({"trial": t.number, "state": t.state.name.lower(), "value": t.value,
                     "epochs": max(t.intermediate_values) if t.intermediate_values else 0,
                     **{k: (list(v) if isinstance(v, tuple) else v) for k, v in t.params.items()},
                     "run_id": t.user_attrs.get("run_id"), "duration_s": dur,
                     "message": t.user_attrs.get("message", "")})
    return rows


def study_settings(study) -> dict:
    """The LayerLab settings a study was created with (space, objective, dataset, config, project)."""
    return dict(study.user_attrs.get(_ATTR) or {})


def best_project(study) -> tuple[Project, dict]:
    """The study's project with the best trial's parameters applied, and its training settings.

    Raises:
        LayerLabError: no trial completed yet.
    """
    bt = best_trial(study)
    if bt is None:
        raise LayerLabError(f"study {study.study_name!r} has no complete trial yet. Fix: wait for one, or run more trials")
    sig = study_settings(study)
    project = load_project(sig["project"])
    space = parse_space(sig["space"], project)
    p, cfg = space.apply(project, sig.get("config"), bt.params)
    p.training = {**(p.training or {}), **cfg, "dataset": sig.get("dataset")}
    return p, cfg


def searchable_params(project: Project | dict) -> list[dict]:
    """The canvas nodes' parameters that can be searched: numbers (a range) and choices (a list).

    Returns one dict per parameter: ``node``, ``type``, ``param``, ``kind``, ``value`` (current), ``min``,
    ``max``, ``choices``, ``help``, ``key`` (``node.param``, the spec name). Inferred sizes are left out.
    """
    out = []
    for n in load_project(project).graph.nodes:
        if n.type == "Input" or not has_spec(n.type):
            continue
        spec = get_spec(n.type)
        for p in spec.params:
            if p.kind not in ("int", "float", "choice", "bool") or p.name in spec.inferred:
                continue
            out.append({"node": n.id, "type": n.type, "param": p.name, "kind": p.kind,
                        "value": n.params.get(p.name, p.default), "min": p.min, "max": p.max,
                        "choices": list(p.choices) if p.choices else ([True, False] if p.kind == "bool" else None),
                        "help": p.help, "key": f"{n.id}.{p.name}"})
    return out


def launch_study(workspace: str | Path, project: Project | dict, dataset: str, specs: Sequence[str],
                 settings: StudySettings, *, config: dict | None = None,
                 dataset_options: dict | None = None) -> subprocess.Popen:
    """Run a study in its own OS process (``python -m builder tune``), detached, so that it outlives the page
    that started it; its output goes to ``<workspace>/studies/<name>.log``.

    The space and settings are checked here first, so mistakes are reported before anything starts.

    Raises:
        SearchSpaceError, LayerLabError: a bad space or settings.
    """
    project = load_project(project)
    settings.check()
    parse_space(specs, project)
    owner = study_owner(settings.storage or default_storage(workspace), settings.name)
    if owner is not None:  # resuming: only the study's own owner may (checked before anything starts)
        _check_owner(settings.name, owner, settings.owner)
    d = Path(workspace).expanduser() / "studies"
    d.mkdir(parents=True, exist_ok=True)
    pfile = d / f"{settings.name}.project.json"
    pfile.write_text(project.to_json(), encoding="utf-8")
    cmd = [sys.executable, "-m", "builder", "tune", str(pfile), "--dataset", dataset, "--trials",
           str(settings.n_trials), "--study", settings.name, "--sampler", settings.sampler, "--pruner",
           settings.pruner, "--metric", settings.objective, "--workspace", str(workspace), "--json"]
    for k, v in (dataset_options or {}).items():
        cmd += ["--dataset-option", f"{k}={json.dumps(v)}"]
    for sp in specs:
        cmd += ["--search", sp]
    if settings.storage:
        cmd += ["--storage", settings.storage]
    if settings.timeout:
        cmd += ["--timeout", str(settings.timeout)]
    if settings.seed is not None:
        cmd += ["--sampler-seed", str(settings.seed)]
    if settings.workers:
        cmd += ["--workers", str(settings.workers)]
    if settings.owner != "local":
        cmd += ["--owner", settings.owner]
    flags = {"epochs": "--epochs", "batch_size": "--batch-size", "lr": "--lr", "optimizer": "--optimizer",
             "weight_decay": "--weight-decay", "momentum": "--momentum", "seed": "--seed", "device": "--device",
             "scheduler": "--scheduler"}
    for k, v in (config or {}).items():
        if k in flags and v is not None:
            cmd += [flags[k], str(v)]
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, *filter(None, [os.environ.get("PYTHONPATH")])])}
    with open(d / f"{settings.name}.log", "ab") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                                cwd=root, start_new_session=True)
    threading.Thread(target=proc.wait, daemon=True).start()  # reaped when it ends: no zombie
    return proc


def resume_study(workspace: str | Path, storage: str, name: str, n_trials: int | None = None, *,
                 owner: str | None = None) -> subprocess.Popen:
    """Start a study's runner again with the settings it was created with (``n_trials`` may grow it); with
    ``owner``, only when the study is that owner's."""
    study = load_study(storage, name)
    sig = study_settings(study)
    if not sig:
        raise LayerLabError(f"study {name!r} was not created by LayerLab; received: no settings. Fix: resume it "
                            "with `layerlab tune`")
    if owner is not None:
        _check_owner(name, sig.get("owner") or "local", owner)
    settings = StudySettings(name=name, storage=storage, n_trials=int(n_trials or sig.get("n_trials") or 20),
                             objective=sig["objective"], sampler=sig.get("sampler", "tpe"),
                             pruner=sig.get("pruner", "median"), timeout=sig.get("timeout"),
                             owner=sig.get("owner", "local"))
    return launch_study(workspace, sig["project"], sig["dataset"], sig["space"], settings,
                        config=sig.get("config"), dataset_options=sig.get("dataset_options"))


def study_figures(study) -> dict[str, Any]:
    """Optuna's plotly views: ``history``, ``parallel``, ``importances``, ``intermediate`` (those that can be
    drawn yet; importances need two complete trials and a searched value that varies)."""
    import optuna.visualization as vis

    figs: dict[str, Any] = {}
    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    makers = {"history": vis.plot_optimization_history, "parallel": vis.plot_parallel_coordinate,
              "intermediate": vis.plot_intermediate_values}
    if len(complete) >= 2:
        makers["importances"] = vis.plot_param_importances
    for k, f in makers.items():
        try:
            figs[k] = f(study)
        except (ValueError, RuntimeError, ZeroDivisionError):  # too few trials for this view yet
            continue
    return figs


__all__ = ["Dimension", "SearchSpace", "SearchProblem", "SearchSpaceError", "parse_dimension", "parse_space",
           "StudySettings", "StudyRunner", "StudyResult", "JobLauncher", "objective_direction", "objective_value",
           "default_storage", "open_storage", "load_study", "list_studies", "request_stop", "trials_table",
           "best_trial", "best_project", "study_figures", "searchable_params", "launch_study", "resume_study", "study_result", "study_settings", "TRAINING_DIMS", "study_owner"]
