"""The decoded-image cache: a dataset's images decoded once into a uint8 array on disk, memory-mapped after that.

The cache is shared by every owner, so an entry is keyed by what it was built from, never by names: the SHA-256
of the source's bytes (:func:`content_hash`: a zip's or an upload's bytes, every file of a folder) plus the decode
size and channels (:func:`fingerprint`). Names, sizes, modification times and CRC-32s are hints at most (a file's
hash is remembered for the same path, size, inode and change time). An entry lives under
``<workspace>/cache/images/<key>/``::

    pixels.u8       N x H x W x C uint8, written in place (numpy memmap)
    labels.npy      N int64 class indices
    progress.json   the chunks already decoded and flushed (a killed decode continues from here)
    meta.json       written last: only a renamed entry with it is ever read

Chunks of images are decoded by a thread pool (Pillow releases the GIL while it decodes) into ``<key>.partial/``,
each written into its rows of the memmap and flushed before ``progress.json`` names it (a killed decode continues
there); the finished folder is renamed to ``<key>/``. A ``<key>/`` that does not open as a complete entry of this
version (stale or half-written) is moved aside and built again, never trusted. The workspace is ``$LAYERLAB_WORKSPACE`` (else ``~/.layerlab``) unless the pipeline names its
store's with :func:`use_cache_dir`. Example::

    >>> import numpy as np, tempfile
    >>> with tempfile.TemporaryDirectory() as d, use_cache_dir(d):
    ...     px, _ = build_pixel_cache("k1", [0, 1, 0], (2, 2, 1), lambda i: np.full((2, 2, 1), i, np.uint8))
    ...     px2, labels = build_pixel_cache("k1", [0, 1, 0], (2, 2, 1), None)  # cached: nothing decoded
    ...     int(px2[2, 0, 0, 0]), labels.tolist()
    (2, [0, 1, 0])
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

import numpy as np

import builder.data.limits as limits
from builder.data.disk import check_free, write_atomic
from builder.errors import DatasetError

CACHE_VERSION = 2  # bump when the layout or the decoding changes: old entries are then never read
CHUNK = 512  # images per decode task (and per progress record)
ENV_WORKSPACE = "LAYERLAB_WORKSPACE"  # the workspace folder (runs, uploads, caches): workspace_root
_DIR: ContextVar[Path | None] = ContextVar("layerlab_cache_dir", default=None)
_OWN: ContextVar[Path | None] = ContextVar("layerlab_own_cache", default=None)

Progress = Callable[[int, int], None]


@contextmanager
def use_cache_dir(workspace: str | Path | None) -> Iterator[None]:
    """Within the block, caches live in ``<workspace>/cache`` (None: leave the default)."""
    if workspace is None:
        yield
        return
    token = _DIR.set(Path(workspace).expanduser() / "cache")
    try:
        yield
    finally:
        _DIR.reset(token)


@contextmanager
def own_cache(folder: str | Path | None) -> Iterator[None]:
    """Within the block the shared cache is only read: an entry that is not complete there is read and built in
    ``folder`` (None: leave things as they are), which no other process reads. A confined process (a person's
    training job, their page's model probe) runs with this and with the shared cache read-only in its rules: it
    builds and runs that person's model, and had it written the shared cache it could have rewritten the pixels
    or rows of an entry that another owner's job then trained on (the entries are keyed by content, so each is
    shared by everyone with the same file).

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d, use_cache_dir(d + "/ws"), own_cache(d + "/own"):
    ...     _ = build_pixel_cache("k2", [1], (1, 1, 1), lambda i: np.zeros((1, 1, 1), np.uint8))
    ...     (Path(d) / "own/images/k2/meta.json").is_file(), (Path(d) / "ws/cache/images/k2").exists()
    (True, False)
    """
    if folder is None:
        yield
        return
    token = _OWN.set(Path(folder))
    try:
        yield
    finally:
        _OWN.reset(token)


def keep_own(folder: str | Path) -> None:
    """:func:`own_cache` for the rest of this process's main thread: a confined job or model probe, from its
    confinement on (its rules give it the shared cache to read only)."""
    _OWN.set(Path(folder))


def workspace_root(flag: str | os.PathLike | None = None) -> Path:
    """The workspace folder, absolute: ``flag``, else ``$LAYERLAB_WORKSPACE``, else ``~/.layerlab``. A relative
    variable is resolved once, against the working folder of the first process that reads it, and written back,
    so that the jobs and trials it starts in other folders find the same workspace.

    >>> workspace_root("/srv/ws")
    PosixPath('/srv/ws')
    """
    env = os.environ.get(ENV_WORKSPACE)
    ws = Path(os.path.abspath(Path(flag or env or Path.home() / ".layerlab").expanduser()))
    if not flag and env:
        os.environ[ENV_WORKSPACE] = str(ws)
    return ws


def cache_dir() -> Path:
    """The cache folder: the workspace named by :func:`use_cache_dir`, else :func:`workspace_root`'s, plus
    ``/cache``."""
    d = _DIR.get()
    if d is not None:
        return d
    return workspace_root() / "cache"


def fingerprint(*parts: object) -> str:
    """The 64-hex-digit SHA-256 key of ``parts`` (JSON-encoded): the source's :func:`content_hash` and the
    settings the entry was built with.

    >>> len(fingerprint("images", "0" * 64, [8, 8]))
    64
    """
    h = hashlib.sha256(json.dumps([CACHE_VERSION, *parts], default=str, separators=(",", ":")).encode())
    return h.hexdigest()


_HASH_BLOCK = 1 << 20
_HASH_HINTS: dict[tuple, str] = {}  # (path, size, mtime, inode, ctime) -> SHA-256, in this process only


def content_hash(source: str | Path | bytes | bytearray) -> str:
    """The SHA-256 (hex) of a file's bytes, read once in 1 MiB blocks, or of ``bytes``.

    The cache keys of :mod:`builder.data.images` and :mod:`builder.data.table_cache` are built from it. A path's
    stat (size, modification and change times, inode) is only a hint to skip hashing the same file again in
    this process: any write changes its change time. Raises DatasetError when the file cannot be read.

    >>> content_hash(b"abc")[:16]
    'ba7816bf8f01cfea'
    """
    if isinstance(source, (bytes, bytearray)):
        return hashlib.sha256(source).hexdigest()
    p = Path(source)
    try:
        with p.open("rb") as fh:
            st = os.fstat(fh.fileno())
            hint = (str(p.resolve()), st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)
            known = _HASH_HINTS.get(hint)
            if known is not None:
                return known
            h = hashlib.sha256()
            while block := fh.read(_HASH_BLOCK):
                h.update(block)
    except OSError as e:
        raise DatasetError(f"{p.name}: cannot read ({e.strerror})") from None
    if len(_HASH_HINTS) > 4096:
        _HASH_HINTS.clear()
    _HASH_HINTS[hint] = h.hexdigest()
    return _HASH_HINTS[hint]


def entry_dir(key: str, kind: str = "images") -> Path:
    """The folder of one cache entry of ``kind`` (``images``, or ``tables``: :mod:`builder.data.table_cache`); the
    key is a hex fingerprint: it cannot climb out of the cache."""
    if not (isinstance(key, str) and key.isalnum() and len(key) <= 64):
        raise DatasetError(f"a cache key is up to 64 letters and digits; received: {str(key)[:80]!r}. Fix: use "
                           "fingerprint(...)")
    if kind not in ("images", "tables"):
        raise DatasetError(f"a cache kind is images or tables; received: {str(kind)[:40]!r}. Fix: use one of those")
    shared, own = cache_dir() / kind / key, _OWN.get()
    return shared if own is None or _current(shared) else own / kind / key


def build_dir(key: str, kind: str = "images") -> Path:
    """Where entry ``key`` is built when :func:`entry_dir`'s does not open: that folder, or within
    :func:`own_cache` the process's own (the shared cache is never written there)."""
    own = _OWN.get()
    return entry_dir(key, kind) if own is None else own / kind / entry_dir(key, kind).name


def _current(d: Path) -> bool:
    """Whether ``d`` holds a complete entry of this :data:`CACHE_VERSION` (its ``meta.json`` says so)."""
    try:
        return json.loads((d / "meta.json").read_text()).get("version") == CACHE_VERSION
    except (OSError, ValueError, AttributeError):
        return False


def cached(key: str) -> bool:
    """Whether a complete entry exists for ``key``."""
    return (entry_dir(key) / "meta.json").is_file()


def cached_shape(key: str) -> tuple[int, int, int] | None:
    """The (H, W, C) of a complete entry for ``key``, or None (no entry, or one from another version)."""
    try:
        meta = json.loads((entry_dir(key) / "meta.json").read_text())
        if meta.get("version") == CACHE_VERSION:
            h, w, c = (int(v) for v in meta["shape"])
            return h, w, c
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        pass
    return None


def build_pixel_cache(key: str, labels: Sequence[int], shape: tuple[int, int, int],
                      decode: Callable[[int], np.ndarray] | None, *, progress: Progress | None = None,
                      workers: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The cached ``(pixels, labels)`` of entry ``key``: pixels a read-only-on-disk memmap N x H x W x C uint8
    (copy-on-write in memory), labels int64. A complete entry is opened without calling ``decode``; otherwise
    image ``i`` is ``decode(i)`` (H, W, C uint8), decoded in parallel chunks, continuing a partial entry.

    Raises:
        DatasetError: the compact form over ``limits.MAX_DECODED_BYTES`` or the free disk, decoding over
            ``limits.MAX_DECODE_SECONDS`` (the decoded chunks are kept: run again to continue), or a decode
            error (``decode`` raising DatasetError).
    """
    n = len(labels)
    h, w, c = (int(s) for s in shape)
    for d in dict.fromkeys((entry_dir(key), build_dir(key))):  # the shared entry, then (own_cache) this process's
        if d.exists():
            opened = _open(d, n, (h, w, c))
            if opened is not None:
                return opened
    if decode is None:
        raise DatasetError(f"the image cache entry {key} is missing or incomplete; received: no decoder. Fix: load "
                           "the dataset from its folder or zip")
    nbytes = n * h * w * c
    check_cache_bytes(nbytes, n, (h, w, c))
    work = d.with_name(d.name + ".partial")  # decoded here, renamed to ``d`` once complete
    work.mkdir(parents=True, exist_ok=True)
    path = work / "pixels.u8"
    done = _progress(work, n, (h, w, c))
    if not path.is_file() or path.stat().st_size != nbytes:
        done = set()
        check_free_disk(work, nbytes, "the decoded images", ", or a smaller image size")
        with open(path, "wb") as f:
            f.truncate(nbytes)  # sparse: the chunks fill it
    mm = np.memmap(path, dtype=np.uint8, mode="r+", shape=(n, h, w, c))
    chunks = [k for k in range((n + CHUNK - 1) // CHUNK) if k not in done]
    total_done = n - sum(min(CHUNK, n - k * CHUNK) for k in chunks)
    if progress is not None:
        progress(total_done, n)
    deadline = time.monotonic() + limits.MAX_DECODE_SECONDS

    def work_on(k: int) -> int:
        lo, hi = k * CHUNK, min(n, (k + 1) * CHUNK)
        for i in range(lo, hi):
            mm[i] = decode(i)
        return k

    nw = workers or min(8, os.cpu_count() or 1)
    errors: list[BaseException] = []
    with ThreadPoolExecutor(max_workers=nw, thread_name_prefix="layerlab-decode") as pool:
        futures = [pool.submit(work_on, k) for k in chunks]
        for fut in as_completed(futures):
            try:
                k = fut.result()
            except BaseException as e:  # noqa: BLE001 - re-raised below, after the other chunks are recorded
                errors.append(e)
                continue
            mm.flush()
            done.add(k)
            total_done += min(CHUNK, n - k * CHUNK)
            write_json(work / "progress.json", {"version": CACHE_VERSION, "n": n, "shape": [h, w, c],
                                                 "done": sorted(done)})
            if progress is not None:
                progress(total_done, n)
            if time.monotonic() > deadline and not errors:
                for f in futures:
                    f.cancel()
                errors.append(DatasetError(
                    f"decoding the images took longer than the limit of {limits.MAX_DECODE_SECONDS:.0f} s; received: "
                    f"{total_done} of {n} images decoded (kept in the cache). Fix: run again to continue where it "
                    "stopped, or use a smaller image size"))
    mm.flush()
    if errors:
        raise errors[0] if isinstance(errors[0], DatasetError) else DatasetError(
            f"decoding the images failed: {type(errors[0]).__name__}: {str(errors[0])[:200]}") from errors[0]
    np.save(work / "labels.npy", np.asarray(labels, dtype=np.int64))
    write_json(work / "meta.json", {"version": CACHE_VERSION, "n": n, "shape": [h, w, c]})
    opened = _publish(work, d, n, (h, w, c))
    if opened is None:
        raise DatasetError(f"the image cache entry {key} could not be read back after writing it. Fix: delete the "
                           "cache folder and load again")
    return opened


def _publish(work: Path, d: Path, n: int, shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray] | None:
    """Rename a complete entry ``work`` to ``d`` (a stale or half-written ``d`` is moved aside first; an entry
    another process completed meanwhile is used as it is) and open it."""
    for _ in range(2):
        try:
            os.rename(work, d)
            break
        except FileNotFoundError:  # another process renamed the same work folder (the same content) first
            break
        except OSError:  # ``d`` exists: complete (another process) or stale
            if _open(d, n, shape) is not None:
                shutil.rmtree(work, ignore_errors=True)
                break
            discard(d)
    return _open(d, n, shape)


ENTRY_FILES = ("pixels.u8", "labels.npy", "meta.json")  # what a complete image entry holds
_SMALL_FILE = 1 << 16  # meta.json is a few dozen bytes


def adopt(key: str, built: Path, below: Path) -> tuple[int, int, int]:
    """Take the image entry ``key`` that another process (the sandboxed decoder) built at ``built`` into this
    cache, and return its (H, W, C). ``built`` lies inside ``below``, a folder of this cache's disk that only that
    process wrote into; it is trusted for nothing: every folder from ``below`` down to ``built`` must be a real
    folder and each of :data:`ENTRY_FILES` a regular file with one link (a link or a second name would hand this
    cache another entry's or another person's file), the entry must open as complete (its sizes agree), and the
    files are renamed into place (no copy; a partial move is never published).

    Raises:
        DatasetError: anything else; nothing is taken.
    """
    d = entry_dir(key)
    n, shape = 0, (0, 0, 0)
    try:
        rel = built.relative_to(below)
        for k in range(len(rel.parts) + 1):
            st = os.lstat(below.joinpath(*rel.parts[:k]))
            if not stat.S_ISDIR(st.st_mode):
                raise OSError("not a folder")
        sizes = {}
        for name in ENTRY_FILES:
            st = os.lstat(built / name)
            if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
                raise OSError(f"{name} is not a plain file")
            sizes[name] = st.st_size
        if sizes["meta.json"] > _SMALL_FILE:
            raise OSError("meta.json too large")
        meta = json.loads((built / "meta.json").read_text())
        h, w, c = (int(v) for v in meta["shape"])
        n, shape = int(meta["n"]), (h, w, c)
        if n < 0 or sizes["labels.npy"] > _SMALL_FILE + 8 * n:
            raise OSError("an entry of another form")
        if _open(built, n, shape) is None:
            raise OSError("incomplete")
        work = d.with_name(f"{d.name}.partial.{os.getpid()}.{time.time_ns()}")
        work.mkdir(parents=True)
        for name in ENTRY_FILES:
            os.rename(built / name, work / name)
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as e:
        # the reason names no path and quotes nothing of the files (an OSError's text holds its path)
        why = (e.strerror or str(e.args[0] if e.args else "")) if isinstance(e, OSError) else type(e).__name__
        raise DatasetError(f"the decoded images were not usable ({why[:80]}); received: an entry the decoder did "
                           "not finish. Fix: load the dataset again") from None
    opened = _publish(work, d, n, shape)
    if opened is None:
        shutil.rmtree(work, ignore_errors=True)
        raise DatasetError(f"the image cache entry {key} could not be read back after writing it. Fix: delete the "
                           "cache folder and load again")
    return shape


def discard(d: Path) -> None:
    """Move a stale or half-written cache entry aside (one rename: readers never see it half-deleted) and delete
    it."""
    aside = d.with_name(f"{d.name}.stale.{os.getpid()}.{time.time_ns()}")
    try:
        os.rename(d, aside)
    except OSError:
        return
    shutil.rmtree(aside, ignore_errors=True)


def check_free_disk(d: Path, nbytes: int, what: str, fix: str = "") -> None:
    """Refuse a cache entry of ``nbytes`` in folder ``d`` when its disk has less free (256 MiB kept spare):
    :func:`builder.data.disk.check_free`, whose DiskFullError is also a DatasetError."""
    check_free(d, nbytes, f"{what} in the cache", f", or set {ENV_WORKSPACE} to a larger disk{fix}")


def check_cache_bytes(nbytes: int, n: int, shape: tuple[int, int, int]) -> None:
    """Refuse a compact form (``n`` images of ``shape`` H, W, C as uint8) over ``limits.MAX_DECODED_BYTES``."""
    if nbytes > limits.MAX_DECODED_BYTES:
        h, w, c = shape
        side = max(4, int((limits.MAX_DECODED_BYTES / (n * c)) ** 0.5))
        raise DatasetError(f"{n} images x {c} channel(s) x {h}x{w} would take {nbytes / 2**20:.0f} MiB decoded "
                           f"(uint8), over the limit of {limits.MAX_DECODED_BYTES / 2**20:.0f} MiB "
                           f"(limits.MAX_DECODED_BYTES). Fix: a smaller size (at most {side}x{side} for this many "
                           "images), channels=1, or fewer images")


def _open(d: Path, n: int, shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray] | None:
    try:
        meta = json.loads((d / "meta.json").read_text())
        if meta.get("version") != CACHE_VERSION or meta.get("n") != n or list(meta.get("shape", [])) != list(shape):
            return None
        if (d / "pixels.u8").stat().st_size != n * int(np.prod(shape)):
            return None
        labels = np.load(d / "labels.npy", allow_pickle=False)
        if labels.shape != (n,) or labels.dtype != np.int64:
            return None
        return np.memmap(d / "pixels.u8", dtype=np.uint8, mode="c", shape=(n, *shape)), labels
    except (OSError, ValueError, TypeError, AttributeError):
        return None


def _progress(d: Path, n: int, shape: tuple[int, int, int]) -> set[int]:
    try:
        p = json.loads((d / "progress.json").read_text())
        if p.get("version") == CACHE_VERSION and p.get("n") == n and list(p.get("shape", [])) == list(shape):
            return {int(k) for k in p.get("done", []) if 0 <= int(k) < (n + CHUNK - 1) // CHUNK}
    except (OSError, ValueError, TypeError, AttributeError):
        pass
    return set()


def write_json(path: Path, obj: dict) -> None:
    """Write ``obj`` as JSON to ``path`` atomically (a temporary name, then a rename): a reader sees all or none."""
    write_atomic(path, json.dumps(obj), "the dataset cache's index")


__all__ = ["adopt", "ENTRY_FILES", "build_dir", "build_pixel_cache", "cache_dir", "cached", "cached_shape", "check_cache_bytes", "content_hash", "discard",
           "entry_dir", "fingerprint",
           "keep_own", "own_cache", "use_cache_dir", "write_json", "CHUNK", "workspace_root", "ENV_WORKSPACE"]
