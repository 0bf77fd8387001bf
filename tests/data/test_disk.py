"""A full disk (issue 28 item 11): one line naming the file system, its free space and what the write needed,
and nothing lost: the run database, checkpoints and uploads keep what they had, with no half-written file.
Tested on a real small file system (a tmpfs of a few MiB, mounted for the test)."""

from __future__ import annotations

import re
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
from tests.helpers import ME, fill_disk

TEACHER = "user:teacher"


def _one_line(e: BaseException, disk: Path) -> str:
    msg = str(e)
    assert msg.startswith("the disk is full") and "\n" not in msg and str(disk) in msg and "free" in msg, msg
    assert "rollback" not in msg and "Traceback" not in msg and "Fix:" in msg
    return msg


def test_a_full_disk_is_one_line_and_the_run_database_keeps_what_it_had(small_disk):
    store = RunStore(small_disk / "ws", actor=SYSTEM)
    rid = store.create_run(load_template("mlp"), "moons", {}, TrainConfig(), name="full")
    store.log_metrics(rid, [{"type": "epoch", "epoch": 1, "train_loss": 1.0}])
    filler = fill_disk(small_disk)
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
    filler = fill_disk(small_disk, leave=50_000)
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
    fill_disk(small_disk, leave=300_000)
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
    filler = fill_disk(small_disk, leave=leave)
    code = cli.main(["train", "cnn", "--dataset", "digits", "--epochs", "3", "--quiet", "--workspace", str(ws)])
    err = capsys.readouterr().err.strip()
    assert code != 0 and err.startswith("error: the disk is full") and "\n" not in err, err
    _one_line(err[len("error: "):], small_disk)
    filler.unlink()
    store = RunStore(ws, actor=SYSTEM)
    assert store.get(before[0]["id"])["status"] == "finished"  # what was there is intact
    assert store.folder(before[0]["id"]).weights.is_file()


def _writes(ws: Path) -> dict:
    """What a person's click writes in the server process, each to a file that already holds something: a name ->
    ``(write, the file it writes)``. Each wrote with a hand-made temporary file before ``write_atomic`` was the one
    atomic write, and a full disk gave a raw OSError (a traceback on the page)."""
    from builder.runs import classes, owners
    from builder.tracking_destinations import save_owner_setting

    cls = classes.create_class(ws, TEACHER, "c", load_template("mlp"))
    owner_dir = owners.owner_path(ws, ME)
    return {
        "autosaved project": (lambda: owners.save_project(ws, ME, load_template("cnn")), owner_dir / "project.json"),
        "replace history": (lambda: owners.push_history(ws, ME, load_template("cnn")), None),
        "preference": (lambda: owners.set_preference(ws, ME, "guide_hidden", False), None),
        "display name": (lambda: owners.set_display_name(ws, ME, "Another name"), None),
        "class settings": (lambda: classes.update_class(ws, cls["id"], TEACHER, metric="loss"),
                           ws / classes.CLASSES_DIR / f"{cls['id']}.json"),
        "tracking setting": (lambda: save_owner_setting(ws, ME, "https://ml.school.org/b"), None),
    }


def _prepare(ws: Path) -> None:
    from builder.runs import owners
    from builder.tracking_destinations import save_owner_setting

    ws.mkdir()
    owners.set_server_config(ws, teachers=[TEACHER], tracking={"allow": ["https://ml.school.org"]})
    owners.save_project(ws, ME, load_template("mlp"))
    owners.push_history(ws, ME, load_template("mlp"))
    owners.set_preference(ws, ME, "guide_hidden", True)
    owners.set_display_name(ws, ME, "Ann")
    save_owner_setting(ws, ME, "https://ml.school.org/a")


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("what", ["autosaved project", "replace history", "preference", "display name",
                                  "class settings", "tracking setting"])
def test_a_click_on_a_full_disk_is_one_line_and_changes_no_file(small_disk, what):
    """Issue 28 item 11's class: every small write a page makes (autosave, history, settings, a class) meets a
    full disk with the one line, every file keeping what it held, no temporary file left."""
    ws = small_disk / "ws"
    _prepare(ws)
    write, _ = _writes(ws)[what]
    before = _files(ws)
    filler = fill_disk(small_disk)
    with pytest.raises(DiskFullError) as e:
        write()
    _one_line(e.value, small_disk)
    assert _files(ws) == before, "a file changed or a temporary file was left"
    filler.unlink()
    write()  # with room again, the same write succeeds
    assert _files(ws) != before


def test_a_new_run_on_a_full_disk_leaves_no_folder_and_no_row(small_disk):
    """Creating a run (Train › Start) on a full disk: the one line, and neither a run folder without a row nor a
    row without its folder (before: a raw OSError from writing the run's project, and an empty folder left)."""
    ws = small_disk / "ws"
    store = RunStore(ws, actor=SYSTEM)
    store.list_runs()  # the database exists
    filler = fill_disk(small_disk)
    with pytest.raises(DiskFullError) as e:
        store.create_run(load_template("cnn"), "digits", {}, TrainConfig(), owner=ME)
    _one_line(e.value, small_disk)
    assert store.list_runs() == [] and not any((ws / "runs").iterdir())
    filler.unlink()
    rid = store.create_run(load_template("cnn"), "digits", {}, TrainConfig(), owner=ME)
    assert store.folder(rid).project.is_file()


def test_a_job_whose_spec_meets_a_full_disk_records_nothing(small_disk, monkeypatch):
    """The disk fills up after the run's project is written, when its job spec is: the one line, and no run is
    recorded (before: the row stayed ``queued`` for ever, with no job spec and no process to run it)."""
    from builder.jobs import queue
    from builder.training import run_folder as folder_module  # RunFolder.write_job_spec writes job.json

    ws = small_disk / "ws"
    store = RunStore(ws, actor=SYSTEM)
    real = folder_module.write_atomic

    def filling_at_the_job_spec(path, data, what, **kw):
        if Path(path).name == "job.json":
            fill_disk(small_disk)  # a real ENOSPC, at this write
        return real(path, data, what, **kw)

    monkeypatch.setattr(folder_module, "write_atomic", filling_at_the_job_spec)
    spec = queue.JobSpec(project=load_template("mlp").model_dump(mode="json"), dataset="moons", owner=ME)
    with pytest.raises(DiskFullError) as e:
        queue.submit(store, spec)
    _one_line(e.value, small_disk)
    (small_disk / "filler").unlink()
    assert store.list_runs() == [] and not any((ws / "runs").iterdir())


#: Modules that rename files themselves, each for a reason write_atomic/atomic_file cannot serve; every other
#: module writes a file whole through builder.data.disk (a module that renamed its own temporary file met a full
#: disk with a raw OSError and left its temporary file: owners, classes, job specs, tracking, caches, ONNX, ...).
_RENAMES_OWN_FILES = {
    "builder/data/disk.py": "the one home: write_atomic and atomic_file",
    "builder/graph/project.py": "Project.save, the Python API's (the graph layer imports nothing of data)",
    "builder/training/checkpoint.py": "keeps the last good checkpoint as the previous one by a hard link",
    "builder/data/table_cache.py": "two memory-mapped files of one entry, written in place, renamed together",
    "builder/data/cache.py": "whole cache folders, renamed into place once complete",
    "builder/runs/owners.py": "owner folders moved to their keyed names (a migration)",
    "builder/interchange/importer.py": "moves the imported weights, written by atomic_file, into the run folder",
}


def test_a_file_is_renamed_into_place_only_where_the_one_atomic_write_cannot_serve():
    root = Path(__file__).resolve().parents[2]
    found = {str(p.relative_to(root)) for p in (root / "builder").rglob("*.py")
             if re.search(r"os\.replace\(|os\.rename\(|\btmp\w*\.replace\(", p.read_text(encoding="utf-8"))}
    assert found <= set(_RENAMES_OWN_FILES), f"write through builder.data.disk.write_atomic: {found - set(_RENAMES_OWN_FILES)}"
    assert set(_RENAMES_OWN_FILES) <= found, "a listed module no longer renames files: take it off the list"


@pytest.mark.parametrize("n", [2**20 - 1, 2**30 - 1, 2**40 - 1, 3 * 2**40, 2**50 + 2**49])
def test_a_full_disks_sizes_never_read_1024_of_a_unit(n):
    """A full disk's message names sizes by the one rule of a size (builder.graph.report.human_bytes): its own
    formatter read 1,048,575 bytes as '1024.0 KiB', 2**30 - 1 as '1024.0 MiB' and 3 TiB as '3072.00 GiB'."""
    from builder.data.disk import human

    value, unit = human(n).split()
    units = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")
    assert float(value) < 1024 and unit in units, human(n)
    assert abs(float(value) * 1024 ** units.index(unit) - n) <= 0.05 * n
