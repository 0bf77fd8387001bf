"""The registry of offline built-in datasets: scikit-learn's bundled sets, 2-D toys and a token-sequence task.

A built-in is registered with :func:`register_dataset` (loader, description, modality, task, option defaults)
and loaded by :func:`load_builtin`; nothing is downloaded.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import builder.data.limits as limits
from builder.data.splits import Dataset, DatasetInfo, finish
from builder.errors import DatasetError


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


def load_builtin(name: str, *, seed: int = 0, val_fraction: float = 0.15, test_fraction: float = 0.15,
                 task: str | None = None, **options: Any) -> Dataset:
    """Generate or read a registered built-in dataset and split it (see :func:`builder.data.load_dataset`).

    Raises:
        DatasetError: unknown name or option, bad option values.
    """
    spec = _REGISTRY.get(name)
    if spec is None:
        raise DatasetError(f"unknown built-in dataset {name!r}; built-in datasets: {', '.join(sorted(_REGISTRY))}")
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        raise DatasetError(f"dataset {name!r} has no option(s) {', '.join(unknown)}; "
                           f"its options are: {', '.join(spec.options) or 'none'}")
    opts = {**spec.options, **options}
    n = opts.get("n_samples")
    if n is not None and not (isinstance(n, int) and 20 <= n <= limits.MAX_SAMPLES):
        raise DatasetError(f"n_samples must be an integer between 20 and {limits.MAX_SAMPLES}; got {n!r}")
    noise = opts.get("noise")
    if noise is not None and not (isinstance(noise, (int, float)) and 0 <= noise <= 5):
        raise DatasetError(f"noise must be a number between 0 and 5; got {noise!r}")
    X, y, fields = spec.loader(seed=seed, **opts)
    info = DatasetInfo(name=name, source=name, task=fields.pop("task", spec.task), modality=spec.modality,
                       description=spec.description, input_shape=tuple(X.shape[1:]), options={k: opts[k] for k in opts}, **fields)
    return finish(X, y, info, task=task, seed=seed, val_fraction=val_fraction, test_fraction=test_fraction,
                   standardise=spec.modality == "tabular")


def _sk():
    import sklearn.datasets as skd
    return skd


def preload() -> None:
    """Import scikit-learn's dataset loaders (~1.1 s) now, e.g. once in a warm launcher before it forks jobs."""
    _sk()


@functools.lru_cache(maxsize=8)
def _bundled(loader_name: str):
    """scikit-learn's bundled data (read once per process; callers copy)."""
    return getattr(_sk(), loader_name)()


@register_dataset("digits", description="scikit-learn's bundled 8x8 handwritten digits (1797 images, 10 "
                  "classes) as 1x8x8 images scaled to [0, 1] (option flatten=True, accepted by every dataset, "
                  "gives 64-long vectors)", modality="image", task="multiclass")
def _digits(seed: int):
    data = _digits_table()
    X = (data[:, :-1] / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    return X, data[:, -1].astype(np.int64), {"class_names": [str(c) for c in range(10)]}


@functools.lru_cache(maxsize=1)
def _digits_table() -> np.ndarray:
    """scikit-learn's bundled digits file (64 pixel columns, then the label) read as its ``load_digits`` reads it,
    without importing scikit-learn and pandas (~1 s of a `layerlab train` start); the loader where the file moved."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("sklearn")
    path = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz" if spec and spec.origin else None
    if path is None or not path.is_file():
        d = _bundled("load_digits")
        return np.column_stack([d.data, d.target])
    return np.loadtxt(path, delimiter=",")


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



def list_names() -> list[str]:
    """The registered built-in names, in registration order."""
    return list(_REGISTRY)


def is_builtin(name: str) -> bool:
    """Whether ``name`` is a registered built-in dataset."""
    return name in _REGISTRY


__all__ = ["DatasetSpec", "register_dataset", "list_datasets", "load_builtin", "list_names", "is_builtin", "preload",
           "SEQ_VOCAB_SIZE", "SEQ_MARKERS"]
