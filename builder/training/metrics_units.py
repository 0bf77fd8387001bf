"""A metric in the target's own units: the trainer measures a regression's or a forecast's errors on
standardised targets (``dataset_info``'s ``target_mean``/``target_std``, :mod:`builder.data.splits`,
:mod:`builder.data.series`); tables, charts, results and model cards show them multiplied back
(:func:`metric_in_units`, the one rule)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

from builder.data.splits import named_targets
from builder.graph.report import human_number

LOWER_IS_BETTER = ("loss", "mse", "rmse", "mae", "perplexity")  # the figures that rank a smaller value first


def scored_metrics(task: str) -> tuple[str, ...]:
    """The figures :func:`builder.training.metrics.evaluate` gives on a test split of ``task`` that can rank runs
    (a class's leaderboard), the task's usual one first.

    >>> scored_metrics("binary"), scored_metrics("next_token"), scored_metrics("forecast")
    (('accuracy', 'macro_f1', 'loss'), ('perplexity', 'loss'), ('mae', 'rmse', 'mse', 'r2', 'loss'))
    """
    if task in ("multiclass", "binary"):
        return "accuracy", "macro_f1", "loss"
    if task == "next_token":
        return "perplexity", "loss"
    if task == "forecast":
        return "mae", "rmse", "mse", "r2", "loss"
    return "r2", "mse", "rmse", "mae", "loss"  # regression; reconstruction against the input


SCORES = frozenset({"macro_f1", "f1", "r2"})  # figures of at most 1 (not percentages): shown with fixed decimals
SCORED = ("accuracy", "macro_f1", "r2", "mse", "rmse", "mae", "perplexity", "loss")  # every task's, together
SCORE_DIGITS = 3  # a score's decimals (F1, R²), as the class leaderboard and the per-class table show them


def figure_text(v: Any, pct: bool = False, score: bool = False) -> str:
    """A figure with 4 significant digits, from 10,000 up a whole number (``30,411``, not ``3.041e+04``: an
    error in a price's units), or a percentage; a ``score`` (F1, R²: at most 1) with :data:`SCORE_DIGITS` decimals,
    so a perfect one reads ``1.000`` beside ``0.338`` (Test results read "Macro F1 1" beside "Loss 0.0113"); ``—``
    when missing or not finite.

    >>> figure_text(1.0, score=True), figure_text(0.33823, score=True), figure_text(-0.04222, score=True)
    ('1.000', '0.338', '-0.042')
    >>> figure_text(30411.2), figure_text(0.000123456), figure_text(0.8753, pct=True), figure_text(float("nan"))
    ('30,411', '0.0001235', '87.5%', '—')
    >>> import numpy as np
    >>> figure_text(np.float32(0.25)), figure_text(np.int64(7)), figure_text(None), figure_text("n/a"), figure_text(True)
    ('0.25', '7', '—', '—', '—')
    """
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):  # numpy's scalars are Real
        return "—"
    if score:
        return f"{float(v) + 0.0:.{SCORE_DIGITS}f}"
    return f"{v:.1%}" if pct else human_number(v)


def metric_text(name: str, v: Any) -> str:
    """Metric ``name``'s value as every page and label writes it (the one rule, :func:`figure_text`): accuracy as a
    percentage, a score (:data:`SCORES`: F1, R²) with :data:`SCORE_DIGITS` decimals, any other with 4 significant
    digits. The class page wrote 3 decimals for every metric ("accuracy 0.875", "mae 5.000"), the Runs table and
    the run pickers 4 and 3 ("accuracy 0.8750", "macro_f1 0.8000"), beside the Train page's "87.5%" and "5".

    >>> metric_text("accuracy", 0.875), metric_text("macro_f1", 1.0), metric_text("mae", 5.0), metric_text("loss", 0.25)
    ('87.5%', '1.000', '5', '0.25')
    """
    return figure_text(v, pct=name == "accuracy", score=name in SCORES)


TRAIN_METRIC_SAMPLES = 512  # the train metric is measured at epoch end on this many training samples


def curves_note(metric_name: str | None) -> str | None:
    """What a run's charts measure at different moments, where the two invite a comparison: a language model's
    perplexity is exp of its loss per token, but the train loss is the mean over each epoch's steps, taken while
    the weights changed, and the train perplexity is measured after the epoch on up to
    :data:`TRAIN_METRIC_SAMPLES` training samples (the Train page showed both without saying so: exp of the train
    loss read 40 beside a train perplexity of 25). None for other metrics.

    >>> curves_note("perplexity").startswith("The train loss is the mean over each epoch's steps")
    True
    >>> curves_note("accuracy") is None
    True
    """
    if metric_name != "perplexity":
        return None
    return ("The train loss is the mean over each epoch's steps, taken while the weights changed; the train "
            f"perplexity is measured after the epoch, on up to {TRAIN_METRIC_SAMPLES} training samples. So exp(train "
            "loss) is not the train perplexity; the validation figures are both measured after the epoch.")


# metrics in the target's units to the power given: a scaled target (a forecast's series, a regression's target)
# makes them read in standard deviations unless multiplied back
_TARGET_POWER = {"mae": 1, "rmse": 1, "mse": 2}


_LABELS = {"accuracy": "Accuracy", "macro_f1": "Macro F1", "f1": "F1", "perplexity": "Perplexity", "r2": "R²",
           "mse": "MSE", "rmse": "RMSE", "mae": "MAE", "loss": "Loss"}


def metric_label(name: str, *, in_text: bool = False) -> str:
    """A metric's name as a title, a chart's axis or a figure's label shows it (the one home of these names);
    ``in_text``: inside a sentence, a word's first letter small (an abbreviation as it is).

    >>> metric_label("r2"), metric_label("macro_f1"), metric_label("accuracy"), metric_label("psnr"), metric_label("")
    ('R²', 'Macro F1', 'Accuracy', 'Psnr', 'Metric')
    >>> [metric_label(n, in_text=True) for n in ("accuracy", "macro_f1", "mae", "r2", "loss")]
    ['accuracy', 'macro F1', 'MAE', 'R²', 'loss']
    """
    name = str(name or "")
    label = _LABELS.get(name) or (name[:1].upper() + name[1:] if name else "Metric")
    return label[:1].lower() + label[1:] if in_text and label[1:2].islower() else label


def has_units(name: str) -> bool:
    """Whether metric ``name`` is measured in the target's units (an error: mae, rmse, mse), so scaled targets
    change it.

    >>> has_units("mae"), has_units("accuracy")
    (True, False)
    """
    return name in _TARGET_POWER


def metric_in_units(name: str, value: float, dataset_info: Mapping[str, Any] | None) -> tuple[float, bool]:
    """``value`` of metric ``name`` in the target's own units: ``(value, scaled)``. The trainer measures on scaled
    targets (``dataset_info``'s ``target_std``): a forecaster's best MAE showed as 1.2496 in the Runs table for
    sunspots that vary by ~34 (42.7 in sunspots). ``scaled`` is True when the value stays in standard deviations
    (several targets, each scaled by its own deviation).

    >>> metric_in_units("mae", 1.25, {"target_std": [34.0, 34.0]}), metric_in_units("accuracy", 0.9, {"target_std": [2.0]})
    ((42.5, False), (0.9, False))
    >>> metric_in_units("mse", 1.0, {"target_std": [2.0, 3.0]})
    (1.0, True)
    """
    power = _TARGET_POWER.get(name)
    std = (dataset_info or {}).get("target_std") if power else None
    if not std:
        return value, False
    if len({round(float(x), 12) for x in std}) != 1:
        return value, True
    return value * float(std[0]) ** power, False


def metric_units(name: str, dataset_info: Mapping[str, Any] | None) -> tuple[str, str | None]:
    """What a test figure of metric ``name`` is measured in, as a label's suffix and a help line: an error of a
    scaled target given back in the target's own units says which (``" (price)"``, MSE ``" (price²)"``); an error
    left in standard deviations says ``" (scaled)"``; the loss of a scaled target, which training measures on the
    standardised target, says so too. The Train page showed "MSE 1.794" beside "Loss 0.007947" for the same
    regression with no word of either's units (the loss is that MSE in standard deviations).

    >>> info = {"target_std": [5.2], "options": {"target": "price"}, "task": "regression"}
    >>> metric_units("mae", info)[0], metric_units("mse", info)[0], metric_units("loss", info)[0]
    (' (price)', ' (price²)', ' (scaled)')
    >>> metric_units("mse", {"target_std": [2.0, 3.0]})[0], metric_units("accuracy", info), metric_units("loss", {})
    (' (scaled)', ('', None), ('', None))
    >>> metric_units("mae", {"target_std": [34.0], "task": "forecast"})[0]
    ' (target units)'
    """
    std = (dataset_info or {}).get("target_std")
    if not std:
        return "", None
    if name == "loss":
        return " (scaled)", ("Measured as training measures it: on the target standardised by the training split's "
                             "mean and standard deviation (the errors beside it are in the target's own units)")
    power = _TARGET_POWER.get(name)
    if power is None:
        return "", None
    if metric_in_units(name, 1.0, dataset_info)[1]:
        return " (scaled)", "In standard deviations of each target (several targets, each scaled by its own)"
    named = named_targets((dataset_info or {}).get("options"), (dataset_info or {}).get("task"))
    unit = named[0] if len(named) == 1 else "target units"  # a CSV's target column, a series' one column
    shown = unit + ("²" if power == 2 else "")
    return f" ({shown})", f"In the target's own units ({shown})"


__all__ = ["has_units", "metric_label", "metric_text", "figure_text", "SCORE_DIGITS", "TRAIN_METRIC_SAMPLES", "curves_note",
           "metric_in_units", "metric_units", "scored_metrics", "LOWER_IS_BETTER", "SCORED", "SCORES"]
