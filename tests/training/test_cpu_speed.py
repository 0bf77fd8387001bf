"""CPU speed settings of the trainer (issue 20): threads chosen from the model's multiply-adds, checkpoints on a
time interval (and at the end, pause, stop and a torch error) with exact resume unchanged."""

from __future__ import annotations

import pytest
import torch

from builder.data import load_dataset
from builder.errors import TrainingError
from builder.jobs import queue as jobs
from builder.training.checkpoint import read_checkpoint
from builder.training.config import CHECKPOINT_INTERVAL_S, TrainConfig
from builder.training.trainer import Trainer


@pytest.fixture(scope="module")
def moons():
    return load_dataset("moons", n_samples=300)


class Recording(Trainer):
    """A trainer that notes the (epoch, batch) of every checkpoint it writes."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.saves: list[tuple[int, int]] = []

    def _save(self, epoch, batch, perm, acc):
        self.saves.append((epoch, batch))
        super()._save(epoch, batch, perm, acc)


class Boom(torch.nn.Module):
    """A small MLP whose training forward raises once, at call ``boom_at`` (its weights do not depend on it)."""

    def __init__(self, boom_at: int | None = None):
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.ReLU(), torch.nn.Dropout(0.3),
                                       torch.nn.Linear(16, 2))  # dropout: the resumed step must draw the same mask
        self.boom_at, self.calls = boom_at, 0

    def forward(self, x):
        if self.training:
            self.calls += 1
            if self.calls == self.boom_at:
                torch.rand(3)  # the failing step had drawn random numbers already
                raise RuntimeError("simulated out of memory")
        return self.net(x)


CFG = {"epochs": 3, "batch_size": 40, "log_every": 2, "early_stopping": None, "health_every": 0,
       "device": "cpu"}  # CPU threads and speed: `auto` would be the GPU on a GPU host


def test_default_checkpoints_on_a_time_interval_not_every_epoch(tmp_path, moons):
    assert TrainConfig().checkpoint_every is None and TrainConfig().checkpoint_interval_s == CHECKPOINT_INTERVAL_S
    t = Recording(Boom(), moons, CFG, run_dir=tmp_path)
    t.fit()
    assert t.saves == [(0, 0), (3, 0)]  # the start and the end (a short run never reaches 60 s)


def test_explicit_checkpoint_every_and_zero_interval(tmp_path, moons):
    t = Recording(Boom(), moons, {**CFG, "checkpoint_every": 1}, run_dir=tmp_path / "a")
    t.fit()
    assert t.saves == [(0, 0), (1, 0), (2, 0), (3, 0)]
    t = Recording(Boom(), moons, {**CFG, "checkpoint_every": 0}, run_dir=tmp_path / "b")
    t.fit()
    assert t.saves == []
    t = Recording(Boom(), moons, {**CFG, "checkpoint_interval_s": 0}, run_dir=tmp_path / "c")
    t.fit()  # every check is due: after each log_every steps (inside the epoch) and at each epoch's end
    assert (0, 2) in t.saves and (1, 0) in t.saves and t.saves[-1] == (3, 0)


def test_error_checkpoint_resumes_exactly(tmp_path, moons):
    """A torch error in a step's forward leaves a checkpoint at that step; resuming it ends where an
    uninterrupted run does (and the timed mid-epoch checkpoints before it were exact too)."""
    ref = Trainer(Boom(), moons, CFG)
    ref.fit()
    t = Recording(Boom(boom_at=9), moons, {**CFG, "checkpoint_interval_s": 0}, run_dir=tmp_path)
    with pytest.raises(TrainingError, match="simulated out of memory"):
        t.fit()
    _, meta = read_checkpoint(tmp_path / "checkpoints" / "last.safetensors")
    steps = t.steps_per_epoch
    assert t.saves[-1] == (8 // steps, 8 % steps) and meta["state"]["global_step"] == 8
    resumed = Trainer(Boom(), moons, CFG, run_dir=tmp_path, resume_from=tmp_path / "checkpoints" / "last.safetensors")
    resumed.fit()
    for a, b in zip(ref.model.state_dict().values(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert resumed.global_step == ref.global_step


def test_threads_follow_the_model(moons, monkeypatch):
    monkeypatch.delenv(jobs.ENV_TORCH_THREADS, raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    seen = []
    try:
        torch.set_num_threads(2)
        t = Trainer(Boom(), moons, {**CFG, "epochs": 1},
                    on_event=lambda ev: ev["type"] == "epoch" and seen.append(torch.get_num_threads()))
        t.fit()
        assert t.macs_per_batch == (2 * 16 + 16 * 2) * 40  # torch's counter agrees with builder.graph.cost
        assert t.threads == 1 and seen == [1]  # a small model trains on one thread (and the process keeps it)
        torch.set_num_threads(2)
        monkeypatch.setenv(jobs.ENV_TORCH_THREADS, "2")
        t = Trainer(Boom(), moons, {**CFG, "epochs": 1})
        t.fit()
        assert t.threads == 2  # the user's setting wins
    finally:
        torch.set_num_threads(before)


def test_cli_threads_flag_sets_the_setting_every_run_reads(monkeypatch):
    import argparse

    from builder.cli.train import config_overrides

    monkeypatch.setenv(jobs.ENV_TORCH_THREADS, "1")  # recorded, so the flag's value is removed after the test
    config_overrides(argparse.Namespace(threads=3))
    assert jobs.explicit_threads() == 3 and jobs.torch_threads(1, cap=1) == 3
    with pytest.raises(TrainingError, match="--threads must be 1 or more; received: 0"):
        config_overrides(argparse.Namespace(threads=0))
