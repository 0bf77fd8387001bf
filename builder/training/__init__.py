"""The training stage: the trainer and its callbacks, checkpoints, torchrun scale-out, and the pipeline.

:mod:`.config` the settings (``TrainConfig``, defaults per task, device and precision); :mod:`.metrics` losses,
metrics and ``evaluate``; :mod:`.callbacks` the callback hooks and the built-in stateful ones (early stopping, best
weights, channels_last, freezing); :mod:`.events` the event history and channel; :mod:`.trainer` the
model-agnostic step loop (``Trainer``, ``TrainingJob``);
:mod:`.checkpoint` one-file checkpoints and exact resume; :mod:`.distributed` torchrun process groups;
:mod:`.pipeline` project + dataset + settings -> trained run, the one entry point of the CLI, jobs and pages.
torch is imported by these modules, not by this package.
"""
