"""Arrays that another process wrote (a job's sample grids in its run folder, a model probe's answer), read
within a bound that the bytes on hand decide, never what the file says of itself.

``np.load`` of an ``.npz`` trusts the file: a member may be deflate-compressed (a megabyte becomes a gigabyte
when read), and a member's header may declare more values than it holds (numpy allocates the declared array
before reading into it). A process a person's model runs in may have been turned against its reader, which is
the server that serves everyone. :func:`read_npz` reads only members stored as they are, checks each header's
size against the bytes the member holds, and stops at ``limit`` bytes in all::

    >>> import io
    >>> buf = io.BytesIO(); np.savez(buf, a=np.arange(3.0), b=np.ones(2))
    >>> {k: v.tolist() for k, v in read_npz(buf.getvalue(), limit=10_000).items()}
    {'a': [0.0, 1.0, 2.0], 'b': [1.0, 1.0]}
    >>> packed = io.BytesIO(); np.savez_compressed(packed, a=np.zeros(10**6))
    >>> read_npz(packed.getvalue(), limit=10**9)
    Traceback (most recent call last):
    ValueError: member a.npy is compressed (a file written by LayerLab stores its arrays as they are)
"""

from __future__ import annotations

import io
import math
import os
import zipfile
from collections.abc import Callable

import numpy as np

MAX_MEMBERS = 4096  # members of one file: a listing of millions is refused before it is walked


def _open(source: bytes | str | os.PathLike) -> tuple[zipfile.ZipFile, list[zipfile.ZipInfo]]:
    try:
        z = zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes) else source)
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise ValueError(f"not an .npz file ({e})") from None
    infos = z.infolist()
    if len(infos) > MAX_MEMBERS:
        z.close()
        raise ValueError(f"{len(infos)} members, more than {MAX_MEMBERS}")
    return z, infos


def npz_sizes(source: bytes | str | os.PathLike) -> dict[str, int]:
    """Each member's array name and the bytes it holds, as the file's listing says (nothing is read).

    >>> npz_sizes(b"not a zip")
    Traceback (most recent call last):
    ValueError: not an .npz file (File is not a zip file)
    """
    z, infos = _open(source)
    with z:
        return {i.filename.removesuffix(".npy"): i.file_size for i in infos}


def read_npz(source: bytes | str | os.PathLike, limit: int,
             keep: Callable[[str], bool] | None = None) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` (its bytes or its path) whose names ``keep`` accepts (all without it), read in
    at most ``limit`` bytes.

    Raises:
        ValueError: a member compressed, one whose header declares more than it holds or an object array,
            members past ``limit`` together, or a file that is no ``.npz``.
    """
    out: dict[str, np.ndarray] = {}
    z, infos = _open(source)
    with z:
        total = 0
        for info in infos:
            name = info.filename.removesuffix(".npy")
            if keep is not None and not keep(name):
                continue
            if info.compress_type != zipfile.ZIP_STORED or info.compress_size != info.file_size:
                raise ValueError(f"member {info.filename} is compressed (a file written by LayerLab stores its "
                                 "arrays as they are)")
            total += info.file_size
            if total > limit:
                raise ValueError(f"its arrays hold more than {limit:,} bytes")
            try:
                with z.open(info) as f:
                    version = np.lib.format.read_magic(f)
                    if version not in ((1, 0), (2, 0)):  # what np.savez writes
                        raise ValueError(f"member {info.filename} is of .npy format {version}")
                    read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                                   else np.lib.format.read_array_header_2_0)
                    shape, _, dtype = read_header(f)
                    if dtype.hasobject or any(n < 0 for n in shape):
                        raise ValueError(f"member {info.filename} holds Python objects or a negative size")
                    if math.prod(shape) * dtype.itemsize > info.file_size:
                        raise ValueError(f"member {info.filename} declares {shape} of {dtype}, more than its "
                                         f"{info.file_size:,} bytes")
                with z.open(info) as f:
                    out[name] = np.lib.format.read_array(f, allow_pickle=False)
            except (zipfile.BadZipFile, NotImplementedError, OSError, EOFError) as e:
                raise ValueError(f"member {info.filename} is damaged ({e})") from None
    return out


__all__ = ["read_npz", "npz_sizes", "MAX_MEMBERS"]
