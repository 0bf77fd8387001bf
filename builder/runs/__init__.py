"""The runs stage: the run store, the pipeline that trains into it, owners, classes, model cards, run summaries.

:mod:`.store` is the SQLite run store plus one folder per run (its statuses and file names are the leaves
:mod:`builder.training.run_status` and :mod:`builder.training.run_folder`); :mod:`.pipeline` is project + dataset +
settings -> trained run, the one entry point of the CLI, jobs and pages; :mod:`.crossval` and :mod:`.prune_run`
drive cross-validation and pruning through it; :mod:`.owners` says who owns what; :mod:`.classes` a teacher's
classes; :mod:`.modelcard` writes a run's Markdown card; :mod:`.summary` computes what the pages show about runs.
Jobs (:mod:`builder.jobs`), MLflow tracking (:mod:`builder.tracking`) and housekeeping (:mod:`builder.admin`) are
edges above the stages.
"""

from builder.runs.store import *  # noqa: F403  (the public names of builder.runs stay importable here)
from builder.runs.store import __all__  # noqa: F401
