"""Where each page lives: the one table that app.py, page links, switches and tests read.

Streamlit resolves these paths against the folder of ``app.py``. The folder is ``app_pages/``, not ``pages/``,
so Streamlit never treats it as its old automatic multipage layout: ``st.navigation`` in ``app.py`` is the only
router and every page runs through the shell.
"""

from __future__ import annotations

from typing import NamedTuple


class PageInfo(NamedTuple):
    """One page: its script, the title it shows, its icon and its address (``/build``)."""

    path: str
    title: str
    icon: str
    url_path: str


BUILD = "app_pages/build.py"
DATA = "app_pages/data.py"
TRAIN = "app_pages/train.py"
RUNS = "app_pages/runs.py"
EXPLAIN = "app_pages/explain.py"
CLASSES = "app_pages/classes.py"
SERVER = "app_pages/server.py"

PAGES: tuple[PageInfo, ...] = (
    PageInfo(BUILD, "Build", ":material/account_tree:", "build"),
    PageInfo(DATA, "Data", ":material/dataset:", "data"),
    PageInfo(TRAIN, "Train", ":material/model_training:", "train"),
    PageInfo(RUNS, "Runs", ":material/history:", "runs"),
    PageInfo(EXPLAIN, "Explain", ":material/insights:", "explain"),
    PageInfo(CLASSES, "Classes", ":material/school:", "classes"),
    PageInfo(SERVER, "Server", ":material/dns:", "server"),
)
