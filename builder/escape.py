r'''Escaping user strings for the place they leave LayerLab: Python source, Markdown, a terminal line, a plotly
figure, a file name.

Every user string (project name, node id, label, run name, class name, error message quoting any of them)
goes through one of these functions at the point where it is written out, never earlier. Example::

    >>> print(py_string('a"""b'))
    'a"""b'
    >>> print(docstring_text('C:\\Nodes """'))
    C:\\Nodes \"\"\"
    >>> print(terminal_line("evil\x1b[31m\nnode x: ok"))
    evil\x1b[31m\nnode x: ok
    >>> print(plotly_text('<a href="https://x.example">x</a> %{y}'))
    &lt;a href="https://x.example"&gt;x&lt;/a&gt; %&#123;y}
    >>> safe_filename("../../etc/passwd")
    'etc_passwd'
    >>> resolves_inside("/ws/runs/a/../b", "/ws/runs"), resolves_inside("/ws/runs/../x", "/ws/runs")
    (True, False)
'''

from __future__ import annotations

import contextlib
import keyword
import os
import re
import tempfile
import unicodedata
from pathlib import Path

__all__ = ["visible", "py_string", "py_comment", "docstring_text", "py_identifier", "is_code_name", "terminal_line", "md_text",
           "md_lines", "md_code", "plotly_text", "safe_filename", "resolves_inside", "hide_paths", "add_server_folder", "shown_uri", "shown_error"]

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_char(c: str) -> str:
    if c in _NAMED:
        return _NAMED[c]
    n = ord(c)
    if n < 0x100:
        return f"\\x{n:02x}"
    if n < 0x10000:
        return f"\\u{n:04x}"
    return f"\\U{n:08x}"


def visible(text: object, max_len: int | None = None) -> str:
    """One line of printable text: control, format (bidi overrides), separator, surrogate and unassigned
    characters become visible escapes such as ``\\n``, ``\\x1b`` or ``\\u202e``; spaces stay.

    ``max_len`` shortens the result with ``...`` (counted on the escaped text, never cutting an escape).
    """
    s = text if isinstance(text, str) else str(text)
    pieces = [c if c == " " or c.isprintable() else _escape_char(c) for c in s]
    if max_len is None or sum(map(len, pieces)) <= max_len:
        return "".join(pieces)
    out, n = [], 0
    for piece in pieces:
        if n + len(piece) > max_len - 3:
            break
        out.append(piece)
        n += len(piece)
    return "".join(out) + "..."


def py_string(text: str) -> str:
    """A Python string literal (quotes included) whose value is ``text``: one line; letters of any script stay
    readable, every control, format, separator or surrogate character is an escape."""
    return "'" + "".join(_py_char(c) for c in text) + "'"


def _py_char(c: str) -> str:
    if c == "\\":
        return "\\\\"
    if c == "'":
        return "\\'"
    if c == " " or (c.isprintable() and c.isascii()):
        return c
    if c.isprintable() and not unicodedata.category(c).startswith(("C", "Z")):
        return c  # letters, digits, symbols of any script stay readable
    return _escape_char(c)


def py_comment(text: object, max_len: int | None = 300) -> str:
    """Text safe after ``#`` in Python source: one line, no control or bidi characters."""
    return visible(text, max_len)


def docstring_text(text: object, max_len: int | None = 300) -> str:
    """Text safe inside a ``\"\"\"`` docstring: one visible line whose backslashes are doubled and quotes escaped,
    so the docstring reads exactly as :func:`visible` shows it (no ``\\N``, ``\\U`` or ``\"\"\"`` survives)."""
    return visible(text, max_len).replace("\\", "\\\\").replace('"', '\\"')


_IDENT_BAD = re.compile(r"\W", flags=re.ASCII)


def py_identifier(text: str, fallback: str = "node") -> str:
    """An ASCII Python identifier derived from ``text`` (``"conv 1"`` → ``conv_1``); may still be a keyword."""
    base = _IDENT_BAD.sub("_", text.strip()) or fallback
    if base[0].isdigit():
        base = "n_" + base
    return base


def is_code_name(text: object) -> bool:
    """Whether ``text`` stands as a name in generated Python as it is (an attribute, a keyword argument, a class):
    an ASCII identifier and no keyword. Python reads a non-ASCII name NFKC-normalised, so ``ﬁ`` would name ``fi``
    and the saved weights' keys would not be the code's.

    >>> [is_code_name(t) for t in ("weight", "x1", "class", "ﬁ", "1x", "a-b", None)]
    [True, True, False, False, False, False, False]
    """
    return isinstance(text, str) and text.isascii() and text.isidentifier() and not keyword.iskeyword(text)


def terminal_line(text: object, max_len: int | None = None) -> str:
    """One terminal line: no newline, carriage return, ANSI/VT escape or other control character survives."""
    return visible(text, max_len)


_MD_ACTIVE = set("\\`*_[]<>|~&$")  # characters inline Markdown (CommonMark + GFM) can give a meaning to
_MD_LINE_START = re.compile(r"^ *([#+=>-]|\d+[.)])")  # headings, list items, quotes, setext lines (indented too)
_MD_AUTOLINK = re.compile(r"(?i)(?:https?|ftp|mailto|xmpp)(?=:)|www(?=\.)|[-.+\w](?=@[-\w])")  # GFM's literal autolinks
# (``https://x``, ``www.x``, ``a@b.c``, ``.@b.c``) start after these: a word joiner goes between them and their
# ``:``, ``.``, ``@`` (an address's local part is letters, digits and ``-.+_``)
_WORD_JOINER = "\u2060"  # invisible, no line break either side
_MD_DELIMITER_ROW = re.compile(r"^[ \t|:\\-]*-[ \t|:\\-]*$")  # a GFM table's delimiter row (``:-``, ``|--|``): the
# line before it becomes a table's header


def md_text(text: object, max_len: int | None = 500, line_start: bool = False) -> str:
    """Markdown inline text that renders literally: one line; emphasis, code, links, images, HTML tags and
    entities and table pipes are backslash-escaped; with ``line_start`` (text that opens a line, a list item or
    a quote) also headings, list markers, quotes and a table's delimiter row (``:-`` under a line).

    An underscore between two letters or digits stays as it is (``out_features``): it cannot start emphasis.
    A web or mail address is no link: GFM makes ``https://x``, ``www.x`` and ``a@b.c`` links by themselves, from
    the text after parsing (a backslash does not stop it), so an invisible word joiner (U+2060) goes before their
    ``:``, ``.`` or ``@``.

    >>> md_text('see https://evil.example, www.evil.example, a@evil.example').split(chr(0x2060))
    ['see https', '://evil.example, www', '.evil.example, a', '@evil.example']
    """
    s = visible(text, max_len)
    if line_start and len(s.expandtabs(4)) - len(s.lstrip(" \t").expandtabs(4)) >= 4:
        s = s.lstrip(" \t")  # four columns of indent open a code block, which shows the escapes themselves
    out = []
    for i, c in enumerate(s):
        if c in _MD_ACTIVE and not (c == "_" and 0 < i < len(s) - 1 and s[i - 1].isalnum() and s[i + 1].isalnum()):
            out.append("\\" + c)
        else:
            out.append(c)
    s = _MD_AUTOLINK.sub(lambda m: m.group(0) + _WORD_JOINER, "".join(out))
    if line_start and _MD_DELIMITER_ROW.match(s):
        s = s.replace("-", "\\-")  # an escaped dash delimits no table (nor starts a list or a setext heading)
    m = _MD_LINE_START.match(s) if line_start else None
    if m:
        s = s[: m.end() - 1] + "\\" + s[m.end() - 1:]
    return s


def md_lines(text: object, max_len: int | None = None) -> str:
    """Markdown that shows ``text`` literally, keeping its lines: each line is :func:`md_text` (as a line's
    start), joined by hard line breaks. The pages' one escaper for names, ids and messages that quote them.

    >>> md_lines(chr(10).join(["loss *up*", "# not a heading", "  - nor a list", "    [x]("])).split("  " + chr(10))
    ['loss \\\\*up\\\\*', '\\\\# not a heading', '  \\\\- nor a list', '\\\\[x\\\\](']
    """
    lines = str(text).splitlines() or [""]
    return "  \n".join(md_text(line, max_len, line_start=True) for line in lines)


def md_code(text: object, table: bool = False, max_len: int | None = 200) -> str:
    """A Markdown code span showing ``text`` literally (a fence longer than any backtick run inside).

    ``table=True`` also escapes ``|`` (GFM splits table cells on pipes even inside code spans).
    """
    s = visible(text, max_len)
    longest = max((len(m) for m in re.findall(r"`+", s)), default=0)
    fence = "`" * (longest + 1)
    if s.startswith("`") or s.endswith("`") or (s.startswith(" ") and s.endswith(" ") and s.strip()):
        s = f" {s} "
    if table:
        s = s.replace("|", "\\|")
    return f"{fence}{s}{fence}" if s else "` `"


def plotly_text(text: object, max_len: int | None = 200) -> str:
    r"""Text plotly.js draws literally, in any string of a figure: a title, an axis title, a trace name (legend),
    a tick or category label, an annotation, ``text``/``customdata`` shown by a template, or inside a
    ``hovertemplate``/``texttemplate`` that is ours.

    plotly.js renders a subset of HTML in every text it draws (``<a href>``, ``<span style>``, ``<br>``, ``<b>``)
    and decodes the entities ``&amp;``, ``&lt;``, ``&gt;`` and ``&#NN;``; a template replaces ``%{name}``. So: one
    visible line (:func:`visible`: a newline would be a line break), ``&``, ``<`` and ``>`` as entities, and the
    ``{`` of ``%{`` as ``&#123;``, which a template no longer matches and the drawn text shows as ``{`` again
    (checked in Chromium with plotly.js 4: titles, legend, ticks, annotations and hover labels show the text
    as it was, with no ``<a>`` element or styled span). One function serves templates and plain text alike: the
    entity draws as ``{`` in both. ``max_len`` counts the visible text, so no entity is cut.

    >>> print(plotly_text("<span style='font-size:400px'>x</span> & %{x}"))
    &lt;span style='font-size:400px'&gt;x&lt;/span&gt; &amp; %&#123;x}
    >>> print(plotly_text("line\nbreak \u202eevil"))
    line\nbreak \u202eevil
    """
    s = visible(text, max_len).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return s.replace("%{", "%&#123;")  # last: its & is an entity of ours


_FILE_BAD = re.compile(r"[^\w.-]+")
_WINDOWS_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)), *(f"lpt{i}" for i in range(1, 10))}


def safe_filename(text: object, fallback: str = "file", max_len: int = 100) -> str:
    """A file name (no folder part) built from ``text``: letters, digits, ``_``, ``.`` and ``-`` only, no leading
    dot, not a Windows device name, at most ``max_len`` characters."""
    s = unicodedata.normalize("NFKC", str(text))
    s = _FILE_BAD.sub("_", s)
    s = "".join(c for c in s if c.isprintable()).strip("._-")
    s = s[:max_len].rstrip("._-")
    if not s or s.split(".")[0].lower() in _WINDOWS_RESERVED:
        s = f"{fallback}_{s}" if s else fallback
    return s


def resolves_inside(path: str | os.PathLike, root: str | os.PathLike) -> bool:
    """Whether ``path`` resolves inside ``root`` (links followed, ``..`` collapsed, both made absolute): the one
    test that a path a user influenced stays inside the workspace (or a folder of it)."""
    return Path(path).resolve().is_relative_to(Path(root).resolve())



# an absolute POSIX path of two or more parts, not inside a word or a URL ("km/h", "and/or", "http://h/x" stay); a
# doubled slash ("//srv/ws", "/srv//ws") and a path right after a colon ("received:/srv/ws/x") are paths too
_SEG = r"[^\s/'\"`<>|;,()\[\]{}]"
_ABS_PATH = re.compile(rf"(?:(?<![\w/.:~\\-])|(?<=:)(?=/[^/]))/+(?:{_SEG}+/+)+({_SEG}*)")
# a local file named as a URI (file:///srv/ws/x, file://localhost/srv/ws/x, sqlite:////srv/ws/x.db): the path in it
_FILE_URI = re.compile(rf"(?i)(?<![\w+.-])(file|sqlite(?:\+[a-z0-9]+)?):/{{2,}}(?:{_SEG}+/+)*({_SEG}*)")
# a Windows path (a drive's "C:\\Users\\ann\\owners\\x", "C:/Users/..", a share's "\\\\srv\\share\\x" or "\\\\?\\UNC\\srv\\share\\x", their repr's doubled
# backslashes): a folder may hold single spaces ("C:\\Users\\Ann Smith\\..."), its last part ends at one
_WSEG = r"[^\s\\/'\"`<>|;,()\[\]{}:*?]"
# a long path's prefix ("\\\\?\\", "\\\\.\\"), or its repr's doubled form ("\\\\\\\\?\\\\"): a drive or a share ("UNC", any case) follows
_LONG = r"\\\\(?:\\\\)?[?.]\\(?:\\)?"
_WIN_PATH = re.compile(rf"(?<![\w\\/.:-])(?:{_LONG})?(?:[A-Za-z]:[\\/]+|(?:{_LONG}(?i:UNC)\\+|\\\\\\*)(?={_WSEG}+(?: +{_WSEG}+)*\\))"
                       rf"(?:{_WSEG}+(?: +{_WSEG}+)*[\\/]+)*({_WSEG}*)")
# a path from a home folder (~/data/x.csv, ~ann/data/x.csv): the home is a server folder too
_HOME_PATH = re.compile(rf"(?<![\w/.:~\\-])~(?:[A-Za-z_][\w.-]*)?/+(?:{_SEG}+/+)*({_SEG}*)")
_SERVER_FOLDERS: set[str] = set()
_NAMED_FOLDERS: set[str] = set()  # what add_server_folder was given (the store names its workspace at every open)
_UNSAFE_IN_PATH = re.compile(r"[\s'\"`<>|;,()\[\]{}]")  # what ends a path to _ABS_PATH


def add_server_folder(folder: str | os.PathLike) -> None:
    """Name a folder of this server (a workspace, the model library) whose spelling :func:`hide_paths` must hide
    whatever characters it holds: a folder with a space in its name ("/Users/Ann Smith/LayerLab ws") is not one
    path to a pattern, and everything after the space (an owner's folder, an upload) would show. The run store
    names its workspace; the user's home and the temporary folder are named from the start. A folder whose name
    holds none of the characters that end a path to the pattern needs no naming and is not kept."""
    if str(folder) in _NAMED_FOLDERS:
        return
    _NAMED_FOLDERS.add(str(folder))
    for spelling in {str(folder), str(Path(folder).expanduser().absolute()), _resolved(folder)}:
        spelling = spelling.rstrip("/")
        if spelling.startswith("/") and _UNSAFE_IN_PATH.search(spelling):  # a plain one is cut by _ABS_PATH anyway
            _SERVER_FOLDERS.add(spelling)


def _resolved(folder: str | os.PathLike) -> str:
    try:
        return str(Path(folder).expanduser().resolve())
    except (OSError, RuntimeError, ValueError):
        return str(folder)


def _known_folders(text: str) -> str:
    """``text`` with every named server folder (:func:`add_server_folder`) written ``/...``, so the path it starts
    holds no space and :data:`_ABS_PATH` cuts it whole."""
    for folder in sorted((f for f in _SERVER_FOLDERS if f in text), key=len, reverse=True):
        text = re.sub(r"(?<![\w.~\\-])" + re.escape(folder) + r"(?=/|[\s'\"`<>|;,()\[\]{}.:]|$)", "/...", text)
    return text


def hide_paths(text: object) -> str:
    """``text`` with every absolute server path cut to its last part (``.../name``): what a person is shown about
    an error or a run never names a folder on the server (a workspace, an owner's folder, a library), also inside a
    ``file://`` or ``sqlite://`` URI, with doubled slashes, in a named server folder with spaces in its name
    (:func:`add_server_folder`), or written the Windows way (``C:\\Users\\...``, ``C:/...``, ``\\\\server\\share\\...``).

    >>> hide_paths("cannot read '/srv/ws/owners/3fa9/uploads/data.csv' (km/h, and/or, 1/2)")
    "cannot read '.../data.csv' (km/h, and/or, 1/2)"
    >>> hide_paths("see https://example.org/a/b and /tmp/x/")
    'see https://example.org/a/b and .../x'
    >>> hide_paths("artifacts at file:///srv/ws/owners/3fa9/mlartifacts, db sqlite:////srv/ws/m.db")
    'artifacts at file://.../mlartifacts, db sqlite://.../m.db'
    >>> hide_paths(r"no file 'C:\\Users\\Ann Smith\\ws\\owners\\3fa9\\a.csv' nor \\\\srv\\share\\b.pt at c:/x/y")
    "no file '.../a.csv' nor .../b.pt at .../y"
    >>> hide_paths(r"read ~/secret/people.csv, ~ann/data/x.csv and \\\\?\\C:\\Users\\ann\\a.csv")
    'read .../people.csv, .../x.csv and .../a.csv'
    """
    def short(m: re.Match) -> str:
        last = m.group(1) or m.group(0).rstrip("/").rsplit("/", 1)[-1]
        return f".../{last}"

    def uri(m: re.Match) -> str:
        return f"{m.group(1)}://.../{m.group(2)}"

    def windows(m: re.Match) -> str:
        parts = [p for p in re.split(r"[\\/]", m.group(0)) if p]
        return f".../{m.group(1) or parts[-1]}"

    text = _FILE_URI.sub(uri, _known_folders(str(text)))
    return _ABS_PATH.sub(short, _HOME_PATH.sub(short, _WIN_PATH.sub(windows, text)))


with contextlib.suppress(OSError, RuntimeError):  # RuntimeError: a user without a home
    add_server_folder(Path.home())
add_server_folder(tempfile.gettempdir())


# ------------------------------------------------------------------ addresses shown without their credentials
_SECRET_PARAM = re.compile(r"(?i)([?&;][^=&;#]*(?:token|key|secret|pass|pwd|auth|sig|credential)[^=&;#]*=)[^&;#]*")


def shown_uri(uri: str) -> str:
    """``uri`` as messages and pages may show it: its credentials replaced by ``***`` (a password, a token given as
    the user name, a secret-looking query parameter), the tracker itself still named.

    >>> shown_uri("https://ann:pw@ml.org/x"), shown_uri("https://TOKEN@ml.org"), shown_uri("https://u:p@ss@ml.org")
    ('https://ann:***@ml.org/x', 'https://***@ml.org', 'https://u:***@ml.org')
    >>> shown_uri("https://ml.org/?api_key=K1&experiment=a"), shown_uri("sqlite:////tmp/m.db")
    ('https://ml.org/?api_key=***&experiment=a', 'sqlite:////tmp/m.db')
    """
    text = str(uri)
    scheme, sep, rest = text.partition("//")
    if sep:
        end = min([i for i in (rest.find(c) for c in "/?#") if i >= 0] or [len(rest)])
        netloc = rest[:end]
        if "@" in netloc:
            user, _, host = netloc.rpartition("@")
            netloc = (f"{user.split(':', 1)[0]}:***" if ":" in user else "***") + "@" + host
        text = scheme + sep + netloc + rest[end:]
    return _SECRET_PARAM.sub(r"\1***", text)


_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>()]+")


def shown_error(e: BaseException) -> str:
    """An exception from a tracker as one line a message may carry: its type and first line, every URL in it
    without credentials (MLflow quotes the request's URL, the tracking URI's password or token included) and every
    server path cut to its last part (:func:`hide_paths`: a local store's ``file:///`` artefact root names the
    workspace).

    >>> shown_error(RuntimeError("API request to https://admin:pw@ml.org/api/2.0/x failed"))
    'RuntimeError: API request to https://admin:***@ml.org/api/2.0/x failed'
    >>> shown_error(OSError("cannot log to file:///srv/ws/owners/3fa9/mlartifacts/1/a"))
    'OSError: cannot log to file://.../a'
    """
    first = str(e).splitlines()[0][:400] if str(e) else ""
    return f"{type(e).__name__}: {hide_paths(_URL_IN_TEXT.sub(lambda m: shown_uri(m.group(0)), first))[:200]}"
