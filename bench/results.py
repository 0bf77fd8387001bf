"""Shared by the benchmarks: replace (or append) one ``## `` section of bench/RESULTS.md."""

from __future__ import annotations

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
