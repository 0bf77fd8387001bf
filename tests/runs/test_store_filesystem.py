"""Where a run database may live: WAL on a local disk; a rollback journal on a network file system, where WAL's
shared memory cannot reach the other hosts (builder.runs.store.NETWORK_FILESYSTEMS, docs/scale-out.md)."""

from __future__ import annotations

from builder import load_template
from builder.data.access import SYSTEM
from builder.runs import store as store_mod
from builder.runs.pipeline import run_training
from builder.runs.store import RunStore, filesystem_type


def _journal(store: RunStore) -> str:
    return str(store._read("PRAGMA journal_mode")[0]["journal_mode"]).lower()


def test_a_local_workspace_uses_the_write_ahead_log(tmp_path):
    store = RunStore(tmp_path / "local", actor=SYSTEM)
    assert filesystem_type(tmp_path) == store.filesystem and store.filesystem not in store_mod.NETWORK_FILESYSTEMS
    assert store.journal == "WAL" and _journal(store) == "wal"


def test_a_workspace_on_a_network_file_system_uses_a_rollback_journal_and_works(tmp_path, monkeypatch):
    monkeypatch.setattr(store_mod, "filesystem_type", lambda path, mountinfo=None: "nfs4")
    store = RunStore(tmp_path / "nfs", actor=SYSTEM)
    assert store.filesystem == "nfs4" and store.journal == "DELETE" and _journal(store) == "delete"
    rid = run_training(load_template("mlp"), "moons", {"epochs": 2}, store, adapt=True).run_id
    assert store.get(rid)["status"] == "finished" and len(store.metrics(rid)) == 2
    assert not (tmp_path / "nfs" / "layerlab.db-wal").exists()


def test_the_deepest_mount_point_names_the_file_system():
    info = ("22 1 8:1 / / rw - ext4 /dev/sda1 rw\n"
            "40 22 0:50 / /data rw,relatime - nfs4 srv:/export rw\n"
            "41 40 0:51 / /data/local\\040disk rw - xfs /dev/sdb1 rw\n"
            "42 22 0:52 / /datasets rw - cifs //srv/d rw\n")
    assert filesystem_type("/data/ws/runs", info) == "nfs4"
    assert filesystem_type("/data/local disk/ws", info) == "xfs"
    assert filesystem_type("/datasets", info) == "cifs" and filesystem_type("/database", info) == "ext4"
    assert filesystem_type("/x", "garbage\n") is None
