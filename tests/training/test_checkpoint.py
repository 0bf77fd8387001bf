"""Checkpoints: safetensors round trip of weights, optimizer, scheduler and RNG; atomic writes; no pickle."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch

from builder.errors import TrainingError
from builder.training.checkpoint import (
    load_checkpoint,
    previous_path,
    read_checkpoint,
    save_checkpoint,
)
from builder.training.config import TrainConfig
from builder.training.trainer import build_optimizer, build_scheduler
from builder.training.weights import read_weights, save_weights


def _model(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))


def _train_steps(model, opt, sched, n=3):
    for _ in range(n):
        loss = model(torch.randn(8, 3)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()


@pytest.mark.parametrize("optimizer,scheduler", [("adam", "onecycle"), ("sgd", "step"), ("adamw", "cosine"),
                                                 ("rmsprop", "none")])
def test_round_trip_restores_everything(tmp_path, optimizer, scheduler):
    cfg = TrainConfig(optimizer=optimizer, scheduler=scheduler, epochs=3)
    m = _model()
    opt = build_optimizer(m.parameters(), cfg)
    sched, _ = build_scheduler(opt, cfg, 5)
    _train_steps(m, opt, sched)
    path = save_checkpoint(tmp_path / "c.safetensors", m, opt, sched, {"epoch": 2, "best": float("inf")},
                           {"perm": torch.arange(5)})
    expected_next = torch.rand(3)  # RNG draw after the save
    _train_steps(m, opt, sched)  # diverge
    m2 = _model(seed=1)
    opt2 = build_optimizer(m2.parameters(), cfg)
    sched2, _ = build_scheduler(opt2, cfg, 5)
    state, extra = load_checkpoint(path, m2, opt2, sched2)
    assert state == {"epoch": 2, "best": float("inf")}
    assert torch.equal(extra["perm"], torch.arange(5))
    assert torch.equal(torch.rand(3), expected_next)
    m3 = _model()
    opt3 = build_optimizer(m3.parameters(), cfg)
    sched3, _ = build_scheduler(opt3, cfg, 5)
    _train_steps(m3, opt3, sched3)
    for a, b in zip(m2.state_dict().values(), m3.state_dict().values()):
        assert torch.equal(a, b)
    assert opt2.state_dict()["param_groups"][0]["lr"] == opt3.state_dict()["param_groups"][0]["lr"]
    if sched is not None:
        assert sched2.state_dict()["last_epoch"] == sched3.state_dict()["last_epoch"]
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*tmp"))


def test_plateau_scheduler_state_survives(tmp_path):
    cfg = TrainConfig(scheduler="plateau")
    m = _model()
    opt = build_optimizer(m.parameters(), cfg)
    sched, when = build_scheduler(opt, cfg, 1)
    assert when == "plateau"
    for v in (1.0, 2.0, 3.0, 4.0):
        sched.step(v)
    save_checkpoint(tmp_path / "c.safetensors", m, opt, sched)
    opt2 = build_optimizer(m.parameters(), cfg)
    sched2, _ = build_scheduler(opt2, cfg, 1)
    load_checkpoint(tmp_path / "c.safetensors", m, opt2, sched2)
    assert sched2.num_bad_epochs == sched.num_bad_epochs and sched2.best == 1.0


def test_file_is_plain_safetensors_not_pickle(tmp_path):
    m = _model()
    path = save_checkpoint(tmp_path / "c.safetensors", m, None, None, {"epoch": 1})
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    assert "model.0.weight" in header and "__metadata__" in header
    assert b"\x80\x04" not in raw[:2]  # not a pickle stream


def test_errors(tmp_path):
    with pytest.raises(TrainingError, match="not found"):
        read_checkpoint(tmp_path / "missing.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"garbage")
    with pytest.raises(TrainingError, match="unreadable"):
        read_checkpoint(bad)
    w = save_weights(_model(), tmp_path / "w.safetensors")
    with pytest.raises(TrainingError, match="not a LayerLab checkpoint"):
        read_checkpoint(w)
    path = save_checkpoint(tmp_path / "c.safetensors", _model())
    with pytest.raises(TrainingError, match="does not fit"):
        load_checkpoint(path, torch.nn.Linear(3, 3))


def test_weights_carry_node_names(tmp_path):
    m = _model()
    m.layerlab_names = {"fc": "0"}
    sd, md = read_weights(save_weights(m, tmp_path / "w.safetensors"))
    assert json.loads(md["layerlab_names"]) == {"fc": "0"} and set(sd) == set(m.state_dict())


# ------------------------------------------------------------------------------ integrity (issue 9)
def _flip(path, where=0.6):
    """Flip one byte inside the tensor data (past the JSON header)."""
    raw = bytearray(path.read_bytes())
    (n,) = struct.unpack("<Q", raw[:8])
    i = 8 + n + int((len(raw) - 8 - n) * where)
    raw[i] ^= 0xFF
    path.write_bytes(bytes(raw))


def test_flipped_bytes_are_detected(tmp_path):
    path = save_checkpoint(tmp_path / "c.safetensors", _model(), None, None, {"epoch": 1})
    read_checkpoint(path)
    _flip(path)
    with pytest.raises(TrainingError, match="integrity check"):
        read_checkpoint(path)
    with pytest.raises(TrainingError, match="integrity check"):
        load_checkpoint(path, _model())
    w = save_weights(_model(), tmp_path / "w.safetensors")
    _flip(w, 0.3)
    with pytest.raises(TrainingError, match="integrity check"):
        read_weights(w)


def test_previous_checkpoint_is_kept_and_used_when_the_last_is_damaged(tmp_path):
    path = tmp_path / "last.safetensors"
    save_checkpoint(path, _model(0), None, None, {"epoch": 1})
    save_checkpoint(path, _model(1), None, None, {"epoch": 2})
    assert previous_path(path).is_file() and read_checkpoint(previous_path(path))[1]["state"]["epoch"] == 1
    _flip(path)
    m = _model(5)
    state, _ = load_checkpoint(path, m)
    assert state["epoch"] == 1 and "integrity check" in state["_fallback"] and "previous" in state["_fallback"]
    assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), _model(0).state_dict().values()))
    path.unlink()  # a last checkpoint lost (deleted by hand) leaves only the previous one
    assert load_checkpoint(path, _model(5))[0]["epoch"] == 1
    _flip(previous_path(path))
    with pytest.raises(TrainingError, match="not found"):
        load_checkpoint(path, _model(5))


def test_a_write_that_does_not_verify_leaves_the_last_checkpoint_alone(tmp_path, monkeypatch):
    import builder.training.checkpoint as ck

    path = save_checkpoint(tmp_path / "last.safetensors", _model(0), None, None, {"epoch": 1})
    before = path.read_bytes()
    real = ck.save_file

    def torn_write(tensors, filename, metadata=None):  # the disk keeps only half of the file
        real(tensors, filename, metadata=metadata)
        data = Path(filename).read_bytes()
        Path(filename).write_bytes(data[: len(data) // 2])

    monkeypatch.setattr(ck, "save_file", torn_write)
    with pytest.raises(TrainingError):
        save_checkpoint(path, _model(1), None, None, {"epoch": 2})
    assert path.read_bytes() == before and not previous_path(path).exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def _trained_checkpoint(tmp_path):
    from builder.data import load_dataset
    from builder.training.trainer import Trainer

    ds = load_dataset("moons", n_samples=120)
    t = Trainer(_mlp(), ds, {"epochs": 2, "batch_size": 16}, run_dir=tmp_path / "run")
    t._stop_at_step = 9  # mid-epoch: the checkpoint carries a permutation and partial sums
    t.fit()
    return ds, tmp_path / "run" / "checkpoints" / "last.safetensors"


def _mlp():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))


def _rewrite(path, edit_meta=None, edit_tensors=None, raw_meta=None):
    from safetensors.torch import save_file

    from builder.training.checkpoint import tensors_sha256

    tensors, meta = read_checkpoint(path)
    if edit_meta:
        edit_meta(meta)
    if edit_tensors:
        edit_tensors(tensors)
        meta["sha256"] = tensors_sha256(tensors)  # a consistent file: the check must be on content
    previous_path(path).unlink(missing_ok=True)  # no fallback: the crafted file itself is judged
    save_file(tensors, str(path), metadata={"layerlab": raw_meta if raw_meta is not None else json.dumps(meta)})


def _set(d, keys, value):
    for k in keys[:-1]:
        d = d[k]
    d[keys[-1]] = value


CRAFTED = {
    "negative epoch": dict(edit_meta=lambda m: _set(m, ["state", "epoch"], -1)),
    "huge epoch": dict(edit_meta=lambda m: _set(m, ["state", "epoch"], 10**30)),
    "epoch as text": dict(edit_meta=lambda m: _set(m, ["state", "epoch"], "3")),
    "epoch as float": dict(edit_meta=lambda m: _set(m, ["state", "epoch"], 2.5)),
    "batch past the epoch": dict(edit_meta=lambda m: _set(m, ["state", "batch"], 10**6)),
    "missing epoch": dict(edit_meta=lambda m: m["state"].pop("epoch")),
    "state is a list": dict(edit_meta=lambda m: _set(m, ["state"], [1, 2])),
    "history is text": dict(edit_meta=lambda m: _set(m, ["state", "history"], "x")),
    "acc count negative": dict(edit_meta=lambda m: _set(m, ["state", "acc", "count"], -5)),
    "optimizer state is text": dict(edit_meta=lambda m: _set(m, ["optimizer", "state"], "x")),
    "no param groups": dict(edit_meta=lambda m: _set(m, ["optimizer", "param_groups"], [])),
    "python random garbage": dict(edit_meta=lambda m: _set(m, ["python_random"], [3, "x", None])),
    "not JSON": dict(raw_meta="{\"format\": "),
    "JSON list": dict(raw_meta="[1, 2]"),
    "thousands of digits": dict(raw_meta='{"format": "layerlab-checkpoint-1", "state": {"epoch": ' + "9" * 5000 + "}}"),
    "weight of the wrong shape": dict(edit_tensors=lambda t: _set(t, ["model.0.weight"], torch.zeros(3, 3))),
    "moment of the wrong shape": dict(edit_tensors=lambda t: _set(t, [next(k for k in t if k.endswith("exp_avg"))],
                                                                  torch.zeros(7))),
    "permutation of the wrong length": dict(edit_tensors=lambda t: _set(t, ["extra.perm"], torch.arange(5))),
    "permutation with repeats": dict(edit_tensors=lambda t: _set(t, ["extra.perm"],
                                                                 torch.zeros_like(t["extra.perm"]))),
    "missing generator state": dict(edit_tensors=lambda t: t.pop("extra.gen_state")),
    "generator state of the wrong size": dict(edit_tensors=lambda t: _set(t, ["extra.gen_state"],
                                                                          torch.zeros(3, dtype=torch.uint8))),
    "missing RNG": dict(edit_tensors=lambda t: t.pop("rng.torch")),
    "RNG as floats": dict(edit_tensors=lambda t: _set(t, ["rng.torch"], torch.zeros(10))),
}


@pytest.mark.parametrize("case", list(CRAFTED))
def test_crafted_checkpoint_metadata_is_a_clear_error(tmp_path, case):
    from builder.training.trainer import Trainer

    ds, path = _trained_checkpoint(tmp_path)
    _rewrite(path, **CRAFTED[case])
    t = Trainer(_mlp(), ds, {"epochs": 2, "batch_size": 16}, run_dir=tmp_path / "run", resume_from=path)
    with pytest.raises(TrainingError) as e:
        t.fit()
    assert str(path) in str(e.value) and "\n" not in str(e.value)
    assert t.status == "failed"


def test_trainer_resumes_from_the_previous_checkpoint_with_a_message(tmp_path):
    from builder.training.trainer import Trainer

    ds, path = _trained_checkpoint(tmp_path)
    _flip(path)
    events = []
    t = Trainer(_mlp(), ds, {"epochs": 2, "batch_size": 16}, run_dir=tmp_path / "run", resume_from=path,
                on_event=events.append)
    assert t.fit().status == "finished"
    msgs = [e["message"] for e in events if e["type"] == "status" and e["status"] == "running"]
    assert "integrity check" in msgs[0] and "previous checkpoint" in msgs[0]


def test_one_weights_file_api(tmp_path):
    """builder.save_weights(model, path) / builder.load_weights(model, path) are the training weights writer."""
    import builder
    from builder.graph.compile import compile_graph
    from builder.graph.templates import load_template

    torch.manual_seed(0)
    model = compile_graph(load_template("mlp").graph)
    path = builder.save_weights(model, tmp_path / "w.safetensors")
    sd, md = read_weights(path)
    assert "layerlab_sha256" in md and "layerlab_names" in md
    torch.manual_seed(1)
    other = builder.load_weights(compile_graph(load_template("mlp").graph), path)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), other.state_dict().values()))
    with pytest.raises(OSError):  # a missing folder: nothing is written
        builder.save_weights(model, tmp_path / "missing" / "w.safetensors")
    assert not (tmp_path / "missing").exists()


@pytest.mark.parametrize("kind", ["checkpoint", "weights"])
def test_a_file_replaced_while_it_is_read_gives_one_whole_version(tmp_path, monkeypatch, kind):
    """A running job renames a new checkpoint (or weights file) over the one a page or a test is reading: the
    reader gets the version it opened, whole, and never the metadata of one with the tensors of the next (the
    CI's test_killed_run_is_marked_interrupted_and_resumes read a checkpoint as its job replaced it)."""
    import builder.training.checkpoint as checkpoint
    import builder.training.weights as weights

    path = tmp_path / "last.safetensors"

    def write(seed):
        if kind == "checkpoint":
            save_checkpoint(path, _model(seed), state={"epoch": seed})
        else:
            save_weights(_model(seed), path, {"seed": str(seed)})

    write(1)
    real = checkpoint.safe_open

    class ReplacedOnOpen:
        """``safe_open`` whose file is replaced by the next version as soon as it is opened."""

        def __init__(self, *args, **kwargs):
            self.handle = real(*args, **kwargs)

        def __enter__(self):
            f = self.handle.__enter__()
            monkeypatch.setattr(checkpoint, "safe_open", real)
            monkeypatch.setattr(weights, "safe_open", real, raising=False)
            write(2)
            return f

        def __exit__(self, *exc):
            return self.handle.__exit__(*exc)

    monkeypatch.setattr(checkpoint, "safe_open", ReplacedOnOpen)
    monkeypatch.setattr(weights, "safe_open", ReplacedOnOpen, raising=False)
    if kind == "checkpoint":
        tensors, meta = read_checkpoint(path)
        assert meta["state"]["epoch"] == 1
    else:
        tensors, meta = read_weights(path)
        assert meta["seed"] == "1"
    key = "model.0.weight" if kind == "checkpoint" else "0.weight"
    assert torch.equal(tensors[key], _model(1)[0].weight.detach())
