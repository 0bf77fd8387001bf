"""Scale-out: two CPU processes under torchrun (gloo, DDP) match a single-process run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from builder.data.access import SYSTEM
from builder.errors import TrainingError
from builder.runs.store import RunStore
from builder.training.distributed import env_world_size, init_distributed
from builder.training.weights import read_weights

ROOT = Path(__file__).resolve().parents[2]
ARGS = ["train", "mlp", "--dataset", "moons", "--epochs", "3", "--optimizer", "sgd", "--lr", "0.05",
        "--batch-size", "64", "--device", "cpu", "--quiet"]


def test_not_distributed_without_torchrun(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert env_world_size() == 1 and init_distributed() is None


def _run(cmd, ws):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    p = subprocess.run([*cmd, *ARGS, "--workspace", str(ws)], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    return re.search(r"^run id (\S+)$", p.stdout, re.M).group(1), p.stdout


@pytest.mark.slow
def test_two_cpu_processes_match_one(tmp_path):
    ws = tmp_path / "ws"
    ddp_id, ddp_out = _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                            "-m", "builder"], ws)
    one_id, one_out = _run([sys.executable, "-m", "builder"], ws)
    assert ddp_out.count("run id") == 1  # rank 0 alone reports and writes
    store = RunStore(ws, actor=SYSTEM)
    assert len(store.list_runs()) == 2
    a, _ = read_weights(store.weights_path(ddp_id))
    b, _ = read_weights(store.weights_path(one_id))
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5), k
    ca, cb = store.metrics(ddp_id), store.metrics(one_id)
    assert [e["val_loss"] for e in ca] == pytest.approx([e["val_loss"] for e in cb], rel=1e-4)
    assert [e["train_loss"] for e in ca] == pytest.approx([e["train_loss"] for e in cb], rel=1e-4)
    assert store.get(ddp_id)["test_metrics"]["accuracy"] == pytest.approx(store.get(one_id)["test_metrics"]["accuracy"])


def test_more_processes_than_gpus_on_cuda_is_refused_by_name(monkeypatch):
    """NCCL cannot put two processes on one GPU ("invalid usage", seen on a one-GPU host): refused before the
    process group forms, naming the counts and the fix."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(TrainingError, match=r"2 processes on this host share 1 GPU\(s\).*at most 1 process"):
        init_distributed("cuda")
