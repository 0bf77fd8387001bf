"""The search stage: hyper-parameter and architecture search with Optuna; every trial is a LayerLab job.

Read in data-flow order: :mod:`.space` (what is searched, parsed and checked against the project),
:mod:`.settings` (how a study runs, its objective), :mod:`.storage` (where studies live),
:mod:`.study` (the runner whose trials are jobs), :mod:`.runner` (that runner as a detached process),
:mod:`.results` (reading a study for the app and the CLI).
"""

from builder.search import results, runner, settings, space, storage, study
from builder.search.results import *  # noqa: F403
from builder.search.runner import *  # noqa: F403
from builder.search.settings import *  # noqa: F403
from builder.search.space import *  # noqa: F403
from builder.search.storage import *  # noqa: F403
from builder.search.study import *  # noqa: F403

__all__ = [*space.__all__, *settings.__all__, *storage.__all__, *study.__all__, *runner.__all__, *results.__all__]
