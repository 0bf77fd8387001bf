"""The "Repository layout" block of the architecture page (docs/explanation/architecture.md; the README links to
it) is checked against the real folders: every package and module of builder/ and app_pages/ is named there, and
every path it names exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "explanation" / "architecture.md"


def _layout_block() -> list[str]:
    text = PAGE.read_text(encoding="utf-8")
    m = re.search(r"## Repository layout\n[^#]*?```text\n(.*?)```", text, re.S)
    assert m, f"{PAGE.name} has no '## Repository layout' section with a ```text block"
    return m.group(1).splitlines()


def _named_paths(lines: list[str]) -> set[str]:
    """Paths the block names: an indented tree where a line's first word(s) ending in / or .py are entries."""
    stack: list[tuple[int, str]] = []
    out: set[str] = set()
    for line in lines:
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        names = []
        for word in line.split():
            if word.endswith("/") or word.endswith(".py") or word.endswith(".md") or word.endswith(".json"):
                names.append(word)
            else:
                break
        while stack and stack[-1][0] >= indent:
            stack.pop()
        prefix = stack[-1][1] if stack else ""
        for n in names:
            out.add(prefix + n)
        if len(names) == 1 and names[0].endswith("/"):
            stack.append((indent, prefix + names[0]))
    return out


def _real_paths() -> set[str]:
    real: set[str] = set()
    for top in ("builder", "app_pages"):
        for p in (ROOT / top).rglob("*.py"):
            rel = p.relative_to(ROOT)
            if "assets" in rel.parts or p.name in {"__init__.py", "__main__.py"} or p.name.startswith("_"):
                continue
            if rel.parts[:2] == ("builder", "canvas"):
                continue  # the canvas component is one entry
            real.add(str(rel))
        for d in [ROOT / top, *(ROOT / top).rglob("*")]:
            rel = d.relative_to(ROOT)
            if d.is_dir() and any(d.glob("*.py")) and "assets" not in rel.parts and rel.parts[:2] != ("builder", "canvas"):
                real.add(str(rel) + "/")
        if top == "builder":
            real.add("builder/canvas/")
    return real


def test_layout_names_every_module_and_nothing_else():
    named = {n for n in _named_paths(_layout_block()) if n.startswith(("builder/", "app_pages/"))}
    real = _real_paths()
    assert not (real - named), f"the layout block misses: {sorted(real - named)}"
    assert not (named - real), f"the layout block names paths that do not exist: {sorted(named - real)}"
