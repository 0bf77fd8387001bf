"""Shared by the benchmarks: replace (or append) one ``## `` section of bench/RESULTS.md."""

from __future__ import annotations

import datetime
import os
import platform
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def write_section(section: str, text: str, path: Path = RESULTS) -> None:
    """Put ``text`` in place of the section headed ``section`` (up to the next ``## `` heading), or append it."""
    old = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n\n"
    if section in old:
        start = old.index(section)
        nxt = old.find("\n## ", start + len(section))
        new = old[:start] + text + (old[nxt + 1:] if nxt != -1 else "")
    else:
        new = old.rstrip("\n") + "\n\n" + text
    path.write_text(new, encoding="utf-8")


def spread(v: list[float], scale: float = 1.0, unit: str = "", digits: int = 2) -> str:
    """``median (p10-p90 a-b, n)`` of ``v`` times ``scale`` (min-max below 5 values), quantiles as numpy's."""
    from builder.graph.latency import quantile

    xs = [x * scale for x in v]
    lo, hi, name = (quantile(xs, 0.1), quantile(xs, 0.9), "p10-p90") if len(xs) >= 5 else (min(xs), max(xs), "min-max")
    return f"{quantile(xs, 0.5):.{digits}f}{unit} ({name} {lo:.{digits}f}-{hi:.{digits}f}, n={len(xs)})"


def commit() -> str:
    """The checkout's short commit, ``+`` when it has uncommitted changes; ``?`` outside git."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"
    return (sha or "?") + ("+" if dirty else "")


def conditions(label: str) -> None:
    """One line: what ran, when, at which commit, on what, under which load."""
    import torch

    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"\n## {label}\n{now}; commit {commit()}; {platform.machine()} {platform.system()}, "
          f"{os.cpu_count()} CPUs, torch {torch.__version__}, {torch.get_num_threads()} torch thread(s) here; load average "
          f"{os.getloadavg()[0]:.1f} before", flush=True)
