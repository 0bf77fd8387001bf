"""How a study runs: its settings (trials, time budget, sampler, pruner) and its objective.

:class:`StudySettings` is checked before anything starts; :func:`objective_direction`, :func:`objective_metric`
and :func:`objective_value` say which way an objective goes, which training metric it needs and what it reads
in one epoch's metrics.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

from builder.errors import LayerLabError
from builder.training.metrics_units import figure_text, metric_label, metric_text

MAX_TRIALS = 100_000
OBJECTIVES = ("val_loss", "val_metric", "val_accuracy", "val_f1", "val_r2")
SAMPLERS = ("tpe", "random")
PRUNERS = ("median", "none")


#: a study's display name: never a '/' (which joins an owner's key to it) and never only dots ('.' and '..' name a
#: folder: the study's files, named after it, would sit beside its owner's folder instead of in it)
STUDY_NAME_RE = re.compile(r"(?!\.+\Z)[\w.\-]{1,100}")
STUDY_NAME_RULE = "a study name uses letters, digits, '.', '_' or '-' (at most 100, not only dots)"


def valid_study_name(name: object) -> bool:
    """Whether ``name`` is a display name (:data:`STUDY_NAME_RE`).

    >>> valid_study_name("lr-sweep.2"), valid_study_name("."), valid_study_name(".."), valid_study_name("a/b")
    (True, False, False, False)
    """
    return isinstance(name, str) and STUDY_NAME_RE.fullmatch(name) is not None


def study_name_problem(name: object) -> str | None:
    """What is wrong with ``name`` as a study name, as rule, received value and fix; None for a valid one."""
    return None if valid_study_name(name) else f"{STUDY_NAME_RULE}; received: {str(name)[:100]!r}. Fix: e.g. mlp-moons-1"


def objectives_for(task: str) -> tuple[str, ...]:
    """The objectives a study may optimise on a dataset of ``task``: the validation loss, and the metrics the task
    computes whose larger value is better (``val_metric``, the task's own metric, only where it is one of those:
    not a forecast's mean absolute error nor a language model's perplexity, which would be maximised).

    >>> objectives_for("binary"), objectives_for("forecast"), objectives_for("next_token")
    (('val_loss', 'val_metric', 'val_accuracy', 'val_f1'), ('val_loss', 'val_r2'), ('val_loss',))
    """
    if task in ("multiclass", "binary"):
        return "val_loss", "val_metric", "val_accuracy", "val_f1"
    if task == "next_token":
        return ("val_loss",)
    return ("val_loss", "val_r2") if task == "forecast" else ("val_loss", "val_metric", "val_r2")


def objective_direction(objective: str) -> Literal["minimize", "maximize"]:
    """``minimize`` for ``val_loss``, ``maximize`` for a validation metric."""
    return "minimize" if objective == "val_loss" else "maximize"


def objective_metric(objective: str) -> str | None:
    """The TrainConfig ``metric`` an objective needs (``val_f1`` -> ``f1``), or None."""
    return {"val_accuracy": "accuracy", "val_f1": "f1", "val_r2": "r2"}.get(objective)


def objective_text(objective: str, value: float | None) -> tuple[str, str]:
    """A study's best objective as pages show it: its label and its value, as every page writes that metric
    (:func:`~builder.training.metrics_units.metric_text`; the Search page said "Best val_accuracy 0.875").

    >>> objective_text("val_accuracy", 0.875), objective_text("val_loss", 0.0123456), objective_text("val_f1", None)
    (('Best validation accuracy', '87.5%'), ('Best validation loss', '0.01235'), ('Best validation F1', '—'))
    """
    metric = "loss" if objective == "val_loss" else objective_metric(objective)
    label = f"Best validation {metric_label(metric, in_text=True) if metric else 'metric'}"
    return label, metric_text(metric, value) if metric else figure_text(value)


def objective_value(event: dict, objective: str) -> float | None:
    """The objective's value in one epoch event (``val_loss`` or ``val_metric`` / ``val_<metric>``)."""
    if objective in event and isinstance(event[objective], int | float):
        v = float(event[objective])
    elif objective in ("val_metric", f"val_{event.get('metric_name')}") and event.get("val_metric") is not None:
        v = float(event["val_metric"])
    else:
        return None
    return v if math.isfinite(v) else None


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
        max_params: trials whose graph has more parameters fail before training (``None``: no limit).
        max_macs: trials whose graph needs more multiply-adds per sample fail before training (``None``: no
            limit). Every trial records both figures, and :func:`builder.search.results.pareto_front` reads the
            trade-off between the objective and either of them.
        tracking: the MLflow tracker of the trials (default: the owner's, :func:`builder.tracking_destinations.resolve_tracking`).
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
    max_params: int | None = None
    max_macs: int | None = None
    tracking: str | None = None

    def check(self) -> None:
        """Raises LayerLabError for a bad setting."""
        bad = []
        if problem := study_name_problem(self.name):
            bad.append(problem)
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
        for name in ("max_params", "max_macs"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
                bad.append(f"{name} must be a whole number ≥ 1; received: {v!r}. Fix: omit it for no limit")
        if bad:
            raise LayerLabError("; ".join(bad))


__all__ = ["StudySettings", "STUDY_NAME_RE", "STUDY_NAME_RULE", "valid_study_name", "study_name_problem", "objective_direction", "objective_text", "objective_metric", "objective_value", "objectives_for", "OBJECTIVES", "SAMPLERS",
           "PRUNERS", "MAX_TRIALS"]
