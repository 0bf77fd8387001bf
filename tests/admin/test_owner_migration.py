"""Moving a LayerLab 0.1 workspace's owner folders (named with 24 digits of the cookie) to keyed names, with every
record that names them: run rows, job files, model cards, autosaves, classes."""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import builder
from builder.admin.owner_migration import migrate_once, migrate_owner_folders
from builder.data.access import SYSTEM
from builder.runs import classes, owners
from builder.runs.store import DB_NAME, RunStore

A = "anon:9f3ab7e1c4d28f60a5be17c93d4f8e2b"  # has runs
B = "anon:7e2d4c9b1a8f3e6d5c0b9a8e7f6d5c4b"  # a class member without runs
C = "anon:e5c3a1f9d7b5e3c1a9f7d5b3e1c9a7f5"  # only an autosaved canvas: unknown until the person comes back
TEACHER = "user:t@school.org"


def _old_name(owner: str) -> str:
    """The folder name LayerLab 0.1's ``owners.safe_id`` gave (copied here so the test does not lean on ours)."""
    kind = "user" if owner.startswith("user:") else "anon" if owner.startswith("anon:") else "other"
    readable = re.sub(r"[^a-z0-9]+", "-", owner.split(":", 1)[-1].lower()).strip("-")[:24]
    digest = hashlib.sha256(owner.encode("utf-8")).hexdigest()[:16]
    return f"{kind}-{readable}-{digest}" if readable else f"{kind}-{digest}"


def _old_workspace(ws: Path, monkeypatch) -> tuple[RunStore, str, dict[str, Path]]:
    """A workspace as LayerLab 0.1 left it: owner folders with autosave, history and an upload; a run on the
    upload (row, job file, model card); a class."""
    monkeypatch.setenv("LAYERLAB_TEACHERS", TEACHER)
    monkeypatch.delenv("LAYERLAB_SERVER_CONFIG", raising=False)
    store = RunStore(ws, actor=SYSTEM)
    folders = {}
    for who in (A, B, C):
        d = ws / "owners" / _old_name(who)
        (d / "uploads").mkdir(parents=True)
        (d / "history").mkdir()
        upload = d / "uploads" / "0123456789abcdef.csv"
        upload.write_text("x,y\n1,0\n2,1\n")
        proj = builder.load_template("mlp").model_copy(
            update={"dataset": {"kind": "csv", "name": "t.csv", "file": str(upload), "target": "y"}})
        (d / "project.json").write_text(proj.to_json())
        (d / "history" / "1.json").write_text(proj.to_json())
        folders[who] = d
    upload = folders[A] / "uploads" / "0123456789abcdef.csv"
    rid = store.create_run(builder.load_template("mlp"), "csv", {"path": str(upload), "target": "y"},
                           {"epochs": 1}, owner=A, name="net")
    folder = store.folder(rid)
    folder.job_spec.write_text(json.dumps({"dataset": "csv", "dataset_options": {"path": str(upload)}, "owner": A}))
    folder.model_card.write_text(f"- options {{'path': '{upload}'}}\n")
    c = classes.create_class(ws, TEACHER, "ML", builder.load_template("mlp"))
    classes.join_class(ws, c["code"], B)
    return store, rid, folders


def _everything(ws: Path) -> str:
    """Every name and text under the workspace, with the databases as SQL."""
    out = []
    for p in sorted(ws.rglob("*")):
        out.append(str(p.relative_to(ws)))
        if p.suffix == ".db":
            with sqlite3.connect(p) as c:
                out.extend(c.iterdump())
        elif p.is_file() and p.name != owners.SECRET_FILE and not p.name.startswith(DB_NAME):
            out.append(p.read_text(encoding="utf-8", errors="replace"))
    return "\n".join(out)


def test_an_old_workspace_is_moved_to_keyed_names_and_keeps_working(tmp_path, monkeypatch):
    ws = tmp_path / "ws"
    store, rid, folders = _old_workspace(ws, monkeypatch)
    with ThreadPoolExecutor(2) as pool:  # two servers opening the old workspace at once
        done = list(pool.map(lambda _: migrate_owner_folders(RunStore(ws, actor=SYSTEM)), range(2)))
    assert any(done) and all(not d or set(d) == {_old_name(w) for w in (A, B, C)} for d in done)
    assert migrate_owner_folders(store) == {}  # idempotent
    text = _everything(ws)
    for who, old in folders.items():
        assert old.name not in text and not old.exists()
        # the cookie's digits are in no file or folder name (the run rows keep the owner id: it is the key)
        names = "\n".join(str(p.relative_to(ws)) for p in ws.rglob("*"))
        assert who[5:29] not in names
    new_a = ws / "owners" / owners.safe_id(ws, A)
    rec = store.get(rid)
    assert Path(rec["dataset_options"]["path"]).parent == new_a / "uploads"
    assert Path(rec["dataset_options"]["path"]).is_file()
    assert str(new_a) in store.folder(rid).job_spec.read_text() and str(new_a) in store.folder(rid).read_model_card()
    assert "owner" not in json.loads(store.folder(rid).job_spec.read_text())  # the row keeps it, not the job file
    for who in (A, B):  # known owners (runs, classes): their folder has its keyed name, their canvas its upload
        proj = owners.load_autosave(ws, who)
        assert proj is not None and Path(proj.dataset["file"]).is_file()
        assert owners.history(ws, who) and owners.upload_dir(ws, who).parent.name == owners.safe_id(ws, who)
    legacy = [p.name for p in (ws / "owners").iterdir() if p.name.startswith("legacy-")]
    assert len(legacy) == 1  # C's folder waits under a keyed name ...
    proj = owners.load_autosave(ws, C)  # ... until C comes back
    assert proj is not None and Path(proj.dataset["file"]).is_file()
    assert sorted(p.name for p in (ws / "owners").iterdir()) == sorted(owners.safe_id(ws, w) for w in (A, B, C))


def test_the_app_migrates_once_per_process(tmp_path, monkeypatch):
    ws = tmp_path / "ws"
    _old_workspace(ws, monkeypatch)
    migrate_once(ws)
    assert owners.old_owner_folders(ws) == []
    (ws / "owners" / _old_name(A)).mkdir()  # an old process made one again: this process has migrated already
    migrate_once(ws)
    assert owners.old_owner_folders(ws) == [_old_name(A)]
    assert migrate_owner_folders(RunStore(ws, actor=SYSTEM)) == {_old_name(A): owners.safe_id(ws, A)}  # merged into the new one
    assert owners.old_owner_folders(ws) == [] and owners.load_autosave(ws, A) is not None


def test_older_job_files_lose_the_admins_tracker_uri_once(tmp_path):
    """Jobs recorded before job files named the server's default tracker by SERVER_DEFAULT kept its URI, the
    admin's password included: the first open rewrites them (a visitor's own tracker stays), once per workspace."""
    from builder.admin.owner_migration import SCRUBBED_MARK
    from builder.tracking_destinations import SERVER_DEFAULT, job_destination

    ws = tmp_path / "ws"
    secret = "https://admin:S3CRET-pw@ml.school.org/team"
    store = RunStore(ws, actor=SYSTEM)
    owners.set_server_config(ws, tracking={"uri": secret, "allow": ["https://ml.other.org"]})
    old, own = (store.create_run(builder.load_template("mlp"), "moons", {}, {"epochs": 1}, owner=A) for _ in "ab")
    for rid, uri in ((old, secret), (own, "https://ml.other.org")):
        folder = store.folder(rid)
        folder.path.mkdir(parents=True, exist_ok=True)
        folder.job_spec.write_text(json.dumps({"dataset": "moons", "tracking": uri, "owner": A,
                                               "origin": {"tracking": uri, "owner": A}}))
    migrate_once(ws)
    first = json.loads(store.folder(old).job_spec.read_text())
    assert "S3CRET" not in store.folder(old).job_spec.read_text() and "owner" not in first
    assert first["tracking"] == first["origin"]["tracking"] == SERVER_DEFAULT
    assert job_destination(first["tracking"], ws) == secret  # the job still logs where it did
    assert json.loads(store.folder(own).job_spec.read_text())["tracking"] == "https://ml.other.org"
    assert (ws / SCRUBBED_MARK).exists()
