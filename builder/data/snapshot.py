"""Dataset snapshots (one safetensors file, for uploads that cannot be re-read) and one-line descriptions."""

from __future__ import annotations

import json
from pathlib import Path

from builder.data.disk import atomic_file
from builder.data.splits import Dataset, DatasetInfo, Split
from builder.errors import DatasetError


def save_dataset(ds: Dataset, path: str | Path) -> Path:
    """Write a dataset's splits and info as one safetensors file (for uploads that cannot be re-read)."""

    from safetensors.torch import save_file  # lazy: heavy (safetensors)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for name in ("train", "val", "test"):
        s = getattr(ds, name)
        tensors[f"{name}.X"] = s.X.detach().cpu().contiguous()
        if s.y is not s.X:
            tensors[f"{name}.y"] = s.y.detach().cpu().contiguous()
    with atomic_file(path, "the dataset snapshot") as tmp:  # a full disk: one line, no partial snapshot
        save_file(tensors, str(tmp), metadata={"info": json.dumps(ds.info.to_dict())})
    return path


def load_saved_dataset(path: str | Path) -> Dataset:
    """Inverse of :func:`save_dataset`. Raises DatasetError for a missing or foreign file."""

    from safetensors import safe_open  # lazy: heavy (safetensors)

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
    meta["flat_from"] = tuple(meta.get("flat_from") or ())
    info = DatasetInfo(**meta)

    def part(name: str) -> Split:
        X = t[f"{name}.X"]
        return Split(X, t.get(f"{name}.y", X))
    return Dataset(info, part("train"), part("val"), part("test"))


def describe(info: DatasetInfo) -> str:
    """One line: name (an upload as every page shows it, :attr:`DatasetInfo.shown_name`), task, shape, classes,
    split sizes.

    >>> from builder.data.splits import DatasetInfo
    >>> describe(DatasetInfo("csv:students.csv", "binary", "tabular", (2,), sizes={"train": 84, "val": 18, "test": 18}))
    'csv: students.csv: binary, input [2] (float32), split 84/18/18'
    """
    cls = f", {info.num_classes} classes" if info.num_classes else ""
    sz = "/".join(str(info.sizes.get(k, "?")) for k in ("train", "val", "test"))
    return f"{info.shown_name}: {info.task}, input {list(info.input_shape)} ({info.input_dtype}){cls}, split {sz}"



__all__ = ["save_dataset", "load_saved_dataset", "describe"]
