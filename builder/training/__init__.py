"""The training stage: the trainer and its callbacks, checkpoints, torchrun scale-out.

:mod:`.config` the settings (``TrainConfig``, defaults per task, device and precision); :mod:`.metrics` losses,
metrics and ``evaluate``; :mod:`.callbacks` the callback hooks and the built-in stateful ones (early stopping, best
weights, channels_last, freezing); :mod:`.events` the event history and channel; :mod:`.trainer` the
model-agnostic step loop (``Trainer``, ``TrainingJob``);
:mod:`.checkpoint` one-file checkpoints and exact resume; :mod:`.distributed` torchrun process groups. The
pipeline that trains a project into a stored run is the runs stage's (:mod:`builder.runs.pipeline`).
torch is imported by these modules, not by this package.
"""
