"""What content may say about data (issue 28 items 2 and 11): a built-in or one of the actor's own uploads by its
id, never a server path; refusals quote nothing of a file and do not tell whether it exists."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from builder import cli
from builder.data import load_dataset
from builder.data.access import LOCAL_OWNER, SYSTEM
from builder.data.sources import PATH_KEYS, DatasetSource, LocalFile, check_project, content_problems
from builder.data.uploads import UploadFolder
from builder.errors import DatasetError, LayerLabError
from builder.graph.project import Project, load_project
from builder.graph.share import decode_project, encode_project
from builder.graph.templates import load_template
from builder.runs.owners import upload_dir
from builder.runs.pipeline import load_run_dataset, run_training
from builder.runs.store import RunStore
from builder.runs.summary import shown_dataset_options
from builder.training.config import TrainConfig
from tests.fuzz_budget import budget

SECRET = "SECRET-FIRST-LINE,y"
ANN, BOB = "user:ann", "user:bob"


def _table(n: int = 40) -> bytes:
    return ("a,b,y\n" + "".join(f"{i},{i % 3},{i % 2}\n" for i in range(n))).encode()


@pytest.fixture(scope="module")
def secret(tmp_path_factory) -> dict[str, Path]:
    """A readable file outside any upload folder, a link to it, and a name that does not exist."""
    d = tmp_path_factory.mktemp("server")
    f = d / "private.csv"
    f.write_text(SECRET + "\n1,0\n2,1\n")
    link = d / "link.csv"
    link.symlink_to(f)
    return {"file": f, "link": link, "missing": d / "absent.csv", "dir": d}


def _shapes(p: Path) -> list[str]:
    """The same file named every way content could: absolute, relative, climbing, ~, file://, Windows, a folder."""
    rel = os.path.relpath(p, Path.cwd())
    return [str(p), rel, f"./{rel}", f"../../..{p}", f"file://{p}", f"FILE:{p}", f"~/../..{p}", str(p.parent),
            str(p).replace("/", "\\"), f"C:\\{p.name}", f"{p}\x00.png", f"http://localhost/{p.name}"]


KEYS = sorted(PATH_KEYS | {"target", "size", "noise", "name", "upload", "task", "extra"})


def _specs(name: str, key: str, value) -> list:
    """One hostile reference in every form content reaches the loader in: a page spec, a built-in-looking spec
    with options (what a link keeps), a run row, a job's (name, options)."""
    return [{"kind": "builtin", "name": name, "options": {key: value, "target": "y"}},
            {"kind": "csv", "name": "t.csv", "file": value, "target": "y"},
            {"kind": "images", "name": "p.zip", "file": value, "size": 8},
            {"dataset_name": name, "dataset_options": {key: value, "target": "y"}},
            (name, {key: [value]}), (name, {"target": "y", key: {"nested": value}})]


def _message(spec, uploads: UploadFolder) -> str:
    with pytest.raises(DatasetError) as e:
        load_dataset(spec, uploads=uploads)
    return str(e.value)


@settings(max_examples=budget(60), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(["csv", "image_folder", "images", "moons", "digits"]), key=st.sampled_from(KEYS),
       which=st.sampled_from(["file", "link", "dir"]), shape=st.integers(0, 11), form=st.integers(0, 5))
def test_a_path_in_any_key_of_any_spec_is_refused_without_a_leak(secret, tmp_path, name, key, which, shape, form):
    mine = UploadFolder(tmp_path / "uploads")
    mine.save("t.csv", _table())
    there = _specs(name, key, _shapes(secret[which])[shape])[form]
    absent = _specs(name, key, _shapes(secret["missing"])[shape])[form]
    msg, other = _message(there, mine), _message(absent, mine)
    assert "SECRET" not in msg and str(secret["dir"]) not in msg and secret["dir"].name not in msg
    # the same words whether or not the file exists (only the key, never the value, is quoted)
    assert msg.replace(secret[which].name, "X") == other.replace(secret["missing"].name, "X")


@settings(max_examples=budget(25), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(["csv", "image_folder", "moons"]), key=st.sampled_from(KEYS), shape=st.integers(0, 11),
       kind=st.sampled_from(["builtin", "csv", "images"]))
def test_links_and_project_files_naming_a_path_are_refused_at_the_door(secret, name, key, shape, kind):
    value = _shapes(secret["file"])[shape]
    dataset = ({"kind": kind, "name": name, "options": {key: value}} if kind == "builtin"
               else {"kind": kind, "name": "x", "file": value})
    proj = load_template("mlp").model_copy(update={"dataset": dataset, "training": {"dataset": name}})
    for opened in (lambda: load_project(proj.to_json()), lambda: decode_project(encode_project(proj))):
        try:
            got = check_project(opened())
        except DatasetError as e:  # refused at the door: the keys are named, nothing of the file
            assert "SECRET" not in str(e) and str(secret["dir"]) not in str(e) and "never a file" in str(e)
        else:  # a link drops what is not a built-in: what is left names no file
            assert got.dataset is None or not content_problems(got.dataset)


def test_the_cli_refuses_a_project_file_naming_a_path_but_takes_data_path(secret, tmp_path, capsys):
    proj = load_template("mlp").model_copy(update={
        "dataset": {"kind": "csv", "name": "x", "file": str(secret["file"]), "target": "y"}})
    pfile = tmp_path / "p.json"
    pfile.write_text(proj.to_json())
    assert cli.main(["train", str(pfile), "--dataset", "csv", "--workspace", str(tmp_path / "ws")]) == 2
    err = capsys.readouterr().err
    assert "never a file on the server" in err and "SECRET" not in err and str(secret["file"]) not in err
    data = tmp_path / "t.csv"
    data.write_bytes(_table(60))
    assert cli.main(["train", "mlp", "--data-path", str(data), "--target", "y", "--adapt", "--epochs", "1",
                     "--workspace", str(tmp_path / "ws")]) == 0  # the command line's privilege


def test_an_upload_id_resolves_only_in_its_owners_folder(tmp_path):
    ws = tmp_path / "ws"
    ann, bob = UploadFolder(upload_dir(ws, ANN)), UploadFolder(upload_dir(ws, BOB))
    ref = ann.save("mine.csv", _table())
    spec = {"kind": "csv", "name": "mine.csv", "file": ref, "target": "y"}
    ds = load_dataset(spec, uploads=ann)
    assert ds.info.options["upload"] == ref and ds.info.name == "csv:mine.csv"
    theirs, unknown = _message(spec, bob), _message({**spec, "file": "upload:" + "0" * 64 + ".csv"}, bob)
    assert "no upload" in theirs and theirs.replace(ref, "ID") == unknown.replace("upload:" + "0" * 64 + ".csv", "ID")
    assert str(ws) not in theirs
    for forged in ("upload:../" + ref[7:], "upload:" + "a" * 10, f"upload:{ref[7:]}/x", str(ann.root / ref[7:])):
        msg = _message({**spec, "file": forged}, bob)
        assert str(ws) not in msg and "SECRET" not in msg
    # the job door: a run for bob naming ann's upload fails before anything is read
    store = RunStore(ws, actor=SYSTEM)  # the test observes; each run is trained for the owner it names
    with pytest.raises(DatasetError, match="no upload .* of yours"):
        run_training(load_template("mlp"), "csv", {"epochs": 1}, store, adapt=True, owner=BOB,
                     dataset_options={"upload": ref, "target": "y"})
    rid = run_training(load_template("mlp"), "csv", {"epochs": 1}, store, adapt=True, owner=ANN,
                       dataset_options={"upload": ref, "target": "y"}).run_id
    run = store.get(rid)
    assert run["dataset_options"]["upload"] == ref and "path" not in run["dataset_options"]
    assert load_run_dataset(store, run).info.options["upload"] == ref  # resume, explain, export reload it
    card = store.folder(rid).model_card.read_text() if store.folder(rid).model_card.is_file() else ""
    assert str(ws) not in card and "owners" not in card


def test_a_project_trains_on_the_data_its_data_page_chose(tmp_path, capsys):
    """One rule for the pages and the command line (:func:`builder.data.sources.project_source`): a project saved
    by the app names its Data page choice, and ``layerlab train`` (or ``run_training`` without a dataset) trained on
    the template's ``training.dataset`` instead (moons for an MLP project on people.csv, without a word), and
    dropped a built-in's options."""
    ws = tmp_path / "ws"
    mine = UploadFolder(upload_dir(ws, LOCAL_OWNER))
    ref = mine.save("people.csv", _table(60))
    base = load_template("mlp")
    assert base.training["dataset"] == "moons"
    on_csv = base.model_copy(update={"dataset": {"kind": "csv", "name": "people.csv", "file": ref, "target": "y"}})
    store = RunStore(ws, actor=SYSTEM)
    run = store.get(run_training(on_csv, None, {"epochs": 1}, store, adapt=True, owner=LOCAL_OWNER).run_id)
    assert run["dataset_name"] == "csv" and run["dataset_options"]["upload"] == ref
    on_noise = base.model_copy(update={"dataset": {"kind": "builtin", "name": "circles",
                                                   "options": {"noise": 0.25, "n_samples": 120}}})
    pfile = tmp_path / "p.json"
    pfile.write_text(on_noise.to_json())
    assert cli.main(["train", str(pfile), "--epochs", "1", "--workspace", str(ws), "--json"]) == 0
    rid = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["run_id"]
    got = store.get(rid)
    assert got["dataset_name"] == "circles" and got["dataset_options"]["noise"] == 0.25
    pfile.write_text(on_csv.model_copy(update={"dataset": {**on_csv.dataset, "file": "upload:" + "0" * 64 + ".csv"}}
                                       ).to_json())  # another person's upload, or none: refused, not moons
    assert cli.main(["train", str(pfile), "--epochs", "1", "--workspace", str(ws)]) == 2
    assert "of yours" in capsys.readouterr().err


def test_a_run_recorded_with_an_upload_path_reloads_as_its_owners_and_only_theirs(tmp_path):
    ws = tmp_path / "ws"
    ann = UploadFolder(upload_dir(ws, ANN))
    path = ann.resolve(ann.save("old.csv", _table()))  # what runs before upload ids recorded
    store = RunStore(ws, actor=SYSTEM)  # the test observes; each run is trained for the owner it names
    cfg = TrainConfig()
    mine = store.create_run(load_template("mlp"), "csv", {"path": str(path), "target": "y"}, cfg, owner=ANN)
    theirs = store.create_run(load_template("mlp"), "csv", {"path": str(path), "target": "y"}, cfg, owner=BOB)
    assert load_run_dataset(store, store.get(mine)).info.options["upload"] == "upload:" + path.name
    with pytest.raises(DatasetError, match="never a file on the server") as e:
        load_run_dataset(store, store.get(theirs))
    assert str(path) not in str(e.value)
    shown = shown_dataset_options(store.get(mine))
    assert str(ws) not in json.dumps(shown) and shown["file"] == path.name  # no name was recorded: the id's


def test_a_record_handed_in_is_read_again_as_the_stores_actor(tmp_path, secret):
    """A caller's copy of a run record (a page's, a link's, a Python caller's) decides nothing: the owner and the
    dataset are those the store holds for that id, read as the store's actor."""
    from builder.data.access import LOCAL_OWNER, Actor
    from builder.runs.record import Run

    ws = tmp_path / "ws"
    ref = UploadFolder(upload_dir(ws, ANN)).save("ann.csv", _table())
    RunStore(ws, actor=SYSTEM).create_run(load_template("mlp"), "csv", {"upload": ref, "target": "y"},
                                          TrainConfig(), owner=ANN)
    bob = RunStore(ws, actor=Actor(BOB))
    mine = bob.create_run(load_template("mlp"), "moons", {}, TrainConfig(), owner=BOB)
    real = load_run_dataset(bob, bob.get(mine))
    forged = [  # bob's own run id, with another owner and another dataset written into his copy
        {"owner": ANN, "dataset_name": "csv", "dataset_options": {"upload": ref, "target": "y"}},
        {"owner": LOCAL_OWNER, "dataset_name": "csv", "dataset_options": {"path": str(secret["file"]), "target": "y"}},
        {"owner": BOB, "dataset_name": "csv", "dataset_options": {"upload": ref, "target": "y"}},
    ]
    for change in forged:
        ds = load_run_dataset(bob, Run({**dict(bob.get(mine)), **change}))
        assert ds.info.name == real.info.name and ds.info.options == real.info.options  # the stored run's moons
    with pytest.raises(LayerLabError, match="no run"):  # a made-up id is refused, as any other door refuses it
        load_run_dataset(bob, Run({**dict(bob.get(mine)), "id": "2026" + mine[4:-1] + "x", **forged[0]}))


def test_errors_about_an_upload_name_it_as_people_know_it(tmp_path):
    mine = UploadFolder(tmp_path / "owners" / "user-ann-0123" / "uploads")
    ref = mine.save("pets.zip", b"PK\x03\x04 not really a zip")
    msg = _message(DatasetSource("image_folder", {"upload": ref, "size": [8, 8]}, "pets.zip"), mine)
    assert "pets.zip" in msg and str(mine.root) not in msg and "user-ann" not in msg


def test_a_local_file_is_made_only_by_code_and_records_as_text(tmp_path):
    f = LocalFile("t.csv", tmp_path)
    assert f == str(tmp_path / "t.csv") and json.loads(json.dumps({"path": f})) == {"path": str(f)}
    assert content_problems(DatasetSource("csv", {"path": f, "target": "y"})) == []
    assert content_problems(DatasetSource("csv", {"path": str(f), "target": "y"})) == [
        "option path names a file on the server"]
    assert content_problems(DatasetSource("moons", {"noise": LocalFile("x")})) != []
    with pytest.raises(LayerLabError):
        check_project(Project(dataset={"kind": "csv", "file": "../x.csv"}))


def test_a_run_tokenizer_is_made_only_by_code_and_holds_any_character():
    """Option ``pretrained`` (a model's tokenizer.json text) comes from the run the weights start from, read by the
    server; a real vocabulary holds '/' ('and/or', BERT's '##/'), which is no path. From content it is refused,
    whatever it holds, and the message quotes none of it."""
    from builder.data.text import RunTokenizer

    up = "upload:" + "a" * 64 + ".csv"
    text = json.dumps({"model": {"vocab": {"[PAD]": 0, "and/or": 1, "http://x": 2}}})
    assert content_problems(DatasetSource("text", {"upload": up, "tokenizer": "pretrained",
                                                   "pretrained": RunTokenizer(text)})) == []
    for plain in (text, "{}", "/etc/passwd"):
        problems = content_problems(DatasetSource("text", {"upload": up, "tokenizer": "pretrained",
                                                           "pretrained": plain}))
        assert problems == ["option pretrained is the tokenizer of the run the weights start from, read by the "
                            "server; content never gives one"], problems
    assert json.loads(json.dumps({"pretrained": RunTokenizer(text)})) == {"pretrained": text}  # records as text


def test_column_names_of_your_own_file_may_hold_a_slash(tmp_path):
    """A column of the actor's upload named "speed km/h" or "date/time" is no path: the CSV, text and series
    kinds take it as target, text or time column (it was refused as "names a file on the server"); on a built-in,
    nested, or as any other option it is still refused, and a model card shows it as it is."""
    mine = UploadFolder(tmp_path / "uploads")
    ref = mine.save("speeds.csv", ("a,speed km/h\n" + "".join(f"{i},{i % 2}\n" for i in range(40))).encode())
    up = "upload:" + "a" * 64 + ".csv"
    for name, opts in (("csv", {"target": "speed km/h"}), ("text", {"target": "y", "text_column": "review/text"}),
                       ("series", {"columns": ["a/b", "c"], "time_column": "date/time"})):
        assert content_problems(DatasetSource(name, {"upload": up, **opts})) == [], name
    ds = load_dataset({"kind": "csv", "name": "speeds.csv", "file": ref, "target": "speed km/h"}, uploads=mine)
    assert ds.info.options["target"] == "speed km/h"
    assert DatasetSource.of(ds.info).shown_options()["target"] == "speed km/h"
    for src in (DatasetSource("moons", {"target": "/etc/passwd"}), DatasetSource("csv", {"upload": up,
                "target": {"x": "/etc/passwd"}}), DatasetSource("csv", {"upload": up, "target": "y", "sep": "a/b"})):
        assert content_problems(src), src


def test_a_job_trains_on_its_owners_upload_and_resumes_but_not_on_another_owners(job_workspace):
    """Data page upload -> Train page job -> run -> resume, as the app does it, for two owners."""
    from builder.jobs.queue import JobSpec, submit, wait

    store = RunStore(job_workspace, actor=SYSTEM)  # submits each owner's job as the server does
    ref = UploadFolder(upload_dir(job_workspace, ANN)).save("mine.csv", _table(80))
    project = load_template("mlp").model_dump(mode="json")
    opts = {"upload": ref, "target": "y"}
    mine = submit(store, JobSpec(project=project, dataset="csv", dataset_options=opts, config={"epochs": 2},
                                 owner=ANN, adapt=True))
    theirs = submit(store, JobSpec(project=project, dataset="csv", dataset_options=opts, config={"epochs": 2},
                                   owner=BOB, adapt=True))
    assert wait(store, [mine, theirs], timeout=300) == {mine: "finished", theirs: "failed"}
    assert "no upload" in store.get(theirs)["message"] and str(job_workspace) not in store.get(theirs)["message"]
    assert store.get(mine)["dataset_options"]["upload"] == ref
    again = submit(store, JobSpec(project={}, dataset="", owner=ANN, resume_run=mine, config={"epochs": 3}))
    assert wait(store, [again], timeout=300)[again] == "finished" and store.get(mine)["epochs_done"] == 3
