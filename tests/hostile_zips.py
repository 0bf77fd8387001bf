"""Hostile zips shared by the upload tests (images, text, model zips): damaged members, encryption, directories of
many entries written directly, and the one check of a refusal (one line, nothing of the file, bounded memory)."""

from __future__ import annotations

import io
import struct
import time
import tracemalloc
import zipfile
from collections.abc import Callable

import pytest

SECRET = b"the-secret-text-of-the-file"


def zip_bytes(members, compression=zipfile.ZIP_DEFLATED) -> bytes:
    """A zip of ``(name, data)`` members."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in members:
            zf.writestr(name, data)
    return buf.getvalue()


def _member_data(raw: bytearray) -> int:
    """Where the first member's compressed data starts."""
    i = raw.find(b"PK\x03\x04")
    return i + 30 + sum(struct.unpack_from("<HH", raw, i + 26))


def damaged_zips(members) -> dict[str, bytes]:
    """Zips of ``members`` (the first holds :data:`SECRET`) whose directory reads fine and whose first member does
    not: each makes zipfile (or the codec under it) raise an exception of its own when the member is read."""
    out = {}
    raw = bytearray(zip_bytes(members))
    raw[_member_data(raw)] = 0xFF  # an invalid deflate block type: zlib.error
    out["corrupt deflate"] = bytes(raw)
    raw = bytearray(zip_bytes(members, zipfile.ZIP_LZMA))
    start = _member_data(raw)
    raw[start + 4:start + 14] = bytes(b ^ 0x55 for b in raw[start + 4:start + 14])  # lzma.LZMAError
    out["corrupt lzma"] = bytes(raw)
    raw = bytearray(zip_bytes(members))
    raw[raw.find(b"PK\x03\x04") + 30] ^= 0x20  # the local header's name differs from the directory's: BadZipFile
    out["names differ"] = bytes(raw)
    raw = bytearray(zip_bytes(members, zipfile.ZIP_STORED))
    raw[raw.find(SECRET)] ^= 0x01  # a stored member whose CRC-32 fails: BadZipFile
    out["bad crc"] = bytes(raw)
    raw = bytearray(zip_bytes(members))
    i = raw.find(b"PK\x03\x04")
    crc = raw[i + 14:i + 18]
    raw[i + 14:i + 18] = bytes(4)  # the local header lies about the CRC (the directory too)
    j = raw.find(b"PK\x01\x02")
    raw[j + 16:j + 20] = bytes(4)
    assert crc != bytes(4)
    out["wrong crc in both headers"] = bytes(raw)
    return out


def encrypted(raw: bytes) -> bytes:
    """The zip with the encryption flag set on every member (local and central headers)."""
    out = bytearray(raw)
    for sig, off in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        i = out.find(sig)
        while i >= 0:
            struct.pack_into("<H", out, i + off, struct.unpack_from("<H", out, i + off)[0] | 1)
            i = out.find(sig, i + 4)
    return bytes(out)


def raw_zip(n: int, suffix: bytes = b".txt", *, folder: Callable[[int], bytes] = lambda k: b"ab"[k % 2:k % 2 + 1],
            declared: int | None = None) -> bytes:
    """A zip of ``n`` empty stored members ``<folder(k)>/<k><suffix>``, written directly (fast); its end record
    declares ``declared`` entries (default ``n``, capped at 65535 as in a zip without zip64 records)."""
    local, central, offset = [], [], 0
    for k in range(n):
        name = b"%s/%d%s" % (folder(k), k, suffix)
        head = struct.pack("<4s5H3I2H", b"PK\x03\x04", 20, 0, 0, 0, 0, 0, 0, 0, len(name), 0) + name
        central.append(struct.pack("<4s6H3I5H2I", b"PK\x01\x02", 20, 20, 0, 0, 0, 0, 0, 0, 0, len(name), 0, 0, 0, 0,
                                   0, offset) + name)
        local.append(head)
        offset += len(head)
    cd = b"".join(central)
    count = min(n if declared is None else declared, 0xFFFF)
    return b"".join(local) + cd + struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, count, count, len(cd), offset, 0)


def refused(fn: Callable[[], object], error: type[BaseException], match: str, peak_mib: float) -> str:
    """``fn()``'s refusal: an ``error`` matching ``match``, one line, no traceback, nothing of :data:`SECRET`, at
    most ``peak_mib`` MiB traced at its peak (tracemalloc sees numpy's and pandas' arrays); the time it took is
    printed, never asserted. Its message."""
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(error, match=match) as e:
            fn()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    msg = str(e.value)
    print(f"{time.perf_counter() - t0:.2f} s, peak {peak / 2**20:.1f} MiB: {msg}")
    assert "\n" not in msg and SECRET.decode() not in msg and "Traceback" not in msg
    assert peak < peak_mib * 2**20, f"peak {peak / 2**20:.0f} MiB"
    return msg
