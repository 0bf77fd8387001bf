"""Dataset sources: one description (:class:`DatasetSource`) of where a dataset comes from, and one loader.

The project file (``dataset``: the Data page's choice), the CLI (``--dataset NAME``, ``--data-path``, options),
the Data page and the run store (``dataset_name`` + ``dataset_options``, :meth:`DatasetInfo.reload_args`) all
describe a dataset as a name plus options; :meth:`DatasetSource.of` reads each of these forms and
:func:`load_dataset` dispatches on the source's kind. The user-file kinds (CSV, image folder/zip) are listed
once in :data:`SOURCE_KINDS`: adding one touches this module (plus its loader) and the Data page's picker.
Example::

    >>> ds = load_dataset("moons", n_samples=200, seed=0)
    >>> ds.info.input_shape, ds.info.num_classes, len(ds.train) + len(ds.val) + len(ds.test)
    ((2,), 2, 200)
    >>> DatasetSource.of({"kind": "csv", "name": "t.csv", "file": "/u/t.csv", "target": "y", "task": ""})
    DatasetSource(name='csv', options={'path': '/u/t.csv', 'target': 'y'}, label='t.csv')
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from builder.data.builtin import is_builtin, list_names, load_builtin
from builder.data.images import load_image_folder
from builder.data.splits import Dataset, DatasetInfo, fold_split
from builder.data.tabular import load_csv
from builder.errors import DatasetError
from builder.escape import terminal_line

#: the keys of a source as the Data page and the project file store it (``Project.dataset``)
SPEC_KEYS = ("kind", "name", "options", "file", "target", "task", "size")
#: options every loader takes (the split and the task), with their defaults
_SPLIT_ARGS: dict[str, Any] = {"seed": 0, "val_fraction": 0.15, "test_fraction": 0.15, "task": None}


def _known_options(loader: Callable, opts: dict, fixed: tuple[str, ...] = ()) -> None:
    """Refuse options the loader does not take, naming the ones it does (before any file is read)."""
    known = [n for n, p in inspect.signature(loader).parameters.items()
             if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and n not in (*_SPLIT_ARGS, "path", *fixed)]
    unknown = sorted(str(k) for k in opts if k not in known)
    if unknown:
        close = {u: difflib.get_close_matches(u, known, n=1) for u in unknown}
        hint = "; ".join(f"{u}: did you mean {c[0]}?" for u, c in close.items() if c)
        raise DatasetError(f"unknown dataset option; received: {', '.join(terminal_line(u, 40) for u in unknown)}. "
                           f"Fix: use {', '.join(known)}" + (f" ({hint})" if hint else ""))


def _load_csv(path: Any, opts: dict, split: dict, label: str | None) -> Dataset:
    if label and "name" not in opts:
        opts["name"] = label
    _known_options(load_csv, {k: v for k, v in opts.items() if k != "target"})
    return load_csv(path, opts.pop("target"), **split, **opts)


def _load_images(path: Any, opts: dict, split: dict, label: str | None) -> Dataset:  # noqa: ARG001
    _known_options(load_image_folder, opts)
    return load_image_folder(path, **split, **opts)


def _csv_spec(src: DatasetSource) -> dict:
    o = src.options
    return {"kind": "csv", "name": src.label or Path(str(o["path"])).name, "file": o["path"],
            "target": o.get("target"), "task": o.get("task")}


def _images_spec(src: DatasetSource) -> dict:
    o = src.options
    size = o.get("size")
    size = (size or [32])[0] if isinstance(size, (list, tuple)) else int(size or 32)
    return {"kind": "images", "name": src.label or Path(str(o["path"])).name, "file": o["path"], "size": size}


def _csv_from_spec(spec: dict) -> dict:
    return {"path": spec.get("file"), "target": spec.get("target"), "task": spec.get("task") or None}


def _images_from_spec(spec: dict) -> dict:
    size = int(spec.get("size", 32))
    return {"path": spec.get("file"), "size": [size, size], "task": spec.get("task") or None}


@dataclass(frozen=True)
class SourceKind:
    """A kind of user-file source: its stored dataset name, the Data page's kind and label, how it loads.

    ``load(path, options, split, label)`` reads the file; ``to_spec`` / ``from_spec`` convert between a source's
    options and the Data page's (and the project file's) dict.
    """

    name: str  # the dataset name runs and the CLI use ("csv", "image_folder")
    kind: str  # the Data page's kind ("csv", "images")
    label: str  # the Data page's label
    load: Callable[[Any, dict, dict, str | None], Dataset]
    to_spec: Callable[[DatasetSource], dict]
    from_spec: Callable[[dict], dict]
    required: tuple[str, ...] = ("path",)
    missing: str = ""  # the message when a required option is missing
    suffixes: tuple[str, ...] = ()  # file name endings that pick this kind for a bare --data-path
    aliases: tuple[str, ...] = ()


#: the user-file kinds, in the Data page's order (after "builtin")
SOURCE_KINDS: dict[str, SourceKind] = {k.name: k for k in (
    SourceKind("csv", "csv", "CSV file", _load_csv, _csv_spec, _csv_from_spec, required=("path", "target"),
               missing="the csv dataset needs options path=... and target=...", suffixes=(".csv",)),
    SourceKind("image_folder", "images", "Image folder (.zip)", _load_images, _images_spec, _images_from_spec,
               missing="the image_folder dataset needs option path=... (a folder or a .zip)", aliases=("images",)),
)}
_BY_ALIAS = {a: k for k in SOURCE_KINDS.values() for a in (k.name, *k.aliases)}
_BY_PAGE_KIND = {k.kind: k for k in SOURCE_KINDS.values()}


def source_kinds() -> dict[str, str]:
    """The Data page's source kinds and their labels: ``{"builtin": "Built-in", "csv": "CSV file", ...}``."""
    return {"builtin": "Built-in", **{k.kind: k.label for k in SOURCE_KINDS.values()}}


def kind_for_path(path: str | Path) -> str:
    """The dataset name for a bare file or folder path (``--data-path`` without ``--dataset``)."""
    low = str(path).lower()
    for k in SOURCE_KINDS.values():
        if k.suffixes and low.endswith(k.suffixes):
            return k.name
    return "image_folder"


@dataclass(frozen=True)
class DatasetSource:
    """Where a dataset comes from: a built-in's name or a user-file kind (``csv``, ``image_folder``) plus options.

    ``options`` are the loader's options (``n_samples``, ``noise``, ``path``, ``target``, ``size``, ``seed``,
    ``task`` ...); ``label`` is the uploaded file's name shown to people (not an option).
    """

    name: str
    options: dict[str, Any] = field(default_factory=dict)
    label: str | None = None

    @property
    def upload(self) -> SourceKind | None:
        """The user-file kind of this source, or None for a built-in."""
        return _BY_ALIAS.get(self.name)

    @property
    def kind(self) -> str:
        """The Data page's kind: ``builtin``, ``csv`` or ``images``."""
        k = self.upload
        return "builtin" if k is None else k.kind

    @classmethod
    def of(cls, source: Any, options: dict | None = None) -> DatasetSource:
        """Coerce any description of a dataset to a source.

        Accepts a source, a name (with ``options``), a ``(name, options)`` pair, a :class:`DatasetInfo`
        (its reload arguments), the Data page's / project file's dict (``{"kind": ...}``), a run row
        (``dataset_name`` + ``dataset_options``) or ``{"name": ..., "options": ...}``.

        Raises:
            DatasetError: anything else, or a dict naming no dataset.
        """
        if isinstance(source, DatasetSource):
            return cls(source.name, {**source.options, **(options or {})}, source.label)
        if isinstance(source, str):
            return cls(source, dict(options or {}))
        if isinstance(source, DatasetInfo):
            name, opts = source.reload_args()
            return cls(name, {**opts, **(options or {})})
        if isinstance(source, tuple) and len(source) == 2 and isinstance(source[0], str):
            return cls(source[0], {**dict(source[1] or {}), **(options or {})})
        if isinstance(source, dict):
            if "kind" in source:
                src = cls.from_spec(source)
            elif isinstance(source.get("dataset_name"), str):
                src = cls(source["dataset_name"], dict(source.get("dataset_options") or {}))
            elif isinstance(source.get("name"), str):
                src = cls(source["name"], dict(source.get("options") or {}))
            else:
                raise DatasetError(f"a dataset source names a dataset; received: {sorted(source)!r}. Fix: give "
                                   "{'name': ..., 'options': {...}} or the Data page's {'kind': ...}")
            return cls(src.name, {**src.options, **(options or {})}, src.label)
        raise DatasetError(f"a dataset source is a name, a DatasetSource or a dict; received: "
                           f"{type(source).__name__}. Fix: pass e.g. 'digits' or DatasetSource('csv', {{...}})")

    @classmethod
    def from_spec(cls, spec: dict) -> DatasetSource:
        """The source of the Data page's (and project file's) dict: ``{"kind": "builtin", "name", "options"}``,
        ``{"kind": "csv", "name", "file", "target", "task"}`` or ``{"kind": "images", "name", "file", "size"}``."""
        k = _BY_PAGE_KIND.get(spec.get("kind", "builtin"))
        if k is None:
            return cls(str(spec.get("name")), dict(spec.get("options") or {}))
        opts = {o: v for o, v in k.from_spec(spec).items() if v is not None}
        return cls(k.name, opts, spec.get("name"))

    @classmethod
    def from_run(cls, run: dict) -> DatasetSource | None:
        """The source of a run row (``dataset_name`` + ``dataset_options``); None when the run names none."""
        name = run.get("dataset_name")
        return cls(name, dict(run.get("dataset_options") or {})) if name else None

    def to_spec(self) -> dict:
        """The Data page's dict for this source (built-ins without the ``seed`` and ``task`` of a run)."""
        k = self.upload
        if k is not None and self.options.get("path"):
            return k.to_spec(self)
        return {"kind": "builtin", "name": self.name,
                "options": {o: v for o, v in self.options.items() if o not in ("seed", "task")}}

    def display(self) -> str:
        """The dataset as shown to people: the name, or ``csv: file.csv`` for an upload."""
        path = self.options.get("path")
        if self.upload is not None and path:
            return f"{self.name}: {Path(str(path)).name}"
        return self.name

    def reloadable(self) -> bool:
        """Whether :func:`load_dataset` can load this source again (a built-in, or a file by its path)."""
        return bool(self.options.get("path")) if self.upload is not None else is_builtin(self.name)

    def load(self) -> Dataset:
        """Load this source (see :func:`load_dataset`)."""
        return load_dataset(self)


def load_dataset(source: Any, **options: Any) -> Dataset:
    """Load a dataset from any source description and split it (seeded, stratified for classification).

    Args:
        source: a built-in name from :func:`list_datasets`, ``csv`` (options ``path``, ``target``) or
            ``image_folder`` (option ``path``: a folder or a .zip), or anything :meth:`DatasetSource.of` reads.
        options: dataset options (``n_samples``, ``noise``, ...; unknown ones are an error), and for every
            dataset ``seed`` (generation and split), ``val_fraction``, ``test_fraction``, ``task`` (an override,
            e.g. ``"reconstruction"``), ``flatten`` (images as flat vectors) and ``folds`` with ``fold``
            (cross-validation: the test split is fold ``fold`` of ``folds``, :func:`~builder.data.splits.fold_split`).

    Raises:
        DatasetError: unknown name or option, bad values, unreadable user data.
    """
    src = DatasetSource.of(source, options)
    opts = dict(src.options)
    flatten = bool(opts.pop("flatten", False))
    split = {k: opts.pop(k, default) for k, default in _SPLIT_ARGS.items()}
    fold, folds = opts.pop("fold", 0), opts.pop("folds", None)
    kind = src.upload
    with fold_split(fold, folds):  # cross-validation: test on fold ``fold`` of ``folds``
        if kind is None:
            if not is_builtin(src.name):
                known = ", ".join(sorted([*list_names(), *SOURCE_KINDS]))
                raise DatasetError(f"unknown dataset {src.name!r}; known datasets: {known}")
            ds = load_builtin(src.name, **split, **opts)
        else:
            if any(o not in opts for o in kind.required):
                raise DatasetError(kind.missing)
            ds = kind.load(opts.pop("path"), opts, split, src.label)
    return ds.flattened() if flatten else ds


__all__ = ["DatasetSource", "SourceKind", "SOURCE_KINDS", "SPEC_KEYS", "source_kinds", "kind_for_path",
           "load_dataset"]
