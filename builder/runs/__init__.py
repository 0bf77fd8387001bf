"""The runs stage: the run store, run folders and statuses, jobs and their launcher, owners, model cards, tracking.

:mod:`.status` is the one run-status type with its sets and predicates; :mod:`.folder` names every file of a
run folder; :mod:`.store` is the SQLite run store plus one folder per run; :mod:`.jobs` runs each training as
its own OS process; :mod:`.owners` says who owns what and who may see or control a run; :mod:`.modelcard`
writes a run's Markdown card; :mod:`.tracking` mirrors runs into MLflow; :mod:`.summary` computes what the
pages show about runs.
"""

from builder.runs.store import *  # noqa: F403  (the public names of builder.runs stay importable here)
from builder.runs.store import __all__  # noqa: F401
