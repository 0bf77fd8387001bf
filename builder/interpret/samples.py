"""Which samples to explain: by index, by true class, correct predictions, mistakes, confident mistakes.

Example::

    >>> import torch
    >>> pick_from_predictions(torch.tensor([0, 1, 1]), torch.tensor([.9, .6, .8]), torch.tensor([0, 0, 0]),
    ...                       "confident_mistakes")
    [2, 1]
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from builder.errors import ExplainError
from builder.interpret.model import predict

PICKS = ("index", "class", "correct", "incorrect", "confident_mistakes")
PICK_LABELS = {"index": "By index", "class": "By true class", "correct": "Correct predictions",
               "incorrect": "Mistakes", "confident_mistakes": "Most confident mistakes"}
NONE_FOUND = {"class": "samples of this class", "correct": "correct predictions", "incorrect": "mistakes",
              "confident_mistakes": "mistakes"}  # "No {...} in the split"


def pick_from_predictions(pred: Tensor, conf: Tensor, labels: Tensor, by: str, *, label: int | None = None,
                          k: int = 8) -> list[int]:
    """Indices picked by ``by`` (not ``index``) from predictions already made: ``pred`` (N,) classes,
    ``conf`` (N,) their probability, ``labels`` (N,) true classes; at most ``k``.

    Raises:
        ExplainError: unknown ``by``, or ``class`` without ``label``.
    """
    if by not in PICKS or by == "index":
        raise ExplainError(f"by: unknown picker {by!r}; expected one of {', '.join(PICKS)}")
    y = torch.as_tensor(labels).reshape(-1).cpu()
    if by == "class":
        if label is None:
            raise ExplainError("by='class' needs label=<class index>")
        return torch.nonzero(y == label).flatten()[:k].tolist()
    ok = pred.cpu() == y.long()
    if by == "correct":
        return torch.nonzero(ok).flatten()[:k].tolist()
    wrong = torch.nonzero(~ok).flatten()
    if by == "incorrect":
        return wrong[:k].tolist()
    order = conf.cpu()[wrong].argsort(descending=True, stable=True)
    return wrong[order][:k].tolist()


def pick_samples(model: nn.Module, inputs: Tensor, labels: Tensor | None = None, by: str = "index", *,
                 index: int | Sequence[int] = 0, label: int | None = None, k: int = 8,
                 batch_size: int = 256) -> list[int]:
    """Indices of samples to explain.

    Args:
        by: ``index`` (the given index or indices), ``class`` (true label == ``label``), ``correct``,
            ``incorrect``, ``confident_mistakes`` (wrong predictions, most confident first).
        k: at most this many indices (not for ``index``).
    Raises:
        ExplainError: unknown ``by``, index out of range, labels missing.
    """
    n = len(inputs)
    if by == "index":
        idx = [index] if isinstance(index, int) else list(index)
        bad = [i for i in idx if not -n <= int(i) < n]
        if bad:
            raise ExplainError(f"index: must be in [0, {n - 1}]; received {bad}")
        return [int(i) % n for i in idx]
    if by not in PICKS:
        raise ExplainError(f"by: unknown picker {by!r}; expected one of {', '.join(PICKS)}")
    if labels is None:
        raise ExplainError(f"by={by!r} needs the labels of the samples")
    if by == "class":
        return pick_from_predictions(torch.zeros(0), torch.zeros(0), labels, by, label=label, k=k)
    pred, conf = predict(model, inputs, batch_size)
    return pick_from_predictions(pred, conf, labels, by, label=label, k=k)


__all__ = ["PICKS", "PICK_LABELS", "NONE_FOUND", "pick_samples", "pick_from_predictions"]
