"""The runs stage: the run store, run folders and statuses, jobs and their launcher, owners, model cards, tracking.

:mod:`.store` is the SQLite run store plus one folder per run; :mod:`.jobs` runs each training as its own OS
process; :mod:`.owners` says who owns what; :mod:`.modelcard` writes a run's Markdown card; :mod:`.tracking`
mirrors runs into MLflow; :mod:`.summary` computes what the pages show about runs.
"""

from builder.runs.store import *  # noqa: F403  (the public names of builder.runs stay importable here)
from builder.runs.store import __all__  # noqa: F401
