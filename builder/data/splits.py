"""Dataset bundles and seeded splits: ``DatasetInfo``, ``Split``, ``Dataset``, stratified train/val/test indices.

Every loader ends in :func:`finish`: task override, seeded (stratified) split, train-statistics standardisation,
and the tensors wrapped as a :class:`Dataset`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

import builder.data.limits as limits
from builder.errors import DatasetError

if TYPE_CHECKING:
    import torch

TASKS = ("multiclass", "binary", "regression", "reconstruction", "next_token", "forecast")
#: tasks a dataset is made for and no other dataset can be turned into: next-token prediction over a corpus
#: (:mod:`builder.data.text`), forecasting windows of a series (:mod:`builder.data.series`)
SEQUENCE_TASKS = ("next_token", "forecast")
MODALITIES = ("image", "tabular", "points2d", "tokens", "series")


#: the kinds an uploaded dataset's recorded name starts with (``csv:students.csv``, ``images:cats.zip``)
UPLOAD_PREFIXES = ("csv", "images", "text", "series", "image_folder")


def upload_label(kind: str, file: str) -> str:
    """An uploaded dataset as people see it on every page, card and command: the kind, a colon, a space and the
    file's name. The one home of that label: pages showed ``csv:students.csv``, ``csv: students.csv`` and
    ``students.csv (csv)`` for one upload.

    >>> upload_label("csv", "students.csv")
    'csv: students.csv'
    """
    return f"{kind}: {file}"


def named_targets(options: Any, task: str | None) -> list[str]:
    """The names the data gives its targets: a table's ``target`` column(s), a forecast's series ``columns``;
    [] where it names none. The one rule for a target's name (:attr:`DatasetInfo.target_names`, a metric's units).

    >>> named_targets({"target": "price"}, "regression"), named_targets({"columns": ["spots"]}, "forecast")
    (['price'], ['spots'])
    >>> named_targets({"target": "price"}, "forecast"), named_targets({"target": ["a", ""]}, "regression")
    ([], [])
    """
    named = (options or {}).get("columns" if task == "forecast" else "target") if isinstance(options, dict) else None
    named = [named] if isinstance(named, str) else list(named) if isinstance(named, (list, tuple)) else []
    return [str(t) for t in named] if named and all(isinstance(t, str) and t for t in named) else []


# --------------------------------------------------------------------------------------------- bundle
@dataclass
class DatasetInfo:
    """What a dataset gives a model: modality, input shape and dtype, output size, names.

    ``input_shape`` excludes the batch dimension. ``out_size`` is the width the last layer must have
    (classes for multiclass, 1 for binary (2 also accepted), targets for regression, the flattened input
    for reconstruction).
    """

    name: str
    task: str
    modality: str
    input_shape: tuple[int, ...]
    input_dtype: str = "float32"
    num_classes: int | None = None
    out_size: int = 1
    class_names: list[str] = field(default_factory=list)
    feature_names: list[str] = field(default_factory=list)
    vocab: list[str] = field(default_factory=list)
    description: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    target_mean: list[float] | None = None
    target_std: list[float] | None = None
    input_mean: list[float] | None = None  # per feature, when the inputs were standardised (raw units back)
    input_std: list[float] | None = None
    categories: dict[str, list[str]] = field(default_factory=dict)  # a CSV's text column -> its levels: one-hot
    # features named ``column=level`` in this order (Try it offers them as one picker per column)
    notes: list[str] = field(default_factory=list)
    source: str = ""
    tokenizer: str = ""  # the JSON of the tokenizer learned on the training split (text, builder.data.text)
    series: dict[str, Any] = field(default_factory=dict)  # windows of a series (builder.data.series.SeriesInfo)
    flat_from: tuple[int, ...] = ()  # the (C, H, W) of image samples given as flat vectors (Dataset.flattened)

    @property
    def shown_name(self) -> str:
        """The name as people see it: an upload's recorded ``csv:students.csv`` as :func:`upload_label` writes
        it (``csv: students.csv``), a built-in's name as it is."""
        kind, sep, file = self.name.partition(":")
        return upload_label(kind, file) if sep and kind in UPLOAD_PREFIXES else self.name

    @property
    def target_names(self) -> list[str]:
        """A regression's targets by their column names (a CSV's ``target`` option), ``target`` (``target 1``,
        ``target 2``, ...) where the data names none: the Data page's table called a CSV's price "target" beside a
        histogram of "price"."""
        named = named_targets(self.options, self.task)
        if named and len(named) == self.out_size:
            return named
        return ["target"] if self.out_size == 1 else [f"target {i + 1}" for i in range(self.out_size)]

    def own_units(self, values: Any, part: str = "target") -> np.ndarray:
        """``values`` as the model reads them (standardised for training) in the data's own units: the training mean
        and deviation of ``part`` (``target``: :attr:`target_mean`, ``input``: :attr:`input_mean`) given back along
        the last axis; as they are (float64) when the data was not scaled or the last axis is not the scaled
        width. The one rule: tables, Try it, forecasts, series plots and drift all read it here.

        >>> info = DatasetInfo("csv:p.csv", "regression", "tabular", (1,), target_mean=[200.0], target_std=[50.0])
        >>> info.own_units([[-1.0], [0.5]]).tolist(), info.own_units([1.0, 2.0]).tolist()
        ([[150.0], [225.0]], [1.0, 2.0])
        """
        a = np.asarray(values.detach().cpu().double() if hasattr(values, "detach") else values, dtype=np.float64)
        scale = self._scale(part)
        if scale is None or (a.shape[-1:] or (1,))[0] != scale[0].size:
            return a
        return a * scale[1] + scale[0]

    def model_units(self, values: Any, part: str = "input") -> np.ndarray:
        """The inverse of :meth:`own_units`: ``values`` in the data's own units as the model reads them.

        >>> info = DatasetInfo("csv:p.csv", "regression", "tabular", (2,), input_mean=[1.0, 0.0], input_std=[2.0, 1.0])
        >>> info.model_units([3.0, 5.0]).tolist()
        [1.0, 5.0]
        """
        a = np.asarray(values, dtype=np.float64)
        scale = self._scale(part)
        if scale is None or (a.shape[-1:] or (1,))[0] != scale[0].size:
            return a
        return (a - scale[0]) / scale[1]

    def _scale(self, part: str) -> tuple[np.ndarray, np.ndarray] | None:
        mean, std = (self.target_mean, self.target_std) if part == "target" else (self.input_mean, self.input_std)
        if mean is None or std is None or len(mean) != len(std) or not len(mean):
            return None
        return np.asarray(mean, dtype=np.float64).reshape(-1), np.asarray(std, dtype=np.float64).reshape(-1)

    @property
    def vocab_size(self) -> int | None:
        """Number of token ids (tokens modality only)."""
        return len(self.vocab) if self.vocab else None

    @property
    def input_modality(self) -> str:
        """The Input node ``modality`` param matching this dataset: vector, image, tokens or sequence (series)."""
        return {"image": "image", "tokens": "tokens", "series": "sequence"}.get(self.modality, "vector")

    def reload_args(self) -> tuple[str, dict]:
        """``(name, options)`` such that ``load_dataset(name, **options)`` loads this dataset again."""
        return self.source or self.name, dict(self.options)

    def to_dict(self) -> dict:
        """JSON-serialisable form."""
        d = asdict(self)
        d["input_shape"] = list(self.input_shape)
        d["flat_from"] = list(self.flat_from)
        return d


@dataclass
class Split:
    """One split: inputs ``X`` (N, *input_shape) and targets ``y`` (N,) int64 or (N, k) float."""

    X: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return int(self.X.shape[0])

    def to(self, device: torch.device | str) -> Split:
        """Copy to a device (``y`` stays the same object as ``X`` for reconstruction)."""
        X = self.X.to(device)
        y = X if self.y is self.X else self.y.to(device)
        return Split(X, y)


    def batch(self, idx: torch.Tensor, augment: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
        """The inputs of rows ``idx`` (a tensor on the split's device), ``augment`` applied when given."""
        x = self.X[idx]
        return x if augment is None else augment(x)

    def head(self, k: int) -> Split:
        """The first ``k`` samples (the trainer's train-metric sample)."""
        return Split(self.X[:k], self.y[:k])


class PixelSplit(Split):
    """An image split held as uint8 rows of one shared array (the memory-mapped cache, :mod:`builder.data.cache`):
    ``pixels`` N_all x H x W x C uint8 shared by the three splits, ``index`` this split's rows (int64).

    :meth:`batch` converts rows to float on the pixels' device: (B, C, H, W), /255, then the per-channel
    ``mean``/``std`` when given, flattened when ``flat``; ``augment`` runs on the [0, 1] images before the
    normalisation. ``X`` (every consumer but the trainer's batches) is the whole split converted once, refused
    over ``limits.MAX_FLOAT_BYTES``; ``y`` None means the inputs (reconstruction).
    """

    def __init__(self, pixels: torch.Tensor, index: torch.Tensor, y: torch.Tensor | None, *,
                 mean: list[float] | None = None, std: list[float] | None = None, flat: bool = False):
        self.pixels, self.index, self._y = pixels, index, y
        self.mean, self.std, self.flat = mean, std, flat
        self.channels_last = False  # batches in channels_last memory (builder.training.callbacks.MemoryFormat)
        self._X: torch.Tensor | None = None
        self._norms: dict = {}

    def __len__(self) -> int:
        return int(self.index.shape[0])

    def _norm(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and std as (1, C, 1, 1) tensors on ``x``'s device, made once per device (a copy to a GPU
        every batch would make the host wait for it every step)."""
        import torch  # lazy: heavy (torch)

        key = (x.device, x.dtype)
        if key not in self._norms:
            self._norms[key] = tuple(torch.tensor(v, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
                                     for v in (self.mean, self.std))
        return self._norms[key]

    def __repr__(self) -> str:
        return f"PixelSplit({len(self)} of {tuple(self.pixels.shape)} uint8, flat={self.flat})"

    def batch(self, idx: torch.Tensor, augment: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
        """Rows ``idx`` of this split as float32 (B, C, H, W) (or flat), on the pixels' device."""
        rows = self.index[idx.to(self.index.device)]
        x = self.pixels[rows.to(self.pixels.device)].permute(0, 3, 1, 2).float().div_(255.0)
        if augment is not None:
            x = augment(x)
        if self.mean is not None:
            m, s = self._norm(x)
            x = (x - m) / s
        if self.flat:
            return x.reshape(len(x), -1)
        if self.channels_last:  # NHWC rows permuted to NCHW are channels_last already
            import torch  # lazy: heavy (torch)

            return x.contiguous(memory_format=torch.channels_last)
        return x.contiguous()

    @property
    def X(self) -> torch.Tensor:  # noqa: N802 - Split's field name
        """The whole split as float32 (converted once, in chunks; refused over ``limits.MAX_FLOAT_BYTES``)."""
        if self._X is None:
            import torch  # lazy: heavy (torch)

            n = len(self)
            need = n * int(np.prod(self.pixels.shape[1:])) * 4
            if need > limits.MAX_FLOAT_BYTES:
                raise DatasetError(f"this split of {n} images would take {need / 2**20:.0f} MiB as float32, over the "
                                   f"limit of {limits.MAX_FLOAT_BYTES / 2**20:.0f} MiB (limits.MAX_FLOAT_BYTES); "
                                   "training streams batches, this use needs the whole split. Fix: a smaller "
                                   "image size or a subset")
            ar = torch.arange(n, device=self.index.device)
            self._X = torch.cat([self.batch(ar[i:i + 4096]) for i in range(0, n, 4096)]) if n else \
                self.batch(ar)
        return self._X

    @property
    def y(self) -> torch.Tensor:
        """Targets (the inputs for reconstruction)."""
        return self.X if self._y is None else self._y

    def head(self, k: int) -> PixelSplit:
        """The first ``k`` samples, still uint8 rows."""
        return self._with(self.index[:k], None if self._y is None else self._y[:k])

    def flattened(self) -> PixelSplit:
        """The same rows, batches as flat vectors."""
        out = self._with(self.index, self._y)
        out.flat = True
        return out

    def with_channels_last(self) -> PixelSplit:
        """The same rows, batches in channels_last memory."""
        out = self._with(self.index, self._y)
        out.channels_last = True
        return out

    def _with(self, index: torch.Tensor, y: torch.Tensor | None, pixels: torch.Tensor | None = None) -> PixelSplit:
        out = PixelSplit(self.pixels if pixels is None else pixels, index, y, mean=self.mean, std=self.std,
                         flat=self.flat)
        out.channels_last = self.channels_last
        return out

    def to(self, device: torch.device | str, moved: dict | None = None) -> PixelSplit:
        """On ``device`` (the shared pixels moved once per ``moved`` memo; a no-op on the CPU)."""
        moved = {} if moved is None else moved
        key = id(self.pixels)
        if key not in moved:
            moved[key] = self.pixels.to(device)
        return self._with(self.index.to(device), None if self._y is None else self._y.to(device), moved[key])


@dataclass
class Dataset:
    """A loaded dataset: ``info`` plus ``train``, ``val`` and ``test`` splits (test untouched until evaluation)."""

    info: DatasetInfo
    train: Split
    val: Split
    test: Split

    def to(self, device: torch.device | str) -> Dataset:
        """Copy all splits to a device (small datasets live on the device as whole tensors)."""
        moved: dict = {}  # pixel splits share one array: move it once
        return Dataset(self.info, *(s.to(device, moved) if isinstance(s, PixelSplit) else s.to(device)
                                    for s in (self.train, self.val, self.test)))

    def flattened(self) -> Dataset:
        """A copy whose inputs are flat vectors (N, prod(input_shape)), e.g. digits for an MLP autoencoder."""
        if self.info.input_dtype != "float32":
            raise DatasetError("only float inputs can be flattened; token sequences are already flat")

        def flat(s: Split) -> Split:
            if isinstance(s, PixelSplit):
                return s.flattened()
            X = s.X.reshape(len(s.X), -1)
            return Split(X, X if s.y is s.X else s.y)
        image = self.info.modality == "image"
        info = replace(self.info, input_shape=(int(np.prod(self.info.input_shape)),),
                       modality="tabular" if image else self.info.modality,
                       flat_from=tuple(self.info.input_shape) if image else self.info.flat_from,
                       options={**self.info.options, "flatten": True})
        return Dataset(info, flat(self.train), flat(self.val), flat(self.test))

    def class_counts(self, split: str = "train") -> dict[str, int]:
        """Samples per class name in a split (empty for regression and reconstruction)."""
        if self.info.task not in ("multiclass", "binary"):
            return {}
        y = getattr(self, split).y.detach().cpu().long().reshape(-1)
        import torch  # lazy: heavy (torch)

        counts = torch.bincount(y, minlength=len(self.info.class_names)).tolist()
        return {name: int(c) for name, c in zip(self.info.class_names, counts)}

    def first_rows(self, n: int = 10, split: str = "train") -> dict[str, list]:
        """The first ``n`` samples of a table as columns for display: the label (class names) or each regression
        target by its name (:attr:`DatasetInfo.target_names`) in its own units (the training mean and deviation
        given back, as the target's histogram shows it), then the features as the model takes them (standardised,
        one-hot). The table showed a price of -0.661 under "target" beside a histogram of prices in dollars.

        >>> import torch
        >>> info = DatasetInfo("csv:p.csv", "regression", "tabular", (1,), feature_names=["area"],
        ...                    options={"target": "price"}, target_mean=[200.0], target_std=[50.0])
        >>> s = Split(torch.tensor([[0.5]]), torch.tensor([[-1.0]]))
        >>> Dataset(info, s, s, s).first_rows()
        {'price': [150.0], 'area': [0.5]}
        """
        s = getattr(self, split)
        k = min(n, len(s))
        X = s.X[:k].detach().cpu().double().numpy().reshape(k, -1)
        info = self.info
        names = info.feature_names if len(info.feature_names) == X.shape[1] else [f"x{i}" for i in range(X.shape[1])]
        cols: dict[str, list] = {}
        if info.task in ("multiclass", "binary"):
            ys = s.y[:k].detach().cpu().long().reshape(-1).tolist()
            cols["label"] = [info.class_names[c] if 0 <= c < len(info.class_names) else str(c) for c in ys]
        elif info.task == "regression":
            y = info.own_units(s.y[:k].reshape(k, -1))
            for j, name in enumerate(info.target_names[: y.shape[1]]):
                cols[name] = y[:, j].tolist()
        for j, name in enumerate(names):
            cols[name if name not in cols else f"{name} (feature)"] = X[:, j].tolist()
        return cols

    def preview(self, n: int = 8, split: str = "train") -> list[dict]:
        """The first ``n`` samples as plain dicts for display: ``x`` (nested lists, as the model reads them),
        ``y`` (a class id, or a regression's targets in their own units: :meth:`DatasetInfo.own_units`), ``label``."""
        s = getattr(self, split)
        out = []
        for i in range(min(n, len(s))):
            x = s.X[i].detach().cpu()
            item: dict[str, Any] = {"x": x.tolist()}
            if self.info.modality == "tokens" and self.info.vocab:
                item["tokens"] = [self.info.vocab[int(t)] for t in x.tolist()]
            if self.info.task in ("multiclass", "binary"):
                yi = int(s.y[i])
                item["y"] = yi
                item["label"] = self.info.class_names[yi] if yi < len(self.info.class_names) else str(yi)
            elif self.info.task == "regression":
                item["y"] = self.info.own_units(s.y[i]).tolist()  # the Data page listed a text's scores standardised
            out.append(item)
        return out



# ------------------------------------------------------------------------------------------ splitting
#: the cross-validation fold ``(k, K)`` the loaders' splits use (set by :func:`fold_split`; None: plain split)
_FOLD: ContextVar[tuple[int, int] | None] = ContextVar("layerlab_fold", default=None)


@contextmanager
def fold_split(fold: int | None, folds: int | None) -> Iterator[None]:
    """Within the block, every split (:func:`split_indices`, :func:`finish`) tests on fold ``fold`` of
    ``folds``: the loaders need no argument of their own, and a CSV loader's train-only statistics see the
    same split. ``folds`` None leaves the plain split. Raises DatasetError for a fold out of range."""
    if folds is None:
        yield
        return
    _check_fold(fold, folds)
    token = _FOLD.set((int(fold), int(folds)))
    try:
        yield
    finally:
        _FOLD.reset(token)


def _check_fold(fold: Any, folds: Any) -> None:
    ok = all(isinstance(v, int) and not isinstance(v, bool) for v in (fold, folds))
    if not ok or not (2 <= folds <= 50 and 0 <= fold < folds):
        raise DatasetError(f"folds must be an integer from 2 to 50 and fold one from 0 to folds - 1; received: "
                           f"fold={fold!r}, folds={folds!r}. Fix: e.g. --folds 5")


def fold_indices(y: np.ndarray | None, n: int, *, seed: int, fold: int, folds: int, val_fraction: float,
                 stratify: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Train/val/test indices of cross-validation fold ``fold`` of ``folds``: test is that fold (folds are
    disjoint and cover ``range(n)``; stratified, each class is dealt round-robin over the folds), validation
    ``val_fraction`` of each class taken from the other folds, train the rest.

    >>> y = np.array([0] * 10 + [1] * 5)
    >>> tests = [fold_indices(y, 15, seed=0, fold=k, folds=5, val_fraction=0.15, stratify=True)[2] for k in range(5)]
    >>> sorted(np.concatenate(tests).tolist()) == list(range(15)), [int((y[t] == 1).sum()) for t in tests]
    (True, [1, 1, 1, 1, 1])
    """
    _check_fold(fold, folds)
    if n < 2 * folds:
        raise DatasetError(f"the dataset has {n} rows; {folds} folds need at least {2 * folds}. Fix: fewer folds")
    rng = np.random.default_rng(seed)
    groups = [np.arange(n)] if not stratify or y is None else [np.flatnonzero(y == c) for c in np.unique(y)]
    order = np.concatenate([rng.permutation(g) for g in groups])
    which = np.empty(n, dtype=np.int64)
    which[order] = np.arange(n) % folds  # round-robin over the class-sorted order: balanced, stratified
    te = np.flatnonzero(which == fold)
    tr, va = [], []
    for g in groups:
        rest = rng.permutation(g[which[g] != fold])
        n_va = min(int(round(len(g) * val_fraction)), max(len(rest) - 1, 0))
        va.append(rest[:n_va])
        tr.append(rest[n_va:])
    tr, va = np.concatenate(tr), np.sort(np.concatenate(va))
    if len(va) == 0 or len(tr) == 0:
        raise DatasetError(f"the dataset ({n} rows) is too small for {folds} folds with val_fraction {val_fraction}")
    return rng.permutation(tr), va, te


def split_indices(y: np.ndarray | None, n: int, *, seed: int, val_fraction: float, test_fraction: float,
                  stratify: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded (optionally stratified) train/val/test index arrays (inside :func:`fold_split`: that fold's,
    :func:`fold_indices`; ``test_fraction`` is then unused).

    Raises:
        DatasetError: fractions out of range or too few samples for three non-empty splits.
    """
    for nm, f in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not (isinstance(f, (int, float)) and 0 < f < 1):
            raise DatasetError(f"{nm} must be between 0 and 1 (exclusive); got {f!r}")
    if (fold := _FOLD.get()) is not None:
        return fold_indices(y, n, seed=seed, fold=fold[0], folds=fold[1], val_fraction=val_fraction,
                            stratify=stratify)
    if val_fraction + test_fraction >= 0.9:
        raise DatasetError(f"val_fraction + test_fraction must be below 0.9; got {val_fraction + test_fraction}")
    if n < 6:
        raise DatasetError(f"the dataset has {n} rows; at least 6 are needed for train/validation/test splits")
    rng = np.random.default_rng(seed)
    groups = [np.arange(n)] if not stratify or y is None else [np.flatnonzero(y == c) for c in np.unique(y)]
    tr, va, te = [], [], []
    for g in groups:
        g = rng.permutation(g)
        n_te = int(round(len(g) * test_fraction))
        n_va = int(round(len(g) * val_fraction))
        te.append(g[:n_te])
        va.append(g[n_te:n_te + n_va])
        tr.append(g[n_te + n_va:])
    tr, va, te = (np.sort(np.concatenate(a)) for a in (tr, va, te))
    # tiny classes can leave a split empty; move one sample so every split has something
    for part in (va, te):
        if len(part) == 0:
            raise DatasetError(_too_few(n, y if stratify else None))
    return rng.permutation(tr), va, te


def _too_few(n: int, y: np.ndarray | None) -> str:
    """Why a split came out empty: too few rows, or (stratified) classes too small to give each split a row.

    >>> msg = _too_few(120, np.arange(120))
    >>> "a target of 120 classes in 120 rows, 120 of them with fewer than 3 rows" in msg, "not a name or an id" in msg
    (True, True)
    """
    if y is not None:
        classes, counts = np.unique(y, return_counts=True)
        few = int((counts < 3).sum())
        if few:
            return (f"each class needs a row for training, validation and test; received: a target of "
                    f"{len(classes):,} classes in {n:,} rows, {few:,} of them with fewer than 3 rows. Fix: choose a "
                    "target column whose values repeat (a category such as a grade, not a name or an id)")
    return (f"the dataset ({n} rows) is too small for the requested split fractions. Fix: use more rows, or larger "
            "val_fraction and test_fraction")


def apply_task(y: np.ndarray, info: DatasetInfo, task: str | None) -> np.ndarray:
    """Apply a task override to ``info`` (checked against the data); the targets it implies."""
    if task is not None and task != info.task:
        if task not in TASKS:
            raise DatasetError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
        if task in SEQUENCE_TASKS or info.task in SEQUENCE_TASKS:
            raise DatasetError(f"task {info.task} is the dataset's own (a corpus gives next_token, a series "
                               f"forecast); received: task={task!r} for {info.shown_name!r}. Fix: leave the task as it is")
        if task in ("multiclass", "binary") and info.task not in ("multiclass", "binary"):
            raise DatasetError(f"dataset {info.shown_name!r} has a continuous target; it cannot be used for {task}")
        if task == "binary" and info.num_classes not in (None, 2) and len(np.unique(y)) != 2:
            raise DatasetError(f"task binary needs exactly 2 classes; {info.shown_name!r} has {len(np.unique(y))}")
        if task == "regression" and info.task in ("multiclass", "binary"):
            y = y.astype(np.float32)
            info.class_names = []
        if task == "reconstruction" and info.input_dtype == "int64":
            raise DatasetError("reconstruction needs float inputs; token sequences cannot be reconstructed "
                               "with a regression loss")
        info.task = task
        info.options["task"] = task
    classification = info.task in ("multiclass", "binary")
    if classification:
        n_cls = int(y.max()) + 1 if len(y) else 0
        if not info.class_names:
            info.class_names = [str(i) for i in range(n_cls)]
        info.num_classes = len(info.class_names)
        info.out_size = 1 if info.task == "binary" else info.num_classes
    return y


def finish(X: np.ndarray, y: np.ndarray, info: DatasetInfo, *, task: str | None, seed: int,
            val_fraction: float, test_fraction: float, standardise: bool) -> Dataset:
    """Apply a task override, split, standardise (train statistics), and wrap as tensors."""
    import torch  # lazy: heavy (torch)

    y = apply_task(y, info, task)
    classification = info.task in ("multiclass", "binary")
    tr, va, te = split_indices(y if classification else None, len(X), seed=seed, val_fraction=val_fraction,
                               test_fraction=test_fraction, stratify=classification)
    if standardise and info.input_dtype == "float32":
        mean = X[tr].mean(0, keepdims=True)
        std = X[tr].std(0, keepdims=True)
        X = (X - mean) / np.where(std > 1e-8, std, 1.0)
        info.input_mean = mean.reshape(-1).astype(float).tolist()
        info.input_std = np.where(std > 1e-8, std, 1.0).reshape(-1).astype(float).tolist()
        info.notes.append("features standardised with training-split mean and standard deviation")
    X = np.ascontiguousarray(X)
    Xt = torch.from_numpy(X.astype(np.int64 if info.input_dtype == "int64" else np.float32, copy=not X.flags.writeable))
    yt = task_targets(y, tr, info, tuple(int(s) for s in X.shape[1:]))
    yt = Xt if yt is None else yt
    dataset_record(info, tuple(int(s) for s in X.shape[1:]), (tr, va, te), seed, val_fraction, test_fraction)

    def part(idx):
        xi = Xt[torch.from_numpy(idx)]
        return Split(xi, xi if yt is Xt else yt[torch.from_numpy(idx)])
    return Dataset(info, part(tr), part(va), part(te))


def task_targets(y: np.ndarray, tr: np.ndarray, info: DatasetInfo, input_shape: tuple[int, ...]) -> torch.Tensor | None:
    """The target tensor for ``info.task`` (regression standardised on ``tr``); None: the inputs (reconstruction)."""
    import torch  # lazy: heavy (torch)

    if info.task == "regression":
        y = y.astype(np.float32).reshape(len(y), -1)
        m, s = y[tr].mean(0), y[tr].std(0)
        s = np.where(s > 1e-8, s, 1.0)
        y = (y - m) / s
        info.target_mean, info.target_std = m.tolist(), s.tolist()
        info.out_size = y.shape[1]
        info.class_names = []
        info.num_classes = None
        return torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32))
    if info.task == "reconstruction":
        info.out_size = int(np.prod(input_shape))
        info.num_classes = None
        info.class_names = []
        return None
    return torch.from_numpy(y.astype(np.int64))


def dataset_record(info: DatasetInfo, input_shape: tuple[int, ...], parts: tuple, seed: int, val_fraction: float,
            test_fraction: float) -> None:
    info.input_shape = input_shape
    info.sizes = {k: len(p) for k, p in zip(("train", "val", "test"), parts)}
    info.options = {**info.options, "seed": seed, "val_fraction": val_fraction, "test_fraction": test_fraction}
    if (fold := _FOLD.get()) is not None:  # reloading with these options gives the same fold
        info.options.update(fold=fold[0], folds=fold[1])


def finish_pixels(pixels: np.ndarray, y: np.ndarray, info: DatasetInfo, *, task: str | None, seed: int,
                  val_fraction: float, test_fraction: float, normalize: bool = False) -> Dataset:
    """:func:`finish` for images kept as uint8 ``pixels`` (N, H, W, C), e.g. a memory-mapped cache: the splits
    are :class:`PixelSplit` row indices into it (nothing is copied); batches become float on the device.
    ``normalize``: per-channel mean and standard deviation of the training split (in [0, 1] units)."""

    import torch  # lazy: heavy (torch)

    y = apply_task(y, info, task)
    classification = info.task in ("multiclass", "binary")
    n, h, w, c = (int(s) for s in pixels.shape)
    tr, va, te = split_indices(y if classification else None, n, seed=seed, val_fraction=val_fraction,
                               test_fraction=test_fraction, stratify=classification)
    with warnings.catch_warnings():  # a read-only mapping: nothing writes to it
        warnings.simplefilter("ignore", UserWarning)
        pt = torch.from_numpy(pixels)
    mean = std = None
    if normalize:
        rows = np.sort(tr)
        acc = np.zeros((2, c))
        for i in range(0, len(rows), 4096):
            a = np.asarray(pixels[rows[i:i + 4096]], dtype=np.float64).reshape(-1, c) / 255.0
            acc += [a.sum(0), (a * a).sum(0)]
        cnt = max(len(rows) * h * w, 1)
        mean = (acc[0] / cnt).tolist()
        std = np.sqrt(np.maximum(acc[1] / cnt - (acc[0] / cnt) ** 2, 0)).clip(1e-3).tolist()
        info.options["normalize"] = True
        info.notes.append("pixels normalised per channel with the training split's mean and standard deviation")
    yt = task_targets(y, tr, info, (c, h, w))
    dataset_record(info, (c, h, w), (tr, va, te), seed, val_fraction, test_fraction)

    def part(idx):
        ix = torch.from_numpy(np.ascontiguousarray(idx, dtype=np.int64))
        return PixelSplit(pt, ix, None if yt is None else yt[ix], mean=mean, std=std)
    return Dataset(info, part(tr), part(va), part(te))



__all__ = ["DatasetInfo", "named_targets", "Split", "PixelSplit", "Dataset", "split_indices", "fold_indices", "fold_split", "finish", "finish_pixels", "TASKS",
           "MODALITIES", "SEQUENCE_TASKS"]
