"""The interpretation stage: attributions (Captum) behind one verb, attention, activations, sanity checks,
live attributions during training, the decision boundary of 2-D toy data, and the Explain page's figures.

In data-flow order: :mod:`.model` (modality, layer nodes, targets), :mod:`.baselines`, :mod:`.methods` (one
``MethodSpec`` per explanation method, in one table), :mod:`.attributions` (``explain``), :mod:`.samples` (which
samples to explain), :mod:`.attention`, :mod:`.activations`, :mod:`.sanity`, :mod:`.live`, :mod:`.boundary`,
:mod:`.figures` and :mod:`.session` (what the Explain page asks about one model and split). The same questions
answered by a sandboxed child process are the jobs edge's :mod:`builder.jobs.probe`.

Captum, matplotlib and scipy are imported by these modules on first use, not by this package.
"""
