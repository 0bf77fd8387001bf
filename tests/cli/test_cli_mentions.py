"""Every command the product names (in messages, page text, docstrings and the manual, as `layerlab VERB ...`)
exists: its verb, its action (``runs list``, ``db upgrade``) and each ``--option`` it shows. A message that
points to a command that is not there is a dead end (``layerlab search list`` was one)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from builder.cli.main import build_parser

ROOT = Path(__file__).resolve().parents[2]
MENTION = re.compile(r"`layerlab ([^`]*)`")
SOURCES = [*ROOT.glob("builder/**/*.py"), *ROOT.glob("app_pages/**/*.py"), *ROOT.glob("docs/**/*.md"),
           ROOT / "README.md", ROOT / "app.py"]


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            return dict(a.choices)
    return {}


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {s for a in parser._actions for s in a.option_strings}


def _mentions() -> list[tuple[str, str]]:
    out = []
    for path in SOURCES:
        for m in MENTION.finditer(path.read_text(encoding="utf-8")):
            out.append((f"{path.relative_to(ROOT)}", m.group(1)))
    return out


def _problems(where: str, text: str, top: argparse.ArgumentParser) -> list[str]:
    words = text.split()
    if not words or words[0].startswith("{"):  # an f-string naming the verb itself: checked where it is filled
        return []
    verbs = _subparsers(top)
    if words[0] not in verbs:
        return [f"{where}: `layerlab {text}`: no command {words[0]!r}"]
    parser, rest = verbs[words[0]], words[1:]
    actions = _subparsers(parser)
    if actions and rest and re.fullmatch(r"[a-z][a-z-]*(\|[a-z][a-z-]*)*", rest[0]):
        bad = [a for a in rest[0].split("|") if a not in actions]
        if bad:
            return [f"{where}: `layerlab {text}`: no action {bad} of {words[0]!r}"]
        parser, rest = actions[rest[0].split("|")[0]], rest[1:]
    known = _options(parser)
    flags = [re.sub(r"[^\w-].*$", "", w.lstrip("[(")) for w in rest if w.lstrip("[(").startswith("-")]
    return [f"{where}: `layerlab {text}`: no option {f!r}" for f in flags if f not in known and f not in ("-", "--")]


def test_every_command_the_product_names_exists():
    top = build_parser()
    mentions = _mentions()
    assert len(mentions) > 50  # the scan still finds the mentions
    problems = [p for where, text in mentions for p in _problems(where, text, top)]
    assert not problems, "\n".join(problems)


def test_the_check_sees_a_dead_end():
    top = build_parser()
    assert _problems("x", "search list", top) and _problems("x", "runs lsit", top)
    assert _problems("x", "export --run RUN --colour red", top)
    assert not _problems("x", "runs list|show|resume|delete", top)
    assert not _problems("x", "export --run ID [--format py|safetensors] [-o OUT]", top)
