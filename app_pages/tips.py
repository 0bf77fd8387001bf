"""Short explanations for students beside the panels they explain (the loss curve, overfitting, the confusion
matrix, an attribution, ...), hideable for the whole session from the sidebar: one home for their wording,
used by the first-visit guide on Build, the Train page and the Explain page."""

from __future__ import annotations

import streamlit as st

TIPS: dict[str, tuple[str, str]] = {
    "loss": ("The loss curve", "how wrong the network is on the training samples (and on held-out validation "
             "samples), epoch by epoch. Both should fall."),
    "overfitting": ("Overfitting", "the training loss keeps falling while the validation loss turns up: the "
                    "network memorises its samples instead of learning the pattern. Early stopping keeps the best "
                    "epoch."),
    "adversarial": ("Two networks against each other", "a GAN's generator learns to fool its discriminator while "
                    "the discriminator learns to catch it, so their losses do not both fall and the summed loss says "
                    "little: judge the run by its samples."),
    "attribution": ("An attribution", "how much each part of the input (a pixel, a feature, a token) pushed the network towards its answer "
                    "for one sample (Explain page): a check that it looks at the right things."),
    "learning_rate": ("The learning rate", "how big a step the optimizer takes; a schedule lowers it over time. Too "
                      "high and the loss jumps or becomes NaN, too low and it barely moves."),
    "confusion": ("The confusion matrix", "rows are the true classes, columns the predicted ones: the diagonal is "
                  "right, everything else shows which classes the network mixes up."),
    "try_it": ("Try it", "give the trained network an input of your own and see what it answers, how sure it is "
               "and which parts of your input it used."),
}
#: the first visit's guide shows these, in this order
GUIDE = ("loss", "overfitting", "attribution")
HIDDEN = "ll_tips_hidden"


def shown() -> bool:
    """Whether tips are shown in this session (the sidebar's toggle)."""
    return not st.session_state.get(HIDDEN, False)


def tip(name: str) -> None:
    """One tip as a caption, unless tips are hidden."""
    if shown():
        title, text = TIPS[name]
        st.caption(f":material/school: **{title}**: {text}")


def tips_toggle() -> None:
    """The sidebar switch that shows or hides every tip."""
    st.toggle("Tips for students", value=shown(), key="ll_tips_toggle",
              on_change=lambda: st.session_state.update({HIDDEN: not st.session_state.ll_tips_toggle}),
              help="Short explanations beside the curves, the confusion matrix and the attributions")


__all__ = ["TIPS", "GUIDE", "tip", "tips_toggle", "shown"]
