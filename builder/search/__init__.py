"""The search stage: hyper-parameter and architecture search with Optuna; every trial is a LayerLab job."""

from builder.search.study import *  # noqa: F403  (the public names of builder.search stay importable here)
from builder.search.study import __all__  # noqa: F401
