"""The model library (builder.interchange.hf_library): entries with their size before placing, names (never paths)
resolved inside the admin's folder, the setting written by admins only."""

from __future__ import annotations

import json

import pytest

from builder.errors import AccessDenied, LayerLabError
from builder.interchange.hf_library import (
    LIBRARY_ENV,
    library_entries,
    library_folder,
    library_model,
    set_library_folder,
)
from builder.runs.owners import LOCAL_OWNER, server_config, server_config_path, set_server_config
from tests.interchange.hf_models import make_folder


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    root = tmp_path_factory.mktemp("library")
    make_folder("bert", root / "tiny-bert")
    make_folder("vit", root / "tiny-vit")
    (root / "broken").mkdir()
    (root / "broken" / "config.json").write_text(json.dumps({"model_type": "t5"}))
    return root


def test_entries_show_the_size(library, workspace, monkeypatch):
    monkeypatch.setenv(LIBRARY_ENV, str(library))
    entries = {e["name"]: e for e in library_entries(workspace)}
    assert set(entries) == {"tiny-bert", "tiny-vit", "broken"}
    bert = entries["tiny-bert"]
    assert bert["architecture"] == "bert" and bert["params"] == 4400 and bert["macs"] > 0
    assert bert["memory"] > 4 * 4400 * 4 and bert["fits"] and bert["tokenizer"] and bert["input_shape"] == [32]
    assert entries["tiny-vit"]["input_shape"] == [3, 16, 16]
    assert entries["broken"]["params"] is None and "unsupported architecture" in entries["broken"]["problem"]
    gpu = {e["name"]: e for e in library_entries(workspace, device="cuda")}
    assert gpu["tiny-bert"]["memory"] > bert["memory"]  # CUDA's runtime and activation factor


@pytest.mark.parametrize("name", ["../library", "/etc", "tiny-bert/../tiny-vit", "", "missing", None])
def test_a_name_is_never_a_path(library, workspace, monkeypatch, name):
    monkeypatch.setenv(LIBRARY_ENV, str(library))
    with pytest.raises(LayerLabError, match="in the model library. Fix: use one of: broken, tiny-bert, tiny-vit"):
        library_model(workspace, name)
    assert library_model(workspace, "tiny-bert") == library / "tiny-bert"


def test_only_an_admin_sets_the_library(library, workspace, monkeypatch):
    monkeypatch.delenv(LIBRARY_ENV, raising=False)
    workspace.mkdir(parents=True, exist_ok=True)
    assert library_folder(workspace) is None
    with pytest.raises(LayerLabError, match="no model library is configured"):
        library_model(workspace, "tiny-bert")
    with pytest.raises(AccessDenied):
        set_library_folder(workspace, "anon:" + "ab" * 16, str(library))
    with pytest.raises(LayerLabError, match="not one"):
        set_library_folder(workspace, LOCAL_OWNER, str(library / "nothing-here"))
    set_server_config(workspace, database_url="postgresql://ll:secret@db/ll")  # the config holds a password
    set_library_folder(workspace, LOCAL_OWNER, str(library))
    assert library_folder(workspace) == library
    assert [e["name"] for e in library_entries(workspace)] == ["broken", "tiny-bert", "tiny-vit"]
    path = server_config_path(workspace)  # rewritten through the one writer: kept private, the other keys kept
    assert path.stat().st_mode & 0o777 == 0o600 and server_config(workspace)["database_url"].endswith("@db/ll")
    set_library_folder(workspace, LOCAL_OWNER, "")  # cleared: the key is gone, not null
    assert "model_library" not in json.loads(path.read_text()) and library_folder(workspace) is None


def test_cli_lists_and_imports_by_name(library, workspace, monkeypatch, tmp_path, capsys):
    from builder.cli import main

    monkeypatch.setenv(LIBRARY_ENV, str(library))
    assert main(["library"]) == 0
    out = capsys.readouterr().out
    assert "tiny-bert" in out and "4,400 params" in out and "unsupported architecture" in out
    assert main(["import", "library:tiny-vit", "-o", str(tmp_path / "vit.json")]) == 0
    assert "outputs match transformers" in capsys.readouterr().out
    assert main(["import", "library:../tiny-vit", "-o", str(tmp_path / "x.json")]) != 0


def test_palette_entries_show_the_size_before_placing(library, workspace, monkeypatch):
    """Each usable library model is a palette entry whose type is no layer's and whose size line names the
    parameters, multiply-adds and the training memory on the device asked for; a broken folder is left out."""
    from builder.graph.registry import all_specs
    from builder.interchange.hf_library import library_palette

    monkeypatch.setenv(LIBRARY_ENV, str(library))
    entries = {e["label"]: e for e in library_palette(workspace, device="cpu")}
    assert set(entries) == {"tiny-bert", "tiny-vit"}
    bert = entries["tiny-bert"]
    assert bert["category"] == "Pretrained" and bert["type"] not in {s.type for s in all_specs()}
    lib = bert["library"]
    assert lib["name"] == "tiny-bert" and lib["params"] == 4400 and lib["device"] == "cpu"
    assert lib["size"].startswith("4.4k params · ") and "to train on cpu (batch 32)" in lib["size"]
    assert lib["memory"] == {e["name"]: e for e in library_entries(workspace)}["tiny-bert"]["memory"]


def test_the_library_is_never_the_workspace(library, workspace, monkeypatch):
    """The library's folders are listed to every visitor and read as models: a library set to the workspace (its
    runs, its owners' folders), a folder inside it, or one holding it would show every run id and owner folder
    name to everyone and read another owner's files. Refused when set; a config or variable naming one names no
    library."""
    monkeypatch.delenv(LIBRARY_ENV, raising=False)
    for sub in ("runs/20260101-000000-abcdef", "owners/anon-x"):
        (workspace / sub).mkdir(parents=True, exist_ok=True)
    for folder in (workspace, workspace / "runs", workspace / "owners", workspace / "owners" / "anon-x",
                   workspace.parent, workspace / "runs" / ".." / "owners"):
        with pytest.raises(LayerLabError, match="LayerLab's own workspace") as e:
            set_library_folder(workspace, LOCAL_OWNER, str(folder))
        assert str(workspace) not in str(e.value)  # the answer names no server folder
        assert library_folder(workspace) is None
        monkeypatch.setenv(LIBRARY_ENV, str(folder))  # the operator's variable, or a config edited by hand
        assert library_folder(workspace) is None and library_entries(workspace) == []
        with pytest.raises(LayerLabError, match="no model library is configured"):
            library_model(workspace, "runs")
        monkeypatch.delenv(LIBRARY_ENV)
    set_library_folder(workspace, LOCAL_OWNER, str(library))  # a folder beside the workspace is fine
    assert library_folder(workspace) == library


def test_a_library_entry_never_links_into_the_workspace(library, workspace, monkeypatch, tmp_path):
    """A model folder of the library (or a file in it) that is a link into the workspace, or to a folder holding
    it, is no model: it was listed to every visitor and read as one, another owner's run or upload with it."""
    run = workspace / "runs" / "20260101-000000-abcdef"
    run.mkdir(parents=True, exist_ok=True)
    make_folder("bert", run / "hf")
    lib = tmp_path / "lib"
    make_folder("bert", lib / "mine")
    (lib / "linked").symlink_to(run / "hf")
    (lib / "up").symlink_to(workspace.parent)
    make_folder("bert", lib / "sneaky")
    (lib / "sneaky" / "tokenizer.json").unlink(missing_ok=True)
    (lib / "sneaky" / "tokenizer.json").symlink_to(run / "hf" / "config.json")
    monkeypatch.setenv(LIBRARY_ENV, str(lib))
    assert [e["name"] for e in library_entries(workspace)] == ["mine"]
    for name in ("linked", "up", "sneaky"):
        with pytest.raises(LayerLabError, match="Fix: use one of: mine$"):
            library_model(workspace, name)


def test_an_import_on_a_full_disk_is_one_line_and_leaves_no_model_without_its_tokenizer(small_disk, tmp_path):
    """Issue 28 item 11 (a full disk) in the library import: the worker's tokenizer.json was copied into the new
    run after it was recorded ``imported`` with its weights, by shutil.copyfile: on a full disk the page got an
    OSError naming the server's folders, and the run stayed imported with a cut tokenizer (589,824 of 1,849,368
    bytes), from which a training would tokenize its texts. Now the import is one DiskFullError line and no run
    holds weights without its whole tokenizer; with room again the same import keeps it whole."""
    from builder.data.access import Actor
    from builder.errors import DiskFullError
    from builder.interchange.worker import import_hf_isolated
    from builder.runs.store import RunStore
    from tests.helpers import fill_disk

    folder = make_folder("bert", tmp_path / "lib" / "big-tokenizer")
    tok = json.loads((folder / "tokenizer.json").read_text())
    tok["model"]["vocab"].update({f"word{i:06d}{'x' * 10}": 16 + i for i in range(60_000)})  # ~1.8 MB
    (folder / "tokenizer.json").write_text(json.dumps(tok))
    size = (folder / "tokenizer.json").stat().st_size
    store = RunStore(small_disk / "ws", actor=Actor("user:ann@school.org"))
    store.list_runs()  # the run database exists before the disk fills
    filler = fill_disk(small_disk, leave=700_000)  # room for the weights, not for the tokenizer
    with pytest.raises(DiskFullError) as e:
        import_hf_isolated(folder, store, name="big-tokenizer")
    assert str(e.value).startswith("the disk is full") and "\n" not in str(e.value)
    # nothing left: no run (a queued one counted against the owner's queue) and no folder
    runs = store.workspace / "runs"
    assert store.list_runs() == [] and not (runs.is_dir() and any(p.is_dir() for p in runs.iterdir()))
    filler.unlink()
    _, rid, _ = import_hf_isolated(folder, store, name="big-tokenizer")
    assert store.get(rid)["status"] == "imported" and store.folder(rid).tokenizer.stat().st_size == size
