"""Moving LayerLab 0.1's owner folders to keyed names: a workspace made before folder names came from a keyed hash
(:func:`builder.runs.owners.safe_id`) had folders named with 24 of an anonymous owner's 32 cookie digits. On
first open each is renamed to its owner's keyed name (or a keyed ``legacy-`` name while its owner is unknown:
:func:`builder.runs.owners.owner_path` finishes the move when the owner comes back), after every path that names
it (run records, job files, model cards, autosaves, classes, studies) is rewritten, and the owner ids older jobs
wrote into their ``job.json`` are removed. Idempotent, and safe when two processes open the workspace at once.
Removed in LayerLab 0.3 (with ``owners._v1_safe_id``). Example::

    # not a doctest (needs an old workspace): run by tests/admin/test_owner_migration.py
    migrate_owner_folders(RunStore(ws, actor=SYSTEM))
    # -> {'anon-0123456789abcdef01234567-9f3c...': 'anon-k7x2qd...'}
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Mapping
from pathlib import Path

from builder.admin.housekeeping import CACHE_DIR, known_owners
from builder.data.access import SYSTEM
from builder.data.disk import write_atomic
from builder.errors import LayerLabError, RunStoreError
from builder.runs import owners as _owners
from builder.runs.owners import owner_of
from builder.runs.store import DB_NAME, RunStore
from builder.search.storage import STUDY_DB, default_storage, list_studies
from builder.tracking_destinations import SERVER_DEFAULT, is_server_default

TEXT_SUFFIXES = (".json", ".jsonl", ".md", ".txt", ".log", ".yaml", ".yml")  # files that may name a folder
_SKIP_DIRS = (CACHE_DIR, "uploads")  # decoded datasets and people's own data files are never rewritten
_OWNERS = _owners.OWNERS_DIR  # every stored path into an owner folder passes through it
_DONE: set[str] = set()  # workspaces this process has migrated (pages open the workspace on every run)


def _study_owners(workspace: Path) -> set[str]:
    if not (workspace / STUDY_DB).is_file():
        return set()
    try:
        return {owner_of(s["settings"] if isinstance(s.get("settings"), dict) else None)
                for s in list_studies(default_storage(workspace))}
    except LayerLabError:
        return set()


def _replace_in_database(path: Path, renames: Mapping[str, str]) -> None:
    """Replace old folder names in every text column of an SQLite database (the run store, Optuna's studies),
    in one transaction."""
    if not path.is_file():
        return
    c = sqlite3.connect(path, timeout=30.0, isolation_level=None)
    try:
        c.execute("PRAGMA secure_delete = ON")  # the old names are overwritten, not left in free pages
        c.execute("BEGIN IMMEDIATE")
        pairs = list(renames.items())
        tables = [r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                          "AND name NOT LIKE 'sqlite_%'")]
        for table in tables:
            cols = [r[1] for r in c.execute(f'PRAGMA table_info("{table}")')
                    if not r[2] or any(t in r[2].upper() for t in ("TEXT", "CHAR", "CLOB", "JSON"))]
            for col in cols:  # one pass per column and 100 names (nested replace); rows naming no owners/ skipped
                for i in range(0, len(pairs), 100):
                    chunk = pairs[i:i + 100]
                    expr = f'"{col}"'
                    for _ in chunk:
                        expr = f"replace({expr}, ?, ?)"
                    c.execute(f'UPDATE "{table}" SET "{col}" = {expr} WHERE typeof("{col}") = \'text\' '
                              f'AND instr("{col}", ?) > 0', [x for pair in chunk for x in pair] + [_OWNERS])
        c.execute("COMMIT")
    except sqlite3.Error as e:
        if c.in_transaction:
            c.execute("ROLLBACK")
        raise RunStoreError(f"cannot rewrite owner folder names in {path.name}: {e}. Fix: stop other LayerLab "
                            "processes and open the workspace again") from None
    finally:
        c.close()


def _text_files(workspace: Path) -> list[Path]:
    """Every small text file of the workspace that may name an owner folder (not caches or uploaded data)."""
    out = []
    for top, dirs, files in os.walk(workspace):
        dirs[:] = [d for d in dirs if d not in _SKIP_DIRS and not Path(top, d).is_symlink()]
        out.extend(Path(top, f) for f in files if f.endswith(TEXT_SUFFIXES))
    return out


def scrub_job_specs(store: RunStore) -> int:
    """Remove from older jobs' ``job.json`` what no run folder keeps: the owner id (the run row keeps it) and the
    server config's default tracker as a URI (it may carry the admin's password; newer jobs record
    :data:`~builder.tracking_destinations.SERVER_DEFAULT`). Returns the files rewritten."""
    done = 0
    for run in store.list_runs(limit=1_000_000):
        try:
            path = store.folder(run["id"], write=True).job_spec  # the store's (trusted) sweep rewrites it
            data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
        except (OSError, ValueError, RunStoreError):
            continue
        if not isinstance(data, dict):
            continue
        origin = data.get("origin") if isinstance(data.get("origin"), dict) else {}
        changed = False
        for d in (data, origin):
            changed |= d.pop("owner", None) is not None
            if isinstance(d.get("tracking"), str) and is_server_default(d["tracking"], store.workspace):
                d["tracking"], changed = SERVER_DEFAULT, True
        if changed:
            try:
                write_atomic(path, json.dumps(data, indent=1), "a job file")
                done += 1
            except (OSError, LayerLabError):  # a full disk: the next open scrubs it
                pass
    return done


def migrate_owner_folders(store: RunStore) -> dict[str, str]:
    """Move every LayerLab 0.1 owner folder of the store's workspace to its keyed name; the renames done
    (``{old name: new name}``, empty when there was nothing to do). Paths naming the folders are rewritten before
    the folders move, so a process cut off half-way leaves records that the next open completes.

    Raises:
        RunStoreError: a database stayed locked or could not be rewritten.
    """
    ws = Path(store.workspace)
    if not _owners.old_owner_folders(ws):
        return {}
    renames = _owners.new_folder_names(ws, {*known_owners(store), *_study_owners(ws)})
    for db in (DB_NAME, STUDY_DB):
        _replace_in_database(ws / db, renames)
    _owners.replace_in_text_files(_text_files(ws), renames)
    scrub_job_specs(store)
    root = ws / _owners.OWNERS_DIR
    for old, new in renames.items():
        _owners.move_owner_folder(root / old, root / new, renames)
    return renames


#: a workspace whose job files :func:`scrub_job_specs` has cleaned (once; newer jobs write clean ones)
SCRUBBED_MARK = ".job-specs-scrubbed"


def migrate_once(workspace: str | Path) -> None:
    """:func:`migrate_owner_folders` the first time this process opens ``workspace`` (the app's pages call it on
    every run), and :func:`scrub_job_specs` once per workspace."""
    key = str(workspace)
    if key not in _DONE:
        if _owners.old_owner_folders(workspace):  # most opens: one listing, no store
            migrate_owner_folders(RunStore(workspace, actor=SYSTEM, mark_interrupted=False))
        mark = Path(workspace) / SCRUBBED_MARK
        if not mark.exists():
            scrub_job_specs(RunStore(workspace, actor=SYSTEM, mark_interrupted=False))
            with contextlib.suppress(OSError):  # a read-only workspace: scrubbed again on the next start
                mark.touch()
        _DONE.add(key)


__all__ = ["TEXT_SUFFIXES", "SCRUBBED_MARK", "migrate_owner_folders", "scrub_job_specs", "migrate_once"]
