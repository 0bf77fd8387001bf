"""Shareable links: a whole project (graph, parameters, dataset and training settings; never weights) packed
into one URL query parameter, and read back under the same limits and validation as a project upload.

The value is ``<version>.<urlsafe base64 of raw deflate of compact JSON>`` (no padding), currently version
``1``. Decoding never trusts the link: its length is bounded, inflation stops at :data:`MAX_JSON_BYTES` (a
deflate "bomb" is refused, not expanded), and the JSON goes through :func:`builder.graph.project.parse_json`
and :func:`builder.graph.project.parse_project` as an uploaded file would. Example::

    >>> from builder.graph.project import load_project
    >>> p = load_project({"graph": {"nodes": [{"id": "x", "type": "Input", "params": {"shape": [4]}}],
    ...                             "edges": []}})
    >>> link = encode_project(p)
    >>> link.startswith("1.")
    True
    >>> decode_project(link).graph.nodes[0].params
    {'shape': [4]}
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from urllib.parse import quote

from builder.errors import ProjectFormatError
from builder.graph.project import Project, parse_json, parse_project

LINK_VERSION = 1
QUERY_KEY = "p"  # ``/build?p=<value>``
MAX_LINK_CHARS = 8000  # browsers, proxies and chat apps cut longer addresses; above it, offer the file
MAX_JSON_BYTES = 2 * 1024 * 1024  # inflated size a link may decode to (a project upload's own limit is 20 MiB)


class LinkTooLongError(ProjectFormatError):
    """The project does not fit in a link (``chars`` is the encoded length); share the file instead."""

    def __init__(self, chars: int):
        self.chars = chars
        super().__init__(f"a shareable link holds at most {MAX_LINK_CHARS:,} characters; received: a project "
                         f"that encodes to {chars:,}. Fix: download the project file and share that instead")


LOCAL_TRAINING_KEYS = ("init_from", "teacher", "split_of", "class_id")  # run ids (weights, a split) and the class
# of the sender's workspace: never in a link nor in a class's starter (builder.runs.classes)


def shareable(project: Project) -> tuple[Project, list[str]]:
    """The part of a project a link may carry, and what was left out: run ids that start from or distil the
    sender's weights (``training.init_from``, ``training.teacher``) and a dataset that is a file on the
    sender's server (only built-in datasets travel; the visitor picks their own file), with the built-in dataset
    its training settings name then (not the data the network was made for).

    >>> from builder.graph.templates import load_template
    >>> mine = load_template("mlp").model_copy(update={"dataset": {"kind": "csv", "name": "people.csv"}})
    >>> linked, left = shareable(mine)
    >>> linked.dataset, "dataset" in linked.training, left
    (None, False, ['dataset (csv file)'])
    """
    dropped: list[str] = []
    training = dict(project.training) if project.training is not None else None
    for key in LOCAL_TRAINING_KEYS:
        if training is not None and training.pop(key, None) is not None:
            dropped.append(f"training.{key}")
    dataset = project.dataset
    if dataset is not None and dataset.get("kind", "builtin") != "builtin":
        dropped.append(f"dataset ({str(dataset.get('kind'))[:20]} file)")
        dataset = None
        # the built-in the settings still name (a template's) is not the data this network was made for: a link
        # of the MLP fitted to a CSV of 6 columns opened on the template's moons, "set shape to [2]"
        if training is not None:
            training.pop("dataset", None)
            training.pop("dataset_options", None)
    return project.model_copy(update={"training": training, "dataset": dataset}), dropped


def _payload(project: Project) -> bytes:
    data = json.loads(shareable(project)[0].to_json(indent=None))
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def encode_project(project: Project, *, limit: int | None = MAX_LINK_CHARS) -> str:
    """The link value of a project (what follows ``?p=``). Raises :class:`LinkTooLongError` over ``limit``
    characters (None: no limit, for measuring)."""
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)  # raw deflate: no zlib header or checksum to spend bytes on
    raw = comp.compress(_payload(project)) + comp.flush()
    value = f"{LINK_VERSION}." + base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")
    if limit is not None and len(value) > limit:
        raise LinkTooLongError(len(value))
    return value


def share_url(base: str, project: Project) -> str:
    """``<base>?p=<value>`` (``base`` the Build page's address). Raises :class:`LinkTooLongError`."""
    return f"{base.rstrip('?')}?{QUERY_KEY}={quote(encode_project(project), safe='.-_')}"


def decode_project(value: str) -> Project:
    """Read a link value back into a project, validated as an uploaded project file is.

    Raises:
        ProjectFormatError: too long, unknown version, not base64, not deflate, inflates past
            :data:`MAX_JSON_BYTES`, or not a valid project.
    """
    if not isinstance(value, str):
        raise ProjectFormatError(f"a shared link is text; received: {type(value).__name__}. Fix: copy the whole "
                                 "link again")
    value = value.strip()
    if len(value) > MAX_LINK_CHARS:
        raise ProjectFormatError(f"a shared link holds at most {MAX_LINK_CHARS:,} characters; received: "
                                 f"{len(value):,}. Fix: ask for the project file instead")
    version, dot, body = value.partition(".")
    if not dot or version != str(LINK_VERSION):
        raise ProjectFormatError(f"a shared link starts with its version \"{LINK_VERSION}.\"; received: "
                                 f"{version[:10]!r}. Fix: copy the whole link again, or open it with a newer "
                                 "LayerLab")
    try:
        raw = base64.b64decode(body + "=" * (-len(body) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise ProjectFormatError("a shared link is URL-safe base64; received: other characters. Fix: copy the "
                                 "whole link again") from None
    inflater = zlib.decompressobj(-15)
    try:
        text = inflater.decompress(raw, MAX_JSON_BYTES + 1)
    except zlib.error:
        raise ProjectFormatError("a shared link holds a compressed project; received: data that does not "
                                 "decompress (the link is cut or altered). Fix: copy the whole link again") from None
    if len(text) > MAX_JSON_BYTES or inflater.unconsumed_tail:
        raise ProjectFormatError(f"a shared link decodes to at most {MAX_JSON_BYTES // 2**20} MiB; received: more. "
                                 "Fix: share the project file instead")
    if not inflater.eof:
        raise ProjectFormatError("a shared link holds a compressed project; received: an incomplete one (the link "
                                 "is cut). Fix: copy the whole link again")
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError:
        raise ProjectFormatError("a shared link holds UTF-8 JSON; received: other bytes. Fix: copy the whole "
                                 "link again") from None
    return shareable(parse_project(parse_json(decoded)))[0]


__all__ = ["LOCAL_TRAINING_KEYS", "shareable", "LINK_VERSION", "QUERY_KEY", "MAX_LINK_CHARS", "MAX_JSON_BYTES", "LinkTooLongError", "encode_project",
           "share_url", "decode_project"]
