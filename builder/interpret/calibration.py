"""Calibration and confidence: when can a classifier's confidence be trusted?

* :func:`reliability` bins predictions by confidence (equal-width bins over [0, 1], a bin holds
  ``lo < conf <= hi``, the first also 0) and gives each bin's accuracy and mean confidence, and the expected
  calibration error ``ECE = sum_b n_b / N * |accuracy_b - confidence_b|``.
* :func:`fit_temperature` fits one temperature ``T > 0`` on a split's logits (LBFGS on the NLL of
  ``logits / T``; softmax for class logits, sigmoid for one binary logit); ``T > 1`` softens an over-confident model.
* :func:`coverage_curve` is accuracy against coverage for a confidence threshold (keep the samples whose
  confidence is at least t), and :func:`coverage_at` the largest coverage whose accuracy reaches a target: the
  share of decisions that can be automated.
* :func:`calibrate_run` does all of it for a finished run (temperature on validation, everything else on test)
  and stores the result as the run folder's ``calibration.json`` (:attr:`RunFolder.calibration`).

Example (two bins; the hand computation is 0.5 * |1 - 0.9| + 0.5 * |0 - 0.3| = 0.2)::

    >>> r = reliability([0.9, 0.3], [True, False], bins=2)
    >>> round(r.ece, 6), r.counts
    (0.2, [1, 1])
    >>> c = coverage_curve([0.9, 0.8, 0.6, 0.55], [True, True, False, True])
    >>> coverage_at(c, 0.9)
    (0.5, 0.8)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from builder.data import predict
from builder.data.predictions import Prediction
from builder.errors import ExplainError
from builder.training.run_folder import keep_report, keeping

CLASSIFICATION = ("multiclass", "binary")


@dataclass
class Reliability:
    """A reliability diagram: per bin ``edges[b]..edges[b+1]`` the sample count, accuracy and mean confidence
    (None for an empty bin), and the expected calibration error over all ``n`` samples."""

    edges: list[float]
    counts: list[int]
    accuracy: list[float | None]
    confidence: list[float | None]
    ece: float
    n: int

    def to_dict(self) -> dict:
        """JSON-serialisable form."""
        return asdict(self)


@dataclass
class CoverageCurve:
    """Accuracy against coverage: for each threshold (descending), the share of samples kept
    (confidence >= threshold) and the accuracy on them."""

    thresholds: list[float]
    coverage: list[float]
    accuracy: list[float]

    def to_dict(self, max_points: int = 101) -> dict:
        """JSON-serialisable form with at most ``max_points`` points (evenly picked, the last one kept)."""
        n = len(self.thresholds)
        idx = sorted(set(np.linspace(0, n - 1, min(n, max_points)).round().astype(int).tolist())) if n else []
        return {k: [getattr(self, k)[i] for i in idx] for k in ("thresholds", "coverage", "accuracy")}


def _np(x: Any) -> np.ndarray:
    if isinstance(x, Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64).reshape(-1)


MAX_BINS = 50  # a reliability diagram's bins (the Explain page's bound too): each bin is a bar and a list entry


def reliability(confidence: Any, correct: Any, bins: int = 15) -> Reliability:
    """Reliability bins and ECE of predictions with ``confidence`` in [0, 1] and whether each was ``correct``.

    Raises:
        ExplainError: no samples, lengths that differ, or bins outside 1..:data:`MAX_BINS`.
    """
    conf, ok = _np(confidence), _np(correct)
    if len(conf) == 0 or len(conf) != len(ok) or not 1 <= int(bins) <= MAX_BINS:
        raise ExplainError(f"reliability needs as many confidences as outcomes (and at least one) and 1 to "
                           f"{MAX_BINS} bins; received: {len(conf)} confidences, {len(ok)} outcomes, bins={bins}. "
                           "Fix: use 15 bins (the default)")
    bins = int(bins)
    which = np.clip(np.ceil(conf * bins).astype(np.int64) - 1, 0, bins - 1)  # (lo, hi]; 0 in the first bin
    counts = np.bincount(which, minlength=bins)
    acc_sum = np.bincount(which, weights=ok, minlength=bins)
    conf_sum = np.bincount(which, weights=conf, minlength=bins)
    nz = counts > 0
    ece = float(np.abs(acc_sum[nz] - conf_sum[nz]).sum() / len(conf))  # sum_b n_b/N |acc_b - conf_b|
    return Reliability(edges=np.linspace(0, 1, bins + 1).tolist(), counts=counts.tolist(),
                       accuracy=[float(a / c) if c else None for a, c in zip(acc_sum, counts)],
                       confidence=[float(s / c) if c else None for s, c in zip(conf_sum, counts)],
                       ece=ece, n=len(conf))


def _nll(logits: Tensor, y: Tensor) -> Tensor:
    if logits.shape[1] == 1:  # one binary logit
        return torch.nn.functional.binary_cross_entropy_with_logits(logits[:, 0], y.float())
    return torch.nn.functional.cross_entropy(logits, y.long())


def fit_temperature(logits: Tensor, y: Tensor, *, max_iter: int = 200) -> float:
    """The temperature minimising the NLL of ``logits / T`` for labels ``y`` (LBFGS over log T).

    Args:
        logits: (N, C) class logits, or (N, 1) one binary logit; ``y``: (N,) class ids (0/1 for binary).

    >>> z = torch.tensor([[4.0, 0.0], [4.0, 0.0], [0.0, 4.0], [0.0, 4.0]])
    >>> round(fit_temperature(z, torch.tensor([0, 1, 1, 1])), 2) > 1  # one confident mistake: soften
    True
    """
    logits = logits.detach().float().reshape(len(logits), -1).cpu()
    y = y.detach().reshape(-1).cpu()
    log_t = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        opt.zero_grad()
        loss = _nll(logits / log_t.exp(), y)
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    t = float(log_t.detach().exp())
    return t if math.isfinite(t) and t > 0 else 1.0


def coverage_curve(confidence: Any, correct: Any) -> CoverageCurve:
    """Accuracy and coverage at every distinct confidence taken as threshold (ties kept together)."""
    conf, ok = _np(confidence), _np(correct)
    if len(conf) == 0 or len(conf) != len(ok):
        raise ExplainError(f"a coverage curve needs as many confidences as outcomes; received {len(conf)} and {len(ok)}")
    order = np.argsort(-conf, kind="stable")
    c, k = conf[order], ok[order]
    last = np.flatnonzero(np.r_[c[1:] != c[:-1], True])  # the last index of each group of equal confidences
    kept = last + 1
    return CoverageCurve(thresholds=c[last].tolist(), coverage=(kept / len(c)).tolist(),
                         accuracy=(np.cumsum(k)[last] / kept).tolist())


def coverage_at(curve: CoverageCurve, target: float) -> tuple[float, float | None]:
    """``(coverage, threshold)``: the largest coverage whose accuracy is at least ``target``, and the
    confidence threshold giving it; ``(0.0, None)`` when no threshold reaches the target."""
    best = (0.0, None)
    for t, cov, acc in zip(curve.thresholds, curve.coverage, curve.accuracy):
        if acc >= target - 1e-12 and cov > best[0]:
            best = (cov, t)
    return best


@dataclass
class CalibrationReport:
    """What :func:`calibrate_run` measured (stored as the run's ``calibration.json``)."""

    run_id: str | None
    task: str
    temperature: float
    fit_split: str
    split: str
    bins: int
    ece_before: float
    ece_after: float
    nll_before: float
    nll_after: float
    accuracy: float
    target_accuracy: float
    coverage_at_target: float
    threshold_at_target: float | None
    coverage_at_target_uncalibrated: float
    reliability_before: dict
    reliability_after: dict
    coverage_curve: dict

    def to_dict(self) -> dict:
        """JSON-serialisable form."""
        return asdict(self)


def calibration_report(logits_fit: Tensor, y_fit: Tensor, logits: Tensor, y: Tensor, task: str, *,
                       bins: int = 15, target_accuracy: float = 0.95, run_id: str | None = None,
                       fit_split: str = "val", split: str = "test") -> CalibrationReport:
    """Temperature fitted on (``logits_fit``, ``y_fit``); ECE, NLL and coverage before/after on (``logits``, ``y``).

    Raises:
        ExplainError: a task that is not classification, or a target accuracy outside (0, 1].
    """
    if task not in CLASSIFICATION:
        raise ExplainError(f"calibration needs a classification run; received task {task!r}. Fix: pick a "
                           "multiclass or binary run")
    if not (0 < float(target_accuracy) <= 1):
        raise ExplainError(f"the target accuracy is a fraction in (0, 1]; received {target_accuracy!r}. Fix: e.g. 0.95")
    t = fit_temperature(logits_fit, y_fit)
    logits, y = logits.detach().float().cpu(), y.detach().reshape(-1).cpu()
    before, after = Prediction(task, logits), Prediction(task, logits / t)
    correct = (before.labels == y).numpy()  # T > 0 keeps every predicted class
    rel_b, rel_a = reliability(before.confidence, correct, bins), reliability(after.confidence, correct, bins)
    curve = coverage_curve(after.confidence, correct)
    cov, thr = coverage_at(curve, target_accuracy)
    cov_raw, _ = coverage_at(coverage_curve(before.confidence, correct), target_accuracy)
    return CalibrationReport(run_id=run_id, task=task, temperature=t, fit_split=fit_split, split=split, bins=int(bins),
                             ece_before=rel_b.ece, ece_after=rel_a.ece, nll_before=float(_nll(logits, y)),
                             nll_after=float(_nll(logits / t, y)), accuracy=float(correct.mean()),
                             target_accuracy=float(target_accuracy), coverage_at_target=cov, threshold_at_target=thr,
                             coverage_at_target_uncalibrated=cov_raw, reliability_before=rel_b.to_dict(),
                             reliability_after=rel_a.to_dict(), coverage_curve=curve.to_dict())


def calibrate_model(model: Any, ds: Any, *, target_accuracy: float = 0.95, bins: int = 15,
                    run_id: str | None = None) -> CalibrationReport:
    """Calibrate ``model`` on its dataset ``ds``: temperature on the validation split, ECE and coverage on test.

    Raises:
        ExplainError: not a classification dataset, or a bad target accuracy.
    """
    task = ds.info.task
    if task not in CLASSIFICATION:
        raise ExplainError(f"calibration needs a classification model; received task {task!r}. Fix: pick a "
                           "multiclass or binary run")
    val = predict(model, ds.val.X, task).outputs  # each batch runs on the model's device
    test = predict(model, ds.test.X, task).outputs
    return calibration_report(val, ds.val.y, test, ds.test.y, task, bins=bins, target_accuracy=target_accuracy,
                              run_id=run_id)


def calibrate_run(store: Any, run_id: str, *, target_accuracy: float = 0.95, bins: int = 15,
                  save: bool = True) -> CalibrationReport:
    """Calibrate a finished run: temperature on its validation split, ECE and coverage on its test split.

    The model and dataset come from :func:`builder.runs.pipeline.open_run`; predictions from
    :func:`builder.data.predict`. With ``save`` the report is written to the run folder's ``calibration.json``
    (read back with :meth:`RunFolder.read_calibration`; exports may then divide the logits by its temperature,
    :func:`stored_temperature`). Example (a run trained first)::

        # not a doctest (needs a trained run): run by tests/interpret/test_calibration.py
        rep = calibrate_run(store, run_id, target_accuracy=0.95)
        rep.ece_before, rep.ece_after, rep.temperature, rep.coverage_at_target

    Raises:
        RunStoreError, BudgetError: as open_run. ExplainError: not a classification run.
    """
    from builder.runs.pipeline import open_run  # lazy: heavy (safetensors)

    run = store.get(run_id)
    if save:  # keeping writes into the run: refused before the work for a reader who does not control it
        keeping(store, run["id"], "calibration")
    model, ds = open_run(store, run)
    rep = calibrate_model(model, ds, target_accuracy=target_accuracy, bins=bins, run_id=run["id"])
    if save:
        keep_report(store, rep, "calibration")  # the run folder's calibration.json
    return rep


def stored_temperature(store: Any, run_id: str) -> float:
    """The temperature kept with a run by :func:`calibrate_run` (``calibration.json``).

    Raises:
        ExplainError: the run was never calibrated (or its file cannot be read).
    """
    rep = store.folder(store.get(run_id)["id"]).read_calibration()
    t = (rep or {}).get("temperature")
    if not isinstance(t, (int, float)) or not (math.isfinite(t) and t > 0):
        raise ExplainError(f"exporting with the stored temperature needs a calibrated run; run {run_id} has no "
                           "calibration.json. Fix: run `layerlab calibrate RUN` first (or Explain › Calibration)")
    return float(t)


def coverage_figure(curve: CoverageCurve | dict, target: float | None = None, *, height: int = 320):
    """Accuracy against coverage (share of samples kept by a confidence threshold); with ``target``, the
    target accuracy as a dashed line and the largest coverage reaching it as a marker."""
    import plotly.graph_objects as go  # lazy: heavy (plotly)

    c = curve if isinstance(curve, CoverageCurve) else CoverageCurve(**{k: list(curve[k]) for k in
                                                                        ("thresholds", "coverage", "accuracy")})
    fig = go.Figure(go.Scatter(x=c.coverage, y=c.accuracy, mode="lines", name="accuracy", customdata=c.thresholds,
                               line=dict(color="#6366f1"),
                               hovertemplate="coverage %{x:.1%}<br>accuracy %{y:.3f}<br>confidence >= "
                                             "%{customdata:.3f}<extra></extra>"))
    if target is not None:
        cov, thr = coverage_at(c, target)
        fig.add_hline(y=target, line=dict(color="#94a3b8", dash="dash"))
        if thr is not None:
            fig.add_trace(go.Scatter(x=[cov], y=[target], mode="markers", name="automated",
                                     marker=dict(size=11, color="#10b981"),
                                     hovertemplate=f"{cov:.1%} automated at confidence >= {thr:.3f}<extra></extra>"))
    lo = min(c.accuracy + ([target] if target is not None else [])) if c.accuracy else 0.0
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=40, b=10), showlegend=False,
                      title="Accuracy vs coverage", xaxis=dict(range=[0, 1.02], title="coverage (share kept)",
                                                              tickformat=".0%"),
                      yaxis=dict(range=[max(0.0, lo - 0.05), 1.01], title="accuracy of the kept"))
    return fig


__all__ = ["Reliability", "CoverageCurve", "CalibrationReport", "reliability", "MAX_BINS", "fit_temperature", "coverage_curve",
           "coverage_at", "calibration_report", "calibrate_model", "calibrate_run",
           "stored_temperature", "coverage_figure"]
