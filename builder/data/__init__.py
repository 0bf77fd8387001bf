"""The data stage: dataset sources, loaders, splits, and whether a graph fits a dataset.

:mod:`.datasets` holds the registry of built-in sets, the CSV / image-folder / text loaders and seeded splits;
:mod:`.compat` checks a graph's Input and output against a dataset and adapts them.
"""

from builder.data.datasets import *  # noqa: F403  (the public names of builder.data stay importable here)
from builder.data.datasets import __all__  # noqa: F401
