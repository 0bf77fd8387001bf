"""LayerLab: the Streamlit app (``streamlit run app.py``).

Pages live in ``app_pages/`` (their table: ``app_pages/nav.py``); shared helpers in ``app_pages/ui.py`` (split
into ``state``, ``style``, ``fmt``). Each browser is an owner (a cookie, or the signed-in user): its project is autosaved in the workspace and its
training jobs are processes that outlive the page (``builder.jobs.queue``).
"""

from __future__ import annotations

import streamlit as st

from app_pages import nav, ui

st.set_page_config(page_title="LayerLab", page_icon="🧩", layout="wide",
                   initial_sidebar_state="expanded")
ui.fresh_roles()  # roles as of this run: a class created or joined a moment ago counts
ui.init_state()
ui.style()

pages = [st.Page(p.path, title=p.title, icon=p.icon, url_path=p.url_path) for p in nav.PAGES]
build_page = pages[0]


def _home() -> None:
    """``/``: open the Build page under its own address, so ``/build`` is a real deep link (Streamlit serves the
    default page only at ``/`` and answers its url_path with "Page not found")."""
    st.switch_page(build_page)


pages.insert(0, st.Page(_home, title="Home", url_path="home", default=True, visibility="hidden"))
router = st.navigation(pages, position="sidebar")
ui.keep_identity()
ui.sidebar()
ui.show_flash()
ui.autosave()
ui.entered_page(router.url_path)
router.run()
ui.autosave_after_page()  # a save refused here (another tab saved) reruns the page to ask
ui.warm_up()  # once per process, in the background after this first page (Train/Explain open fast later)
