"""Leaf helpers for the host's processes, below every stage: starting detached processes and telling whether one
lives (:mod:`.launcher`), the process sandbox (:mod:`.sandbox`), torch threads and jobs per host
(:mod:`.threads`) and GPU placement (:mod:`.gpus`). They know no run, no store and no model."""
