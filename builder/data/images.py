"""Image folders and zips (one sub-folder per class) as image datasets, decoded with Pillow under hard limits.

Nothing is extracted to disk and nothing is unpickled: members are read with caps, headers are checked before
any pixel is decoded, unsafe zip names, links and encrypted members are refused.
"""

from __future__ import annotations

import functools
import io
import os
import stat
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

import numpy as np
from PIL import Image

import builder.data.limits as limits
from builder.data import cache as cache_mod
from builder.data.cache import content_hash
from builder.data.files import (
    ZIP_ERRORS,
    check_zip_directory,
    error_name,
    natural_key,
    read_at_most,
    read_zip_member,
)
from builder.data.splits import Dataset, DatasetInfo, finish_pixels
from builder.errors import DatasetError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")

ImageDecoder = Callable[[Path, tuple[int, int], "int | None", str, int], None]
"""Decodes an image set elsewhere: ``decoder(source, size, channels, key, count)`` leaves the complete cache entry
``key`` (:func:`builder.data.cache.entry_dir`) of ``load_image_folder(source, size, channels=channels, cache=True)``
(``count`` images), or raises a LayerLabError; it never returns pixels."""
_ELSEWHERE: ContextVar[ImageDecoder | None] = ContextVar("layerlab_image_decoder", default=None)


@contextmanager
def decode_elsewhere(decoder: ImageDecoder | None) -> Iterator[None]:
    """Within the block, :func:`load_image_folder` decodes no image in this process: a set not in the cache is
    handed to ``decoder`` (the server's: a sandboxed child, :func:`builder.interchange.worker.decode_images_isolated`),
    and this process only opens the finished uint8 entry. Pillow's decoders are native code and a person's file
    is hostile input: a file that crashes one must end a child, not the server. None: decode here (a job process,
    the CLI)."""
    token = _ELSEWHERE.set(decoder)
    try:
        yield
    finally:
        _ELSEWHERE.reset(token)


def load_image_folder(path: str | Path | bytes, size: tuple[int, int] = (32, 32), *, channels: int | None = None,
                      task: str | None = None, seed: int = 0, val_fraction: float = 0.15,
                      test_fraction: float = 0.15, normalize: bool = False, cache: bool | None = None,
                      progress: Callable[[int, int], None] | None = None) -> Dataset:
    """Load images from a folder or a .zip (a path, or the zip's bytes) with one sub-folder per class.

    Images are decoded with Pillow (never unpickled) and resized to ``size`` (H, W), kept as uint8 and scaled
    to [0, 1] per batch (:class:`~builder.data.splits.PixelSplit`); ``normalize`` also subtracts the training
    split's per-channel mean and divides by its standard deviation. ``channels`` is 1 or 3; by default 3 if any
    image has colour, else 1. ``cache``: decode once into the workspace's uint8 cache (:mod:`builder.data.cache`,
    in parallel, resumable) and memory-map it; by default for ``limits.CACHE_MIN_IMAGES`` images or more.
    ``progress(done, total)`` is called while images are decoded into the cache.

    Raises:
        DatasetError: missing path, fewer than two classes, no images, unreadable images, size limits.
    """
    if isinstance(size, int) and not isinstance(size, bool):
        size = (size, size)
    if not isinstance(size, list | tuple) or not all(isinstance(s, int) and not isinstance(s, bool) for s in size):
        raise DatasetError(f"image size must be one side or [height, width] in pixels; received: size={size!r:.60}. "
                           "Fix: e.g. size=64 or size=[64, 96]")
    size = tuple(size)
    if len(size) != 2 or not all(4 <= s <= limits.MAX_IMAGE_SIDE for s in size):
        raise DatasetError(f"image size must be two sides between 4 and {limits.MAX_IMAGE_SIDE}; got {size!r}")
    if channels not in (None, 1, 3):
        raise DatasetError(f"channels must be 1 or 3; got {channels!r}")
    if isinstance(path, (bytes, bytearray)):  # an uploaded zip
        if len(path) > limits.MAX_IMAGE_UPLOAD_BYTES:
            raise DatasetError(f"the zip is larger than {limits.MAX_IMAGE_UPLOAD_BYTES // 2**20} MiB "
                               "(limits.MAX_IMAGE_UPLOAD_BYTES); received: "
                               f"{len(path):,} bytes. Fix: pass the zip's path instead of its bytes")
        p = Path("upload.zip")
        files = _zip_members(io.BytesIO(bytes(path)), p)
    else:
        p = Path(path)
        if not p.exists():
            raise DatasetError(f"{p}: no such folder or zip file")
        if p.is_file():
            files = _zip_members(p, p)
        elif p.is_dir():
            files = _folder_members(p)
        else:
            raise DatasetError(f"{p}: not a folder or a zip file; received: a special file (device, pipe or "
                               "socket). Fix: pass a folder with one sub-folder per class, or a .zip")
    classes = sorted({c for c, _, _, _ in files}, key=natural_key)
    if len(classes) < 2:
        found = f"only class {classes[0]!r}" if classes else "no class sub-folders with images"
        raise DatasetError(f"{p}: {found}; put the images in one sub-folder per class (at least two), e.g. "
                           "cats/1.png, dogs/2.png")
    index = {c: k for k, c in enumerate(classes)}
    labels = [index[c] for c, _, _, _ in files]
    elsewhere = _ELSEWHERE.get()
    use_cache = elsewhere is not None or (cache if cache is not None else len(files) >= limits.CACHE_MIN_IMAGES)
    key = cache_mod.fingerprint("images", size, channels, _content(path, p, files)) if use_cache else None
    shape = cache_mod.cached_shape(key) if key is not None else None
    if shape is None and elsewhere is not None and key is not None:
        shape = _decoded_elsewhere(elsewhere, path, p, size, channels, key, len(files))
    if shape is not None:  # decoded before: no header is read, nothing is decoded
        pixels, _ = cache_mod.build_pixel_cache(key, labels, shape, None)
        ch = shape[2]
    else:
        ch = _channels(files, p, channels)
        nbytes = len(files) * size[0] * size[1] * ch
        cache_mod.check_cache_bytes(nbytes, len(files), (size[0], size[1], ch))
        if key is not None:
            def one(k: int) -> np.ndarray:
                try:
                    return _decode(files[k][2](None), size, ch)
                except _BadImage:
                    raise DatasetError(f"{p}: 1 file(s) are not readable images, e.g. {files[k][1]}; remove "
                                       "them") from None
            pixels, _ = cache_mod.build_pixel_cache(key, labels, (size[0], size[1], ch), one, progress=progress)
        else:
            pixels = _decode_all(files, p, size, ch)
    info = DatasetInfo(name=f"images:{p.name}", source="image_folder", task="multiclass", modality="image",
                       input_shape=(ch, size[0], size[1]), class_names=classes,
                       description=f"{p.name}: {len(files)} images in {len(classes)} classes, resized to "
                                   f"{size[0]}x{size[1]}",
                       options={"path": None if isinstance(path, (bytes, bytearray)) else str(p),
                                "size": list(size), "channels": ch})
    if len(classes) == 2:
        info.task = "binary"
    return finish_pixels(pixels, np.asarray(labels, dtype=np.int64), info, task=task, seed=seed,
                         val_fraction=val_fraction, test_fraction=test_fraction, normalize=normalize)


def _decoded_elsewhere(decoder: ImageDecoder, path: str | Path | bytes, p: Path, size: tuple[int, int],
                       channels: int | None, key: str, count: int) -> tuple[int, int, int]:
    """The shape of entry ``key`` once ``decoder`` has built it (a zip given as bytes is handed over as a
    temporary file). Raises DatasetError when no complete entry came of it."""
    if isinstance(path, (bytes, bytearray)):
        with tempfile.TemporaryDirectory(prefix="layerlab-images-") as tmp:
            src = Path(tmp) / "upload.zip"
            src.write_bytes(bytes(path))
            decoder(src, size, channels, key, count)
    else:
        decoder(p, size, channels, key, count)
    shape = cache_mod.cached_shape(key)
    if shape is None:
        raise DatasetError(f"{p}: the images were not decoded; received: no complete decoded set. Fix: load the "
                           "dataset again")
    return shape


def _content(path: str | Path | bytes, p: Path, files: list) -> str:
    """The SHA-256 of what a cache entry is built from (its key; :func:`builder.data.cache.content_hash`): the
    zip's bytes, or for a folder every image's name and bytes. Listings (names, sizes, CRC-32s) are never keys:
    another owner can make a zip with the same listing and other pixels."""
    if isinstance(path, (bytes, bytearray)) or p.is_file():
        return content_hash(path if isinstance(path, (bytes, bytearray)) else p)
    return content_hash("\n".join(f"{c}/{n}:{content_hash(read(None))}" for c, n, read, _ in files).encode())


def _channels(files: list, p: Path, channels: int | None) -> int:
    """Pass 1: every image's header (size, mode) from its first bytes, nothing decoded; the channels to use."""
    heads, bad = [], []
    for _, name, read, _ in files:
        try:
            try:
                heads.append(_image_header(read(_HEADER_BYTES), name))
            except _BadImage:  # a header past the first bytes (large metadata): read the whole file
                heads.append(_image_header(read(None), name))
        except _BadImage:
            bad.append(name)
    if bad:
        raise DatasetError(f"{p}: {len(bad)} file(s) are not readable images, e.g. {', '.join(bad[:3])}; "
                           "remove them")
    huge = [(f[1], w, h) for f, (w, h, _) in zip(files, heads) if w * h > limits.MAX_IMAGE_PIXELS]
    if huge:
        name, w, h = huge[0]
        raise DatasetError(f"{p}: image {name} is {w}x{h} ({w * h / 1e6:.0f} megapixels), over the limit of "
                           f"{limits.MAX_IMAGE_PIXELS / 1e6:.0f} megapixels per image ({len(huge)} such file(s)). Fix: "
                           "shrink the images before uploading")
    return channels or (3 if any(mode not in _GREY_MODES for _, _, mode in heads) else 1)


def _decode_all(files: list, p: Path, size: tuple[int, int], ch: int) -> np.ndarray:
    """Pass 2 in memory (sets under ``limits.CACHE_MIN_IMAGES``): (N, H, W, C) uint8."""
    arr = np.empty((len(files), size[0], size[1], ch), dtype=np.uint8)
    bad = []
    for k, (_, name, read, _) in enumerate(files):
        try:
            arr[k] = _decode(read(None), size, ch)
        except _BadImage:
            bad.append(name)
    if bad:
        raise DatasetError(f"{p}: {len(bad)} file(s) are not readable images, e.g. {', '.join(bad[:3])}; "
                           "remove them")
    return arr


_GREY_MODES = ("L", "1", "LA", "I", "I;16", "F")
_HEADER_BYTES = 2**16  # read first for an image's header (size, mode)


class _BadImage(Exception):
    pass


def _image_header(data: bytes, name: str) -> tuple[int, int, str]:
    """``(width, height, mode)`` from an image's header, without decoding its pixels."""

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                w, h = im.size
                return int(w), int(h), str(im.mode)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as e:
        raise DatasetError(f"image {name} is over the limit of {limits.MAX_IMAGE_PIXELS / 1e6:.0f} megapixels per image "
                           f"({str(e).split('(')[-1].split(')')[0][:40]}). Fix: shrink the images before "
                           "uploading") from None
    except Exception:  # Pillow raises many kinds (UnidentifiedImageError, OSError, SyntaxError, ...)
        raise _BadImage(name) from None


def _decode(data: bytes, size: tuple[int, int], ch: int) -> np.ndarray:
    """Decode one image (its size was checked from the header) and resize it: (H, W, ch) uint8."""

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                if im.size[0] * im.size[1] > limits.MAX_IMAGE_PIXELS:  # a header that changed between passes
                    raise _BadImage("too large")
                out = im.convert("L" if ch == 1 else "RGB").resize((size[1], size[0]), Image.BILINEAR)
        a = np.asarray(out, dtype=np.uint8)
        return a[:, :, None] if ch == 1 else a
    except _BadImage:
        raise
    except Exception:
        raise _BadImage("unreadable") from None


def _listing(d: Path, root: Path) -> list[Path]:
    """The entries of folder ``d``, counted while they are listed (a folder of millions of files is refused
    before the list is built or sorted)."""
    out = []
    try:
        with os.scandir(d) as it:
            for e in it:
                out.append(d / e.name)
                if len(out) > limits.MAX_ZIP_ENTRIES:
                    raise DatasetError(f"{root}: {d.name} holds more than {limits.MAX_ZIP_ENTRIES} entries, over the "
                                       "limit. Fix: use a smaller subset")
    except OSError as e:
        raise DatasetError(f"{d}: cannot list the folder ({e.strerror})") from None
    return sorted(out)


def _folder_members(root: Path) -> list[tuple[str, str, Callable[[int | None], bytes], tuple]]:
    """Image files of a folder as ``(class, name, read, stamp)``; the stamp (size, mtime) keys the cache."""
    subdirs = [d for d in _listing(root, root) if d.is_dir() and not d.name.startswith(".")]
    if len(subdirs) == 1 and not any(f.suffix.lower() in IMAGE_SUFFIXES for f in _listing(subdirs[0], root)):
        subdirs = [d for d in _listing(subdirs[0], root) if d.is_dir() and not d.name.startswith(".")]
    out, total = [], 0
    for d in subdirs:
        if d.is_symlink():
            raise DatasetError(f"{root}: {d.name} is a symbolic link; received: a link. Fix: copy the images "
                               "into the folder (links are not followed)")
        for f in _listing(d, root):
            if f.suffix.lower() not in IMAGE_SUFFIXES or f.name.startswith("."):
                continue
            if f.is_symlink():
                raise DatasetError(f"{root}: {d.name}/{f.name} is a symbolic link; received: a link. Fix: copy "
                                   "the image itself (links are not followed)")
            if not f.is_file():
                continue
            st = f.stat()
            size = st.st_size
            _check_image_file_size(size, f"{d.name}/{f.name}", root)
            total += size
            out.append((d.name, f"{d.name}/{f.name}", functools.partial(_read_capped, f), (size, st.st_mtime_ns)))
            _check_image_limits(len(out), total, root)
    return out



def _read_capped(f: Path, n: int | None = None) -> bytes:
    """One image file (or its first ``n`` bytes), read with a hard cap (its reported size may be wrong)."""
    if n is not None:
        return read_at_most(f, n - 1)
    data = read_at_most(f, limits.MAX_IMAGE_FILE_BYTES)
    if len(data) > limits.MAX_IMAGE_FILE_BYTES:
        raise DatasetError(f"{f}: larger than the limit of {limits.MAX_IMAGE_FILE_BYTES // 2**20} MiB per image. Fix: "
                           "shrink the image")
    return data


def _zip_members(src, path: Path) -> list[tuple[str, str, Callable[[int | None], bytes], tuple]]:
    """Image members of a zip as ``(class, name, read, stamp)`` (stamp: size and CRC-32, keying the cache); unsafe or damaged archives are a DatasetError.

    Nothing is extracted to disk. Names that climb out (``..``), absolute names, symbolic links and encrypted
    members are refused; declared sizes are bounded before reading and every read is capped at the declared
    size (a member that inflates past it, or fails its CRC, is a damaged zip).
    """
    try:
        if not zipfile.is_zipfile(src):
            raise DatasetError(f"{path}: not a folder or a zip file")
        _check_zip_directory(src, path)
        zf = zipfile.ZipFile(src)
        infos = zf.infolist()
    except DatasetError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError, NotImplementedError) as e:
        raise DatasetError(f"{path}: the zip's table of contents cannot be read; received: {error_name(e)} "
                           f"({str(e)[:120]}). Fix: re-create the zip (a copy cut short or changed on the way does "
                           "this)") from None
    for i in infos:
        _check_zip_name(i, path)
    infos = [i for i in infos if not i.is_dir() and Path(i.filename).suffix.lower() in IMAGE_SUFFIXES
             and not any(part.startswith((".", "__MACOSX")) for part in Path(i.filename).parts)]
    parts = [Path(i.filename).parts for i in infos]
    # strip one common top-level folder (zip of a folder)
    strip = 1 if parts and all(len(pp) >= 3 for pp in parts) and len({pp[0] for pp in parts}) == 1 else 0
    out, total = [], 0
    for i, pp in zip(infos, parts):
        pp = pp[strip:]
        if len(pp) != 2:
            continue  # images must sit exactly one folder deep: class/image
        _check_image_file_size(i.file_size, i.filename, path)
        if i.file_size > max(limits.MAX_ZIP_RATIO * i.compress_size, 2**20):
            raise DatasetError(f"{path}: member {i.filename[:120]!r} declares {i.file_size:,} bytes from "
                               f"{i.compress_size:,} compressed (over {limits.MAX_ZIP_RATIO}:1): a zip bomb? Fix: zip "
                               "the image files themselves (already compressed formats such as PNG or JPEG)")
        total += i.file_size
        out.append((pp[0], "/".join(pp), functools.partial(_read_member, zf, i, path), (i.file_size, i.CRC)))
        _check_image_limits(len(out), total, path)
    return out


def _check_zip_directory(src, path: Path) -> None:
    """The zip's directory bounded before ``ZipFile`` reads it (:func:`builder.data.files.check_zip_directory`)."""
    check_zip_directory(src, str(path))


def _check_zip_name(i: zipfile.ZipInfo, path: Path) -> None:
    name = i.filename
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or ".." in parts:
        raise DatasetError(f"{path}: member {name[:120]!r} points outside the archive (absolute or '..'); "
                           "received: an unsafe name. Fix: zip the class folders themselves")
    if stat.S_ISLNK(i.external_attr >> 16):
        raise DatasetError(f"{path}: member {name[:120]!r} is a symbolic link; received: a link. Fix: zip the "
                           "image files themselves")
    if i.flag_bits & 0x1:
        raise DatasetError(f"{path}: member {name[:120]!r} is encrypted. Fix: zip without a password")


def _read_member(zf: zipfile.ZipFile, i: zipfile.ZipInfo, path: Path, n: int | None = None) -> bytes:
    """A member's bytes (:func:`builder.data.files.read_zip_member`: never more than it declares plus one, its
    CRC checked), or its first ``n`` (a header to size the image)."""
    if n is None:
        return read_zip_member(zf, i, f"{path}: member {i.filename[:120]!r}")
    try:
        with zf.open(i) as f:
            return f.read(min(n, i.file_size))
    except ZIP_ERRORS as e:
        raise DatasetError(f"{path}: member {i.filename[:120]!r} is damaged; received: {error_name(e)}. Fix: "
                           "re-create the zip") from None


def _check_image_file_size(size: int, name: str, where: Path) -> None:
    if size > limits.MAX_IMAGE_FILE_BYTES:
        raise DatasetError(f"{where}: image {name[:120]} takes {size:,} bytes, over the limit of "
                           f"{limits.MAX_IMAGE_FILE_BYTES // 2**20} MiB per image. Fix: shrink the image")


def _check_image_limits(count: int, total: int, where: Path) -> None:
    if count > limits.MAX_IMAGE_FILES:
        raise DatasetError(f"{where}: more than {limits.MAX_IMAGE_FILES} images, over the limit "
                           "(limits.MAX_IMAGE_FILES); use a smaller subset")
    if total > limits.MAX_IMAGE_BYTES:
        raise DatasetError(f"{where}: image files add up to more than {limits.MAX_IMAGE_BYTES // 2**20} MiB "
                           "(limits.MAX_IMAGE_BYTES); use a smaller subset or smaller images")



__all__ = ["load_image_folder", "decode_elsewhere", "ImageDecoder", "IMAGE_SUFFIXES"]


def decode_image(data: bytes, size: tuple[int, int], channels: int, name: str = "image") -> np.ndarray:
    """One uploaded image as a dataset would hold it: header checked, decoded, resized to ``size`` (H, W),
    ``channels`` 1 or 3, scaled to [0, 1]; float32 (C, H, W). Raises DatasetError."""
    if len(data) > limits.MAX_IMAGE_FILE_BYTES:
        raise DatasetError(f"image {name} is larger than {limits.MAX_IMAGE_FILE_BYTES:,} bytes; received: "
                           f"{len(data):,} bytes. Fix: shrink it first")
    try:
        w, h, _ = _image_header(data, name)
        if w * h > limits.MAX_IMAGE_PIXELS:
            raise _BadImage("too large")
        a = _decode(data, size, channels)
    except _BadImage:
        raise DatasetError(f"{name} is not an image LayerLab can read (PNG, JPEG, BMP, GIF, WebP, TIFF). "
                           "Fix: save it as a PNG") from None
    return (a.astype(np.float32) / 255.0).transpose(2, 0, 1).copy()
