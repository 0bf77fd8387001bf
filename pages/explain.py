"""Explain page (placeholder: the explainability issue fills this page)."""

from __future__ import annotations

import streamlit as st

from pages import ui

ui.page_header("Explain", "See what the trained network looks at: attributions, attention and activations.")
if st.session_state.get("ll_model") is None:
    st.info("No trained model yet — train one on the Train page, then come back to explain its predictions.",
            icon=":material/insights:")
else:
    st.info("Explanations for run `{}` are coming soon.".format(st.session_state.get("ll_model_run")),
            icon=":material/insights:")
