"""The ``layerlab`` command line (also ``python -m builder``): :mod:`.main` builds the parser and holds the graph
commands, :mod:`.train` the training and run commands, :mod:`.search` the search and tracking commands,
:mod:`.common` what they share (errors, ``-o`` checks, the project argument, exit codes). The sub-command modules
import :mod:`.common`, never :mod:`.main`."""

from builder.cli.main import main, run

__all__ = ["main", "run"]
