"""The project file: a versioned JSON document holding the graph, training settings and canvas state.

The graph is plain data (ids, types, params, positions); no torch objects live here. Example::

    >>> p = load_project({"format": "layerlab", "version": 1,
    ...                   "graph": {"nodes": [{"id": "x", "type": "Input", "params": {"shape": [4]}}],
    ...                             "edges": []}})
    >>> p.graph.nodes[0].type
    'Input'
"""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any, Literal

import networkx as nx
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from builder.errors import ProjectFormatError
from builder.graph.spec import short_repr

FORMAT = "layerlab"
VERSION = 1
SUPPORTED_VERSIONS = (1,)
MAX_FILE_BYTES = 20 * 1024 * 1024
MAX_BLOCKS = 32  # blocks of a project's palette (each a copy of its nodes and edges)
MAX_BLOCK_NODES = 200  # nodes of one block
MAX_BLOCK_EDGES = 4 * MAX_BLOCK_NODES  # edges of one block (4 per node, as a graph's: MAX_EDGES / MAX_NODES)


class Position(BaseModel):
    """Canvas position of a node (pixels)."""

    model_config = ConfigDict(extra="ignore")
    x: float = 0.0
    y: float = 0.0


class Node(BaseModel):
    """A layer: ``type`` is the torch.nn class name where one exists; ``params`` its constructor arguments."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, max_length=200)
    type: str = Field(min_length=1, max_length=100)
    params: dict[str, Any] = Field(default_factory=dict)
    label: str | None = Field(default=None, max_length=200)
    position: Position | None = None

    @field_validator("params", mode="before")
    @classmethod
    def _none_params(cls, v: Any) -> Any:
        return {} if v is None else v

    @property
    def display_name(self) -> str:
        """The label if set, else the id."""
        return self.label or self.id


class Edge(BaseModel):
    """A connection; ports name which output of ``source`` feeds which input of ``target``."""

    model_config = ConfigDict(extra="forbid")
    source: str = Field(min_length=1, max_length=200)
    target: str = Field(min_length=1, max_length=200)
    source_port: str | None = Field(default=None, max_length=50)
    target_port: str | None = Field(default=None, max_length=50)
    id: str | None = Field(default=None, max_length=200)

    @property
    def key(self) -> str:
        """A stable id: the explicit ``id`` or ``source->target`` plus ports where given."""
        if self.id:
            return self.id
        s = self.source + (f".{self.source_port}" if self.source_port else "")
        t = self.target + (f".{self.target_port}" if self.target_port else "")
        return f"{s}->{t}"


class Graph(BaseModel):
    """Nodes and edges. The outputs are the nodes without successors (an Output node is optional)."""

    model_config = ConfigDict(extra="forbid")
    nodes: list[Node] = Field(default_factory=list)
    edges: list[Edge] = Field(default_factory=list)

    def node(self, node_id: str) -> Node:
        """Return the node with this id (first match). Raises KeyError."""
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise KeyError(node_id)

    def to_networkx(self) -> nx.MultiDiGraph:
        """A MultiDiGraph with node attributes ``type``, ``params``, ``label``, ``position``."""
        g = nx.MultiDiGraph()
        for n in self.nodes:
            g.add_node(n.id, type=n.type, params=dict(n.params), label=n.label,
                       position=n.position.model_dump() if n.position else None)
        for i, e in enumerate(self.edges):  # ``order`` keeps merge inputs (Add, Concat) in file order
            g.add_edge(e.source, e.target, key=e.key, source_port=e.source_port,
                       target_port=e.target_port, id=e.id, order=i)
        return g

    @classmethod
    def from_networkx(cls, g: nx.MultiDiGraph) -> Graph:
        """Inverse of :meth:`to_networkx`."""
        nodes = []
        for nid, a in g.nodes(data=True):
            nodes.append(Node(id=nid, type=a["type"], params=a.get("params") or {}, label=a.get("label"),
                              position=a.get("position")))
        rows = sorted(g.edges(data=True), key=lambda uva: uva[2].get("order", float("inf")))
        edges = [Edge(source=u, target=v, source_port=a.get("source_port"), target_port=a.get("target_port"),
                      id=a.get("id")) for u, v, a in rows]
        return cls(nodes=nodes, edges=edges)

    def to_node_link(self) -> dict:
        """networkx ``node_link_data`` form (JSON-serialisable)."""
        return nx.node_link_data(self.to_networkx(), edges="edges")

    @classmethod
    def from_node_link(cls, data: dict) -> Graph:
        """Inverse of :meth:`to_node_link`."""
        return cls.from_networkx(nx.node_link_graph(data, directed=True, multigraph=True, edges="edges"))


class Project(BaseModel):
    """A whole project file."""

    model_config = ConfigDict(extra="forbid")
    format: Literal["layerlab"] = FORMAT
    version: int = VERSION
    name: str = Field(default="untitled", max_length=200)
    description: str = ""
    graph: Graph = Field(default_factory=Graph)
    training: dict[str, Any] | None = None
    dataset: dict[str, Any] | None = None
    blocks: list[dict[str, Any]] = Field(default_factory=list, max_length=MAX_BLOCKS)

    @field_validator("blocks")
    @classmethod
    def _small_blocks(cls, v: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for b in v:
            for key, limit in (("nodes", MAX_BLOCK_NODES), ("edges", MAX_BLOCK_EDGES)):
                items = b.get(key)
                if isinstance(items, list) and len(items) > limit:
                    raise ValueError(f"a block holds at most {limit} {key}; received: {len(items)}")
        return v

    def to_json(self, indent: int | None = 2) -> str:
        """Serialise to JSON (unset optional fields omitted).

        A lone surrogate (a name loaded from the JSON escape ``"\\ud800"``) has no UTF-8 form: such a project is
        written with ASCII escapes, so that it saves and loads back as it was."""
        try:
            return self.model_dump_json(indent=indent, exclude_none=True)
        except ValueError:  # pydantic's serialiser: 'surrogates not allowed'
            return json.dumps(self.model_dump(mode="json", exclude_none=True), indent=indent, ensure_ascii=True)

    def save(self, path: str | Path) -> None:
        """Write the project file atomically."""
        path = Path(path)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(self.to_json(), encoding="utf-8")
        tmp.replace(path)


_FORMAT_FIX = ("correct these fields (the format: docs/reference/project-file.md), or save the project again from "
               "LayerLab")


_RULES = {  # pydantic's error types in LayerLab's words: "<field> <rule>; received: <value>"
    "greater_than_equal": "is at least {ge}", "greater_than": "is more than {gt}",
    "less_than_equal": "is at most {le}", "less_than": "is less than {lt}",
    "int_parsing": "is a whole number", "int_type": "is a whole number", "int_from_float": "is a whole number",
    "float_parsing": "is a number", "float_type": "is a number", "finite_number": "is a finite number",
    "bool_parsing": "is true or false", "bool_type": "is true or false", "string_type": "is text",
    "dict_type": "is an object ({{...}})", "list_type": "is a list ([...])", "extra_forbidden": "is not a field here",
    "missing": "is required", "literal_error": "is one of {expected}",
    "string_too_long": "is at most {max_length} characters", "too_long": "holds at most {max_length} items",
}


def format_validation_error(e: ValidationError, limit: int = 5) -> str:
    """Pydantic's findings as one line: each field's rule and the value received, the first ``limit`` of them.

    >>> from pydantic import BaseModel, Field
    >>> class M(BaseModel):
    ...     epochs: int = Field(1, ge=1)
    ...     lr: float = 0.1
    >>> try:
    ...     M(epochs=0, lr="fast")
    ... except ValidationError as e:
    ...     print(format_validation_error(e))
    epochs is at least 1; received: 0; lr is a number; received: 'fast'
    """
    parts = []
    for err in e.errors()[:limit]:
        loc = ".".join(str(x) for x in err["loc"]) or "(root)"
        rule = _RULES.get(err["type"])
        try:
            said = f"{loc} {rule.format(**(err.get('ctx') or {}))}" if rule else f"{loc}: {err['msg']}"
        except (KeyError, IndexError, ValueError):  # a rule whose bound pydantic did not give: its own words
            said = f"{loc}: {err['msg']}"
        got = f"; received: {short_repr(err['input'])}" if "input" in err and err["type"] != "missing" else ""
        parts.append(said + got)
    more = f" (+{e.error_count() - limit} more)" if e.error_count() > limit else ""
    return "; ".join(parts) + more


def parse_project(data: Any) -> Project:
    """Validate a decoded JSON document as a project. Raises ProjectFormatError."""
    if not isinstance(data, dict):
        raise ProjectFormatError(f"a project file must be a JSON object, got {type(data).__name__}")
    fmt = data.get("format", FORMAT)
    if fmt != FORMAT:
        raise ProjectFormatError(f"unknown format {short_repr(fmt)}; expected \"{FORMAT}\"")
    version = data.get("version", VERSION)
    if not isinstance(version, int) or isinstance(version, bool) or version not in SUPPORTED_VERSIONS:
        raise ProjectFormatError(
            f"unsupported project version {short_repr(version)}; this LayerLab reads version(s) "
            f"{', '.join(map(str, SUPPORTED_VERSIONS))}: upgrade LayerLab or re-save the file")
    if "graph" not in data and "nodes" in data:
        # a bare graph is accepted too
        data = {"format": FORMAT, "version": VERSION, "graph": data}
    check_tree(data)
    check_graph_size(data.get("graph"))
    try:
        return Project.model_validate(data)
    except ValidationError as e:
        raise ProjectFormatError(f"invalid project file: {format_validation_error(e)}. Fix: {_FORMAT_FIX}") from None


MAX_NODES = 5000
MAX_EDGES = 20000


MAX_JSON_ITEMS = 500_000  # values, object members and containers of one project (5,000 nodes, 20,000 edges: ~225,000)
MAX_JSON_DEPTH = 64  # nesting of objects and lists (a project's own: under 12)


def _too_many(items: int) -> ProjectFormatError:
    return ProjectFormatError(f"a project holds at most {MAX_JSON_ITEMS:,} JSON values; received: about {items:,}. "
                              "Fix: split the model or group repeated parts into blocks")


def _too_deep() -> ProjectFormatError:
    return ProjectFormatError(f"a project's JSON nests objects and lists at most {MAX_JSON_DEPTH} deep; received: "
                              f"deeper. Fix: {_FORMAT_FIX}")


def _check_text(text: str) -> None:
    """Refuse JSON text with more than MAX_JSON_ITEMS values before it is parsed: the parser builds a Python
    object of 60-100 bytes for every ``{}``, ``[]`` or number of 2-3 characters (a 20 MiB file of ``{},`` grew the
    server by 470 MB before it was refused). Commas and opening brackets bound the values from above; only when
    that bound is over the limit are the ones inside strings (an Op node's call is JSON text, full of both) left
    out by :func:`_structural_items`."""
    items = text.count(",") + text.count("{") + text.count("[")
    if items > MAX_JSON_ITEMS and (items := _structural_items(text)) > MAX_JSON_ITEMS:
        raise _too_many(items)


_SCAN_BYTES = 1 << 20


def _structural_items(text: str) -> int:
    """Commas and opening brackets outside strings, counted over the UTF-8 bytes a MiB at a time (no Python object
    per value: a regular expression's substitution built one per match, 180 MB for 20 MiB of ``{"a":1},``).
    Escapes are dropped first (``\\\\`` then ``\\"``, as the parser reads them left to right), so every quote
    left opens or closes a string; a running XOR of the quotes marks what lies inside one."""
    import numpy as np  # lazy: heavy (numpy, for a text over the quick bound only)

    raw = text.encode("utf-8", "surrogatepass").replace(b"\\\\", b"").replace(b"\\\"", b"")
    inside, items = 0, 0
    for start in range(0, len(raw), _SCAN_BYTES):
        chunk = np.frombuffer(raw, np.uint8, min(_SCAN_BYTES, len(raw) - start), start)
        quote = chunk == ord('"')
        quote[0] ^= bool(inside)  # the string open at the chunk's start
        state = np.bitwise_xor.accumulate(quote)  # True from an opening quote up to its closing one
        inside = int(state[-1])
        items += int(np.count_nonzero(~state & ((chunk == ord(",")) | (chunk == ord("{")) | (chunk == ord("[")))))
    return items


def check_tree(data: Any) -> None:
    """Refuse a decoded document (a parsed file or link, or a dict handed over: the canvas, a stored run) with more
    than MAX_JSON_ITEMS values or nested deeper than MAX_JSON_DEPTH, before pydantic copies it and before code that
    walks it recursively (saving, deep copies) meets a RecursionError. Iterative, stops at the first excess."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    items = 0
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list | tuple):
            children = value
        else:
            continue
        if depth > MAX_JSON_DEPTH:
            raise _too_deep()
        items += len(children)
        if items > MAX_JSON_ITEMS:
            raise _too_many(items)
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list | tuple))


def check_graph_size(graph: Any) -> None:
    """Refuse enormous graphs before validating every node (a 10^5-node file is answered at once)."""
    if not isinstance(graph, dict):
        return
    for key, limit in (("nodes", MAX_NODES), ("edges", MAX_EDGES)):
        items = graph.get(key)
        if isinstance(items, list) and len(items) > limit:
            raise ProjectFormatError(f"a graph may have at most {limit} {key}; received: {len(items)} {key}. "
                                     "Fix: split the model or group repeated parts into blocks")


def load_project(source: str | Path | dict | bytes | Project) -> Project:
    """Load a project from a path, a JSON string or bytes, or an already decoded dict.

    Raises:
        ProjectFormatError: unreadable file, bad JSON, unknown version, wrong field types.
    """
    if isinstance(source, Project):
        return source
    if isinstance(source, dict | list):
        return parse_project(source)
    if isinstance(source, bytes):
        text = _decode(source)
    elif isinstance(source, str) and source.lstrip().startswith("{"):
        text = source
    else:
        text = _decode(_read_file(Path(source)))
    return parse_project(parse_json(text))


def _read_file(path: Path) -> bytes:
    """The bytes of a regular file of at most MAX_FILE_BYTES (devices, pipes and folders are refused; the
    read is bounded even when the size the file reports is wrong)."""
    try:
        st = path.stat()
        if stat.S_ISDIR(st.st_mode):
            raise ProjectFormatError(f"{path}: is a directory, not a project file")
        if not stat.S_ISREG(st.st_mode):
            raise ProjectFormatError(f"{path}: not a regular file (a device, pipe or socket); received: {path}. "
                                     "Fix: save the project to a file and pass that")
        if st.st_size > MAX_FILE_BYTES:
            raise ProjectFormatError(f"{path}: file is larger than {MAX_FILE_BYTES // 2**20} MiB")
        with path.open("rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise ProjectFormatError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ProjectFormatError(f"{path}: is a directory, not a project file") from None
    except PermissionError:
        raise ProjectFormatError(f"{path}: permission denied") from None
    except OSError as e:
        raise ProjectFormatError(f"{path}: cannot read ({e.strerror or e})") from None
    except ValueError as e:  # e.g. a NUL character in the path
        raise ProjectFormatError(f"{path!r}: cannot read ({e})") from None
    return raw


MAX_INT_DIGITS = 30  # longer integer literals are read as floats (1e40, inf): no bignum work, a range error later


class _DuplicateKey(Exception):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise _DuplicateKey(dup)
    return out


def _parse_int(text: str) -> int | float:
    return int(text) if len(text) <= MAX_INT_DIGITS else float(text)


def parse_json(text: str) -> Any:
    """Decode JSON text strictly enough for a project file: duplicate keys are refused, integers of more
    than 30 digits become floats (so no quadratic bignum conversion), deep nesting is an error, and more than
    MAX_JSON_ITEMS values are refused before parsing.

    Raises:
        ProjectFormatError: with the line and column where possible.
    """
    _check_text(text)
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_int=_parse_int)
    except json.JSONDecodeError as e:
        raise ProjectFormatError(f"not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except RecursionError:
        raise ProjectFormatError("not valid JSON: nested too deeply") from None
    except _DuplicateKey as e:
        key = str(e.args[0])
        shown = key if len(key) <= 40 else key[:37] + "..."
        raise ProjectFormatError(f"a JSON object repeats the key {json.dumps(shown)}; received: the key twice. "
                                 "Fix: keep one of them") from None
    except ValueError as e:  # e.g. a float literal too long to convert
        raise ProjectFormatError(f"not valid JSON: {e}") from None


def _decode(raw: bytes) -> str:
    if len(raw) > MAX_FILE_BYTES:
        raise ProjectFormatError(f"file is larger than {MAX_FILE_BYTES // 2**20} MiB")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ProjectFormatError(f"not a text file: the content is not UTF-8 (byte {e.start}). Fix: save it as "
                                 "UTF-8") from None


def as_graph(obj: Graph | Project | dict | str | Path) -> Graph:
    """Accept a Graph, a Project, or anything :func:`load_project` reads, and return the Graph."""
    if isinstance(obj, Graph):
        return obj
    if isinstance(obj, Project):
        return obj.graph
    if isinstance(obj, dict) and "nodes" in obj and "graph" not in obj:
        check_tree(obj)
        check_graph_size(obj)
        try:
            return Graph.model_validate(obj)
        except ValidationError as e:
            raise ProjectFormatError(f"invalid graph: {format_validation_error(e)}. Fix: {_FORMAT_FIX}") from None
    return load_project(obj).graph
