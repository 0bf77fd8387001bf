"""Peak memory of a training run: CUDA's maximum allocated bytes on a GPU, the process's peak resident set on a CPU.

:func:`reset_peak` starts a new maximum (at the start of a fit); :func:`peak_bytes` reads it. On Linux the peak
resident set (``VmHWM``) is reset by writing ``5`` to ``/proc/self/clear_refs``; where that is not allowed the
process's lifetime peak is what is reported (``getrusage``), which is the run's own in a job process.

>>> reset_peak("cpu"); peak_bytes("cpu") > 0
True
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

_STATUS, _CLEAR = Path("/proc/self/status"), Path("/proc/self/clear_refs")


def _cuda(device) -> bool:
    return str(device).startswith("cuda")


def reset_peak(device) -> None:
    """Start a new peak for ``device`` (a torch device or its name)."""
    if _cuda(device):
        import torch  # lazy: heavy (torch), already loaded by a trainer

        torch.cuda.reset_peak_memory_stats(device)
        return
    with contextlib.suppress(OSError):  # not Linux, or not allowed: the lifetime peak stands
        _CLEAR.write_text("5")


def peak_bytes(device) -> int:
    """Bytes at the peak since :func:`reset_peak`: CUDA's max allocated on a GPU, else the peak resident set."""
    if _cuda(device):
        import torch  # lazy: heavy (torch), already loaded by a trainer

        return int(torch.cuda.max_memory_allocated(device))
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    import resource  # POSIX only  # lazy: POSIX only (resource)

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)  # bytes on macOS, KiB elsewhere


__all__ = ["reset_peak", "peak_bytes"]
