"""A full disk (issue 28 item 11): one line naming the file system, its free space and what the write needed,
and nothing lost: the run database, checkpoints and uploads keep what they had, with no half-written file.
Tested on a real small file system (a tmpfs of a few MiB, mounted for the test)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import torch

from builder.data.access import SYSTEM
from builder.data.disk import write_atomic
from builder.errors import DiskFullError, RunStoreError, TrainingError
from builder.graph.templates import load_template
from builder.runs.store import RunStore
from builder.training.checkpoint import read_checkpoint, save_checkpoint
from builder.training.config import TrainConfig


@pytest.fixture
def small_disk(tmp_path) -> Path:
    """A 4 MiB tmpfs mounted for the test (unmounted after it)."""
    d = tmp_path / "disk"
    d.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root (the CI containers run as root)")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(d)], check=True)
    try:
        yield d
    finally:
        subprocess.run(["umount", "-l", str(d)], check=False)


def _fill(disk: Path, leave: int = 0) -> Path:
    """Fill ``disk`` until ``leave`` bytes (about) are free; the filler file, to delete for room."""
    filler = disk / "filler"
    with open(filler, "wb") as f:
        try:
            while os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize > leave:
                f.write(b"\0" * 4096)
                f.flush()
        except OSError:
            pass
    return filler


def _one_line(e: BaseException, disk: Path) -> str:
    msg = str(e)
    assert msg.startswith("the disk is full") and "\n" not in msg and str(disk) in msg and "free" in msg, msg
    assert "rollback" not in msg and "Traceback" not in msg and "Fix:" in msg
    return msg


def test_a_full_disk_is_one_line_and_the_run_database_keeps_what_it_had(small_disk):
    store = RunStore(small_disk / "ws", actor=SYSTEM)
    rid = store.create_run(load_template("mlp"), "moons", {}, TrainConfig(), name="full")
    store.log_metrics(rid, [{"type": "epoch", "epoch": 1, "train_loss": 1.0}])
    filler = _fill(small_disk)
    for _ in range(2):  # the same answer each time (no "cannot rollback - no transaction is active")
        with pytest.raises(DiskFullError) as e:
            store.log_metrics(rid, [{"type": "epoch", "epoch": 2, "train_loss": 1.0, "pad": "x" * 200_000}])
        assert isinstance(e.value, RunStoreError) and "the run database needs at least" in _one_line(e.value,
                                                                                                     small_disk)
    filler.unlink()  # room again: what was there is there, nothing half-written, and writes go on
    assert [m["epoch"] for m in store.metrics(rid)] == [1]
    store.log_metrics(rid, [{"type": "epoch", "epoch": 2, "train_loss": 0.5}])
    assert [m["epoch"] for m in store.metrics(rid)] == [1, 2] and store.get(rid)["name"] == "full"


def test_a_checkpoint_on_a_full_disk_keeps_the_last_good_one(small_disk):
    model = torch.nn.Linear(200, 200)  # 160 KB of weights
    path = small_disk / "run" / "last.safetensors"
    save_checkpoint(path, model, state={"epoch": 1})
    filler = _fill(small_disk, leave=50_000)
    with torch.no_grad():
        model.weight.add_(1.0)
    with pytest.raises(DiskFullError) as e:
        save_checkpoint(path, model, state={"epoch": 2})
    assert isinstance(e.value, TrainingError) and "the checkpoint needs at least 1" in _one_line(e.value, small_disk)
    _, meta = read_checkpoint(path)
    assert meta["state"]["epoch"] == 1 and not list(path.parent.glob(".*.tmp"))
    filler.unlink()
    save_checkpoint(path, model, state={"epoch": 2})
    assert read_checkpoint(path)[1]["state"]["epoch"] == 2


def test_an_upload_on_a_full_disk_leaves_no_partial_file(small_disk):
    _fill(small_disk, leave=300_000)
    target = small_disk / "uploads" / "abc.csv"
    target.parent.mkdir()
    with pytest.raises(DiskFullError) as e:
        write_atomic(target, b"x" * 1_000_000, "the upload .csv")
    assert "the upload .csv needs at least 976.6 KiB" in _one_line(e.value, small_disk)
    assert list(target.parent.iterdir()) == []  # no truncated file under the content-addressed name
    write_atomic(target, b"x" * 1000, "the upload .csv")
    assert target.read_bytes() == b"x" * 1000


@pytest.mark.slow
@pytest.mark.parametrize("leave", [60_000, 400_000])
def test_training_on_a_full_disk_ends_with_one_line(small_disk, leave, capsys):
    from builder import cli

    ws = small_disk / "ws"
    assert cli.main(["train", "mlp", "--dataset", "moons", "--epochs", "1", "--quiet", "--workspace", str(ws)]) == 0
    before = RunStore(ws, actor=SYSTEM).list_runs()
    capsys.readouterr()
    filler = _fill(small_disk, leave=leave)
    code = cli.main(["train", "cnn", "--dataset", "digits", "--epochs", "3", "--quiet", "--workspace", str(ws)])
    err = capsys.readouterr().err.strip()
    assert code != 0 and err.startswith("error: the disk is full") and "\n" not in err, err
    _one_line(err[len("error: "):], small_disk)
    filler.unlink()
    store = RunStore(ws, actor=SYSTEM)
    assert store.get(before[0]["id"])["status"] == "finished"  # what was there is intact
    assert store.folder(before[0]["id"]).weights.is_file()
