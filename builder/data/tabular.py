"""CSV tables as tabular datasets: capped reading, encoding detection, chunked parsing, the table cache."""

from __future__ import annotations

import codecs
import io
import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

import builder.data.limits as limits
from builder.data.cache import content_hash, fingerprint
from builder.data.files import read_head, read_limited, regular_file, too_large
from builder.data.splits import TASKS, Dataset, DatasetInfo
from builder.data.table_cache import load_table, open_cached
from builder.data.table_plan import Encoding, TablePlan, plan_table, standardise
from builder.errors import DatasetError

if TYPE_CHECKING:
    import pandas as pd


_FIELDS = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


def unreadable_csv(label: str, e: BaseException) -> DatasetError:
    """The one refusal of a file pandas cannot read as CSV, in a person's words (a row with more fields than the
    header; text that is not UTF-8 or Latin-1; a number too large), never pandas's own.

    >>> str(unreadable_csv("x.csv", ValueError("Error tokenizing data. C error: Expected 3 fields in line 3, saw 5")))
    'x.csv: not a readable CSV file; received: line 3 has 5 fields where the header has 3. Fix: quote cells that hold commas, or give every row as many cells as the header'
    """
    text = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
    if m := _FIELDS.search(text):
        return DatasetError(f"{label}: not a readable CSV file; received: line {m[2]} has {m[3]} fields where the "
                            f"header has {m[1]}. Fix: quote cells that hold commas, or give every row as many cells "
                            "as the header")
    if isinstance(e, UnicodeDecodeError):
        return DatasetError(f"{label}: not a readable CSV file; received: bytes that are not text (UTF-8 or "
                            "Latin-1). Fix: save it as UTF-8 CSV")
    return DatasetError(f"{label}: not a readable CSV file; received: {text}. Fix: save it as CSV with a header row "
                        "and one row per sample")

def load_csv(path: str | Path | bytes, target: str, task: str | None = None, *, seed: int = 0,
             val_fraction: float = 0.15, test_fraction: float = 0.15, name: str | None = None) -> Dataset:
    """Load a CSV file as a tabular dataset.

    Numeric columns are standardised (missing values filled with the training median), text columns are
    one-hot encoded (up to 100 categories). The task is inferred from the target column (text or few
    integer values: classification; otherwise regression) and can be overridden. Every size limit is checked
    over the bytes before anything is parsed; the table is then parsed in chunks of cells, twice (pass 1 decides
    the encoding, pass 2 encodes). A file of ``limits.CACHE_MIN_ROWS`` rows or more (or over
    ``limits.MAX_CSV_MEMORY_BYTES``) is parsed once into the workspace's table cache
    (:mod:`builder.data.table_cache`) and memory-mapped from there on; both ways give the same dataset.

    Raises:
        DatasetError: empty file, missing target, non-numeric junk in a numeric column, a single class,
            too many rows, columns or categories, a file that is not CSV text, a limit of ``builder.data.limits``.
    """
    label = name or (Path(path).name if not isinstance(path, bytes) else "uploaded.csv")
    if task is not None and task not in TASKS:
        raise DatasetError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    key = None
    if not isinstance(path, (bytes, bytearray)):
        p = regular_file(path, "CSV file")
        st = p.stat()
        if st.st_size <= limits.MAX_CSV_BYTES:  # the cache is shared by every owner: keyed by the bytes' SHA-256
            key = fingerprint("table", content_hash(p), target, task)
        hit = open_cached(key) if key is not None else None
        if hit is not None:  # parsed before: nothing is read but the entry
            X, y, enc, note = hit
            return _dataset(X, y, enc, note, path, target, label, seed, val_fraction, test_fraction)
    src = _inspect(path, label)
    if src.cached:
        if key is None:  # uploaded bytes (a path was hashed above)
            key = fingerprint("table", content_hash(src.data), target, task)  # type: ignore[arg-type]
        X, y, enc = load_table(key, src.frames, target, task, label, note=src.note)
    else:
        X, y, enc = _encode_in_memory(src, target, task, label)
    return _dataset(X, y, enc, src.note, path, target, label, seed, val_fraction, test_fraction)


def _dataset(X: np.ndarray, y: np.ndarray, enc: Encoding, note: str, path: str | Path | bytes, target: str,
             label: str, seed: int, val_fraction: float, test_fraction: float) -> Dataset:
    info = DatasetInfo(name=f"csv:{label}", source="csv", task=enc.task, modality="tabular",
                       input_shape=(enc.width,), class_names=list(enc.class_names), feature_names=list(enc.names),
                       description=f"{label}: {enc.rows} rows, target {target!r}",
                       options={"path": str(path) if not isinstance(path, bytes) else None, "target": target,
                                "task": enc.task})
    if enc.dropped:
        info.notes.append(f"{enc.dropped} row(s) without a target value were left out")
    if note:
        info.notes.append(note)
    return standardise(X, y, enc, info, seed=seed, val_fraction=val_fraction, test_fraction=test_fraction)


def _encode_in_memory(src: _Source, target: str, task: str | None, label: str
                      ) -> tuple[np.ndarray, np.ndarray, Encoding]:
    """Both passes over a small table held in memory (the same code as the cache's, so the same numbers)."""
    plan = TablePlan(target, task, label)
    enc = plan_table(plan, src.frames)
    X = np.empty((enc.rows, enc.width), dtype=np.float32)
    y = np.empty(enc.rows, dtype=np.int64 if enc.task in ("multiclass", "binary") else np.float32)
    pos = 0
    for df in src.frames(text=plan.text_columns()):
        Xc, yc = plan.encode(df)
        X[pos:pos + len(Xc)], y[pos:pos + len(yc)] = Xc, yc
        pos += len(Xc)
    return X, y, enc


@dataclass
class _Source:
    """A CSV that passed every byte-level check: where its bytes are, how to decode them, how big it is."""

    label: str
    data: Path | bytes | str  # a path, the bytes, or the decoded text (UTF-16 files)
    encoding: str | None
    note: str
    lines: int
    columns: int
    cached: bool

    def frames(self, text: Collection[str] = (), only: Collection[str] | None = None) -> Iterator[pd.DataFrame]:
        """One pass over the table in chunks of about ``limits.CSV_CHUNK_CELLS`` cells: the ``text`` columns read as
        text, the others as pandas infers them per chunk; only the ``only`` columns when given (names stripped)."""
        import pandas as pd  # lazy: heavy (pandas)

        rows = max(1, limits.CSV_CHUNK_CELLS // max(self.columns, 1))
        if isinstance(self.data, str):
            buf: Any = io.StringIO(self.data)
        elif isinstance(self.data, bytes):
            buf = io.BytesIO(self.data)
        else:
            buf = open(self.data, "rb")  # noqa: SIM115 - closed below
        encoding = self.encoding if not isinstance(self.data, str) else None
        try:
            try:
                header = pd.read_csv(buf, nrows=0, skipinitialspace=True, encoding=encoding).columns
                buf.seek(0)
                raw = {str(c).strip(): c for c in header}
                reader = pd.read_csv(buf, dtype={raw[c]: str for c in text if c in raw}, skipinitialspace=True,
                                     chunksize=rows, encoding=encoding,
                                     usecols=None if only is None else [raw[c] for c in only if c in raw])
                first = True
                for df in reader:
                    first = False
                    yield df
                if first:
                    raise DatasetError(f"{self.label}: the file has a header but no data rows")
            except pd.errors.EmptyDataError:
                raise DatasetError(f"{self.label}: the file is empty; it needs a header row and data rows") from None
            except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as e:
                raise unreadable_csv(self.label, e) from None
        finally:
            buf.close()


def _inspect(path: str | Path | bytes, label: str) -> _Source:
    """Every byte-level check, in bounded memory, before anything is parsed: the header line from a bounded read
    (its length and columns), the size (``MAX_CSV_BYTES`` for a path, ``MAX_CSV_UPLOAD_BYTES`` for bytes), then
    streaming over the bytes: lines x columns, rows (when no cell is quoted), the longest line, binary data and
    the encoding. UTF-16 files are read whole (up to ``MAX_CSV_MEMORY_BYTES``). Raises DatasetError."""
    head = read_head(path, limits.MAX_CSV_LINE_BYTES, "CSV file")
    if head.startswith(_UTF16_BOMS):
        raw = read_limited(path, limits.MAX_CSV_MEMORY_BYTES, "CSV file")
        text, note = _decode_csv(raw, label)
        scan = _scan(io.BytesIO(text.encode("utf-8")), label, None)
        return _checked(label, text, None, note, scan)
    columns = _check_header(head, label)
    if not head.strip() and len(head) <= limits.MAX_CSV_LINE_BYTES:
        raise DatasetError(f"{label}: the file is empty; it needs a header row and at least one data row")
    if isinstance(path, (bytes, bytearray)):
        data: Path | bytes = read_limited(path, limits.MAX_CSV_UPLOAD_BYTES, "CSV file")
        fh: Any = io.BytesIO(data)
        limit = limits.MAX_CSV_UPLOAD_BYTES
    else:
        data = regular_file(path, "CSV file")
        limit = limits.MAX_CSV_BYTES
        try:
            size = data.stat().st_size
        except OSError:
            size = 0
        if size > limit:
            raise too_large(limit, "CSV file", size)
        try:
            fh = data.open("rb")
        except OSError as e:
            raise DatasetError(f"{data}: cannot read ({e.strerror})") from None
    with fh:
        scan = _scan(fh, label, limit)
    del columns
    encoding, note = "utf-8-sig", ""
    if scan.bad_utf8_line:
        encoding = "cp1252"
        with (io.BytesIO(data) if isinstance(data, bytes) else data.open("rb")) as fh:
            if not _decodes(fh, "cp1252"):
                encoding = "latin-1"
        note = (f"not UTF-8 (first non-UTF-8 byte on line {scan.bad_utf8_line}); read as {encoding}. If characters "
                "look wrong, save the file as UTF-8")
    return _checked(label, data, encoding, note, scan)


def _checked(label: str, data: Path | bytes | str, encoding: str | None, note: str, scan: _Scan) -> _Source:
    """The limits on a scanned file's shape, in the order of the old whole-text checks. Raises DatasetError."""
    lines, columns = scan.lines, scan.columns
    if lines * columns > limits.MAX_CSV_CELLS:
        raise DatasetError(f"{label}: {lines:,} lines x {columns} columns is over the limit of "
                           f"{limits.MAX_CSV_CELLS:,} cells. Fix: sample rows or drop columns")
    if lines - 1 > limits.MAX_CSV_ROWS and not scan.quoted:  # no quoted cell: every line is a row
        raise DatasetError(f"{label}: {lines - 1:,} rows, more than the limit of {limits.MAX_CSV_ROWS:,} "
                           "(limits.MAX_CSV_ROWS). Fix: sample the file down first")
    if scan.longest > limits.MAX_CSV_LINE_BYTES:
        raise DatasetError(f"{label}: line {scan.longest_line} has {scan.longest:,} bytes, over the limit of "
                           f"{limits.MAX_CSV_LINE_BYTES:,}. Fix: check the file is a CSV table (one sample per line)")
    if scan.nul_line:
        raise DatasetError(f"{label}: a binary file, not CSV text (NUL byte on line {scan.nul_line}); received: "
                           "binary data. Fix: export the table as CSV (UTF-8)")
    size = scan.size
    cached = (lines - 1 >= limits.CACHE_MIN_ROWS or size > limits.MAX_CSV_MEMORY_BYTES) and not isinstance(data, str)
    return _Source(label, data, encoding, note, lines, columns, cached)


@dataclass
class _Scan:
    lines: int = 0
    columns: int = 1
    longest: int = -1
    longest_line: int = 0
    quoted: bool = False
    nul_line: int = 0
    bad_utf8_line: int = 0
    size: int = 0


def _scan(fh: Any, label: str, limit: int | None, block: int = 2**20) -> _Scan:
    """Lines, the longest line, quotes, the first NUL byte and the first non-UTF-8 line of a file, read ``block``
    bytes at a time (at most ``limit`` bytes: more is refused, whatever the file's reported size). A block's line
    ends take 8 bytes each, three times over: 1 MiB blocks keep that to ~24 MiB (8 MiB blocks of newlines held
    265 MiB), no slower."""
    out = _Scan()
    dec = codecs.getincrementaldecoder("utf-8-sig")()
    cur, first = 0, b""
    while True:
        b = fh.read(block)
        if not b:
            break
        out.size += len(b)
        if limit is not None and out.size > limit:
            raise too_large(limit, "CSV file")
        if not first:
            first = b[: limits.MAX_CSV_LINE_BYTES + 1]
            out.columns = _count_fields(first.split(b"\n", 1)[0])
        if not out.nul_line and (nul := b.find(b"\x00")) >= 0:
            out.nul_line = out.lines + b.count(b"\n", 0, nul) + 1
        out.quoted = out.quoted or b'"' in b
        if not out.bad_utf8_line:
            try:
                dec.decode(b)
            except UnicodeDecodeError as e:
                out.bad_utf8_line = out.lines + b.count(b"\n", 0, max(e.start, 0)) + 1
        ends = np.flatnonzero(np.frombuffer(b, dtype=np.uint8) == 10)
        if len(ends) == 0:
            cur += len(b)
            continue
        lengths = np.diff(ends, prepend=-1) - 1
        lengths[0] += cur
        k = int(lengths.argmax())
        if lengths[k] > out.longest:
            out.longest, out.longest_line = int(lengths[k]), out.lines + k + 1
        out.lines += len(ends)
        cur = len(b) - int(ends[-1]) - 1
    if not out.bad_utf8_line:
        try:
            dec.decode(b"", final=True)
        except UnicodeDecodeError:
            out.bad_utf8_line = out.lines + 1
    if cur > 0:
        out.lines += 1
        if cur > out.longest:
            out.longest, out.longest_line = cur, out.lines
    return out


def _decodes(fh: Any, encoding: str, block: int = 8 * 2**20) -> bool:
    """Whether a file decodes as ``encoding``, read ``block`` bytes at a time."""
    dec = codecs.getincrementaldecoder(encoding)()
    try:
        while b := fh.read(block):
            dec.decode(b)
        dec.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


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


def preview_csv(path: str | Path | bytes, rows: int = 200, *, name: str | None = None) -> pd.DataFrame:
    """The first ``rows`` rows of a CSV as pandas reads them (no encoding), for a preview.

    A file of up to ``limits.MAX_CSV_MEMORY_BYTES`` passes the same checks as :func:`load_csv` first (bytes,
    header length and columns, lines x columns, longest line), all before pandas parses anything; a larger one
    (within ``MAX_CSV_BYTES``, or ``MAX_CSV_UPLOAD_BYTES`` for bytes) is previewed from its first
    ``limits.CSV_PREVIEW_BYTES`` only, checked the same way, unless ``rows`` is ``limits.CACHE_MIN_ROWS`` or more. Either way a file ``load_csv`` refuses for its header
    or size is refused here, quickly and in bounded memory.

    Raises:
        DatasetError: an empty, binary, unreadable or over-limit file.
    """
    import pandas as pd  # lazy: heavy (pandas)

    label = name or (Path(path).name if not isinstance(path, bytes) else "uploaded.csv")
    head = read_head(path, limits.MAX_CSV_LINE_BYTES, "CSV file")
    if not head.startswith(_UTF16_BOMS):
        _check_header(head, label)
    if isinstance(path, (bytes, bytearray)):
        size, limit = len(path), limits.MAX_CSV_UPLOAD_BYTES
    else:
        size, limit = regular_file(path, "CSV file").stat().st_size, limits.MAX_CSV_BYTES
    if size > limit:
        raise too_large(limit, "CSV file", size)
    if size <= limits.MAX_CSV_MEMORY_BYTES or head.startswith(_UTF16_BOMS) or rows >= limits.CACHE_MIN_ROWS:
        src = _inspect(path, label)  # the whole file's checks (drift reads whole tables this way)
    else:  # a big file: only its head is read (cut at its last whole line) and checked
        part = read_head(path, limits.CSV_PREVIEW_BYTES, "CSV file")[: limits.CSV_PREVIEW_BYTES]
        part = part[: part.rfind(b"\n") + 1] or part
        src = _inspect(part, label)
    data = src.data
    buf: Any = io.StringIO(data) if isinstance(data, str) else io.BytesIO(data) if isinstance(data, bytes) \
        else open(data, "rb")  # noqa: SIM115 - closed below
    try:
        with buf:
            return pd.read_csv(buf, nrows=max(1, int(rows)), skipinitialspace=True,
                               encoding=None if isinstance(data, str) else src.encoding)
    except pd.errors.EmptyDataError:
        raise DatasetError(f"{label}: the file is empty; it needs a header row and data rows") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as e:
        raise unreadable_csv(label, e) from None


_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def read_csv_capped(data: bytes, label: str, max_rows: int, *, what: str = "rows",
                    columns: Collection[str] | None = None, **read_options: Any) -> pd.DataFrame:
    """A CSV held in memory as one DataFrame, never parsed whole before it is checked: the header first (its
    length and columns, :func:`_check_header`), then chunks of about ``limits.CSV_CHUNK_CELLS`` cells, refused as
    soon as the rows pass ``max_rows`` or the cells ``limits.MAX_CSV_CELLS`` (quoted newlines cannot hide rows).
    ``columns``: read only these (names stripped; a missing one is the caller's to name); ``read_options`` go to
    ``pandas.read_csv``. Raises DatasetError, also for an unreadable file."""
    import pandas as pd  # lazy: heavy (pandas)

    width = _check_header(read_head(data, limits.MAX_CSV_LINE_BYTES, "CSV file"), label)
    wanted = None if columns is None else {str(c).strip() for c in columns}
    if wanted is not None:
        width = min(width, max(len(wanted), 1))
    bound = max(data.count(b"\n"), data.count(b"\r")) + 1  # rows never outnumber the line ends
    table: _Columns | None = None
    rows = 0
    try:
        reader = pd.read_csv(io.BytesIO(data), chunksize=max(1, min(limits.CSV_CHUNK_CELLS // width, max_rows + 1)),
                             usecols=None if wanted is None else (lambda c: str(c).strip() in wanted), **read_options)
        for df in reader:
            rows += len(df)
            if rows > max_rows or rows * width > limits.MAX_CSV_CELLS:
                raise DatasetError(f"{label}: more than {min(max_rows, limits.MAX_CSV_CELLS // width):,} {what}, "
                                   f"over the limit of {max_rows:,} {what} and {limits.MAX_CSV_CELLS:,} cells; "
                                   f"received: {rows:,} and more. Fix: sample it down or drop columns")
            if table is None:
                table = _Columns(df.columns, min(bound, max_rows))
            table.add(df)
            del df
    except pd.errors.EmptyDataError:
        raise DatasetError(f"{label}: the file is empty; it needs a header row and data rows") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OverflowError) as e:
        raise unreadable_csv(label, e) from None
    if table is None:
        return pd.read_csv(io.BytesIO(data), nrows=0, **read_options)
    return table.frame()


class _Columns:
    """A table read chunk by chunk into what ``pd.concat`` of its chunks would give (each column's type decided over
    all its chunks, by a table's rules: bool and float chunks give float64, where two Series give object), without
    holding the chunks and their concatenation at once (twice the table: 700 MB of an 85 MB series CSV of 64
    columns). A column of numbers is copied into one array of ``bound`` rows (the line ends counted: pages past the
    last row are never touched); a column whose chunks differ in type, or of text, is kept as its chunks' own
    copies and joined at the end."""

    def __init__(self, names: pd.Index, bound: int):
        self.names, self.bound, self.rows = names, bound, 0
        self.arrays: list[np.ndarray | None] = [None] * len(names)
        self.pieces: list[list[pd.DataFrame]] = [[] for _ in names]

    def add(self, df: pd.DataFrame) -> None:
        import pandas as pd  # lazy: heavy (pandas)

        n = len(df)
        for i in range(len(self.names)):
            col = df.iloc[:, i]
            if self.rows == 0 and isinstance(col.dtype, np.dtype) and col.dtype.kind in "biuf":
                self.arrays[i] = np.empty(self.bound, col.dtype)
            a = self.arrays[i]
            if a is not None and col.dtype == a.dtype and self.rows + n <= self.bound:
                a[self.rows:self.rows + n] = col.to_numpy()
                continue
            if a is not None:  # a chunk of another type: the rows so far become the column's first piece
                self.pieces[i].append(pd.DataFrame(a[:self.rows].copy()[:, None], columns=self.names[i:i + 1]))
                self.arrays[i] = None
            self.pieces[i].append(df.iloc[:, [i]].copy())
        self.rows += n

    def frame(self) -> pd.DataFrame:
        """The table, each column joined as its pieces are freed."""
        import pandas as pd  # lazy: heavy (pandas)

        joined = []
        for i, a in enumerate(self.arrays):
            if a is not None:
                joined.append(pd.Series(a[:self.rows], copy=False))
                continue
            parts, self.pieces[i] = self.pieces[i], []
            joined.append((pd.concat(parts) if len(parts) > 1 else parts[0]).iloc[:, 0])
            del parts
        self.arrays = []
        if not joined:  # no column kept (none of those asked for is in the file): the rows, as pd.concat gave them
            return pd.DataFrame(index=pd.RangeIndex(self.rows), columns=self.names)
        frame = pd.concat(joined, axis=1)
        frame.columns = self.names
        return frame


def _check_header(head: bytes, label: str) -> int:
    """The header's number of columns, from the file's first ``MAX_CSV_LINE_BYTES + 1`` bytes (or fewer): an
    over-long first line or too many columns is refused without splitting anything. Raises DatasetError."""
    nl = head.find(b"\n")
    first = head if nl < 0 else head[:nl]
    if len(first) > limits.MAX_CSV_LINE_BYTES:
        raise DatasetError(f"{label}: line 1 (the header) has more than {limits.MAX_CSV_LINE_BYTES:,} bytes, over the "
                           "limit. Fix: check the file is a CSV table (one sample per line)")
    columns = _count_fields(first)
    if columns > limits.MAX_CSV_COLUMNS:
        raise DatasetError(f"{label}: the header has {columns} columns, over the limit of {limits.MAX_CSV_COLUMNS}. "
                           "Fix: keep the columns the model needs")
    return columns


def _count_fields(line: bytes) -> int:
    """Fields of one CSV line: commas outside double quotes, plus one (``""`` inside quotes toggles twice)."""
    a = np.frombuffer(line, dtype=np.uint8)
    quoted = np.cumsum(a == 34, dtype=np.int64) & 1
    return int(np.count_nonzero((a == 44) & (quoted == 0))) + 1


__all__ = ["load_csv", "preview_csv", "read_csv_capped"]
