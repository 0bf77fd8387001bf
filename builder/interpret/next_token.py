"""A language model explained one next token at a time: "why did the model predict this token at this position?".

A language model (task ``next_token``) gives T × V logits per sample; its explained output is one (position, token)
pair, read as the flat index ``position * V + token`` of those logits (the index :func:`~builder.interpret.explain`
attributes). The Explain page offers the sample's positions and, at one, the :data:`TOP_TOKENS` likeliest next
tokens (and the true one): never a list of T × V outputs. Only the split's per-position reductions are kept
(:func:`builder.data.predictions.next_token_predictions`); one sample's logits are computed when asked. Example::

    >>> split_target(1234, (32, 1000)), flat_target(1, 234, (32, 1000))
    ((1, 234), 1234)
"""

from __future__ import annotations

import math
from typing import Any

from torch import Tensor

from builder.data.predictions import forward_all

TOP_TOKENS = 8  # next tokens offered at one position
MAX_WORD = 40  # characters of a token shown


def is_language_model(xs: Any) -> bool:
    """Whether the session's model predicts the next token at each of T positions ((T, V) outputs per sample)."""
    return xs.info.task == "next_token" and len(tuple(xs.output_shape)) == 2


def split_target(t: int, shape: tuple[int, ...]) -> tuple[int, int]:
    """The (position, token) of a flat target ``t`` of (T, V) outputs."""
    return divmod(int(t), int(shape[-1]))


def flat_target(position: int, token: int, shape: tuple[int, ...]) -> int:
    """The flat target of ``token`` at ``position`` of (T, V) outputs."""
    return int(position) * int(shape[-1]) + int(token)


def token_word(info: Any, t: int) -> str:
    """Token ``t`` as its vocabulary word, quoted, its spaces as ``␣`` (a page collapses ``'   '`` and ``' '`` into
    one space); the id without a vocabulary.

    >>> from types import SimpleNamespace
    >>> token_word(SimpleNamespace(vocab=["<pad>", " the", "   "]), 1), token_word(SimpleNamespace(vocab=None), 7)
    ("'␣the'", 'token 7')
    >>> token_word(SimpleNamespace(vocab=["<pad>", " the", "   "]), 2)
    "'␣␣␣'"
    """
    vocab = info.vocab
    if not vocab or not 0 <= int(t) < len(vocab):
        return f"token {int(t)}"
    word = repr(str(vocab[int(t)])).replace(" ", "␣")
    return word if len(word) <= MAX_WORD else word[:MAX_WORD - 2] + "…" + word[-1]


def last_positions(X: Tensor) -> Tensor:
    """Each sample's last real position (N,): the last token that is not padding (id 0), else the last.

    >>> import torch
    >>> last_positions(torch.tensor([[5, 6, 0], [0, 0, 0], [1, 2, 3]])).tolist()
    [1, 2, 2]
    """
    real = (X.reshape(len(X), -1) != 0).int()
    return real.shape[1] - 1 - real.flip(1).argmax(1)


def about_target(xs: Any, t: int) -> str:
    """What flat target ``t`` explains, in words: ``the next token ' the' at position 31``."""
    pos, tok = split_target(t, xs.output_shape)
    return f"the next token {token_word(xs.info, tok)} at position {pos}"


def default_targets(xs: Any, start: int = 0, stop: int | None = None) -> Tensor:
    """The flat target of samples ``start``..``stop - 1``: the predicted token at each one's last real position."""
    pos = xs.last_position[start:stop]
    ids = xs.token_predictions.ids[start:stop].gather(1, pos[:, None].to(xs.token_predictions.ids.device))[:, 0]
    return pos.cpu() * int(xs.output_shape[-1]) + ids.cpu()


def _probabilities(xs: Any, i: int) -> Tensor:
    """Sample ``i``'s next-token probabilities (T, V): one sample's logits, computed when asked."""
    return forward_all(xs.model, xs.sample(i)).float()[0].softmax(-1).cpu()


def position_labels(xs: Any, i: int) -> tuple[list[str], int]:
    """Sample ``i``'s positions as menu labels (``31 · after ' the'``) and the default one (its last real token)."""
    ids = xs.X[i].reshape(-1).tolist()
    return ([f"{p} · after {token_word(xs.info, t)}" for p, t in enumerate(ids)],
            int(xs.last_position[i]))


def token_targets(xs: Any, i: int, position: int) -> list[tuple[int, str]]:
    """The next tokens to explain at ``position`` of sample ``i``: the :data:`TOP_TOKENS` likeliest (the prediction
    first) and the true next one, each ``(flat target, label)``."""
    shape = tuple(xs.output_shape)
    position = min(max(0, int(position)), shape[0] - 1)
    probs = _probabilities(xs, i)[position]
    p, top = probs.topk(min(TOP_TOKENS, len(probs)))
    true = int(xs.y[i].reshape(-1)[position]) if xs.y is not None else None
    out = [(flat_target(position, int(t), shape),
            f"{token_word(xs.info, int(t))} ({float(q):.1%}{', predicted' if k == 0 else ''}"
            f"{', the true next token' if int(t) == true else ''})") for k, (t, q) in enumerate(zip(top, p))]
    if true is not None and 0 <= true < len(probs) and true not in top.tolist():
        out.append((flat_target(position, true, shape),
                    f"{token_word(xs.info, true)} ({float(probs[true]):.1%}, the true next token)"))
    return out


def token_summary(xs: Any, i: int, runners_up: int = 2, position: int | None = None) -> dict[str, Any]:
    """What the model predicts after ``position`` of sample ``i`` (default: its last real token): the keywords of a
    ``next_token`` :class:`~builder.interpret.session.SampleSummary` (the true next token, the predicted one, its
    probability, the runners-up) and a line on the whole sample (perplexity, next tokens predicted right)."""
    last = int(xs.last_position[i])
    pos = last if position is None or not 0 <= int(position) < len(xs.token_predictions.ids[i]) else int(position)
    preds = xs.token_predictions
    probs = _probabilities(xs, i)[pos]
    p, top = probs.topk(min(runners_up + 1, len(probs)))
    words = [token_word(xs.info, int(t)) for t in top]
    true, right = "—", False
    if xs.y is not None:
        t = int(xs.y[i].reshape(-1)[pos])
        true, right = token_word(xs.info, t), t == int(top[0])
    note = ""
    if preds.loss is not None:
        n = preds.loss.shape[1]
        hits = float((preds.ids[i].cpu() == xs.y[i].reshape(-1).cpu()).float().mean())
        note = (f"Over the sample's {n} positions: perplexity {math.exp(min(50.0, float(preds.loss[i].mean()))):.3g}, "
                f"next token predicted right at {hits:.0%}")
    return {"true": true, "predicted": words[0], "correct": right, "confidence": float(p[0]),
            "runners_up": [(w, float(q)) for w, q in zip(words[1:], p[1:])], "note": note,
            "position": pos}


__all__ = ["TOP_TOKENS", "is_language_model", "split_target", "flat_target", "token_word", "last_positions",
           "about_target", "default_targets", "position_labels", "token_targets", "token_summary"]
