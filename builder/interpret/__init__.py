"""The interpretation stage: attributions (Captum) behind one verb, attention, activations, sanity checks,
live attributions during training, the decision boundary of 2-D toy data, and the Explain page's figures.

Captum, matplotlib and scipy are imported by these modules on first use, not by this package.
"""
