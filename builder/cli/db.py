"""``layerlab db``: the run database's schema revision (``current``) and its upgrade (``upgrade``), which a
PostgreSQL database shared by several LayerLab servers needs once after LayerLab itself is upgraded (an SQLite
workspace upgrades itself when opened: builder.runs.db.ensure_schema)."""

from __future__ import annotations

import argparse

from builder.cli.common import say
from builder.errors import RunStoreError
from builder.runs import db as _db
from builder.runs.store import default_workspace


def cmd_db(args: argparse.Namespace) -> int:
    """Print the revision, or upgrade the database to the newest one."""
    ws = default_workspace(args.workspace)
    url = _db.database_url(ws)
    try:
        if args.action == "upgrade":
            ws.mkdir(parents=True, exist_ok=True)
            before, after = _db.upgrade(url, "WAL")
            say(f"{_db.redact(url)}: {before or 'none'} -> {after}")
        elif _db.is_sqlite(url) and not (ws / "layerlab.db").is_file():
            say(f"{_db.redact(url)}: no run database yet (made when the workspace is first opened)")
        else:
            with _db.engine(url).connect() as c:
                rev = _db.current_revision(c)
            state = "up to date" if rev == _db.HEAD else f"needs `{_db.UPGRADE_COMMAND}`"
            say(f"{_db.redact(url)}: revision {rev or 'none'} (this LayerLab: {_db.HEAD}, {state})")
    except (RunStoreError, _db.sa.exc.DBAPIError) as e:
        err = e if isinstance(e, RunStoreError) else _db.database_error(e, url)
        say(f"error: {err}")
        return 1
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``db`` to a CLI's subparsers."""
    p = subparsers.add_parser("db", help="the run database: its schema revision, or upgrade it "
                              f"(${_db.ENV_DB_URL} or <workspace>/layerlab.db)")
    p.add_argument("action", choices=("current", "upgrade"), help="current: print the revision; upgrade: "
                   "migrate to this LayerLab's schema (stop the other servers first)")
    p.add_argument("--workspace", help="workspace folder (default: $LAYERLAB_WORKSPACE or ~/.layerlab)")
    p.set_defaults(func=cmd_db)
