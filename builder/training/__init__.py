"""The training stage: the trainer and its callbacks, checkpoints, torchrun scale-out, and the pipeline.

:mod:`.trainer` is the model-agnostic step loop (``TrainConfig``, ``Trainer``, callbacks, events);
:mod:`.checkpoint` one-file checkpoints and exact resume; :mod:`.distributed` torchrun process groups;
:mod:`.pipeline` project + dataset + settings -> trained run, the one entry point of the CLI, jobs and pages.
torch is imported by these modules, not by this package.
"""
