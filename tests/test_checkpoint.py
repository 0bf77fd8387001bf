"""Checkpoints: safetensors round trip of weights, optimizer, scheduler and RNG; atomic writes; no pickle."""

from __future__ import annotations

import json
import struct

import pytest
import torch

from builder.checkpoint import load_checkpoint, load_weights, read_checkpoint, save_checkpoint, save_weights
from builder.errors import TrainingError
from builder.train import TrainConfig, build_optimizer, build_scheduler


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
    w = save_weights(tmp_path / "w.safetensors", _model())
    with pytest.raises(TrainingError, match="not a LayerLab checkpoint"):
        read_checkpoint(w)
    path = save_checkpoint(tmp_path / "c.safetensors", _model())
    with pytest.raises(TrainingError, match="does not fit"):
        load_checkpoint(path, torch.nn.Linear(3, 3))


def test_weights_carry_node_names(tmp_path):
    m = _model()
    m.layerlab_names = {"fc": "0"}
    sd, md = load_weights(save_weights(tmp_path / "w.safetensors", m))
    assert json.loads(md["layerlab_names"]) == {"fc": "0"} and set(sd) == set(m.state_dict())
