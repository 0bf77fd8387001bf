"""Metrics per task: the training loss, classification and regression metrics, and :func:`evaluate`.

Classification (``multiclass``, ``binary``) is scored by accuracy, macro F1, a confusion matrix and per-class
precision/recall/F1; regression by MSE, RMSE, MAE and R²; reconstruction like regression against the input;
``forecast`` (windows of a series) like regression, its live metric MAE; ``next_token`` (a language model's
(B, T, vocab) logits against the inputs shifted by one) by cross-entropy per token and perplexity.
The trainer reads :func:`quick_metric` at each epoch end and :func:`evaluate` for a finished run's test metrics. Example::

    >>> import torch
    >>> classification_metrics(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 0]), 2)["accuracy"]
    0.6666666666666666
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from builder.data.predictions import first_output, forward_all, mean_token_loss, model_device  # noqa: F401  (their home; kept here for library users)
from builder.errors import TrainingError
from builder.training.metrics_units import TRAIN_METRIC_SAMPLES  # noqa: F401  (its home: metrics_units)


def loss_kind(task: str, out_width: int) -> str:
    """``ce`` (cross-entropy), ``bce`` (one logit, binary), ``tok`` (cross-entropy per token, ``next_token``) or
    ``reg`` (regression, reconstruction, forecast)."""
    if task == "next_token":
        return "tok"
    if task == "multiclass":
        return "ce"
    if task == "binary":
        return "bce" if out_width == 1 else "ce"
    return "reg"


def regression_loss(name: str) -> Callable:
    """The regression loss function named by ``TrainConfig.loss`` (``auto`` is MSE)."""
    return {"auto": F.mse_loss, "mse": F.mse_loss, "l1": F.l1_loss, "huber": F.huber_loss}[name]


def make_loss(kind: str, task: str, loss: str = "auto") -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None],
                                                                   torch.Tensor]:
    """The batch loss ``f(out, xb, yb)`` (mean over the batch) for a :func:`loss_kind`.

    ``yb`` is the prepared target: class ids for ``ce``, a float vector for ``bce``, unused (None) for
    reconstruction, whose target is the input ``xb``.
    """
    if kind == "ce":
        return lambda out, xb, yb: F.cross_entropy(out, yb)
    if kind == "tok":  # (B, T, V) logits, (B, T) next tokens
        return lambda out, xb, yb: F.cross_entropy(out.reshape(-1, out.shape[-1]), yb.reshape(-1))
    if kind == "bce":
        return lambda out, xb, yb: F.binary_cross_entropy_with_logits(out.reshape(-1), yb)
    fn = regression_loss(loss)
    if task == "reconstruction":
        return lambda out, xb, yb: fn(out.reshape(len(xb), -1), xb.reshape(len(xb), -1))
    return lambda out, xb, yb: fn(out.reshape(yb.shape), yb)


def compute_loss(out: torch.Tensor, x: torch.Tensor, y: torch.Tensor, task: str, loss: str = "auto") -> torch.Tensor:
    """The training loss for one batch (mean over the batch); targets are cast to the output's dtype."""
    kind = loss_kind(task, out.shape[-1] if out.dim() > 1 else 1)
    if kind == "bce":
        y = y.reshape(-1).to(out.dtype)
    elif task == "reconstruction":
        x = x.to(out.dtype)
    return make_loss(kind, task, loss)(out, x, y)


def _predict(out: torch.Tensor, task: str) -> torch.Tensor:
    if out.dim() == 1 or out.shape[-1] == 1:
        return (out.reshape(-1) > 0).long()
    return out.argmax(-1)


def classification_metrics(pred: torch.Tensor, y: torch.Tensor, num_classes: int,
                           class_names: list[str] | None = None) -> dict:
    """Accuracy, macro F1, confusion matrix (rows true, columns predicted), per-class P/R/F1/support."""
    pred, y = pred.reshape(-1).long().cpu(), y.reshape(-1).long().cpu()
    c = num_classes
    cm = torch.bincount(y * c + pred, minlength=c * c).reshape(c, c).double()
    tp = cm.diag()
    support, predicted = cm.sum(1), cm.sum(0)
    precision = torch.where(predicted > 0, tp / predicted.clamp(min=1), torch.zeros_like(tp))
    recall = torch.where(support > 0, tp / support.clamp(min=1), torch.zeros_like(tp))
    f1 = torch.where(precision + recall > 0, 2 * precision * recall / (precision + recall).clamp(min=1e-12),
                     torch.zeros_like(tp))
    present = (support > 0) | (predicted > 0)
    names = class_names or [str(i) for i in range(c)]
    return {
        "accuracy": float(tp.sum() / max(len(y), 1)),
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "confusion_matrix": cm.long().tolist(),
        "class_names": list(names),
        "per_class": {names[i]: {"precision": float(precision[i]), "recall": float(recall[i]),
                                 "f1": float(f1[i]), "support": int(support[i])} for i in range(c)},
    }


def regression_metrics(out: torch.Tensor, y: torch.Tensor) -> dict:
    """MSE, MAE and R² (variance-weighted over target columns, as sklearn's ``variance_weighted``)."""
    out, y = out.reshape(y.shape).double().cpu(), y.double().cpu()
    y2 = y.reshape(len(y), -1)
    o2 = out.reshape(len(y), -1)
    ss_res = ((y2 - o2) ** 2).sum(0)
    ss_tot = ((y2 - y2.mean(0)) ** 2).sum(0)
    r2 = 1 - ss_res.sum() / ss_tot.sum() if ss_tot.sum() > 0 else torch.zeros(())
    mse = float(((y2 - o2) ** 2).mean())
    return {"mse": mse, "rmse": mse ** 0.5, "mae": float((y2 - o2).abs().mean()), "r2": float(r2)}


def evaluate(model: torch.nn.Module, X: torch.Tensor, y: torch.Tensor, task: str, *,
             class_names: list[str] | None = None, num_classes: int | None = None, loss: str = "auto",
             batch_size: int = 1024) -> dict:
    """Evaluate a model on one split.

    Returns:
        Classification: ``loss, accuracy, macro_f1, confusion_matrix, per_class, class_names``.
        Regression: ``loss, mse, mae, r2``. Reconstruction: ``loss, mse, mae, r2`` against the input.
    """
    if task == "next_token":  # logits of T × vocabulary per sample: reduced batch by batch, never kept whole
        if len(X) == 0:
            raise TrainingError("cannot evaluate on an empty split")
        mean = mean_token_loss(model, X, y, batch_size=batch_size)
        return {"loss": mean, "n": int(len(X)), "perplexity": float(torch.exp(torch.tensor(mean))),
                "tokens": int(y.numel())}
    out = forward_all(model, X, batch_size).float()
    if len(out) == 0:
        raise TrainingError("cannot evaluate on an empty split")
    target = X if task == "reconstruction" else y
    res = {"loss": float(compute_loss(out, X, target, task, loss)), "n": int(len(X))}
    if task in ("multiclass", "binary"):
        nc = num_classes or (len(class_names) if class_names else max(int(y.max()) + 1, out.shape[-1], 2))
        res.update(classification_metrics(_predict(out, task), y, nc, class_names))
    elif task == "reconstruction":
        res.update(regression_metrics(out.reshape(len(X), -1), X.reshape(len(X), -1).float()))
    else:
        res.update(regression_metrics(out, y))
    return res


def metric_name(task: str, metric: str) -> str:
    """The metric ``TrainConfig.metric`` means for ``task`` (``auto``: accuracy, r2, mae for a forecast,
    perplexity for next_token)."""
    if metric != "auto":
        return metric
    if task in _AUTO:
        return _AUTO[task]
    return "accuracy" if task in ("multiclass", "binary") else "r2"


_AUTO = {"next_token": "perplexity", "forecast": "mae"}


def quick_metric(out: torch.Tensor, x: torch.Tensor, y: torch.Tensor, task: str, name: str,
                  num_classes: int) -> float:
    """One scalar metric on the device (one host read)."""
    if name in ("accuracy", "f1"):
        if task not in ("multiclass", "binary"):
            raise TrainingError(f"metric {name!r} needs a classification task; task is {task!r}")
        pred = _predict(out, task)
        if name == "accuracy":
            return float((pred == y.reshape(-1)).float().mean())
        return classification_metrics(pred, y, num_classes)["macro_f1"]
    if task in ("multiclass", "binary"):
        raise TrainingError(f"metric {name!r} needs a regression task; task is {task!r}")
    if name == "perplexity" or task == "next_token":
        if task != "next_token" or name != "perplexity":
            raise TrainingError(f"metric perplexity goes with task next_token; received: metric {name!r}, task "
                                f"{task!r}. Fix: metric auto")
        return float(torch.exp(F.cross_entropy(out.reshape(-1, out.shape[-1]).float(), y.reshape(-1))))
    target = x if task == "reconstruction" else y
    if name == "mae":
        return float((out.reshape(len(target), -1) - target.reshape(len(target), -1).to(out.dtype)).abs().mean())
    t = target.reshape(len(target), -1).to(out.dtype)
    o = out.reshape(len(target), -1)
    ss_res = ((t - o) ** 2).sum(0)
    ss_tot = ((t - t.mean(0)) ** 2).sum(0)
    return float(1 - ss_res.sum() / ss_tot.sum().clamp(min=1e-12))


__all__ = ["evaluate", "classification_metrics", "regression_metrics", "compute_loss", "make_loss", "metric_name",
           "quick_metric", "forward_all", "first_output", "loss_kind", "regression_loss", "TRAIN_METRIC_SAMPLES"]
