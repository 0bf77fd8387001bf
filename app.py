"""LayerLab: the Streamlit app (``streamlit run app.py``; ``make app``).

Pages live in ``app_pages/`` (their table: ``app_pages/nav.py``); shared helpers in ``app_pages/ui.py`` (split
into ``state``, ``style``, ``fmt``). Each browser is an owner (a cookie, or the signed-in user): its project is
autosaved in the workspace and its training jobs are processes that outlive the page (``builder.jobs.queue``).

This file is two things. Imported as a module (``streamlit run app.py`` finds ``app`` below and serves it with
uvicorn; ``uvicorn app:app`` does the same), it is the server: Streamlit's ASGI app with the identity cookie set by
the server, HttpOnly (``app_pages/identity.py``). Run by Streamlit as its page script (``__main__``, also under
``AppTest``), it draws the pages.
"""

from __future__ import annotations

import streamlit as st


def main() -> None:
    """The page script: the sidebar, the page the address names, autosave."""
    from app_pages import nav, ui

    st.set_page_config(page_title="LayerLab", page_icon="🧩", layout="wide",
                       initial_sidebar_state="expanded")
    _errors_by_type()
    _keep_secrets()
    ui.fresh_roles()  # roles as of this run: a class created or joined a moment ago counts
    ui.init_state()
    ui.style()

    pages = [st.Page(p.path, title=p.title, icon=p.icon, url_path=p.url_path) for p in nav.PAGES]
    build_page = pages[0]

    def _home() -> None:
        """``/``: open the Build page under its own address, so ``/build`` is a real deep link (Streamlit serves
        the default page only at ``/`` and answers its url_path with "Page not found")."""
        st.switch_page(build_page)

    pages.insert(0, st.Page(_home, title="Home", url_path="home", default=True, visibility="hidden"))
    router = st.navigation(pages, position="sidebar")
    ui.sidebar()
    ui.show_flash()
    ui.autosave()
    ui.entered_page(router.url_path)
    router.run()
    ui.autosave_after_page()  # a save refused here (another tab saved) reruns the page to ask
    ui.warm_up()  # once per process, in the background after this first page (Train/Explain open fast later)


def _errors_by_type() -> None:
    """An error no page caught is shown to the visitor by its type alone (``client.showErrorDetails = "type"``,
    also in ``.streamlit/config.toml``): Streamlit's default showed its message and traceback, which name the
    server's folders (the install, the workspace, an owner's upload) and can quote what a file held. The server's
    log keeps them whole. Set here too for a server started from another folder (which reads no config file of the
    repository); a value given on the command line, in the environment or in a config file is kept."""
    from streamlit import config  # lazy: Streamlit's own settings

    if not config.is_manually_set("client.showErrorDetails"):
        st.set_option("client.showErrorDetails", "type")


def _keep_secrets() -> None:
    """Tell the processes this server starts where its Streamlit secrets are
    (:func:`builder.process.landlock.keep_secrets`): the secrets files Streamlit reads (``secrets.files``: given on
    the command line, in ``STREAMLIT_SECRETS_FILES``, in a config file, else ``.streamlit/secrets.toml`` in the
    server's home and working folders), those default ``secrets.toml`` files in any case, and its config files
    (``server.cookieSecret``). Only the server knows them: a job runs in another folder with another home and none of
    the server's arguments or ``STREAMLIT_`` variables, and read them where they were readable (``/opt``, ``/etc``)."""
    from streamlit import config  # lazy: Streamlit's own settings

    from builder.process.landlock import keep_secrets  # lazy: heavy (the run store)

    files = config.get_option("secrets.files") or []
    # the default secrets.toml files too: one kept there stays a secret when secrets.files names others instead
    keep_secrets([*([files] if isinstance(files, str) else files), *config.get_config_files("secrets.toml"),
                  *config.get_config_files("config.toml")])


if __name__ == "__main__":  # Streamlit runs the page script as __main__
    main()
else:  # imported: the server
    from starlette.middleware import Middleware

    from app_pages.identity import IdentityCookie

    app = st.App(__file__, middleware=[Middleware(IdentityCookie)])
