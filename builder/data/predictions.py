"""A model's predictions read in a dataset's target space: classes with their probability, or values.

This lives in the data stage because the data stage defines what a task's targets are (:class:`DatasetInfo`
``task`` and ``out_size``: classes for multiclass, one logit (or two) for binary, values for regression and
reconstruction); a prediction is the inverse mapping, from a model's outputs back to those targets. It needs
torch and the task, nothing of training, so every later stage (the run summaries, attributions, the decision
boundary, the Explain page) reads predictions through :func:`predict`. Example::

    >>> import torch
    >>> p = predict(torch.nn.Linear(3, 1), torch.zeros(4, 3), "binary")
    >>> p.labels.shape, bool(((p.confidence >= 0.5) & (p.confidence <= 1)).all())
    (torch.Size([4]), True)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import torch
from torch import Tensor

from builder.errors import TrainingError

CLASSIFICATION = ("multiclass", "binary")


@dataclass
class Prediction:
    """The outputs of a model on N samples, read for a task.

    ``outputs`` (N, K) are the raw outputs per sample (flattened). For classification, one output is a binary
    logit (class 1 when sigmoid > 0.5) and several are class logits (softmax); for regression and
    reconstruction ``labels`` are zeros and ``confidence`` is the first predicted value.
    """

    task: str
    outputs: Tensor  # (N, K)

    @property
    def classification(self) -> bool:
        """Whether the task predicts classes."""
        return self.task in CLASSIFICATION

    @property
    def single_logit(self) -> bool:
        """Whether the model gives one output per sample (a binary logit, or one value)."""
        return self.outputs.shape[1] == 1

    @property
    def values(self) -> Tensor:
        """The predicted values (N, K) (regression and reconstruction: the outputs)."""
        return self.outputs

    @cached_property
    def _label_conf(self) -> tuple[Tensor, Tensor]:
        out = self.outputs
        if not self.classification:
            return torch.zeros(len(out), dtype=torch.long, device=out.device), out[:, 0]
        if out.shape[1] > 1:
            conf, label = out.softmax(1).max(1)
            return label, conf
        p1 = torch.sigmoid(out[:, 0])  # one logit: binary with BCE, class 1 when sigmoid > 0.5
        label = (p1 > 0.5).long()
        return label, torch.where(label.bool(), p1, 1 - p1)

    @property
    def labels(self) -> Tensor:
        """The predicted class per sample (N,) int64; zeros for regression and reconstruction."""
        return self._label_conf[0]

    @property
    def confidence(self) -> Tensor:
        """The probability of the predicted class (N,); the first predicted value for regression."""
        return self._label_conf[1]

    def probabilities(self) -> Tensor:
        """Class probabilities (N, C): softmax of the logits, or ``[1 - p, p]`` for one logit."""
        out = self.outputs
        if out.shape[1] == 1:
            p = torch.sigmoid(out[:, 0])
            return torch.stack([1 - p, p], 1)
        return out.softmax(1)

    def positive(self) -> Tensor:
        """P(class 1) per sample (N,) for a binary model (one logit, or two: softmax(l)[1] = sigmoid(l1 - l0)).

        Raises:
            ValueError: a model with more than two outputs.
        """
        out = self.outputs
        if out.shape[1] == 1:
            return torch.sigmoid(out[:, 0])
        if out.shape[1] == 2:
            return torch.sigmoid(out[:, 1] - out[:, 0])
        raise ValueError(f"P(class 1) needs one or two outputs per sample; received {out.shape[1]}")

    def runners_up(self, i: int, k: int = 2) -> list[tuple[int, float]]:
        """The ``k`` classes after the predicted one for sample ``i``, with their softmax probability.

        Empty for models with fewer than three outputs (a binary model has no runner-up worth showing).
        """
        out = self.outputs[i]
        if out.numel() < 3:
            return []
        p, idx = out.softmax(0).topk(min(k + 1, out.numel()))
        return [(int(j), float(q)) for j, q in zip(idx[1:], p[1:])]

    def pair(self) -> tuple[Tensor, Tensor]:
        """``(labels, confidence)``: the (pred, conf) pair the run summaries and sample pickers use."""
        return self.labels, self.confidence


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of a model's first parameter (or buffer); CPU for a model with neither."""
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.device("cpu")


def first_output(out: Any) -> Tensor:
    """The tensor a model returned (the first of a tuple). Raises TrainingError for anything else.

    >>> first_output((torch.zeros(2, 3), "extra")).shape
    torch.Size([2, 3])
    >>> first_output({"logits": torch.zeros(2, 3)})
    Traceback (most recent call last):
    builder.errors.TrainingError: the model returned dict, not a tensor; training, predictions and explanations need it to return one tensor (or a tuple whose first item is one)
    """
    if isinstance(out, (tuple, list)):
        out = out[0]
    if not isinstance(out, torch.Tensor):
        raise TrainingError(f"the model returned {type(out).__name__}, not a tensor; training, predictions and "
                            "explanations need it to return one tensor (or a tuple whose first item is one)")
    return out


def forward_all(model: torch.nn.Module, X: Tensor, batch_size: int | None = 1024) -> Tensor:
    """The model's outputs on ``X`` in eval mode without gradients, in batches (``None``: one pass), training mode
    restored. Each batch goes to the model's device and its outputs come back to ``X``'s (a model trained on a
    GPU, measured on the data where it lies). The one batched forward pass of LayerLab: metrics, predictions,
    drift and calibration all run models through it.

    >>> forward_all(torch.nn.Linear(3, 2), torch.zeros(5, 3)).shape
    torch.Size([5, 2])
    """
    was = model.training
    dev = model_device(model)
    step = max(1, len(X) if batch_size is None else batch_size)
    model.eval()
    try:
        with torch.no_grad():
            outs = [first_output(model(X[i:i + step].to(dev))).to(X.device) for i in range(0, len(X), step)]
    finally:
        model.train(was)
    return torch.cat(outs) if outs else torch.empty(0)


MAX_BATCH_OUTPUT_CELLS = 1 << 24  # outputs of one reduced batch (64 MiB of float32): a language model's logits


def forward_reduced(model: torch.nn.Module, X: Tensor, reduce: Callable[[Tensor, slice], Tensor], *,
                    batch_size: int = 1024, max_cells: int = MAX_BATCH_OUTPUT_CELLS) -> Tensor:
    """:func:`forward_all` where each batch's outputs are reduced at once by ``reduce(outputs, rows)`` (``rows``:
    the batch's slice of ``X``) and only the reductions are kept, concatenated: outputs far larger than their
    inputs (a language model's T × vocabulary logits per sample) never sit whole in memory. After the first
    sample shows an output's size, a batch holds at most ``max_cells`` output values (and one sample).

    >>> m = torch.nn.Linear(3, 4)
    >>> forward_reduced(m, torch.ones(5, 3), lambda out, rows: out.sum(1), max_cells=8).shape
    torch.Size([5])
    """
    was = model.training
    dev = model_device(model)
    kept, i, step = [], 0, 1  # one sample first: its outputs' size sets the batch
    model.eval()
    try:
        with torch.no_grad():
            while i < len(X):
                rows = slice(i, min(len(X), i + step))
                out = first_output(model(X[rows].to(dev)))
                kept.append(reduce(out, rows).to(X.device))
                if i == 0:
                    per = max(1, out[:1].numel())
                    step = max(1, min(max(1, batch_size), max_cells // per))
                i = rows.stop
                del out
    finally:
        model.train(was)
    return torch.cat(kept) if kept else torch.empty(0)


def mean_token_loss(model: torch.nn.Module, X: Tensor, y: Tensor, **kw: Any) -> float:
    """A language model's mean next-token cross-entropy on ``X`` with targets ``y`` (:func:`token_losses`)."""
    return float(token_losses(model, X, y, **kw).sum() / max(1, y.numel()))


def token_losses(model: torch.nn.Module, X: Tensor, y: Tensor, **kw: Any) -> Tensor:
    """A language model's summed next-token cross-entropy per sample (N,) on ``X`` (N, T) with targets ``y``
    (N, T), batch by batch (:func:`forward_reduced`): the mean loss is ``token_losses(...).sum() / y.numel()``."""
    return forward_reduced(model, X, lambda out, rows: _token_ce(out, y[rows]).double().sum(1), **kw)


def _token_ce(out: Tensor, y: Tensor) -> Tensor:
    """Each position's next-token cross-entropy (n, T) of logits ``out`` (n, T, V) against ids ``y`` (n, T)."""
    t = y.to(out.device)
    ce = torch.nn.functional.cross_entropy(out.float().reshape(-1, out.shape[-1]), t.reshape(-1), reduction="none")
    return ce.reshape(len(t), -1)


@dataclass
class TokenPredictions:
    """A language model's predictions on N samples of T tokens, one per position, never its T × V logits: ``ids``
    (N, T) the predicted next token, ``probability`` (N, T) its softmax probability, ``loss`` (N, T) each position's
    cross-entropy against the true next token (None without targets); ``vocab_size`` V."""

    ids: Tensor
    probability: Tensor
    loss: Tensor | None
    vocab_size: int

    def nbytes(self) -> int:
        """Bytes its tensors hold."""
        return sum(t.numel() * t.element_size() for t in (self.ids, self.probability, self.loss) if t is not None)


def next_token_predictions(model: torch.nn.Module, X: Tensor, y: Tensor | None = None,
                           **kw: Any) -> TokenPredictions:
    """A language model's :class:`TokenPredictions` on ``X`` (N, T) (targets ``y`` (N, T): each position's loss),
    each batch's (n, T, V) logits reduced at once (:func:`forward_reduced`).

    >>> lm = torch.nn.Sequential(torch.nn.Embedding(5, 3), torch.nn.Linear(3, 7))
    >>> p = next_token_predictions(lm, torch.ones(4, 6, dtype=torch.long), torch.zeros(4, 6, dtype=torch.long))
    >>> tuple(p.ids.shape), tuple(p.loss.shape), p.vocab_size
    ((4, 6), (4, 6), 7)

    Raises:
        TrainingError: the model gives no (n, T, V) logits.
    """
    vocab = [0]

    def reduce(out: Tensor, rows: slice) -> Tensor:
        if out.dim() != 3:
            raise TrainingError(f"a language model gives logits (batch, T, vocabulary); received outputs of shape "
                                f"{list(out.shape)}")
        vocab[0] = out.shape[-1]
        prob, ids = out.float().softmax(-1).max(-1)
        cols = [ids.double(), prob.double()] + ([] if y is None else [_token_ce(out, y[rows]).double()])
        return torch.stack(cols, -1)

    packed = forward_reduced(model, X, reduce, **kw)
    if not len(packed):
        packed = torch.zeros(0, X.shape[1] if X.dim() > 1 else 0, 2 if y is None else 3, dtype=torch.float64)
    return TokenPredictions(packed[..., 0].long(), packed[..., 1].float(),
                            None if y is None else packed[..., 2].float(), vocab[0])


def predict(model: torch.nn.Module, X: Tensor, task: str = "multiclass", *,
            batch_size: int | None = 256) -> Prediction:
    """Run ``model`` on ``X`` (:func:`forward_all`) and read its outputs for ``task``.

    Args:
        model: any module returning (N, ...) outputs (or a tuple whose first item is).
        X: inputs (N, ...), on any device (each batch runs on the model's).
        task: ``multiclass``, ``binary``, ``regression`` or ``reconstruction``.
        batch_size: samples per forward pass; None for one pass over all of ``X``.

    Returns:
        A :class:`Prediction` (outputs on ``X``'s device, float, flattened to (N, K)).
    """
    if not len(X):
        return Prediction(task, torch.zeros(0, 1, device=X.device))
    out = forward_all(model, X, batch_size)
    return Prediction(task, out.float().reshape(len(out), -1))


__all__ = ["Prediction", "predict", "forward_all", "forward_reduced", "token_losses", "mean_token_loss", "TokenPredictions",
           "next_token_predictions", "MAX_BATCH_OUTPUT_CELLS", "model_device", "first_output", "CLASSIFICATION"]
