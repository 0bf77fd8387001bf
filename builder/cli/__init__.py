"""The ``layerlab`` command line (also ``python -m builder``): :mod:`.main` parses and dispatches, :mod:`.train`
holds the training and run commands, :mod:`.search` the search and tracking commands."""

from builder.cli.main import main

__all__ = ["main"]
