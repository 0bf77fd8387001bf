"""K-fold cross-validation: K runs whose test split is fold k, grouped in the run store, and their summary.

:func:`cross_validate` trains one run per fold through :func:`~builder.runs.pipeline.run_training` in the
caller's process (the CLI's terminal); the app submits the same folds as jobs instead
(:func:`builder.jobs.specs.crossval_job_specs` with :func:`builder.jobs.queue.submit_group`) and reads them back from the store
(:func:`fold_rows`, :func:`result_of`). Each run's dataset options carry ``fold`` and ``folds``
(:func:`builder.data.splits.fold_split`: the test split is fold k, folds disjoint and covering the data,
stratified for classification; validation comes from the other folds), so every fold reloads, resumes and explains like any run. The runs are grouped the way search trials
are: tags ``{"crossval": GROUP, "fold": k, "folds": K}`` (:meth:`RunStore.list_runs` with ``tags``).
:func:`summarise` gives mean ± std (sample standard deviation) of every numeric test metric::

    >>> s = summarise([{"accuracy": 0.9, "loss": 0.3}, {"accuracy": 1.0, "loss": 0.1}])
    >>> round(s["accuracy"]["mean"], 3), round(s["accuracy"]["std"], 4), s["loss"]["n"]
    (0.95, 0.0707, 2)
    >>> format_summary(s)[0]
    'accuracy  0.9500 ± 0.0707  (2 folds)'
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np

from builder._moved import moved_name
from builder.errors import TrainingError
from builder.training.run_status import RESUMABLE

TAG_GROUP = "crossval"  # the tag naming a cross-validation group (as "study" names a search's trials)
MAX_FOLDS = 50


@dataclass
class CrossValResult:
    """The runs of one cross-validation: ``group`` (the tag value), per-fold results and the summary."""

    group: str
    folds: int
    run_ids: list[str | None]
    statuses: list[str]
    tests: list[dict]
    summary: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether every fold finished with test metrics."""
        return len(self.tests) == self.folds and all(s == "finished" for s in self.statuses)

    def to_dict(self) -> dict:
        """JSON-serialisable form."""
        return {"group": self.group, "folds": self.folds, "run_ids": self.run_ids, "statuses": self.statuses,
                "tests": self.tests, "summary": self.summary}


def summarise(tests: Sequence[dict]) -> dict[str, dict[str, float]]:
    """Mean, sample std (0 for one value), min, max and count of every numeric metric in ``tests`` (not ``n``,
    the number of test samples)."""
    keys = [k for k in dict.fromkeys(k for t in tests for k in t)
            if k != "n" and all(isinstance(t.get(k), (int, float)) and not isinstance(t.get(k), bool) for t in tests)]
    out = {}
    for k in keys:
        v = np.array([float(t[k]) for t in tests])
        out[k] = {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
                  "min": float(v.min()), "max": float(v.max()), "n": len(v)}
    return out


def format_summary(summary: dict[str, dict[str, float]]) -> list[str]:
    """One line per metric: ``name  mean ± std  (n folds)``."""
    w = max((len(k) for k in summary), default=0)
    return [f"{k:<{w}}  {s['mean']:.4f} ± {s['std']:.4f}  ({s['n']} folds)" for k, s in summary.items()]


def new_group() -> str:
    """A fresh group name, e.g. ``cv-20261121-104000-ab12``."""
    return datetime.now(timezone.utc).strftime("cv-%Y%m%d-%H%M%S-") + secrets.token_hex(2)


def cross_validate(project: Any, dataset: Any = None, config: Any = None, store: Any = None, *, folds: int = 5,
                   dataset_options: dict | None = None, callbacks: Iterable[Any] = (), adapt: bool = False,
                   name: str | None = None, group: str | None = None, owner: str = "local",
                   on_fold: Callable[[int, Any], None] | None = None,
                   on_event: Callable[[dict], None] | None = None, tracking: Any = None) -> CrossValResult:
    """Train ``folds`` runs, run k testing on fold k, and summarise their test metrics.

    Args:
        project, dataset, config, store, dataset_options, callbacks, adapt, owner: as
            :func:`~builder.runs.pipeline.run_training` (``dataset`` must be a name or source: each fold
            loads it with its own split).
        folds: K, from 2 to 50. ``group``: the group tag (default: :func:`new_group`).
        on_fold: called with (k, TrainResult) after each fold.

    Raises:
        TrainingError: a loaded Dataset instead of a name, or fold options already given.
        GraphError, DatasetError: as run_training (before any run trains when the first fold fails early).
    """
    from builder.runs.pipeline import run_training  # lazy: heavy (torch, safetensors)

    opts = dict(dataset_options or {})
    check_request(dataset, folds, opts)
    group = group or new_group()
    res = CrossValResult(group, int(folds), [], [], [])
    base = name or getattr(project, "name", None) or "cross-validation"
    for k in range(int(folds)):
        result = run_training(project, dataset, config, store, list(callbacks),
                              dataset_options={**opts, "fold": k, "folds": int(folds)}, on_event=on_event,
                              adapt=adapt, name=f"{base} fold {k + 1}/{folds}", owner=owner,
                              tags={TAG_GROUP: group, "fold": k, "folds": int(folds)}, tracking=tracking)
        res.run_ids.append(result.run_id)
        res.statuses.append(str(result.status))
        if result.test:
            res.tests.append(dict(result.test))
        if on_fold is not None:
            on_fold(k, result)
    res.summary = summarise(res.tests)
    return res


def check_request(dataset: Any, folds: int, opts: dict) -> None:
    if dataset is not None and not isinstance(dataset, str):
        raise TrainingError("cross-validation reloads the dataset once per fold; pass its name (and options), "
                            "not a loaded Dataset")
    if "fold" in opts or "folds" in opts:
        raise TrainingError("give the number of folds with folds=K, not as dataset options")
    if not 2 <= int(folds) <= MAX_FOLDS:
        raise TrainingError(f"cross-validation has 2 to {MAX_FOLDS} folds; received: {folds}. Fix: e.g. 5")


def fold_rows(runs: Sequence[dict]) -> list[dict]:
    """One row per fold run record (as the store returns it, in fold order): ``fold`` (1-based), ``run``,
    ``status``, ``epochs`` (done/planned), ``message`` (the one line of a fold that ended before its last epoch:
    failed, interrupted or stopped) and its test metrics once it has them.

    >>> fold_rows([{"id": "r1", "status": "finished", "epochs_done": 3, "config": {"epochs": 3},
    ...             "test_metrics": {"accuracy": 0.9}, "tags": {"fold": 0}},
    ...            {"id": "r2", "status": "failed", "epochs_done": 0, "config": {"epochs": 3},
    ...             "message": "the training job died from SIGSEGV", "tags": {"fold": 1}}])[1]["message"]
    'the training job died from SIGSEGV'
    """
    rows = []
    for k, run in enumerate(runs):
        planned = (run.get("config") or {}).get("epochs")
        rows.append({"fold": int((run.get("tags") or {}).get("fold", k)) + 1, "run": run.get("id"),
                     "status": str(run.get("status")),
                     "epochs": f"{run.get('epochs_done') or 0}/{planned}" if planned else str(run.get("epochs_done") or 0),
                     "message": " ".join(str(run.get("message") or "").split())[:300]
                     if run.get("status") in RESUMABLE else "",
                     **dict(run.get("test_metrics") or {})})
    return rows


def result_of(group: str, runs: Sequence[dict]) -> CrossValResult:
    """The :class:`CrossValResult` of a group's fold run records (in fold order): statuses, the test metrics of the
    folds that have them and their summary."""
    tests = [dict(r["test_metrics"]) for r in runs if r.get("test_metrics")]
    return CrossValResult(group, len(runs), [r.get("id") for r in runs], [str(r.get("status")) for r in runs], tests,
                          summarise(tests))


def group_runs(store: Any, group: str) -> list[dict]:
    """The runs of one cross-validation group, by fold."""
    runs = store.list_runs(limit=10_000, tags={TAG_GROUP: group})
    return sorted(runs, key=lambda r: (r.get("tags") or {}).get("fold", 0))


__all__ = ["CrossValResult", "cross_validate", "fold_rows", "result_of", "MAX_FOLDS", "summarise", "format_summary", "group_runs", "new_group", "TAG_GROUP"]


def __getattr__(name: str):  # crossval_job_specs moved up to builder.jobs.specs (builder/_moved.py)
    return moved_name(__name__, name)
