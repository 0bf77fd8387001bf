"""One model and one split explained for the Explain page: every question the page asks, answered as plain data.

:func:`open_run` loads a finished run's model and dataset (checked against the memory budget);
:class:`ExplainSession` wraps a model, its dataset and a split, with its predictions, and answers the page:
samples to pick, what to show about one, the methods that apply (from the method specs), explanations, global
rankings, attention, activations, weights and the trust checks. The page keeps no rule of its own. Example::

    >>> import builder
    >>> model = builder.compile_graph(builder.load_template("cnn").graph)
    >>> xs = ExplainSession(model, builder.load_dataset("digits", seed=0), "test")
    >>> xs.methods().default, tuple(xs.explain(0, "saliency").attributions.shape)
    (['saliency', 'integrated_gradients', 'grad_cam'], (1, 1, 8, 8))
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from functools import cached_property
from types import SimpleNamespace
from typing import Any

import numpy as np
from torch import Tensor, nn

from builder.data import fit_dataset, predict
from builder.data.predictions import TokenPredictions, model_device, next_token_predictions
from builder.errors import AccessDenied, LayerLabError
from builder.escape import md_text
from builder.graph.report import human_number
from builder.interpret import next_token as lm
from builder.interpret.activations import activation_nodes, capture_activations, weight_histograms
from builder.interpret.attention import attention_nodes, capture_attention, drop_padding
from builder.interpret.attributions import Explanation, MethodInfo, available_methods, explain, explain_all
from builder.interpret.baselines import BASELINE_LABELS, baselines_for
from builder.interpret.calibration import calibrate_model
from builder.interpret.methods import get_spec, method_label
from builder.interpret.model import infer_modality, layer_nodes, model_modality
from builder.interpret.robustness import flip_view, model_robustness
from builder.interpret.samples import NONE_FOUND, PICK_LABELS, PICKS, pick_from_predictions
from builder.interpret.tryit import shown_row, try_input
from builder.runs.pipeline import open_run  # noqa: F401  (its home is beside load_run; importable here too)

MAX_CANDIDATES = 50  # samples offered by a picker
SANITY_STEPS = 16  # n_steps of path methods in the randomisation check (one explanation per layer)


def run_graph(store: Any, run_id: str | None) -> Any:
    """The project graph a run's model was compiled from (function nodes' ids), or None (no run, unreadable).
    Raises AccessDenied for a run the store's actor may not read."""
    if run_id is None:
        return None

    try:
        return store.get(run_id).project.graph
    except AccessDenied:
        raise
    except LayerLabError:
        return None


@dataclass(frozen=True)
class MethodChoices:
    """The methods for one model: those that apply (with their candidate nodes), the others with the reason,
    the default selection, and the choices of the global ranking and the sanity check."""

    available: dict[str, MethodInfo]
    unavailable: list[MethodInfo]
    default: list[str]
    ranking: list[str]
    sanity: list[str]
    sanity_default: list[str]


@dataclass(frozen=True)
class SampleSummary:
    """What the page shows about one sample: ``kind`` ``class`` (true/predicted class names, whether right,
    confidence, runners-up), ``next_token`` (a language model: the true and predicted token after the sample's
    last one at ``position``, as ``class``; ``note`` a line on the whole sample), ``value`` (regression: true and
    predicted value), ``output`` (a drawn objective's network: its outputs, no true value), ``reconstruction`` (a
    network trained to give its input back: ``output`` what it gives back, ``predicted`` its mean squared error)
    or ``other``."""

    kind: str
    true: str = "—"
    predicted: str = ""
    correct: bool = False
    confidence: float = 0.0
    runners_up: list[tuple[str, float]] = field(default_factory=list)
    output: np.ndarray | None = None
    note: str = ""
    position: int = -1


@dataclass(frozen=True)
class SanityReport:
    """The randomisation check on samples ``start``..``stop - 1``: results and per-method error messages."""

    start: int
    stop: int
    results: list[Any]
    errors: list[str]


def _picture_words(shape: tuple[int, ...]) -> str:
    """Images of ``shape`` (C, H, W) in words.

    >>> _picture_words((1, 8, 8)), _picture_words((3, 32, 32)), _picture_words((2, 4, 4))
    ('8×8 images', '32×32 colour images', '2-channel 4×4 images')
    """
    c, size = (shape[0], "×".join(map(str, shape[1:]))) if len(shape) == 3 else (1, "×".join(map(str, shape)))
    return f"{size} images" if c == 1 else f"{size} colour images" if c == 3 else f"{c}-channel {size} images"


MAX_PAD_CHOICES = 40
"""At most this many tokens are offered for a ``pad`` baseline."""


def pad_choices(vocab: list[str]) -> dict[int, str]:
    """The tokens offered as a ``pad`` baseline, id -> label: the special tokens (``<pad>``, ``[MASK]``,
    ``<|endoftext|>``...) and then the vocabulary's first ids (a learned vocabulary's specials and most frequent
    words come first), at most :data:`MAX_PAD_CHOICES`; id 0 (padding) without a vocabulary.

    >>> pad_choices(["<pad>", "<unk>", "the", " a", "[MASK]"])
    {0: "'<pad>'", 1: "'<unk>'", 4: "'[MASK]'", 2: "'the'", 3: "'␣a'"}
    >>> pad_choices([])
    {0: 'token 0'}
    """
    info = SimpleNamespace(vocab=vocab)  # labelled as a next-token picker labels them
    if not vocab:
        return {0: lm.token_word(info, 0)}
    special = re.compile(r"^(<[^<>\s]{1,20}>|\[[A-Z_]{1,12}\]|<\|[^|\s]{1,24}\|>)$")
    ids = [0] + [i for i, t in enumerate(vocab) if i and special.match(str(t))][:MAX_PAD_CHOICES // 2]
    ids += [i for i in range(len(vocab)) if i not in ids][:MAX_PAD_CHOICES - len(ids)]
    return {i: lm.token_word(info, i) for i in ids}


class ExplainSession:
    """A model, the dataset it was trained on (shaped for its Input) and one split, with the split's predictions.

    Args:
        model: the trained model; ``ds``: its :class:`~builder.data.Dataset`; ``split``: test, val or train.
        run_id: the run the model comes from (None for an unsaved model); ``graph``: its project graph.
    Raises:
        DatasetError: the dataset does not fit the model's Input.
    """

    def __init__(self, model: nn.Module, ds: Any, split: str = "test", run_id: str | None = None,
                 graph: Any = None):
        self.model, self.run_id, self.graph, self.split = model, run_id, graph, split
        self.explained: str | None = getattr(model, "layerlab_explained", None)  # a drawn objective's network
        compiled = getattr(model, "layerlab_input_shapes", None) is not None  # a plain module: ds as it is
        self.ds = fit_dataset(model, ds, strict=True) if compiled else ds
        modality = model_modality(model) or infer_modality(self.ds.test.X)
        self.modality = "tabular" if modality == "points2d" else modality
        data = getattr(self.ds, split)
        self.device = model_device(model)
        self.X: Tensor = data.X.to(self.device)  # (N, ...)
        self.y: Tensor | None = data.y if data.y is not None and data.y is not data.X else None
        # a language model's T x V logits per sample are reduced batch by batch, never kept (issue 28)
        self.token_predictions: TokenPredictions | None = None
        self.prediction: Any = None
        if self.info.task == "next_token":
            self.token_predictions = tp = next_token_predictions(model, self.X, self.y)
            self.output_shape: tuple[int, ...] = (int(tp.ids.shape[1]), tp.vocab_size)
            self.last_position = lm.last_positions(self.X).cpu()  # (N,) each sample's last real token
            self.pred = tp.ids.cpu().gather(1, self.last_position[:, None])[:, 0]  # (N,) the next token predicted
            self.conf = tp.probability.cpu().gather(1, self.last_position[:, None])[:, 0]
        else:
            self.prediction = predict(model, self.X, self.info.task)
            self.output_shape = tuple(self.prediction.outputs.shape[1:])
            self.pred, self.conf = self.prediction.pair()  # (N,) class (0 for regression), (N,) confidence or value

    # ------------------------------------------------------------------------------------------ the data
    @property
    def info(self) -> Any:
        """The dataset's :class:`~builder.data.DatasetInfo`."""
        return self.ds.info

    @property
    def classification(self) -> bool:
        """Whether the model predicts classes."""
        return self.info.task in ("multiclass", "binary")

    @property
    def n_samples(self) -> int:
        """Samples in the split."""
        return len(self.X)

    @property
    def has_class_labels(self) -> bool:
        """Whether the split has one true class per sample."""
        return self.classification and self.y is not None and self.y.dim() == 1

    def class_name(self, c: int) -> str:
        """A class index's name (the index itself when the dataset names none)."""
        names = self.info.class_names
        return str(names[c]) if names and 0 <= c < len(names) else str(c)

    @property
    def n_classes(self) -> int:
        """Classes to pick from: the named ones, else one more than the largest label."""
        return len(self.info.class_names) or (int(self.y.max()) + 1 if self.y is not None else 0)

    def sample(self, i: int) -> Tensor:
        """Sample ``i`` as a batch of one (1, ...) on the model's device."""
        return self.X[i:i + 1]

    def tokens(self, i: int) -> list[str]:
        """Sample ``i``'s token ids as vocabulary words (the ids when there is no vocabulary)."""
        vocab = self.info.vocab
        ids = self.X[i].reshape(-1).tolist()
        return [str(vocab[t]) if vocab and 0 <= t < len(vocab) else str(t) for t in ids]

    def sample_text(self, i: int) -> str:
        """Sample ``i`` as the text to read (:func:`builder.data.text.ids_text`: decoded with the run's tokenizer)."""
        from builder.data.text import ids_text  # lazy: heavy (tokenizers, numpy)

        tok = self.run_tokenizer if self.info.tokenizer else None
        return ids_text(self.X[i].reshape(-1).tolist(), list(self.info.vocab or []), tok)

    @cached_property
    def run_tokenizer(self) -> Any:
        """The run's tokenizer (``DatasetInfo.tokenizer``), read once per session: sample texts, Try it and the
        decoded continuations all use it. A session that tokenizes runs in a sandboxed child (issue 28)."""
        from builder.data.text import load_tokenizer  # lazy: heavy (tokenizers)

        return load_tokenizer(self.info.tokenizer)

    def feature_names(self) -> list[str] | None:
        """The dataset's feature names when there is one per input value, else None."""
        names = self.info.feature_names
        return list(names) if names and len(names) == int(self.X[0].numel()) else None

    def axis_names(self) -> list[str] | None:
        """The names a figure of one sample labels its values with: for a sequence sample (T, F) one per channel
        of its last axis (a series' columns: ``temp``, ``humidity``), else one per input value
        (:meth:`feature_names`); None when the dataset has none that fit. A weather series' heatmaps were labelled
        ``feature 1`` and ``feature 2``: its two names were checked against its 48 values."""
        names, shape = self.info.feature_names, tuple(self.info.input_shape)
        if self.modality == "sequence" and len(shape) == 2:  # (T, F): read from the dataset (a probe has no X)
            return list(names) if names and len(names) == int(shape[-1]) else None
        return self.feature_names()

    def feature_values(self, i: int) -> tuple[list[str], list[float | str]]:
        """Sample ``i`` as (feature names, values) for a table (names ``x0``, ``x1``... when there are none), as Try
        it shows it: the data's own units, a text column's category (:func:`builder.interpret.tryit.shown_row`)."""
        return shown_row(self, i)

    @property
    def shown_modality(self) -> str:
        """How samples are shown: ``image`` for images the model reads as flat vectors (the digits of an MLP
        autoencoder, :attr:`~builder.data.DatasetInfo.flat_from`), else :attr:`modality`. Methods run on the model's
        own input (:attr:`modality`); pictures go through :meth:`picture`."""
        return "image" if tuple(self.info.flat_from or ()) else self.modality

    def picture(self, values: Any) -> Any:
        """An array of one sample's values (a flat sample, a flat attribution) in the sample's picture shape
        (C, H, W) when the model reads images as flat vectors; otherwise as it is."""
        shape = tuple(self.info.flat_from or ())
        return np.asarray(values).reshape(shape) if shape else values

    def sample_array(self, i: int) -> np.ndarray:
        """Sample ``i`` as a float numpy array (for previews)."""
        return self.X[i].detach().float().cpu().numpy()

    def describe(self) -> str:
        """One line about the dataset and the split (markdown)."""
        info = self.info
        task = f"the {md_text(self.explained, 40)} network's outputs" if self.explained else info.task
        shape = tuple(info.flat_from or ())
        given = (f"{_picture_words(shape)} read as {info.input_shape[0]} values (flattened)" if shape
                 else f"{self.modality} input {list(info.input_shape)}")
        return (f"Dataset **{md_text(info.shown_name, 80)}** · {task} · {given} · "
                f"{self.n_samples} {self.split} samples")

    # ------------------------------------------------------------------------------------------ samples
    def pick_modes(self) -> list[str]:
        """The ways to pick samples: by index, and by class and prediction when there are class labels."""
        return list(PICKS) if self.has_class_labels else ["index"]

    def pick(self, by: str, label: int | None = None, k: int = MAX_CANDIDATES) -> list[int]:
        """Indices of up to ``k`` samples picked ``by`` (see :func:`~builder.interpret.samples.pick_from_predictions`),
        from the split's predictions."""
        if self.y is None:
            return []
        return pick_from_predictions(self.pred, self.conf, self.y, by, label=label, k=k)

    @staticmethod
    def pick_label(by: str) -> str:
        """How a picker mode reads in a menu (``mistakes`` -> "Mistakes")."""
        return PICK_LABELS.get(by, by)

    @staticmethod
    def none_found(by: str) -> str:
        """What a picker found none of (``mistakes``)."""
        return NONE_FOUND.get(by, "samples")

    def candidate_label(self, i: int) -> str:
        """``#i · true A · predicted B (93%)``."""
        y = self.y.cpu() if self.y is not None else None
        true = self.class_name(int(y[i])) if y is not None else "—"
        return f"#{i} · true {true} · predicted {self.class_name(int(self.pred[i]))} ({float(self.conf[i]):.0%})"

    def summary(self, i: int, runners_up: int = 2, position: int | None = None) -> SampleSummary:
        """True label, prediction, confidence and runners-up of sample ``i`` (a language model's: after
        ``position``, by default its last real token)."""
        if self.explained:  # a drawn objective's network (a VAE's encoder): its outputs are no target of the
            # dataset's; the page read "True value 5 · Prediction 0.2618", a digit's class beside μ's first value
            outs = self.prediction.outputs[i].reshape(-1).tolist()
            return SampleSummary("output", predicted=", ".join(human_number(v) for v in outs[:4])
                                 + (f", … ({len(outs)} values)" if len(outs) > 4 else ""))
        if self.token_predictions is not None:  # what it predicts next (the page showed "Sample #0")
            return SampleSummary("next_token", **lm.token_summary(self, i, runners_up, position))
        if self.classification:
            labelled = self.has_class_labels
            true = self.class_name(int(self.y[i])) if labelled else "—"
            right = labelled and int(self.y[i]) == int(self.pred[i])
            runners = [(self.class_name(c), p) for c, p in self.prediction.runners_up(i, runners_up)]
            return SampleSummary("class", true, self.class_name(int(self.pred[i])), right, float(self.conf[i]),
                                 runners)
        if self.info.task == "regression":  # the target's own units: the model learns it standardised (the page
            # said "True value -1.565" for an income of 30,000 and a diabetes progression of 25 to 346)
            true = "—" if self.y is None else human_number(self.info.own_units(self.y[i]).reshape(-1)[0])
            return SampleSummary("value", true, human_number(self.info.own_units(self.prediction.values[i]).reshape(-1)[0]))
        if self.info.task == "forecast" and self.info.target_mean is not None:  # the series' own units (the page
            # showed "Sample #0" and nothing of what the window's next value was or what the model said)
            true = "—" if self.y is None else self.forecast_text(self.info.own_units(self.y[i]).reshape(-1))
            return SampleSummary("value", true, self.forecast_text(self.info.own_units(self.prediction.values[i]).reshape(-1)))
        if self.info.task == "reconstruction":  # what the model gives back for the sample, and how far from it
            out = self.prediction.outputs[i].detach().float().cpu().numpy()
            x = self.sample_array(i)
            err = float(np.mean((out.reshape(-1) - x.reshape(-1)) ** 2)) if out.size == x.size else float("nan")
            return SampleSummary("reconstruction", predicted=f"{err:.4g}", output=out)
        return SampleSummary("other")

    # ------------------------------------------------------------------------------------------ targets
    @cached_property
    def n_outputs(self) -> int:
        """Outputs per sample (logits, or values; a language model's T × V)."""
        return math.prod(self.output_shape)

    def target_kind(self) -> str:
        """``class`` (pick the explained class), ``token`` (a language model: pick a position, then one of its
        likeliest next tokens: :meth:`token_positions`, :meth:`token_targets`), ``unit`` (pick an output unit) or
        ``single`` (one output)."""
        if lm.is_language_model(self):
            return "token"
        if self.n_outputs > 1:
            return "class" if self.classification else "unit"
        return "single"

    def target_choices(self) -> list[int]:
        """The explained class or unit to choose: -1 (the prediction, or the largest output) then each one (a
        language model: see :meth:`token_targets`)."""
        if self.target_kind() == "token":
            return [-1]
        k = (len(self.info.class_names) or self.n_outputs) if self.classification else self.n_outputs
        return [-1] + list(range(k))

    def target_label(self, t: int, i: int) -> str:
        """How a target choice reads for sample ``i``."""
        kind = self.target_kind()
        if kind == "class":
            return f"Predicted ({self.class_name(int(self.pred[i]))})" if t < 0 else self.class_name(t)
        if kind == "token":
            return lm.about_target(self, int(lm.default_targets(self, i, i + 1)[0]) if t < 0 else t)
        return "Largest output" if t < 0 else self.unit_name(t)

    def token_positions(self, i: int) -> tuple[list[str], int]:
        """A language model's positions of sample ``i`` as menu labels, and the default one (its last real token)."""
        return lm.position_labels(self, i)

    def token_targets(self, i: int, position: int) -> list[tuple[int, str]]:
        """A language model's next tokens to explain at ``position`` of sample ``i``: ``(target, label)`` of the
        likeliest (the prediction first) and the true one (:func:`builder.interpret.next_token.token_targets`)."""
        return lm.token_targets(self, i, position)

    def unit_name(self, t: int) -> str:
        """Output unit ``t`` in words: ``pixel (row, column)`` of a network that gives a picture back (a
        reconstruction, also of a picture read flat), else ``output t``."""
        shape = tuple(self.info.flat_from or self.info.input_shape or ())
        if self.info.task == "reconstruction" and len(shape) in (2, 3) and math.prod(shape) == self.n_outputs:
            h, w = shape[-2:]
            channel, (row, col) = t // (h * w), divmod(t % (h * w), w)
            return f"pixel ({row}, {col})" + (f" of channel {channel}" if len(shape) == 3 and shape[0] > 1 else "")
        if (label := self._forecast_label(t)) is not None:
            return label
        names = getattr(self.info, "target_names", None) if self.info.task == "regression" else None
        if names and len(names) == self.n_outputs and 0 <= t < len(names) and not names[0].startswith("target"):
            return names[t]  # a regression's targets by their columns
        return f"output {t}"

    def _forecast_label(self, t: int) -> str | None:
        """Forecast output ``t`` named by its series (outputs are horizon x series, step-major): ``humidity``, or
        ``humidity +2`` (two steps ahead) when it forecasts several; None without a name per series."""
        names = self.axis_names() if self.info.task == "forecast" else None
        if not names or self.n_outputs % len(names):
            return None
        step, col = divmod(int(t), len(names))
        return names[col] if self.n_outputs == len(names) else f"{names[col]} +{step + 1}"

    def forecast_text(self, values: Any) -> str:
        """Forecast values (in the series' own units) as people read them, each named by its output
        (:meth:`unit_name`): ``temp 15.64, humidity 56.48``; a lone value, or values with no names, as numbers
        (``42.1``). The Explain page and Try it said "15.64, 56.48" for a weather series, leaving which is which."""
        vals = [float(v) for v in np.asarray(values, dtype=np.float64).reshape(-1)]
        named = len(vals) > 1 and all(self._forecast_label(k) is not None for k in range(len(vals)))
        return ", ".join(f"{self._forecast_label(k)} {human_number(v)}" if named else human_number(v)
                         for k, v in enumerate(vals))

    def about(self, exp: Explanation, target: int | None) -> str:
        """What an explanation explains, for titles (the sample view's and Try it's alike): ``class 7 (the
        prediction)``, a forecast's series (``humidity``), a token, a regression's target by name (``price``),
        ``output 2``, ``the model's output``. ``target`` None: the default one (the prediction)."""
        if exp.target is None:
            names = getattr(self.info, "target_names", None) if self.info.task == "regression" else None
            return names[0] if names and self.n_outputs == 1 and names[0] != "target" else "the model's output"
        t = int(exp.target[0])
        if lm.is_language_model(self):
            return lm.about_target(self, t) + (" (the prediction)" if target is None else "")
        if not self.classification:
            return self.unit_name(t)
        name = self.class_name(t)
        name = name if name.lower().startswith(("class", "output")) else f"class {name}"
        return name + (" (the prediction)" if target is None else "")

    # ----------------------------------------------------------------------------------------- baselines
    def baselines(self) -> tuple[str, ...]:
        """The baseline kinds for this modality, the default first."""
        return baselines_for(self.modality)

    @staticmethod
    def baseline_label(kind: str) -> str:
        """How a baseline kind reads in a menu."""
        return BASELINE_LABELS.get(kind, kind)

    def pad_tokens(self) -> dict[int, str]:
        """The tokens to pick a ``pad`` baseline from, id -> label (:func:`pad_choices`: a bounded list, never a
        whole vocabulary of 50,000 options in a page)."""
        return pad_choices(list(self.info.vocab or []))

    def options(self, baseline: str, pad_token: int | None = None) -> dict[str, Any]:
        """The :func:`explain` keywords for a baseline choice (the training mean, the pad token)."""
        opts: dict[str, Any] = {"baselines": baseline, "modality": self.modality}
        if baseline == "mean":
            opts["baseline_data"] = self.ds.train.X.to(self.device)
        if baseline == "pad":
            opts["pad_token"] = int(pad_token or 0)
        return opts

    # ------------------------------------------------------------------------------------------- methods
    def methods(self) -> MethodChoices:
        """The methods for this model and modality, read from the method specs."""
        infos = available_methods(self.model, self.modality)
        avail = {m.name: m for m in infos if m.available}
        specs = {n: get_spec(n) for n in avail}
        default = sorted((n for n in avail if self.modality in specs[n].default_for),
                         key=lambda n: specs[n].default_for[self.modality]) or list(avail)[:1]
        ranking = sorted((n for n in avail if specs[n].global_rank is not None and specs[n].space == "input"),
                         key=lambda n: specs[n].global_rank)
        sanity = [n for n in avail if specs[n].sanity_check]
        sanity_default = [n for n in sanity if specs[n].sanity_default][:3] or sanity[:1]
        return MethodChoices(avail, [m for m in infos if not m.available], default, ranking, sanity, sanity_default)

    @staticmethod
    def method_label(method: str) -> str:
        """A method's name as people read it (its spec's label)."""
        return method_label(method)

    @staticmethod
    def layer_help(method: str) -> str | None:
        """What a layer method's node choice means (its spec's help), or None."""
        return get_spec(method).layer_help or None

    def default_layer(self, method: str, layers: tuple[str, ...] | list[str]) -> str:
        """The node a layer method uses unless another is chosen (the last convolution for Grad-CAM...)."""
        return get_spec(method).default_layer(self.model, layers)

    @staticmethod
    def title(exp: Explanation) -> str:
        """A method's name in figure titles, with the node for methods that name it (``Grad-CAM · conv2``)."""
        spec = get_spec(exp.method)
        return f"{spec.label} · {exp.layer}" if spec.title_shows_layer and exp.layer else spec.label

    def explain(self, i: int, method: str, target: int | None = None, *, baseline: str = "zeros",
                pad_token: int | None = None, layer: str | None = None, steps: int = 50) -> Explanation:
        """Attribute sample ``i`` with one method (``steps``: ``n_steps`` of path methods)."""
        extra = {"n_steps": steps} if get_spec(method).uses_steps else {}
        return explain(self.model, self.sample(i), method, self._targets(i, i + 1, target), layer=layer,
                       **self.options(baseline, pad_token), **extra)

    def _targets(self, start: int, stop: int, target: int | None) -> Any:
        """``target``, or for a language model without one each sample's predicted next token after its last
        real one (not the largest of its T × V logits)."""
        return lm.default_targets(self, start, stop) if target is None and self.token_predictions is not None \
            else target

    @staticmethod
    def in_input_space(results: dict[str, Explanation]) -> dict[str, Explanation]:
        """The explanations whose maps have the input's layout (drawn over the input)."""
        return {m: e for m, e in results.items() if get_spec(m).space == "input"}

    @staticmethod
    def in_layer_space(results: dict[str, Explanation]) -> dict[str, Explanation]:
        """The explanations of a layer's units (drawn as activations)."""
        return {m: e for m, e in results.items() if get_spec(m).space != "input"}

    @staticmethod
    def caption(exp: Explanation) -> str:
        """The method's caption under its layer-space figure ("" for none)."""
        return get_spec(exp.method).caption.format(layer=exp.layer)

    @staticmethod
    def rows(results: dict[str, Explanation]) -> np.ndarray:
        """The first sample's attributions of each explanation, one flat row each (M, F)."""
        return np.stack([e.attributions[0].reshape(-1).float().cpu().numpy() for e in results.values()])

    @staticmethod
    def deltas(results: dict[str, Explanation]) -> list[tuple[str, float]]:
        """(label, max |convergence delta|) of the explanations that have one."""
        return [(method_label(m), float(e.delta.abs().max())) for m, e in results.items() if e.delta is not None]

    def global_ranking(self, method: str, baseline: str, pad_token: int | None = None) -> np.ndarray:
        """Attributions of every sample of the split for its predicted class, one flat row each (N, F)."""
        res = explain_all(self.model, self.X, method, None, **self.options(baseline, pad_token))
        return res.attributions.reshape(len(res.attributions), -1).float().cpu().numpy()

    # ------------------------------------------------------------------------- attention, activations
    def node_types(self) -> dict[str, str]:
        """Node id -> layer type."""
        return layer_nodes(self.model)

    def attention_nodes(self) -> Any:
        """The attention nodes of the model (empty when it has none)."""
        return attention_nodes(self.model)

    def attention(self, i: int) -> dict[str, Tensor]:
        """Attention maps of sample ``i`` per node: (1, heads, T, T), cut to the sample's real tokens when the
        model masks its padding (:func:`~builder.interpret.attention.drop_padding`)."""
        x = self.sample(i)
        return drop_padding(capture_attention(self.model, x), x)

    def activation_nodes(self) -> dict[str, str]:
        """Nodes whose output can be shown, with their type."""
        return activation_nodes(self.model, self.graph)

    @staticmethod
    def default_activation_node(nodes: dict[str, str]) -> str:
        """The first convolution, else the second node (the first after the Input)."""
        names = list(nodes)
        return next((n for n, t in nodes.items() if t in ("Conv2d", "Conv1d")), names[min(1, len(names) - 1)])

    def activation(self, i: int, node: str, kind: str = "auto") -> tuple[Tensor, str, str] | None:
        """Node ``node``'s output for sample ``i`` as ``(array, figure kind, stats line)``; None without one.

        ``kind``: ``auto`` (a feature-map grid for (C, H, W), else a strip), ``strip`` or ``histogram``.
        """
        acts = capture_activations(self.model, self.sample(i), [node], graph=self.graph)
        if node not in acts:
            return None
        a = acts[node][0]
        stats = (f"shape {list(a.shape)} · mean {float(a.float().mean()):.3g} · "
                 f"{float((a == 0).float().mean()):.0%} zeros")
        if kind == "auto":
            kind = "grid" if a.dim() == 3 else "strip"
        elif kind == "strip" and a.dim() == 3:
            a = a.reshape(a.shape[0], -1)
        return a, kind, stats

    def weighted_nodes(self) -> list[str]:
        """Nodes with weights."""
        from builder.interpret.sanity import weighted_nodes  # lazy: heavy (scipy)

        return weighted_nodes(self.model)

    def weight_histograms(self, nodes: list[str]) -> Any:
        """Weight histograms of ``nodes``."""
        return weight_histograms(self.model, nodes=nodes)

    # ----------------------------------------------------------------------------------------- trust
    def window(self, i: int, n: int) -> tuple[int, int]:
        """``n`` samples from sample ``i`` on, moved back to fit the split: ``(start, stop)``."""
        start = max(0, min(i, self.n_samples - n))
        return start, start + n

    def sanity(self, i: int, n: int, methods: list[str], target: int | None, *, threshold: float = 0.5,
               baseline: str = "zeros", pad_token: int | None = None) -> SanityReport:
        """The randomisation check of each method on ``n`` samples from ``i`` on (errors per method, not raised)."""
        from builder.interpret.sanity import randomisation_check  # lazy: heavy (scipy)

        start, stop = self.window(i, n)
        opts = {k: v for k, v in self.options(baseline, pad_token).items() if k != "modality"}
        out, errors = [], []
        for m in methods:
            extra = {"n_steps": SANITY_STEPS} if get_spec(m).uses_steps else {}
            try:
                out.append(randomisation_check(self.model, self.X[start:stop], m, self._targets(start, stop, target),
                                               threshold=threshold, modality=self.modality, **opts, **extra))
            except LayerLabError as e:
                errors.append(f"{method_label(m)}: {e}")
        return SanityReport(start, stop, out, errors)

    def completeness(self, i: int, n: int, target: int | None, *, steps: int = 50, baseline: str = "zeros",
                     pad_token: int | None = None) -> Any:
        """Integrated Gradients completeness on ``n`` samples from ``i`` on (a ``CompletenessResult``)."""
        from builder.interpret.sanity import ig_completeness  # lazy: heavy (scipy)

        start, stop = self.window(i, n)
        opts = self.options(baseline, pad_token)
        kw = {k: opts[k] for k in ("baseline_data", "pad_token") if k in opts}
        return ig_completeness(self.model, self.X[start:stop], self._targets(start, stop, target), baselines=baseline,
                               n_steps=steps, **kw)

    # ------------------------------------------------------------------------- your input, attacks, calibration
    def try_input(self, x: Tensor, method: str | None = None, *, baseline: str = "zeros") -> Any:
        """Your own input ``x`` (1, ...) predicted and explained (:func:`builder.interpret.tryit.try_input`)."""
        return try_input(self, x.to(self.device), method, baseline=baseline)

    def encode_image(self, data: bytes | Any, *, invert: bool = False, name: str = "image") -> Tensor:
        """An uploaded image as this model's (1, C, H, W) input (:func:`builder.interpret.tryit.encode_image`);
        ``data`` its bytes (a uint8 array from the probe's wire)."""
        from builder.interpret.tryit import encode_image  # lazy: heavy (torch, PIL)

        raw = data.tobytes() if hasattr(data, "tobytes") else bytes(data)
        return encode_image(self, raw, invert=bool(invert), name=str(name)[:200])

    def tokenize(self, text: str) -> tuple[Tensor, int]:
        """A typed text as this model's ids and the tokens cut (:func:`builder.interpret.tryit.tokenize`)."""
        from builder.interpret.tryit import tokenize  # lazy: heavy (torch, tokenizers)

        return tokenize(self, str(text))

    def decode_text(self, ids: list[int]) -> str:
        """Token ids as text, with the run's tokenizer (:func:`builder.interpret.tryit.decode_text`)."""
        from builder.interpret.tryit import decode_text  # lazy: heavy (torch, tokenizers)

        return decode_text(self, [int(i) for i in ids])

    def continue_text(self, x: Tensor, steps: int = 40, temperature: float = 0.8, top_k: int = 20,
                      seed: int = 0) -> dict:
        """A language model's continuation of prompt ids ``x`` (:func:`builder.interpret.tryit.continue_text`)."""
        from builder.interpret.tryit import continue_text  # lazy: heavy (torch, captum, numpy)

        return continue_text(self, x.to(self.device), steps, temperature, top_k, seed)

    def robustness(self, eps: list[float], method: str = "fgsm", steps: int = 10) -> Any:
        """Accuracy against ε on the split (:func:`builder.interpret.robustness.model_robustness`)."""
        return model_robustness(self.model, self.ds, eps, method=method, steps=steps, split=self.split,
                                run_id=self.run_id)

    def flip_view(self, index: int, eps: float, **kw: Any) -> Any:
        """A flipped sample beside its adversarial version (:func:`builder.interpret.robustness.flip_view`)."""
        return flip_view(self.model, self.ds, index, eps, split=self.split, **kw)

    def calibrate(self, bins: int = 15) -> Any:
        """Temperature scaling on val, reliability and coverage on test
        (:func:`builder.interpret.calibration.calibrate_model`)."""
        return calibrate_model(self.model, self.ds, bins=bins, run_id=self.run_id)


__all__ = ["ExplainSession", "MethodChoices", "SampleSummary", "SanityReport", "open_run", "run_graph",
           "MAX_CANDIDATES"]
