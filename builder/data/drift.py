"""Data drift: has new data moved away from what a model was trained on? (tables, images and sequences)

The reference is the training split of the run's dataset in the data's own units: a built-in table with its
standardisation undone (:attr:`DatasetInfo.input_mean` / ``input_std``), a CSV re-read from its file with the
run's split reproduced (text columns stay text). Each feature of the new table is compared with it:

* numeric features: the two-sample Kolmogorov-Smirnov test;
* categorical features (text columns; integer columns with at most :data:`MAX_LEVELS` values): the χ² test of
  homogeneity on the level counts;
* every feature: the population stability index, ``PSI = sum (q - p) ln(q / p)`` over ten reference-quantile
  bins (or the levels); 0.1-0.25 is commonly read as a moderate shift, above 0.25 a large one.

A feature *moved* when its p-value is below ``alpha / features`` (Bonferroni: at most an ``alpha`` chance that
any feature of an unchanged source is flagged). With a model, the report adds the shift of its prediction
confidence (KS) and predicted class mix (χ²) between the held-out test split and the new data.

Images and sequences have no features to compare one by one: :func:`activation_drift` compares the model's
penultimate activations (the input of its last Linear, :func:`penultimate_activations`) on the training split
and on the new data by the maximum mean discrepancy (Gaussian kernel, median-distance bandwidth) with a
permutation test (:func:`mmd_test`); the shift passes when its p-value is below ``alpha``. New images come
from a folder or .zip laid out like the run's own (:func:`load_new_inputs`). Example::

    >>> import pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> ref = pd.DataFrame({"a": rng.normal(size=300), "b": rng.integers(0, 3, 300)})
    >>> new = pd.DataFrame({"a": rng.normal(size=300) * 3, "b": rng.integers(0, 3, 300)})
    >>> [(f.name, f.test, f.moved) for f in compare_tables(ref, new, categorical={"b"})]
    [('a', 'ks', True), ('b', 'chi2', False)]
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from builder._moved import moved_name
from builder.data import limits
from builder.data.files import natural_key
from builder.data.sources import DatasetSource, LocalFile, load_dataset
from builder.data.splits import Dataset, fold_split, split_indices
from builder.data.tabular import preview_csv
from builder.errors import DatasetError
from builder.graph.spec import PAD_ID

if TYPE_CHECKING:
    import pandas as pd
    import torch

MAX_LEVELS = 10  # an integer column with at most this many distinct values is treated as categorical
PSI_BINS = 10
_EPS = 1e-4  # floor of a bin's share in the PSI (an empty bin would give log 0)
_TABLES = ("tabular", "points2d")


@dataclass
class FeatureDrift:
    """One feature compared: the test (``ks`` or ``chi2``), its statistic and p-value, the PSI, whether it
    moved at the corrected level, and a summary of each side (mean, or the most common level)."""

    name: str
    test: str
    statistic: float
    p_value: float
    psi: float
    moved: bool
    reference: str
    new: str


@dataclass
class DriftReport:
    """Every feature compared, the corrected threshold, the features that moved, and the prediction shift."""

    features: list[FeatureDrift]
    alpha: float
    threshold: float
    n_reference: int
    n_new: int
    prediction: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def moved(self) -> list[str]:
        """The features that moved, the smallest p-value first."""
        return [f.name for f in sorted(self.features, key=lambda f: f.p_value) if f.moved]

    def to_dict(self) -> dict:
        """JSON-serialisable form."""
        return {"alpha": self.alpha, "threshold": self.threshold, "n_reference": self.n_reference,
                "n_new": self.n_new, "moved": self.moved, "features": [asdict(f) for f in self.features],
                "prediction": self.prediction, "notes": self.notes}

    def lines(self) -> list[str]:
        """The report as text lines: the summary, a table of the features, the prediction shift."""
        moved = self.moved
        out = [f"{len(moved)} of {len(self.features)} features moved (p < {self.alpha:g} / {len(self.features)} = "
               f"{self.threshold:.2g}, Bonferroni); reference {self.n_reference} training rows, new {self.n_new} rows"
               + (f": {', '.join(moved)}" if moved else "")]
        w = max([len("feature"), *(len(f.name) for f in self.features)])
        out.append(f"{'feature':<{w}}  test  {'statistic':>9}  {'p-value':>9}  {'PSI':>6}  moved  reference -> new")
        for f in sorted(self.features, key=lambda f: f.p_value):
            out.append(f"{f.name:<{w}}  {f.test:<4}  {f.statistic:>9.4f}  {f.p_value:>9.2e}  {f.psi:>6.3f}  "
                       f"{'yes' if f.moved else 'no':<5}  {f.reference} -> {f.new}")
        p = self.prediction
        if p:
            out.append(f"prediction confidence: mean {p['confidence_reference']:.3f} -> {p['confidence_new']:.3f} "
                       f"(KS p {p['confidence_p_value']:.2e})")
            if p.get("class_mix_new"):
                mix = ", ".join(f"{k} {p['class_mix_reference'][k]:.0%} -> {v:.0%}" for k, v in p["class_mix_new"].items())
                out.append(f"predicted class mix: {mix} (χ² p {p['class_mix_p_value']:.2e})")
        out += [f"note: {n}" for n in self.notes]
        return out


# ------------------------------------------------------------------------------------------- the tests
def _psi(p: np.ndarray, q: np.ndarray) -> float:
    p = np.maximum(p / max(p.sum(), 1), _EPS)
    q = np.maximum(q / max(q.sum(), 1), _EPS)
    return float(((q - p) * np.log(q / p)).sum())


def _chi2(ref_counts: np.ndarray, new_counts: np.ndarray) -> tuple[float, float]:
    from scipy.stats import chi2_contingency  # lazy: heavy (scipy)

    table = np.stack([ref_counts, new_counts]).astype(float)
    table = table[:, table.sum(0) > 0]
    if table.shape[1] < 2 or (table.sum(1) == 0).any():
        return 0.0, 1.0
    stat, p, _, _ = chi2_contingency(table, correction=False)
    return float(stat), float(p)


def _numeric(name: str, ref: np.ndarray, new: np.ndarray) -> tuple[str, float, float, float, str, str]:
    from scipy.stats import ks_2samp  # lazy: heavy (scipy)

    ref, new = ref[np.isfinite(ref)], new[np.isfinite(new)]
    if len(ref) == 0 or len(new) == 0:
        raise DatasetError(f"feature {name!r} has no numeric values on one side; received {len(ref)} reference "
                           f"and {len(new)} new values. Fix: check the column")
    res = ks_2samp(ref, new)
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, PSI_BINS + 1)[1:-1]))
    p = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=len(edges) + 1)
    q = np.bincount(np.searchsorted(edges, new, side="right"), minlength=len(edges) + 1)
    return "ks", float(res.statistic), float(res.pvalue), _psi(p, q), f"mean {ref.mean():.4g}", f"mean {new.mean():.4g}"


def _categorical(ref: Any, new: Any) -> tuple[str, float, float, float, str, str]:
    ref, new = [str(v) for v in ref], [str(v) for v in new]
    levels = sorted(set(ref) | set(new))
    index = {lv: i for i, lv in enumerate(levels)}
    p = np.bincount([index[v] for v in ref], minlength=len(levels))
    q = np.bincount([index[v] for v in new], minlength=len(levels))
    stat, pv = _chi2(p, q)

    def top(c: np.ndarray) -> str:
        i = int(c.argmax())
        return f"{levels[i]!s:.20} {c[i] / max(c.sum(), 1):.0%}"
    return "chi2", stat, pv, _psi(p, q), top(p), top(q)


def compare_tables(reference: pd.DataFrame, new: pd.DataFrame, *, categorical: set[str] | None = None,
                   alpha: float = 0.05) -> list[FeatureDrift]:
    """Compare every column of ``reference`` with the same column of ``new`` (KS or χ², PSI, Bonferroni).

    Raises:
        DatasetError: a column missing from ``new``, or an ``alpha`` outside (0, 1).
    """
    if not (0 < float(alpha) < 1):
        raise DatasetError(f"alpha is a significance level in (0, 1); received {alpha!r}. Fix: e.g. 0.05")
    missing = [c for c in reference.columns if c not in new.columns]
    if missing:
        raise DatasetError(f"the new data lacks column(s) {', '.join(map(repr, missing[:10]))} of the training data; "
                           f"received columns {', '.join(map(repr, list(new.columns)[:20]))}. Fix: give the same "
                           "feature columns (the target may be left out)")
    cat = set(categorical or ())
    threshold = float(alpha) / max(len(reference.columns), 1)
    out = []
    for c in reference.columns:
        if c in cat:
            test = _categorical(reference[c].where(reference[c].notna(), "<missing>"),
                                new[c].where(new[c].notna(), "<missing>"))
        else:
            import pandas as pd  # lazy: heavy (pandas)

            vals = pd.to_numeric(new[c], errors="coerce")
            if (vals.isna() & new[c].notna()).any():
                raise DatasetError(f"column {c!r} of the new data has non-numeric values (e.g. "
                                   f"{new[c][vals.isna() & new[c].notna()].iloc[0]!r}); it is numeric in the training "
                                   "data. Fix: correct those values")
            test = _numeric(c, reference[c].to_numpy(dtype=float), vals.to_numpy(dtype=float))
        name_, stat, p, psi, r, n = test
        out.append(FeatureDrift(str(c), name_, stat, p, psi, bool(p < threshold), r, n))
    return out


# ------------------------------------------------------------------------------------- reference data
def _low_cardinality_integers(df: pd.DataFrame) -> set[str]:
    out = set()
    for c in df.columns:
        v = df[c].to_numpy()
        if v.dtype.kind in "iuf":
            v = v[np.isfinite(v.astype(float))]
            if len(v) and np.all(v == np.round(v)) and len(np.unique(v)) <= MAX_LEVELS:
                out.add(c)
    return out


def _check_table(ds: Dataset) -> None:
    if ds.info.modality not in _TABLES:
        raise DatasetError(f"feature-by-feature drift checks are for tables; received {ds.info.modality} data. Fix: "
                           "compare images and sequences through the model (activation_drift, or check_drift with "
                           "the model)")


def reference_table(ds: Dataset) -> tuple[pd.DataFrame, set[str]]:
    """The training split of a table dataset in the data's units, and its categorical columns.

    Raises:
        DatasetError: images or sequences (not yet), or a CSV whose file can no longer be read.
    """
    import pandas as pd  # lazy: heavy (pandas)

    _check_table(ds)
    if ds.info.source == "csv":
        return _csv_reference(ds)
    X = ds.info.own_units(ds.train.X.reshape(len(ds.train), -1), "input")
    names = list(ds.info.feature_names) or [f"x{i + 1}" for i in range(X.shape[1])]
    if len(names) != X.shape[1]:
        names = [f"x{i + 1}" for i in range(X.shape[1])]
    df = pd.DataFrame(X, columns=names)
    return df, _low_cardinality_integers(df)


def _read_table(path: str | Path) -> pd.DataFrame:
    df = preview_csv(path, rows=limits.MAX_CSV_ROWS)  # every size check of load_csv, before pandas parses
    df.columns = [str(c).strip() for c in df.columns]
    return df


def _csv_reference(ds: Dataset) -> tuple[pd.DataFrame, set[str]]:
    """A CSV run's training rows re-read from its file, the split reproduced as :func:`load_csv` makes it."""
    import pandas as pd  # lazy: heavy (pandas)


    opts = ds.info.options
    path, target = opts.get("path"), opts.get("target")
    if not path or not Path(str(path)).is_file():
        raise DatasetError(f"the training file of this run is gone; received: {path!r}. Fix: put the CSV back at "
                           "that path to compare new data with it")
    df = _read_table(path).dropna(subset=[target])
    classification = ds.info.task in ("multiclass", "binary")
    y = None
    if classification:
        keys = df[target].astype(str).str.strip()
        index = {c: i for i, c in enumerate(sorted(keys.unique().tolist(), key=natural_key))}
        y = keys.map(index).to_numpy(dtype=np.int64)
    with fold_split(opts.get("fold", 0), opts.get("folds")):
        tr, _, _ = split_indices(y, len(df), seed=int(opts.get("seed", 0)), stratify=classification,
                                 val_fraction=float(opts.get("val_fraction", 0.15)),
                                 test_fraction=float(opts.get("test_fraction", 0.15)))
    features = df.drop(columns=[target]).iloc[np.sort(tr)].reset_index(drop=True)
    features = features[[c for c in features.columns if not features[c].isna().all()]]
    text = {c for c in features.columns
            if (pd.to_numeric(features[c], errors="coerce").isna() & features[c].notna()).any()}
    return features, text | _low_cardinality_integers(features.drop(columns=list(text)))


# ------------------------------------------------------------------------------------- model inputs
def encode_table(ds: Dataset, table: pd.DataFrame, reference: pd.DataFrame | None = None) -> torch.Tensor:
    """The rows of ``table`` as the model's inputs, encoded like the run's dataset (standardised with the
    training statistics; a CSV's text columns one-hot over the training levels, unseen levels all zero).

    Raises:
        DatasetError: a column the model needs is missing.
    """
    import pandas as pd  # lazy: heavy (pandas)
    import torch  # lazy: heavy (torch)

    if ds.info.source == "csv":
        ref = reference if reference is not None else _csv_reference(ds)[0]
        cols = []
        for name in ds.info.feature_names:
            if name in ref.columns and name in table.columns and name not in _text_columns(ref):
                r = pd.to_numeric(ref[name], errors="coerce").to_numpy(dtype=float)
                med = np.nanmedian(r) if np.isfinite(r).any() else 0.0
                r = np.where(np.isnan(r), med, r)
                v = pd.to_numeric(table[name], errors="coerce").to_numpy(dtype=float)
                sd = r.std()
                cols.append((np.where(np.isnan(v), med, v) - r.mean()) / (sd if sd > 1e-12 else 1.0))
                continue
            col, _, level = name.partition("=")
            if col not in table.columns:
                raise DatasetError(f"the new data lacks column {col!r} the model reads. Fix: add it")
            cats = table[col].astype(str).str.strip().where(table[col].notna(), "<missing>")
            cols.append((cats == level).to_numpy(dtype=float))
        X = np.stack(cols, 1)
    else:
        names = list(reference.columns) if reference is not None else reference_table(ds)[0].columns.tolist()
        X = table[names].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
        X = ds.info.model_units(X)
    return torch.from_numpy(np.nan_to_num(X).astype(np.float32)).reshape(len(X), *ds.info.input_shape)


def _text_columns(ref: pd.DataFrame) -> set[str]:
    import pandas as pd  # lazy: heavy (pandas)

    return {c for c in ref.columns if (pd.to_numeric(ref[c], errors="coerce").isna() & ref[c].notna()).any()}


def prediction_shift(model: Any, ds: Dataset, X_new: torch.Tensor) -> dict[str, Any]:
    """The model's confidence and predicted class mix on the test split (reference) and on ``X_new``."""
    from scipy.stats import ks_2samp  # lazy: heavy (scipy)

    from builder.data.predictions import predict  # lazy: heavy (torch)

    ref = predict(model, ds.test.X, ds.info.task)  # each batch runs on the model's device
    new = predict(model, X_new, ds.info.task)
    cr, cn = ref.confidence.cpu().numpy(), new.confidence.cpu().numpy()
    out: dict[str, Any] = {"confidence_reference": float(cr.mean()), "confidence_new": float(cn.mean()),
                           "confidence_ks": float(ks_2samp(cr, cn).statistic),
                           "confidence_p_value": float(ks_2samp(cr, cn).pvalue)}
    if ref.classification:
        names = ds.info.class_names or [str(i) for i in range(int(ref.outputs.shape[1]) if ref.outputs.shape[1] > 1 else 2)]
        p = np.bincount(ref.labels.cpu().numpy(), minlength=len(names))[:len(names)]
        q = np.bincount(new.labels.cpu().numpy(), minlength=len(names))[:len(names)]
        _, pv = _chi2(p, q)
        out.update(class_mix_reference={n: float(c / max(p.sum(), 1)) for n, c in zip(names, p)},
                   class_mix_new={n: float(c / max(q.sum(), 1)) for n, c in zip(names, q)},
                   class_mix_p_value=pv, class_mix_psi=_psi(p, q))
    return out


def check_drift(ds: Dataset, new: str | Path | pd.DataFrame, *, model: Any = None,
                alpha: float = 0.05) -> DriftReport:
    """Compare new data (a CSV path or a DataFrame) with the training split of ``ds`` (a run's dataset, from
    :func:`builder.interpret.session.open_run`), and with ``model`` its prediction shift.

    Images and sequences (``new`` a folder/.zip path or an input tensor) are compared through ``model``'s
    penultimate activations (:func:`activation_drift`).

    Raises:
        DatasetError: an unreadable file, missing or non-numeric columns; images or sequences without a model.
    """
    if ds.info.modality not in _TABLES:
        if model is None:
            raise DatasetError(f"drift of {ds.info.modality} data is measured on the model's activations; received "
                               "no model. Fix: pass the run's model")
        if ds.info.modality == "tokens" and ds.info.tokenizer:  # texts (the synthetic token sets have no words)
            return text_drift(model, ds, new_token_ids(ds, new) if isinstance(new, (str, Path)) else new, alpha=alpha)
        X_new = new if not isinstance(new, (str, Path)) else load_new_inputs(ds, new)
        return activation_drift(model, ds, X_new, alpha=alpha)
    reference, categorical = reference_table(ds)
    table = _read_table(new) if isinstance(new, (str, Path)) else new
    table = table.rename(columns=lambda c: str(c).strip())
    if len(table) == 0:
        raise DatasetError("the new data has no rows. Fix: give a CSV with a header and data rows")
    features = compare_tables(reference, table, categorical=categorical, alpha=alpha)
    report = DriftReport(features, float(alpha), float(alpha) / max(len(features), 1), len(reference), len(table))
    extra = [c for c in table.columns if c not in reference.columns]
    if extra:
        report.notes.append(f"column(s) not in the training features, left out: {', '.join(map(str, extra[:10]))}")
    if len(table) < 30:
        report.notes.append(f"only {len(table)} new rows: the tests have little power to see a shift")
    if model is not None:
        report.prediction = prediction_shift(model, ds, encode_table(ds, table, reference))
    if any(math.isnan(f.p_value) for f in features):
        report.notes.append("some tests had constant data on both sides (p-value nan)")
    return report


# ------------------------------------------------------------------------------ images and sequences
MMD_SAMPLES = 500  # at most this many rows per side enter the MMD (a random subset; O(n²) kernel)
MMD_PERMUTATIONS = 200


def penultimate_activations(model: Any, X: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """(N, D): the input of the model's last ``nn.Linear`` (its penultimate features, flattened) for ``X``.

    Raises:
        DatasetError: the model has no Linear layer.
    """
    import torch  # lazy: heavy (torch)

    last = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    if not last:
        raise DatasetError("drift on activations reads the input of the model's last Linear layer; received a model "
                           "without one. Fix: check a classifier or regressor that ends in a Linear")
    got: list[torch.Tensor] = []
    hook = last[-1].register_forward_pre_hook(lambda _m, args: got.append(args[0].detach().reshape(len(args[0]), -1)))
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            for i in range(0, len(X), batch_size):
                model(X[i:i + batch_size].to(device))
    finally:
        hook.remove()
        model.train(was)
    return torch.cat(got).float().cpu()


def mmd_test(a: torch.Tensor, b: torch.Tensor, *, permutations: int = MMD_PERMUTATIONS, seed: int = 0
             ) -> tuple[float, float]:
    """``(MMD², p-value)`` of two samples (rows) with a Gaussian kernel whose bandwidth is the median pairwise
    distance; the p-value from ``permutations`` random relabellings of the pooled rows.

    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> x, y = torch.randn(100, 3, generator=g), torch.randn(100, 3, generator=g)
    >>> mmd_test(x, y)[1] > 0.05, mmd_test(x, y + 1.0)[1] < 0.01
    (True, True)
    """
    import torch  # lazy: heavy (torch)

    z = torch.cat([a, b]).double()
    d2 = torch.cdist(z, z).pow(2)
    med = d2[d2 > 0].median() if (d2 > 0).any() else torch.tensor(1.0, dtype=d2.dtype)
    k = torch.exp(-d2 / med)
    n, m = len(a), len(b)
    g = torch.Generator().manual_seed(seed)
    # MMD² (biased) of a labelling = w^T K w with w = 1/n on one side, -1/m on the other; column 0 is the real one
    idx = torch.stack([torch.arange(n + m)] + [torch.randperm(n + m, generator=g) for _ in range(int(permutations))], 1)
    w = torch.where(idx < n, 1.0 / n, -1.0 / m).to(k.dtype)  # (n + m, 1 + permutations)
    stats = (w * (k @ w)).sum(0)
    observed = float(stats[0])
    hits = int((stats[1:] >= stats[0] - 1e-12).sum())
    return observed, (hits + 1) / (int(permutations) + 1)


def _subset(X: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    import torch  # lazy: heavy (torch)

    if len(X) <= n:
        return X
    return X[torch.randperm(len(X), generator=torch.Generator().manual_seed(seed))[:n]]


def activation_drift(model: Any, ds: Dataset, X_new: torch.Tensor, *, alpha: float = 0.05,
                     samples: int = MMD_SAMPLES, permutations: int = MMD_PERMUTATIONS, seed: int = 0) -> DriftReport:
    """Compare ``X_new`` with the training split of ``ds`` on ``model``'s penultimate activations (MMD with a
    permutation test, one row of the report), and the prediction shift against the test split.

    Raises:
        DatasetError: no new rows, inputs that do not fit the model, an ``alpha`` outside (0, 1).
    """
    if not (0 < float(alpha) < 1):
        raise DatasetError(f"alpha is a significance level in (0, 1); received {alpha!r}. Fix: e.g. 0.05")
    if len(X_new) == 0:
        raise DatasetError("the new data has no samples. Fix: give at least a few dozen")
    if tuple(X_new.shape[1:]) != tuple(ds.train.X.shape[1:]):
        raise DatasetError(f"the new inputs must have the training inputs' shape {tuple(ds.train.X.shape[1:])}; "
                           f"received {tuple(X_new.shape[1:])}. Fix: give data prepared like the run's")
    ref = penultimate_activations(model, _subset(ds.train.X, samples, seed))
    new = penultimate_activations(model, _subset(X_new, samples, seed + 1))
    stat, p = mmd_test(ref, new, permutations=permutations, seed=seed)
    feature = FeatureDrift(f"penultimate activations ({ref.shape[1]} dims)", "mmd", stat, p, 0.0, bool(p < alpha),
                           f"norm {float(ref.norm(dim=1).mean()):.4g}", f"norm {float(new.norm(dim=1).mean()):.4g}")
    report = DriftReport([feature], float(alpha), float(alpha), len(ds.train), len(X_new))
    report.notes.append(f"{ds.info.modality} data compared on the model's penultimate activations (MMD², Gaussian "
                        f"kernel, {permutations} permutations; up to {samples} samples a side; PSI not defined)")
    if len(X_new) < 30:
        report.notes.append(f"only {len(X_new)} new samples: the test has little power to see a shift")
    report.prediction = prediction_shift(model, ds, X_new)
    return report


# ------------------------------------------------------------------------------------------------ text
def new_token_ids(ds: Dataset, path: str | Path) -> torch.Tensor:
    """New texts (:func:`builder.data.text.read_new_texts`: a CSV with the run's text column, a .txt of one text
    per line, a .zip of .txt files) as token ids (N, max_length), by the run's own tokenizer.

    Raises:
        DatasetError: a run without a tokenizer, or texts that cannot be read.
    """
    import torch  # lazy: heavy (torch)

    from builder.data.text import (  # lazy: heavy (tokenizers)
        encode,
        load_tokenizer,
        read_new_texts,
        special_tokens,
    )

    if not ds.info.tokenizer:
        raise DatasetError(f"new texts are read with the run's tokenizer; received a run on {ds.info.shown_name!r} without "
                           "one. Fix: check a run trained on text (a text dataset or upload)")
    texts = read_new_texts(path, ds.info.options.get("text_column"))
    return torch.from_numpy(encode(load_tokenizer(ds.info.tokenizer), texts, int(ds.info.input_shape[0]),
                                   special=special_tokens(ds.info)))


def text_drift(model: Any, ds: Dataset, X_new: torch.Tensor, *, alpha: float = 0.05) -> DriftReport:
    """New token ids ``X_new`` (N, T) against the run's training texts: tokens per text (KS, PSI; what the model
    reads, so cut at ``max_length``), the out-of-vocabulary rate (the share of ``<unk>`` among the real tokens;
    χ²), the penultimate activations (MMD, :func:`activation_drift`) and the prediction shift. Bonferroni over
    the three rows.

    Raises:
        DatasetError: as :func:`activation_drift`.
    """
    from builder.data.text import UNK_ID  # lazy: heavy (tokenizers)

    report = activation_drift(model, ds, X_new, alpha=alpha)
    ref, new = ds.train.X, X_new
    lengths = [(x != PAD_ID).sum(1).cpu().numpy().astype(float) for x in (ref, new)]
    test = _numeric("tokens per text", *lengths)
    rows = [FeatureDrift("tokens per text", *test[:3], test[3], False, *test[4:])]
    real = [int((x != PAD_ID).sum()) for x in (ref, new)]
    unk = [int((x == UNK_ID).sum()) for x in (ref, new)]
    counts = [np.array([r - u, u]) for r, u in zip(real, unk, strict=True)]
    stat, p = _chi2(*counts)
    rows.append(FeatureDrift("out-of-vocabulary rate", "chi2", stat, p, _psi(*counts), False,
                             f"{unk[0] / max(real[0], 1):.2%}", f"{unk[1] / max(real[1], 1):.2%}"))
    report.features = rows + report.features
    report.threshold = float(alpha) / len(report.features)
    for f in report.features:
        f.moved = bool(f.p_value < report.threshold)
    report.notes.append("texts: tokens per text as the model reads them (cut at max_length); out-of-vocabulary "
                        "= the share of <unk> among the real tokens (0 for byte-level BPE, which has no unknowns)")
    return report


def load_new_inputs(ds: Dataset, path: str | Path) -> torch.Tensor:
    """The inputs of new data for a run trained on an image folder: a folder or .zip with the run's layout
    (one sub-folder per class), decoded at the run's size and channels; every split's images together.

    Raises:
        DatasetError: a run that was not trained on an image folder, or the new data cannot be loaded.
    """
    import torch  # lazy: heavy (torch)


    src = DatasetSource.of(ds.info)
    if src.name != "image_folder":
        raise DatasetError(f"new data from a file needs a run trained on an image folder or a table; received a run "
                           f"on {src.name!r}. Fix: pass the new inputs as a tensor (activation_drift)")
    opts = {k: v for k, v in src.options.items() if k not in ("path", "upload", "fold", "folds")}
    # ``path`` comes from the CLI's command line or the server's resolved upload, never from content
    new = load_dataset(DatasetSource(src.name, {**opts, "path": LocalFile(Path(path))}))
    return torch.cat([s.X for s in (new.train, new.val, new.test) if len(s)])


__all__ = ["FeatureDrift", "DriftReport", "compare_tables", "reference_table", "encode_table", "prediction_shift",
           "check_drift", "penultimate_activations", "mmd_test", "activation_drift", "load_new_inputs",
           "new_token_ids", "text_drift",
           "MAX_LEVELS"]


def __getattr__(name: str):  # drift_run moved up to builder.interpret.run_views (builder/_moved.py)
    return moved_name(__name__, name)
