"""Datasets: a registry of offline built-in sets, CSV and image-folder loaders, seeded stratified splits.

Every loader returns a :class:`Dataset` bundle: a :class:`DatasetInfo` describing modality, shapes and
classes (used for previews and to check a graph against the data) plus train/validation/test tensors.
Nothing is downloaded and nothing is ever unpickled. Example::

    >>> ds = load_dataset("moons", n_samples=200, seed=0)
    >>> ds.info.input_shape, ds.info.num_classes, len(ds.train) + len(ds.val) + len(ds.test)
    ((2,), 2, 200)
"""

from __future__ import annotations

import functools
import io
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from builder.errors import DatasetError

if TYPE_CHECKING:
    pass

TASKS = ("multiclass", "binary", "regression", "reconstruction")
MODALITIES = ("image", "tabular", "points2d", "tokens")

# Upload limits (README "Upload limits"). Every size is checked before the memory it implies is allocated.
MAX_CSV_BYTES = 50 * 2**20
MAX_CSV_ROWS = 500_000
MAX_CSV_COLUMNS = 1_000
MAX_CSV_CELLS = 20_000_000  # rows x columns parsed (pandas holds each cell as a number or a string)
MAX_CSV_LINE_BYTES = 2**20
MAX_CATEGORIES = 100  # distinct values of one text column (one-hot encoded)
MAX_FEATURES = 2_000  # encoded feature columns in all (numeric + one-hot)
MAX_FEATURE_CELLS = 20_000_000  # rows x encoded features (built as float64: 160 MB)
MAX_IMAGE_FILES = 20_000
MAX_IMAGE_BYTES = 200 * 2**20  # compressed bytes of all images (zip members as declared and as read)
MAX_IMAGE_PIXELS = 16_000_000  # one image's width x height (header), checked before it is decoded
MAX_DECODED_BYTES = 256 * 2**20  # images x channels x height x width x 4 bytes after resizing
MAX_ZIP_ENTRIES = 50_000
MAX_IMAGE_SIDE = 256
MAX_SAMPLES = 200_000
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


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
    notes: list[str] = field(default_factory=list)
    source: str = ""

    @property
    def vocab_size(self) -> int | None:
        """Number of token ids (tokens modality only)."""
        return len(self.vocab) if self.vocab else None

    @property
    def input_modality(self) -> str:
        """The Input node ``modality`` param matching this dataset: vector, image or tokens."""
        return {"image": "image", "tokens": "tokens"}.get(self.modality, "vector")

    def reload_args(self) -> tuple[str, dict]:
        """``(name, options)`` such that ``load_dataset(name, **options)`` loads this dataset again."""
        return self.source or self.name, dict(self.options)

    def to_dict(self) -> dict:
        """JSON-serialisable form."""
        d = asdict(self)
        d["input_shape"] = list(self.input_shape)
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


@dataclass
class Dataset:
    """A loaded dataset: ``info`` plus ``train``, ``val`` and ``test`` splits (test untouched until evaluation)."""

    info: DatasetInfo
    train: Split
    val: Split
    test: Split

    def to(self, device: torch.device | str) -> Dataset:
        """Copy all splits to a device (small datasets live on the device as whole tensors)."""
        return Dataset(self.info, self.train.to(device), self.val.to(device), self.test.to(device))

    def flattened(self) -> Dataset:
        """A copy whose inputs are flat vectors (N, prod(input_shape)), e.g. digits for an MLP autoencoder."""
        if self.info.input_dtype != "float32":
            raise DatasetError("only float inputs can be flattened; token sequences are already flat")

        def flat(s: Split) -> Split:
            X = s.X.reshape(len(s.X), -1)
            return Split(X, X if s.y is s.X else s.y)
        info = replace(self.info, input_shape=(int(np.prod(self.info.input_shape)),),
                       modality="tabular" if self.info.modality == "image" else self.info.modality,
                       options={**self.info.options, "flatten": True})
        return Dataset(info, flat(self.train), flat(self.val), flat(self.test))

    def class_counts(self, split: str = "train") -> dict[str, int]:
        """Samples per class name in a split (empty for regression and reconstruction)."""
        if self.info.task not in ("multiclass", "binary"):
            return {}
        y = getattr(self, split).y.detach().cpu().long().reshape(-1)
        counts = torch.bincount(y, minlength=len(self.info.class_names)).tolist()
        return {name: int(c) for name, c in zip(self.info.class_names, counts)}

    def preview(self, n: int = 8, split: str = "train") -> list[dict]:
        """The first ``n`` samples as plain dicts for display: ``x`` (nested lists), ``y``, ``label``."""
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
                item["y"] = s.y[i].detach().cpu().tolist()
            out.append(item)
        return out


# ------------------------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class DatasetSpec:
    """A registered dataset: loader, description, modality, default task and option defaults."""

    name: str
    loader: Callable[..., tuple[np.ndarray, np.ndarray, dict]]
    description: str
    modality: str
    task: str
    options: dict[str, Any]
    help: dict[str, str] = field(default_factory=dict)


_REGISTRY: dict[str, DatasetSpec] = {}


def register_dataset(name: str, *, description: str, modality: str, task: str,
                     options: dict[str, Any] | None = None, help: dict[str, str] | None = None):
    """Decorator registering ``loader(seed, **options) -> (X, y, info_fields)`` under ``name``."""
    def deco(fn):
        _REGISTRY[name] = DatasetSpec(name, fn, description, modality, task, dict(options or {}),
                                      dict(help or {}))
        return fn
    return deco


def list_datasets() -> list[dict]:
    """Every registered dataset as ``{name, description, modality, task, options, help}``."""
    return [{"name": s.name, "description": s.description, "modality": s.modality, "task": s.task,
             "options": dict(s.options), "help": dict(s.help)} for s in _REGISTRY.values()]


def load_dataset(name: str, *, seed: int = 0, val_fraction: float = 0.15, test_fraction: float = 0.15,
                 task: str | None = None, **options: Any) -> Dataset:
    """Load a registered dataset and split it (seeded, stratified for classification).

    Args:
        name: a name from :func:`list_datasets` (``csv`` and ``image_folder`` take ``path``).
        seed: seeds generation and the split.
        val_fraction, test_fraction: split sizes.
        task: override the task, e.g. ``"reconstruction"`` (target = input) or ``"regression"``.
        options: dataset options (``n_samples``, ``noise``, ...); unknown ones are an error.

    Raises:
        DatasetError: unknown name or option, bad values, unreadable user data.
    """
    flatten = bool(options.pop("flatten", False))
    if flatten:
        ds = load_dataset(name, seed=seed, val_fraction=val_fraction, test_fraction=test_fraction, task=task,
                          **options)
        return ds.flattened()
    if name == "csv":
        if "path" not in options or "target" not in options:
            raise DatasetError("the csv dataset needs options path=... and target=...")
        return load_csv(options.pop("path"), options.pop("target"), task=task, seed=seed,
                        val_fraction=val_fraction, test_fraction=test_fraction, **options)
    if name in ("image_folder", "images"):
        if "path" not in options:
            raise DatasetError("the image_folder dataset needs option path=... (a folder or a .zip)")
        return load_image_folder(options.pop("path"), task=task, seed=seed, val_fraction=val_fraction,
                                 test_fraction=test_fraction, **options)
    spec = _REGISTRY.get(name)
    if spec is None:
        known = ", ".join(sorted([*_REGISTRY, "csv", "image_folder"]))
        raise DatasetError(f"unknown dataset {name!r}; known datasets: {known}")
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        raise DatasetError(f"dataset {name!r} has no option(s) {', '.join(unknown)}; "
                           f"its options are: {', '.join(spec.options) or 'none'}")
    opts = {**spec.options, **options}
    n = opts.get("n_samples")
    if n is not None and not (isinstance(n, int) and 20 <= n <= MAX_SAMPLES):
        raise DatasetError(f"n_samples must be an integer between 20 and {MAX_SAMPLES}; got {n!r}")
    noise = opts.get("noise")
    if noise is not None and not (isinstance(noise, (int, float)) and 0 <= noise <= 5):
        raise DatasetError(f"noise must be a number between 0 and 5; got {noise!r}")
    X, y, fields = spec.loader(seed=seed, **opts)
    info = DatasetInfo(name=name, source=name, task=fields.pop("task", spec.task), modality=spec.modality, description=spec.description,
                       input_shape=tuple(X.shape[1:]), options={k: opts[k] for k in opts}, **fields)
    return _finish(X, y, info, task=task, seed=seed, val_fraction=val_fraction, test_fraction=test_fraction,
                   standardise=spec.modality == "tabular")


# ------------------------------------------------------------------------------------------- built-ins
def _sk():
    import sklearn.datasets as skd
    return skd


@functools.lru_cache(maxsize=8)
def _bundled(loader_name: str):
    """scikit-learn's bundled data (read once per process; callers copy)."""
    return getattr(_sk(), loader_name)()


@register_dataset("digits", description="scikit-learn's bundled 8x8 handwritten digits (1797 images, 10 "
                  "classes) as 1x8x8 images scaled to [0, 1] (option flatten=True, accepted by every dataset, "
                  "gives 64-long vectors)", modality="image", task="multiclass")
def _digits(seed: int):
    d = _bundled("load_digits")
    X = (d.data / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    return X, d.target.astype(np.int64), {"class_names": [str(c) for c in d.target_names]}


def _sk_tabular(loader_name: str):
    def load(seed: int):
        d = _bundled(loader_name)
        fields: dict[str, Any] = {"feature_names": [str(f) for f in d.feature_names]}
        if hasattr(d, "target_names"):
            fields["class_names"] = [str(c) for c in d.target_names]
        y = d.target.astype(np.int64) if "class_names" in fields else d.target.astype(np.float32)
        return d.data.astype(np.float32), y, fields
    return load


register_dataset("iris", description="Iris flowers: 4 measurements, 3 species (150 rows)",
                 modality="tabular", task="multiclass")(_sk_tabular("load_iris"))
register_dataset("wine", description="Wine: 13 chemical measurements, 3 cultivars (178 rows)",
                 modality="tabular", task="multiclass")(_sk_tabular("load_wine"))
register_dataset("breast_cancer", description="Breast cancer Wisconsin: 30 features, malignant vs benign "
                 "(569 rows)", modality="tabular", task="binary")(_sk_tabular("load_breast_cancer"))
register_dataset("diabetes", description="Diabetes progression: 10 features, one continuous target (442 rows; "
                 "target standardised)", modality="tabular", task="regression")(_sk_tabular("load_diabetes"))

_TOY_OPTS = {"n_samples": 1000, "noise": 0.1}
_TOY_HELP = {"n_samples": "number of points", "noise": "standard deviation of Gaussian noise"}


def _points(X: np.ndarray, y: np.ndarray, names: list[str]):
    return X.astype(np.float32), y.astype(np.int64), {"class_names": names, "feature_names": ["x1", "x2"]}


@register_dataset("moons", description="Two interleaving half circles (TensorFlow Playground style)",
                  modality="points2d", task="binary", options=_TOY_OPTS, help=_TOY_HELP)
def _moons(seed: int, n_samples: int, noise: float):
    X, y = _sk().make_moons(n_samples=n_samples, noise=noise, random_state=seed)
    return _points(X, y, ["0", "1"])


@register_dataset("circles", description="A small circle inside a large one", modality="points2d",
                  task="binary", options={**_TOY_OPTS, "noise": 0.05}, help=_TOY_HELP)
def _circles(seed: int, n_samples: int, noise: float):
    X, y = _sk().make_circles(n_samples=n_samples, noise=noise, factor=0.5, random_state=seed)
    return _points(X, y, ["outer", "inner"])


@register_dataset("spirals", description="Two interleaved spirals", modality="points2d", task="binary",
                  options={**_TOY_OPTS, "noise": 0.05}, help=_TOY_HELP)
def _spirals(seed: int, n_samples: int, noise: float):
    rng = np.random.default_rng(seed)
    n0 = n_samples // 2
    X, y = [], []
    for label, n in ((0, n0), (1, n_samples - n0)):
        r = np.linspace(0.0, 1.0, n) ** 0.5 if n > 1 else np.zeros(n)
        t = 1.75 * r * 2 * np.pi + label * np.pi
        pts = np.stack([r * np.sin(t), r * np.cos(t)], 1) + rng.normal(0, noise, (n, 2))
        X.append(pts)
        y.append(np.full(n, label))
    return _points(np.concatenate(X), np.concatenate(y), ["0", "1"])


@register_dataset("xor", description="XOR: the label is whether x1 and x2 have the same sign",
                  modality="points2d", task="binary", options=_TOY_OPTS, help=_TOY_HELP)
def _xor(seed: int, n_samples: int, noise: float):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, (n_samples, 2))
    X += np.sign(X) * 0.05  # a small margin around the axes
    y = (X[:, 0] * X[:, 1] >= 0).astype(np.int64)
    return _points(X + rng.normal(0, noise, X.shape), y, ["different sign", "same sign"])


@register_dataset("blobs", description="Gaussian blobs, one class per centre", modality="points2d",
                  task="multiclass", options={**_TOY_OPTS, "noise": 1.0, "centers": 3},
                  help={**_TOY_HELP, "noise": "cluster standard deviation", "centers": "number of classes"})
def _blobs(seed: int, n_samples: int, noise: float, centers: int):
    if not (isinstance(centers, int) and 2 <= centers <= 20):
        raise DatasetError(f"centers must be an integer between 2 and 20; got {centers!r}")
    X, y = _sk().make_blobs(n_samples=n_samples, centers=centers, cluster_std=max(noise, 1e-3),
                            random_state=seed, center_box=(-8, 8))
    return _points(X / 4.0, y, [str(i) for i in range(centers)])


SEQ_VOCAB_SIZE = 12
SEQ_MARKERS = ["A", "B", "C", "D"]


@register_dataset("sequence", description="Sequence classification (tokens): 16 tokens over a 12-token "
                  "vocabulary of fillers (a, b, ...) and marker tokens (A, B, ...). One marker sits in the first "
                  "half and a distractor marker in the second half; the label is the marker in the FIRST half, "
                  "so a model must use position, and attention should focus on that token. With 2 markers "
                  "(default) the task is binary (chance 50%); with 3-4 it is multiclass. Input node: modality "
                  "tokens, shape [length], vocab_size 12.",
                  modality="tokens", task="binary", options={"n_samples": 4000, "length": 16, "markers": 2},
                  help={"n_samples": "number of sequences", "length": "tokens per sequence (even, 4-64)",
                        "markers": "number of marker tokens = classes (2-4)"})
def _sequence(seed: int, n_samples: int, length: int, markers: int):
    if not (isinstance(length, int) and 4 <= length <= 64 and length % 2 == 0):
        raise DatasetError(f"length must be an even integer between 4 and 64; got {length!r}")
    if markers not in (2, 3, 4):
        raise DatasetError(f"markers must be 2, 3 or 4; got {markers!r}")
    rng = np.random.default_rng(seed)
    nf, half = SEQ_VOCAB_SIZE - markers, length // 2
    X = rng.integers(0, nf, (n_samples, length))
    y = rng.integers(0, markers, n_samples)
    distractor = rng.integers(0, markers, n_samples)
    rows = np.arange(n_samples)
    X[rows, rng.integers(0, half, n_samples)] = nf + y
    X[rows, rng.integers(half, length, n_samples)] = nf + distractor
    fillers = [chr(ord("a") + i) for i in range(nf)]
    return X.astype(np.int64), y.astype(np.int64), {
        "class_names": SEQ_MARKERS[:markers], "vocab": fillers + SEQ_MARKERS[:markers], "input_dtype": "int64",
        "task": "binary" if markers == 2 else "multiclass",
        "notes": [f"Input node: modality tokens, shape [{length}], vocab_size {SEQ_VOCAB_SIZE}; label = the "
                  "marker token in the first half"]}


# ------------------------------------------------------------------------------------------ splitting
def split_indices(y: np.ndarray | None, n: int, *, seed: int, val_fraction: float, test_fraction: float,
                  stratify: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded (optionally stratified) train/val/test index arrays.

    Raises:
        DatasetError: fractions out of range or too few samples for three non-empty splits.
    """
    for nm, f in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not (isinstance(f, (int, float)) and 0 < f < 1):
            raise DatasetError(f"{nm} must be between 0 and 1 (exclusive); got {f!r}")
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
            raise DatasetError(f"the dataset ({n} rows) is too small for the requested split fractions")
    return rng.permutation(tr), va, te


def _finish(X: np.ndarray, y: np.ndarray, info: DatasetInfo, *, task: str | None, seed: int,
            val_fraction: float, test_fraction: float, standardise: bool) -> Dataset:
    """Apply a task override, split, standardise (train statistics), and wrap as tensors."""
    if task is not None and task != info.task:
        if task not in TASKS:
            raise DatasetError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
        if task in ("multiclass", "binary") and info.task not in ("multiclass", "binary"):
            raise DatasetError(f"dataset {info.name!r} has a continuous target; it cannot be used for {task}")
        if task == "binary" and info.num_classes not in (None, 2) and len(np.unique(y)) != 2:
            raise DatasetError(f"task binary needs exactly 2 classes; {info.name!r} has {len(np.unique(y))}")
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
    tr, va, te = split_indices(y if classification else None, len(X), seed=seed, val_fraction=val_fraction,
                               test_fraction=test_fraction, stratify=classification)
    if standardise and info.input_dtype == "float32":
        mean = X[tr].mean(0, keepdims=True)
        std = X[tr].std(0, keepdims=True)
        X = (X - mean) / np.where(std > 1e-8, std, 1.0)
        info.notes.append("features standardised with training-split mean and standard deviation")
    X = np.ascontiguousarray(X)
    Xt = torch.from_numpy(X.astype(np.int64 if info.input_dtype == "int64" else np.float32))
    if info.task == "regression":
        y = y.astype(np.float32).reshape(len(y), -1)
        m, s = y[tr].mean(0), y[tr].std(0)
        s = np.where(s > 1e-8, s, 1.0)
        y = (y - m) / s
        info.target_mean, info.target_std = m.tolist(), s.tolist()
        info.out_size = y.shape[1]
        info.class_names = []
        info.num_classes = None
        yt = torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32))
    elif info.task == "reconstruction":
        info.out_size = int(np.prod(X.shape[1:]))
        info.num_classes = None
        info.class_names = []
        yt = Xt
    else:
        yt = torch.from_numpy(y.astype(np.int64))
    info.input_shape = tuple(int(s) for s in X.shape[1:])
    info.sizes = {"train": len(tr), "val": len(va), "test": len(te)}
    info.options = {**info.options, "seed": seed, "val_fraction": val_fraction, "test_fraction": test_fraction}

    def part(idx):
        xi = Xt[torch.from_numpy(idx)]
        return Split(xi, xi if yt is Xt else yt[torch.from_numpy(idx)])
    return Dataset(info, part(tr), part(va), part(te))


# ------------------------------------------------------------------------------------------------ CSV
def load_csv(path: str | Path | bytes, target: str, task: str | None = None, *, seed: int = 0,
             val_fraction: float = 0.15, test_fraction: float = 0.15, name: str | None = None) -> Dataset:
    """Load a CSV file as a tabular dataset.

    Numeric columns are standardised (missing values filled with the training median), text columns are
    one-hot encoded (up to 100 categories). The task is inferred from the target column (text or few
    integer values: classification; otherwise regression) and can be overridden.

    Raises:
        DatasetError: empty file, missing target, non-numeric junk in a numeric column, a single class,
            too many rows, columns or categories, a file that is not CSV text.
    """
    import pandas as pd

    label = name or (Path(path).name if not isinstance(path, bytes) else "uploaded.csv")
    raw = _read_limited(path, MAX_CSV_BYTES, "CSV file")
    if not raw.strip():
        raise DatasetError(f"{label}: the file is empty; it needs a header row and at least one data row")
    text, encoding_note = _decode_csv(raw, label)
    _check_csv_shape(raw if encoding_note != "read as UTF-16" else text.encode("utf-8"), text, label)
    del raw
    try:
        df = pd.read_csv(io.StringIO(text), nrows=MAX_CSV_ROWS + 1, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise DatasetError(f"{label}: the file is empty; it needs a header row and data rows") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as e:
        raise DatasetError(f"{label}: not a readable CSV file ({str(e).splitlines()[0][:200]})") from None
    if len(df) == 0:
        raise DatasetError(f"{label}: the file has a header but no data rows")
    if len(df) > MAX_CSV_ROWS:
        raise DatasetError(f"{label}: more than {MAX_CSV_ROWS} rows; sample the file down first")
    if df.shape[1] > MAX_CSV_COLUMNS:
        raise DatasetError(f"{label}: {df.shape[1]} columns is more than the limit of {MAX_CSV_COLUMNS}")
    df.columns = [str(c).strip() for c in df.columns]
    if target not in df.columns:
        raise DatasetError(f"{label}: target column {target!r} not found; columns are: "
                           f"{', '.join(map(repr, df.columns[:30]))}")
    if df.shape[1] < 2:
        raise DatasetError(f"{label}: only the target column {target!r}; at least one feature column is needed")
    n_rows = len(df)
    df = df.dropna(subset=[target])
    if len(df) == 0:
        raise DatasetError(f"{label}: the target column {target!r} is empty in every row")
    dropped = n_rows - len(df)
    ycol = df[target]
    features = df.drop(columns=[target])

    # --- target and task
    y_num = pd.to_numeric(ycol, errors="coerce")
    y_is_num = bool(y_num.notna().all())
    if task is None:
        if not y_is_num:
            task = "multiclass"
        else:
            uniq = np.unique(y_num.to_numpy())
            integral = bool(np.all(np.isclose(uniq, np.round(uniq))))
            task = "multiclass" if integral and len(uniq) <= 20 else "regression"
        if task == "multiclass" and ycol.nunique() == 2:
            task = "binary"
    if task not in TASKS:
        raise DatasetError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    class_names: list[str] = []
    if task in ("multiclass", "binary"):
        keys = ycol.astype(str).str.strip()
        class_names = sorted(keys.unique().tolist(), key=_natural_key)
        if len(class_names) < 2:
            raise DatasetError(f"{label}: target {target!r} has a single class ({class_names[0]!r}); "
                               "classification needs at least two classes; pick another target or task "
                               "regression")
        if task == "binary" and len(class_names) != 2:
            raise DatasetError(f"{label}: task binary needs exactly 2 classes; target {target!r} has "
                               f"{len(class_names)}: use task multiclass")
        if len(class_names) > 1000:
            raise DatasetError(f"{label}: target {target!r} has {len(class_names)} classes (limit 1000); "
                               "is it an id column? Use task regression or another target")
        index = {c: i for i, c in enumerate(class_names)}
        y = keys.map(index).to_numpy(dtype=np.int64)
    elif task == "regression":
        if not y_is_num:
            bad = ycol[y_num.isna()].iloc[0]
            raise DatasetError(f"{label}: task regression needs a numeric target; column {target!r} has "
                               f"non-numeric value {bad!r}")
        y = y_num.to_numpy(dtype=np.float32)
    else:
        y = np.zeros(len(df), dtype=np.float32)

    # --- features: plan the encoding (and its size) before anything is materialised
    plan: list[tuple[str, str, Any]] = []  # (column, "num" | "cat", numeric values | (codes, levels))
    width = 0
    for c in features.columns:
        if width > MAX_FEATURES or width * len(df) > MAX_FEATURE_CELLS:
            break  # refused below, before the remaining columns are even looked at
        s = features[c]
        if s.isna().all():
            continue  # an empty column carries nothing
        num = pd.to_numeric(s, errors="coerce")
        bad = num.isna() & s.notna()
        if not bad.any():
            plan.append((c, "num", num))
            width += 1
            continue
        frac_numeric = float((num.notna()).sum()) / max(int(s.notna().sum()), 1)
        if frac_numeric >= 0.8:
            rows = [int(i) + 2 for i in np.flatnonzero(bad.to_numpy())[:5]]  # +2: header line, 1-based
            examples = ", ".join(repr(str(v)[:40]) for v in s[bad].iloc[:3])
            raise DatasetError(f"{label}: column {c!r} is numeric but has non-numeric values ({examples}) "
                               f"on line(s) {', '.join(map(str, rows))}; fix or remove those values")
        cats = s.astype(str).str.strip().where(s.notna(), "<missing>")
        n_levels = int(cats.nunique())
        if n_levels > MAX_CATEGORIES:
            raise DatasetError(f"{label}: text column {c!r} has {n_levels} distinct values (limit "
                               f"{MAX_CATEGORIES} for one-hot encoding); drop it or group its values")
        levels = sorted(cats.unique().tolist(), key=_natural_key)
        plan.append((c, "cat", (cats, levels)))
        width += len(levels)
    if not plan:
        raise DatasetError(f"{label}: no usable feature columns besides the target {target!r}")
    if width > MAX_FEATURES or width * len(df) > MAX_FEATURE_CELLS:
        wide = sorted(((len(v[1]), c) for c, k, v in plan if k == "cat"), reverse=True)[:3]
        more = "" if len(plan) == len(features.columns) else " (and more)"
        raise DatasetError(f"{label}: encoding gives {width}{more} features x {len(df)} rows, over the limits of "
                           f"{MAX_FEATURES} features and {MAX_FEATURE_CELLS:,} values; the widest text columns: "
                           + ", ".join(f"{c!r} ({n} values)" for n, c in wide)
                           + ". Fix: drop or group those text columns, or use fewer rows")
    X = np.empty((len(df), width), dtype=np.float64)
    names, kinds, j = [], [], 0
    for c, kind, v in plan:
        if kind == "num":
            X[:, j] = v.to_numpy(dtype=np.float64)
            names.append(c)
            kinds.append("num")
            j += 1
            continue
        cats, levels = v
        for lv in levels:
            X[:, j] = (cats == lv).to_numpy(dtype=np.float64)
            names.append(f"{c}={lv}")
            kinds.append("cat")
            j += 1
    del plan
    info = DatasetInfo(name=f"csv:{label}", source="csv", task=task, modality="tabular", input_shape=(X.shape[1],),
                       class_names=class_names, feature_names=names,
                       description=f"{label}: {len(df)} rows, target {target!r}",
                       options={"path": str(path) if not isinstance(path, bytes) else None, "target": target,
                                "task": task})
    if dropped:
        info.notes.append(f"{dropped} row(s) without a target value were left out")
    if encoding_note:
        info.notes.append(encoding_note)
    # numeric columns: fill missing with the training median, then standardise on train statistics
    num_idx = [i for i, k in enumerate(kinds) if k == "num"]
    tr, _, _ = split_indices(y if task in ("multiclass", "binary") else None, len(X), seed=seed,
                             val_fraction=val_fraction, test_fraction=test_fraction,
                             stratify=task in ("multiclass", "binary"))
    for i in num_idx:
        col = X[:, i]
        if np.isnan(col).any():
            med = np.nanmedian(col[tr]) if np.isfinite(col[tr]).any() else 0.0
            col[np.isnan(col)] = med
            info.notes.append(f"missing values in {names[i]!r} filled with the training median {med:g}")
        if not np.isfinite(col).all():
            raise DatasetError(f"{label}: column {names[i]!r} has infinite values; fix or remove them")
        m, sd = col[tr].mean(), col[tr].std()
        X[:, i] = (col - m) / (sd if sd > 1e-12 else 1.0)
    X = X.astype(np.float32)
    return _finish(X, y, info, task=None, seed=seed,
                   val_fraction=val_fraction, test_fraction=test_fraction, standardise=False)


def _decode_csv(raw: bytes, label: str) -> tuple[str, str]:
    """The CSV's text and a note on its encoding: UTF-8 (with or without BOM), UTF-16 with a BOM, else
    Windows-1252, else Latin-1 (which reads any byte). Binary files (NUL bytes) are refused."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return raw.decode("utf-16"), "read as UTF-16"
        except UnicodeDecodeError as e:
            raise DatasetError(f"{label}: broken UTF-16 text at byte {e.start}. Fix: save the file as UTF-8") from None
    nul = raw.find(b"\x00")
    if nul >= 0:
        line = raw.count(b"\n", 0, nul) + 1
        raise DatasetError(f"{label}: a binary file, not CSV text (NUL byte on line {line}); received: binary "
                           "data. Fix: export the table as CSV (UTF-8)")
    try:
        return raw.decode("utf-8-sig"), ""
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
    for enc in ("cp1252", "latin-1"):
        try:
            text = raw.decode(enc)
        except UnicodeDecodeError:
            continue
        return text, (f"not UTF-8 (first non-UTF-8 byte on line {line}); read as {enc}. If characters look "
                      "wrong, save the file as UTF-8")
    raise DatasetError(f"{label}: line {line} is not UTF-8 text. Fix: save the file as UTF-8")  # unreachable


def _check_csv_shape(raw: bytes, text: str, label: str) -> None:
    """Refuse a CSV whose longest line, header width or cell count would blow up parsing. Raises DatasetError.

    ``raw`` is the file in an ASCII-compatible encoding (newlines are byte 10): measured without a copy.
    """
    import csv

    ends = np.flatnonzero(np.frombuffer(raw, dtype=np.uint8) == 10)
    lengths = np.diff(np.concatenate([[-1], ends, [len(raw)]])) - 1
    longest = int(lengths.argmax())
    if lengths[longest] > MAX_CSV_LINE_BYTES:
        raise DatasetError(f"{label}: line {longest + 1} has {int(lengths[longest]):,} bytes, over the limit of "
                           f"{MAX_CSV_LINE_BYTES:,}. Fix: check the file is a CSV table (one sample per line)")
    nl = text.find("\n")
    first = text if nl < 0 else text[:nl]
    try:
        header = next(csv.reader([first]), [])
    except csv.Error:
        header = first.split(",")
    if len(header) > MAX_CSV_COLUMNS:
        raise DatasetError(f"{label}: the header has {len(header)} columns, over the limit of {MAX_CSV_COLUMNS}. "
                           "Fix: keep the columns the model needs")
    lines = len(ends) + 1
    if lines * max(len(header), 1) > MAX_CSV_CELLS:
        raise DatasetError(f"{label}: {lines:,} lines x {len(header)} columns is over the limit of "
                           f"{MAX_CSV_CELLS:,} cells. Fix: sample rows or drop columns")


def _natural_key(s: str):
    try:
        return (0, float(s), "")
    except ValueError:
        return (1, 0.0, s)


def _read_limited(path: str | Path | bytes, limit: int, what: str) -> bytes:
    """The bytes of a regular file, read with a hard cap (a file's reported size is never trusted: /proc files
    report 0 and stream more; devices and pipes are refused). Raises DatasetError."""
    if isinstance(path, (bytes, bytearray)):
        data = bytes(path)
    else:
        p = Path(path)
        if not p.exists():
            raise DatasetError(f"{p}: no such file")
        if p.is_dir():
            raise DatasetError(f"{p}: is a folder, not a {what}")
        if not p.is_file():
            raise DatasetError(f"{p}: not a regular file (a device, pipe or socket); received: a special file. "
                               f"Fix: save the {what} to a file and pass that")
        data = _read_at_most(p, limit)
    if len(data) > limit:
        raise DatasetError(f"the {what} is larger than the limit of {limit // 2**20} MiB; received: more than "
                           f"{limit} bytes. Fix: sample it down or split it")
    return data


# --------------------------------------------------------------------------------------- image folder
def load_image_folder(path: str | Path | bytes, size: tuple[int, int] = (32, 32), *, channels: int | None = None,
                      task: str | None = None, seed: int = 0, val_fraction: float = 0.15,
                      test_fraction: float = 0.15) -> Dataset:
    """Load images from a folder or a .zip (a path, or the zip's bytes) with one sub-folder per class.

    Images are decoded with Pillow (never unpickled), resized to ``size`` (H, W) and scaled to [0, 1].
    ``channels`` is 1 or 3; by default 3 if any image has colour, else 1.

    Raises:
        DatasetError: missing path, fewer than two classes, no images, unreadable images, size limits.
    """
    if isinstance(size, int):
        size = (size, size)
    size = tuple(int(s) for s in size)
    if len(size) != 2 or not all(4 <= s <= MAX_IMAGE_SIDE for s in size):
        raise DatasetError(f"image size must be two sides between 4 and {MAX_IMAGE_SIDE}; got {size!r}")
    if channels not in (None, 1, 3):
        raise DatasetError(f"channels must be 1 or 3; got {channels!r}")
    if isinstance(path, (bytes, bytearray)):  # an uploaded zip
        if len(path) > MAX_IMAGE_BYTES:
            raise DatasetError(f"the zip is larger than {MAX_IMAGE_BYTES // 2**20} MiB")
        p = Path("upload.zip")
        files = _zip_members(io.BytesIO(bytes(path)), p)
    else:
        p = Path(path)
        if not p.exists():
            raise DatasetError(f"{p}: no such folder or zip file")
        if p.is_file():
            files = _zip_members(p, p)
        elif p.is_dir():
            files = _folder_members(p)
        else:
            raise DatasetError(f"{p}: not a folder or a zip file; received: a special file (device, pipe or "
                               "socket). Fix: pass a folder with one sub-folder per class, or a .zip")
    classes = sorted({c for c, _, _ in files}, key=_natural_key)
    if len(classes) < 2:
        found = f"only class {classes[0]!r}" if classes else "no class sub-folders with images"
        raise DatasetError(f"{p}: {found}; put the images in one sub-folder per class (at least two), e.g. "
                           "cats/1.png, dogs/2.png")
    labels = [classes.index(c) for c, _, _ in files]
    heads, bad = [], []
    for _, name, read in files:  # pass 1: headers only (size, mode); nothing is decoded yet
        try:
            heads.append(_image_header(read(), name))
        except _BadImage:
            bad.append(name)
    if bad:
        raise DatasetError(f"{p}: {len(bad)} file(s) are not readable images, e.g. {', '.join(bad[:3])}; "
                           "remove them")
    huge = [(name, w, h) for (_, name, _), (w, h, _) in zip(files, heads) if w * h > MAX_IMAGE_PIXELS]
    if huge:
        name, w, h = huge[0]
        raise DatasetError(f"{p}: image {name} is {w}x{h} ({w * h / 1e6:.0f} megapixels), over the limit of "
                           f"{MAX_IMAGE_PIXELS / 1e6:.0f} megapixels per image ({len(huge)} such file(s)). Fix: "
                           "shrink the images before uploading")
    ch = channels or (3 if any(mode not in _GREY_MODES for _, _, mode in heads) else 1)
    decoded = len(files) * ch * size[0] * size[1] * 4
    if decoded > MAX_DECODED_BYTES:
        side = max(4, int((MAX_DECODED_BYTES / (len(files) * ch * 4)) ** 0.5))
        raise DatasetError(f"{p}: {len(files)} images x {ch} channel(s) x {size[0]}x{size[1]} would take "
                           f"{decoded / 2**20:.0f} MiB decoded, over the limit of {MAX_DECODED_BYTES // 2**20} MiB. "
                           f"Fix: a smaller size (at most {side}x{side} for this many images), channels=1, or "
                           "fewer images")
    arr = np.empty((len(files), size[0], size[1], ch), dtype=np.uint8)  # pass 2: decode into one buffer
    for k, (_, name, read) in enumerate(files):
        try:
            arr[k] = _decode(read(), size, ch)
        except _BadImage:
            bad.append(name)
    if bad:
        raise DatasetError(f"{p}: {len(bad)} file(s) are not readable images, e.g. {', '.join(bad[:3])}; "
                           "remove them")
    arr = arr.transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255.0)  # (N, C, H, W) in [0, 1]
    info = DatasetInfo(name=f"images:{p.name}", source="image_folder", task="multiclass", modality="image",
                       input_shape=tuple(arr.shape[1:]), class_names=classes,
                       description=f"{p.name}: {len(arr)} images in {len(classes)} classes, resized to "
                                   f"{size[0]}x{size[1]}",
                       options={"path": None if isinstance(path, (bytes, bytearray)) else str(p),
                                "size": list(size), "channels": ch})
    if len(classes) == 2:
        info.task = "binary"
    return _finish(arr, np.asarray(labels, dtype=np.int64), info, task=task, seed=seed,
                   val_fraction=val_fraction, test_fraction=test_fraction, standardise=False)


_GREY_MODES = ("L", "1", "LA", "I", "I;16", "F")


class _BadImage(Exception):
    pass


def _image_header(data: bytes, name: str) -> tuple[int, int, str]:
    """``(width, height, mode)`` from an image's header, without decoding its pixels."""
    import warnings

    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                w, h = im.size
                return int(w), int(h), str(im.mode)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as e:
        raise DatasetError(f"image {name} is over the limit of {MAX_IMAGE_PIXELS / 1e6:.0f} megapixels per image "
                           f"({str(e).split('(')[-1].split(')')[0][:40]}). Fix: shrink the images before "
                           "uploading") from None
    except Exception:  # Pillow raises many kinds (UnidentifiedImageError, OSError, SyntaxError, ...)
        raise _BadImage(name) from None


def _decode(data: bytes, size: tuple[int, int], ch: int) -> np.ndarray:
    """Decode one image (its size was checked from the header) and resize it: (H, W, ch) uint8."""
    import warnings

    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                if im.size[0] * im.size[1] > MAX_IMAGE_PIXELS:  # a header that changed between passes
                    raise _BadImage("too large")
                out = im.convert("L" if ch == 1 else "RGB").resize((size[1], size[0]), Image.BILINEAR)
        a = np.asarray(out, dtype=np.uint8)
        return a[:, :, None] if ch == 1 else a
    except _BadImage:
        raise
    except Exception:
        raise _BadImage("unreadable") from None


def _folder_members(root: Path) -> list[tuple[str, str, Callable[[], bytes]]]:
    subdirs = [d for d in sorted(root.iterdir()) if d.is_dir() and not d.name.startswith(".")]
    if len(subdirs) == 1 and not any(f.suffix.lower() in IMAGE_SUFFIXES for f in subdirs[0].iterdir()):
        subdirs = [d for d in sorted(subdirs[0].iterdir()) if d.is_dir() and not d.name.startswith(".")]
    out, total = [], 0
    for d in subdirs:
        if d.is_symlink():
            raise DatasetError(f"{root}: {d.name} is a symbolic link; received: a link. Fix: copy the images "
                               "into the folder (links are not followed)")
        for f in sorted(d.iterdir()):
            if f.suffix.lower() not in IMAGE_SUFFIXES or f.name.startswith("."):
                continue
            if f.is_symlink():
                raise DatasetError(f"{root}: {d.name}/{f.name} is a symbolic link; received: a link. Fix: copy "
                                   "the image itself (links are not followed)")
            if not f.is_file():
                continue
            size = f.stat().st_size
            total += size
            out.append((d.name, f"{d.name}/{f.name}", functools.partial(_read_capped, f)))
            _check_image_limits(len(out), total, root)
    return out


def _read_at_most(f: Path, limit: int) -> bytes:
    """At most ``limit + 1`` bytes of a file (more than ``limit`` means too large: its reported size may be
    wrong); a read error is a DatasetError."""
    try:
        with f.open("rb") as fh:
            return fh.read(limit + 1)
    except OSError as e:
        raise DatasetError(f"{f}: cannot read ({e.strerror})") from None


def _read_capped(f: Path) -> bytes:
    """One image file, read with a hard cap (its reported size may be wrong)."""
    data = _read_at_most(f, MAX_IMAGE_BYTES)
    if len(data) > MAX_IMAGE_BYTES:
        raise DatasetError(f"{f}: larger than {MAX_IMAGE_BYTES // 2**20} MiB")
    return data


def _zip_members(src, path: Path) -> list[tuple[str, str, Callable[[], bytes]]]:
    """Image members of a zip as ``(class, name, read)``; unsafe or damaged archives are a DatasetError.

    Nothing is extracted to disk. Names that climb out (``..``), absolute names, symbolic links and encrypted
    members are refused; declared sizes are bounded before reading and every read is capped at the declared
    size (a member that inflates past it, or fails its CRC, is a damaged zip).
    """
    try:
        if not zipfile.is_zipfile(src):
            raise DatasetError(f"{path}: not a folder or a zip file")
        entries = _zip_entry_count(src)
        if entries > MAX_ZIP_ENTRIES:
            raise DatasetError(f"{path}: the zip lists {entries} entries, over the limit of {MAX_ZIP_ENTRIES}. "
                               "Fix: upload a smaller subset")
        zf = zipfile.ZipFile(src)
        infos = zf.infolist()
    except DatasetError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError, NotImplementedError) as e:
        raise DatasetError(f"{path}: broken zip file ({str(e)[:200]}). Fix: re-create the zip") from None
    for i in infos:
        _check_zip_name(i, path)
    infos = [i for i in infos if not i.is_dir() and Path(i.filename).suffix.lower() in IMAGE_SUFFIXES
             and not any(part.startswith((".", "__MACOSX")) for part in Path(i.filename).parts)]
    parts = [Path(i.filename).parts for i in infos]
    # strip one common top-level folder (zip of a folder)
    strip = 1 if parts and all(len(pp) >= 3 for pp in parts) and len({pp[0] for pp in parts}) == 1 else 0
    out, total = [], 0
    for i, pp in zip(infos, parts):
        pp = pp[strip:]
        if len(pp) != 2:
            continue  # images must sit exactly one folder deep: class/image
        total += i.file_size
        out.append((pp[0], "/".join(pp), functools.partial(_read_member, zf, i, path)))
        _check_image_limits(len(out), total, path)
    return out


def _zip_entry_count(src) -> int:
    """Entries the zip's end record declares, read before ``ZipFile`` builds one object per entry."""
    try:
        if isinstance(src, (str, Path)):
            with open(src, "rb") as f:
                end = zipfile._EndRecData(f)
        else:
            end = zipfile._EndRecData(src)
    except (AttributeError, OSError, ValueError):
        return 0
    return int(end[zipfile._ECD_ENTRIES_TOTAL]) if end else 0


def _check_zip_name(i: zipfile.ZipInfo, path: Path) -> None:
    import stat

    name = i.filename
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or ".." in parts:
        raise DatasetError(f"{path}: member {name[:120]!r} points outside the archive (absolute or '..'); "
                           "received: an unsafe name. Fix: zip the class folders themselves")
    if stat.S_ISLNK(i.external_attr >> 16):
        raise DatasetError(f"{path}: member {name[:120]!r} is a symbolic link; received: a link. Fix: zip the "
                           "image files themselves")
    if i.flag_bits & 0x1:
        raise DatasetError(f"{path}: member {name[:120]!r} is encrypted. Fix: zip without a password")


def _read_member(zf: zipfile.ZipFile, i: zipfile.ZipInfo, path: Path) -> bytes:
    import zlib

    try:
        with zf.open(i) as f:
            data = f.read(i.file_size + 1)
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, NotImplementedError,
            RuntimeError) as e:
        raise DatasetError(f"{path}: member {i.filename[:120]!r} is damaged ({str(e)[:120]}). Fix: re-create "
                           "the zip") from None
    if len(data) != i.file_size:
        raise DatasetError(f"{path}: member {i.filename[:120]!r} inflates to a different size than it declares "
                           f"({i.file_size} bytes). Fix: re-create the zip")
    return data


def _check_image_limits(count: int, total: int, where: Path) -> None:
    if count > MAX_IMAGE_FILES:
        raise DatasetError(f"{where}: more than {MAX_IMAGE_FILES} images; use a smaller subset")
    if total > MAX_IMAGE_BYTES:
        raise DatasetError(f"{where}: images add up to more than {MAX_IMAGE_BYTES // 2**20} MiB "
                           "(uncompressed); use a smaller subset or smaller images")


# ------------------------------------------------------------------------------------- snapshots
def save_dataset(ds: Dataset, path: str | Path) -> Path:
    """Write a dataset's splits and info as one safetensors file (for uploads that cannot be re-read)."""
    import json
    import os

    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for name in ("train", "val", "test"):
        s = getattr(ds, name)
        tensors[f"{name}.X"] = s.X.detach().cpu().contiguous()
        if s.y is not s.X:
            tensors[f"{name}.y"] = s.y.detach().cpu().contiguous()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    save_file(tensors, str(tmp), metadata={"info": json.dumps(ds.info.to_dict())})
    os.replace(tmp, path)
    return path


def load_saved_dataset(path: str | Path) -> Dataset:
    """Inverse of :func:`save_dataset`. Raises DatasetError for a missing or foreign file."""
    import json

    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"dataset snapshot {path} not found")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {})["info"])
            t = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
    except (KeyError, ValueError, OSError) as e:
        raise DatasetError(f"{path} is not a LayerLab dataset snapshot ({e})") from None
    meta["input_shape"] = tuple(meta["input_shape"])
    info = DatasetInfo(**meta)

    def part(name: str) -> Split:
        X = t[f"{name}.X"]
        return Split(X, t.get(f"{name}.y", X))
    return Dataset(info, part("train"), part("val"), part("test"))


def describe(info: DatasetInfo) -> str:
    """One line: name, task, shape, classes, split sizes."""
    cls = f", {info.num_classes} classes" if info.num_classes else ""
    sz = "/".join(str(info.sizes.get(k, "?")) for k in ("train", "val", "test"))
    return f"{info.name}: {info.task}, input {list(info.input_shape)} ({info.input_dtype}){cls}, split {sz}"


__all__ = ["DatasetInfo", "Split", "Dataset", "DatasetSpec", "register_dataset", "list_datasets",
           "load_dataset", "load_csv", "load_image_folder", "save_dataset", "load_saved_dataset", "split_indices",
           "describe", "TASKS", "MODALITIES"]
