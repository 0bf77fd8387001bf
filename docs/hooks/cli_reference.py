"""MkDocs hook: the command-line reference is generated from the real parser at build time.

``docs/reference/cli.md`` holds the marker ``<!-- cli-reference -->``; this hook replaces it with one section
per command (sub-commands of ``runs`` included), each with the ``--help`` text of
:func:`builder.cli.main.build_parser`, so the page cannot drift from the options the CLI accepts.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

MARKER = "<!-- cli-reference -->"
ROOT = Path(__file__).resolve().parents[2]


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, str, argparse.ArgumentParser]]:
    """(name, one-line help, parser) of each sub-command of ``parser``, in the order they were added."""
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            out += [(name, helps.get(name, ""), sub) for name, sub in action.choices.items()]
    return out


def cli_markdown() -> str:
    """Markdown for every command of ``layerlab``: a heading, its one-line help and its ``--help`` text."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from builder.cli.main import build_parser

    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "110"  # argparse wraps at the terminal's width: fixed, so the page is stable
    try:
        parser = build_parser()
        parts = ["## `layerlab`", "", "```text", parser.format_help().rstrip(), "```", ""]
        for name, help_, sub in _subcommands(parser):
            parts += [f"## `layerlab {name}`", "", help_[:1].upper() + help_[1:] + ("." if help_ else ""), "",
                      "```text", sub.format_help().rstrip(), "```", ""]
            for name2, help2, sub2 in _subcommands(sub):
                parts += [f"### `layerlab {name} {name2}`", "", help2[:1].upper() + help2[1:] + ("." if help2 else ""), "",
                          "```text", sub2.format_help().rstrip(), "```", ""]
        return "\n".join(parts)
    finally:
        if old is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old


def on_page_markdown(markdown: str, page, config, files) -> str:  # noqa: ARG001 (MkDocs hook signature)
    """Replace the marker on the CLI reference page with the generated reference."""
    if MARKER in markdown:
        return markdown.replace(MARKER, cli_markdown())
    return markdown
