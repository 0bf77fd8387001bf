"""LayerLab: the Streamlit app (``streamlit run app.py``).

Pages live in ``pages/``; shared helpers in ``pages/ui.py`` (split into ``state``, ``style``, ``fmt``). Each
browser is an owner (a cookie, or the signed-in user): its project is autosaved in the workspace and its
training jobs are processes that outlive the page (``builder.jobs``).
"""

from __future__ import annotations

import streamlit as st

from pages import ui

st.set_page_config(page_title="LayerLab", page_icon="🧩", layout="wide",
                   initial_sidebar_state="expanded")
ui.init_state()
st.session_state.ll_shell = True
ui.style()

build_page = st.Page("pages/build.py", title="Build", icon=":material/account_tree:", url_path="build")


def _home() -> None:
    """``/``: open the Build page under its own address, so ``/build`` is a real deep link (Streamlit serves the
    default page only at ``/`` and answers its url_path with "Page not found")."""
    st.switch_page(build_page)


pages = [
    st.Page(_home, title="Home", url_path="home", default=True, visibility="hidden"),
    build_page,
    st.Page("pages/data.py", title="Data", icon=":material/dataset:", url_path="data"),
    st.Page("pages/train.py", title="Train", icon=":material/model_training:", url_path="train"),
    st.Page("pages/runs.py", title="Runs", icon=":material/history:", url_path="runs"),
    st.Page("pages/explain.py", title="Explain", icon=":material/insights:", url_path="explain"),
]
nav = st.navigation(pages, position="sidebar")
ui.keep_identity()
ui.sidebar()
ui.show_flash()
ui.autosave()
nav.run()
ui.autosave()
ui.warm_up()  # once per process, in the background after this first page (Train/Explain open fast later)
