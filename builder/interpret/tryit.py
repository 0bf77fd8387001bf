"""Try it: the user's own input through a trained model, with its prediction and an attribution at once.

The input is shaped and preprocessed the way the run's dataset was (:class:`TryForm` says how it is asked
for): an image is decoded, resized and scaled like the dataset's images; a table row is given in the data's
own units and standardised with the training split's statistics; a 2-D point likewise; a sequence is typed as
words of the dataset's vocabulary, or as free text when the run learned a tokenizer (:mod:`builder.data.text`;
its words outside the vocabulary become ``<unk>``). A language model (task ``next_token``) continues a typed
prompt (:func:`continue_text`); a forecaster (task ``forecast``) reads a pasted series, one step per line
(:func:`encode_series`), and answers the forecast in the series' own units. A mismatch (an unknown word, a wrong number of values, an unreadable
image) is a :class:`~builder.errors.ExplainError` that says what to give instead.

Example::

    # not a doctest (needs a trained run): run by tests/interpret/test_tryit.py
    xs = ExplainSession(model, ds, "test")
    form = try_form(xs)                  # kind "features": names and a starting row in raw units
    x = encode_row(xs, form.start)       # the row as the model sees it
    res = try_input(xs, x, "integrated_gradients")
    res.predicted, res.confidence, res.explanation.attributions.shape
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from builder.data import predict
from builder.data.images import decode_image
from builder.errors import DatasetError, ExplainError, TrainingError
from builder.graph.report import human_number
from builder.interpret.attributions import Explanation, explain
from builder.runs.summary import current_run
from builder.training.run_status import is_live

__all__ = ["TryForm", "TryResult", "TryRun", "try_run", "try_form", "picture_shape", "raw_row", "shown_row", "grouped_attributions", "grouped_ranking", "encode_row", "encode_image", "encode_strokes", "rasterise_strokes",
           "encode_tokens", "tokenize", "decode_text", "encode_series", "continue_text", "token_labels", "unknown_tokens", "tokens_cut", "try_input", "MAX_STROKE_POINTS"]

MAX_TRY_IMAGE_BYTES = 16 * 2**20
MAX_STROKE_POINTS = 5000  # points of a drawing, all strokes together (a pad sends a few hundred)
STROKE_SUPERSAMPLE = 4  # sub-pixels per pixel side when the strokes are drawn, averaged down (anti-aliasing)


@dataclass(frozen=True)
class TryForm:
    """How the Try-it panel asks for an input: ``kind`` (``image``, ``features``, ``tokens``), the input
    shape, and for features the names of the numeric ones with a starting row (a test sample, in the data's own
    units) and, for a CSV's text columns, ``choices`` (column -> its categories) with the sample's ``picked`` one."""

    kind: str
    shape: tuple[int, ...]
    names: list[str] = field(default_factory=list)
    start: list[float] = field(default_factory=list)
    choices: dict[str, list[str]] = field(default_factory=dict)
    picked: dict[str, str] = field(default_factory=dict)
    vocab: list[str] = field(default_factory=list)
    start_text: str = ""


@dataclass(frozen=True)
class TryResult:
    """The model's answer for one input: the predicted class (or value), its confidence, the runners-up
    and the attribution for the predicted class."""

    predicted: str
    confidence: float
    runners_up: list[tuple[str, float]]
    explanation: Explanation | None
    error: str = ""
    output: torch.Tensor | None = None  # a reconstruction (1, ...): the model's whole answer, shown as it is
    # what the attribution explains, as the Explain page's sample view names it (ExplainSession.about): the class,
    # the series, the token, the target by name; Try it's titles said the prediction ("for temp 17, humidity 51.96")
    explained: str = ""


@dataclass(frozen=True)
class TryRun:
    """The run whose model Try it uses for a graph: ``version`` changes whenever newer weights land (each epoch's
    weights or a checkpoint while it trains, the final weights when it ends), so a caller reopens the model then; ``ready`` is
    False while the run has no weights or checkpoint yet."""

    run_id: str
    status: str
    live: bool
    ready: bool
    version: str

    def describe(self) -> str:
        """One line for the panel: which run, and whether its model is still changing."""
        if not self.ready:
            return f"run {self.run_id} ({self.status}) has no weights yet; they appear after its first epoch"
        return (f"run {self.run_id}, newest epoch (refreshed as each epoch ends while it trains)" if self.live
                else f"run {self.run_id} ({self.status})")


def try_run(store: Any, graph: Any, owner: str | None) -> TryRun | None:
    """The run Try it uses for the graph on the canvas: the owner's live run of this graph, else the newest
    (:func:`builder.runs.summary.current_run`, what the Train page shows); None without one."""
    run = current_run(store, graph, owner)
    if run is None:
        return None
    rid = run["id"]
    stamps = [p.stat().st_mtime_ns for p in (store.weights_path(rid), store.checkpoint_path(rid),
                                              store.folder(rid).epoch_weights) if p.is_file()]
    live = is_live(run)
    return TryRun(rid, str(run["status"]), live, bool(stamps), f"{rid}:{run['status']}:{max(stamps, default=0)}")


def raw_row(xs: Any, i: int) -> np.ndarray:
    """Sample ``i`` of the session's split as a flat row in the data's own units: standardised features are
    given back their training mean and deviation (Try it starts from it; the Explain page's sample table showed
    the standardised values, "sepal length -1.458", beside Try it's 4.7 for the same sample)."""
    return xs.info.own_units(xs.sample(i).reshape(-1), "input")


def shown_row(xs: Any, i: int) -> tuple[list[str], list[float | str]]:
    """Sample ``i`` as people know it: (feature names, values) in the data's own units, each one-hot encoded text
    column as one entry holding its category (Try it's pickers): the Explain page's sample table listed
    ``school=east 0, school=north 1, school=south 0`` beside Try it's ``school: north``."""
    row = raw_row(xs, i)
    names = list(xs.feature_names() or [f"x{k}" for k in range(row.size)])
    out_names: list[str] = []
    values: list[float | str] = []
    for column, members, held in _groups(xs, names, row):
        out_names.append(column)
        values.append(float(row[members[0]]) if column == names[members[0]] else held or "—")
    return out_names, values


def _groups(xs: Any, names: list[str], row: np.ndarray) -> list[tuple[str, list[int], str | None]]:
    """The row's features as people read them, in order: (name, feature indices, category held). A numeric
    feature is itself (``[k]``, None); each one-hot encoded text column is one entry over its features, holding the
    category whose feature is above 0.5 in ``row`` (in the data's own units)."""
    onehot = _one_hot(xs, names)
    out: list[tuple[str, list[int], str | None]] = []
    at: dict[str, int] = {}
    for k, name in enumerate(names):
        if name not in onehot:
            out.append((name, [k], None))
            continue
        column, level = onehot[name]
        if column not in at:
            at[column] = len(out)
            out.append((column, [], None))
        c, members, held = out[at[column]]
        out[at[column]] = (c, [*members, k], level if k < row.size and row[k] > 0.5 else held)
    return out


def grouped_attributions(xs: Any, row: Any, attributions: Any) -> tuple[list[str], np.ndarray]:
    """One table row's attributions as people read the row: each one-hot encoded text column's attributions
    summed into one bar named by the column and the category the row holds (``school: north``), the numeric
    features as they are. Attributions add up (the sum over a column's one-hot features is that column's share),
    so the bars still sum to the whole. Try it asked "school: north" with a picker and answered with bars for
    ``school=east``, ``school=north`` and ``school=south``.

    ``row`` is the model's input row (standardised or not: a one-hot feature above 0.5 is the category held).
    """
    a = np.asarray(attributions.detach().cpu() if hasattr(attributions, "detach") else attributions,
                   dtype=np.float64).reshape(-1)
    x = np.asarray(row.detach().cpu() if hasattr(row, "detach") else row, dtype=np.float64).reshape(-1)
    names = list(xs.feature_names() or [f"x{k + 1}" for k in range(a.size)])[:a.size]
    x = xs.info.own_units(x, "input")  # a standardised one-hot feature: back to 0/1
    groups = _groups(xs, names, x) if len(names) == a.size else [(n, [k], None) for k, n in enumerate(names)]
    out = [f"{column}: {held}" if held is not None else column for column, _, held in groups]
    return out, np.asarray([float(a[members].sum()) for _, members, _ in groups])


def grouped_ranking(xs: Any, attributions: Any) -> tuple[list[str] | None, np.ndarray]:
    """Many rows' attributions (N, F) grouped as :func:`grouped_attributions` groups one row's: each one-hot
    encoded text column summed into one column named by the text column alone (the category differs per row), the
    numeric features as they are; (names, (N, groups)). Explain's "Rank over N" listed ``sex=F`` and ``sex=M`` as
    two features while its bars and Try it showed one ``sex``. Names None (and the array as is) for rows whose
    width the feature names do not give.
    """
    a = np.asarray(attributions.detach().cpu() if hasattr(attributions, "detach") else attributions,
                   dtype=np.float64)
    a = a.reshape(len(a), -1)
    names = list(xs.feature_names() or [])
    if len(names) != a.shape[1]:
        return None, a
    groups = _groups(xs, names, np.zeros(len(names)))
    return [column for column, _, _ in groups], np.stack([a[:, members].sum(1) for _, members, _ in groups], 1)


def picture_shape(xs: Any) -> tuple[int, ...]:
    """The (C, H, W) of an image input: the model's own, or the picture of images it reads flattened (an MLP
    autoencoder's digits, :attr:`~builder.data.DatasetInfo.flat_from`)."""
    return tuple(getattr(xs.info, "flat_from", ()) or ()) or tuple(xs.info.input_shape)


def try_form(xs: Any, sample: int = 0) -> TryForm:
    """What to ask for, starting from sample ``sample`` of the session's split."""
    info, shape = xs.info, tuple(xs.info.input_shape)
    if xs.modality == "image" or getattr(info, "flat_from", ()):  # a picture, drawn or uploaded, even when the
        # model reads it flattened (it asked for 64 numbers x1..x64)
        return TryForm("image", picture_shape(xs))
    if xs.modality == "tokens":
        ids = xs.sample(sample).reshape(-1).tolist()
        vocab = list(info.vocab or [])
        if getattr(info, "tokenizer", ""):
            text = decode_text(xs, ids)
            if info.task == "next_token":
                return TryForm("prompt", shape, vocab=vocab, start_text=" ".join(text.split()[:8]))
        else:
            text = " ".join(vocab[i] if 0 <= i < len(vocab) else str(i) for i in ids)
        return TryForm("tokens", shape, vocab=vocab, start_text=text)
    if info.task == "forecast":
        window = xs.info.own_units(xs.sample(sample).reshape(shape), "input")
        text = "\n".join(", ".join(f"{v:.6g}" for v in row) for row in window)
        return TryForm("series", shape, names=list(xs.axis_names() or []), start_text=text)
    row = raw_row(xs, sample)
    names = list(xs.feature_names() or [f"x{i + 1}" for i in range(row.size)])
    onehot = _one_hot(xs, names)
    picked = {c: lv for c, levels in _choices(xs, names).items() for lv in levels[:1]}
    for name, v in zip(names, row):
        if name in onehot and v > 0.5:
            picked[onehot[name][0]] = onehot[name][1]
    return TryForm("features", shape, names=[n for n in names if n not in onehot],
                   start=[float(v) for n, v in zip(names, row) if n not in onehot], choices=_choices(xs, names),
                   picked=picked)


def _choices(xs: Any, names: list[str]) -> dict[str, list[str]]:
    """The text columns whose one-hot features are all among ``names``: column -> categories."""
    have = set(names)
    cats = getattr(xs.info, "categories", None) or {}
    return {str(c): [str(v) for v in levels] for c, levels in cats.items()
            if levels and all(f"{c}={v}" in have for v in levels)}


def _one_hot(xs: Any, names: list[str]) -> dict[str, tuple[str, str]]:
    """One-hot feature name -> (its text column, its category)."""
    return {f"{c}={v}": (c, v) for c, levels in _choices(xs, names).items() for v in levels}


def _on_device(xs: Any, x: torch.Tensor) -> torch.Tensor:
    return x.to(xs.device)


def encode_row(xs: Any, values: list[float], picks: dict[str, str] | None = None) -> torch.Tensor:
    """A table row (or 2-D point) in the data's own units as the model's (1, ...) input, standardised like the
    training data. With ``picks`` (text column -> category, :attr:`TryForm.choices`), ``values`` are the numeric
    features only (:attr:`TryForm.names`) and each text column is one-hot encoded from its pick."""
    shape = tuple(xs.info.input_shape)
    n = int(np.prod(shape))
    try:
        row = np.asarray([float(v) for v in values], dtype=np.float64)
    except (TypeError, ValueError):
        raise ExplainError("every value of the row must be a number; received: a value that is not. Fix: type "
                           "numbers only") from None
    if picks is not None:
        row = _with_picks(xs, row, picks, n)
    if row.size != n:
        raise ExplainError(f"the model reads {n} values per sample; received: {row.size}. Fix: give one value per "
                           "feature")
    row = xs.info.model_units(row)
    return _on_device(xs, _finite32(row, "the row").reshape(1, *shape))


def _with_picks(xs: Any, numbers: np.ndarray, picks: dict[str, str], n: int) -> np.ndarray:
    """The full encoded row: the numeric ``numbers`` in order, each text column's one-hot from ``picks``."""
    names = list(xs.feature_names() or [f"x{i + 1}" for i in range(n)])
    onehot, choices = _one_hot(xs, names), _choices(xs, names)
    wrong = [f"{c}={picks.get(c)!r}" for c in choices if picks.get(c) not in choices[c]]
    if wrong:
        raise ExplainError(f"every text column takes one of its categories; received: {', '.join(wrong[:5])}. "
                           "Fix: pick a category the training data had")
    numeric = [nm for nm in names if nm not in onehot]
    if numbers.size != len(numeric):
        raise ExplainError(f"the model reads {len(numeric)} numeric value(s) per sample; received: {numbers.size}. "
                           "Fix: give one value per numeric feature")
    it = iter(numbers.tolist())
    return np.asarray([float(picks[onehot[nm][0]] == onehot[nm][1]) if nm in onehot else next(it) for nm in names],
                      dtype=np.float64)


def encode_image(xs: Any, data: bytes, *, invert: bool = False, name: str = "image") -> torch.Tensor:
    """An uploaded image resized, converted and scaled like the dataset's images, as a (1, C, H, W) input.

    ``invert`` turns dark-on-light drawings into the light-on-dark digits of the built-in set; a model that reads
    images flattened gets the picture as its flat row. The bytes are a person's file, read by Pillow's native
    decoders: a sandboxed session (:class:`builder.jobs.probe.ProbeSession`) decodes them in its child, so a file
    that crashes a decoder ends that child, not the server.
    """
    shape = picture_shape(xs)
    if len(shape) != 3 or shape[0] not in (1, 3):
        raise ExplainError(f"this model reads inputs of shape {list(shape)}, not images. Fix: use the row editor")
    if len(data) > MAX_TRY_IMAGE_BYTES:
        raise ExplainError(f"the image is larger than {MAX_TRY_IMAGE_BYTES // 2**20} MiB; received: {len(data):,} "
                           "bytes. Fix: shrink it first")
    if getattr(xs, "sandboxed", False):  # a ProbeSession: the file is decoded in its child, never here
        return xs.encode_image(bytes(data), invert=invert, name=name)
    try:
        a = decode_image(data, (shape[1], shape[2]), shape[0], name)
    except DatasetError as e:
        raise ExplainError(str(e)) from None
    if invert:
        a = 1.0 - a
    return _on_device(xs, torch.from_numpy(a).reshape(1, *xs.info.input_shape))


def _stroke_points(strokes: Any) -> list[np.ndarray]:
    """The strokes as (n, 2) float arrays of finite (x, y) in [0, 1]; raises ExplainError on anything else."""
    if not isinstance(strokes, list | tuple):
        raise ExplainError(f"a drawing is a list of strokes; received: {type(strokes).__name__}. Fix: draw on the pad")
    out, total = [], 0
    for stroke in strokes:
        if isinstance(stroke, list | tuple) and total + len(stroke) > 2 * MAX_STROKE_POINTS:  # before it is converted
            raise ExplainError(f"a drawing has at most {MAX_STROKE_POINTS} points; received: more. Fix: clear the "
                               "pad and draw the digit with fewer strokes")
        try:
            pts = np.asarray(stroke, dtype=np.float64).reshape(-1, 2)
        except (TypeError, ValueError):
            raise ExplainError("every stroke of a drawing is a list of [x, y] points; received: a stroke that is "
                               "not. Fix: draw on the pad") from None
        total += len(pts)
        if total > MAX_STROKE_POINTS:
            raise ExplainError(f"a drawing has at most {MAX_STROKE_POINTS} points; received: more. Fix: clear the "
                               "pad and draw the digit with fewer strokes")
        if len(pts) and not np.isfinite(pts).all():
            raise ExplainError("a stroke holds a point that is not finite. Fix: clear the pad and draw again")
        if len(pts):
            out.append(np.clip(pts, 0.0, 1.0))
    if not out:
        raise ExplainError("the drawing is empty; received: no strokes. Fix: draw with the mouse on the pad")
    return out


def rasterise_strokes(strokes: Any, size: tuple[int, int], *, width: float | None = None,
                      margin: float | None = None) -> np.ndarray:
    """Pen strokes (lists of [x, y] in [0, 1], y downwards) drawn as an (H, W) float32 image in [0, 1]: the
    drawing's bounding box is scaled (aspect kept) to fill the frame less ``margin`` (a fraction; by default half
    a pixel up to 16 pixels, else 15 %: MNIST's 20-pixel box in 28) on each side and centred, as the digits of
    MNIST and scikit-learn were; strokes are ``width`` pixels wide (by default H/10, at least
    1.6) and anti-aliased by drawing at :data:`STROKE_SUPERSAMPLE` times the size and averaging down.

    >>> img = rasterise_strokes([[[0.5, 0.1], [0.5, 0.9]]], (8, 8))   # one vertical bar
    >>> img.shape, bool(img[:, 3:5].mean() > 0.5), float(img[:, 0].max())
    ((8, 8), True, 0.0)
    """
    pts = _stroke_points(strokes)
    h, w = int(size[0]), int(size[1])
    ss = STROKE_SUPERSAMPLE
    width = max(1.6, h / 10) if width is None else float(width)
    margin = (0.5 / min(h, w) if min(h, w) <= 16 else 0.15) if margin is None else float(margin)
    allp = np.concatenate(pts)
    lo, hi = allp.min(0), allp.max(0)
    extent = max(float((hi - lo).max()), 1e-6)
    scale = (1 - 2 * margin) * min(h, w) / extent  # drawing units -> pixels, aspect kept
    centre = (lo + hi) / 2
    segs = []
    for p in pts:
        q = ((p - centre) * scale + np.array([w / 2, h / 2])) * ss  # in sub-pixels
        segs.append(np.stack([q[:-1], q[1:]], 1) if len(q) > 1 else np.stack([q, q], 1))
    r = width * ss / 2
    on = np.zeros((h * ss, w * ss), dtype=bool)
    for s0, s1 in np.concatenate(segs):  # each segment touches only the sub-pixels of its padded bounding box
        x0, y0 = np.maximum(np.floor(np.minimum(s0, s1) - r), 0).astype(int)
        x1, y1 = np.ceil(np.maximum(s0, s1) + r).astype(int)
        x1, y1 = min(x1, w * ss), min(y1, h * ss)
        if x0 >= x1 or y0 >= y1:
            continue
        gy, gx = np.mgrid[y0:y1, x0:x1] + 0.5
        d = s1 - s0
        den = float(d @ d)
        t = np.clip(((gx - s0[0]) * d[0] + (gy - s0[1]) * d[1]) / den, 0, 1) if den > 0 else 0.0
        on[y0:y1, x0:x1] |= (gx - s0[0] - t * d[0]) ** 2 + (gy - s0[1] - t * d[1]) ** 2 <= r * r
    img = on.reshape(h, ss, w, ss).mean(axis=(1, 3))
    return img.astype(np.float32)


def encode_strokes(xs: Any, strokes: Any, *, invert: bool = False) -> torch.Tensor:
    """A drawing from the pad (strokes of [x, y] in [0, 1]) resampled to the model's image size, light strokes
    on a dark ground like the built-in digits (``invert`` for dark on light), as a (1, C, H, W) input (its flat
    row for a model that reads images flattened)."""
    shape = picture_shape(xs)
    if len(shape) != 3 or shape[0] not in (1, 3):
        raise ExplainError(f"this model reads inputs of shape {list(shape)}, not images. Fix: use the row editor")
    a = rasterise_strokes(strokes, (shape[1], shape[2]))
    if invert:
        a = 1.0 - a
    x = torch.from_numpy(np.repeat(a[None], shape[0], axis=0))
    return _on_device(xs, x.reshape(1, *xs.info.input_shape))


MAX_TRY_TEXT = 100_000  # characters of a typed text that are tokenized
MAX_SERIES_TEXT = 1_000_000  # characters of a pasted series that are read
MAX_PROMPT_TOKENS = 4096  # a prompt's last tokens that are kept


def tokenize(xs: Any, text: str) -> tuple[torch.Tensor, int]:
    """``text`` tokenized as the run's training data was: the (1, T) ids the model reads (a prompt: its own
    length, at most :data:`MAX_PROMPT_TOKENS`, the last ones) and how many tokens were cut past the model's length
    (0 for a prompt). The tokenizer is a file the run's job wrote (its padding and normalising rules included), so
    a sandboxed session (:class:`builder.jobs.probe.ProbeSession`) runs it in its child, never in the server."""
    if getattr(xs, "sandboxed", False):
        return xs.tokenize(str(text)[:MAX_TRY_TEXT])
    from builder.data.text import encode, special_tokens, token_ids  # lazy: heavy (numpy)

    tok = _tokenizer(xs)
    text = str(text)[:MAX_TRY_TEXT]
    if xs.info.task == "next_token":  # a prompt: its own length, the model sees its last T tokens
        ids = token_ids(tok, text)[-MAX_PROMPT_TOKENS:]
        return _on_device(xs, torch.tensor([ids or [0]], dtype=torch.long)), 0
    steps = int(xs.info.input_shape[0]) if xs.info.input_shape else 0
    special = special_tokens(xs.info)  # as the training texts were: a pretrained tokenizer's [CLS] ... [SEP]
    room = steps - (tok.num_special_tokens_to_add(False) if special else 0)
    return (_on_device(xs, torch.from_numpy(encode(tok, [text], steps, special=special))),
            max(0, len(token_ids(tok, text)) - max(room, 0)))


def decode_text(xs: Any, ids: list[int]) -> str:
    """Token ids as the text they stand for, with the run's tokenizer (in a sandboxed session's child)."""
    if getattr(xs, "sandboxed", False):
        return xs.decode_text([int(i) for i in ids])
    from builder.data.text import decode  # lazy: heavy (numpy)

    return decode(_tokenizer(xs), ids)


def _tokenizer(xs: Any) -> Any:
    """The session's tokenizer, read once (:attr:`builder.interpret.session.ExplainSession.run_tokenizer`); a
    session without that cache (a bare namespace) reads its file."""
    tok = getattr(xs, "run_tokenizer", None)
    if tok is not None:
        return tok
    from builder.data.text import load_tokenizer  # lazy: heavy (tokenizers)

    return load_tokenizer(xs.info.tokenizer)


def encode_tokens(xs: Any, text: str) -> torch.Tensor:
    """Words of the dataset's vocabulary (separated by spaces) as a (1, T) id sequence, padded with id 0
    or cut to the model's length T; with the run's tokenizer, any text, tokenized as the training data was."""
    text = str(text)[:MAX_TRY_TEXT]  # bounded before it is split or tokenized
    vocab = list(xs.info.vocab or [])
    steps = int(xs.info.input_shape[0]) if xs.info.input_shape else 0
    words = text.split()
    tokenized = bool(getattr(xs.info, "tokenizer", ""))
    if not words:
        fix = ("type the start of a text to continue" if xs.info.task == "next_token" else "type a text")\
            if tokenized else "type words of the vocabulary, separated by spaces"
        raise ExplainError(f"the sequence is empty; received: no words. Fix: {fix}")
    if tokenized:
        return tokenize(xs, text)[0]
    index = {w: i for i, w in enumerate(vocab)}
    unknown = sorted({w for w in words if w not in index})
    if unknown:
        shown = ", ".join(repr(w[:20]) for w in unknown[:5])
        raise ExplainError(f"every word must be in the dataset's vocabulary; received: {shown}. Fix: use "
                           f"{', '.join(vocab[:12])}{' ...' if len(vocab) > 12 else ''}")
    ids = [index[w] for w in words][:steps] + [0] * max(0, steps - len(words))
    return _on_device(xs, torch.tensor([ids], dtype=torch.long))


def tokens_cut(xs: Any, text: str) -> int:
    """How many of ``text``'s tokens :func:`encode_tokens` leaves out, being past the model's length (0 for a
    prompt, which keeps its last tokens): 'the story was brilliant but the ending was awful' at a max length of 8
    lost 'awful' without a word said."""
    text = str(text)[:MAX_TRY_TEXT]  # bounded before it is split or tokenized
    if getattr(xs.info, "tokenizer", ""):
        return tokenize(xs, text)[1]
    steps = int(xs.info.input_shape[0]) if xs.info.input_shape else 0
    return max(0, len(text.split()) - steps)


def unknown_tokens(labels: list[str]) -> tuple[int, int]:
    """(unknown, all) tokens of a typed text's labels (:func:`token_labels`), padding left out: a model reads every
    word its vocabulary lacks as one placeholder, so an answer about a text of ``<unk>`` says little about it.

    >>> unknown_tokens(["not", "<unk>", "good", "<pad>"])
    (1, 3)
    """
    from builder.data.text import PAD_TOKENS, UNK_TOKENS  # lazy: heavy (tokenizers)

    shown = [t for t in labels if t not in PAD_TOKENS]
    return sum(t in UNK_TOKENS for t in shown), len(shown)


def token_labels(xs: Any, x: torch.Tensor) -> list[str]:
    """The tokens of ids ``x`` (1, T) as people read them (the dataset's vocabulary; ids outside it as numbers)."""
    vocab = list(xs.info.vocab or [])
    return [vocab[i] if 0 <= i < len(vocab) else str(i) for i in x.reshape(-1).tolist()]


def encode_series(xs: Any, text: str) -> torch.Tensor:
    """A pasted series (one step per line, the columns separated by commas, spaces or tabs; at least the
    model's lookback steps, the last of them used) as the (1, lookback, columns) window the model reads, scaled
    with the training part's statistics. Raises ExplainError naming what to paste instead."""

    lookback, cols = (int(s) for s in xs.info.input_shape)
    rows = []
    for line in _last_lines(str(text)[-MAX_SERIES_TEXT:], lookback):  # only the steps the model reads are parsed
        try:
            rows.append([float(v) for v in re.split(r"[,;\s]+", line) if v])
        except ValueError:
            raise ExplainError(f"a series is numbers, one step per line; received: {line.strip()[:40]!r}. Fix: "
                               f"paste {lookback} lines of {cols} number(s)") from None
    if len(rows) == 1 and cols == 1 and len(rows[0]) > 1:  # one line of values: the steps of one column
        rows = [[v] for v in rows[0]]
    if len(rows) < lookback or any(len(r) != cols for r in rows):
        raise ExplainError(f"the model reads the last {lookback} steps of {cols} column(s); received: {len(rows)} "
                           f"step(s){'' if all(len(r) == cols for r in rows) else ' with other column counts'}. "
                           f"Fix: paste at least {lookback} lines of {cols} number(s)")
    window = np.asarray(rows[-lookback:], dtype=np.float64)
    window = xs.info.model_units(window)
    return _on_device(xs, _finite32(window[None], "the series"))


def _last_lines(text: str, n: int) -> list[str]:
    """The last ``n`` lines of ``text`` that hold something, stripped, in order, read from its end: a pasted series
    of 500,000 lines was split and parsed whole on every view of the page (3.2 s, 70 MiB) for the last lookback
    steps the model reads. Lines end where ``str.splitlines`` ends them (a lone ``\\r`` of a spreadsheet's
    clipboard, ``\\u2028``), as the whole text was split before: a tail 4 times longer each time until it holds
    more lines than ``n`` (its first may be cut) or is the whole text.

    >>> _last_lines("1\\n\\n2\\r\\n 3 \\n", 2), _last_lines("1 2 3", 5), _last_lines("1,2\\r3,4\\r5,6", 2)
    (['2', '3'], ['1 2 3'], ['3,4', '5,6'])
    """
    size = 4096
    while True:
        whole = size >= len(text)
        lines = [s for line in text[-size:].splitlines() if (s := line.strip())]
        if whole or len(lines) > n:
            return lines[-n:] if n > 0 else []
        size *= 4


def _finite32(values: np.ndarray, what: str) -> torch.Tensor:
    """``values`` as the float32 tensor a model reads, refused when one is not finite there (NaN, an infinity, or
    a number past float32's range once scaled like the training data).

    >>> _finite32(np.array([1.0, 2.0]), "the row")
    tensor([1., 2.])
    """
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.asarray(values, dtype=np.float32)
    if not np.isfinite(out).all():
        raise ExplainError(f"{what} holds a value that is not a finite number (NaN, infinity, or past float32's "
                           f"range of about ±3.4e38); received: {int((~np.isfinite(out)).sum())} such value(s). Fix: "
                           "type ordinary numbers")
    return torch.from_numpy(out)


def continue_text(xs: Any, x: torch.Tensor, steps: int = 40, temperature: float = 0.8, top_k: int = 20,
                  seed: int = 0) -> dict:
    """A language model's continuation of the prompt ``x`` (1, n) token ids: ``{"prompt", "continuation"}``
    as text (:func:`builder.training.text_samples.generate`). Runs the model: call it in the probe's child."""
    if getattr(xs, "sandboxed", False):
        return xs.continue_text(x, steps, temperature, top_k, seed)
    from builder.training.text_samples import generate  # lazy: heavy (torch, numpy)

    if xs.info.task != "next_token" or not getattr(xs.info, "tokenizer", ""):
        raise ExplainError(f"continuing a prompt needs a language model run (task next_token); received: task "
                           f"{xs.info.task}. Fix: train on a corpus (e.g. text_corpus)")
    prompt = x.reshape(-1).tolist()
    try:
        ids = generate(xs.model, prompt, int(steps), length=int(xs.info.input_shape[0]),
                       temperature=float(temperature), top_k=int(top_k), seed=int(seed))
    except TrainingError as e:
        raise ExplainError(str(e)) from None
    return {"prompt": decode_text(xs, prompt), "continuation": decode_text(xs, ids[len(prompt):])}


def try_input(xs: Any, x: torch.Tensor, method: str | None = None, *, baseline: str = "zeros") -> TryResult:
    """Predict ``x`` (1, ...) with the session's model and attribute the prediction with ``method``.

    An attribution that fails comes back as ``error`` with the prediction still given.
    """
    if getattr(xs, "sandboxed", False):  # a ProbeSession (builder.jobs.probe): the model runs in its child
        return xs.try_input(x, method, baseline=baseline)

    pred = predict(xs.model, x, xs.info.task, batch_size=None)
    if pred.classification:
        label = int(pred.labels[0])
        name, conf = xs.class_name(label), float(pred.confidence[0])
        runners = [(xs.class_name(c), p) for c, p in pred.runners_up(0, 2)]
        target: int | None = None if pred.single_logit else label
    elif xs.info.task == "forecast" and xs.info.target_mean is not None:  # the series' own units
        name, conf, runners, target = xs.forecast_text(xs.info.own_units(pred.values[0]).reshape(-1)), float("nan"), [], None
    elif xs.info.task == "reconstruction":  # the answer is a whole input again: shown, not its first value
        out = pred.values[:1].detach().cpu()
        target = int(out.reshape(-1).argmax())  # the largest output, as the Explain page's default
        exp, err = _explained(xs, x, method, target, baseline)
        return TryResult(f"a reconstruction of {out.numel()} values", float("nan"), [], exp, err, output=out,
                         explained=xs.about(exp, target) + " (the largest)" if exp is not None else "")
    else:
        # a regression in the target's own units (it answered a standardised -1.565 for an income of 30,000)
        name, conf, runners, target = human_number(xs.info.own_units(pred.values[0]).reshape(-1)[0]), float("nan"), [], None
    exp, err = _explained(xs, x, method, target, baseline)
    return TryResult(name, conf, runners, exp, err, explained="" if exp is None else xs.about(exp, None))


def _explained(xs: Any, x: torch.Tensor, method: str | None, target: int | None,
               baseline: str) -> tuple[Explanation | None, str]:
    """``method``'s attribution of ``target`` for ``x``, or its error (none without a method)."""
    if not method:
        return None, ""
    try:
        return explain(xs.model, x, method, target, **xs.options(baseline)), ""
    except ExplainError as e:
        return None, str(e)
