"""Dataset sources: one description (:class:`DatasetSource`) of where a dataset comes from, and one loader.

The project file (``dataset``: the Data page's choice), the CLI (``--dataset NAME``, ``--data-path``, options),
the Data page and the run store (``dataset_name`` + ``dataset_options``, :meth:`DatasetInfo.reload_args`) all
describe a dataset as a name plus options; :meth:`DatasetSource.of` reads each of these forms and
:func:`load_dataset` dispatches on the source's kind. The user-file kinds (CSV, image folder/zip) are listed
once in :data:`SOURCE_KINDS`: adding one touches this module (plus its loader) and the Data page's picker.

What content (a project, a link, a form, a job, a run record) may say about data is decided here, once, for
every door: a built-in's name with its options, or one of the actor's own uploads by its opaque id (option
``upload``: ``upload:<id>``, :mod:`builder.data.uploads`), resolved inside the folder the caller hands in
(``uploads=``, the actor's :func:`builder.runs.owners.upload_dir`). A server path anywhere in content (option
``path``, ``root``, ``file``, ``dir``, any value that looks like a path, ``file://`` ...) is refused by
:func:`content_problems` before anything is opened, with a message that quotes no value and no file. Only the
CLI's local user names files, on its command line: the CLI turns those into :class:`LocalFile` at its door, a type
no decoded content can produce. Example::

    >>> ds = load_dataset("moons", n_samples=200, seed=0)
    >>> ds.info.input_shape, ds.info.num_classes, len(ds.train) + len(ds.val) + len(ds.test)
    ((2,), 2, 200)
    >>> DatasetSource.of({"kind": "csv", "name": "t.csv", "file": "upload:0123456789abcdef.csv", "target": "y"})
    DatasetSource(name='csv', options={'upload': 'upload:0123456789abcdef.csv', 'target': 'y'}, label='t.csv')
    >>> content_problems(DatasetSource("csv", {"path": "/etc/passwd", "target": "y"}))
    ['option path names a file on the server']
"""

from __future__ import annotations

import difflib
import inspect
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath
from typing import Any

from builder.data.builtin import (
    is_builtin,
    list_names,
    load_builtin,
    option_problems,
)
from builder.data.images import load_image_folder
from builder.data.series import load_series
from builder.data.splits import Dataset, DatasetInfo, fold_split, upload_label
from builder.data.tabular import load_csv
from builder.data.text import RunTokenizer, load_text
from builder.data.uploads import UploadFolder, is_upload_id, no_upload
from builder.errors import DatasetError
from builder.escape import terminal_line
from builder.graph.share import shareable

#: the keys of a source as the Data page and the project file store it (``Project.dataset``)
SPEC_KEYS = ("kind", "name", "options", "file", "target", "task", "size")
#: options every loader takes (the split and the task), with their defaults
_SPLIT_ARGS: dict[str, Any] = {"seed": 0, "val_fraction": 0.15, "test_fraction": 0.15, "task": None}


#: option keys that name a file: content never gives one (an upload is option ``upload``)
PATH_KEYS = frozenset({"path", "root", "file", "dir", "folder", "directory", "data_dir", "filename", "filepath",
                       "url", "uri", "location", "source", "src"})
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
#: options of a user-file source whose values are column names of the actor's own file (matched against its
#: header, never opened): a name may hold '/' ("speed km/h", "date/time") without naming a file
COLUMN_KEYS = frozenset({"target", "text_column", "time_column", "columns"})


class LocalFile(str):
    """A file named by a trusted caller: the CLI's local user on its command line (its privilege), or the server
    once it resolved one of the actor's uploads. Made only by code at those doors, never by decoded content (JSON
    gives plain strings), so a project, a link, a form or a job cannot name one. It is the absolute path as text,
    so it records and serialises as one."""

    __slots__ = ()

    def __new__(cls, path: str | Path, cwd: str | Path | None = None) -> LocalFile:
        p = Path(path).expanduser()
        return super().__new__(cls, os.path.abspath(Path(cwd or os.getcwd()) / p))

    @property
    def path(self) -> Path:
        """The file as a Path."""
        return Path(str(self))


def _base_name(path: Any) -> str:
    r"""A file's name without any folder, '/' or '\\' (a Windows path is one name to a POSIX ``Path``).

    >>> _base_name("/srv/ws/owners/x/data.csv"), _base_name("C:\\Users\\ann\\d.csv"), _base_name("C:")
    ('data.csv', 'd.csv', 'upload')
    """
    return PureWindowsPath(str(path)).name or "upload"


def _looks_like_path(value: str) -> bool:
    """Whether a string from content could name a file or a URL (an upload id is not one)."""
    if is_upload_id(value):
        return False
    v = value.strip()
    return ("/" in v or "\\" in v or "\0" in v or v.startswith("~") or v in (".", "..") or bool(_SCHEME.match(v))
            or os.sep in v)


def _path_values(value: Any, depth: int = 0) -> bool:
    """Whether ``value`` (a string, or lists and dicts of them) holds something that looks like a path."""
    if isinstance(value, str):
        return _looks_like_path(value)
    if isinstance(value, LocalFile | Path):
        return True
    if depth > 8:
        return True
    if isinstance(value, dict):
        return any(_path_values(k, depth + 1) or _path_values(v, depth + 1) for k, v in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        return any(_path_values(v, depth + 1) for v in value)
    return False


def _column_names(src: DatasetSource, key: Any, value: Any) -> bool:
    """Whether option ``key`` of a user-file source holds column names (a string or a list of strings)."""
    if src.upload is None or key not in COLUMN_KEYS:
        return False
    names = value if isinstance(value, list | tuple) else [value]
    return all(type(v) is str for v in names)


def content_problems(source: Any) -> list[str]:
    """Every way a dataset description from content names a file on the server (empty: none).

    Content may name a built-in and its options, or an upload (option ``upload`` holding ``upload:<id>``); a
    path in any key or value is refused, except a :class:`LocalFile` (the CLI's command line) and the column names
    of a user file's :data:`COLUMN_KEYS` (never opened), and so is option
    ``pretrained`` unless it is the :class:`~builder.data.text.RunTokenizer` the server read from a run. The
    problems name the option keys only, never a value, so nothing of a file, or whether it exists, shows.
    """
    try:
        src = DatasetSource.of(source)
    except DatasetError as e:
        return [str(e)]
    problems = []
    if _looks_like_path(src.name):
        problems.append("the dataset name names a file on the server")
    for key, value in src.options.items():
        shown = terminal_line(str(key), 40)
        if isinstance(value, LocalFile) and key == "path":
            continue
        if key == "upload":
            if not is_upload_id(value):
                problems.append("option upload is not an upload id")
        elif key == "pretrained":  # the tokenizer of the run the weights start from: the server reads it
            if not isinstance(value, RunTokenizer):
                problems.append("option pretrained is the tokenizer of the run the weights start from, read by the "
                                "server; content never gives one")
        elif _column_names(src, key, value):
            continue  # a column of the actor's own file, matched to its header and never opened
        elif str(key).lower() in PATH_KEYS or _path_values(value) or _path_values(key):
            problems.append(f"option {shown} names a file on the server")
    return problems


def check_content(source: Any) -> None:
    """Refuse a dataset description from content that names a server path (:func:`content_problems`, every
    problem at once). Raises DatasetError."""
    problems = content_problems(source)
    if problems:
        raise DatasetError("a dataset in a project, link or form is a built-in dataset or one of your uploads, "
                           f"never a file on the server; received: {'; '.join(problems)}. Fix: upload the file on "
                           "the Data page (or pass it on the command line with --data-path) and pick it there")


def project_problems(project: Any) -> list[str]:
    """Every way a project's data (its ``dataset`` choice, ``training.dataset``) names a file on the server: what
    :func:`check_project` refuses when a project or a link is opened."""
    problems = []
    dataset = getattr(project, "dataset", None)
    if dataset:
        problems += content_problems(dataset if "kind" in dataset or "name" in dataset
                                     else {"name": "", "options": dataset})
    training = getattr(project, "training", None) or {}
    name = training.get("dataset")
    if name is not None and (not isinstance(name, str) or _looks_like_path(name)):
        problems.append("training.dataset names a file on the server")
    if dataset and not problems:
        problems += option_value_problems(dataset)
    return problems


def option_value_problems(source: Any) -> list[str]:
    """Every option of a dataset description (from content) whose value is not of the kind its loader and the
    Data page read (:func:`builder.data.builtin.option_problems`: a built-in's options by their defaults' kind; a
    seed of any source); the problems name the option and the value received, never anything of a file.

    >>> option_value_problems({"kind": "builtin", "name": "moons", "options": {"n_samples": None}})
    ['option n_samples of moons is a whole number (received None)']
    """
    try:
        src = DatasetSource.of(source)
    except DatasetError as e:
        return [str(e)]
    # an upload's values by its loader's defaults; their ranges (a tokenizer's name, a length of at least 2) are
    # the loader's, which names every problem at once
    out = option_problems(src.name, src.options, None if src.upload is None else _UPLOAD_DEFAULTS.get(src.name, {}))
    said = {p.split(" ")[1] for p in out if p.startswith("option ")}  # an option's kind is said once
    return out + [p for p in column_problems(src) if p.split(" ")[1] not in said]


def column_problems(source: Any) -> list[str]:
    """Every column option of a user file's source (:data:`COLUMN_KEYS`) that is not what its loader matches
    against the file's header: a column name (text) for ``target``, ``text_column`` and ``time_column``, a list of
    them for ``columns`` (None: the loader's default). Their loaders' defaults are None (but a text's
    ``text_column``), so :func:`~builder.data.builtin.option_problems` had no kind to read: a list or a dict reached
    pandas as a key (``TypeError: unhashable type: 'list'``) and a word as ``columns`` its letters (``KeyError``).

    >>> column_problems({"name": "series", "options": {"upload": "upload:" + "a" * 64, "columns": "ab", "target": ["y"]}})
    ['option columns of series is a list of column names (received ab)', "option target of series is a column name, as text (received ['y'])"]
    """
    try:
        src = DatasetSource.of(source)
    except DatasetError as e:
        return [str(e)]
    if src.upload is None:
        return []
    out = []
    for key in sorted(COLUMN_KEYS & set(src.options)):
        value = src.options[key]
        if value is None or (key == "columns" and isinstance(value, list | tuple) and not value):
            continue  # the loader's default (an emptied "Series columns" box saved []: every numeric column)
        if key == "columns":
            ok = isinstance(value, list | tuple) and all(type(v) is str and v.strip() for v in value)
            kind = "a list of column names"
        else:
            ok, kind = type(value) is str and bool(value.strip()), "a column name, as text"
        if not ok:
            out.append(f"option {key} of {src.name} is {kind} (received {terminal_line(str(value), 20)})")
    return out or _role_problems(src)


def _role_problems(src: DatasetSource) -> list[str]:
    """Each column plays one part: the time order, the label, the text, or an input, each input listed once. A
    series whose ``time_column`` was its ``target`` was labelled by its dates (a class per time), an input that
    was the label taught the answer, and ``columns=["l", "l"]`` fed one column twice.

    >>> _role_problems(DatasetSource("series", {"time_column": "t", "target": "y", "columns": ["a", "a", "t"]}))
    ["column 't' is both time_column and columns", "column 'a' is listed twice in columns"]
    """
    o = src.options
    roles = [(k, o[k]) for k in ("time_column", "target", "text_column") if type(o.get(k)) is str]
    inputs = [c for c in (o.get("columns") or ()) if type(c) is str]
    out = [f"column {terminal_line(a, 20)!r} is both {k} and {k2}"
           for i, (k, a) in enumerate(roles) for k2, b in roles[i + 1:] if a.strip() == b.strip()]
    out += [f"column {terminal_line(a, 20)!r} is both {k} and columns" for k, a in roles
            if a.strip() in {c.strip() for c in inputs}]
    seen: set[str] = set()
    for c in inputs:
        if c.strip() in seen:
            out.append(f"column {terminal_line(c, 20)!r} is listed twice in columns")
        seen.add(c.strip())
    return out


_UPLOAD_DEFAULTS = {name: {k: p.default for k, p in inspect.signature(load).parameters.items()
                           if p.default not in (inspect.Parameter.empty, None)}
                    for name, load in (("csv", load_csv), ("image_folder", load_image_folder), ("text", load_text),
                                       ("series", load_series))}
"""The keyword defaults of each upload kind's loader: the kind of value each of its options takes."""


def own_spec(spec: dict | None, uploads: UploadFolder | None) -> dict | None:
    """A Data page spec with a path saved before upload ids (``file``: a file of the actor's own upload folder)
    rewritten to that upload's id; any other spec as it is.

    >>> own_spec({"kind": "builtin", "name": "moons"}, None)
    {'kind': 'builtin', 'name': 'moons'}
    """
    if not isinstance(spec, dict) or not isinstance(spec.get("kind"), str) or spec.get("kind") not in _BY_PAGE_KIND \
            or uploads is None:
        return spec
    ref = uploads.id_of(spec.get("file"))
    return {**spec, "file": ref} if ref is not None else spec


def check_project(project: Any, uploads: UploadFolder | None = None) -> Any:
    """Refuse a project (an opened file, a link, a class starter) whose data names a server path; return it
    otherwise, with an upload path of the actor's own folder (``uploads``, a project saved before upload ids)
    rewritten to its id. The message names the offending keys only. Raises DatasetError."""
    spec = own_spec(getattr(project, "dataset", None), uploads)
    if spec is not getattr(project, "dataset", None):
        project = project.model_copy(update={"dataset": spec})
    problems = project_problems(project)
    if problems:
        raise DatasetError("a project names its data as a built-in dataset (with options of the kinds it takes) or "
                           f"one of your uploads, never a file on the server; received: {'; '.join(problems)}. Fix: "
                           "open the project, then pick the data on the Data page (or pass --data-path on the "
                           "command line)")
    return project


def project_source(project: Any) -> DatasetSource | None:
    """The data a project trains on when nobody names other data: its Data page choice (``project.dataset``: a
    built-in with its options, or an upload by its id), else the dataset its training settings name (a
    template's); None when it names none. The one rule the pages and the command line read: ``layerlab train`` of
    an app project on ``people.csv`` trained on the template's ``moons`` (``training.dataset`` came first, and
    the Data page's options were dropped).

    >>> project_source({"dataset": {"kind": "builtin", "name": "moons", "options": {"noise": 0.3}},
    ...                 "training": {"dataset": "circles"}})
    DatasetSource(name='moons', options={'noise': 0.3}, label=None)
    >>> project_source({"training": {"dataset": "circles"}}).name, project_source({"graph": {}})
    ('circles', None)
    """
    get = project.get if isinstance(project, dict) else lambda k: getattr(project, k, None)
    spec, training = get("dataset"), get("training") or {}
    if isinstance(spec, dict) and (spec.get("kind") or spec.get("name")):
        return DatasetSource.from_spec(spec)
    name = training.get("dataset") if isinstance(training, dict) else None
    return DatasetSource(name, {}) if isinstance(name, str) and name else None


def travels(spec: Any) -> bool:
    """Whether a dataset description may go to another person (a link, a class's starter): a built-in dataset
    that names no file at all: no user-file kind (``csv``, ``image_folder``: the sender's upload), no upload id,
    no path. Another person could not read the sender's upload (it is refused as "not yours" when opened), so it
    is left out and the receiver picks their own data.

    >>> travels({"kind": "builtin", "name": "moons", "options": {"noise": 0.1}})
    True
    >>> travels({"kind": "builtin", "name": "csv", "options": {"upload": "upload:" + "0" * 64, "target": "y"}})
    False
    >>> travels({"kind": "csv", "name": "mine.csv"}) or travels(None)
    False
    """
    if not isinstance(spec, dict) or spec.get("kind", "builtin") != "builtin" or content_problems(spec):
        return False
    src = DatasetSource.of(spec)
    return _BY_ALIAS.get(src.name) is None and "upload" not in src.options and not _names_upload(src.options)


def _names_upload(value: Any, depth: int = 0) -> bool:
    """Whether an option value holds an upload id anywhere inside it (a list, an option of an option); too deep
    to tell counts as holding one.

    >>> _names_upload({"x": [{"y": "upload:" + "0" * 64}]}), _names_upload({"noise": 0.1, "classes": ["a"]})
    (True, False)
    """
    if isinstance(value, str):
        return is_upload_id(value)
    if depth > 16:
        return True
    if isinstance(value, dict):
        return any(_names_upload(k, depth + 1) or _names_upload(v, depth + 1) for k, v in value.items())
    return isinstance(value, list) and any(_names_upload(v, depth + 1) for v in value)


def for_link(project: Any) -> tuple[Any, list[str]]:
    """The part of a project a link carries (:func:`builder.graph.share.shareable`: no run ids of the sender's
    workspace) and what was left out, with a dataset that does not :func:`travel <travels>` left out too: the
    project's ``dataset`` and the one its training settings name (``training.dataset`` with its
    ``dataset_options``, which a project made on the command line or crafted may hold)."""

    proj, left = shareable(project)
    if proj.dataset is not None and not travels(proj.dataset):
        left.append("the dataset (your own file: whoever opens the link picks theirs)")
        proj = proj.model_copy(update={"dataset": None})
    training = proj.training or {}
    if "dataset" in training or "dataset_options" in training:
        name, opts = training.get("dataset"), training.get("dataset_options")
        if not travels({"kind": "builtin", "name": name if isinstance(name, str) else "",
                        "options": opts if isinstance(opts, dict) else {"options": opts}}):
            left.append("the training settings' dataset (your own file: whoever opens the link picks theirs)")
            proj = proj.model_copy(update={"training": {k: v for k, v in training.items()
                                                        if k not in ("dataset", "dataset_options")}})
    return proj, left


def _known_options(loader: Callable, opts: dict, fixed: tuple[str, ...] = ()) -> None:
    """Refuse options the loader does not take, naming the ones it does (before any file is read)."""
    known = [n for n, p in inspect.signature(loader).parameters.items()
             if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and n not in (*_SPLIT_ARGS, "path", *fixed)]
    opts = {k: v for k, v in opts.items() if k != "upload"}
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


def _load_text(path: Any, opts: dict, split: dict, label: str | None) -> Dataset:
    _known_options(load_text, opts)
    return load_text(path, **split, **opts, name=label)


def _load_series(path: Any, opts: dict, split: dict, label: str | None) -> Dataset:
    _known_options(load_series, opts)
    return load_series(path, **split, **opts, name=label)


#: the options of a series source besides its file
_SERIES_OPTIONS = ("columns", "time_column", "target", "lookback", "horizon", "stride")


def _series_spec(src: DatasetSource) -> dict:
    o = src.options
    return {"kind": "series", "name": src.shown_file(), "file": src.file_ref(), "task": o.get("task"),
            "options": {k: o[k] for k in _SERIES_OPTIONS if k in o}}


def _series_from_spec(spec: dict) -> dict:
    opts = {k: v for k, v in options_of(spec.get("options"), "a series' options").items() if k in _SERIES_OPTIONS}
    return {**_file_option(spec), **opts, "task": spec.get("task") or None}


#: the options of a text source besides its file (the Data page's ``options`` of a ``text`` spec)
_TEXT_OPTIONS = ("target", "text_column", "tokenizer", "vocab_size", "lowercase", "max_length")


def _text_spec(src: DatasetSource) -> dict:
    o = src.options
    return {"kind": "text", "name": src.shown_file(), "file": src.file_ref(), "task": o.get("task"),
            "options": {k: o[k] for k in _TEXT_OPTIONS if k in o}}


def _text_from_spec(spec: dict) -> dict:
    opts = {k: v for k, v in options_of(spec.get("options"), "a text's options").items() if k in _TEXT_OPTIONS}
    return {**_file_option(spec), **opts, "task": spec.get("task") or None}


def options_of(value: Any, what: str) -> dict:
    """``value`` as a dataset's options (None: none): a JSON object, the only form a project, a link or a run
    gives them. A word or a list from content went to ``dict()`` and raised its own ValueError out of opening a
    project or a link.

    Raises:
        DatasetError: anything but an object or None (one line naming ``what``; the value is not quoted whole).
    """
    if value is None:
        return {}
    if isinstance(value, dict):
        return dict(value)
    raise DatasetError(f"{what} are an object of option: value; received: {type(value).__name__} "
                       f"{terminal_line(repr(value), 40)}. Fix: e.g. {{\"noise\": 0.1}}, or pick the data on the "
                       "Data page")


def _file_option(spec: dict) -> dict:
    """The page spec's ``file`` as an option: ``upload`` for an upload id, else ``path`` (refused for content)."""
    f = spec.get("file")
    return {"upload": f} if is_upload_id(f) else {"path": f}


def _csv_spec(src: DatasetSource) -> dict:
    o = src.options
    return {"kind": "csv", "name": src.shown_file(), "file": src.file_ref(), "target": o.get("target"),
            "task": o.get("task")}


def _images_spec(src: DatasetSource) -> dict:
    o = src.options
    size = o.get("size")
    size = (size or [32])[0] if isinstance(size, (list, tuple)) else int(size or 32)
    return {"kind": "images", "name": src.shown_file(), "file": src.file_ref(), "size": size}


def _csv_from_spec(spec: dict) -> dict:
    return {**_file_option(spec), "target": spec.get("target"), "task": spec.get("task") or None}


def _images_from_spec(spec: dict) -> dict:
    size = spec.get("size", 32)
    if isinstance(size, float) and size.is_integer():  # 32.0 from a hand-written file
        size = int(size)
    if isinstance(size, bool) or not isinstance(size, int):  # int() of a word, a list or inf raised its own error
        raise DatasetError(f"an image set's size is a whole number of pixels (one side); received: "
                           f"{terminal_line(repr(size), 40)}. Fix: pick the size on the Data page, e.g. 32")
    return {**_file_option(spec), "size": [size, size], "task": spec.get("task") or None}


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
    required: tuple[str, ...] = ()  # besides the file (option ``upload``, or ``path`` from the command line)
    missing: str = ""  # the message when a required option is missing
    suffixes: tuple[str, ...] = ()  # file name endings that pick this kind for a bare --data-path
    aliases: tuple[str, ...] = ()


#: the user-file kinds, in the Data page's order (after "builtin")
SOURCE_KINDS: dict[str, SourceKind] = {k.name: k for k in (
    SourceKind("csv", "csv", "CSV file", _load_csv, _csv_spec, _csv_from_spec, required=("target",),
               missing="the csv dataset needs options upload=... (or --data-path) and target=...",
               suffixes=(".csv",)),
    SourceKind("image_folder", "images", "Image folder (.zip)", _load_images, _images_spec, _images_from_spec,
               missing="the image_folder dataset needs option upload=... (or --data-path: a folder or a .zip)",
               aliases=("images",)),
    SourceKind("text", "text", "Text (sentences, .txt per class, a corpus)", _load_text,
               _text_spec, _text_from_spec,
               missing="the text dataset needs option upload=... (or --data-path: a .csv with target=..., a .zip "
                       "of .txt per class or one .txt)", suffixes=(".txt",)),
    SourceKind("series", "series", "Time series (.csv of numeric columns)", _load_series, _series_spec,
               _series_from_spec, missing="the series dataset needs option upload=... (or --data-path: a .csv)"),
)}
_BY_ALIAS = {a: k for k in SOURCE_KINDS.values() for a in (k.name, *k.aliases)}
_BY_PAGE_KIND = {k.kind: k for k in SOURCE_KINDS.values()}


def project_task(training: Any) -> dict:
    """The dataset options a project's training settings ask of every dataset it trains on: its ``task`` (the
    Autoencoder template's ``"reconstruction"``). The command line applied it; the pages did not, and told the
    Autoencoder on the digits to set its output to 10 classes (Train refused it as it came).

    >>> project_task({"task": "reconstruction", "epochs": 30}), project_task(None)
    ({'task': 'reconstruction'}, {})
    """
    task = training.get("task") if isinstance(training, dict) else None
    return {"task": task} if isinstance(task, str) and task else {}


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
            return cls(source[0], {**options_of(source[1], "a dataset's options"), **(options or {})})
        if isinstance(source, dict):
            if "kind" in source:
                src = cls.from_spec(source)
            elif isinstance(source.get("dataset_name"), str):
                src = cls(source["dataset_name"], options_of(source.get("dataset_options"), "dataset_options"))
            elif isinstance(source.get("name"), str):
                src = cls(source["name"], options_of(source.get("options"), "a dataset's options"))
            else:
                raise DatasetError(f"a dataset source names a dataset; received: {sorted(source)!r}. Fix: give "
                                   "{'name': ..., 'options': {...}} or the Data page's {'kind': ...}")
            return cls(src.name, {**src.options, **(options or {})}, src.label)
        raise DatasetError(f"a dataset source is a name, a DatasetSource or a dict; received: "
                           f"{type(source).__name__}. Fix: pass e.g. 'digits' or DatasetSource('csv', {{...}})")

    @classmethod
    def from_spec(cls, spec: dict, uploads: UploadFolder | None = None) -> DatasetSource:
        """The source of the Data page's (and project file's) dict: ``{"kind": "builtin", "name", "options"}``,
        ``{"kind": "csv", "name", "file", "target", "task"}`` or ``{"kind": "images", "name", "file", "size"}``
        (``file``: an upload id). A project saved before upload ids kept the upload's absolute path: with
        ``uploads`` (the actor's folder) a path naming a file of that folder becomes its id; any other path stays,
        so loading refuses it."""
        kind = spec.get("kind", "builtin")
        if not isinstance(kind, str):  # a list or an object was a key of _BY_PAGE_KIND: TypeError
            raise DatasetError(f"a dataset's kind is one of builtin, {', '.join(_BY_PAGE_KIND)}; received: "
                               f"{terminal_line(repr(kind), 40)}. Fix: pick the data on the Data page")
        k = _BY_PAGE_KIND.get(kind)
        if k is None:
            return cls(str(spec.get("name")), options_of(spec.get("options"), "a dataset's options"))
        opts = {o: v for o, v in k.from_spec(spec).items() if v is not None}
        ref = uploads.id_of(opts.get("path")) if uploads is not None else None
        if ref is not None:
            opts = {"upload": ref, **{o: v for o, v in opts.items() if o != "path"}}
        return cls(k.name, opts, spec.get("name"))

    @classmethod
    def from_run(cls, run: dict, uploads: UploadFolder | None = None, *, local: bool = False) -> DatasetSource | None:
        """The source of a run row (``dataset_name`` + ``dataset_options``); None when the run names none.

        A run recorded before upload ids kept its upload's absolute path: with ``uploads`` (the run owner's
        folder) such a path becomes the upload's id when it names a file of that folder. With ``local`` (a run
        of the CLI's local user) a recorded path is the command line's :class:`LocalFile`. Any other path is
        left as it is, so loading refuses it."""
        name = run.get("dataset_name")
        if not name:
            return None
        opts = dict(run.get("dataset_options") or {})
        path = opts.get("path")
        if isinstance(path, str) and path:
            ref = uploads.id_of(path) if uploads is not None else None
            if ref is not None:
                opts.pop("path")
                opts["upload"] = ref
            elif local:
                opts["path"] = LocalFile(path)
        shown = str((run.get("dataset_info") or {}).get("name") or "")  # "csv:<the upload's name>"
        label = shown.split(":", 1)[1] if ":" in shown and _BY_ALIAS.get(name) is not None else None
        return cls(name, opts, label or None)

    def file_ref(self) -> str | None:
        """The upload id of this source, as the Data page's spec (content) names its file; None for built-ins and
        for any path, a command-line :class:`LocalFile` included: a spec goes into projects and to whoever opens a
        run (shared mode reads the CLI's runs), and a path there would name a folder of the server."""
        ref = self.options.get("upload")
        return ref if is_upload_id(ref) else None

    def shown_file(self) -> str:
        """The file as shown to people: the upload's label (its original name) or id, a command-line file's name;
        never a folder on the server."""
        if self.label:
            return _base_name(self.label)
        ref = self.options.get("upload")
        if ref is not None:
            return str(ref)
        path = self.options.get("path")
        return _base_name(path) if path else "upload"

    def to_spec(self) -> dict:
        """The Data page's dict for this source (built-ins without the ``seed`` and ``task`` of a run)."""
        k = self.upload
        if k is not None:
            return k.to_spec(self)
        return {"kind": "builtin", "name": self.name,
                "options": {o: v for o, v in self.options.items() if o not in ("seed", "task")}}

    def display(self) -> str:
        """The dataset as shown to people: the name, or ``csv: file.csv`` for an upload (never a server path)."""
        if self.upload is not None and (self.file_ref() or self.options.get("path")):
            # the page's kind, as the dataset names itself ("images: pets.zip", not the loader's "image_folder")
            return upload_label(self.upload.kind, self.shown_file())
        return self.name

    def shown_options(self) -> dict:
        """The options as shown to people (model cards, job files, MLflow): a file as :meth:`shown_file`."""
        out = {k: v for k, v in self.options.items() if k not in ("path", "upload")}
        if self.upload is not None and (self.file_ref() or self.options.get("path")):
            out = {"file": self.shown_file(), **out}
        return {k: (v if _column_names(self, k, v) or not _path_values(v) else "(a file)") for k, v in out.items()}

    def reloadable(self) -> bool:
        """Whether :func:`load_dataset` can load this source again (a built-in, an upload, a file of the command
        line: a run records it as text, reloaded for the CLI's own runs, :meth:`from_run`)."""
        if self.upload is None:
            return is_builtin(self.name)
        return bool(self.options.get("upload") or self.options.get("path"))

    def open_file(self, uploads: UploadFolder | str | Path | None) -> tuple[Path, dict]:
        """The file of a user-file source and the options a run records for it: an upload resolved inside
        ``uploads`` (the actor's folder), or the command line's :class:`LocalFile`. Raises DatasetError: a path
        from content (:func:`check_content`), an upload that is not the actor's (one message for all)."""
        check_content(self)
        ref = self.options.get("upload")
        if ref is not None:
            if uploads is None:
                raise no_upload(ref)
            folder = uploads if isinstance(uploads, UploadFolder) else UploadFolder(uploads)
            return folder.resolve(ref), {"upload": ref}
        path = self.options.get("path")
        if isinstance(path, LocalFile):
            return path.path, {"path": str(path)}  # recorded as text: reloaded for the CLI's own runs only
        k = self.upload
        raise DatasetError(k.missing if k is not None else f"{self.name} is not a file dataset")

    def load(self) -> Dataset:
        """Load this source (see :func:`load_dataset`)."""
        return load_dataset(self)


def _named_as(message: str, file: Path, shown: str) -> str:
    """``message`` with the upload's path and file name written as people know it (``shown``), in one pass that
    leaves ``shown`` itself alone: an upload without a label is shown by its id, which holds the file's name, and
    replacing that name inside the loader's own ``upload:<sha>.csv`` wrote ``upload:upload:<sha>.csv``.

    >>> _named_as("upload:ab.csv: no y; /srv/u/ab.csv: 2 rows; ab.csv", Path("/srv/u/ab.csv"), "upload:ab.csv")
    'upload:ab.csv: no y; upload:ab.csv: 2 rows; upload:ab.csv'
    """
    found = sorted({shown, str(file), file.name}, key=len, reverse=True)  # the longest at each place wins
    return re.sub("|".join(re.escape(t) for t in found), lambda _: shown, message)


def load_dataset(source: Any, *, uploads: UploadFolder | str | Path | None = None, **options: Any) -> Dataset:
    """Load a dataset from any source description and split it (seeded, stratified for classification).

    Args:
        source: a built-in name from :func:`list_datasets`, ``csv`` (options ``upload``, ``target``) or
            ``image_folder`` (option ``upload``: a .zip), or anything :meth:`DatasetSource.of` reads. A file is
            an upload id (resolved in ``uploads``) or the CLI's :class:`LocalFile` (option ``path``); any path
            from content is refused (:func:`check_content`) before anything is opened.
        uploads: the actor's upload folder (:func:`builder.runs.owners.upload_dir`); without it no upload
            resolves.
        options: dataset options (``n_samples``, ``noise``, ...; unknown ones are an error), and for every
            dataset ``seed`` (generation and split), ``val_fraction``, ``test_fraction``, ``task`` (an override,
            e.g. ``"reconstruction"``), ``flatten`` (images as flat vectors) and ``folds`` with ``fold``
            (cross-validation: the test split is fold ``fold`` of ``folds``, :func:`~builder.data.splits.fold_split`).

    Raises:
        DatasetError: unknown name or option, bad values, unreadable user data.
    """
    src = DatasetSource.of(source, options)
    check_content(src)
    if problems := option_value_problems(src):
        raise DatasetError(f"dataset {src.display()}: {'; '.join(problems)}. Fix: set these options on the Data "
                           "page (or leave them out for their defaults)")
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
            if any(o not in opts for o in kind.required) or not (opts.get("upload") or opts.get("path")):
                raise DatasetError(kind.missing)
            file, recorded = src.open_file(uploads)
            opts.pop("path", None)
            opts.pop("upload", None)
            shown = src.shown_file()
            try:
                ds = kind.load(file, opts, split, shown)
            except DatasetError as e:  # messages name the upload as people know it, never its folder
                raise DatasetError(_named_as(str(e), file, shown)) from None
            ds.info.options = {**{k: v for k, v in ds.info.options.items() if k != "path"}, **recorded}
            ds.info.name, ds.info.description = (_named_as(t, file, shown) for t in (ds.info.name,
                                                                                    ds.info.description))
    return ds.flattened() if flatten else ds


__all__ = ["project_source", "travels", "for_link", "option_value_problems", "column_problems", "options_of", "project_task", "DatasetSource", "SourceKind", "SOURCE_KINDS", "SPEC_KEYS", "PATH_KEYS", "COLUMN_KEYS",
           "LocalFile", "source_kinds",
           "kind_for_path", "content_problems", "check_content", "project_problems", "check_project", "own_spec",
           "load_dataset"]
